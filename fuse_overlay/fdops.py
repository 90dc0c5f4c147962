"""System calls Python's os module lacks, relative to directory descriptors.

The overlay acts on its layers only through directory descriptors and one name at a time
(see fs.py), so it needs the *at form of every call: renameat2(2) with its flags, and the
extended-attribute calls on (dirfd, name) without following a final symlink (getxattrat,
setxattrat, listxattrat, removexattrat: Linux 6.13). os.getxattr and friends take a path or
an fd only, and an O_PATH descriptor is refused by fgetxattr.

Hand-written on ctypes: no maintained library offers these calls. libc is loaded when this
module is imported, so nothing is loaded by path once the server has confined itself
(server.py). On a kernel without the *xattrat calls, the fallback opens the file (regular
files and directories only: the only types that may carry user xattrs) with O_NOFOLLOW
relative to the directory descriptor and uses the fd forms.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

AT_SYMLINK_NOFOLLOW = 0x100
RENAME_EXCHANGE = 2
_NR_SETXATTRAT, _NR_GETXATTRAT, _NR_LISTXATTRAT, _NR_REMOVEXATTRAT = 463, 464, 465, 466

_libc = ctypes.CDLL(None, use_errno=True)

_renameat2 = _libc.renameat2
_renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                       ctypes.c_uint)
_renameat2.restype = ctypes.c_int


class _XattrArgs(ctypes.Structure):  # struct xattr_args (linux/xattr.h)
    _fields_ = (("value", ctypes.c_uint64), ("size", ctypes.c_uint32),
                ("flags", ctypes.c_uint32))


def _syscall(*argtypes):
    fn = _libc["syscall"]  # a fresh function object each: each gets its own argtypes
    fn.argtypes = (ctypes.c_long, *argtypes)
    fn.restype = ctypes.c_long
    return fn


_xattr_args = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_char_p, ctypes.c_void_p,
               ctypes.c_size_t)
_getxattrat = _syscall(*_xattr_args)
_setxattrat = _syscall(*_xattr_args)
_listxattrat = _syscall(ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_void_p,
                        ctypes.c_size_t)
_removexattrat = _syscall(ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_char_p)

_BUF = 4096
_buf = ctypes.create_string_buffer(_BUF)  # one server thread: one reusable buffer
_buf_addr = ctypes.addressof(_buf)
_args = _XattrArgs(_buf_addr, _BUF, 0)
_args_p = ctypes.addressof(_args)
_have_at = True


def _err(name) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, os.strerror(e), name)


def renameat2(src_dfd: int, src: bytes, dst_dfd: int, dst: bytes, flags: int) -> None:
    if _renameat2(src_dfd, src, dst_dfd, dst, flags) != 0:
        raise _err(src)


def _open_for_xattr(dfd: int, name: bytes) -> int:
    """The fallback's descriptor: never follows a symlink, never opens a device."""
    fd = os.open(name or b".", os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY |
                 os.O_CLOEXEC, dir_fd=dfd)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        os.close(fd)
        raise OSError(errno.EPERM, "no xattrs on this file type", name)
    return fd


def _fallback(dfd: int, name: bytes, fn, *args):
    try:
        fd = _open_for_xattr(dfd, name)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO):  # a symlink or a socket: no user xattrs
            raise OSError(errno.ENODATA if fn is os.getxattr else errno.EPERM,
                          "no xattrs on this file type", name) from None
        raise
    try:
        return fn(fd, *args)
    finally:
        os.close(fd)


def getxattr(dfd: int, name: bytes, attr: str | bytes) -> bytes:
    """The value of `attr` of dfd/name (name b"": the directory dfd itself, which must not
    be an O_PATH descriptor then)."""
    global _have_at
    if not isinstance(attr, bytes):
        attr = os.fsencode(attr)
    if _have_at and name:
        _args.value, _args.size = _buf_addr, _BUF
        n = _getxattrat(_NR_GETXATTRAT, dfd, name, AT_SYMLINK_NOFOLLOW, attr, _args_p, 16)
        if n >= 0:
            return ctypes.string_at(_buf_addr, n)  # not .raw: that copies all 4 KiB
        e = ctypes.get_errno()
        if e == errno.ERANGE:
            _args.value, _args.size = 0, 0
            size = _getxattrat(_NR_GETXATTRAT, dfd, name, AT_SYMLINK_NOFOLLOW, attr, _args_p, 16)
            if size < 0:
                raise _err(name)
            big = ctypes.create_string_buffer(size)
            _args.value, _args.size = ctypes.addressof(big), size
            n = _getxattrat(_NR_GETXATTRAT, dfd, name, AT_SYMLINK_NOFOLLOW, attr, _args_p, 16)
            if n < 0:
                raise _err(name)
            return big.raw[:n]
        if e != errno.ENOSYS:
            raise OSError(e, os.strerror(e), name)
        _have_at = False
    return _fallback(dfd, name, os.getxattr, attr)


def setxattr(dfd: int, name: bytes, attr: str | bytes, value: bytes, flags: int = 0) -> None:
    global _have_at
    attr = os.fsencode(attr)
    if _have_at and name:
        vbuf = ctypes.create_string_buffer(value, len(value))
        args = _XattrArgs(ctypes.addressof(vbuf), len(value), flags)
        if _setxattrat(_NR_SETXATTRAT, dfd, name, AT_SYMLINK_NOFOLLOW, attr,
                       ctypes.addressof(args), 16) == 0:
            return
        e = ctypes.get_errno()
        if e != errno.ENOSYS:
            raise OSError(e, os.strerror(e), name)
        _have_at = False
    _fallback(dfd, name, os.setxattr, attr, value, flags)


def listxattr(dfd: int, name: bytes) -> list[str]:
    global _have_at
    if _have_at and name:
        size = _listxattrat(_NR_LISTXATTRAT, dfd, name, AT_SYMLINK_NOFOLLOW, None, 0)
        if size >= 0:
            buf = ctypes.create_string_buffer(max(size, 1))
            n = _listxattrat(_NR_LISTXATTRAT, dfd, name, AT_SYMLINK_NOFOLLOW,
                             ctypes.addressof(buf), size)
            if n < 0:
                raise _err(name)
            return [os.fsdecode(x) for x in buf.raw[:n].split(b"\0") if x]
        e = ctypes.get_errno()
        if e != errno.ENOSYS:
            raise OSError(e, os.strerror(e), name)
        _have_at = False
    try:
        return _fallback(dfd, name, os.listxattr)
    except OSError as e:
        if e.errno == errno.EPERM:
            return []
        raise


def removexattr(dfd: int, name: bytes, attr: str | bytes) -> None:
    global _have_at
    attr = os.fsencode(attr)
    if _have_at and name:
        if _removexattrat(_NR_REMOVEXATTRAT, dfd, name, AT_SYMLINK_NOFOLLOW, attr) == 0:
            return
        e = ctypes.get_errno()
        if e != errno.ENOSYS:
            raise OSError(e, os.strerror(e), name)
        _have_at = False
    _fallback(dfd, name, os.removexattr, attr)

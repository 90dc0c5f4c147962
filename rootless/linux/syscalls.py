"""unshare, setns, mount, umount2, pivot_root and prctl through libc.

Every function declares its argtypes: `mount`'s flags are `unsigned long`, and a Python int
passed without a declared type arrives with garbage in its upper bits (seen on these
machines as EPERM from a correct MS_PRIVATE call). Errors raise OSError with errno set.
"""

from __future__ import annotations

import ctypes
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_STRICTATIME = 1 << 24

MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)

_libc.unshare.argtypes = [ctypes.c_int]
_libc.unshare.restype = ctypes.c_int
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int
_libc.mount.argtypes = [
    ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
]
_libc.mount.restype = ctypes.c_int
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.umount2.restype = ctypes.c_int
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.prctl.restype = ctypes.c_int
_libc.syscall.restype = ctypes.c_long

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine)


def _check(result: int, what: str, path: str | None = None) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return result


def _b(value: str | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return os.fsencode(value)


_SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(os.uname().machine)
CLONE_PARENT = 0x00008000
_SIGCHLD = 17


def fork_sibling() -> int:
    """fork(2) with CLONE_PARENT: the child is our parent's child, not ours, so we may
    exit while it runs and our parent waits for it (a detached container's pid 1, whose
    sandbox then exits: rootless/runtime/sandbox.py). The raw clone syscall, as no libc
    call takes the flag without a stack and a function to run: Python's after-fork hooks
    do not run in the child and libc's cached thread id is the caller's, so only a
    single-threaded caller may use it, and the child should exec or _exit soon (pid 1
    does). The raw syscall takes the args in the kernel's order, stack 0 = the caller's
    (copied, as in fork). Returns the child's pid (in our pid namespace) or 0 in it."""
    if _SYS_CLONE is None:
        raise OSError(38, "clone: not supported on this architecture")
    zero = ctypes.c_long(0)
    return _check(_libc.syscall(ctypes.c_long(_SYS_CLONE),
                                ctypes.c_long(CLONE_PARENT | _SIGCHLD), zero, zero, zero, zero),
                  "clone")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), "umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    if _SYS_PIVOT_ROOT is None:
        raise OSError(38, "pivot_root: unsupported architecture")
    fn = _libc.syscall
    fn.argtypes = [ctypes.c_long, ctypes.c_char_p, ctypes.c_char_p]
    _check(fn(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), "pivot_root", new_root)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), "prctl")

# --- additions for the container runtime -------------------------------------------------

PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

MS_NOSYMFOLLOW = 256
MS_UNBINDABLE = 1 << 17

# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437}.get(os.uname().machine)
_SYS_CLOSE_RANGE = {"x86_64": 436, "aarch64": 436}.get(os.uname().machine)

_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.sethostname.restype = ctypes.c_int
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.restype = ctypes.c_int


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname")


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): open `path` relative to `dirfd` with RESOLVE_* restrictions.

    RESOLVE_IN_ROOT makes every symlink and `..` resolve as if `dirfd` were `/`: the way to
    open a path inside a container's root filesystem from outside it without following a
    symlink the image (or the container) planted to a host path."""
    if _SYS_OPENAT2 is None:
        raise OSError(38, "openat2: unsupported architecture")
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fn = _libc.syscall
    fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_OpenHow),
                   ctypes.c_size_t]
    return _check(fn(_SYS_OPENAT2, dirfd, os.fsencode(path), ctypes.byref(how),
                     ctypes.sizeof(how)), "openat2", path)


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    """Close every fd in [first, last]; falls back to os.closerange on old kernels."""
    if _SYS_CLOSE_RANGE is not None:
        fn = _libc.syscall
        fn.argtypes = [ctypes.c_long, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint]
        if fn(_SYS_CLOSE_RANGE, first, last, flags) == 0:
            return
    os.closerange(first, min(last, 65535) + 1)


IN_ATTRIB = 0x4
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
_IN_NONBLOCK_CLOEXEC = os.O_NONBLOCK | os.O_CLOEXEC
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


def inotify_watch(path: str, mask: int) -> int:
    """A non-blocking inotify fd watching `path` for `mask` (it turns readable when an
    event comes), or -1 when the kernel refuses (no inotify instances left)."""
    fd = _libc.inotify_init1(_IN_NONBLOCK_CLOEXEC)
    if fd < 0:
        return -1
    if _libc.inotify_add_watch(fd, os.fsencode(path), mask) < 0:
        os.close(fd)
        return -1
    return fd


def detach_session() -> int:
    """In a forked child, to outlive the caller: a new session, then a grandchild of it
    (the intermediate exits at once, so the caller reaps it and never waits on us), with
    stdio on /dev/null. Returns the intermediate's pid (the grandchild's parent until
    the kernel reparents it)."""
    os.setsid()
    first = os.getpid()
    if os.fork() != 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return first


def neutralize_fds(keep: set[int]) -> None:
    """Point every open fd not in `keep` at /dev/null, in a forked child that goes on
    running Python code. Closing them would be wrong: a Python object of the parent (an
    sqlite connection, a file) still owns the number and closes it when collected, which
    would then close whatever new pipe or device got that number. A /dev/null copy releases
    the original file (a pipe's end, a socket) and keeps the number taken."""
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd in keep or fd == null:
                continue
            try:
                os.dup2(null, fd, inheritable=False)
            except OSError:
                pass
    finally:
        os.close(null)


def loopback_up() -> None:
    """Bring up `lo` in the current network namespace (SIOCSIFFLAGS on a socket)."""
    import fcntl
    import socket
    import struct

    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh14x", b"lo", flags | IFF_UP))


_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)
KEYCTL_JOIN_SESSION_KEYRING = 1


def join_new_session_keyring() -> None:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): a new anonymous session keyring for this
    process and what it execs, instead of the one it inherited (the user's login session,
    with Kerberos tickets and the like). ENOSYS (a kernel without keys) is not an error:
    there is then nothing to inherit."""
    if _SYS_KEYCTL is None:
        raise OSError(38, "keyctl: unsupported architecture")
    fn = _libc.syscall
    fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p]
    if fn(_SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        err = ctypes.get_errno()
        if err != 38:
            raise OSError(err, f"keyctl(JOIN_SESSION_KEYRING): {os.strerror(err)}")


_SYS_MOUNT_SETATTR = {"x86_64": 442, "aarch64": 442}.get(os.uname().machine)
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def make_tree_readonly(fd: int) -> None:
    """mount_setattr(fd, "", AT_EMPTY_PATH|AT_RECURSIVE, {attr_set=RDONLY}): the mount
    `fd` is the root of, and every mount below it, read-only in one call (Linux 5.12)."""
    if _SYS_MOUNT_SETATTR is None:
        raise OSError(38, "mount_setattr: unsupported architecture")
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    fn = _libc.syscall
    fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint,
                   ctypes.POINTER(_MountAttr), ctypes.c_size_t]
    _check(fn(_SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH | AT_RECURSIVE, ctypes.byref(attr),
              ctypes.sizeof(attr)), "mount_setattr")


# open_tree(2) and move_mount(2): a copy of a mount of another mount namespace
# (--ipc container:NAME binds NAME's /dev/shm; a plain bind from another namespace is EINVAL)
_SYS_OPEN_TREE = {"x86_64": 428, "aarch64": 428}.get(os.uname().machine)
_SYS_MOVE_MOUNT = {"x86_64": 429, "aarch64": 429}.get(os.uname().machine)
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40


def open_tree_clone(fd: int) -> int:
    """A detached copy of the mount at `fd` (which must be in our mount namespace)."""
    if _SYS_OPEN_TREE is None:
        raise OSError(38, "open_tree: unsupported architecture")
    fn = _libc.syscall
    fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return _check(fn(_SYS_OPEN_TREE, fd, b"", OPEN_TREE_CLONE | os.O_CLOEXEC | AT_EMPTY_PATH),
                  "open_tree")


def move_mount(tree_fd: int, target_fd: int) -> None:
    """Attach the detached mount `tree_fd` on the directory `target_fd`."""
    if _SYS_MOVE_MOUNT is None:
        raise OSError(38, "move_mount: unsupported architecture")
    fn = _libc.syscall
    fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                   ctypes.c_char_p, ctypes.c_uint]
    _check(fn(_SYS_MOVE_MOUNT, tree_fd, b"", target_fd, b"",
              MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH), "move_mount")

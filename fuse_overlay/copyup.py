"""Copying files between layers: data (sparse-aware), xattrs, metadata.

Copy-up always builds the new file under a temporary name in the workdir and renames it into
the upper dir, so a crash leaves either the old state or the complete copy (never a half
file in upper); leftovers in the workdir are removed at the next mount.

Everything here works on descriptors: the source is (its directory's fd, its name), opened
with O_NOFOLLOW; the copy is made by name in the workdir's fd and then set up through its
own descriptor (fchmod, fchown, fsetxattr, futimens). The copy never gets setuid or setgid
bits on disk (a non-directory): what the source showed is kept in the override xattr.
"""

from __future__ import annotations

import errno
import os
import stat

from . import metadata

_CHUNK = 1 << 20


def copy_data(src_fd: int, dst_fd: int, size: int) -> None:
    """Copy `size` bytes, keeping holes (SEEK_DATA/SEEK_HOLE) and using copy_file_range
    (reflinks or in-kernel copy) when the filesystem allows it."""
    off = 0
    use_cfr = True
    while off < size:
        try:
            data = os.lseek(src_fd, off, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # only a hole is left
                break
            data = off  # no SEEK_DATA support: copy everything
        try:
            hole = os.lseek(src_fd, data, os.SEEK_HOLE)
        except OSError:
            hole = size
        hole = min(hole, size)
        pos = data
        while pos < hole:
            n = 0
            if use_cfr:
                try:
                    n = os.copy_file_range(src_fd, dst_fd, hole - pos, pos, pos)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    use_cfr = False
                    continue
            else:
                buf = os.pread(src_fd, min(_CHUNK, hole - pos), pos)
                n = len(buf)
                if n:
                    os.pwrite(dst_fd, buf, pos)
            if n == 0:
                break
            pos += n
        off = max(hole, pos)
    os.ftruncate(dst_fd, size)


_SUGID = stat.S_ISUID | stat.S_ISGID
_NEW = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_xattrs(src_fd: int, dst_fd: int) -> None:
    """Copy every xattr we can (user.*; others as far as permitted), except the kernel
    overlay's own bookkeeping, which describes the source layer, not the copy."""
    try:
        names = os.listxattr(src_fd)
    except OSError:
        return
    for name in names:
        if name.startswith(("user.overlay.", "trusted.overlay.")):
            continue
        try:
            os.setxattr(dst_fd, name, os.getxattr(src_fd, name))
        except OSError:
            pass


def copy_node(sdfd: int, sname: bytes, st: os.stat_result, wfd: int, tmp: bytes,
              shown: tuple[int, int, int], realchown: bool, ino: int) -> os.stat_result:
    """Create in directory `wfd` at `tmp` a copy of the non-directory sdfd/sname (whose
    lstat is `st`), with its xattrs, mode, owner and times, recording the node number `ino`
    (metadata.py). `shown` is the (uid, gid, mode-with-type) the source was presented with.
    Returns the copy's stat."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        sfd = os.open(sname, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sdfd)
        try:
            dfd = os.open(tmp, _NEW, 0o600, dir_fd=wfd)
            try:
                copy_data(sfd, dfd, st.st_size)
                finish_fd(sfd, st, dfd, shown, False, realchown)
                metadata.write_origin_ino(dfd, ino)
                return os.fstat(dfd)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(sname, dir_fd=sdfd), tmp, dir_fd=wfd)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(tmp, 0o600, dir_fd=wfd)
    elif stat.S_ISSOCK(mode):
        os.mknod(tmp, stat.S_IFSOCK | 0o600, dir_fd=wfd)
    else:  # device nodes: mknod needs privileges a user namespace does not give
        try:
            os.mknod(tmp, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=wfd)
        except OSError:
            dfd = os.open(tmp, _NEW, 0o600, dir_fd=wfd)
            try:
                finish_fd(None, st, dfd, shown, True, realchown)
                metadata.write_origin_ino(dfd, ino)
                return os.fstat(dfd)
            finally:
                os.close(dfd)
    # a symlink, fifo, socket or device node (no user xattrs on those): what we just made
    # in our workdir, by name
    if not stat.S_ISLNK(mode):
        os.chmod(tmp, stat.S_IMODE(mode) & ~_SUGID, dir_fd=wfd, follow_symlinks=True)
    if realchown or stat.S_ISLNK(mode):
        try:
            os.chown(tmp, st.st_uid, st.st_gid, dir_fd=wfd, follow_symlinks=False)
        except OSError:
            pass
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=wfd, follow_symlinks=False)
    return os.stat(tmp, dir_fd=wfd, follow_symlinks=False)


def finish_fd(src_fd: int | None, st: os.stat_result, dst_fd: int,
              shown: tuple[int, int, int], as_type: bool, realchown: bool) -> None:
    """Give the copy `dst_fd` (a regular file or directory) the xattrs of `src_fd` and the
    mode, owner and times of `st`. When the copy would show something else than `shown`
    (setuid/setgid bits are never put on a non-directory on disk), the override xattr is
    written so the file looks the same after copy-up."""
    isdir = stat.S_ISDIR(st.st_mode)
    if src_fd is not None:
        copy_xattrs(src_fd, dst_fd)
    perms = stat.S_IMODE(st.st_mode)
    os.fchmod(dst_fd, perms if isdir else perms & ~_SUGID)
    if realchown:
        try:
            os.fchown(dst_fd, st.st_uid, st.st_gid)
        except OSError:
            pass
    now = os.fstat(dst_fd)
    ov = metadata.read_override(dst_fd)
    uid, gid, mode = shown
    if as_type or (ov is None and (now.st_uid, now.st_gid, now.st_mode) != (uid, gid, mode)):
        metadata.write_override(dst_fd, metadata.Override(
            uid, gid, stat.S_IMODE(mode),
            stat.S_IFMT(mode) if as_type else None, st.st_rdev if as_type else 0))
    os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))


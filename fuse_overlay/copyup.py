"""Copying files between layers: data (sparse-aware), xattrs, metadata.

Copy-up always builds the new file under a temporary name in the workdir and renames it into
the upper dir, so a crash leaves either the old state or the complete copy (never a half
file in upper); leftovers in the workdir are removed at the next mount.
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


def copy_xattrs(src: bytes, dst: bytes) -> None:
    """Copy every xattr we can (user.*; others as far as permitted), except the kernel
    overlay's own bookkeeping, which describes the source layer, not the copy."""
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith(("user.overlay.", "trusted.overlay.")):
            continue
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                        follow_symlinks=False)
        except OSError:
            pass


def make_like(src: bytes, st: os.stat_result, tmp: bytes) -> bool:
    """Create at `tmp` a copy of the non-directory `src` (whose lstat is `st`).
    Returns True when the type could not be made on disk and was recorded in the xattr."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        sfd = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            dfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                copy_data(sfd, dfd, st.st_size)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), tmp)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(tmp, 0o600)
    elif stat.S_ISSOCK(mode):
        os.mknod(tmp, stat.S_IFSOCK | 0o600)
    else:  # device nodes: mknod needs privileges a user namespace does not give
        try:
            os.mknod(tmp, stat.S_IFMT(mode) | 0o600, st.st_rdev)
        except OSError:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            return True
    return False


def finish_copy(src: bytes, st: os.stat_result, tmp: bytes, shown: tuple[int, int, int],
                as_type: bool, realchown: bool) -> None:
    """Give `tmp` the xattrs, mode, owner and times of `src`. `shown` is the (uid, gid,
    mode-with-type) the source was presented with: when the copy would show something else,
    the override xattr is written so the file looks the same after copy-up."""
    is_link = stat.S_ISLNK(st.st_mode)
    if not is_link:
        copy_xattrs(src, tmp)
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
    if realchown or is_link:
        try:
            os.lchown(tmp, st.st_uid, st.st_gid)
        except OSError:
            pass
    if not is_link:
        now = os.lstat(tmp)
        ov = metadata.read_override(tmp)
        uid, gid, mode = shown
        if as_type or (ov is None and (now.st_uid, now.st_gid, now.st_mode) != (uid, gid, mode)):
            metadata.write_override(tmp, metadata.Override(
                uid, gid, stat.S_IMODE(mode),
                stat.S_IFMT(mode) if as_type else None, st.st_rdev if as_type else 0))
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

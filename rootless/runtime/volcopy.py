"""Copy-up: the image's files at a volume's mount point copied into the volume when the
volume is empty (Docker does this for a new volume), with owners, modes and times.

Runs in pid 1, in the container's user and mount namespaces, before the volume is mounted:
there the image's owners are the ones fuse_overlay presents, and chown to them is allowed.
Being root of that namespace does not protect the user's files (they are root's there), and
the volume is shared: a second container that has it mounted can swap any directory we
make for a symlink to the user's home while we copy. So both sides are walked by directory
fd (rootless/linux/safepath.py): the image side from an fd opened with RESOLVE_IN_ROOT, the
volume side from an fd of the volume's directory, every name opened with O_NOFOLLOW and
every owner, mode and time set on an fd. A name found swapped is skipped.

Hand-written: shutil.copytree follows the names, not fds, and loses owners.
"""

from __future__ import annotations

import contextlib
import os
import stat

from rootless.linux import safepath
from rootless.linux import syscalls as sc

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_in(rootfd: int, path: str) -> int:
    return sc.openat2(rootfd, path.lstrip("/") or ".", os.O_RDONLY | os.O_DIRECTORY,
                      sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS)


def _meta_fd(fd: int, st: os.stat_result) -> None:
    with contextlib.suppress(OSError):  # an id outside the maps: keep the user's
        os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))  # after chown, which clears setuid bits
    with contextlib.suppress(OSError):
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _meta_link(dirfd: int, name: str, st: os.stat_result) -> None:
    # fchownat/utimensat with AT_SYMLINK_NOFOLLOW on a name of a held directory: if the
    # name is swapped, the swapped-in symlink itself is changed, nothing it points to
    with contextlib.suppress(OSError):
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dirfd, follow_symlinks=False)
    with contextlib.suppress(OSError):
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dirfd,
                 follow_symlinks=False)


def copy_up(rootfd: int, target: str, volume_dir: str) -> bool:
    """Copy the image's `target` into `volume_dir` if the volume is empty and the target
    is a non-empty directory. Returns whether anything was copied."""
    try:
        src = _open_in(rootfd, target)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        # the volume's own directory is the store's, not the container's: opened by path
        dst = os.open(volume_dir, safepath.DIR_FLAGS)
        try:
            if os.listdir(dst) or not os.listdir(src):
                return False
            _copy_dir(src, dst)
            _meta_fd(dst, os.fstat(src))
            return True
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_dir(src: int, dst: int) -> None:
    """Copy the entries of directory fd `src` into directory fd `dst`; each directory's
    own metadata is set after its content (its mode may forbid writing into it)."""
    for name, st in safepath.entries(src):
        if stat.S_ISDIR(st.st_mode):
            try:
                sfd = safepath.open_dir(src, name)
            except OSError:
                continue
            try:
                try:
                    os.mkdir(name, 0o700, dir_fd=dst)
                except FileExistsError:  # another container copies into it too
                    pass
                try:
                    dfd = safepath.open_dir(dst, name)
                except safepath.Escape:  # swapped for a symlink: not ours to write
                    continue
                try:
                    _copy_dir(sfd, dfd)
                    _meta_fd(dfd, os.fstat(sfd))
                finally:
                    os.close(dfd)
            finally:
                os.close(sfd)
        elif stat.S_ISLNK(st.st_mode):
            try:
                os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
            except FileExistsError:  # two containers copying into one new volume
                continue
            _meta_link(dst, name, st)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(src, dst, name)
        elif stat.S_ISFIFO(st.st_mode):
            try:
                os.mkfifo(name, 0o600, dir_fd=dst)
                fd = os.open(name, safepath.READ_FLAGS, dir_fd=dst)
            except OSError:
                continue
            try:
                if stat.S_ISFIFO(os.fstat(fd).st_mode):
                    _meta_fd(fd, st)
            finally:
                os.close(fd)
        # devices and sockets cannot be made rootless; skip them


def _copy_file(src: int, dst: int, name: str) -> None:
    opened = safepath.open_regular(src, name)
    if opened is None:
        return
    fin, st = opened
    try:
        try:
            fout = os.open(name, _NEW_FILE, 0o600, dir_fd=dst)
        except FileExistsError:  # two containers copying into one new volume
            return
        try:
            while chunk := os.read(fin, 1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fout, view):]
            _meta_fd(fout, st)
        finally:
            os.close(fout)
    finally:
        os.close(fin)

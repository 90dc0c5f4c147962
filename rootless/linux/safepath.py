"""Walking trees a container can write, from the host, without following its symlinks.

A container's upper dir, its volumes and its bind-mounted directories change while the
host looks at them: a directory checked with lstat can be a symlink to the user's ~/.ssh
a microsecond later. So the host side never acts on a path string that crosses such a
tree. It holds a directory fd and goes one component at a time: openat with O_NOFOLLOW for
one name, openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS for a
relative path, and then acts on fds (fchmod, fchown, futimens, fsetxattr) or on a name
relative to a held directory fd (mkdirat, unlinkat, renameat, linkat, symlinkat). A symlink
met on the way is an error (ELOOP or ENOTDIR), never a way out.

The only place a path is used is /proc/self/fd/N of an O_PATH fd this process opened with
O_NOFOLLOW: it names exactly that inode (the kernel's magic link), which is how a mode is
set on an inode that cannot be opened for reading (a directory of mode 0) without following
anything.

Hand-written: no library on PyPI or Debian offers openat2 or an fd-based walk with these
rules (os.fwalk is close but hands out path strings and follows nothing we can act on).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator

from rootless.linux import syscalls as sc

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a name swapped for a fifo must not hang the reader
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
RESOLVE_SAFE = sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS
# errnos that mean "a symlink or a non-directory where a directory was expected"
SWAPPED = (errno.ELOOP, errno.ENOTDIR, errno.EXDEV)


class Escape(OSError):
    """A path below a held directory crossed a symlink (or left the tree)."""


def open_beneath(dirfd: int, rel: str, flags: int, mode: int = 0) -> int:
    """Open `rel` below `dirfd`, refusing every symlink and any `..` above it.

    openat2 where the kernel has it (5.6+); otherwise one O_NOFOLLOW openat per component.
    Raises Escape (errno ELOOP/EXDEV/ENOTDIR) when a component is a symlink."""
    rel = rel.strip("/") or "."
    try:
        return sc.openat2(dirfd, rel, flags, RESOLVE_SAFE, mode)
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            return _open_by_components(dirfd, rel, flags, mode)
        if exc.errno in SWAPPED:
            raise Escape(exc.errno, f"{rel}: a symbolic link or a non-directory is in "
                         "the way", rel) from None
        raise


def _open_by_components(dirfd: int, rel: str, flags: int, mode: int) -> int:
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Escape(errno.EXDEV, f"{rel}: '..' is not allowed", rel)
    cur = os.dup(dirfd)
    try:
        for part in parts[:-1]:
            nxt = open_dir(cur, part)
            os.close(cur)
            cur = nxt
        if not parts:
            return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=cur)
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=cur)
    finally:
        os.close(cur)


def open_dir(dirfd: int, name: str) -> int:
    """The directory `name` in `dirfd`; Escape if it is a symlink or not a directory."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dirfd)
    except OSError as exc:
        if exc.errno in SWAPPED:
            raise Escape(exc.errno, f"{name}: not a directory (a symbolic link?)",
                         name) from None
        raise


def open_regular(dirfd: int, name: str) -> tuple[int, os.stat_result] | None:
    """(fd, fstat) of the regular file `name` in `dirfd` opened for reading; None when the
    name is no longer a regular file (swapped for a symlink, fifo, directory ...)."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dirfd)
    except OSError as exc:
        if exc.errno in (*SWAPPED, errno.ENOENT, errno.EISDIR, errno.ENXIO):
            return None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return fd, st


def makedirs_beneath(dirfd: int, parts: list[str], mode: int = 0o755) -> int:
    """The directory `parts` below `dirfd`, made where missing, as a new fd; Escape when a
    component is a symlink or a file."""
    cur = os.dup(dirfd)
    try:
        for part in parts:
            if part in ("", ".", "..") or "/" in part:
                raise Escape(errno.EXDEV, f"{part!r}: not a plain name", part)
            try:
                os.mkdir(part, mode, dir_fd=cur)
            except FileExistsError:
                pass
            nxt = open_dir(cur, part)
            os.close(cur)
            cur = nxt
        result, cur = cur, -1
        return result
    finally:
        if cur >= 0:
            os.close(cur)


def lstat_at(dirfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def chmod_at(dirfd: int, name: str, mode: int) -> bool:
    """Set the mode of `name` in `dirfd` unless it is a symlink (then nothing; False).
    Works on directories that cannot be opened for reading (mode 0)."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            return False
        os.chmod(fd_path(fd), mode)  # the magic link of our own O_PATH fd: that inode
        return True
    finally:
        os.close(fd)


# Writing into a tree a container can write: the name is made new by the *at call itself
# (mkdirat, O_CREAT|O_EXCL|O_NOFOLLOW, symlinkat), so what a container planted there is
# removed and never followed. It can plant it again between our removal and our create:
# we try this often, then refuse (a loop in the container could otherwise hold us forever).
_REPLACE_TRIES = 8


def _unreplaceable(name: str) -> Escape:
    return Escape(errno.EEXIST, f"{name}: what is there could not be replaced (it cannot "
                  "be removed, or something keeps putting it back)", name)


def ensure_dir_at(dirfd: int, name: str, mode: int = 0o700) -> int:
    """The directory `name` of `dirfd` as a new fd, made when missing. An existing
    directory is kept (the caller merges into it); anything else at the name (a file, a
    symlink, planted a moment ago) is removed first, never followed."""
    for _ in range(_REPLACE_TRIES):
        try:
            os.mkdir(name, mode, dir_fd=dirfd)
        except FileExistsError:
            pass
        try:
            return open_dir(dirfd, name)
        except Escape:
            rmtree_at(dirfd, name)
        except FileNotFoundError:  # removed between the mkdir and the open
            pass
        except PermissionError:  # ours but not readable (an earlier output's mode 0311)
            chmod_at(dirfd, name, 0o700)  # on that inode, never through a symlink
    raise _unreplaceable(name)


def create_at(dirfd: int, name: str, mode: int = 0o600) -> int:
    """A new regular file `name` of `dirfd`, open for writing (O_CREAT | O_EXCL |
    O_NOFOLLOW: the open itself makes the inode, a planted symlink is EEXIST, not a way
    out). Whatever held the name (a file, a directory tree, a symlink) is removed first."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(_REPLACE_TRIES):
        try:
            return os.open(name, flags, mode, dir_fd=dirfd)
        except FileExistsError:
            rmtree_at(dirfd, name)
    raise _unreplaceable(name)


def symlink_at(dirfd: int, target: str, name: str) -> None:
    """The symlink `name` -> `target` in `dirfd`, replacing whatever held the name."""
    for _ in range(_REPLACE_TRIES):
        try:
            os.symlink(target, name, dir_fd=dirfd)
            return
        except FileExistsError:
            rmtree_at(dirfd, name)
    raise _unreplaceable(name)


def listdir_sorted(dirfd: int) -> list[str]:
    return sorted(os.listdir(dirfd))


def entries(dirfd: int) -> Iterator[tuple[str, os.stat_result]]:
    """(name, lstat) of each entry of `dirfd`, sorted by name; entries gone meanwhile are
    left out."""
    for name in listdir_sorted(dirfd):
        st = lstat_at(dirfd, name)
        if st is not None:
            yield name, st


def rmtree(path: str) -> None:
    """Remove `path` (a tree a container wrote) as far as the caller may, fd by fd.

    A directory that refuses an unlink is made writable (0700) through the fd held for it,
    and one that cannot be opened is made readable through an O_PATH fd of its own: never
    a chmod by path, so a planted symlink is removed, never followed. What stays (files of
    other owners) is left for a second pass inside the user namespace."""
    parent, name = os.path.split(os.path.abspath(path))
    try:
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        rmtree_at(pfd, name)
    finally:
        os.close(pfd)


def rmtree_at(dirfd: int, name: str) -> None:
    """Remove the entry `name` of `dirfd` and everything below it; errors are ignored."""
    st = lstat_at(dirfd, name)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        try:
            fd = open_dir(dirfd, name)
        except PermissionError:
            try:
                chmod_at(dirfd, name, 0o700)
                fd = open_dir(dirfd, name)
            except OSError:
                return
        except Escape:  # swapped for something else meanwhile: remove that
            _unlink(dirfd, name)
            return
        except OSError:
            return
        try:
            try:
                names = os.listdir(fd)
            except OSError:
                names = []
            for child in names:
                rmtree_at(fd, child)
        finally:
            os.close(fd)
        try:
            os.rmdir(name, dir_fd=dirfd)
        except PermissionError:
            _writable(dirfd)
            try:
                os.rmdir(name, dir_fd=dirfd)
            except OSError:
                pass
        except OSError:
            pass
        return
    _unlink(dirfd, name)


def _unlink(dirfd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dirfd)
    except PermissionError:
        _writable(dirfd)
        try:
            os.unlink(name, dir_fd=dirfd)
        except OSError:
            pass
    except OSError:
        pass


def _writable(dirfd: int) -> None:
    try:
        os.fchmod(dirfd, 0o700)
    except OSError:
        pass


def tree_size(path) -> int:
    """Bytes of the regular files below `path`, a tree a container writes: walked by
    directory fd with os.fwalk, which opens each directory relative to its parent's fd,
    never follows a symlink and checks that what it opened is what it listed; what this
    user cannot read (a subordinate uid's 0700 directory) is not counted."""
    total = 0
    try:
        for _dirpath, _dirs, files, dfd in os.fwalk(path, follow_symlinks=False):
            for name in files:
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except OSError:
                    continue
                total += st.st_size
    except OSError:
        pass
    return total

"""A directory as a layer tar: the reverse of rootless/store/unpack.py.

Used for a store layer whose compressed blob we do not hold (shared by diff_id with another
image), for a container's upper dir (RUN in `rl build`, `rl commit`) and for `rl export`.

Ownership, modes and special file types come from the xattr of fuse_overlay/metadata.py
(user.containers.override_stat) when present, else from lstat — which, for an upper dir
written by fuse-overlayfs with real chown, is right only when read from inside the user
namespace (`in_userns=True`: ids as the container saw them, and files of subordinate ids
readable). Whiteouts: `.wh.NAME` entries stay as they are; a 0/0 character device (the
kernel overlayfs form) becomes `.wh.NAME`; a directory marked opaque by xattr gets a
`.wh..wh..opq` entry. Our own `user.containers.override_<name>` xattrs go back to
`<name>` as PAX SCHILY.xattr records; other `user.*` xattrs are kept.

Entries are sorted and, with `mtime` given, every timestamp is clamped to it, so the same
tree gives the same tar (reproducible layer digests). The tar walk is hand written because
tarfile.add() knows nothing of the override xattr and follows paths, not fds: the trees
read here are written by containers, often while we read them (rootless/linux/safepath.py).
"""

from __future__ import annotations

import os
import stat
import tarfile

from fuse_overlay.metadata import (
    OPAQUE_MARKER,
    OPAQUE_XATTRS,
    OVERRIDE_XATTR,
    WHITEOUT_PREFIX,
    Override,
)
from rootless.linux import safepath

XATTR_OVERRIDE_PREFIX = "user.containers.override_"
EXTRA_OPAQUE = ("user.fuseoverlayfs.opaque",)
# fuse-overlayfs marks an opaque directory with this file when it cannot set xattrs
FUSE_OVERLAYFS_OPAQUE = ".wh..opq"
_MARKERS = (OPAQUE_MARKER, FUSE_OVERLAYFS_OPAQUE)
_SKIP_XATTRS = {OVERRIDE_XATTR, *OPAQUE_XATTRS, *EXTRA_OPAQUE}


def _xattrs(fd: int | None, dirfd: int, name: str) -> dict[str, bytes]:
    """The xattrs of an entry: through its own fd when we hold one, else (fifos, devices)
    through the name in its held directory without following it."""
    target = fd if fd is not None else f"{safepath.fd_path(dirfd)}/{name}"
    follow = fd is not None
    out: dict[str, bytes] = {}
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError:
        return out
    for attr in names:
        try:
            out[attr] = os.getxattr(target, attr, follow_symlinks=follow)
        except OSError:
            continue
    return out


def _is_opaque(attrs: dict[str, bytes]) -> bool:
    return any(attrs.get(n) == b"y" for n in (*OPAQUE_XATTRS, *EXTRA_OPAQUE))


def _pax_xattrs(attrs: dict[str, bytes]) -> dict[str, str]:
    out = {}
    for name, value in attrs.items():
        if name in _SKIP_XATTRS or name.startswith(("trusted.", "user.fuseoverlayfs.",
                                                     "user.overlay.")) or (
                name.startswith("security.") and name != "security.capability"):
            continue
        if name.startswith(XATTR_OVERRIDE_PREFIX):
            name = name[len(XATTR_OVERRIDE_PREFIX):]
        out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


# Mount points the runtime creates in a container's root when the image lacks them: left
# out of layers while still empty (Docker and buildah leave them out too).
MOUNT_POINTS = {"proc": stat.S_IFDIR, "sys": stat.S_IFDIR, "dev": stat.S_IFDIR,
                "etc/hosts": stat.S_IFREG, "etc/hostname": stat.S_IFREG,
                "etc/resolv.conf": stat.S_IFREG}


def _is_empty(dirfd: int, name: str, kind: int) -> bool:
    st = safepath.lstat_at(dirfd, name)
    if st is None or stat.S_IFMT(st.st_mode) != kind:
        return False
    if kind == stat.S_IFDIR:
        try:
            fd = safepath.open_dir(dirfd, name)
        except OSError:
            return False
        try:
            return not [n for n in os.listdir(fd) if n not in _MARKERS]
        finally:
            os.close(fd)
    return st.st_size == 0


def write_tar(root: str, fileobj, *, mtime: int | None = None, include_root: bool = False,
              skip: tuple[str, ...] = (), upper: bool = False, plain: bool = False) -> None:
    """Write the tree under `root` as an uncompressed PAX tar to `fileobj`.

    `root` itself is opened by path (it is the caller's: a store layer, a container's upper
    dir, a volume's directory); everything below it by fd, never following a symlink, so a
    container changing the tree meanwhile cannot make us read outside it (module
    rootless/linux/safepath.py). `plain`: the files as they are (a volume): owners and
    modes from lstat, no override xattr, no whiteout forms, no xattrs.
    `skip`: top-level names to leave out (the bind-mount targets a container dir holds
    for /etc/hosts and friends are not in the upper dir, so usually nothing)."""
    root_fd = os.open(root, safepath.DIR_FLAGS)
    tf = tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT)
    walk = _Walk(tf, mtime, MOUNT_POINTS if upper else {}, plain)
    try:
        if include_root:
            walk.add_root(root_fd, "./")
        walk.tree(root_fd, "", skip)
    finally:
        tf.close()
        os.close(root_fd)


def add_entry(tf, path: str, name: str, mtime=None, inodes=None, *,
              owner: tuple[int, int] | None = None, chmod: int | None = None) -> bool:
    """Add one entry (a path of the user's: a build context file); True when it is a
    directory to descend into. `owner`/`chmod` replace what the file says (COPY
    --chown/--chmod, and context files, owned by root)."""
    walk = _Walk(tf, mtime, {}, False, inodes, owner=owner, chmod=chmod)
    parent, base = os.path.split(os.path.abspath(path))
    pfd = os.open(parent or "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = walk.entry(pfd, base, name)
    finally:
        os.close(pfd)
    if fd is None:
        return False
    os.close(fd)
    return True


def write_tree(tf, parent_fd: int, base: str, arcname: str, *,
               owner: tuple[int, int] | None = None) -> bool:
    """Add the entry `base` of directory fd `parent_fd` as `arcname`, and everything below
    it, plain (see write_tar), by fd. False when `base` does not exist."""
    walk = _Walk(tf, None, {}, True, owner=owner)
    fd = walk.entry(parent_fd, base, arcname)
    if fd is not None:
        try:
            walk.tree(fd, arcname)
        finally:
            os.close(fd)
    return walk.added > 0


class _PaddedReader:
    """The first `size` bytes of fd, zero-padded if the file shrank while we read it (a
    running container may truncate it): the tar header already promised `size` bytes."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.left = fd, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = os.read(self.fd, n) if n else b""
        if n and not data:
            data = bytes(n)
        self.left -= len(data)
        return data


class _Walk:
    """One tar of a tree, entry by entry through directory fds."""

    def __init__(self, tf, mtime, exclude: dict[str, int], plain: bool,
                 inodes: dict | None = None, *, owner: tuple[int, int] | None = None,
                 chmod: int | None = None) -> None:
        self.tf, self.mtime, self.exclude, self.plain = tf, mtime, exclude, plain
        self.inodes = {} if inodes is None else inodes
        self.owner, self.chmod = owner, chmod
        self.added = 0

    def tree(self, dirfd: int, rel: str, skip: tuple[str, ...] = ()) -> None:
        try:
            names = safepath.listdir_sorted(dirfd)
        except OSError:
            return
        for name in names:
            if (not rel and name in skip) or (name == FUSE_OVERLAYFS_OPAQUE
                                               and not self.plain):
                continue
            child_rel = f"{rel}/{name}" if rel else name
            kind = self.exclude.get(child_rel)
            if kind and _is_empty(dirfd, name, kind):
                continue
            fd = self.entry(dirfd, name, child_rel)
            if fd is not None:
                try:
                    self.tree(fd, child_rel)
                finally:
                    os.close(fd)

    def add_root(self, root_fd: int, name: str) -> None:
        fd = os.dup(root_fd)
        self._add(fd, root_fd, ".", name, os.fstat(fd))
        os.close(fd)

    def entry(self, dirfd: int, base: str, name: str) -> int | None:
        """Add `base` of `dirfd` as `name`; returns an fd of it when it is a directory to
        descend into (the caller closes it), else None. A name that changed kind while we
        looked is left out, never followed."""
        st = safepath.lstat_at(dirfd, base)
        if st is None:
            return None
        fd = None
        if stat.S_ISDIR(st.st_mode):
            try:
                fd = safepath.open_dir(dirfd, base)
            except (safepath.Escape, FileNotFoundError):
                return None
            st = os.fstat(fd)
        elif stat.S_ISREG(st.st_mode):
            opened = safepath.open_regular(dirfd, base)
            if opened is None:
                return None
            fd, st = opened
        try:
            is_dir = self._add(fd, dirfd, base, name, st)
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        if is_dir:
            return fd
        if fd is not None:
            os.close(fd)
        return None

    def _add(self, fd: int | None, dirfd: int, base: str, name: str,
             st: os.stat_result) -> bool:
        tf = self.tf
        self.added += 1
        attrs = {} if self.plain or stat.S_ISLNK(st.st_mode) else _xattrs(fd, dirfd, base)
        ov = None
        if OVERRIDE_XATTR in attrs:
            try:
                ov = Override.decode(attrs[OVERRIDE_XATTR])
            except ValueError:
                ov = None
        mtime = self.mtime
        info = tarfile.TarInfo(name)
        info.mtime = min(int(st.st_mtime), mtime) if mtime is not None else int(st.st_mtime)
        info.uid, info.gid = (ov.uid, ov.gid) if ov else (st.st_uid, st.st_gid)
        info.uname = info.gname = ""
        info.mode = ov.mode if ov else stat.S_IMODE(st.st_mode)
        if self.owner is not None:
            info.uid, info.gid = self.owner
        if self.chmod is not None:
            info.mode = self.chmod
        ftype = ov.ftype if ov and ov.ftype is not None else stat.S_IFMT(st.st_mode)
        rdev = ov.rdev if ov and ov.ftype is not None else st.st_rdev
        leaf = os.path.basename(name.rstrip("/"))
        if ftype == stat.S_IFCHR and rdev == 0 and not leaf.startswith(WHITEOUT_PREFIX) \
                and not self.plain:
            # kernel overlayfs whiteout: the OCI form is an empty `.wh.NAME`
            parent = os.path.dirname(name)
            info.name = f"{parent}/{WHITEOUT_PREFIX}{leaf}" if parent else WHITEOUT_PREFIX + leaf
            info.type, info.mode, info.uid, info.gid = tarfile.REGTYPE, 0o644, 0, 0
            tf.addfile(info)
            return False
        info.pax_headers = _pax_xattrs(attrs)
        if ftype == stat.S_IFDIR:
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
            if not self.plain and fd is not None and (
                    _is_opaque(attrs)
                    or safepath.lstat_at(fd, FUSE_OVERLAYFS_OPAQUE) is not None
                    ) and safepath.lstat_at(fd, OPAQUE_MARKER) is None:
                marker = tarfile.TarInfo(OPAQUE_MARKER if name == "./" else
                                         f"{name}/{OPAQUE_MARKER}")
                marker.mtime = info.mtime
                tf.addfile(marker)
            return True
        if ftype == stat.S_IFLNK:
            try:
                target = os.readlink(base, dir_fd=dirfd)
            except OSError:  # no longer a symlink
                self.added -= 1
                return False
            info.type, info.linkname = tarfile.SYMTYPE, target
            info.mode = 0o777
            tf.addfile(info)
            return False
        if ftype in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            info.type = {stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
                         stat.S_IFIFO: tarfile.FIFOTYPE}[ftype]
            info.devmajor, info.devminor = os.major(rdev), os.minor(rdev)
            tf.addfile(info)
            return False
        if ftype == stat.S_IFSOCK or fd is None:
            self.added -= 1
            return False  # sockets are not content
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.inodes:
            info.type, info.linkname = tarfile.LNKTYPE, self.inodes[key]
            tf.addfile(info)
            return False
        self.inodes[key] = name
        info.type, info.size = tarfile.REGTYPE, st.st_size
        tf.addfile(info, _PaddedReader(fd, st.st_size))
        return False


def write_tar_file(root: str, dest: str, *, in_userns: bool = False, mtime: int | None = None,
                   include_root: bool = False, upper: bool = False) -> None:
    """write_tar into the file `dest` (created 0600), from inside the user namespace when
    `in_userns` (see the module docstring)."""
    def work() -> int:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            write_tar(root, f, mtime=mtime, include_root=include_root, upper=upper)
        return 0

    if not in_userns:
        work()
        return
    from rootless.errors import RlError
    from rootless.runtime import userns

    try:
        code = userns.run_in_userns(work, mount_ns=False)
    except userns.ChildFailed as exc:
        raise RlError(f"could not write a tar of {root}: {exc.message}") from None
    if code != 0:
        raise RlError(f"could not write a tar of {root} (exit {code})")

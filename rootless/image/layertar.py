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
tarfile.add() knows nothing of the override xattr.
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

XATTR_OVERRIDE_PREFIX = "user.containers.override_"
EXTRA_OPAQUE = ("user.fuseoverlayfs.opaque",)
# fuse-overlayfs marks an opaque directory with this file when it cannot set xattrs
FUSE_OVERLAYFS_OPAQUE = ".wh..opq"
_MARKERS = (OPAQUE_MARKER, FUSE_OVERLAYFS_OPAQUE)
_SKIP_XATTRS = {OVERRIDE_XATTR, *OPAQUE_XATTRS, *EXTRA_OPAQUE}


def _xattrs(path: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in names:
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
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
_EXCLUDE: dict[str, int] = {}
MOUNT_POINTS = {"proc": stat.S_IFDIR, "sys": stat.S_IFDIR, "dev": stat.S_IFDIR,
                "etc/hosts": stat.S_IFREG, "etc/hostname": stat.S_IFREG,
                "etc/resolv.conf": stat.S_IFREG}


def _is_empty(path: str, kind: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if stat.S_IFMT(st.st_mode) != kind:
        return False
    if kind == stat.S_IFDIR:
        try:
            return not [n for n in os.listdir(path) if n not in _MARKERS]
        except OSError:
            return False
    return st.st_size == 0


def write_tar(root: str, fileobj, *, mtime: int | None = None, include_root: bool = False,
              skip: tuple[str, ...] = (), upper: bool = False) -> None:
    """Write the tree under `root` as an uncompressed PAX tar to `fileobj`.

    `skip`: top-level names to leave out (the bind-mount targets a container dir holds
    for /etc/hosts and friends are not in the upper dir, so usually nothing)."""
    global _EXCLUDE
    _EXCLUDE = MOUNT_POINTS if upper else {}
    tf = tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT)
    inodes: dict[tuple[int, int], str] = {}
    try:
        if include_root:
            add_entry(tf, root, "./", mtime, inodes)
        _walk(tf, root, "", mtime, inodes, skip)
    finally:
        tf.close()


def _walk(tf, root: str, rel: str, mtime, inodes, skip=()) -> None:
    path = os.path.join(root, rel) if rel else root
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return
    for name in names:
        if (not rel and name in skip) or name == FUSE_OVERLAYFS_OPAQUE:
            continue
        child_rel = f"{rel}/{name}" if rel else name
        child = os.path.join(root, child_rel)
        if _EXCLUDE.get(child_rel) and _is_empty(child, _EXCLUDE[child_rel]):
            continue
        is_dir = add_entry(tf, child, child_rel, mtime, inodes)
        if is_dir:
            _walk(tf, root, child_rel, mtime, inodes)


def add_entry(tf, path: str, name: str, mtime=None, inodes=None, *,
              owner: tuple[int, int] | None = None, chmod: int | None = None) -> bool:
    """Add one entry; True when it is a directory to descend into. `owner`/`chmod`
    replace what the file says (COPY --chown/--chmod, and context files, owned by root)."""
    inodes = {} if inodes is None else inodes
    st = os.lstat(path)
    attrs = {} if stat.S_ISLNK(st.st_mode) else _xattrs(path)
    ov = None
    if OVERRIDE_XATTR in attrs:
        try:
            ov = Override.decode(attrs[OVERRIDE_XATTR])
        except ValueError:
            ov = None
    info = tarfile.TarInfo(name)
    info.mtime = min(int(st.st_mtime), mtime) if mtime is not None else int(st.st_mtime)
    info.uid, info.gid = (ov.uid, ov.gid) if ov else (st.st_uid, st.st_gid)
    info.uname = info.gname = ""
    info.mode = ov.mode if ov else stat.S_IMODE(st.st_mode)
    if owner is not None:
        info.uid, info.gid = owner
    if chmod is not None:
        info.mode = chmod
    ftype = ov.ftype if ov and ov.ftype is not None else stat.S_IFMT(st.st_mode)
    rdev = ov.rdev if ov and ov.ftype is not None else st.st_rdev
    base = os.path.basename(name.rstrip("/"))
    if ftype == stat.S_IFCHR and rdev == 0 and not base.startswith(WHITEOUT_PREFIX):
        # kernel overlayfs whiteout: the OCI form is an empty `.wh.NAME`
        parent = os.path.dirname(name)
        info.name = f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base
        info.type, info.mode, info.uid, info.gid = tarfile.REGTYPE, 0o644, 0, 0
        tf.addfile(info)
        return False
    info.pax_headers = _pax_xattrs(attrs)
    if ftype == stat.S_IFDIR:
        info.type = tarfile.DIRTYPE
        tf.addfile(info)
        if (_is_opaque(attrs) or os.path.lexists(os.path.join(path, FUSE_OVERLAYFS_OPAQUE))
                ) and not os.path.lexists(os.path.join(path, OPAQUE_MARKER)):
            marker = tarfile.TarInfo(OPAQUE_MARKER if name == "./" else
                                     f"{name}/{OPAQUE_MARKER}")
            marker.mtime = info.mtime
            tf.addfile(marker)
        return True
    if ftype == stat.S_IFLNK:
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
        info.mode = 0o777
        tf.addfile(info)
        return False
    if ftype in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
        info.type = {stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
                     stat.S_IFIFO: tarfile.FIFOTYPE}[ftype]
        info.devmajor, info.devminor = os.major(rdev), os.minor(rdev)
        tf.addfile(info)
        return False
    if ftype == stat.S_IFSOCK:
        return False  # sockets are not content
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and key in inodes:
        info.type, info.linkname = tarfile.LNKTYPE, inodes[key]
        tf.addfile(info)
        return False
    inodes[key] = name
    info.type, info.size = tarfile.REGTYPE, st.st_size
    with open(path, "rb") as f:
        tf.addfile(info, f)
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

    code = userns.run_in_userns(work, mount_ns=False)
    if code != 0:
        raise RlError(f"could not write a tar of {root} (exit {code})")

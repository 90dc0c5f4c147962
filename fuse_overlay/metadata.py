"""The on-disk format for ownership, modes and special files that the disk cannot hold.

This module is the contract between whoever writes layers (rl's store unpacking an image
as a plain user, or fuse_overlay itself writing the upper dir) and fuse_overlay reading
them. It imports nothing heavy, so the store may use it without loading pyfuse3.

Ownership and mode: the xattr `user.containers.override_stat`, the same one
containers/storage writes and fuse-overlayfs reads, so layers are interchangeable:

    "<uid>:<gid>:<mode>[:<type>]"      e.g. "1000:1000:0640", "0:0:0755:dir"

- uid, gid: decimal, as seen inside the container.
- mode: octal permission bits including setuid/setgid/sticky (mask 07777). Setuid and
  setgid of a non-directory live here only: neither the store nor fuse_overlay puts them on
  the host file, so a layer or upper dir holds no setuid file of the user's.
- type (optional): file, dir, symlink, pipe, socket, char-MAJ-MIN, block-MAJ-MIN. When
  present it overrides the file type on disk: device nodes, fifos and sockets from an image
  are stored as empty regular files (a plain user cannot mknod) and presented as what they are.

A file without the xattr is presented with its on-disk owner and mode as the mounting
process sees them. fuse_overlay is mounted inside the container's user namespace, where the
user who owns the layers is uid 0: with a single id mapping every file the user wrote shows
as 0:0 (ids that are not mapped show as the overflow id 65534); with a full subuid mapping a
file really chowned to a mapped id shows as that id. When the xattr is present it wins, always.
User xattrs cannot be set on symlinks on Linux: a symlink shows its on-disk owner (0:0 for the
user's own) and mode 0777, and chown of a symlink is done on disk when the id is mapped and
otherwise silently ignored.

chown and chmod inside the mount are recorded in the xattr of the upper copy (so they work
with a single id mapping); a file created by a non-zero uid gets the xattr too. With the mount
option `realchown` fuse_overlay also changes the on-disk owner when the id is mapped; the
xattr stays authoritative. Copy-up keeps what a file showed: when the upper copy would show a
different owner or mode than the lower file did, the xattr is written on the copy.

Other xattrs: a file's xattrs outside `user.*` (security.capability, trusted.*, ...) that a
plain user cannot set are stored as `user.containers.override_<name>` (the store does so when
it unpacks a layer; fuse_overlay when setting the real name is refused) and shown through the
mount under <name>; the prefixed names themselves are not visible.

Whiteouts: a lower or upper layer hides NAME of the layers below with either
- an entry `.wh.NAME` (any type; the OCI image-spec form, which the store keeps as is), or
- a character device 0/0 named NAME (the kernel overlayfs form).
A directory is opaque (hides everything below it) when it holds an entry `.wh..wh..opq`,
or carries the xattr `user.overlay.opaque` or `trusted.overlay.opaque` with value "y".
fuse_overlay writes the `.wh.` forms in the upper dir, since a plain user cannot create
0/0 device nodes outside a user namespace it owns: unlink/rmdir/rename-away of a name that a
lower layer holds creates an empty regular file `.wh.NAME` beside it; a directory created
where a lower layer had the name (or a directory renamed into place) gets an empty file
`.wh..wh..opq` inside. Kernel overlayfs writes the other forms (char 0/0 at NAME, the opaque
xattr); both read either. A whiteout hides NAME in the layers below its own only: an entry
NAME beside `.wh.NAME` in one layer is shown (the OCI rule), with nothing of the layers below
merged into it. Crash safety rests on that order: fuse_overlay writes the whiteout before
it removes or renames away the upper NAME, removes an upper directory by renaming it into
the workdir (not by emptying it in place), and before emptying an upper directory that a
rename replaces it marks it opaque with `user.overlay.opaque`; so a crash at any point shows
the old state or the new one, never a deleted lower file again.

Names starting with `.wh.` are not visible in the mount and cannot be created through it
(EPERM). xattrs `user.overlay.*`, `trusted.overlay.*` and the override
xattr are not visible through the mount.

Inode numbers: the number a file shows is derived from the (device, inode) of its first
incarnation: the lower file, or the upper file when it was created in the upper dir. A copy
in the upper dir is a new inode, so copy-up records the number the file showed in the xattr
`user.overlay.fuse_ino` (decimal ASCII) on the copy, and an upper file carrying it shows
that number again after a remount, as kernel overlayfs does with its origin xattr. Only the
upper dir's xattr is read (a layer made from an old upper dir may carry stale ones). Symlinks
cannot carry user xattrs: a copied-up symlink shows a new number after a remount.
"""

from __future__ import annotations

import os
import stat
from collections import namedtuple

OVERRIDE_XATTR = "user.containers.override_stat"
XATTR_OVERRIDE_PREFIX = "user.containers.override_"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTRS = ("user.overlay.opaque", "trusted.overlay.opaque")
ORIGIN_INO_XATTR = "user.overlay.fuse_ino"

_TYPES = {
    "file": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "pipe": stat.S_IFIFO,
    "socket": stat.S_IFSOCK,
    "char": stat.S_IFCHR,
    "block": stat.S_IFBLK,
}
_NAMES = {v: k for k, v in _TYPES.items()}


class Override(namedtuple("Override", "uid gid mode ftype rdev", defaults=(None, 0))):
    """uid, gid, mode (permission bits only, 07777), ftype (an S_IF* value, or None to keep
    the on-disk type), rdev. A named tuple rather than a frozen dataclass: `dataclasses`
    (with inspect and ast) was most of what a process forking fuse servers imported."""

    __slots__ = ()

    def encode(self) -> bytes:
        text = f"{self.uid}:{self.gid}:{self.mode & 0o7777:04o}"
        if self.ftype is not None:
            name = _NAMES[self.ftype]
            if self.ftype in (stat.S_IFCHR, stat.S_IFBLK):
                name += f"-{os.major(self.rdev)}-{os.minor(self.rdev)}"
            text += ":" + name
        return text.encode()

    @classmethod
    def decode(cls, raw: bytes) -> Override:
        """Parse an xattr value; raises ValueError when it is not of this format."""
        parts = raw.decode("ascii").strip().split(":")
        if len(parts) not in (3, 4):
            raise ValueError(f"bad override_stat value {raw!r}")
        uid, gid, mode = int(parts[0]), int(parts[1]), int(parts[2], 8)
        ftype, rdev = None, 0
        if len(parts) == 4:
            kind, _, devs = parts[3].partition("-")
            if kind not in _TYPES:
                raise ValueError(f"bad file type in override_stat value {raw!r}")
            ftype = _TYPES[kind]
            if kind in ("char", "block"):
                major, _, minor = devs.partition("-")
                rdev = os.makedev(int(major), int(minor))
        return cls(uid, gid, mode & 0o7777, ftype, rdev)


def read_override(path: str | int, *, follow_symlinks: bool = False) -> Override | None:
    """The override recorded on `path` (a path or an open fd), or None."""
    try:
        if isinstance(path, int):
            raw = os.getxattr(path, OVERRIDE_XATTR)
        else:
            raw = os.getxattr(path, OVERRIDE_XATTR, follow_symlinks=follow_symlinks)
    except OSError:
        return None
    try:
        return Override.decode(raw)
    except ValueError:
        return None


def write_override(path: str | int, override: Override) -> None:
    os.setxattr(path, OVERRIDE_XATTR, override.encode())


def is_whiteout_name(name: str) -> bool:
    return name.startswith(WHITEOUT_PREFIX) and name != OPAQUE_MARKER


def whiteout_target(name: str) -> str:
    """For `.wh.NAME`, the NAME it hides."""
    return name[len(WHITEOUT_PREFIX):]


INTERNAL_XATTRS = (b"user.overlay.", b"trusted.overlay.", XATTR_OVERRIDE_PREFIX.encode())


def is_internal_xattr(name: bytes) -> bool:
    """xattrs that carry the layer format and are hidden from the mount's users."""
    return name.startswith(INTERNAL_XATTRS)


def stored_xattr_name(name: bytes) -> bytes:
    """Where a non-`user.*` xattr is kept when the disk refuses its real name."""
    return XATTR_OVERRIDE_PREFIX.encode() + name


def shown_xattr_name(stored: bytes) -> bytes | None:
    """The name shown for a stored one, or None when it is not shown at all."""
    prefix = XATTR_OVERRIDE_PREFIX.encode()
    if stored.startswith(prefix):
        stored = stored[len(prefix):]
        if stored == b"stat" or stored.startswith(b"user."):
            return None
    elif is_internal_xattr(stored):
        return None
    if stored.startswith(b"trusted."):
        return None  # the kernel lets no process in a user namespace read them
    return stored


def is_whiteout_device(st: os.stat_result) -> bool:
    """The kernel overlayfs whiteout form: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque_dir(path: bytes | str) -> bool:
    """Whether the directory at `path` hides everything of the layers below it."""
    marker = os.path.join(path, OPAQUE_MARKER.encode() if isinstance(path, bytes) else OPAQUE_MARKER)
    if os.path.lexists(marker):
        return True
    for name in OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def read_origin_ino(path: bytes | int) -> int | None:
    """The inode number recorded on an upper copy (a path or an open fd) at copy-up, or
    None."""
    try:
        if isinstance(path, int):
            return int(os.getxattr(path, ORIGIN_INO_XATTR))
        return int(os.getxattr(path, ORIGIN_INO_XATTR, follow_symlinks=False))
    except (OSError, ValueError):
        return None


def write_origin_ino(path: bytes | int, ino: int) -> None:
    """Record `ino` on a copy, a path or an open fd (not possible on a symlink: then
    nothing is recorded)."""
    try:
        if isinstance(path, int):
            os.setxattr(path, ORIGIN_INO_XATTR, b"%d" % ino)
        else:
            os.setxattr(path, ORIGIN_INO_XATTR, b"%d" % ino, follow_symlinks=False)
    except OSError:
        pass

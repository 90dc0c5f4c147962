"""The on-disk format for ownership, modes and special files that the disk cannot hold.

This module is the contract between whoever writes layers (rl's store unpacking an image
as a plain user, or fuse_overlay itself writing the upper dir) and fuse_overlay reading
them. It imports nothing heavy, so the store may use it without loading pyfuse3.

Ownership and mode: the xattr `user.containers.override_stat`, the same one
containers/storage writes and fuse-overlayfs reads, so layers are interchangeable:

    "<uid>:<gid>:<mode>[:<type>]"      e.g. "1000:1000:0640", "0:0:0755:dir"

- uid, gid: decimal, as seen inside the container.
- mode: octal permission bits including setuid/setgid/sticky (mask 07777).
- type (optional): file, dir, symlink, pipe, socket, char-MAJ-MIN, block-MAJ-MIN. When
  present it overrides the file type on disk: device nodes, fifos and sockets from an image
  are stored as empty regular files (a plain user cannot mknod) and presented as what they are.

A file without the xattr is presented with uid 0, gid 0 (the on-disk owner is the user, who
is root in the container) and its on-disk mode. User xattrs cannot be set on symlinks on
Linux: symlinks are always presented as owned by 0:0, mode 0777.

Whiteouts: a lower or upper layer hides NAME of the layers below with either
- an entry `.wh.NAME` (any type; the OCI image-spec form, which the store keeps as is), or
- a character device 0/0 named NAME (the kernel overlayfs form).
A directory is opaque (hides everything below it) when it holds an entry `.wh..wh..opq`,
or carries the xattr `user.overlay.opaque` or `trusted.overlay.opaque` with value "y".
fuse_overlay writes the `.wh.` forms in the upper dir, since a plain user cannot create
0/0 device nodes outside a user namespace it owns.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

OVERRIDE_XATTR = "user.containers.override_stat"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTRS = ("user.overlay.opaque", "trusted.overlay.opaque")

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


@dataclass(frozen=True)
class Override:
    uid: int
    gid: int
    mode: int  # permission bits only (07777)
    ftype: int | None = None  # an S_IF* value, or None to keep the on-disk type
    rdev: int = 0

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

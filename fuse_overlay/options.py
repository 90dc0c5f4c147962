"""Mount options: parsing the fuse-overlayfs `-o a=b,c` syntax and checking the layers.

Cheap to import (no pyfuse3, no trio): the CLI validates before it forks or loads anything.
"""

from __future__ import annotations

import os


class MountError(ValueError):
    """A mount that cannot be done as asked; the message is one line for the user."""


# Options of fuse-overlayfs that fuse_overlay accepts and ignores (with a warning): they tune
# behaviour fuse_overlay either always has or does not offer.
IGNORED = frozenset({
    "fast_ino", "threaded", "fsync", "noacl", "static_nlink", "xattr_permissions",
    "redirect_dir", "index", "volatile", "noxattrs", "plugins", "timeout", "squash_to_root",
    "squash_to_uid", "squash_to_gid", "uidmapping", "gidmapping", "userxattr", "metacopy",
    "max_idle_threads", "clone_fd", "auto_unmount", "exec", "dev", "suid", "atime", "noatime",
    "relatime", "strictatime", "nodiratime", "rw", "sync", "async", "context", "fscontext",
    "defcontext", "rootcontext", "debug", "default_permissions",
})
# Mount flags handed to the kernel as they are.
PASSED = frozenset({"nosuid", "nodev", "noexec", "ro", "allow_other", "allow_root"})
# Options with a value that fuse_overlay itself uses.
VALUED = frozenset({"lowerdir", "upperdir", "workdir", "ready_fd", "writeback", "fsname",
                    "loop"})
# Flags of fuse_overlay itself.
# realchown: also chown on disk when the id is mapped (the xattr stays authoritative).
# squash_unmapped: show ids from the xattr that the mounting namespace does not map as 0
# (for a single id mapping, where such files would otherwise be read-only even for root).
OWN_FLAGS = frozenset({"realchown", "squash_unmapped"})


class MountOptions:
    """Parsed mount options. A plain class, not a dataclass: `dataclasses` (with inspect
    and ast) would be most of what a process that forks fuse servers imports."""

    _FIELDS = ("lowerdirs", "upperdir", "workdir", "ready_fd", "flags", "writeback",
               "fsname", "loop", "warnings")

    def __init__(self, lowerdirs: list[str], upperdir: str | None, workdir: str | None,
                 ready_fd: int | None = None, flags: set[str] | None = None,
                 writeback: bool = False, fsname: str = "fuse-overlay",
                 loop: str = "direct", warnings: list[str] | None = None) -> None:
        self.lowerdirs = lowerdirs
        self.upperdir = upperdir
        self.workdir = workdir
        self.ready_fd = ready_fd
        self.flags = set() if flags is None else flags  # PASSED and OWN_FLAGS present
        self.writeback = writeback
        self.fsname = fsname
        self.loop = loop  # what runs pyfuse3's main loop: direct (loop.py) or trio
        self.warnings = [] if warnings is None else warnings

    def _values(self) -> tuple:
        return tuple(getattr(self, f) for f in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MountOptions):
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._FIELDS)
        return f"MountOptions({inner})"


def split_options(text: str) -> list[str]:
    """`a=b,c` -> ["a=b", "c"]; a backslash escapes a comma inside a value."""
    out, cur, esc = [], [], False
    for ch in text:
        if esc:
            cur.append(ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == ",":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [o for o in out if o]


def parse(option_strings: list[str]) -> MountOptions:
    """Parse the `-o` strings of a command line into MountOptions (not yet checked)."""
    values: dict[str, str] = {}
    flags: set[str] = set()
    warnings: list[str] = []
    for text in option_strings:
        for opt in split_options(text):
            key, _eq, value = opt.partition("=")
            if key in VALUED:
                values[key] = value
            elif key in PASSED or key in OWN_FLAGS:
                flags.add(key)
            elif key in IGNORED:
                warnings.append(f"option {key!r} of fuse-overlayfs is not implemented; ignored")
            else:
                raise MountError(f"unknown mount option {opt!r}")
    return from_dict(values, flags, warnings)


def from_dict(values: dict, flags: set[str] | None = None,
              warnings: list[str] | None = None) -> MountOptions:
    lower = values.get("lowerdir")
    if not lower:
        raise MountError("no lowerdir= given (lowerdir=TOP:...:BOTTOM is required)")
    ready = values.get("ready_fd")
    try:
        ready_fd = int(ready) if ready not in (None, "") else None
    except ValueError:
        raise MountError(f"ready_fd={ready!r} is not a file descriptor number") from None
    wb = str(values.get("writeback", "0")).lower()
    loop = values.get("loop") or "direct"
    if loop not in ("direct", "trio"):
        raise MountError(f"loop={loop!r} is not one of direct, trio")

    return MountOptions(
        lowerdirs=[d for d in lower.split(":") if d],
        upperdir=values.get("upperdir") or None,
        workdir=values.get("workdir") or None,
        ready_fd=ready_fd,
        flags=set(flags or ()),
        writeback=wb in ("1", "yes", "true", "on"),
        fsname=values.get("fsname") or "fuse-overlay",
        loop=loop,
        warnings=list(warnings or ()),
    )


def _readable_dir(path: str, what: str) -> str:
    path = os.path.abspath(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise MountError(f"{what} {path}: {e.strerror}") from None
    if not os.path.isdir(path):
        raise MountError(f"{what} {path}: not a directory")
    try:
        os.listdir(path)
    except OSError as e:
        raise MountError(f"{what} {path} is not readable: {e.strerror}") from None
    del st
    return path


def check(opts: MountOptions, mountpoint: str) -> MountOptions:
    """Check layers and mountpoint; returns the options with absolute paths."""
    opts.lowerdirs = [_readable_dir(d, "lower layer") for d in opts.lowerdirs]
    if not opts.lowerdirs:
        raise MountError("no lowerdir= given (lowerdir=TOP:...:BOTTOM is required)")
    if opts.upperdir:
        opts.upperdir = _readable_dir(opts.upperdir, "upperdir")
        if not opts.workdir:
            raise MountError("upperdir= needs workdir= (a directory on the same filesystem)")
        opts.workdir = _readable_dir(opts.workdir, "workdir")
        if os.stat(opts.upperdir).st_dev != os.stat(opts.workdir).st_dev:
            raise MountError(f"workdir {opts.workdir} is not on the same filesystem as "
                             f"upperdir {opts.upperdir}")
        if not os.access(opts.upperdir, os.W_OK | os.X_OK):
            raise MountError(f"upperdir {opts.upperdir} is not writable")
        if not os.access(opts.workdir, os.W_OK | os.X_OK):
            raise MountError(f"workdir {opts.workdir} is not writable")
    else:
        opts.workdir = None
    mp = os.path.abspath(mountpoint)
    if not os.path.isdir(mp):
        raise MountError(f"mountpoint {mp} does not exist or is not a directory")
    return opts

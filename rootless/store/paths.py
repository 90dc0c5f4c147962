"""Where rl keeps its files for the current user.

Persistent data lives under `$XDG_DATA_HOME/rl` (default `~/.local/share/rl`); sockets and
pid files under `$XDG_RUNTIME_DIR/rl`, or `/tmp/rl-<uid>` when XDG_RUNTIME_DIR is unset or
belongs to someone else (the usual case after `su` or `sudo -u`, where the variable is
inherited from the first user). Configuration is read from `$XDG_CONFIG_HOME/rl`.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from rootless.errors import RlError


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var)
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / default


def data_dir() -> Path:
    """The root of the persistent store."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "rl"


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "rl"


def xdg_runtime_dir_problem() -> str | None:
    """Why $XDG_RUNTIME_DIR cannot be used, or None when it can (or is simply unset)."""
    value = os.environ.get("XDG_RUNTIME_DIR")
    if not value:
        return None
    try:
        st = os.stat(value)
    except OSError as exc:
        return f"XDG_RUNTIME_DIR={value} is not usable: {exc.strerror}"
    if st.st_uid != os.getuid():
        return f"XDG_RUNTIME_DIR={value} belongs to uid {st.st_uid}, not to you (uid {os.getuid()})"
    if not stat.S_ISDIR(st.st_mode):
        return f"XDG_RUNTIME_DIR={value} is not a directory"
    return None


def runtime_dir(create: bool = False) -> Path:
    """The per-user directory for sockets and pid files, made (mode 0700) when `create`."""
    value = os.environ.get("XDG_RUNTIME_DIR")
    if value and xdg_runtime_dir_problem() is None:
        path = Path(value) / "rl"
        if create:
            path.mkdir(mode=0o700, exist_ok=True)
        return path
    path = Path(f"/tmp/rl-{os.getuid()}")
    if create:
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        # /tmp is shared: never use a directory another user made for us.
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise RlError(
                f"{path} exists but is not a private directory owned by you",
                "remove it, or set XDG_RUNTIME_DIR to a directory of your own",
            )
    return path


def filesystem_of(path: Path) -> tuple[str, str]:
    """(mount point, filesystem type) holding `path`, read from /proc/self/mountinfo."""
    target = os.path.realpath(path)
    while not os.path.exists(target):
        target = os.path.dirname(target)
    best = ("/", "unknown")
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                mnt = fields[4].replace("\\040", " ")
                fstype = fields[fields.index("-") + 1]
                inside = target == mnt or target.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best[0]):
                    best = (mnt, fstype)
    except OSError:
        pass
    return best

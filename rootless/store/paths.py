"""Where rl keeps its files for the current user.

Persistent data lives under `$XDG_DATA_HOME/rl` (default `~/.local/share/rl`); sockets and
pid files under `$XDG_RUNTIME_DIR/rl`, or `$TMPDIR/rl-<uid>` (TMPDIR defaults to /tmp, as
in podman's fallback) when XDG_RUNTIME_DIR is unset or
belongs to someone else (the usual case after `su` or `sudo -u`, where the variable is
inherited from the first user). Configuration is read from `$XDG_CONFIG_HOME/rl`.

Other users of the machine reach none of it. The store is made 0700 by `ensure_store()`,
which every path that creates something in it calls first; a store of ours found looser
(made by an older rl, or by hand) is tightened silently, as podman does: with the top
directory 0700 nobody else can reach anything under it, whatever the modes inside. The
runtime dir is checked on every use (`runtime_dir()`), not only when made: under a shared
/tmp another user can make `/tmp/rl-<uid>` before we ever run, and a socket or pid file in
a directory of theirs would be theirs to fake.
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


_PRIVATE: set[str] = set()  # store roots this process has checked (they cannot loosen again
                            # without us: only we own them)


def ensure_store(root: Path | None = None) -> Path:
    """The store's root (`root`, or `data_dir()`), made a directory only we can enter:
    created 0700 (its parents as the user's XDG dirs are), tightened to 0700 when it is
    ours but looser, refused when it belongs to someone else. Call before creating
    anything in the store; cheap after the first call in a process."""
    path = root or data_dir()
    key = str(path)
    if key in _PRIVATE:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    # Opened, then checked and tightened by the fd: a symlink the user made to a bigger
    # disk is fine (it is followed once, and what we check is what it points to).
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.getuid():
            raise RlError(f"the store {path} belongs to uid {st.st_uid}, not to you "
                          f"(uid {os.getuid()})",
                          "set XDG_DATA_HOME to a directory of your own")
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    _PRIVATE.add(key)
    return path


def private_file(path: Path) -> None:
    """Create `path` 0600 if missing; tighten it to 0600 if it is looser (the catalog:
    sqlite gives its -wal and -shm files the mode of the database file).

    Never opens an existing file: closing any fd of a database file drops every POSIX lock
    this process holds on it, those of sqlite connections already open included."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600))
        except FileExistsError:  # another process made it just now, as we would have
            pass
        return
    if st.st_mode & 0o077:
        os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)


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


def runtime_dir_path() -> Path:
    """Where the runtime dir is, unchecked: for display only (`rl info`); use runtime_dir()."""
    value = os.environ.get("XDG_RUNTIME_DIR")
    if value and xdg_runtime_dir_problem() is None:
        return Path(value) / "rl"
    tmp = os.environ.get("TMPDIR")  # as podman's fallback (Go's os.TempDir)
    return Path(tmp if tmp and os.path.isabs(tmp) else "/tmp") / f"rl-{os.getuid()}"


def runtime_dir(create: bool = False) -> Path:
    """The per-user directory for sockets and pid files, made (mode 0700) when `create`.

    Checked on every call, made or found: when it exists it must be a directory (not a
    symlink) owned by us that nobody else may enter; otherwise RlError, and nothing in it
    is used. /tmp is shared, so `/tmp/rl-<uid>` may have been made by another user before
    we ever ran. (Once checked it cannot change: only we may rename or chmod a directory
    of ours, even in a sticky /tmp.)"""
    path = runtime_dir_path()
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    check_runtime_dir(path)
    return path


def check_runtime_dir(path: Path) -> None:
    """RlError unless `path` is missing or a private directory of ours (see runtime_dir)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077:
        return
    if stat.S_ISLNK(st.st_mode):
        what = "is a symlink"
    elif not stat.S_ISDIR(st.st_mode):
        what = "is not a directory"
    elif st.st_uid != os.getuid():
        what = f"belongs to uid {st.st_uid}, not to you (uid {os.getuid()})"
    else:
        what = f"has mode {stat.S_IMODE(st.st_mode):04o}, not 0700"
    raise RlError(f"runtime dir {path} {what}: not using it",
                  f"its owner or root must remove it: rm -rf {path}; or set XDG_RUNTIME_DIR "
                  "to a private directory of your own")


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

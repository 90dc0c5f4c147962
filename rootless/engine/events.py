"""The event journal: what happened to containers, images, volumes and networks, for
`rl events` (Docker's `docker events`).

There is no daemon to hold a stream, so every rl process that changes an object appends
one line of JSON to a per-user file, `<data dir>/events.log`, opened with O_APPEND and
written with one write() (a line is far below PIPE_BUF, and appends of one write do not
interleave on a local file system). `rl events` reads it from the start (with --since)
and, without --until, follows it as it grows. A line holds Docker's event fields (Type,
Action, Actor.ID, Actor.Attributes, time, timeNano; for containers also status, id and
from). Writing an event never fails the command that made it: an unwritable journal is
skipped.

Rotation: once the journal passes MAX_BYTES, the writer that sees it renames it to
`events.log.1` (replacing the one before), so a user's journal stays below ~2x MAX_BYTES
(Docker's daemon keeps its last 1000 events in memory only). A writer that opened the file
just before the rename appends to events.log.1: its line is kept there. Readers read
events.log.1 then events.log; a follower that sees the journal's inode change reads the
rest of the old file (now events.log.1) before it goes on in the new one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def journal(root: Path | None = None) -> Path:
    """The journal of the store at `root` (default: the user's data dir)."""
    from rootless.store import paths

    return (root or paths.data_dir()) / "events.log"


def emit(type_: str, action: str, actor_id: str, attributes: dict[str, str] | None = None,
         root: Path | None = None) -> None:
    """Append one event (never raises)."""
    now = time.time_ns()
    attrs = {k: str(v) for k, v in (attributes or {}).items()}
    ev = {"Type": type_, "Action": action, "Actor": {"ID": actor_id, "Attributes": attrs},
          "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
    if type_ == "container":
        ev.update(status=action, id=actor_id, **({"from": attrs["image"]}
                                                 if "image" in attrs else {}))
    line = (json.dumps(ev, separators=(",", ":")) + "\n").encode()
    try:
        fd = os.open(journal(root), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        os.write(fd, line)
        if os.fstat(fd).st_size > MAX_BYTES:
            _rotate(journal(root), fd)
    except OSError:
        pass
    finally:
        os.close(fd)


MAX_BYTES = 8 << 20


def _rotate(path: Path, fd: int) -> None:
    """events.log -> events.log.1, if the name still holds the file this writer has (two
    writers over the limit at once: the second sees the new, small file and does not)."""
    st = os.fstat(fd)
    try:
        now = os.stat(path)
    except OSError:
        return
    if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
        os.replace(path, _older(path))


def _older(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def _rest_of(path: Path, ino: int | None = None, pos: int = 0) -> bytes:
    """`path` from `pos` (if it is still the file `ino`), ending with a whole line: a torn
    last line must not join the next file's first."""
    try:
        with open(path, "rb") as f:
            if ino is not None and os.fstat(f.fileno()).st_ino != ino:
                return b""  # rotated twice meanwhile: that part is gone
            f.seek(pos)
            data = f.read()
    except FileNotFoundError:
        return b""
    return data if not data or data.endswith(b"\n") else data + b"\n"


def _last_time(path: Path) -> int | None:
    """timeNano of the latest whole event in `path`'s tail (0 when the file is
    missing or empty; None when the tail holds no whole event: then the caller reads the
    file): a read `--since` a time after it skips the rotated file (up to MAX_BYTES)
    unread."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - 65536))
            tail = f.read()
    except FileNotFoundError:
        return 0
    lines = tail.split(b"\n")
    if size > 65536:
        lines = lines[1:]  # the first may be the end of a line that began before the tail
    # the latest of the tail's events, not the last line's: writers take their time
    # before their write, so two at once may append out of order
    latest = None
    for raw in lines:
        try:
            t = int(json.loads(raw).get("timeNano", 0))
        except (ValueError, AttributeError, TypeError):
            continue  # empty, or torn by a writer that died mid-write
        latest = t if latest is None else max(latest, t)
    if latest is None and not size:
        return 0
    return latest


def container(action: str, c, **extra) -> None:
    """A container event with Docker's attributes (image, name, the labels, extra)."""
    emit("container", action, c.id, {**c.labels, "image": c.image, "name": c.name, **extra})


def read(since_ns: int | None = None, until_ns: int | None = None, follow: bool = False,
         stop=None):
    """The events in [since, until), oldest first; with `follow`, then the new ones as
    they are written, until `until` passes (or forever)."""
    path = journal()
    ino = None  # the file read so far (its inode), and how far
    pos = 0
    pending = b""  # the history before the last rotation first, if any of it is wanted
    last = None if since_ns is None else _last_time(_older(path))
    if last is None or last >= since_ns:
        pending = _rest_of(_older(path))
    while True:
        data = b""
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if ino is not None and st.st_ino != ino:
                    # rotated: what the old file got since our last read is in .1
                    data = _rest_of(_older(path), ino, pos)
                    pos = 0
                ino = st.st_ino
                f.seek(pos)
                data += f.read()
                pos = f.tell()
        except FileNotFoundError:
            pass
        pending += data
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            try:
                ev = json.loads(raw)
            except ValueError:
                continue  # a torn line of a writer that died mid-write
            t = ev.get("timeNano", 0)
            if until_ns is not None and t >= until_ns:
                return
            if since_ns is None or t >= since_ns:
                yield ev
        if not follow or (until_ns is not None and time.time_ns() >= until_ns):
            return
        if stop is not None and stop():
            return
        time.sleep(0.2)


def matches(ev: dict, f: dict[str, list[str]]) -> bool:
    """Whether `ev` passes Docker's event filters (container, event, image, label, network,
    type, volume), for `rl events` and the API's /events."""
    actor = ev.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    ident = actor.get("ID", "")
    kind = ev.get("Type", "")

    def names_it(values: list[str]) -> bool:
        return any(v in (ident, attrs.get("name")) or (len(v) >= 3 and ident.startswith(v))
                   for v in values)

    if "type" in f and kind not in f["type"]:
        return False
    # event=health_status matches "health_status: healthy" too (Docker's #25798)
    action = ev.get("Action") or ""
    if "event" in f and action not in f["event"] and action.split(":")[0] not in f["event"]:
        return False
    for key in ("container", "network", "volume"):
        if key in f and not (kind == key and names_it(f[key])):
            return False
    if "image" in f and not (attrs.get("image") in f["image"] or
                             (kind == "image" and names_it(f["image"]))):
        return False
    for item in f.get("label", []):
        k, sep, v = item.partition("=")
        if k not in attrs or (sep and attrs[k] != v):
            return False
    return True

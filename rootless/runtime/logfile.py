"""The container log, in the k8s-file format podman also writes:

    2026-01-02T03:04:05.123456789Z stdout F a whole line
    2026-01-02T03:04:05.123456789Z stderr P a partial line (more follows)

One record per line of output; `P` marks a piece of a line written without its newline
(so output appears in the log as it is produced, not when the line ends).
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing itself costs the lean monitor (rootless.runtime.lean) memory
if TYPE_CHECKING:
    from collections.abc import Iterator


def timestamp(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


class Writer:
    """Appends records to the log. `target` is a path, or `MAXSIZE:MAXFILE:PATH`
    (--log-opt max-size/max-file, from rootless/engine/runextras.py): once the file holds
    MAXSIZE bytes it is rotated before the next write, as Docker's json-file does:
    PATH.1 is the newest old file, up to PATH.(MAXFILE-1); with MAXFILE 1, PATH is emptied.
    Renames only: the lean monitor pays nothing more for it."""

    def __init__(self, target: str) -> None:
        self.max_size, self.max_file = 0, 1
        if not target.startswith("/"):
            size, files, target = target.split(":", 2)
            self.max_size, self.max_file = int(size), int(files)
        self.path = target
        self.on_rotate = None  # called after a rotation (the attach hub's replays)
        self._open()

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                          0o600)
        self.size = os.fstat(self.fd).st_size

    def _rotate(self) -> None:
        if self.max_file < 2:
            os.ftruncate(self.fd, 0)
            self.size = 0
        else:
            for i in range(self.max_file - 1, 1, -1):
                try:
                    os.replace(f"{self.path}.{i - 1}", f"{self.path}.{i}")
                except FileNotFoundError:
                    pass
            os.replace(self.path, f"{self.path}.1")
            os.close(self.fd)
            self._open()
        if self.on_rotate is not None:
            self.on_rotate()

    def write(self, stream: str, data: bytes) -> None:
        if not data:
            return
        ts = timestamp().encode()
        tag = stream.encode()
        out = []
        pieces = data.split(b"\n")
        for piece in pieces[:-1]:
            out.append(b"%s %s F %s\n" % (ts, tag, piece))
        if pieces[-1]:
            out.append(b"%s %s P %s\n" % (ts, tag, pieces[-1]))
        if not self.max_size:
            os.write(self.fd, b"".join(out))
            return
        # Rotation is checked record by record (as Docker's, per message): one read of
        # output may hold many lines. Records go out in runs that fill the file.
        run: list[bytes] = []
        for rec in out:
            if self.size >= self.max_size:
                if run:
                    os.write(self.fd, b"".join(run))
                    run = []
                self._rotate()
            run.append(rec)
            self.size += len(rec)
        if run:
            os.write(self.fd, b"".join(run))

    def close(self) -> None:
        os.close(self.fd)


def parse(line: bytes) -> tuple[str, str, bool, bytes] | None:
    """(timestamp, stream, complete, data) of one record, or None if malformed."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    data = parts[3] if len(parts) == 4 else b""
    return parts[0].decode(), parts[1].decode(), parts[2] == b"F", data


def rotated(path: str) -> list[str]:
    """The rotated files of the log at `path`, oldest first (PATH.N ... PATH.1)."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return []
    nums = sorted((int(n[len(base) + 1:]) for n in names
                   if n.startswith(base + ".") and n[len(base) + 1:].isdigit()), reverse=True)
    return [f"{path}.{n}" for n in nums]


def records(path: str, *, follow: bool = False, still_running=None,
            poll: float = 0.1) -> Iterator[tuple[str, str, bytes]]:
    """(timestamp, stream, data with newline if complete) for each record, the rotated
    files' first; with `follow`, keeps reading until `still_running()` is false and the
    file is drained (a log the monitor of a just started container has not opened yet is
    waited for; across a rotation: the renamed file drained, the newer ones read)."""
    for old in rotated(path):
        try:
            f = open(old, "rb")
        except FileNotFoundError:
            continue  # rotated away meanwhile
        with f:
            yield from _parse_all(f.read())
    while True:
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            if not follow or (still_running is not None and not still_running()):
                if os.path.exists(path):
                    continue  # opened just now, between the two looks
                return
            time.sleep(poll)
            continue
        with f:
            st = os.fstat(f.fileno())
            again = yield from _read(f, path, follow, still_running, poll)
        if not again:
            return
        # Rotated away (maybe more than once since the last look): the files newer than
        # the one just drained, then the current one.
        olds = rotated(path)
        ids = []
        for old in olds:
            try:
                o = os.stat(old)
                ids.append((o.st_dev, o.st_ino))
            except OSError:
                ids.append(None)
        if (st.st_dev, st.st_ino) in ids:
            for old in olds[ids.index((st.st_dev, st.st_ino)) + 1:]:
                try:
                    with open(old, "rb") as g:
                        yield from _parse_all(g.read())
                except FileNotFoundError:
                    continue


def _parse_all(blob: bytes):
    for line in blob.split(b"\n"):
        rec = parse(line)
        if rec is not None:
            ts, stream, complete, data = rec
            yield ts, stream, data + (b"\n" if complete else b"")


def _rotated_away(f, path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    mine = os.fstat(f.fileno())
    return (st.st_dev, st.st_ino) != (mine.st_dev, mine.st_ino) or st.st_size < f.tell()


def _read(f, path: str, follow: bool, still_running, poll: float):
    """Records of one open file; True when it was rotated away while followed (the caller
    opens the new one)."""
    buf = b""
    while True:
        chunk = f.read(65536)
        if chunk:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                rec = parse(line)
                if rec is not None:
                    ts, stream, complete, data = rec
                    yield ts, stream, data + (b"\n" if complete else b"")
            continue
        if follow and _rotated_away(f, path):
            rest = f.read()
            if rest:
                buf += rest
                continue
            return True
        if not follow or (still_running is not None and not still_running()):
            # one last read: the container may have written just before it stopped
            rest = f.read()
            if rest:
                buf += rest
                continue
            return
        time.sleep(poll)

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
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

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
        os.write(self.fd, b"".join(out))

    def close(self) -> None:
        os.close(self.fd)


def parse(line: bytes) -> tuple[str, str, bool, bytes] | None:
    """(timestamp, stream, complete, data) of one record, or None if malformed."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    data = parts[3] if len(parts) == 4 else b""
    return parts[0].decode(), parts[1].decode(), parts[2] == b"F", data


def records(path: str, *, follow: bool = False, still_running=None,
            poll: float = 0.1) -> Iterator[tuple[str, str, bytes]]:
    """(timestamp, stream, data with newline if complete) for each record; with `follow`,
    keeps reading until `still_running()` is false and the file is drained (a log the
    monitor of a just started container has not opened yet is waited for)."""
    while True:
        try:
            f = open(path, "rb")
            break
        except FileNotFoundError:
            if not follow or (still_running is not None and not still_running()):
                if os.path.exists(path):
                    continue  # opened just now, between the two looks
                return
            time.sleep(poll)
    with f:
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
            if not follow or (still_running is not None and not still_running()):
                # one last read: the container may have written just before it stopped
                rest = f.read()
                if rest:
                    buf += rest
                    continue
                return
            time.sleep(poll)

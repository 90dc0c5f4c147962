"""The streams a caller gives the engine for a container's stdin/stdout/stderr, and the
client side of a container's attach socket (rootless/runtime/attachsock.py).

    Streams(stdin=None, stdout=None, stderr=None)

Each is a file-like object (read1/read, write, flush: BytesIO, socket.makefile('rwb'),
a pipe's file object) or a raw fd, or None (not attached: output dropped, no stdin).
stdin is read until EOF; stderr is unused with a tty (all output is on stdout). The
engine never closes the caller's objects or fds. A file-like stdin is read by a thread of
the engine (a daemon thread: if the caller's stdin never ends, that thread stays blocked
in its read until the caller closes it); an fd is read in the calling thread (select).
"""

from __future__ import annotations

import os
import select
from dataclasses import dataclass

from rootless.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs `rl run` ~6 ms of imports
if TYPE_CHECKING:
    from typing import BinaryIO

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


@dataclass
class Streams:
    stdin: BinaryIO | int | None = None
    stdout: BinaryIO | int | None = None
    stderr: BinaryIO | int | None = None

    def all_fds(self) -> bool:
        return all(s is None or isinstance(s, int) for s in (self.stdin, self.stdout,
                                                              self.stderr))

    def fds(self) -> tuple:
        return (self.stdin, self.stdout, self.stderr)


def parse_detach_keys(text: str | None) -> bytes:
    """Docker's --detach-keys: comma-separated `ctrl-<letter>`, `ctrl-@`, `ctrl-[`, ...
    or single characters. "" disables detaching; None is Docker's default ctrl-p,ctrl-q."""
    if text is None:
        text = DEFAULT_DETACH_KEYS
    if text == "":
        return b""
    out = bytearray()
    for key in text.split(","):
        k = key.strip()
        if len(k) == 1:
            out.append(ord(k))
            continue
        low = k.lower()
        if low.startswith("ctrl-") and len(low) == 6:
            c = low[5]
            if "a" <= c <= "z":
                out.append(ord(c) - ord("a") + 1)
                continue
            specials = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if c in specials:
                out.append(specials[c])
                continue
        raise InvalidArgument(f"invalid detach keys {text!r}: {key!r} is not a key",
                              "give keys as ctrl-<letter> or single characters, "
                              "comma-separated, e.g. --detach-keys ctrl-p,ctrl-q")
    return bytes(out)


class DetachScanner:
    """Finds the detach sequence in stdin: bytes that may start it are held back until
    the sequence is complete (detach) or broken (they go on to the container)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if not self.keys:
            return data, False
        out = bytearray()
        for b in data:
            cand = self.held + bytes([b])
            if self.keys.startswith(cand):
                self.held = cand
                if cand == self.keys:
                    self.held = b""
                    return bytes(out), True
                continue
            out += self.held  # not the sequence after all: those go on
            self.held = b""
            if self.keys[:1] == bytes([b]):
                self.held = bytes([b])
            else:
                out.append(b)
        return bytes(out), False


def write_out(target, data: bytes) -> None:
    if target is None or not data:
        return
    if isinstance(target, int):
        view = memoryview(data)
        while view:
            try:
                n = os.write(target, view)
            except BlockingIOError:
                select.select([], [target], [])
                continue
            view = view[n:]
        return
    target.write(data)
    flush = getattr(target, "flush", None)
    if flush is not None:
        flush()


def read_some(source) -> bytes:
    if isinstance(source, int):
        return os.read(source, 65536)
    read1 = getattr(source, "read1", None)
    if read1 is not None:
        return read1(65536)
    return source.read(65536)


def _send_all(sock, data: bytes) -> bool:
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def session(sock, streams: Streams, *, tty: bool, replay: bool, once: bool = False,
            detach_keys: str | None = None, stdin_once: bool = True) -> tuple[bool, int | None]:
    """Talk to a monitor over `sock` (a connected socket) until it sends the exit code
    and closes, or the detach keys come on stdin. Returns (detached, exit code or None).
    `stdin_once`: the caller's EOF on stdin closes the container's stdin (Docker's
    StdinOnce)."""
    import threading

    from rootless.runtime.attachsock import FrameReader, frame

    keys = DetachScanner(parse_detach_keys(detach_keys))
    flags = ",".join(f for f, on in (("replay", replay), ("once", once)) if on)
    if not _send_all(sock, frame(b"h", flags.encode())):
        return False, None
    stdin = streams.stdin
    detached = threading.Event()

    def on_stdin(data: bytes) -> bool:
        """False once stdin is done (EOF or detach)."""
        if not data:
            if stdin_once:
                _send_all(sock, frame(b"c"))
            return False
        data, hit = keys.feed(data)
        if data and not _send_all(sock, frame(b"i", data)):
            return False
        if hit:
            detached.set()
            try:
                sock.shutdown(2)  # SHUT_RDWR: the reading side returns at once
            except OSError:
                pass
            return False
        return True

    stdin_fd = stdin if isinstance(stdin, int) else None
    if stdin is not None and stdin_fd is None:
        def pump() -> None:
            try:
                while on_stdin(read_some(stdin)):
                    pass
            except (OSError, ValueError):  # the caller closed it
                pass

        threading.Thread(target=pump, name="rl-attach-stdin", daemon=True).start()
    reader = FrameReader()
    code: int | None = None
    got_exit = False
    sock_fd = sock.fileno()
    stdin_open = stdin_fd is not None
    try:
        while True:
            watch = [sock_fd] + ([stdin_fd] if stdin_open else [])
            try:
                ready, _, _ = select.select(watch, [], [])
            except InterruptedError:
                continue
            if stdin_open and stdin_fd in ready:
                try:
                    data = os.read(stdin_fd, 65536)
                except BlockingIOError:  # a caller's non-blocking fd: not its end
                    data = None
                except OSError:
                    data = b""
                if data is None:
                    continue
                stdin_open = on_stdin(data)
                if detached.is_set():
                    return True, None
            if sock_fd not in ready:
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            for kind, payload in reader.feed(data):
                if kind == b"1" or (kind == b"2" and tty):
                    write_out(streams.stdout, payload)
                elif kind == b"2":
                    write_out(streams.stderr, payload)
                elif kind == b"x":
                    got_exit = True
                    code = int(payload) if payload.strip().lstrip(b"-").isdigit() else None
    finally:
        sock.close()
    if detached.is_set():
        return True, None
    return False, code if got_exit else None

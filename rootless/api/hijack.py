"""The streams of a hijacked connection (attach, exec start) as the engine's Streams:
stdin is what the client sends after its request (half-closing its side is EOF), stdout
and stderr go back multiplexed in 8-byte-header frames, or raw with a tty."""

from __future__ import annotations

import socket
import threading

from rootless.api.protocol import frame


class _PendingThenSocket:
    """stdin when the client sent bytes along with its request: those first."""

    def __init__(self, sock: socket.socket, pending: bytes) -> None:
        self.sock = sock
        self.pending = pending

    def read1(self, n: int = 65536) -> bytes:
        if self.pending:
            data, self.pending = self.pending[:n], self.pending[n:]
            return data
        try:
            return self.sock.recv(n)
        except OSError:
            return b""

    read = read1


class _Out:
    """One output stream: frames (stream 1 or 2) or raw bytes; sends are whole frames
    (a lock shared by both streams keeps them from interleaving)."""

    def __init__(self, sock: socket.socket, n: int, tty: bool, lock: threading.Lock) -> None:
        self.sock, self.n, self.tty, self.lock = sock, n, tty, lock

    def write(self, data: bytes) -> int:
        if data:
            with self.lock:
                self.sock.sendall(data if self.tty else frame(self.n, data))
        return len(data)

    def flush(self) -> None:
        pass


def streams_for(sock: socket.socket, pending: bytes, *, tty: bool, stdin: bool,
                stdout: bool, stderr: bool):
    from rootless.engine.streams import Streams

    lock = threading.Lock()
    s_in = None
    if stdin:
        s_in = _PendingThenSocket(sock, pending) if pending else sock.fileno()
    return Streams(stdin=s_in, stdout=_Out(sock, 1, tty, lock) if stdout else None,
                   stderr=_Out(sock, 2, tty, lock) if stderr else None)


def finish(sock: socket.socket) -> None:
    """Our side is done: the client reads EOF (its stdin side may still be open)."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass

"""Attach clients of other processes waiting for a created container's start.

`rl attach` (or the API's attach) to a `created` container must see its output from the
first byte, even when another process starts it and it ends at once (a `--rm` container
is gone by then). Within one process the waiting client's socket is handed to start()
directly (running._pending). Across processes, a waiter listens on a socket of its own
in the user's runtime dir, `aw-<short id>-<pid>-<n>.sock`; every start() connects to the
waiters of its container and hands those connections to the monitor as clients from
before the start (rootless/runtime/attachsock.py: they get all the output), and the
waiter accepts its end and talks to the monitor through it.

The runtime dir is the user's own, 0700: only the user's processes can make or reach a
socket there; a waiter still checks its peer as the monitor does (our uid, our user
namespace). The sockets are reached through /proc/self/fd/N/NAME of the runtime dir's
descriptor: a test's runtime dir can be long enough for the 108-byte limit of a socket's
path.
"""

from __future__ import annotations

import itertools
import os
import socket

from rootless.store import paths

_SEQ = itertools.count()


def _prefix(short_id: str) -> str:
    return f"aw-{short_id}-"


class Waiter:
    """A listening socket for one waiting attach; close() removes it."""

    def __init__(self, short_id: str) -> None:
        self.dirfd = os.open(paths.runtime_dir(create=True),
                             os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.name = f"{_prefix(short_id)}{os.getpid()}-{next(_SEQ)}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.bind(f"/proc/self/fd/{self.dirfd}/{self.name}")
            self.sock.listen(4)
        except OSError:
            self.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> socket.socket | None:
        """The connection a start() made, or None (not ours)."""
        from rootless.runtime.attachsock import peer_is_ours

        try:
            conn, _ = self.sock.accept()
        except OSError:
            return None
        if not peer_is_ours(conn.fileno()):
            conn.close()
            return None
        return conn

    def close(self) -> None:
        if self.dirfd < 0:
            return
        try:
            os.unlink(self.name, dir_fd=self.dirfd)
        except OSError:
            pass
        self.sock.close()
        os.close(self.dirfd)
        self.dirfd = -1


def connect_all(short_id: str) -> list[socket.socket]:
    """At a start: a connection to each waiter of other processes (this process's own
    are handed over directly). A waiter that is gone is skipped."""
    try:
        dirfd = os.open(paths.runtime_dir(), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return []
    out = []
    try:
        prefix, mine = _prefix(short_id), f"{_prefix(short_id)}{os.getpid()}-"
        for name in os.listdir(f"/proc/self/fd/{dirfd}"):
            if not name.startswith(prefix) or name.startswith(mine):
                continue
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(f"/proc/self/fd/{dirfd}/{name}")
            except ConnectionRefusedError:
                # its waiter was killed: the file goes (a waiter between its bind and its
                # listen would lose it too, and then sees the start by polling instead)
                s.close()
                try:
                    os.unlink(name, dir_fd=dirfd)
                except OSError:
                    pass
                continue
            except OSError:
                s.close()
                continue
            out.append(s)
    finally:
        os.close(dirfd)
    return out

"""Thin adapters run in the forker's workers (rootless/api/forker.py) where an engine
call writes a stream to a file object: the worker gets the fd, the engine a file."""

from __future__ import annotations

import os


def archive_read(ref: str, path: str, fd: int) -> None:
    from rootless.engine import archive

    with os.fdopen(fd, "wb") as out:
        archive.read(ref, path, out)


def export(ref: str, fd: int) -> None:
    from rootless.engine import ship

    try:
        ship.export(ref, fd)
    finally:
        os.close(fd)


def save(names: list[str], fd: int) -> None:
    from rootless.engine import ship

    with os.fdopen(fd, "wb") as out:
        ship.save(names, out)


def start(cid: str, *fds: int) -> None:
    """A detached start from the forker's single-threaded worker (the engine forks the
    monitor: no fresh interpreter), with the fds of attach clients waiting in the
    service."""
    import socket

    from rootless.engine import containers

    socks = [socket.socket(fileno=fd) for fd in fds]
    try:
        containers.start(cid, attach_socks=socks)
    finally:
        for sock in socks:
            sock.close()

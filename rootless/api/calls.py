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

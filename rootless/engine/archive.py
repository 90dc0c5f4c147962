"""A container's files as tar streams (the Docker API's /containers/{id}/archive and what
`rl cp` is made of): stat a path, read a path as a tar, extract a tar into a directory.
The container side is always done by a child whose root is the container's root
(rootless/runtime/copying.py), so symlinks in the container resolve inside it."""

from __future__ import annotations

from rootless.engine.ctrcopy import copy_target
from rootless.errors import NotFound


def stat(ref: str, path: str) -> dict:
    """Docker's container-path-stat of `path`; NotFound when it does not exist."""
    from rootless.runtime import copying
    from rootless.store.containerdb import lookup

    c = lookup(ref)
    doc = copying.stat_in(copy_target(c.id), path)
    if doc is None:
        raise NotFound(f"no such file or directory in container {c.name}: {path}")
    return doc


def read(ref: str, path: str, out) -> None:
    """Write a tar of `path` to `out` (a binary file object; the caller closes it)."""
    from rootless.runtime import copying
    from rootless.store.containerdb import lookup

    c = lookup(ref)
    copying.tar_out(copy_target(c.id), path, out)


def write(ref: str, path: str, tar_path: str) -> None:
    """Extract the tar file `tar_path` into the directory `path` of the container."""
    from rootless.runtime import copying
    from rootless.store.containerdb import lookup

    c = lookup(ref)
    copying.untar_in(copy_target(c.id), path, tar_path)

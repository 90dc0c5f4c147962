"""File locks of the store (flock on files under the data dir).

- `store_lock(shared=True)`: held shared by every pull for its whole run and exclusive by
  whatever deletes layers or blobs (rmi, prune), so a layer is never removed between a
  pull's "already have it" check and its catalog commit.
- `layer_lock(key)`: exclusive while one process fetches and unpacks one layer, so two
  concurrent pulls of the same layer download it once: the second waits, then reuses it.

flock locks die with their process, so a kill -9 never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from rootless.store import paths


def _locks_dir(root: Path | None) -> Path:
    d = paths.ensure_store(root) / "locks"
    d.mkdir(exist_ok=True, mode=0o700)
    return d


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # releases the lock


def store_lock(shared: bool = True, root: Path | None = None):
    return _flock(_locks_dir(root) / "store.lock", fcntl.LOCK_SH if shared else fcntl.LOCK_EX)


def layer_lock(key: str, root: Path | None = None):
    name = key.replace(":", "-").replace("/", "_")
    return _flock(_locks_dir(root) / f"layer-{name}.lock", fcntl.LOCK_EX)

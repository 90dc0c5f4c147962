"""Unpacked layers: `<data_dir>/layers/<diff_id hex>/`, each unpacked once and shared.

A layer directory appears only by rename(2) of a complete, verified unpack from the temp
area, so a kill -9 never leaves a half layer visible. Directories inside a layer are always
0755 on disk (their real mode is in the override xattr), so `remove` can always delete one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rootless.store import paths


class LayerStore:
    def __init__(self, root: Path | None = None) -> None:
        self.dir = (root or paths.data_dir()) / "layers"

    def path(self, diff_id: str) -> Path:
        algo, _, hex_part = diff_id.partition(":")
        if algo != "sha256" or len(hex_part) != 64:
            raise ValueError(f"not a sha256 diff_id: {diff_id!r}")
        return self.dir / hex_part

    def has(self, diff_id: str) -> bool:
        return self.path(diff_id).is_dir()

    def commit(self, tmp_dir: Path, diff_id: str) -> Path:
        """Move an unpacked temp dir into place; if another process won the race, keep
        theirs (same verified content) and delete ours."""
        paths.ensure_store(self.dir.parent)
        self.dir.mkdir(exist_ok=True, mode=0o700)
        dest = self.path(diff_id)
        try:
            os.rename(tmp_dir, dest)
        except OSError:
            if not dest.is_dir():
                raise
            remove_tree(tmp_dir)
        return dest

    def remove(self, diff_id: str) -> None:
        """Rename away first, then delete: a kill -9 midway leaves only temp garbage."""
        dest = self.path(diff_id)
        if not dest.exists():
            return
        trash = TempArea(self.dir.parent).path("trash")
        os.rename(dest, trash)
        remove_tree(trash)

    def diff_ids(self) -> set[str]:
        try:
            return {f"sha256:{n}" for n in os.listdir(self.dir) if len(n) == 64}
        except FileNotFoundError:
            return set()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


class TempArea:
    """`<data_dir>/tmp/<pid>-<random>-<what>`: work in progress of a live process.

    On the same filesystem as blobs/ and layers/ so a finished item is renamed into place.
    `sweep()` deletes what processes that no longer exist left behind (after a kill -9).
    """

    def __init__(self, root: Path | None = None) -> None:
        self.dir = (root or paths.data_dir()) / "tmp"

    def path(self, what: str) -> Path:
        paths.ensure_store(self.dir.parent)
        self.dir.mkdir(exist_ok=True, mode=0o700)
        return self.dir / f"{os.getpid()}-{os.urandom(6).hex()}-{what}"

    def mkdir(self, what: str) -> Path:
        p = self.path(what)
        p.mkdir(mode=0o755)
        return p

    def sweep(self) -> int:
        removed = 0
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return 0
        for name in names:
            pid_text = name.split("-", 1)[0]
            if pid_text.isdigit() and _alive(int(pid_text)):
                continue
            p = self.dir / name
            if p.is_dir() and not p.is_symlink():
                remove_tree(p)
            else:
                try:
                    os.unlink(p)
                except OSError:
                    continue
            removed += 1
        return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

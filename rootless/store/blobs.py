"""Content-addressed blob storage: `<data_dir>/blobs/sha256/<hex>`, one file per digest.

A blob becomes visible under its digest only by rename(2) of a fully written temporary file
whose digest was checked (see `TempArea`): a reader never sees a partial blob, and a blob
whose stream failed is never visible at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from rootless.store import paths


class BlobStore:
    def __init__(self, root: Path | None = None) -> None:
        self.dir = (root or paths.data_dir()) / "blobs" / "sha256"

    def path(self, digest: str) -> Path:
        algo, _, hex_part = digest.partition(":")
        if algo != "sha256" or len(hex_part) != 64:
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.dir / hex_part

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def commit(self, tmp: Path, digest: str) -> Path:
        """Move a verified temporary file into place (replacing an identical copy is fine)."""
        paths.ensure_store(self.dir.parent.parent)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        dest = self.path(digest)
        os.chmod(tmp, 0o444)
        os.replace(tmp, dest)
        return dest

    def remove(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def digests(self) -> set[str]:
        try:
            return {f"sha256:{name}" for name in os.listdir(self.dir) if len(name) == 64}
        except FileNotFoundError:
            return set()

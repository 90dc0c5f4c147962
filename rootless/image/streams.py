"""Streams for one pass over a layer: hash and save the blob, decompress, hash the tar.

    network -> BlobReader (sha256 of the blob, copy to the blob file, size limit, progress,
               cancellation) -> decompress (store/decompress.py: gzip via isal, zstd,
               bzip2, xz, or none)
            -> DigestReader (sha256 of the uncompressed tar = diff_id) -> tar unpacker

Compression is detected from the stream's magic bytes, as Docker does, so a layer whose
media type lies about it still unpacks (its digests are checked all the same).
"""

from __future__ import annotations

import hashlib
import io
import os
import threading

from rootless.errors import RlError


class Cancelled(RlError):
    """Another layer of the same copy failed; this one stops."""


class BlobReader(io.RawIOBase):
    """Reads the raw blob, hashing it, writing it to `sink_fd` or `sink` (an object with
    write(data), or neither), and counting."""

    def __init__(self, raw, *, limit: int, sink_fd: int | None = None, sink=None,
                 progress=None, cancel: threading.Event | None = None) -> None:
        self.raw = raw
        self.sink = sink
        self.hash = hashlib.sha256()
        self.count = 0
        self.limit = limit
        self.sink_fd = sink_fd
        self.progress = progress
        self.cancel = cancel
        self._pending = b""  # peeked bytes not yet returned

    def readable(self) -> bool:
        return True

    def _fill(self, n: int) -> bytes:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("cancelled")
        data = self.raw.read(n)
        if not data:
            return b""
        self.count += len(data)
        if self.count > self.limit:
            raise RlError(f"blob is larger than the {self.limit} bytes its manifest states")
        self.hash.update(data)
        if self.sink_fd is not None:
            view = memoryview(data)
            while view:
                view = view[os.write(self.sink_fd, view):]
        elif self.sink is not None:
            self.sink.write(data)
        if self.progress is not None:
            self.progress(len(data))
        return data

    def peek(self, n: int) -> bytes:
        while len(self._pending) < n:
            data = self._fill(n - len(self._pending))
            if not data:
                break
            self._pending += data
        return self._pending[:n]

    def read(self, n: int = -1) -> bytes:
        if self._pending:
            if n < 0 or n >= len(self._pending):
                out, self._pending = self._pending, b""
                return out
            out, self._pending = self._pending[:n], self._pending[n:]
            return out
        if n is None or n < 0:
            chunks = []
            while chunk := self._fill(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        return self._fill(n)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self._pending or self._fill(1 << 20):
            self._pending = b""

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class DigestReader(io.RawIOBase):
    """Passes reads through and hashes them (the diff_id of the uncompressed tar)."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n is not None and n >= 0 else 1 << 20)
        if data:
            self.hash.update(data)
            self.count += len(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def decompressor(blob: BlobReader):
    """A reader of the uncompressed stream, chosen by the blob's magic bytes
    (store/decompress.py)."""
    from rootless.store import decompress

    return decompress.reader(blob)

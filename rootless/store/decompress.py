"""A compressed stream's reader, the compression found by its magic bytes (as Docker's
archive.DecompressStream): gzip (isal's igzip, 3-4x zlib's speed: contrib/bench/pull.py),
zstd, bzip2, xz; anything else is passed through. One place for the layer pipeline of a
pull or load (image/streams.py) and the tar reader of imports (store/tarstream.py)."""

from __future__ import annotations

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\0"


def reader(raw):
    """The uncompressed bytes of `raw`, a reader with peek(n) (io.BufferedReader,
    image/streams.BlobReader); `raw` itself when it is not compressed."""
    head = raw.peek(6)[:6]
    if head[:2] == GZIP_MAGIC:
        from isal import igzip

        return igzip.IGzipFile(fileobj=raw, mode="rb")
    if head[:4] == ZSTD_MAGIC:
        import zstandard

        # read_across_frames: a zstd layer may hold several frames; the default stops
        # after the first. The streaming reader, not decompressobj(), stays fast.
        return zstandard.ZstdDecompressor().stream_reader(
            raw, read_size=1 << 20, read_across_frames=True, closefd=False)
    if head[:3] == BZIP2_MAGIC:
        import bz2

        return bz2.BZ2File(raw, "rb")
    if head == XZ_MAGIC:
        import lzma

        return lzma.LZMAFile(raw, "rb")
    return raw

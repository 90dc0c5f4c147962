"""BlobWriter: a blob written around the page cache holds exactly the bytes given, whatever
the sizes of the writes and of the blob (O_DIRECT wants whole aligned blocks)."""

from __future__ import annotations

import random

import pytest

from rootless.store.blobs import BlobWriter

SIZES = [0, 1, 4095, 4096, 4097, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 12345]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("where", ["tmp", "shm"])
def test_bytes_written_are_the_bytes_on_disk(tmp_path, size, where):
    if where == "shm":  # tmpfs: O_DIRECT refused by older kernels, taken by newer ones
        import tempfile

        base = tempfile.mkdtemp(dir="/dev/shm")
    else:
        base = str(tmp_path)
    rng = random.Random(size)
    data = rng.randbytes(size)
    path = f"{base}/blob"
    w = BlobWriter(path)
    try:
        pos = 0
        while pos < size:
            n = rng.choice([1, 511, 4096, 70_000, 1 << 20, 3 << 20])
            w.write(data[pos:pos + n])
            pos += n
        w.finish()
    finally:
        w.close()
    try:
        with open(path, "rb") as f:
            assert f.read() == data
    finally:
        if where == "shm":
            import shutil

            shutil.rmtree(base)


def test_an_existing_name_is_not_overwritten(tmp_path):
    (tmp_path / "blob").write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        BlobWriter(tmp_path / "blob")
    assert (tmp_path / "blob").read_bytes() == b"theirs"

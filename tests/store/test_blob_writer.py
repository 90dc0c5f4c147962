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


def test_a_filesystem_that_refuses_direct_writes_gets_buffered_ones(tmp_path, monkeypatch):
    """Some filesystems take O_DIRECT at the open and refuse the I/O with EINVAL (none
    here does: ext4 and tmpfs take both, so the refusal is played by os.write for the
    fds opened with O_DIRECT): the blob is still written whole, through the cache."""
    import errno
    import fcntl
    import os

    real_write = os.write
    refused = []

    def write(fd, data):
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(fd)
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    data = random.Random(7).randbytes(3 * (1 << 20) + 4097)
    w = BlobWriter(tmp_path / "blob")
    try:
        assert w.direct
        w.write(data)
        w.finish()
    finally:
        w.close()
    monkeypatch.undo()
    assert refused, "no O_DIRECT write was tried"
    assert (tmp_path / "blob").read_bytes() == data

"""The local store as an ImageDestination (what a pull writes into) and an ImageSource.

Each layer is streamed once: the blob is hashed and saved (blobs/), decompressed, hashed
again (diff_id) and unpacked (layers/) in the same pass, into temporary places that are
renamed into view only when both digests match. The image's catalog rows are written in
one transaction at commit. A shared store lock is held from construction to close, so
`rmi`/`prune` (exclusive) never delete a layer this pull has decided to reuse.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
from pathlib import Path

from rootless.errors import NotFound, RlError
from rootless.image import manifest as mf
from rootless.image.registry import TransientError
from rootless.image.streams import BlobReader, Cancelled, DigestReader, decompressor
from rootless.image.types import ImageDestination, ImageSource, LayerResult
from rootless.store import catalog, imagedb, locks, paths
from rootless.store.blobs import BlobStore, BlobWriter
from rootless.store.layers import LayerStore, TempArea, remove_tree
from rootless.store.unpack import UnpackError, unpack_tar


def _disk_error(exc: OSError, what: str) -> RlError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return RlError(f"no space left on device while writing {what}",
                       f"free some space on the filesystem of {paths.data_dir()}")
    return RlError(f"cannot write {what}: {exc.strerror or exc}")


def tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class StoreDestination(ImageDestination):
    def __init__(self, root: Path | None = None) -> None:
        self.root = paths.ensure_store(root)
        self._lock = locks.store_lock(shared=True, root=self.root)
        self._lock.__enter__()
        self.blobs = BlobStore(self.root)
        self.layers = LayerStore(self.root)
        self.temp = TempArea(self.root)
        self.temp.sweep()
        self.conn = catalog.connect(self.root)
        self._layer_info: dict[str, tuple[str | None, str | None, int | None, int]] = {}
        self._diff_ids: list[str] = []
        self._config: bytes | None = None
        self._manifest: tuple[bytes, str, str] | None = None

    # -- layers --

    def _record(self, diff_id: str, blob: str | None, media_type: str | None,
                blob_size: int | None, size: int) -> None:
        self._layer_info[diff_id] = (blob, media_type, blob_size, size)

    def reuse_config(self, descriptor: mf.Descriptor) -> bytes | None:
        row = self.conn.execute("SELECT config FROM images WHERE id=?",
                                (descriptor.digest,)).fetchone()
        return bytes(row["config"]) if row else None

    def reuse_layer(self, descriptor: mf.Descriptor, diff_id: str) -> LayerResult | None:
        self._diff_ids.append(diff_id)
        return self._existing(descriptor, diff_id)

    def _existing(self, descriptor: mf.Descriptor, diff_id: str,
                  conn=None) -> LayerResult | None:
        if not self.layers.has(diff_id):
            return None
        row = imagedb.layer_row(conn or self.conn, diff_id)
        if row is not None:
            self._record(diff_id, row["blob_digest"], row["media_type"], row["blob_size"],
                         row["size"])
            return LayerResult(diff_id, row["size"], True)
        # Unpacked by a pull that died before its commit: verified content, no row yet.
        blob = descriptor.digest if self.blobs.has(descriptor.digest) else None
        size = tree_size(self.layers.path(diff_id))
        self._record(diff_id, blob, descriptor.media_type if blob else None,
                     descriptor.size if blob else None, size)
        return LayerResult(diff_id, size, True)

    def put_layer(self, reader, descriptor: mf.Descriptor, diff_id: str,
                  progress) -> LayerResult:
        with locks.layer_lock(diff_id, root=self.root):
            if self.layers.has(diff_id):  # another pull unpacked it while we waited
                # (a worker thread: sqlite connections belong to the thread that made them)
                conn = catalog.connect(self.root)
                try:
                    result = self._existing(descriptor, diff_id, conn)
                finally:
                    conn.close()
                assert result is not None
                return result
            return self._unpack(reader, descriptor, diff_id, progress)

    def _unpack(self, reader, descriptor: mf.Descriptor, diff_id: str,
                progress) -> LayerResult:
        short = descriptor.digest[7:19]
        tmp_blob = self.temp.path("blob")
        tmp_dir = None
        sink = None
        blob = None
        try:
            sink = BlobWriter(tmp_blob)
            tmp_dir = self.temp.mkdir("layer")
            blob = BlobReader(reader, limit=descriptor.size, sink=sink, progress=progress)
            tar = DigestReader(decompressor(blob))
            try:
                unpack_tar(tar, tmp_dir)
                tar.drain()
                blob.drain()
            except (Cancelled, TransientError):
                raise
            except (UnpackError, OSError, EOFError, ValueError, RlError) as exc:
                # A corrupted stream often shows first as a decompression or tar error:
                # say what really happened when the bytes are not the published ones.
                if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise _disk_error(exc, f"layer {short}") from None
                self._blame_digest(blob, descriptor, diff_id, exc)
                if isinstance(exc, RlError):
                    raise RlError(f"layer {short}: {exc.message}", exc.fix) from None
                raise RlError(f"layer {short} cannot be decompressed: {exc}") from None
            self._check(blob, descriptor, tar.digest, diff_id)
            sink.finish()
            sink.close()
            sink = None
            self.blobs.commit(tmp_blob, descriptor.digest)
            self.layers.commit(tmp_dir, diff_id)
            tmp_dir = None
            self._record(diff_id, descriptor.digest, descriptor.media_type, descriptor.size,
                         tar.count)
            return LayerResult(diff_id, tar.count, False)
        except OSError as exc:
            raise _disk_error(exc, f"layer {short}") from None
        finally:
            if sink is not None:
                sink.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_blob)
            if tmp_dir is not None:
                remove_tree(tmp_dir)

    @staticmethod
    def _check(blob: BlobReader, desc: mf.Descriptor, tar_digest: str | None,
               diff_id: str) -> None:
        short = desc.digest[7:19]
        if blob.count < desc.size:
            raise RlError(f"layer {short} is truncated: got {blob.count} of {desc.size} bytes",
                          "the registry or the connection cut the download short; retry")
        if blob.digest != desc.digest:
            raise RlError(f"layer digest mismatch: expected {desc.digest}, got {blob.digest}",
                          "the registry served corrupted or tampered content")
        if tar_digest is not None and tar_digest != diff_id:
            raise RlError(f"layer {short}: uncompressed content is {tar_digest}, the image "
                          f"config says {diff_id}", "the image is corrupted")

    def _blame_digest(self, blob: BlobReader | None, desc: mf.Descriptor, diff_id: str,
                      original: BaseException) -> None:
        if blob is None:
            return
        try:
            blob.drain()
        except Exception:
            return
        self._check(blob, desc, None, diff_id)

    # -- config, manifest, commit --

    def put_config(self, data: bytes, descriptor: mf.Descriptor) -> None:
        self._config = data

    def put_manifest(self, data: bytes, media_type: str, digest: str) -> None:
        self._manifest = (data, media_type, digest)

    def commit(self, names: list[str]) -> str:
        import json

        assert self._config is not None and self._manifest is not None
        image_id = mf.sha256_digest(self._config)
        config = json.loads(self._config)
        data, media_type, digest = self._manifest
        size = 0
        try:
            with catalog.transaction(self.conn):
                for diff_id in self._diff_ids:
                    if not self.layers.has(diff_id):
                        raise RlError(f"layer {diff_id[:19]} vanished from the store during "
                                      "the pull", "retry the pull")
                    blob, mtype, blob_size, lsize = self._layer_info[diff_id]
                    imagedb.add_layer(self.conn, diff_id, blob, mtype, blob_size, lsize)
                    size += lsize
                imagedb.add_image(self.conn, image_id, digest, media_type, data, self._config,
                                  size, config.get("created"), self._diff_ids, names)
        except OSError as exc:
            raise _disk_error(exc, "the catalog") from None
        except Exception as exc:
            import sqlite3

            if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
                raise RlError("no space left on device while writing the catalog",
                              f"free some space on the filesystem of {self.root}") from None
            raise
        return image_id

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        self._lock.__exit__(None, None, None)


class StoreSource(ImageSource):
    """The local store as an ImageSource (for push, save, or a copy between stores).

    `get_manifest()` returns the manifest bytes exactly as pulled; `get_blob` serves the
    config from the catalog and layer blobs from blobs/. A layer that was reused by its
    diff_id from another image's (differently compressed) blob has no blob of this
    manifest's digest: get_blob raises NotFound for it, and a caller that needs it must
    recompress the unpacked layer and rewrite the manifest.
    """

    def __init__(self, image_id: str, root: Path | None = None) -> None:
        self.root = root or paths.data_dir()
        self.blobs = BlobStore(self.root)
        conn = catalog.connect(self.root)
        try:
            row = conn.execute("SELECT manifest, manifest_type, config FROM images WHERE id=?",
                               (image_id,)).fetchone()
        finally:
            conn.close()
        if row is None:
            raise NotFound(f"image {image_id} not found in the local store")
        self.name = image_id
        self._manifest = (bytes(row["manifest"]), row["manifest_type"])
        self._config = bytes(row["config"])
        self._config_digest = mf.sha256_digest(self._config)

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        if instance_digest and instance_digest != mf.sha256_digest(self._manifest[0]):
            raise NotFound(f"manifest {instance_digest} is not stored for {self.name}")
        return self._manifest

    @contextlib.contextmanager
    def get_blob(self, descriptor: mf.Descriptor):
        if descriptor.digest == self._config_digest:
            yield io.BytesIO(self._config), len(self._config)
            return
        try:
            f = open(self.blobs.path(descriptor.digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {descriptor.digest[:19]} of {self.name} is not in the "
                           "store (the layer was shared from another image)") from None
        with f:
            yield f, os.fstat(f.fileno()).st_size

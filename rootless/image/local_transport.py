"""Images made on this machine, and the store read for export, as ImageSources.

- `BlobSource`: a manifest we built plus blob files in a temp dir (what `rl import`,
  `rl commit` and `rl build` produce); copied into the store like any pull.
- `StoreExportSource`: a stored image for push and save. It serves the manifest exactly as
  pulled when every blob is held, so a pushed image keeps its digest; when a layer's blob is
  missing (reused by diff_id from another image) or another manifest format is asked for, it
  writes a new manifest, recompressing the missing layers from their unpacked directories
  (a re-made tar rarely has the original's bytes: its new diff_id goes into the config, so
  such a copy gets a new image id).

Also the blob helpers every transport here shares: `receive` (verify a stream against its
descriptor and diff_id while saving the blob and/or the uncompressed tar) and `compress`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from pathlib import Path

from rootless.errors import InvalidArgument, RlError
from rootless.image import manifest as mf
from rootless.image.streams import BlobReader, DigestReader, decompressor
from rootless.image.types import ImageSource

GZIP_LAYER = {mf.DOCKER_MANIFEST: "application/vnd.docker.image.rootfs.diff.tar.gzip",
              mf.OCI_MANIFEST: "application/vnd.oci.image.layer.v1.tar+gzip"}
CONFIG_OF = {mf.DOCKER_MANIFEST: mf.DOCKER_CONFIG, mf.OCI_MANIFEST: mf.OCI_CONFIG}
FORMATS = {"oci": mf.OCI_MANIFEST, "v2s2": mf.DOCKER_MANIFEST, "docker": mf.DOCKER_MANIFEST}
CHUNK = 1 << 20


def manifest_type_for(fmt: str | None) -> str | None:
    if fmt is None:
        return None
    if fmt not in FORMATS:
        raise InvalidArgument(f"unknown manifest format {fmt!r}", "use oci or v2s2")
    return FORMATS[fmt]


def receive(reader, descriptor: mf.Descriptor, diff_id: str | None, *,
            blob_path: str | None = None, tar_path: str | None = None,
            progress=None) -> int:
    """Consume `reader`, checking it against `descriptor` (digest, size) and its
    uncompressed content against `diff_id`; save the blob and/or the uncompressed tar.
    Returns the uncompressed size. On failure the files are removed and RlError raised."""
    fds = []
    try:
        blob_fd = None
        if blob_path:
            blob_fd = os.open(blob_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                              0o600)
            fds.append(blob_fd)
        blob = BlobReader(reader, limit=descriptor.size, sink_fd=blob_fd, progress=progress)
        tar = DigestReader(decompressor(blob)) if (diff_id or tar_path) else None
        if tar is not None:
            tar_fd = None
            if tar_path:
                tar_fd = os.open(tar_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC |
                                 os.O_CLOEXEC, 0o600)
                fds.append(tar_fd)
            try:
                while data := tar.read(CHUNK):
                    if tar_fd is not None:
                        view = memoryview(data)
                        while view:
                            view = view[os.write(tar_fd, view):]
            except (OSError, EOFError, ValueError) as exc:
                blob.drain()
                if blob.digest == descriptor.digest:
                    raise RlError(f"layer {descriptor.digest[:19]} cannot be decompressed: "
                                  f"{exc}") from None
        blob.drain()
        short = descriptor.digest[7:19]
        if blob.count != descriptor.size or blob.digest != descriptor.digest:
            raise RlError(f"blob {short}: expected {descriptor.digest} ({descriptor.size} "
                          f"bytes), got {blob.digest} ({blob.count} bytes)",
                          "the source is corrupted or truncated")
        if diff_id and tar is not None and tar.digest != diff_id:
            raise RlError(f"layer {short}: uncompressed content is {tar.digest}, the image "
                          f"config says {diff_id}", "the image is corrupted")
        return tar.count if tar is not None else blob.count
    except BaseException:
        for p in (blob_path, tar_path):
            if p:
                with contextlib.suppress(OSError):
                    os.unlink(p)
        raise
    finally:
        for fd in fds:
            os.close(fd)


def compress(tar_path: str, blob_path: str) -> tuple[str, int, str]:
    """gzip `tar_path` into `blob_path` (no timestamp in the header, so the same tar gives
    the same blob); returns (blob digest, blob size, diff_id)."""
    from isal import igzip

    tar_hash, blob_hash = hashlib.sha256(), hashlib.sha256()

    class _Sink(io.RawIOBase):
        def __init__(self, f) -> None:
            self.f, self.n = f, 0

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:
            blob_hash.update(b)
            self.n += len(b)
            return self.f.write(b)

    with open(tar_path, "rb") as src, open(blob_path, "wb") as out:
        sink = _Sink(out)
        with igzip.IGzipFile(fileobj=sink, mode="wb", compresslevel=1, mtime=0) as gz:
            while data := src.read(CHUNK):
                tar_hash.update(data)
                gz.write(data)
    return ("sha256:" + blob_hash.hexdigest(), sink.n, "sha256:" + tar_hash.hexdigest())


def file_digest(path: str) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while data := f.read(CHUNK):
            h.update(data)
            n += len(data)
    return "sha256:" + h.hexdigest(), n


def build_manifest(media_type: str, config: bytes,
                   layers: list[tuple[str, int, str]]) -> bytes:
    """Manifest bytes for `config` and layers given as (media type, size, digest)."""
    doc = {"schemaVersion": 2, "mediaType": media_type,
           "config": {"mediaType": CONFIG_OF[media_type], "size": len(config),
                      "digest": mf.sha256_digest(config)},
           "layers": [{"mediaType": t, "size": s, "digest": d} for t, s, d in layers]}
    return json.dumps(doc, indent=3).encode()


def convert_layer_type(layer_type: str, manifest_type: str) -> str | None:
    """The same layer's media type in the other manifest format, None if it has none."""
    comp = mf.LAYER_TYPES.get(layer_type, "?")
    if manifest_type == mf.DOCKER_MANIFEST:
        return GZIP_LAYER[mf.DOCKER_MANIFEST] if comp == "gzip" else None
    return {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
            "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
            None: "application/vnd.oci.image.layer.v1.tar"}.get(comp)


class BlobSource(ImageSource):
    """A manifest plus the files of its blobs (digest -> path) and the config bytes."""

    def __init__(self, name: str, manifest: bytes, media_type: str, config: bytes,
                 blobs: dict[str, str]) -> None:
        self.name = name
        self._manifest = (manifest, media_type)
        self._config = config
        self._config_digest = mf.sha256_digest(config)
        self.blobs = blobs

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        return self._manifest

    @contextlib.contextmanager
    def get_blob(self, descriptor: mf.Descriptor):
        if descriptor.digest == self._config_digest:
            yield io.BytesIO(self._config), len(self._config)
            return
        path = self.blobs.get(descriptor.digest)
        if path is None:
            raise RlError(f"blob {descriptor.digest[:19]} is not part of {self.name}")
        with open(path, "rb") as f:
            yield f, os.fstat(f.fileno()).st_size


class StoreExportSource(BlobSource):
    """A stored image, ready to be read whole (see the module docstring). `close()`
    deletes the recompressed layers."""

    def __init__(self, image_id: str, manifest_type: str | None = None) -> None:
        from rootless.image import layertar
        from rootless.store import catalog, imagedb
        from rootless.store.blobs import BlobStore
        from rootless.store.layers import LayerStore, TempArea

        conn = catalog.connect()
        try:
            row = conn.execute("SELECT manifest, manifest_type, config FROM images WHERE id=?",
                               (image_id,)).fetchone()
            if row is None:
                from rootless.errors import NotFound

                raise NotFound(f"image {image_id} not found in the local store")
            diff_ids = imagedb.layers_of(conn, image_id)
            layer_rows = {d: imagedb.layer_row(conn, d) for d in diff_ids}
        finally:
            conn.close()
        manifest, stored_type, config = bytes(row["manifest"]), row["manifest_type"], \
            bytes(row["config"])
        blobs, layers_store = BlobStore(), LayerStore()
        self._temps: list[str] = []
        doc = mf.parse(manifest, stored_type)
        assert isinstance(doc, mf.Manifest)
        want = manifest_type or stored_type
        changed = want != stored_type
        entries: list[tuple[str, int, str]] = []
        paths: dict[str, str] = {}
        replaced: dict[str, str] = {}
        try:
            for desc, diff_id in zip(doc.layers, diff_ids, strict=True):
                mtype = convert_layer_type(desc.media_type, want) if changed else \
                    desc.media_type
                if blobs.has(desc.digest) and mtype:
                    entries.append((mtype, desc.size, desc.digest))
                    paths[desc.digest] = str(blobs.path(desc.digest))
                    continue
                r = layer_rows.get(diff_id)
                if r is not None and r["blob_digest"] and blobs.has(r["blob_digest"]) and (
                        t := convert_layer_type(r["media_type"] or "", want)):
                    entries.append((t, r["blob_size"], r["blob_digest"]))
                    paths[r["blob_digest"]] = str(blobs.path(r["blob_digest"]))
                    continue
                changed = True
                tmp = TempArea()
                tar_path, blob_path = str(tmp.path("export.tar")), str(tmp.path("export.gz"))
                self._temps += [tar_path, blob_path]
                layertar.write_tar_file(str(layers_store.path(diff_id)), tar_path)
                digest, size, got = compress(tar_path, blob_path)
                os.unlink(tar_path)
                if got != diff_id:
                    # The same files, but not the same tar bytes as the original (entry
                    # order, headers): the copy names the layer by its new diff_id, which
                    # changes the config and so the image id (we keep no tar-split data).
                    replaced[diff_id] = got
                entries.append((GZIP_LAYER[want], size, digest))
                paths[digest] = blob_path
        except BaseException:
            self.close()
            raise
        if replaced:
            cfg = json.loads(config)
            cfg["rootfs"]["diff_ids"] = [replaced.get(d, d) for d in cfg["rootfs"]["diff_ids"]]
            config = json.dumps(cfg).encode()
        if changed:
            if want != stored_type:
                cfg_type = CONFIG_OF[want]
            else:
                cfg_type = doc.config.media_type or CONFIG_OF[want]
            manifest = build_manifest(want, config, entries)
            if cfg_type != CONFIG_OF[want]:
                d = json.loads(manifest)
                d["config"]["mediaType"] = cfg_type
                manifest = json.dumps(d, indent=3).encode()
        super().__init__(image_id, manifest, want, config, paths)

    def close(self) -> None:
        for p in self._temps:
            with contextlib.suppress(OSError):
                Path(p).unlink()

"""Tar archives of images: `docker-archive` (what `docker save`/`podman save` write) and
`oci-archive` (an OCI image layout in a tar), each as a source and a destination.

docker-archive: `manifest.json` ([{"Config", "RepoTags", "Layers"}]), `repositories`, the
config as `<hex>.json` and each layer as an uncompressed tar `<diff_id hex>.tar`.
oci-archive: `oci-layout`, `index.json` (one entry per image, its name in the
`org.opencontainers.image.ref.name` annotation) and `blobs/sha256/<hex>` as stored.

A writer collects one or more images in a temp dir (`destination()` per image, following
the ImageDestination contract) and `finish()` writes the archive; nothing reaches the
output path before that (written beside it and renamed). A reader opens an archive file
once; its sources read members by offset through their own file handles, so layers may be
read from several threads at once.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile

from rootless.errors import RlError
from rootless.image import manifest as mf
from rootless.image.local_transport import build_manifest, file_digest, receive
from rootless.image.types import ImageDestination, ImageSource, LayerResult
from rootless.store.decompress import GZIP_MAGIC, ZSTD_MAGIC

REF_ANNOTATION = "org.opencontainers.image.ref.name"
OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'


def _hex(digest: str) -> str:
    return digest.partition(":")[2]


# -- writing --

class _Writer:
    def __init__(self, output, tmp_parent: str | None = None) -> None:
        self.output = output  # a path, or a binary file object (stdout)
        self.dir = tempfile.mkdtemp(prefix="rl-save-", dir=tmp_parent)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _write(self, members: list[tuple[str, str | bytes]]) -> None:
        """The archive from (name, file path or bytes), atomically to a path."""
        if isinstance(self.output, str):
            tmp = f"{self.output}.rl-tmp-{os.getpid()}"
            try:
                with open(tmp, "wb") as f:
                    self._tar(f, members)
                os.replace(tmp, self.output)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        else:
            self._tar(self.output, members)
            self.output.flush()

    @staticmethod
    def _tar(fileobj, members) -> None:
        with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            for name, content in members:
                info = tarfile.TarInfo(name)
                info.mode = 0o644
                if name.endswith("/"):
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tf.addfile(info)
                elif isinstance(content, bytes):
                    info.size = len(content)
                    tf.addfile(info, io.BytesIO(content))
                else:
                    info.size = os.path.getsize(content)
                    with open(content, "rb") as f:
                        tf.addfile(info, f)


class DockerArchiveWriter(_Writer):
    def __init__(self, output, tmp_parent: str | None = None) -> None:
        super().__init__(output, tmp_parent)
        self.layers: set[str] = set()  # diff_ids written
        self.images: list[dict] = []
        self.configs: dict[str, bytes] = {}

    def destination(self) -> DockerArchiveDestination:
        return DockerArchiveDestination(self)

    def finish(self) -> None:
        members: list[tuple[str, str | bytes]] = []
        repositories: dict[str, dict[str, str]] = {}
        for hex_, data in self.configs.items():
            members.append((f"{hex_}.json", data))
        for diff_id in sorted(self.layers):
            members.append((f"{_hex(diff_id)}.tar", os.path.join(self.dir, _hex(diff_id))))
        for image in self.images:
            for tag in image["RepoTags"]:
                repo, _, t = tag.rpartition(":")
                if image["Layers"]:
                    repositories.setdefault(repo, {})[t] = image["Layers"][-1][:-4]
        members.append(("manifest.json", json.dumps(self.images).encode()))
        members.append(("repositories", json.dumps(repositories).encode()))
        self._write(members)


class DockerArchiveDestination(ImageDestination):
    def __init__(self, writer: DockerArchiveWriter) -> None:
        self.w = writer
        self.diff_ids: list[str] = []
        self.config: bytes | None = None

    def reuse_layer(self, descriptor, diff_id):
        self.diff_ids.append(diff_id)
        if diff_id in self.w.layers:
            return LayerResult(diff_id, os.path.getsize(os.path.join(self.w.dir, _hex(diff_id))),
                               True)
        return None

    def put_layer(self, reader, descriptor, diff_id, progress):
        path = os.path.join(self.w.dir, _hex(diff_id))
        tmp = path + f".{os.urandom(4).hex()}.part"
        size = receive(reader, descriptor, diff_id, tar_path=tmp, progress=progress)
        os.replace(tmp, path)
        self.w.layers.add(diff_id)
        return LayerResult(diff_id, size, False)

    def put_config(self, data, descriptor):
        self.config = data

    def put_manifest(self, data, media_type, digest):
        pass

    def commit(self, names):
        assert self.config is not None
        image_id = mf.sha256_digest(self.config)
        self.w.configs[_hex(image_id)] = self.config
        self.w.images.append({"Config": f"{_hex(image_id)}.json",
                              "RepoTags": [n for n in names if "@" not in n],
                              "Layers": [f"{_hex(d)}.tar" for d in self.diff_ids]})
        return image_id


class OciArchiveWriter(_Writer):
    def __init__(self, output, tmp_parent: str | None = None) -> None:
        super().__init__(output, tmp_parent)
        self.blobs: set[str] = set()
        self.index: list[dict] = []

    def destination(self) -> OciArchiveDestination:
        return OciArchiveDestination(self)

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.dir, _hex(digest))

    def put_bytes(self, data: bytes) -> str:
        digest = mf.sha256_digest(data)
        with open(self.blob_path(digest), "wb") as f:
            f.write(data)
        self.blobs.add(digest)
        return digest

    def finish(self) -> None:
        members: list[tuple[str, str | bytes]] = [
            ("oci-layout", OCI_LAYOUT), ("blobs/", b""), ("blobs/sha256/", b"")]
        for digest in sorted(self.blobs):
            members.append((f"blobs/sha256/{_hex(digest)}", self.blob_path(digest)))
        index = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": self.index}
        members.append(("index.json", json.dumps(index).encode()))
        self._write(members)


class OciArchiveDestination(ImageDestination):
    def __init__(self, writer: OciArchiveWriter) -> None:
        self.w = writer
        self.manifest: tuple[bytes, str, str] | None = None

    def reuse_layer(self, descriptor, diff_id):
        if descriptor.digest in self.w.blobs:
            return LayerResult(diff_id, descriptor.size, True)
        return None

    def put_layer(self, reader, descriptor, diff_id, progress):
        path = self.w.blob_path(descriptor.digest)
        tmp = path + f".{os.urandom(4).hex()}.part"
        size = receive(reader, descriptor, diff_id, blob_path=tmp, progress=progress)
        os.replace(tmp, path)
        self.w.blobs.add(descriptor.digest)
        return LayerResult(diff_id, size, False)

    def put_config(self, data, descriptor):
        self.w.put_bytes(data)

    def put_manifest(self, data, media_type, digest):
        self.manifest = (data, media_type, digest)

    def commit(self, names):
        assert self.manifest is not None
        data, media_type, digest = self.manifest
        self.w.put_bytes(data)
        doc = json.loads(data)
        tags = [n for n in names if "@" not in n] or [None]
        for name in tags:
            entry = {"mediaType": media_type, "digest": digest, "size": len(data)}
            if name:
                entry["annotations"] = {REF_ANNOTATION: name}
            self.w.index.append(entry)
        return doc["config"]["digest"]


# -- reading --

class _Member(io.RawIOBase):
    """A tar member's bytes read through a file handle of its own."""

    def __init__(self, path: str, offset: int, size: int) -> None:
        self.f = open(path, "rb")
        self.f.seek(offset)
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n)
        self.left -= len(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.f.close()
        super().close()


class Archive:
    """An image archive on disk (a copy of stdin, or decompressed, when it must be)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._tmp: str | None = None
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:2] == GZIP_MAGIC or head == ZSTD_MAGIC:
            self._decompress(head)
        try:
            self.tf = tarfile.open(self.path, "r:")
            self.members = {m.name.lstrip("./") if m.name not in (".", "./") else m.name: m
                            for m in self.tf.getmembers()}
        except (tarfile.TarError, OSError) as exc:
            self.close()
            raise RlError(f"{path} is not an image archive: {exc}") from None
        if "manifest.json" in self.members:
            self.kind = "docker-archive"
        elif "index.json" in self.members:
            self.kind = "oci-archive"
        else:
            self.close()
            raise RlError(f"{path} is not an image archive (no manifest.json or index.json)",
                          "give a file written by rl save, podman save or docker save")

    def _decompress(self, head: bytes) -> None:
        from rootless.store import paths

        fd, tmp = tempfile.mkstemp(prefix="rl-load-", dir=str(paths.ensure_store()))
        self._tmp = tmp
        with open(self.path, "rb") as src, os.fdopen(fd, "wb") as out:
            if head[:2] == GZIP_MAGIC:
                from isal import igzip

                shutil.copyfileobj(igzip.IGzipFile(fileobj=src, mode="rb"), out, 1 << 20)
            else:
                import zstandard

                zstandard.ZstdDecompressor().copy_stream(src, out)
        self.path = tmp

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        m = self.member(name)
        if m.size > limit:
            raise RlError(f"{name} in {self.path} is too large ({m.size} bytes)")
        with self.open(name) as f:
            return f.read()

    def member(self, name: str) -> tarfile.TarInfo:
        m = self.members.get(name.lstrip("./") if name not in (".", "./") else name)
        if m is None or not m.isreg():
            raise RlError(f"the archive lacks {name}", "the archive is incomplete or corrupted")
        return m

    def open(self, name: str) -> _Member:
        m = self.member(name)
        return _Member(self.path, m.offset_data, m.size)

    def sources(self) -> list[tuple[ImageSource, list[str]]]:
        """One (source, names) per image in the archive."""
        if self.kind == "docker-archive":
            try:
                entries = json.loads(self.read("manifest.json"))
                assert isinstance(entries, list)
            except (ValueError, AssertionError):
                raise RlError("malformed manifest.json in the archive") from None
            return [(DockerArchiveSource(self, e), list(e.get("RepoTags") or []))
                    for e in entries]
        index = json.loads(self.read("index.json"))
        out: list[tuple[ImageSource, list[str]]] = []
        for entry in index.get("manifests", []):
            desc = mf.Descriptor.parse(entry, "index.json entry")
            name = (entry.get("annotations") or {}).get(REF_ANNOTATION)
            out.append((OciArchiveSource(self, desc), [name] if name else []))
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.tf.close()
        if self._tmp:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)


class _ArchiveSource(ImageSource):
    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.name = archive.path
        self.files: dict[str, str] = {}  # digest -> member name

    @contextlib.contextmanager
    def get_blob(self, descriptor):
        name = self.files.get(descriptor.digest)
        if name is None:
            raise RlError(f"blob {descriptor.digest[:19]} is not in the archive")
        with self.archive.open(name) as f:
            yield f, self.archive.member(name).size


class DockerArchiveSource(_ArchiveSource):
    """One image of a docker-archive, presented with an OCI manifest we write (the
    archive has none): layers as stored in the archive (usually uncompressed tars)."""

    def __init__(self, archive: Archive, entry: dict) -> None:
        super().__init__(archive)
        config_name = entry.get("Config")
        layers = entry.get("Layers")
        if not isinstance(config_name, str) or not isinstance(layers, list):
            raise RlError("malformed manifest.json in the archive: no Config or Layers")
        config = archive.read(config_name)
        self.files[mf.sha256_digest(config)] = config_name
        entries = []
        for name in layers:
            m = archive.member(name)
            with archive.open(name) as f:
                head = f.read(4)
            h = file_digest_member(archive, name)
            mtype = ("application/vnd.oci.image.layer.v1.tar+gzip" if head[:2] == GZIP_MAGIC
                     else "application/vnd.oci.image.layer.v1.tar+zstd" if head == ZSTD_MAGIC
                     else "application/vnd.oci.image.layer.v1.tar")
            entries.append((mtype, m.size, h))
            self.files[h] = name
        self.manifest = build_manifest(mf.OCI_MANIFEST, config, entries)

    def get_manifest(self, instance_digest=None):
        return self.manifest, mf.OCI_MANIFEST


def file_digest_member(archive: Archive, name: str) -> str:
    import hashlib

    h = hashlib.sha256()
    with archive.open(name) as f:
        while data := f.read(1 << 20):
            h.update(data)
    return "sha256:" + h.hexdigest()


class OciArchiveSource(_ArchiveSource):
    def __init__(self, archive: Archive, desc: mf.Descriptor) -> None:
        super().__init__(archive)
        self.desc = desc

    def _blob_name(self, digest: str) -> str:
        return f"blobs/sha256/{_hex(digest)}"

    def get_manifest(self, instance_digest=None):
        digest = instance_digest or self.desc.digest
        data = self.archive.read(self._blob_name(digest))
        if mf.sha256_digest(data) != digest:
            raise RlError(f"manifest {digest[:19]} in the archive does not match its digest")
        media_type = mf.sniff_media_type(data, self.desc.media_type or None)
        doc = mf.parse(data, media_type)
        if isinstance(doc, mf.Manifest):
            for d in (doc.config, *doc.layers):
                self.files[d.digest] = self._blob_name(d.digest)
        return data, media_type


__all__ = ["Archive", "DockerArchiveWriter", "OciArchiveWriter", "file_digest"]

"""Images in and out of the store: save, load, push, history, import, export, commit.

Every transfer is `copy(src, dst)` of rootless/image/copy.py (DESIGN.md section 2):
save = StoreExportSource -> archive writer, load = archive source -> StoreDestination,
push = StoreExportSource -> RegistryDestination, import/commit = BlobSource (a layer we
made) -> StoreDestination. `add_image` is what `rl build` uses to store what it made.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from rootless.errors import InvalidArgument, NotFound, RlError
from rootless.image import reference

LOCAL_DOMAIN = "localhost"
SAVE_FORMATS = ("docker-archive", "oci-archive")


def normalize_name(text: str) -> str:
    """A name for an image made here: a short name goes under localhost/, as podman does."""
    ref = reference.parse(text)
    if ref.digest:
        raise InvalidArgument(f"cannot name an image with a digest: {text!r}",
                              "use name[:tag]")
    if ref.is_short:
        ref = ref.with_domain(LOCAL_DOMAIN)
    return ref.tagged


# The source epoch of the verb running in this thread (build, commit, import), which its
# caller passes (the CLI: --timestamp or SOURCE_DATE_EPOCH): a context variable, so that
# the helpers deep in a build read it and two builds in two threads each have their own.
_EPOCH: contextvars.ContextVar[int | None] = contextvars.ContextVar("source_epoch",
                                                                   default=None)


@contextlib.contextmanager
def source_epoch_of(epoch: int | None):
    """Within: `epoch` is the time written into configs and the clamp for every timestamp
    in new layers, for reproducible images (None: now, and the files' own times)."""
    if epoch is not None and epoch < 0:
        raise InvalidArgument("the source epoch must be >= 0")
    token = _EPOCH.set(epoch)
    try:
        yield
    finally:
        _EPOCH.reset(token)


def source_epoch() -> int | None:
    return _EPOCH.get()


def now_iso() -> str:
    epoch = source_epoch()
    t = epoch if epoch is not None else time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + (
        f".{int((t % 1) * 1e9):09d}Z" if epoch is None else "Z")


# -- save / load --

def save(names: list[str], output, fmt: str = "docker-archive") -> None:
    """Write the images `names` to `output` (a path, or a binary file object)."""
    from rootless.engine import images
    from rootless.image.archive_transport import DockerArchiveWriter, OciArchiveWriter
    from rootless.image.copy import copy
    from rootless.image.local_transport import StoreExportSource
    from rootless.store import paths

    if fmt not in SAVE_FORMATS:
        raise InvalidArgument(f"unknown archive format {fmt!r}",
                              f"use one of {', '.join(SAVE_FORMATS)}")
    if not names:
        raise InvalidArgument("rl save needs at least one image")
    records = []
    for n in names:
        rec = images.get_image(n)
        tags = [rec_name for rec_name in rec.repo_tags]
        chosen = None
        with contextlib.suppress(InvalidArgument):
            ref = reference.parse(n)
            for cand in images.local_candidates(ref):
                if cand.tagged in rec.names:
                    chosen = [cand.tagged]
        records.append((rec, chosen if chosen is not None else tags[:1]))
    paths.ensure_store()
    writer_cls = DockerArchiveWriter if fmt == "docker-archive" else OciArchiveWriter
    writer = writer_cls(output, tmp_parent=str(paths.data_dir()))
    try:
        for rec, tags in records:
            src = StoreExportSource(rec.id, manifest_type=None)
            dst = writer.destination()
            try:
                copy(src, dst, names=tags)
            finally:
                dst.close()
                src.close()
        writer.finish()
    finally:
        writer.cleanup()


def load(source) -> list[tuple[str, list[str]]]:
    """Load every image of an archive (a path, or a binary file object of the caller's,
    read to its end and not closed: spooled to the store's temp area first, since an
    archive is read out of order); returns (image id, names) per image."""
    if isinstance(source, str):
        return _load(source)
    import shutil
    import tempfile

    from rootless.store import paths

    fd, tmp = tempfile.mkstemp(prefix="rl-load-", dir=str(paths.ensure_store()))
    try:
        with os.fdopen(fd, "wb") as f:
            shutil.copyfileobj(source, f, 1 << 20)
        return _load(tmp)
    finally:
        os.unlink(tmp)


def _load(path: str) -> list[tuple[str, list[str]]]:
    from rootless.image.archive_transport import Archive
    from rootless.image.copy import copy
    from rootless.image.store_transport import StoreDestination

    if not os.path.exists(path):
        raise NotFound(f"{path}: no such file")
    archive = Archive(path)
    loaded = []
    try:
        sources = archive.sources()
        if not sources:
            raise RlError(f"{path} holds no image")
        for src, raw_names in sources:
            names = []
            for n in raw_names:
                try:
                    names.append(reference.parse(n).tagged or n)
                except InvalidArgument:
                    continue
            dst = StoreDestination()
            try:
                result = copy(src, dst, names=names)
            finally:
                dst.close()
                src.close()
            loaded.append((result.image_id, names))
    finally:
        archive.close()
    return loaded


# -- push --

@dataclass
class PushResult:
    digest: str
    pushed: int
    skipped: int
    destination: str
    mounted: int = 0


def push(name: str, dest: str | None = None, fmt: str | None = None,
         progress=None) -> PushResult:
    """Push the image `name` to `dest` (default: its own name's registry); `progress`
    (rootless/image/progress.py) gets each blob's progress."""
    from rootless.engine import images
    from rootless.image import progress as prog
    from rootless.image import registries_conf
    from rootless.image.copy import copy
    from rootless.image.local_transport import StoreExportSource, manifest_type_for
    from rootless.image.push_transport import RegistryDestination

    mtype = manifest_type_for(fmt)
    record = images.get_image(name)
    target = dest.removeprefix("docker://") if dest else name
    ref = reference.parse(target)
    if ref.is_short:
        if dest is None:
            match = next((n for n in record.repo_tags
                          if reference.parse(n).short_path == ref.short_path), None)
            if match is None or match.startswith(LOCAL_DOMAIN + "/"):
                raise InvalidArgument(f"{target} names no registry",
                                      "give a destination: rl push NAME REGISTRY/REPO[:TAG]")
            ref = reference.parse(match)
        else:
            raise InvalidArgument(f"{target} names no registry",
                                  "give the registry: REGISTRY/REPO[:TAG]")
    if not ref.tag and not ref.digest:
        ref = reference.parse(f"{ref.name}:latest")
    src = StoreExportSource(record.id, manifest_type=mtype)
    try:
        # other repositories of the same registry the image came from: blobs there can
        # be mounted instead of uploaded
        mount_from = []
        for n in record.names:
            with contextlib.suppress(InvalidArgument):
                r = reference.parse(n)
                if r.domain == ref.domain:
                    mount_from.append(r.path)
        dst = RegistryDestination(ref, registries_conf.load(), mount_from=mount_from)
        try:
            with prog.sink(progress) as sink:
                result = copy(src, dst, names=[str(ref)], progress=sink)
        finally:
            dst.close()
    finally:
        src.close()
    return PushResult(result.manifest_digest, dst.pushed,
                      len(result.layers) - dst.pushed - dst.mounted, str(ref), dst.mounted)


# -- history --

def history(name: str) -> list[dict]:
    """Newest first: id (the image's for the top entry, else "<missing>"), created,
    created_by, size, comment, empty_layer."""
    from rootless.engine import images

    record = images.get_image(name)
    from rootless.store import catalog, imagedb

    conn = catalog.connect()
    try:
        sizes = [(imagedb.layer_row(conn, d) or {"size": 0})["size"] for d in record.diff_ids]
    finally:
        conn.close()
    entries = record.config.get("history") or []
    out = []
    layer_i = 0
    for h in entries:
        empty = bool(h.get("empty_layer"))
        size = 0
        if not empty and layer_i < len(sizes):
            size = sizes[layer_i]
            layer_i += 1
        out.append({"created": h.get("created"), "created_by": h.get("created_by", ""),
                    "size": size, "comment": h.get("comment", ""), "empty_layer": empty})
    for extra in sizes[layer_i:]:  # layers without a history entry
        out.append({"created": record.created, "created_by": "", "size": extra,
                    "comment": "", "empty_layer": False})
    out.reverse()
    for i, e in enumerate(out):
        e["id"] = record.id if i == 0 else "<missing>"
    return out


# -- making images from layers we write --

@dataclass
class NewLayer:
    blob_path: str
    digest: str
    size: int
    diff_id: str


def layer_from_tar(tar_path: str) -> NewLayer:
    """Compress an uncompressed layer tar (kept) into a blob beside it."""
    from rootless.image.local_transport import compress

    blob = tar_path + ".gz"
    digest, size, diff_id = compress(tar_path, blob)
    return NewLayer(blob, digest, size, diff_id)


def base_config(parent: dict | None = None) -> dict:
    from rootless.image import manifest as mf

    if parent is not None:
        cfg = json.loads(json.dumps(parent))
    else:
        _os, arch, variant = mf.host_platform()
        cfg = {"architecture": arch, "os": _os, "config": {}, "history": [],
               "rootfs": {"type": "layers", "diff_ids": []}}
        if variant and arch == "arm64":
            cfg["variant"] = variant
    cfg.setdefault("config", {})
    cfg.setdefault("history", [])
    cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    for k in ("container", "container_config", "docker_version", "id", "parent"):
        cfg.pop(k, None)
    return cfg


def add_image(config: dict, parent_id: str | None, new_layers: list[NewLayer],
              names: list[str]) -> str:
    """Store an image: `parent_id`'s layers (None: no parent) plus `new_layers`, with
    `config` (whose rootfs.diff_ids this sets). Goes through copy() into the store."""
    from rootless.image import manifest as mf
    from rootless.image.copy import copy
    from rootless.image.local_transport import BlobSource, StoreExportSource, build_manifest
    from rootless.image.store_transport import StoreDestination

    layers: list[tuple[str, int, str]] = []
    blobs: dict[str, str] = {}
    diff_ids: list[str] = []
    parent_src = None
    try:
        if parent_id is not None:
            parent_src = StoreExportSource(parent_id, manifest_type=mf.OCI_MANIFEST)
            pdata, _ = parent_src.get_manifest()
            pdoc = json.loads(pdata)
            pcfg = json.loads(parent_src._config)
            diff_ids += pcfg["rootfs"]["diff_ids"]
            for entry in pdoc["layers"]:
                layers.append((entry["mediaType"], entry["size"], entry["digest"]))
            blobs.update(parent_src.blobs)
        for nl in new_layers:
            layers.append(("application/vnd.oci.image.layer.v1.tar+gzip", nl.size, nl.digest))
            blobs[nl.digest] = nl.blob_path
            diff_ids.append(nl.diff_id)
        config = dict(config)
        config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        config_bytes = json.dumps(config).encode()
        manifest = build_manifest(mf.OCI_MANIFEST, config_bytes, layers)
        src = BlobSource("the new image", manifest, mf.OCI_MANIFEST, config_bytes, blobs)
        dst = StoreDestination()
        try:
            result = copy(src, dst, names=names)
        finally:
            dst.close()
        return result.image_id
    finally:
        if parent_src is not None:
            parent_src.close()


def parse_changes(items: list[str]) -> dict:
    """The config changes of commit/import (`--change`, the API's `changes`): Dockerfile
    instructions 'CMD ["x"]' / 'ENV K=V' / 'WORKDIR /x' / 'ENTRYPOINT [...]' / 'USER u'."""
    out: dict = {}
    for item in items:
        word, _, rest = item.strip().partition(" ")
        word, rest = word.upper(), rest.strip()
        if word in ("CMD", "ENTRYPOINT"):
            try:
                value = json.loads(rest)
            except ValueError:
                value = ["/bin/sh", "-c", rest]
            out["Cmd" if word == "CMD" else "Entrypoint"] = value
        elif word == "ENV":
            k, _, v = rest.partition("=")
            out.setdefault("Env", []).append(f"{k}={v}")
        elif word == "WORKDIR":
            out["WorkingDir"] = rest
        elif word == "USER":
            out["User"] = rest
        else:
            raise InvalidArgument(f"unsupported --change {item!r}",
                                  "use CMD, ENTRYPOINT, ENV, WORKDIR or USER")
    return out


def import_(source: str, name: str | None = None, message: str | None = None,
            changes: list[str] | None = None, *, stream=None,
            source_epoch: int | None = None) -> str:
    """`rl import FILE|- [NAME]`: a rootfs tarball (maybe compressed) as a one-layer image,
    created at `source_epoch` (None: now). Source "-" is `stream`, a binary file object
    of the caller's, read to its end, not closed."""
    if source == "-" and stream is None:
        raise InvalidArgument("importing from '-' needs a stream to read")
    config = parse_changes(changes or [])  # a bad --change fails before any work
    with source_epoch_of(source_epoch):
        return _import(source, name, message, config, stream)


def _import(source: str, name: str | None, message: str | None, changes: dict | None,
            stream) -> str:
    from rootless.image.streams import BlobReader, decompressor
    from rootless.store.layers import TempArea

    names = [normalize_name(name)] if name else []
    if source != "-" and not os.path.isfile(source):
        raise NotFound(f"{source}: no such file")
    tmp = str(TempArea().path("import.tar"))
    try:
        raw = stream if source == "-" else open(source, "rb")
        try:
            reader = decompressor(BlobReader(raw, limit=1 << 62))
            with open(tmp, "wb") as out:
                while data := reader.read(1 << 20):
                    out.write(data)
        except (OSError, EOFError, ValueError) as exc:
            raise RlError(f"cannot read {source}: {exc}") from None
        finally:
            if raw is not stream:
                raw.close()
        _check_tar(tmp, source)
        layer = layer_from_tar(tmp)
        try:
            cfg = base_config()
            cfg["created"] = now_iso()
            cfg["config"].update(changes or {})
            cfg["history"] = [{"created": cfg["created"], "created_by": "rl import",
                               **({"comment": message} if message else {})}]
            return add_image(cfg, None, [layer], names)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(layer.blob_path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _check_tar(path: str, what: str) -> None:
    import tarfile

    try:
        with tarfile.open(path, "r:") as tf:
            tf.next()
    except tarfile.TarError as exc:
        raise RlError(f"{what} is not a tar archive: {exc}") from None


# -- containers to images and tars --

def _stopped_rootfs(c):
    from rootless.runtime.rootfs import RootfsSpec

    if c.state in ("running", "restarting"):
        raise RlError(f"container {c.name} is {c.state}", "stop it first (rl stop)")
    return RootfsSpec.load(str(c.dir / "rootfs.json"))


def export(ref: str, output: str | int) -> None:
    """The container's whole filesystem as a tar: to the file `output` (written beside it
    and renamed into place once complete: a failed export leaves no partial file), or to
    the caller's fd `output` (not closed)."""
    if isinstance(output, int):
        return _export(ref, output)
    tmp = f"{output}.rl-tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _export(ref, fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, output)
    finally:
        if fd >= 0:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return None


def _export(ref: str, out_fd: int) -> None:
    from rootless.engine import containers
    from rootless.image import layertar
    from rootless.runtime import copying

    c = containers.lookup(ref)
    rfs = _stopped_rootfs(c)

    def produce() -> int:
        with os.fdopen(os.dup(out_fd), "wb") as out:
            layertar.write_tar("/", out)
        return 0

    copying.child_in_container(rfs, produce).wait(f"exporting container {c.name} failed")


def upper_layer(upper: str) -> NewLayer | None:
    """The changes in a container's upper dir as a new layer (None when nothing changed)."""
    from rootless.image import layertar
    from rootless.store.layers import TempArea

    if not os.listdir(upper):
        return None
    tmp = str(TempArea().path("layer.tar"))
    try:
        layertar.write_tar_file(upper, tmp, in_userns=True, upper=True,
                                 mtime=source_epoch())
        return layer_from_tar(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def commit(ref: str, name: str | None, *, message: str | None = None,
           author: str | None = None, changes: list[str] | None = None,
           source_epoch: int | None = None) -> str:
    """The container's changes as a new image on top of its own; `source_epoch`: the
    creation time and the clamp of the new layer's timestamps (None: now)."""
    config = parse_changes(changes or [])  # a bad --change fails before any work
    with source_epoch_of(source_epoch):
        return _commit(ref, name, message, author, config)


def _commit(ref: str, name: str | None, message: str | None, author: str | None,
            changes: dict | None) -> str:
    from rootless.engine import containers, images

    c = containers.lookup(ref)
    names = [normalize_name(name)] if name else []
    image = images.get_image(c.image_id)
    layer = upper_layer(str(c.dir / "upper"))
    try:
        cfg = base_config(image.config)
        cfg["created"] = now_iso()
        if author:
            cfg["author"] = author
        cfg["config"].update(changes or {})
        cmd = json.loads(json.dumps(c.spec()["process"]["args"]))
        cfg["history"].append({"created": cfg["created"],
                               "created_by": " ".join(cmd),
                               **({"comment": message} if message else {}),
                               **({} if layer else {"empty_layer": True})})
        return add_image(cfg, image.id, [layer] if layer else [], names)
    finally:
        if layer:
            with contextlib.suppress(OSError):
                os.unlink(layer.blob_path)


def data_tmp() -> Path:
    from rootless.store import paths

    return paths.data_dir() / "tmp"

"""Images as verbs: pull, look up, list, tag, remove, prune, inspect, login, logout.

The one API the CLI (and later the compose and Docker-API front ends, `rl run`, `rl build`)
use for images. Pull is `copy(RegistrySource, StoreDestination)`. Everything that
changes the store validates all its input first, so a bad argument changes nothing.

Heavy modules (httpx, rich) are imported only by the verbs that talk to registries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rootless.errors import Conflict, InvalidArgument, NotFound, RlError
from rootless.image import reference
from rootless.store import buildcache, catalog, imagedb, locks

PULL_POLICIES = ("missing", "always", "never")
LOCAL_DOMAIN = "localhost"  # where podman puts built images with a short name


@dataclass
class ImageRecord:
    id: str  # the config digest, "sha256:..."
    names: list[str]  # normalised references, e.g. "docker.io/library/busybox:latest"
    config: dict  # the OCI image config as stored
    layer_dirs: list[Path]  # unpacked layer directories, bottom layer first
    manifest_digest: str
    size: int  # uncompressed bytes of all layers
    created: str | None
    diff_ids: list[str] = field(default_factory=list)
    manifest_type: str = ""
    added: float = 0.0

    @property
    def short_id(self) -> str:
        return self.id.partition(":")[2][:12]

    @property
    def repo_tags(self) -> list[str]:
        return [n for n in self.names if "@" not in n]

    @property
    def repo_digests(self) -> list[str]:
        repos = []
        for name in self.names:
            repo = name.split("@", 1)[0] if "@" in name else name.rsplit(":", 1)[0]
            if repo not in repos:
                repos.append(repo)
        out = [f"{repo}@{self.manifest_digest}" for repo in repos]
        out += [n for n in self.names if "@" in n and n not in out]
        return out


# -- reading the store --

def _connect():
    return catalog.connect()


def _record(conn, row, known: tuple[dict, dict] | None = None,
            layers=None) -> ImageRecord:
    """`known`: imagedb.all_names_and_layers, for a listing (no query per image)."""
    if layers is None:
        from rootless.store.layers import LayerStore

        layers = LayerStore()
    if known is not None:
        names, diff_ids = known[0].get(row["id"], []), known[1].get(row["id"], [])
    else:
        names = imagedb.names_of(conn, row["id"])
        diff_ids = imagedb.layers_of(conn, row["id"])
    return ImageRecord(
        id=row["id"], names=names,
        config=json.loads(row["config"]), layer_dirs=[layers.path(d) for d in diff_ids],
        manifest_digest=row["manifest_digest"], size=row["size"], created=row["created"],
        diff_ids=diff_ids, manifest_type=row["manifest_type"], added=row["added"])


def local_candidates(ref: reference.Reference) -> list[reference.Reference]:
    if not ref.is_short:
        return [ref]
    from rootless.image import registries_conf

    domains = [*registries_conf.load().search_registries(), LOCAL_DOMAIN]
    return [ref.with_domain(d) for d in dict.fromkeys(domains)]


def _find(conn, text: str):
    """The image row for a name or (abbreviated) id, or None."""
    try:
        ref = reference.parse(text)
    except InvalidArgument:
        ref = None
    if ref is not None:
        for cand in local_candidates(ref):
            if cand.digest:
                row = conn.execute("SELECT images.* FROM image_names JOIN images ON "
                                   "images.id=image_names.image_id WHERE name=?",
                                   (cand.pinned,)).fetchone()
                if row is None:
                    row = conn.execute(
                        "SELECT images.* FROM image_names JOIN images ON "
                        "images.id=image_names.image_id WHERE images.manifest_digest=? AND "
                        "(name LIKE ? OR name LIKE ?)",
                        (cand.digest, cand.name + ":%", cand.name + "@%")).fetchone()
            else:
                row = conn.execute("SELECT images.* FROM image_names JOIN images ON "
                                   "images.id=image_names.image_id WHERE name=?",
                                   (cand.tagged,)).fetchone()
            if row is not None:
                return row
    if reference.is_image_id(text):
        hex_part = text.removeprefix("sha256:")
        rows = conn.execute("SELECT * FROM images WHERE id LIKE ?",
                            (f"sha256:{hex_part}%",)).fetchall()
        if len(rows) > 1:
            raise InvalidArgument(f"image id prefix {text!r} is ambiguous ({len(rows)} images)",
                                  "give more digits")
        if rows:
            return rows[0]
    if ref is None:
        reference.parse(text)  # raises the reference's own error
    return None


def get_image(ref_or_id: str) -> ImageRecord:
    """The local image named `ref_or_id` (a reference or an id prefix); NotFound if absent."""
    conn = _connect()
    try:
        row = _find(conn, ref_or_id)
        if row is None:
            raise NotFound(f"image {ref_or_id} not found in the local store",
                           f"pull it with: rl pull {ref_or_id}")
        return _record(conn, row)
    finally:
        conn.close()


def list_images(filter_ref: str | None = None, *, all_images: bool = False,
                filters: dict[str, list[str]] | None = None) -> list[ImageRecord]:
    """The stored images, newest first. As `docker images` does, untagged images that are
    the parent of a later build step (intermediate images) are left out unless `all_images`.
    `filters`: Docker's (dangling, label, before, since, reference: engine/filters.py)."""
    conn = _connect()
    try:
        rows = conn.execute("SELECT * FROM images ORDER BY added DESC").fetchall()
        from rootless.store.layers import LayerStore

        known, layers = imagedb.all_names_and_layers(conn), LayerStore()
        records = [_record(conn, r, known, layers) for r in rows]
        if not all_images:
            parents = buildcache.parents(conn)
            records = [r for r in records if r.names or r.id not in parents]
    finally:
        conn.close()
    if filter_ref:
        ref = reference.parse(filter_ref, default_tag=False)
        repos = {c.name for c in local_candidates(ref)}
        records = [r for r in records if any(
            n.split("@")[0].rsplit(":", 1)[0] in repos and (ref.tag is None or n.endswith(
                f":{ref.tag}")) for n in r.names)]
    if filters:
        from rootless.engine import filters as flt

        records = flt.images(records, filters, get_image)
    return records


# -- pulling --

def _pull_candidates(text: str) -> list[reference.Reference]:
    ref = reference.parse(text)
    if not ref.is_short:
        return [ref]
    from rootless.image import registries_conf

    return [ref.with_domain(d) for d in registries_conf.load().search_registries()]


def pull(ref: str, *, platform: str | None = None, progress=None) -> ImageRecord:
    """Pull `ref` from its registry into the store; returns the stored image.

    Short names are tried against each unqualified-search-registry in turn. `progress`
    (rootless/image/progress.py) gets the status lines and each layer's progress; None:
    nothing is shown. A failed pull leaves the blobs it verified (a next pull reuses them)
    and no image.
    """
    from rootless.image import manifest as mf
    from rootless.image import progress as prog
    from rootless.image import registries_conf

    progress = prog.sink(progress)

    if platform:
        mf.parse_platform(platform)  # validate before any network traffic
    candidates = _pull_candidates(ref)
    conf = registries_conf.load()
    errors: list[RlError] = []
    for cand in candidates:
        progress.message(f"Trying to pull {cand}...")
        try:
            record = _pull_one(cand, conf, platform, progress)
            from rootless.engine import events

            events.emit("image", "pull", str(cand), {"name": str(cand)})
            return record
        except NotFound as exc:
            errors.append(exc)
        except RlError as exc:
            from rootless.image.registry import AuthError

            if not isinstance(exc, AuthError) or len(candidates) == 1:
                raise
            errors.append(exc)
    if len(errors) == 1:
        raise errors[0]
    raise NotFound(f"image {ref} not found in any of the search registries: "
                   + "; ".join(e.message for e in errors),
                   "check the name, or qualify it with its registry")


def _pull_one(ref: reference.Reference, conf, platform: str | None,
              progress) -> ImageRecord:
    from rootless.image.copy import copy
    from rootless.image.docker_transport import RegistrySource
    from rootless.image.store_transport import StoreDestination

    names = [n for n in (ref.tagged, None if ref.tag else ref.pinned) if n]
    src = RegistrySource(ref, conf)
    try:
        dst = StoreDestination()
        try:
            with progress:
                result = copy(src, dst, names=names, platform=platform, progress=progress)
        except NotFound as exc:
            if exc.message.startswith("manifest "):
                raise NotFound(f"image {ref} not found in registry {src.registry}",
                               "check the name and tag") from None
            raise
        finally:
            dst.close()
    finally:
        src.close()
    total = len(result.layers)
    progress.message(f"Pulled {ref}: {result.downloaded} of {total} layer"
                     f"{'s' if total != 1 else ''} downloaded, "
                     f"{total - result.downloaded} already present")
    return get_image(result.image_id)


_pull = pull  # ensure_image's `pull` argument shadows the function


def ensure_image(ref: str, *, pull: str = "missing", platform: str | None = None,
                 progress=None) -> ImageRecord:
    """What `rl run`/`rl create` call: the local image, pulled per policy
    (missing: only when absent; always: pull; never: local only), with `progress` as
    pull's."""
    if pull not in PULL_POLICIES:
        raise InvalidArgument(f"invalid pull policy {pull!r}",
                              f"use one of {', '.join(PULL_POLICIES)}")
    if pull == "always":
        return _pull(ref, platform=platform, progress=progress)
    try:
        image = get_image(ref)
    except NotFound:
        if pull == "never":
            raise NotFound(f"image {ref} not found in the local store and pull policy is "
                           "'never'", f"pull it first with: rl pull {ref}") from None
        return _pull(ref, platform=platform, progress=progress)
    if platform and pull == "missing":
        from rootless.image import manifest as mf

        os_, arch, _ = mf.parse_platform(platform)
        if (image.config.get("os"), image.config.get("architecture")) != (os_, arch):
            return _pull(ref, platform=platform, progress=progress)
    return image


# -- changing names, removing --

def tag(source: str, target: str) -> str:
    """Give the image `source` the name `target`; returns the normalised new name."""
    new = reference.parse(target)
    if new.digest:
        raise InvalidArgument(f"cannot tag with a digest: {target!r}", "use name[:tag]")
    image = get_image(source)
    conn = _connect()
    try:
        with catalog.transaction(conn):
            imagedb.set_name(conn, new.tagged, image.id)
    finally:
        conn.close()
    return new.tagged


@dataclass
class RemoveResult:
    untagged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def _is_id_arg(text: str, record: ImageRecord) -> bool:
    return reference.is_image_id(text) and record.id.removeprefix("sha256:").startswith(
        text.removeprefix("sha256:"))


def _matching_name(text: str, record: ImageRecord) -> str | None:
    try:
        ref = reference.parse(text)
    except InvalidArgument:
        return None
    for cand in local_candidates(ref):
        for name in (cand.tagged, cand.pinned):
            if name and name in record.names:
                return name
    return None


def _other_tags(names, name: str) -> bool:
    """Whether removing `name` leaves the image a tag. Digest names (`repo@sha256:..`) do
    not keep an image alive: removing its last tag removes it, as in Docker."""
    return any("@" not in n and n != name for n in names)


def remove(refs: list[str], *, force: bool = False) -> RemoveResult:
    """rmi: untag a name, or delete an image and the layers no other image uses.

    All arguments are resolved and checked before anything changes. An image used by a
    container (the `containers` table's image_id) is refused unless `force`, and then only
    untagged, so the container keeps its layers.
    """
    plan: list[tuple[str, ImageRecord, str | None]] = []
    conn = _connect()
    try:
        in_use = imagedb.images_in_use(conn)
    finally:
        conn.close()
    for text in refs:
        try:
            record = get_image(text)
        except NotFound:
            if force:
                continue
            raise
        name = None if _is_id_arg(text, record) else _matching_name(text, record)
        if name is None and len(record.repo_tags) > 1 and not force:
            raise Conflict(f"image {text} has several names "
                           f"({', '.join(record.repo_tags)})",
                           "remove them by name, or use -f")
        deleting = name is None or not _other_tags(record.names, name)
        if deleting and record.id in in_use and not force:
            raise Conflict(f"image {text} is in use by a container",
                           "remove the container first, or use -f to untag it")
        plan.append((text, record, name))
    result = RemoveResult()
    doomed: list[str] = []
    conn = _connect()
    try:
        with catalog.transaction(conn):
            for _text, record, name in plan:
                current = set(imagedb.names_of(conn, record.id))
                if name is not None and _other_tags(current, name):
                    conn.execute("DELETE FROM image_names WHERE name=?", (name,))
                    result.untagged.append(name)
                    continue
                for n in sorted(current):
                    result.untagged.append(n)
                conn.execute("DELETE FROM image_names WHERE image_id=?", (record.id,))
                if record.id in in_use:
                    continue  # forced: stays as a dangling image while containers use it
                doomed.append(record.id)
    finally:
        conn.close()
    result.deleted = _delete_images(doomed)
    return result


def _delete_images(image_ids: list[str]) -> list[str]:
    """Delete image rows, then every layer and blob nothing references any more."""
    from rootless.store.blobs import BlobStore
    from rootless.store.layers import LayerStore, TempArea

    deleted = []
    layers, blobs = LayerStore(), BlobStore()
    with locks.store_lock(shared=False):
        conn = _connect()
        try:
            with catalog.transaction(conn):
                in_use = imagedb.images_in_use(conn)
                for image_id in image_ids:
                    if image_id in in_use:
                        continue
                    named = conn.execute("SELECT 1 FROM image_names WHERE image_id=?",
                                         (image_id,)).fetchone()
                    if named:
                        continue  # tagged again meanwhile
                    conn.execute("DELETE FROM images WHERE id=?", (image_id,))
                    deleted.append(image_id)
                    from rootless.engine import events

                    events.emit("image", "delete", image_id, {"name": image_id})
                for diff_id in imagedb.unused_layers(conn):
                    conn.execute("DELETE FROM layers WHERE diff_id=?", (diff_id,))
            kept_layers = {r[0] for r in conn.execute("SELECT diff_id FROM layers")}
            kept_blobs = {r[0] for r in conn.execute("SELECT blob_digest FROM layers") if r[0]}
        finally:
            conn.close()
        # Under the exclusive lock no pull is running: anything on disk that no row
        # references (also what a killed pull or rmi left) can go.
        for diff_id in layers.diff_ids() - kept_layers:
            layers.remove(diff_id)
        for digest in blobs.digests() - kept_blobs:
            blobs.remove(digest)
        TempArea().sweep()
    return deleted


def prune(*, all_images: bool = False, filters: dict[str, list[str]] | None = None,
          only: set[str] | None = None) -> list[str]:
    """Delete dangling images (no name), or with `all_images` every image no container
    uses; then unreferenced layers and blobs. `filters`: the prune filters (label, label!,
    until on the image's labels and creation time; rootless/engine/filters.py); `only`:
    consider these image ids only. Returns the deleted image ids."""
    from rootless.engine.filters import prune_predicate
    from rootless.format.docker_shapes import parse_time

    keep = prune_predicate(filters or {})
    conn = _connect()
    try:
        in_use = imagedb.images_in_use(conn)
        if all_images:
            rows = conn.execute("SELECT id, config, created, added FROM images").fetchall()
        else:
            rows = conn.execute("SELECT id, config, created, added FROM images WHERE id NOT IN "
                                "(SELECT image_id FROM image_names)").fetchall()
        ids = [r["id"] for r in rows if r["id"] not in in_use
               and (only is None or r["id"] in only)
               and keep((json.loads(r["config"]).get("config") or {}).get("Labels") or {},
                        parse_time(r["created"]) or r["added"])]
        if all_images and ids:
            with catalog.transaction(conn):
                conn.executemany("DELETE FROM image_names WHERE image_id=?",
                                 [(i,) for i in ids])
    finally:
        conn.close()
    return _delete_images(ids)


def inspect(ref_or_id: str) -> dict:
    """Docker-shaped description of a local image."""
    image = get_image(ref_or_id)
    cfg = image.config
    conn = _connect()
    try:
        layer_rows = {d: imagedb.layer_row(conn, d) for d in image.diff_ids}
    finally:
        conn.close()
    return {
        "Id": image.id,
        "Digest": image.manifest_digest,
        "RepoTags": image.repo_tags,
        "RepoDigests": image.repo_digests,
        "Created": image.created,
        "Size": image.size,
        "Architecture": cfg.get("architecture"),
        "Os": cfg.get("os"),
        **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
        "Author": cfg.get("author", ""),
        "Config": cfg.get("config", {}),
        "RootFS": {"Type": "layers", "Layers": image.diff_ids},
        "ManifestMediaType": image.manifest_type,
        "Layers": [{
            "DiffID": d,
            "Digest": row["blob_digest"] if row else None,
            "MediaType": row["media_type"] if row else None,
            "Size": row["size"] if row else None,
            "Path": str(p),
        } for d, p, row in ((d, p, layer_rows[d])
                            for d, p in zip(image.diff_ids, image.layer_dirs, strict=True))],
        "History": cfg.get("history", []),
    }


# -- credentials --

def _registry_host(registry: str | None) -> str:
    if not registry:
        return reference.DEFAULT_DOMAIN
    host = registry.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if host in reference.LEGACY_DOMAINS:
        host = reference.DEFAULT_DOMAIN
    if not host:
        raise InvalidArgument(f"invalid registry {registry!r}", "give host[:port]")
    return host


def login(registry: str | None, username: str, password: str) -> str:
    """Check the credentials against the registry, then store them. Returns the file."""
    from rootless.image import auth, registries_conf
    from rootless.image.registry import AuthError, RealmRefused, RegistryClient

    host = _registry_host(registry)
    if not username or not password:
        raise InvalidArgument("login needs a username and a password",
                              "use -u USER and -p PASS or --password-stdin")
    conf = registries_conf.load()
    entry = conf.entry_for(host)
    insecure = registries_conf.is_loopback(host) or bool(entry and entry.insecure)
    endpoint = "registry-1.docker.io" if host == reference.DEFAULT_DOMAIN else host
    with RegistryClient(endpoint, insecure=insecure, credentials=(username, password)) as c:
        try:
            c.ping()
        except RealmRefused:
            raise
        except AuthError as exc:
            raise AuthError(f"login to {host} failed: {exc.message}",
                            "check the username and password") from None
    return str(auth.store(host, username, password))


def logout(registry: str | None, *, all_registries: bool = False) -> bool:
    from rootless.image import auth

    if all_registries:
        return auth.remove(None)
    return auth.remove(_registry_host(registry))

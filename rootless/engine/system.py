"""`system df` and `system prune`: how much disk the store uses, and taking back what no
container uses, as Docker's commands of the same names count and prune.

What rl counts, by Docker's four types:
- Images: the images `rl images` lists; SIZE is the bytes of their layers, each layer
  counted once (images share layers); RECLAIMABLE the part no container's image uses.
- Containers: every container; SIZE the bytes each wrote (its upper dir, as `ps -s`);
  RECLAIMABLE what the containers that are not running wrote.
- Local Volumes: every volume; ACTIVE those a container uses; RECLAIMABLE the others.
- Build Cache: the images `rl build` keeps for its cache that `rl images` hides (the
  untagged images later steps were built on; SIZE the bytes of the layers only they
  use), and the RUN --mount=type=cache directories (their files' bytes); ACTIVE what a
  container or a running build uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rootless.linux import safepath


@dataclass
class Usage:
    images: list[Any] = field(default_factory=list)  # ImageRecord, listed as rl images
    image_users: dict[str, int] = field(default_factory=dict)  # image id -> containers
    shared: dict[str, int] = field(default_factory=dict)  # image id -> shared bytes
    layers_size: int = 0  # layers of the listed images, each once
    layers_in_use: int = 0  # of those, the layers of images containers use
    containers: list[Any] = field(default_factory=list)
    container_size: dict[str, int] = field(default_factory=dict)
    volumes: list[Any] = field(default_factory=list)
    volume_links: dict[str, int] = field(default_factory=dict)
    volume_size: dict[str, int] = field(default_factory=dict)
    cache: list[Any] = field(default_factory=list)  # ImageRecord of the build cache
    cache_size: dict[str, int] = field(default_factory=dict)  # bytes only it holds
    cache_in_use: set[str] = field(default_factory=set)
    cache_mounts: list[Any] = field(default_factory=list)  # buildmounts.CacheMount


def disk_usage() -> Usage:
    """What `system df` shows, measured now."""
    from rootless.engine import containers, images
    from rootless.store import catalog, imagedb
    from rootless.store import volumes as vol_store

    u = Usage()
    listed = images.list_images()
    every = images.list_images(all_images=True)
    listed_ids = {r.id for r in listed}
    u.images = listed
    u.cache = [r for r in every if r.id not in listed_ids]
    with catalog.session() as conn:
        layer_size = {r[0]: r[1] for r in conn.execute("SELECT diff_id, size FROM layers")}
        in_use = imagedb.images_in_use(conn)
        u.volumes = vol_store.list_all(conn)
        u.volume_links = {v.name: len(vol_store.users(conn, v.name)) for v in u.volumes}
    u.containers = containers.list_containers(all_=True)
    for c in u.containers:
        u.image_users[c.image_id] = u.image_users.get(c.image_id, 0) + 1
        u.container_size[c.id] = containers.upper_size(c)
    # which images hold each layer: shared bytes are those of layers of several images
    holders: dict[str, set[str]] = {}
    for r in every:
        for d in r.diff_ids:
            holders.setdefault(d, set()).add(r.id)
    listed_layers = {d for r in listed for d in r.diff_ids}
    u.layers_size = sum(layer_size.get(d, 0) for d in listed_layers)
    u.layers_in_use = sum(layer_size.get(d, 0) for d in listed_layers
                          if holders[d] & in_use)
    for r in every:
        u.shared[r.id] = sum(layer_size.get(d, 0) for d in set(r.diff_ids)
                             if len(holders[d]) > 1)
    for r in u.cache:
        u.cache_size[r.id] = sum(layer_size.get(d, 0) for d in set(r.diff_ids)
                                 if not holders[d] & listed_ids and len(holders[d]) == 1)
        if r.id in in_use:
            u.cache_in_use.add(r.id)
    for v in u.volumes:
        u.volume_size[v.name] = safepath.tree_size(v.mountpoint)
    from rootless.engine import buildmounts

    u.cache_mounts = buildmounts.usage()
    return u


# -- prune --------------------------------------------------------------------------------

@dataclass
class Pruned:
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    cache: list[str] = field(default_factory=list)
    reclaimed: int = 0


def _layers_total() -> int:
    from rootless.store import catalog

    with catalog.session() as conn:
        return conn.execute("SELECT COALESCE(SUM(size), 0) FROM layers").fetchone()[0]


def prune_containers(filters: dict[str, list[str]] | None = None) -> Pruned:
    from rootless.engine import containers

    sizes = {c.id: containers.upper_size(c)
             for c in containers.list_containers(all_=True) if c.state != "running"}
    removed = containers.prune(filters)
    return Pruned(containers=removed, reclaimed=sum(sizes.get(i, 0) for i in removed))


def prune_images(all_images: bool = False,
                 filters: dict[str, list[str]] | None = None) -> Pruned:
    from rootless.engine import images

    before = _layers_total()
    removed = images.prune(all_images=all_images, filters=filters)
    return Pruned(images=removed, reclaimed=max(0, before - _layers_total()))


def prune_volumes(all_volumes: bool = False,
                  filters: dict[str, list[str]] | None = None) -> Pruned:
    from rootless.engine import volumes
    from rootless.engine.filters import prune_predicate

    prune_predicate(filters or {}, until=False)  # refuse `until` before measuring anything
    sizes = {v.name: safepath.tree_size(v.mountpoint) for v in volumes.list_volumes()}
    removed = volumes.prune(all_volumes, filters)
    return Pruned(volumes=removed, reclaimed=sum(sizes.get(n, 0) for n in removed))


def prune_networks(filters: dict[str, list[str]] | None = None) -> Pruned:
    from rootless.engine import networks

    return Pruned(networks=networks.prune(filters=filters))


BUILDER_PRUNE_KEYS = ("until", "type")
CACHE_TYPES = ("regular", "exec.cachemount")  # BuildKit's record types, as `du` shows


def check_cache_filters(filters: dict[str, list[str]]) -> None:
    """Refuse a bad `type=` or time of `builder prune --filter` (before anything is asked
    or removed)."""
    from rootless.engine.filters import prune_predicate
    from rootless.errors import InvalidArgument

    bad = sorted(set(filters.get("type", [])) - set(CACHE_TYPES))
    if bad:
        raise InvalidArgument(f"invalid type filter {bad[0]!r}",
                              "use type=regular or type=exec.cachemount")
    prune_predicate({k: v for k, v in filters.items() if k != "type"})


def prune_build_cache(all_cache: bool = False,
                      filters: dict[str, list[str]] | None = None) -> Pruned:
    """`builder prune` (and system prune's part): the RUN --mount=type=cache directories
    no build holds (BuildKit's exec.cachemount records), the build cache's images no
    container uses (the untagged images `rl images` hides: the "regular" records) and
    the cache records of steps whose image is gone; with `all_cache`, every step's record
    too. `filters`: label/until as the other prunes (until: last used before), `type`."""
    from rootless.engine import buildmounts, images
    from rootless.engine.filters import parse_time, prune_predicate
    from rootless.store import buildcache

    flt = dict(filters or {})
    check_cache_filters(flt)
    types = set(flt.pop("type", []) or CACHE_TYPES)
    keep = prune_predicate(flt)
    out = Pruned()
    if "exec.cachemount" in types:
        out.cache, out.reclaimed = buildmounts.prune(chosen=lambda last: keep({}, last))
    if "regular" not in types:
        return out
    every = images.list_images(all_images=True)
    listed = {r.id for r in images.list_images()}
    hidden = {r.id for r in every if r.id not in listed}
    before = _layers_total()
    if hidden:
        out.cache += images.prune(all_images=False, filters=flt, only=hidden)
    limits = [parse_time(v, "until") for v in flt.get("until", [])]
    buildcache.forget(everything=all_cache, before=min(limits) if limits else None)
    out.reclaimed += max(0, before - _layers_total())
    return out


def system_prune(*, all_: bool = False, volumes: bool = False,
                 filters: dict[str, list[str]] | None = None) -> Pruned:
    """`system prune`: stopped containers, unused networks, (anonymous) unused volumes
    with `volumes`, dangling images (every image no container uses with `all_`), and the
    build cache; running containers, their images and volumes in use stay."""
    from rootless.engine.filters import prune_predicate

    flt = filters or {}
    prune_predicate(flt)  # a bad filter is refused before anything is removed
    if volumes:
        prune_predicate(flt, until=False)
    out = Pruned()
    for part in (prune_containers(flt), prune_networks(flt),
                 prune_volumes(False, flt) if volumes else Pruned(),
                 prune_images(all_, flt), prune_build_cache(all_, flt)):
        out.containers += part.containers
        out.networks += part.networks
        out.volumes += part.volumes
        out.images += part.images
        out.cache += part.cache
        out.reclaimed += part.reclaimed
    return out

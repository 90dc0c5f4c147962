"""`rl info` and `rl version`."""

from __future__ import annotations

import json

import click

from rootless import __version__


@click.command()
@click.option("-f", "--format", "fmt", default=None, metavar="FORMAT",
              help="json (one object) or a Go template, e.g. '{{.ServerVersion}}'; the "
                   "document has Docker's fields and rl's own (lower case).")
def info(fmt: str | None) -> None:
    """Show what this host offers rootless containers, and how to fix what is missing."""
    from rootless.engine.hostinfo import host_info

    if fmt not in (None, "text", "json"):
        from rootless.cli import options

        options.compile_format(fmt)
    hi = host_info()
    if fmt is not None and fmt != "text":
        from rootless.cli import options
        from rootless.format import docker_shapes as shapes

        doc = shapes.info_doc(hi.as_dict(), _counts())
        if fmt == "json":  # one object, indented, as before (rl's scripts read it)
            click.echo(json.dumps(doc, indent=2))
        else:
            options.echo_formatted(fmt, [doc])
        return
    click.echo(f"rl version:   {hi.version}")
    click.echo(f"user:         {hi.user} (uid {hi.uid}, gid {hi.gid})")
    click.echo(f"kernel:       {hi.kernel}")
    click.echo(f"storage:      {hi.storage} ({hi.storage_fs})")
    click.echo(f"runtime dir:  {hi.runtime_dir}")
    click.echo(f"uid map:      {hi.uid_map}")
    click.echo(f"gid map:      {hi.gid_map}")
    click.echo("checks:")
    for c in hi.checks:
        mark = "ok" if c.ok else ("WARN" if c.severity == "warning" else "FAIL")
        click.echo(f"  [{mark:>4}] {c.name}: {c.detail}")
        if not c.ok and c.fix:
            click.echo(f"         fix: {c.fix}")


def _counts() -> dict[str, int]:
    """Containers by state and images, for `info` (0 where the store cannot be read)."""
    out = {"Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0,
           "ContainersStopped": 0, "Images": 0}
    try:
        from rootless.engine import containers

        for c in containers.list_containers(all_=True):
            out["Containers"] += 1
            out["ContainersRunning" if c.state == "running" else "ContainersStopped"] += 1
        from rootless.store import catalog

        with catalog.session() as conn:
            out["Images"] = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    except Exception:  # a store not created yet, or a part this build has not
        pass
    return out


@click.command()
@click.option("-f", "--format", "fmt", default=None, metavar="FORMAT",
              help="json or a Go template, e.g. '{{.Client.Version}}'.")
def version(fmt: str | None) -> None:
    """Show the rl version."""
    if fmt is None:
        click.echo(f"rl version {__version__}")
        return
    from rootless.cli import options
    from rootless.format import docker_shapes as shapes

    options.compile_format(fmt)
    options.echo_formatted(fmt, [shapes.version_doc(__version__)])


# -- system: df, prune, info ----------------------------------------------------------------

def _alias_group():
    from rootless.cli.lazy import AliasGroup

    return AliasGroup


@click.group(cls=_alias_group(), aliases={"events": ("rootless.cli.events", "events")})
def system() -> None:
    """Manage rl: disk usage, pruning, host information."""


system.add_command(info, "info")

DF_HEADER = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
             "Reclaimable": "RECLAIMABLE"}
DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_IMAGES = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t"
             "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}")
DF_CONTAINERS = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t"
                 "{{.RunningFor}}\t{{.Status}}\t{{.Names}}")
DF_VOLUMES = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
DF_CACHE = ("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t"
            "{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}")
DF_CACHE_HEADER = {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE",
                   "CreatedSince": "CREATED", "LastUsedSince": "LAST USED",
                   "UsageCount": "USAGE", "Shared": "SHARED"}
DF_VOLUME_HEADER = {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}


def _pct(part: int, total: int) -> str:
    from rootless.format.docker_shapes import human_size

    # Docker: "%s (%v%%)" with an integer percentage, only when there is anything at all
    return f"{human_size(part, 4)} ({part * 100 // total}%)" if total > 0 \
        else human_size(part, 4)


def _df_summary(u) -> list[dict]:
    from rootless.format.docker_shapes import human_size

    ctr_total = sum(u.container_size.values())
    ctr_free = sum(u.container_size[c.id] for c in u.containers if c.state != "running")
    vol_total = sum(u.volume_size.values())
    vol_free = sum(u.volume_size[v.name] for v in u.volumes if not u.volume_links[v.name])
    cache_total = sum(u.cache_size.values()) + sum(m.size for m in u.cache_mounts)
    cache_used = sum(u.cache_size[i] for i in u.cache_in_use) + \
        sum(m.size for m in u.cache_mounts if m.busy)
    cache_active = len(u.cache_in_use) + sum(1 for m in u.cache_mounts if m.busy)
    return [
        {"Type": "Images", "TotalCount": str(len(u.images)),
         "Active": str(sum(1 for r in u.images if u.image_users.get(r.id))),
         "Size": human_size(u.layers_size, 4),
         "Reclaimable": _pct(u.layers_size - u.layers_in_use, u.layers_size)},
        {"Type": "Containers", "TotalCount": str(len(u.containers)),
         "Active": str(sum(1 for c in u.containers if c.state == "running")),
         "Size": human_size(ctr_total, 4), "Reclaimable": _pct(ctr_free, ctr_total)},
        {"Type": "Local Volumes", "TotalCount": str(len(u.volumes)),
         "Active": str(sum(1 for v in u.volumes if u.volume_links[v.name])),
         "Size": human_size(vol_total, 4), "Reclaimable": _pct(vol_free, vol_total)},
        {"Type": "Build Cache", "TotalCount": str(len(u.cache) + len(u.cache_mounts)),
         "Active": str(cache_active), "Size": human_size(cache_total, 4),
         "Reclaimable": human_size(cache_total - cache_used, 4)},
    ]


def _df_verbose(u) -> dict:
    import time

    from rootless.format import docker_shapes as shapes

    now = time.time()
    imgs = []
    for r in u.images:
        for d in shapes.image_docs(r, now=now):
            shared = u.shared.get(r.id, 0)
            d.update(SharedSize=shapes.human_size(shared),
                     UniqueSize=shapes.human_size(r.size - shared),
                     Containers=str(u.image_users.get(r.id, 0)))
            imgs.append(d)
    from rootless.engine.ctrinfo import container_doc

    ctrs = [container_doc(c, size=shapes.human_size(u.container_size[c.id]), now=now)
            for c in u.containers]
    vols = [{"Name": v.name, "Links": str(u.volume_links[v.name]),
             "Size": shapes.human_size(u.volume_size[v.name])} for v in u.volumes]
    cache = []
    for r in u.cache:
        created = shapes.parse_time(r.created) or r.added
        since = shapes.human_duration(now - created) + " ago"
        cache.append({"ID": r.short_id, "CacheType": "regular",
                      "Size": shapes.human_size(u.cache_size[r.id]), "CreatedSince": since,
                      "LastUsedSince": since,
                      "UsageCount": str(u.image_users.get(r.id, 0)),
                      "Shared": "true" if u.cache_size[r.id] < r.size else "false"})
    for m in u.cache_mounts:
        cache.append({"ID": m.name, "CacheType": "exec.cachemount",
                      "Size": shapes.human_size(m.size),
                      "CreatedSince": shapes.human_duration(now - m.created) + " ago",
                      "LastUsedSince": "now" if m.busy else
                      shapes.human_duration(now - m.last_used) + " ago",
                      "UsageCount": str(m.uses), "Shared": "false"})
    total = sum(u.cache_size.values()) + sum(m.size for m in u.cache_mounts)
    return {"Images": imgs, "Containers": ctrs, "Volumes": vols, "BuildCache": cache,
            "BuilderSize": shapes.human_size(total, 4)}


@system.command("df")
@click.option("-v", "--verbose", is_flag=True, help="Show each image, container, volume "
              "and build cache entry.")
@click.option("--format", "fmt", metavar="FORMAT",
              help="table (default), json (one object a line; with -v one object) or a Go "
                   "template over .Type .TotalCount .Active .Size .Reclaimable.")
def df(verbose: bool, fmt: str | None) -> None:
    """Show the disk space images, containers, volumes and the build cache use."""
    from rootless.cli import options
    from rootless.engine.system import disk_usage
    from rootless.format.docker_shapes import Doc

    if fmt not in (None, "table", "json"):
        options.compile_format(fmt)
    u = disk_usage()
    if not verbose:
        options.echo_formatted(DF_TABLE if fmt in (None, "table") else fmt, _df_summary(u),
                               DF_HEADER)
        return
    v = _df_verbose(u)
    if fmt == "json":
        def plain(d):
            return d.resolved() if isinstance(d, Doc) else d

        click.echo(json.dumps({k: [plain(d) for d in v[k]] for k in
                               ("Images", "Containers", "Volumes", "BuildCache")},
                              separators=(",", ":")))
        return
    if fmt not in (None, "table"):
        options.echo_formatted(fmt, [v])
        return
    from rootless.format import docker_shapes as shapes

    click.echo("Images space usage:\n")
    options.echo_formatted(DF_IMAGES, v["Images"], shapes.IMAGES_HEADER)
    click.echo("\nContainers space usage:\n")
    options.echo_formatted(DF_CONTAINERS, v["Containers"], shapes.PS_HEADER)
    click.echo("\nLocal Volumes space usage:\n")
    options.echo_formatted(DF_VOLUMES, v["Volumes"], DF_VOLUME_HEADER)
    click.echo(f"\nBuild cache usage: {v['BuilderSize']}\n")
    options.echo_formatted(DF_CACHE, v["BuildCache"], DF_CACHE_HEADER)


PRUNE_HELP = "label=KEY[=VALUE], label!=KEY[=VALUE] or until=TIME (10m, RFC 3339, Unix time)."


def prune_filters(values: tuple[str, ...]) -> dict[str, list[str]]:
    from rootless.engine import filters

    return filters.parse(values, filters.PRUNE_KEYS)


def filter_lines(values: tuple[str, ...]) -> str:
    """Docker's addition to a prune warning when filters are given."""
    if not values:
        return ""
    return "\n\n  Items to be pruned will be filtered with:" + "".join(
        f"\n  - {v}" for v in values)


def ask(warning: str, what: str) -> None:
    """Docker's prune prompt: WARNING!..., `Are you sure you want to continue? [y/N]`;
    anything but y/yes (no terminal, no answer) cancels with exit 1."""
    from rootless.cli import options

    if not options.confirm(warning + "\nAre you sure you want to continue?"):
        raise options.cancelled(what)


def reclaimed_line(n: int) -> str:
    from rootless.format.docker_shapes import human_size

    return f"Total reclaimed space: {human_size(n, 4)}"


@system.command("prune")
@click.option("-a", "--all", "all_", is_flag=True,
              help="Remove every image no container uses, not only dangling ones.")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes no container uses.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE", help=PRUNE_HELP)
def prune(all_: bool, volumes: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove stopped containers, unused networks, dangling images and the build cache
    (and unused anonymous volumes with --volumes); running containers, their images and
    the volumes containers use stay."""
    from rootless.engine import system as engine
    from rootless.engine.filters import prune_predicate

    flt = prune_filters(filters)
    prune_predicate(flt, until=not volumes)  # refused before asking
    if not force:
        items = ["all stopped containers", "all networks not used by at least one container"]
        if volumes:
            items.append("all anonymous volumes not used by at least one container")
        items.append("all images without at least one container associated to them"
                     if all_ else "all dangling images")
        items.append("all build cache" if all_ else "unused build cache")
        ask("WARNING! This will remove:" + "".join(f"\n  - {i}" for i in items)
            + filter_lines(filters) + "\n", "system prune")
    out = engine.system_prune(all_=all_, volumes=volumes, filters=flt)
    for title, names in (("Deleted Containers:", out.containers),
                         ("Deleted Networks:", out.networks),
                         ("Deleted Volumes:", out.volumes),
                         ("Deleted Images:", [f"deleted: {i}" for i in out.images]),
                         ("Deleted build cache objects:", out.cache)):
        if names:
            click.echo(title)
            for n in names:
                click.echo(n)
            click.echo()
    click.echo(reclaimed_line(out.reclaimed))

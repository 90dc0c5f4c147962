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

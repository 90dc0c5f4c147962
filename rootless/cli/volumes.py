"""`rl volume`: create, ls, inspect, rm, prune."""

from __future__ import annotations

import click

from rootless.cli import options
from rootless.engine.filters import VOLUME_KEYS as _VOLUME_KEYS


@click.group()
def volume() -> None:
    """Manage volumes: data that outlives containers."""


@volume.command()
@click.argument("name", required=False)
@click.option("--label", "-l", multiple=True, help="Set metadata KEY=VALUE on the volume.")
@click.option("--driver", "-d", default="local", help="Volume driver (only 'local').")
def create(name: str | None, label: tuple[str, ...], driver: str) -> None:
    """Create a volume (with a random name when NAME is not given)."""
    from rootless.engine import volumes

    click.echo(volumes.create(name, options.labels(label), driver=driver).name)


@volume.command("ls")
@click.option("--quiet", "-q", is_flag=True, help="Only names.")
@options.format_option("volumes (.Name .Driver .Mountpoint .Labels .Label \"k\" ...)")
@options.filter_option(_VOLUME_KEYS)
def ls(quiet: bool, fmt: str | None, filters: tuple[str, ...]) -> None:
    """List volumes."""
    from rootless.engine import volumes

    flt = options.parse_filters(filters, _VOLUME_KEYS)
    if fmt not in (None, "table") and not quiet:
        options.compile_format(fmt)
    vols = volumes.list_volumes(flt)
    if quiet:
        for v in vols:
            click.echo(v.name)
    elif fmt in (None, "table"):
        click.echo(f"{'DRIVER':<10}VOLUME NAME")
        for v in vols:
            click.echo(f"{'local':<10}{v.name}")
    else:
        from rootless.format import docker_shapes as shapes

        options.echo_formatted(fmt, (shapes.volume_doc(v) for v in vols),
                               shapes.VOLUME_HEADER)


volume.add_command(ls, "list")


def _volume_inspect():
    from rootless.cli.inspect import volume_inspect

    return volume_inspect


volume.add_command(_volume_inspect(), "inspect")


@volume.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--force", "-f", is_flag=True, help="Do not fail on missing volumes.")
def rm(names: tuple[str, ...], force: bool) -> None:
    """Remove volumes (refused while a container uses them)."""
    from rootless.engine import volumes

    for name in volumes.remove(list(names), force=force):
        click.echo(name)


volume.add_command(rm, "remove")


@volume.command()
@click.option("--all", "-a", "all_volumes", is_flag=True,
              help="Remove every unused volume, not only anonymous ones.")
@click.option("--force", "-f", is_flag=True, help="Do not ask for confirmation.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="label=KEY[=VALUE] or label!=KEY[=VALUE].")
def prune(all_volumes: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused volumes."""
    from rootless.cli import system as cli_system
    from rootless.engine import system as engine_system
    from rootless.engine.filters import prune_predicate

    flt = cli_system.prune_filters(filters)
    prune_predicate(flt, until=False)  # refused before asking
    if not force:
        cli_system.ask("WARNING! This will remove all local volumes not used by at least one "
                       "container." if all_volumes else "WARNING! This will remove anonymous "
                       "local volumes not used by at least one container.", "volume prune")
    out = engine_system.prune_volumes(all_volumes, flt)
    if out.volumes:
        click.echo("Deleted Volumes:\n" + "\n".join(out.volumes) + "\n")
    click.echo(cli_system.reclaimed_line(out.reclaimed))


@volume.command("export")
@click.argument("name")
@click.option("--output", "-o", help="Write to a file instead of stdout.")
def export(name: str, output: str | None) -> None:
    """Write a volume's content as a tar archive (to stdout)."""
    import os
    import sys

    from rootless.engine import volumes
    from rootless.errors import InvalidArgument

    if output is None and sys.stdout.isatty():
        raise InvalidArgument("refusing to write a tar archive to a terminal",
                              "redirect stdout (> file.tar) or use -o FILE")
    sys.stdout.flush()
    if output is None:
        volumes.export(name, 1)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        volumes.export(name, fd)
    finally:
        os.close(fd)


@volume.command("import")
@click.argument("name")
@click.argument("source")
def import_(name: str, source: str) -> None:
    """Unpack a tar archive (a file, or - for stdin) into a volume."""
    from rootless.engine import volumes

    volumes.import_(name, source)

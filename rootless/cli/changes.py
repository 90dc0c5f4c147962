"""`rl rename` and `rl diff`: a container's name, and what it changed in its filesystem.
Parsing and printing only: the work is in rootless.engine.containers (rename) and
rootless.engine.changes (diff)."""

from __future__ import annotations

import click


@click.command()
@click.argument("container")
@click.argument("new_name")
def rename(container: str, new_name: str) -> None:
    """Rename a container."""
    from rootless.engine import containers

    containers.rename(container, new_name)


@click.command()
@click.argument("container")
def diff(container: str) -> None:
    """List the files a container added (A), changed (C) and deleted (D)."""
    from rootless.cli.tables import printable
    from rootless.engine import changes

    for kind, path in changes.container_changes(container):
        click.echo(f"{kind} {printable(path)}")  # names the container chose: escaped

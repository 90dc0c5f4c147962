"""`rl pause` and `rl unpause` (Docker's): the engine refuses them with this host's reason
where no cgroup freezer can be used (rootless/engine/cgroups.py)."""

from __future__ import annotations

import click


def _each(containers: tuple[str, ...], unpause: bool) -> None:
    from rootless.engine import containers as engine

    for ref in containers:
        engine.pause(ref, unpause=unpause)
        click.echo(ref)


@click.command()
@click.argument("containers", nargs=-1, required=True)
def pause(containers: tuple[str, ...]) -> None:
    """Pause all processes within containers (needs a cgroup freezer: see rl info)."""
    _each(containers, False)


@click.command()
@click.argument("containers", nargs=-1, required=True)
def unpause(containers: tuple[str, ...]) -> None:
    """Unpause all processes within containers."""
    _each(containers, True)

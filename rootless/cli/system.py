"""`rl info` and `rl version`."""

from __future__ import annotations

import json

import click

from rootless import __version__


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="Output format.")
def info(fmt: str) -> None:
    """Show what this host offers rootless containers, and how to fix what is missing."""
    from rootless.engine.hostinfo import host_info

    hi = host_info()
    if fmt == "json":
        click.echo(json.dumps(hi.as_dict(), indent=2))
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


@click.command()
def version() -> None:
    """Show the rl version."""
    click.echo(f"rl version {__version__}")

"""A click group whose subcommands may live in other modules, imported on first use.

`rl container run` is `rl run`, `rl image build` is `rl build`: the management groups
(`container`, `image`, `volume`, `network`) list Docker's verbs under them, most of which
are defined elsewhere. Importing those modules when the group's module is imported would
put `rl build`'s code on `rl run`'s path (rootless/cli/main.py keeps that light), so the
aliases are a table of (module, attribute) resolved when a verb is used or listed in help.
"""

from __future__ import annotations

import importlib

import click


class AliasGroup(click.Group):
    """click.Group with `aliases`: {verb: (module, attribute)} imported on demand."""

    def __init__(self, *args, aliases: dict[str, tuple[str, str]] | None = None, **kw):
        super().__init__(*args, **kw)
        self.aliases = dict(aliases or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.aliases))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        cmd = super().get_command(ctx, name)
        if cmd is None and name in self.aliases:
            module, attr = self.aliases[name]
            cmd = getattr(importlib.import_module(module), attr)
        return cmd

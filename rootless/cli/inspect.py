"""`rl inspect` and the `inspect` of `rl container/image/volume/network`: find each object,
print the documents as JSON (Docker's indented array) or through `--format/-f`."""

from __future__ import annotations

import json
import sys

import click

from rootless.cli import options


def _print(docs: list[dict], fmt: str | None) -> None:
    if fmt in (None, "", "json"):
        click.echo(json.dumps(docs, indent=4))
        return
    from rootless.format.render import render

    # Docker runs the template once per object, each followed by a newline; `table` and
    # `json` are not special here except the bare word json
    sys.stdout.write(render(fmt, docs))


def make(kind: str | None, help_text: str) -> click.Command:
    params = [
        click.Option(["-f", "--format", "fmt"], metavar="FORMAT",
                     help="json (default) or a Go template, e.g. '{{.State.Running}}'."),
        click.Argument(["names"], nargs=-1, required=True),
    ]
    if kind is None:
        params.insert(1, click.Option(["--type", "kind"], metavar="TYPE",
                                      help="Only this type: container, image, volume or "
                                           "network."))

    def callback(fmt: str | None, names: tuple[str, ...], **kw) -> None:
        from rootless.engine import objects
        from rootless.errors import RlError

        if fmt not in (None, "", "json"):
            options.compile_format(fmt)
        docs, failed = [], None
        for n in names:
            try:
                docs.append(objects.inspect(n, kw.get("kind") or kind))
            except RlError as exc:  # Docker prints what it found, then fails
                failed = failed or exc
        if docs or failed is None:
            _print(docs, fmt)
        if failed is not None:
            raise failed

    return click.Command("inspect", params=params, callback=callback, help=help_text)


inspect = make(None, "Show low-level information on containers, images, volumes or networks.")
container_inspect = make("container", "Show containers' state and configuration as JSON.")
image_inspect = make("image", "Show images' configuration, layers and digests as JSON.")
volume_inspect = make("volume", "Show volumes as JSON.")
network_inspect = make("network", "Show networks as JSON.")

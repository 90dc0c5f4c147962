"""`rl events` (and `rl system events`): the event journal (rootless/engine/events.py)
printed as `docker events` prints it, with its --since, --until, --filter and --format."""

from __future__ import annotations

import json

import click

from rootless.cli import options

EVENT_KEYS = ("container", "event", "image", "label", "network", "type", "volume")


def _time_text(ns: int) -> str:
    """Go's RFC3339NanoFixed in local time, as Docker prints an event's time."""
    from datetime import datetime

    d = datetime.fromtimestamp(ns // 1_000_000_000).astimezone()
    off = d.strftime("%z")
    zone = "Z" if off == "+0000" else f"{off[:3]}:{off[3:]}"
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}{zone}"


def _matches(ev: dict, f: dict[str, list[str]]) -> bool:
    actor = ev.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    ident = actor.get("ID", "")
    kind = ev.get("Type", "")

    def names_it(values: list[str]) -> bool:
        return any(v in (ident, attrs.get("name")) or (len(v) >= 3 and ident.startswith(v))
                   for v in values)

    if "type" in f and kind not in f["type"]:
        return False
    # event=health_status matches "health_status: healthy" too (Docker's #25798)
    action = ev.get("Action") or ""
    if "event" in f and action not in f["event"] and action.split(":")[0] not in f["event"]:
        return False
    for key in ("container", "network", "volume"):
        if key in f and not (kind == key and names_it(f[key])):
            return False
    if "image" in f and not (attrs.get("image") in f["image"] or
                             (kind == "image" and names_it(f["image"]))):
        return False
    for item in f.get("label", []):
        k, sep, v = item.partition("=")
        if k not in attrs or (sep and attrs[k] != v):
            return False
    return True


def _doc(ev: dict) -> dict:
    """The event with Go's field names (templates use .Status .ID .From .TimeNano)."""
    from rootless.format.docker_shapes import Doc

    return Doc(Status=ev.get("status", ""), ID=ev.get("id", ""), From=ev.get("from", ""),
               Type=ev.get("Type", ""), Action=ev.get("Action", ""),
               Actor=ev.get("Actor", {}), Scope=ev.get("scope", "local"),
               Time=ev.get("time", 0), TimeNano=ev.get("timeNano", 0))


@click.command()
@click.option("--since", metavar="TIME",
              help="Show events from TIME on: RFC 3339, Unix time, or a duration ago (10m).")
@click.option("--until", metavar="TIME",
              help="Stop at TIME (same forms); without it, keep printing new events.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Filter (" + ", ".join(EVENT_KEYS) + ").")
@click.option("--format", "fmt", metavar="FORMAT",
              help="json (one event a line, Docker's fields) or a Go template, e.g. "
                   "'{{.Type}} {{.Action}} {{.Actor.Attributes.name}}'.")
def events(since: str | None, until: str | None, filters: tuple[str, ...],
           fmt: str | None) -> None:
    """Show what happens to containers, images, volumes and networks, from rl's event
    journal (without --since: only new events; without --until: until interrupted)."""
    import sys
    import time

    from rootless.engine import events as journal
    from rootless.engine import filters as flt

    f = flt.parse(filters, EVENT_KEYS)
    if fmt not in (None, "json"):
        options.compile_format(fmt)
    now = time.time_ns()
    since_ns = int(options.parse_time_arg(since, "--since") * 1e9) if since else now
    until_ns = int(options.parse_time_arg(until, "--until") * 1e9) if until else None
    for ev in journal.read(since_ns, until_ns, follow=True):
        if not _matches(ev, f):
            continue
        if fmt == "json":
            sys.stdout.write(json.dumps(ev, separators=(",", ":")) + "\n")
        elif fmt is not None:
            options.echo_formatted(fmt, [_doc(ev)])
        else:
            from rootless.cli.tables import printable

            attrs = (ev.get("Actor") or {}).get("Attributes") or {}
            pairs = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items()))
            sys.stdout.write(printable(
                f"{_time_text(ev.get('timeNano', 0))} {ev.get('Type')} {ev.get('Action')} "
                f"{(ev.get('Actor') or {}).get('ID', '')}" + (f" ({pairs})" if pairs else ""))
                + "\n")
        sys.stdout.flush()

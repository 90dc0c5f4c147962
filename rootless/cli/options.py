"""Parsing shared by several commands' flags."""

from __future__ import annotations

from rootless.errors import InvalidArgument


def labels(values: tuple[str, ...]) -> dict[str, str]:
    """`--label KEY=VALUE` (repeatable; `KEY` alone is an empty value, as Docker does)."""
    out = {}
    for item in values:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label {item!r}", "use --label KEY=VALUE")
        out[key] = value
    return out


def format_option(what: str):
    """`--format`: table, json or a Go template, as Docker's."""
    import click

    return click.option("--format", "fmt", metavar="FORMAT",
                        help=f"table (default), json (one object a line) or a Go template "
                             f"over {what}, e.g. '{{{{.ID}}}}'.")


def filter_option(keys: tuple[str, ...], short: bool = True):
    import click

    names = ("-f", "--filter") if short else ("--filter",)
    return click.option(*names, "filters", multiple=True, metavar="KEY=VALUE",
                        help="Filter output (" + ", ".join(keys) + ").")


def parse_filters(values: tuple[str, ...], keys: tuple[str, ...]) -> dict[str, list[str]]:
    from rootless.engine import filters

    return filters.parse(values, keys)


def echo_formatted(fmt: str, docs, header: dict[str, str] | None = None) -> None:
    """Print documents with `--format` (json, table TEMPLATE, or a template)."""
    import sys

    from rootless.format.render import render

    sys.stdout.write(render(fmt, docs, header))
    sys.stdout.flush()


def compile_format(fmt: str) -> None:
    """Refuse a template that does not parse (before the command does any work)."""
    from rootless.format.render import compile_format as compile_

    compile_(fmt)


_DURATION = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_time_arg(text: str, flag: str, now: float | None = None) -> float:
    """`--since`/`--until` as Docker reads them: RFC 3339 (2024-05-01T10:00:00Z, or a
    date, or without zone: local time), Unix time (1714557600[.5]), or a Go duration
    before now (10m, 1h30m, 45s)."""
    import re
    import time
    from datetime import datetime

    now = time.time() if now is None else now
    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", t)
    if parts and "".join(n + u for n, u in parts) == t:
        return now - sum(float(n) * _DURATION[u] for n, u in parts)
    try:
        d = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid value for {flag}: {text!r}",
                              "give RFC 3339 (2024-05-01T10:00:00Z), Unix time or a duration "
                              "like 10m") from None
    return d.timestamp() if d.tzinfo else d.astimezone().timestamp()

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


def parse_time_arg(text: str, flag: str, now: float | None = None) -> float:
    """`--since`/`--until` as Docker reads them (rootless/engine/filters.py parse_time)."""
    from rootless.engine.filters import parse_time

    return parse_time(text, flag, now)


def confirm(message: str) -> bool:
    """Docker's PromptForConfirmation: MESSAGE, then ` [y/N] ` on stdout, and one line
    read from stdin: only y or yes (any case) is a yes. No answer (stdin at its end or
    not open, as in a script without -f) is a no, as in Docker."""
    import sys

    sys.stdout.write(message + " [y/N] ")
    sys.stdout.flush()
    try:
        answer = sys.stdin.readline() if sys.stdin is not None else ""
    except (OSError, ValueError):
        answer = ""
    if not answer.endswith("\n"):
        sys.stdout.write("\n")
    return answer.strip().lower() in ("y", "yes")


def cancelled(what: str):
    """The error of a declined prune (Docker 26+: "... has been cancelled", exit 1)."""
    from rootless.errors import RlError

    return RlError(f"{what} has been cancelled", exit_code=1)

"""Docker's `--format` rules for list and inspect commands (docker/cli's formatter.Context),
on top of gotemplate and tabwriter:

- `json`: each object as one line of compact JSON (`{{json .}}`);
- `table TEMPLATE`: a header row (the template run on the column names, with the
  functions giving back their argument) and the rows, aligned by Go's tabwriter;
- anything else: the template, once per object, each followed by a newline.
A literal `\\t` or `\\n` (backslash, letter) in the format stands for a tab or a newline,
as in Docker, so `--format 'table {{.ID}}\\t{{.Names}}'` works from any shell.
The bare word `table` (the command's default table) is for the caller to handle.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rootless.errors import InvalidArgument
from rootless.format.gotemplate import Template, TemplateError
from rootless.format.tabwriter import format_table


class HeaderContext(dict):
    """The column names a table's header row is made of (Docker's SubHeaderContext)."""

    go_methods = ("Label",)

    def Label(self, name: str) -> str:  # Docker's name, used in templates
        return " ".join(name.split(".")).upper()


def _prepare(fmt: str) -> tuple[bool, str]:
    table = fmt.startswith("table")
    text = "{{json .}}" if fmt == "json" else fmt[len("table"):] if table else fmt
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return table, text


def compile_format(fmt: str) -> tuple[bool, Template]:
    """(is a table, the parsed template); a template that does not parse is refused here,
    before any work is done."""
    table, text = _prepare(fmt)
    try:
        return table, Template(text)
    except TemplateError as exc:
        raise InvalidArgument(f"template parsing error: {exc}",
                              "see 'Format command and log output' in Docker's docs") from None


def render(fmt: str, rows: Iterable[Any], header: dict[str, str] | None = None) -> str:
    """The output of `--format fmt` over rows (an iterable of documents), ending with a
    newline unless empty. `header` names the columns for `table TEMPLATE`."""
    table, tmpl = compile_format(fmt)
    parts = []
    try:
        for row in rows:
            parts.append(tmpl.execute(row))
            parts.append("\n")
        if table:
            head = Template(tmpl.text, header=True).execute(HeaderContext(header or {}))
            return format_table(head + "\n" + "".join(parts))
    except TemplateError as exc:
        raise InvalidArgument(f"template: {exc}") from None
    return "".join(parts)

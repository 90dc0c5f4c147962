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

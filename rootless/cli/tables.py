"""Text that came from a container, an image or a registry, made safe for a terminal.

A container's command line (`rl ps`, `rl top`), an image's history (`rl history`) or a
registry's error message are written by whoever made them. Printed raw, an escape sequence
among them rewrites the user's terminal: its title, the screen, on some terminals the
clipboard or what a later paste sends. Tables and error lines therefore show every control
character (C0, DEL, C1) and the Unicode bidi overrides escaped as `\\xNN` / `\\uNNNN`, as
`docker ps` shows them quoted. `rl logs` is the exception, on purpose: it is the container's
own output, a raw byte stream, as `docker logs` is (like `cat` of a file).

Hand-written: the standard library has no "escape for a terminal" function (repr() also
quotes and escapes non-ASCII letters, which must stay readable).
"""

from __future__ import annotations

import re

# C0 except nothing (a tab or newline inside a cell breaks the table too), DEL, C1, and the
# bidi controls that reorder what follows them (U+202A-202E, U+2066-2069).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: str) -> str:
    """`text` with every character that a terminal would act on escaped."""
    return _UNSAFE.sub(_escape, text)


def printable_lines(text: str) -> str:
    """As printable(), keeping newlines (for a message of several lines)."""
    return "\n".join(printable(line) for line in text.split("\n"))


def rows(table: list[tuple], sep: str = "  ") -> list[str]:
    """Aligned lines of `table` (its first row the header), every cell made printable()."""
    cells = [[printable(str(c)) for c in r] for r in table]
    if not cells:
        return []
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return [sep.join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
            for r in cells]

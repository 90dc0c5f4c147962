"""Go's text/tabwriter, as Docker's CLI sets it up for tables (minwidth 10, padding 3,
padded with spaces): tab-terminated cells aligned in column blocks.

A port of Go's algorithm, not an approximation, because scripts cut Docker's tables by
column position: a column block is a run of consecutive lines that have a cell in that
column; its width is the widest cell of the block plus the padding, at least minwidth.
The text after a line's last tab is not part of any column and is not padded.
Widths count characters (Go counts runes).
"""

from __future__ import annotations


def format_table(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align `text` (lines of tab-separated cells) as Go's tabwriter with flags 0 does."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for i in range(line0, line1):
            cells = lines[i]
            parts = []
            for j, cell in enumerate(cells):
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(cell + " " * (widths[j] - len(cell)))
                else:
                    parts.append(cell)
            out.append("".join(parts))

    def fmt(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            # a block of lines with a cell in this column starts here
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            fmt(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    fmt(0, len(lines))
    return "\n".join(out)

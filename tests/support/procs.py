"""The host's processes as tests look at them through /proc: state, parent, name, children."""

from __future__ import annotations

import os


def stat(pid: int) -> tuple[str, str, int] | None:
    """(comm, state letter, ppid) of `pid`; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    rest = raw[raw.rindex(")") + 2:].split()
    return raw[raw.index("(") + 1:raw.rindex(")")], rest[0], int(rest[1])


def ppid(pid: int) -> int | None:
    s = stat(pid)
    return None if s is None else s[2]


def alive(pid: int) -> bool:
    """Running (a zombie is not)."""
    s = stat(pid)
    return s is not None and s[1] != "Z"


def comm(pid: int) -> str:
    s = stat(pid)
    return "?" if s is None else s[0]


def children() -> dict[int, list[int]]:
    """ppid -> pids, of every process now."""
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (pp := ppid(int(entry))) is not None:
            out.setdefault(pp, []).append(int(entry))
    return out


def tree(pid: int, kids: dict[int, list[int]]) -> set[int]:
    """`pid` and its descendants in `kids` (children())."""
    seen, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(kids.get(p, []))
    return seen

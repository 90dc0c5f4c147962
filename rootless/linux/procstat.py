"""/proc/PID/stat, read in one place: the process's name, state and the fields after it
(proc(5) numbering less 3: fields[0] is the state, [1] the ppid, [11]/[12] utime/stime,
[19] the start time in clock ticks since boot). The name may hold spaces and ")": the
fields start after the last ")"."""

from __future__ import annotations


def read(pid: int | str) -> tuple[str, list[str]] | None:
    """(comm, fields from the state on), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
        cut = raw.rindex(")")
        return raw[raw.index("(") + 1:cut], raw[cut + 2:].split()
    except (OSError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """The start time of a live process (None when gone or a zombie): with the pid, it
    names the process even after the pid is reused."""
    stat = read(pid)
    if stat is None:
        return None
    fields = stat[1]
    try:
        if fields[0] in ("Z", "X"):
            return None
        return int(fields[19])
    except (IndexError, ValueError):
        return None

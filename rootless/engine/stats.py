"""`rl stats`: CPU, memory, PIDs, network and block I/O of running containers, measured
from /proc over each container's processes.

rl runs without cgroups (no cgroup v2 delegation on these hosts), so there is no
per-container accounting to read as Docker does. Instead, for each container: its
processes (rootless.runtime.join.processes: pid 1, its descendants, what `rl exec` put in
its pid namespace); CPU % is the CPU time they used between two samples over the wall
time between them (100% = one CPU, as Docker counts); memory is the sum of their resident
set sizes (pages shared between them are counted once per process, so this is an upper
bound), against the host's memory as the limit; PIDs counts their threads; network I/O
is the container's network namespace's interfaces other than lo (/proc/PID/net/dev);
block I/O is read_bytes/write_bytes of /proc/PID/io where this user may read it.
A process that exits between the samples leaves its CPU time out.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass
class Sample:
    cpu_ticks: int = 0
    mem: int = 0
    pids: int = 0
    net_rx: int = 0
    net_tx: int = 0
    blk_read: int = 0
    blk_write: int = 0


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _net(pid: int) -> tuple[int, int]:
    rx = tx = 0
    try:
        for line in _read(f"/proc/{pid}/net/dev").splitlines()[2:]:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                continue
            fields = rest.split()
            rx += int(fields[0])
            tx += int(fields[8])
    except (OSError, ValueError, IndexError):
        pass
    return rx, tx


def sample(pid: int) -> Sample:
    """One reading of the container whose pid 1 is `pid` (host pid)."""
    from rootless.runtime import join

    s = Sample()
    page = os.sysconf("SC_PAGE_SIZE")
    for p in join.processes(pid):
        hp = p["hostpid"]
        s.cpu_ticks += p["utime"]
        try:
            s.mem += int(_read(f"/proc/{hp}/statm").split()[1]) * page
            s.pids += len(os.listdir(f"/proc/{hp}/task"))
        except (OSError, ValueError, IndexError):
            continue
        try:
            io = dict(line.split(": ", 1) for line in _read(f"/proc/{hp}/io").splitlines())
            s.blk_read += int(io.get("read_bytes", 0))
            s.blk_write += int(io.get("write_bytes", 0))
        except (OSError, ValueError):
            pass  # not ours to read (a subordinate uid's process)
    s.net_rx, s.net_tx = _net(pid)
    return s


def mem_total() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def measure(pids: dict[str, int], interval: float = 1.0) -> dict[str, tuple[Sample, float]]:
    """{container id: (the second sample, CPU %)} over `interval` seconds."""
    first = {cid: sample(pid) for cid, pid in pids.items()}
    t0 = time.monotonic()
    time.sleep(interval)
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for cid, pid in pids.items():
        second = sample(pid)
        elapsed = time.monotonic() - t0
        used = max(0, second.cpu_ticks - first[cid].cpu_ticks) / tick
        out[cid] = (second, 100.0 * used / elapsed if elapsed > 0 else 0.0)
    return out

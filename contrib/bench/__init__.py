"""Benchmarks against the peers installed on this machine (`nox -s bench`).

Each module here (fuse, pull, run, net, build) has `run(report: Report)`. They measure rl
and its peer (fuse-overlayfs, kernel overlayfs, skopeo, podman) on the same work in one run
and print ratios. They assert nothing: targets are read by people, not by CI.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple


class Proc(NamedTuple):
    pid: int
    ppid: int
    comm: str
    cmdline: bytes  # NUL-separated, as in /proc


def processes() -> list[Proc]:
    """Every process this user may read, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    raw = f.read()
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            comm = raw[raw.index("(") + 1:raw.rindex(")")]
            out.append(Proc(int(entry), int(raw[raw.rindex(")") + 2:].split()[1]), comm, cmd))
    return out


def timeit(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() in seconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


@dataclass
class Report:
    rows: list[tuple[str, str, float, str, float, str]] = field(default_factory=list)

    def ratio(self, name: str, ours: float, peer_name: str, peer: float, unit: str = "s",
              target: str = "") -> None:
        """One comparison; ratio = ours / peer (lower is better for times)."""
        self.rows.append((name, unit, ours, peer_name, peer, target))
        r = ours / peer if peer else float("inf")
        extra = f"  (target {target})" if target else ""
        print(f"{name}: rl {ours:.4g} {unit}, {peer_name} {peer:.4g} {unit}, "
              f"ratio {r:.2f}{extra}", flush=True)

    def note(self, text: str) -> None:
        print(f"  note: {text}", flush=True)

"""RL_TRACE=FILE: every process of a container's start (rl, the monitor, the sandbox, pid 1,
the fuse server, the lean monitor) appends `wall-clock-ms pid what` lines to FILE, to see
where a start spends its time. One function for all of them; it imports nothing (it is on
the path of `rl run` before click and of the lean processes)."""

from __future__ import annotations

import os


def trace(what: str) -> None:
    path = os.environ.get("RL_TRACE")
    if path:
        import time

        with open(path, "a") as f:
            f.write(f"{time.time() * 1000:.1f} {os.getpid()} {what}\n")

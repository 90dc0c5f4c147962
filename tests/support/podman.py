"""Rootless podman as a peer in tests and benchmarks, and what it leaves behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def end_pause_processes(runtime_dir: str | os.PathLike) -> None:
    """Rootless podman leaves a pause process (catatonit -P) per XDG_RUNTIME_DIR, and
    `podman unshare` starts it again: end the ones started with `runtime_dir`. Found by
    the pid file when podman wrote one, else by the process's XDG_RUNTIME_DIR (podman 4.3
    does not always keep the pid file)."""
    runtime_dir = Path(runtime_dir)
    try:
        pid = int((runtime_dir / "libpod" / "tmp" / "pause.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass
    want = f"XDG_RUNTIME_DIR={runtime_dir}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if Path(f"/proc/{entry}/comm").read_text().strip() != "catatonit":
                continue
            if want in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                os.kill(int(entry), signal.SIGKILL)
        except OSError:
            pass

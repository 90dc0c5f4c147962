"""Docker's exit codes from wait statuses: the command's own, or 128+N when killed by N."""

from __future__ import annotations

import os


def from_status(status: int) -> int:
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 128 + os.WTERMSIG(status)


def wait(pid: int) -> int:
    """Wait for child `pid` (os.waitpid retries on EINTR itself, PEP 475)."""
    _, status = os.waitpid(pid, 0)
    return from_status(status)

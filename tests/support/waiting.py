"""Polling for what a test waits on (a container's state, a process's end)."""

from __future__ import annotations

import time


def wait_until(pred, timeout: float = 20, what: str = "condition"):
    """pred()'s first true value within `timeout` seconds; AssertionError naming `what`
    after that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")

"""The conditions of Docker's container wait API (`POST /containers/{id}/wait?condition=`)
besides the default not-running: `next-exit` (the next exit after the call, even of a
container that is not running now) and `removed` (until the container is gone). The CLI's
`rl wait` is Docker's and has no --condition; the API service calls these.

No daemon sees the exits: the row is polled (5 ms doubling to 100 ms), which is what the
monitor writes when the container ends."""

from __future__ import annotations

import time

from rootless.errors import InvalidArgument, NotFound

CONDITIONS = ("not-running", "next-exit", "removed")


def check(condition: str) -> None:
    if condition not in CONDITIONS:
        raise InvalidArgument(f"invalid condition {condition!r}",
                              "use not-running, next-exit or removed")


def wait(ref: str, condition: str, timeout: float | None = None) -> int:
    """The exit code (-1 when none is known) once `condition` holds."""
    from rootless.engine import containers

    check(condition)
    c = containers.lookup(ref)
    cid, finished, code = c.id, c.finished, c.exit_code
    delay, deadline = 0.005, None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            c = containers.lookup(cid)
        except NotFound:
            if condition == "removed":
                return code if code is not None else -1
            raise
        if c.exit_code is not None:
            code = c.exit_code
        if condition == "next-exit" and c.state != "running" and c.finished != finished \
                and c.finished is not None:
            return code if code is not None else -1
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"container {c.name}: {condition} not reached")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)

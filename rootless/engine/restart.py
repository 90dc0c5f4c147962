"""Restart policies (`--restart`), kept by the container's monitor, as Docker's
restartmanager does.

The lean monitor (rootless/runtime/lean.py) imports nothing of this while the container
runs; once it exited, finish_detached (rootless/engine/containers.py) calls `after_exit`,
which decides, waits out the back-off (100 ms, doubled at each restart, reset to 100 ms
when the container had run for 10 s, at most 1 minute) and starts the container again in
this same process, which then execs the lean monitor again (same pid, same start time, so
`rl ps` keeps finding it).

A manual stop (`rl stop`, `rl kill` with SIGKILL or the stop signal, `rl rm -f`) sets the
row's `manual_stop` before it signals, so the monitor sees it when the container ends and
does not restart; during a back-off the monitor waits for SIGTERM (which `rl stop` sends
it) and re-reads the flag. `rl start` clears it (and the count), as Docker's does.
"""

from __future__ import annotations

import os
import signal
import time

from rootless.errors import InvalidArgument
from rootless.store import containerdb

POLICIES = ("no", "on-failure", "always", "unless-stopped")
FIRST_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0  # seconds of running after which the delay starts again at FIRST_DELAY


def parse(text: str | None) -> dict | None:
    """`--restart` -> Docker's HostConfig.RestartPolicy ({"Name", "MaximumRetryCount"}), or
    None for no policy."""
    if text is None or text in ("", "no"):
        return None
    name, sep, count = text.partition(":")
    fix = "use no, on-failure[:MAX-RETRIES], always or unless-stopped"
    if name not in POLICIES:
        raise InvalidArgument(f"invalid restart policy {text!r}", fix)
    if sep:
        if name != "on-failure":
            raise InvalidArgument(f"invalid restart policy {text!r}: a maximum retry count "
                                  f"goes with on-failure only", fix)
        if not count.isdigit():
            raise InvalidArgument(f"invalid restart policy {text!r}: the maximum retry count "
                                  "must be a number >= 0", fix)
    return {"Name": name, "MaximumRetryCount": int(count) if sep else 0}


def wants_restart(policy: dict | None, code: int | None, count: int, manual: bool) -> bool:
    """Docker's restartmanager.ShouldRestart."""
    if not policy or manual or policy["Name"] == "no":
        return False
    if policy["Name"] in ("always", "unless-stopped"):
        return True
    # on-failure: a non-zero exit, and fewer restarts than the maximum (0: no maximum)
    if code == 0:
        return False
    limit = policy.get("MaximumRetryCount") or 0
    return limit == 0 or count < limit


def next_delay(previous: float, ran_for: float) -> float:
    if previous <= 0 or ran_for >= RESET_AFTER:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


def after_exit(cid: str, code: int | None) -> None:
    """In the monitor, once the container exited and its exit is recorded: restart it as
    long as its policy says so. Returns when it is not to be restarted (any more)."""
    from rootless.engine import containers as ctr
    from rootless.store import catalog

    while True:
        with containerdb.db() as conn, catalog.transaction(conn):
            c = containerdb.get_in(conn, cid)
            if c is None:
                return
            policy = c.options.get("restart")
            if not wants_restart(policy, code, c.restart_count, bool(c.manual_stop)):
                return
            ran = (c.finished or 0) - (c.started or 0)
            delay = next_delay(c.restart_delay or 0, ran)
            me = os.getpid()
            containerdb.update(conn, cid, state="restarting",
                               restart_count=c.restart_count + 1, restart_delay=delay,
                               monitor_pid=me, monitor_start=containerdb.proc_start(me))
        if not _back_off(cid, delay):
            return
        code = ctr.relaunch(cid)
        if code is None:  # could not start: recorded as exited with the reason
            return


def _stopped(cid: str) -> bool:

    with containerdb.db() as conn:
        c = containerdb.get_in(conn, cid)
    return c is None or bool(c.manual_stop)


def _back_off(cid: str, delay: float) -> bool:
    """Wait `delay` seconds; False (and the row set exited) if a manual stop came. A
    SIGTERM (what `rl stop` sends a restarting container's monitor) ends the wait early."""
    from rootless.store import catalog

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        deadline = time.monotonic() + delay
        while True:
            if _stopped(cid):
                with containerdb.db() as conn, catalog.transaction(conn):
                    containerdb.update(conn, cid, state="exited", when_state="restarting")
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            signal.sigtimedwait({signal.SIGTERM, signal.SIGINT}, min(left, 0.5))
    finally:
        # a SIGTERM caught here was a stop: _stopped() saw its flag; none stays pending
        while signal.sigtimedwait({signal.SIGTERM, signal.SIGINT}, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})

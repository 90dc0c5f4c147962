"""Docker's container wait (`rl wait`, `POST /containers/{id}/wait?condition=`), the one
implementation every front end calls:
- `not-running` (the default): until the container is not running: an exit counts, also
  one its restart policy restarts it after (Docker's exit notifies its waiters); one
  restarting (backing off) at the call counts as running, as Docker's Running flag says;
- `next-exit`: the next exit after the call, even of a container that is not running at
  the call; an exit that a restart (`rl restart`, a restart policy) follows at once counts;
- `removed`: until the container is gone.
The answer is the exit code of that exit: 0 for a container that never ran (Docker's
ExitCode then), -1 when it ran and its code is unknown (its monitor was killed: a build's
RUN step must not pass for it).

No daemon sees the exits. What does: the row (the monitor records each exit: `finished`
set, and a new start sets `started`, so an exit is seen even when a restart came before
the next look), the monitor's liveness (a look at /proc, cheaper than the row) while the
container runs, and the exits that attaches of this process saw (`note_exit`: the API
service's attaches get the code from the monitor once the exit is recorded and an --rm
container removed), which wake the waits at once. A container removed before its code
was read (--rm) gets it from its die event. Looks are at most 0.1 s apart, and `gone`
(the client went away) is checked at each, so such a wait gives its thread back soon."""

from __future__ import annotations

import threading
import time

from rootless.errors import InvalidArgument, NotFound

CONDITIONS = ("not-running", "next-exit", "removed")

# The exits attaches of this process saw, per container: (how many, the last code);
# bounded: the newest 256.
_SEEN: dict[str, tuple[int, int]] = {}
_SEEN_CHANGED = threading.Condition()


def check(condition: str) -> None:
    if condition not in CONDITIONS:
        raise InvalidArgument(f"invalid condition {condition!r}",
                              "use not-running, next-exit or removed")


def note_exit(cid: str, code: int) -> None:
    """An attach of this process saw `cid` exit with `code` (recorded by its monitor)."""
    with _SEEN_CHANGED:
        count = _SEEN.pop(cid, (0, 0))[0]
        _SEEN[cid] = (count + 1, code)
        while len(_SEEN) > 256:
            _SEEN.pop(next(iter(_SEEN)))
        _SEEN_CHANGED.notify_all()


def _seen(cid: str) -> tuple[int, int | None]:
    with _SEEN_CHANGED:
        return _SEEN.get(cid, (0, None))


def wait(ref: str, condition: str = "not-running", *, gone: threading.Event | None = None,
         timeout: float | None = None) -> int | None:
    """The exit code once `condition` holds; None when `gone` was set first. TimeoutError
    after `timeout` seconds."""
    from rootless.engine import containers
    from rootless.store.containerdb import monitor_alive

    check(condition)
    c = containers.lookup(ref)
    cid, created, call = c.id, c.created, time.time()
    finished, last_code = c.finished, c.exit_code
    started, was_up = c.started, c.state == "running"
    rm = bool(c.options.get("rm"))
    seen_at_call = _seen(cid)[0]
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.01
    while gone is None or not gone.is_set():
        count, code = _seen(cid)
        if count > seen_at_call and (condition != "removed" or rm):
            return code
        try:
            cur = containers.lookup(cid)
        except NotFound:
            return _code_of_removed(cid, created, last_code, gone, ran=started is not None)
        exited = (cur.finished is not None and cur.finished != finished) or \
            (was_up and cur.started != started)  # it ran at the last look, and ran again
        if cur.exit_code is not None:
            last_code = cur.exit_code
        if (condition == "next-exit" and exited) or \
                (condition == "not-running" and
                 (exited or cur.state not in ("running", "restarting"))):
            if cur.exit_code is None and exited and cur.state == "running":
                code = _die_code(cid, call)  # restarted: the row has no code now
                return code if code is not None else -1
            if last_code is not None:
                return last_code
            return 0 if cur.state == "created" else -1
        finished, started = cur.finished, cur.started
        was_up = cur.state == "running"  # restarting: its exit was before
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"container {cur.name}: {condition} not reached")
        with _SEEN_CHANGED:
            if cur.state == "running" and not cur.options.get("restart"):
                # until its monitor is gone, an attach saw the exit, or the client left;
                # then the row again (a restart policy's monitor outlives the exit)
                while monitor_alive(cur) and (gone is None or not gone.is_set()) and \
                        _SEEN.get(cid, (0, 0))[0] == count and \
                        (deadline is None or time.monotonic() < deadline):
                    _SEEN_CHANGED.wait(0.1)
                delay = 0.01
                continue
            if _SEEN.get(cid, (0, 0))[0] == count:
                _SEEN_CHANGED.wait(delay)
        delay = min(delay * 2, 0.1)
    return None


def _code_of_removed(cid: str, created: float, last_code: int | None,
                     gone: threading.Event | None, ran: bool = True) -> int:
    """The exit code of a container whose row is gone: an attach's, else its die event,
    which its monitor may write just after the removal (--rm). One that never ran (as
    far as we saw): 0 at once, as Docker answers, unless a die event says otherwise."""
    for _ in range(50 if ran else 1):
        code = _seen(cid)[1]
        if code is None:
            code = _die_code(cid, created)
        if code is not None or last_code is not None or (gone is not None and gone.is_set()):
            break
        time.sleep(0.05)
    if code is None and last_code is None and not ran:
        return 0
    return code if code is not None else last_code if last_code is not None else -1


def _die_code(cid: str, since: float) -> int | None:
    """The exit code of `cid`'s last die event since `since` (seconds)."""
    from rootless.engine import events

    code = None
    for ev in events.read(int(since * 1e9), None, follow=False):
        if ev.get("Action") == "die" and (ev.get("Actor") or {}).get("ID") == cid:
            raw = ev["Actor"].get("Attributes", {}).get("exitCode", "")
            code = int(raw) if str(raw).lstrip("-").isdigit() else code
    return code

"""Health checks: the image's HEALTHCHECK or `--health-*`, as Docker runs them.

The container's monitor keeps the schedule (rootless/runtime/healthtimer.py: no engine in
the idle monitor); for each check it starts a fresh `python -I -S` (rootless/runtime/lean.py
`health_main`) that calls `probe()` here: the command runs in the container's namespaces
as `rl exec` does (rootless/runtime/join.py exec_child), with the check's timeout; the
result goes into the row's `health` (Docker's State.Health: Status, FailingStreak, the last
5 Log entries) by Docker's rules (daemon/health.go): a success is healthy; a failure adds
to the streak, except while the container is still `starting` within its start period;
`retries` failures in a row are unhealthy.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time

from rootless.errors import Conflict, InvalidArgument, RlError
from rootless.store import containerdb

NS = 1_000_000_000
DEFAULTS = {"Interval": 30 * NS, "Timeout": 30 * NS, "StartPeriod": 0,
            "StartInterval": 5 * NS, "Retries": 3}
MAX_LOG = 5
MAX_OUTPUT = 4096  # Docker's maxOutputLen


def parse_duration(text: str, flag: str) -> int:
    """A Go duration (30s, 1m30s, 500ms) -> nanoseconds. Docker wants 0 or >= 1 ms."""
    import re

    units = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS,
             "h": 3600 * NS}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        if text != "0":
            raise InvalidArgument(f"invalid {flag} {text!r}",
                                  "give a duration like 30s, 1m30s or 500ms")
        parts = []
    ns = int(sum(float(n) * units[u] for n, u in parts))
    if 0 < ns < 1_000_000:
        raise InvalidArgument(f"{flag} {text!r} is too short", "give at least 1ms")
    return ns


def config(image_healthcheck: dict | None, *, cmd: str | None, interval: str | None,
           timeout: str | None, retries: int | None, start_period: str | None,
           start_interval: str | None, disabled: bool,
           test: list[str] | None = None) -> dict | None:
    """The container's health check (Docker's Config.Healthcheck, durations in ns), or
    None: the image's, with the flags over it; --no-healthcheck or a NONE test: none."""
    flags = (cmd, interval, timeout, retries, start_period, start_interval, test)
    if disabled:
        if any(v is not None for v in flags):
            raise InvalidArgument("--no-healthcheck conflicts with the --health-* options",
                                  "give one or the other")
        return None
    hc = dict(image_healthcheck or {})
    if cmd is not None:
        if not cmd.strip():
            raise InvalidArgument("--health-cmd must not be empty",
                                  "give a shell command, or --no-healthcheck")
        hc["Test"] = ["CMD-SHELL", cmd]
    if test is not None:  # Docker's Test list as the API and compose give it
        hc["Test"] = list(test)
    for key, value in (("Interval", interval), ("Timeout", timeout),
                       ("StartPeriod", start_period), ("StartInterval", start_interval)):
        if value is not None:
            flag = "--health-" + {"StartPeriod": "start-period",
                                  "StartInterval": "start-interval"}.get(key, key.lower())
            hc[key] = parse_duration(value, flag)
    if retries is not None:
        if retries < 0:
            raise InvalidArgument(f"--health-retries {retries} is negative",
                                  "give 0 (the default, 3) or more")
        hc["Retries"] = retries
    test = hc.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
        raise InvalidArgument(f"invalid health check test {test!r}",
                              "the image's HEALTHCHECK must be CMD or CMD-SHELL")
    return hc


def value(hc: dict, key: str) -> int:
    """A field of the check, 0 meaning the default, as Docker reads them."""
    return hc.get(key) or DEFAULTS[key]


def timer_args(hc: dict) -> str:
    """What the monitor's schedule needs (rootless/runtime/healthtimer.py), in seconds:
    interval,start_period,start_interval, and the check to run (`probe`, by name: the
    runtime does not import the engine)."""
    return ",".join([*(str(value(hc, k) / NS) if k != "StartPeriod" else
                       str((hc.get("StartPeriod") or 0) / NS)
                       for k in ("Interval", "StartPeriod", "StartInterval")),
                     "rootless.engine.health:probe"])


def _argv(test: list[str]) -> list[str]:
    return ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])


def _iso(t: float) -> str:
    from rootless.runtime.logfile import timestamp

    return timestamp(int(t * 1e9))


def _run_check(c, hc: dict) -> tuple[int, str]:
    """Run the check's command in the container; (exit code, output). -1 on a timeout."""
    from rootless.runtime import join, seccomp

    spec = c.spec()
    process = dict(spec["process"], args=_argv(hc["Test"]), terminal=False)
    bpf = seccomp.read_bundle(str(c.dir), spec)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(w, 1)
        os.dup2(w, 2)
        join.exec_child(c.pid, spec, process, tty_sock=None, user=None, seccomp_bpf=bpf)
    os.close(w)
    limit = value(hc, "Timeout") / NS
    deadline = time.monotonic() + limit
    out = b""
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([r], [], [], left)
        if not ready:
            continue
        chunk = os.read(r, 65536)
        if not chunk:
            break
        if len(out) < MAX_OUTPUT:
            out += chunk
    if timed_out:
        _kill_check(pid)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    text = out[:MAX_OUTPUT].decode(errors="replace")
    if timed_out:
        return -1, f"Health check exceeded timeout ({_go_duration(limit)})"
    return os.waitstatus_to_exitcode(status), text


def _go_duration(seconds: float) -> str:
    """Go's Duration.String for the timeout message Docker writes: 200ms, 1.5s, 1m30s."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 60:
        return f"{seconds:g}s"
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return (f"{h}h" if h else "") + f"{m}m{s:g}s"


def _kill_check(pid: int) -> None:
    """The check ran past its timeout: kill its session in the container (the process
    exec_child forked into the pid namespace made one) and the joining process."""
    from rootless.runtime import join

    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            inner = [int(p) for p in f.read().split()]
    except OSError:
        inner = []
    for p in inner:
        try:
            join.kill(-p, signal.SIGKILL)  # the session's process group
        except (ProcessLookupError, PermissionError):
            try:
                join.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def record(cid: str, started: float, code: int, output: str, ended: float) -> str | None:
    """Fold one result into the row's State.Health by Docker's rules; the new status. A
    change of status is a `health_status: STATUS` event, as Docker's."""
    status, old, c = _fold(cid, started, code, output, ended)
    if status is not None and status != old:
        from rootless.engine import events

        events.container(f"health_status: {status}", c)
    return status


def _fold(cid: str, started: float, code: int, output: str, ended: float):
    from rootless.store import catalog

    with containerdb.db() as conn, catalog.transaction(conn):
        c = containerdb.get_in(conn, cid)
        if c is None:
            return None, None, None
        hc = c.options.get("healthcheck")
        if not hc or c.state != "running":
            return None, None, c
        h = json.loads(c.health) if c.health else {"Status": "starting", "FailingStreak": 0,
                                                   "Log": []}
        old = h["Status"]
        if code == 0:
            h["Status"], h["FailingStreak"] = "healthy", 0
        else:
            in_start = (h["Status"] == "starting" and
                        started - (c.started or 0) < (hc.get("StartPeriod") or 0) / NS)
            if not in_start:
                h["FailingStreak"] += 1
                if h["FailingStreak"] >= value(hc, "Retries"):
                    h["Status"] = "unhealthy"
        h["Log"] = (h["Log"] + [{"Start": _iso(started), "End": _iso(ended),
                                 "ExitCode": code, "Output": output}])[-MAX_LOG:]
        containerdb.update(conn, cid, health=json.dumps(h))
        return h["Status"], old, c


def probe(ref: str) -> str:
    """Run the container's health check once and record it; the status after it."""

    c = containerdb.lookup(ref)
    hc = c.options.get("healthcheck")
    if not hc:
        raise InvalidArgument(f"container {c.name} has no health check",
                              "create it with --health-cmd or from an image with HEALTHCHECK")
    if c.state != "running" or not c.pid:
        raise Conflict(f"container {c.name} is not running", "start it first (rl start)")
    started = time.time()
    try:
        code, output = _run_check(c, hc)
    except (OSError, RlError) as exc:
        code, output = -1, f"cannot run the health check: {exc}"
    status = record(c.id, started, code, output, time.time())
    if status is None:
        raise Conflict(f"container {c.name} stopped during its health check")
    return status


def reset(conn, cid: str, hc: dict | None) -> None:
    """At each start: starting again, as Docker's initHealthMonitor."""
    containerdb.update(conn, cid, health=json.dumps(
        {"Status": "starting", "FailingStreak": 0, "Log": []}) if hc else None)

"""A detached container's monitor forked by the warm zygote (rootless/runtime/monitorfork.py):
it is pid 1's parent, outlives the zygote, records the exit in the store of the `rl` that
started the container (not the zygote's), and a start that fails leaves no monitor."""

from __future__ import annotations

import json
import os
import signal
import time

from tests.runtime.conftest import REGISTRIES_CONF, Runner, _extra_env


def _inspect(rl, name):
    return json.loads(rl("inspect", name, check=True).stdout)[0]


def _wait(pred, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _stat(pid: int) -> tuple[str, int] | None:
    """(comm, ppid) of `pid`, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    return comm, int(raw[raw.rindex(")") + 2:].split()[1])


def _zygotes(rl) -> set[int]:
    pids = set()
    for pidfile in (rl.root / "run" / "rl").glob("fuse-zygote-*.pid"):
        pids |= {int(p) for p in pidfile.read_text().split() if _stat(int(p))}
    return pids


def _monitors_of(root) -> list[int]:
    """rl-monitor processes whose store (the zygote's environment) is under `root`."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (_stat(int(entry)) or ("",))[0] == "rl-monitor":
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if str(root).encode() in f.read():
                        out.append(int(entry))
            except OSError:
                pass
    return out


def test_monitor_is_the_zygotes_child_and_pid1s_parent_and_outlives_it(rl):
    rl("run", "-d", "--name", "m", "busybox", "sh", "-c",
       "trap 'exit 7' TERM; while :; do sleep 0.1; done", check=True)
    d = _inspect(rl, "m")
    monitor, pid1 = d["State"]["MonitorPid"], d["State"]["Pid"]
    zygotes = _zygotes(rl)
    assert zygotes, "no zygote runs after a detached start"
    comm, parent = _stat(monitor)
    assert comm == "rl-monitor" and parent in zygotes, (comm, parent, zygotes)
    assert _stat(pid1)[1] == monitor  # only a parent gets pid 1's exit status
    for z in zygotes:  # the zygote goes (idle timeout, a new rl version): the container stays
        os.kill(z, signal.SIGTERM)
    _wait(lambda: not any(_stat(z) for z in zygotes), "the zygote's end")
    time.sleep(0.3)
    assert _inspect(rl, "m")["State"]["Status"] == "running"
    assert _stat(monitor) is not None
    rl("stop", "-t", "5", "m", check=True)
    d = _inspect(rl, "m")
    assert d["State"]["Status"] == "exited" and d["State"]["ExitCode"] == 7
    _wait(lambda: _stat(monitor) is None, "the monitor's end")
    rl("rm", "m", check=True)


def test_exit_and_health_go_to_the_starting_rls_store(rl, registry, tmp_path):
    """Two stores (XDG_DATA_HOME) share one runtime dir, so one zygote, started by the
    first: a container of the second records its health and exit in the second."""
    rl("run", "-d", "--name", "first", "busybox", "sleep", "300", check=True)
    assert _zygotes(rl)
    other = tmp_path / "other"
    for sub in ("data", "config/rl"):
        (other / sub).mkdir(parents=True)
    (other / "config" / "rl" / "registries.conf").write_text(
        REGISTRIES_CONF.format(host=registry.host))
    rl2 = Runner(other, extra_env={**_extra_env(), "XDG_RUNTIME_DIR": rl.env["XDG_RUNTIME_DIR"]})
    try:
        rl2("pull", "-q", "busybox", check=True)
        rl2("run", "-d", "--name", "hc", "--health-cmd", "true", "--health-interval", "1s",
            "busybox", "sleep", "300", check=True)
        rl2("run", "-d", "--name", "ends", "busybox", "sh", "-c", "sleep 0.5; exit 3",
            check=True)
        assert _stat(_inspect(rl2, "ends")["State"]["MonitorPid"])[0] == "rl-monitor"
        _wait(lambda: _inspect(rl2, "ends")["State"]["Status"] == "exited", "the exit")
        assert _inspect(rl2, "ends")["State"]["ExitCode"] == 3
        _wait(lambda: _inspect(rl2, "hc")["State"]["Health"]["Status"] == "healthy",
              "the health check")
        assert rl("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split() == ["first"]
    finally:
        rl2("rm", "-f", "hc", "ends")


def test_a_start_that_fails_leaves_no_monitor(rl):
    rl("run", "-d", "--name", "ok", "busybox", "sleep", "300", check=True)
    ok = _inspect(rl, "ok")["State"]["MonitorPid"]
    assert _monitors_of(rl.root) == [ok]  # the zygote's monitors of this store are seen
    r = rl("run", "-d", "--name", "bad", "busybox", "/no/such/command")
    assert r.returncode == 127, r.stderr
    assert "/no/such/command" in r.stderr
    _wait(lambda: _monitors_of(rl.root) == [ok], "no monitor left of the failed start")
    assert _inspect(rl, "bad")["State"]["Status"] in ("created", "exited")
    rl("rm", "-f", "bad", "ok", check=True)

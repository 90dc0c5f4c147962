"""A detached container's monitor forked by the warm zygote (rootless/runtime/monitorfork.py):
it is pid 1's parent, outlives the zygote, records the exit in the store of the `rl` that
started the container (not the zygote's), and a start that fails leaves no monitor."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request

from tests.runtime.conftest import (
    REGISTRIES_CONF,
    Runner,
    _extra_env,
    user_processes_mentioning,
)
from tests.support import procs, users
from tests.support.waiting import wait_until


def _inspect(rl, name):
    return json.loads(rl("inspect", name, check=True).stdout)[0]


def _wait(pred, what, timeout=20.0):
    return wait_until(pred, timeout, what)


def _stat(pid: int) -> tuple[str, int] | None:
    """(comm, ppid) of `pid`, None once it is gone."""
    s = procs.stat(pid)
    return None if s is None else (s[0], s[2])


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
    finally:
        rl2("rm", "-f", "hc", "ends")


def test_a_start_that_fails_leaves_nothing_running(rl, tmp_path):
    rl("run", "-d", "--name", "ok", "busybox", "sleep", "300", check=True)
    ok = _inspect(rl, "ok")["State"]["MonitorPid"]
    assert _monitors_of(rl.root) == [ok]  # the zygote's monitors of this store are seen
    trace = tmp_path / "trace"
    r = rl("run", "-d", "--name", "bad", "busybox", "/no/such/command",
           env={"RL_TRACE": str(trace)})
    assert r.returncode == 127, r.stderr
    assert "/no/such/command" in r.stderr
    # it went the zygote's way: its sandbox was the child of a monitor the zygote forked
    assert "S forked by the zygote's monitor" in trace.read_text()
    _wait(lambda: _monitors_of(rl.root) == [ok], "no monitor left of the failed start")
    assert _inspect(rl, "bad")["State"]["Status"] in ("created", "exited")
    rl("rm", "-f", "bad", "ok", check=True)
    _wait(lambda: not user_processes_mentioning(str(rl.root)), "no process left")


def _ulimits(rl, name: str, prefix: list[str]) -> tuple[str, str]:
    """`ulimit -n` (soft, hard) in a detached container started under `prefix`, and the
    name of its monitor's process."""
    argv = [*prefix, *rl.argv("run", "-d", "--name", name, "busybox", "sh", "-c",
                              "ulimit -n; ulimit -Hn; sleep 300")]
    r = subprocess.run(argv, env=rl.env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = _wait(lambda: rl("logs", name, check=True).stdout.split() or None, "the output")
    return tuple(out), _stat(_inspect(rl, name)["State"]["MonitorPid"])[0]


def test_the_container_gets_the_limits_of_the_rl_that_starts_it(rl):
    rl("run", "-d", "--name", "first", "busybox", "sleep", "300", check=True)  # a zygote
    assert _zygotes(rl)
    # lower limits than the zygote's: its monitor takes them on
    assert _ulimits(rl, "low", ["prlimit", "--nofile=500:600"]) == (("500", "600"),
                                                                   "rl-monitor")
    rl("rm", "-f", "first", "low", check=True)
    users.stop_fuse_zygotes(rl.root / "run" / "rl")
    _wait(lambda: not _zygotes(rl), "the zygote's end")
    # a zygote with lower limits than ours cannot raise them: rl forks the sandbox itself
    prefix = ["prlimit", "--nofile=500:600"]
    r = subprocess.run([*prefix, *rl.argv("run", "-d", "--name", "z", "busybox", "sleep",
                                          "300")], env=rl.env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    soft, hard = (int(x) for x in subprocess.run(
        ["sh", "-c", "ulimit -n; ulimit -Hn"], capture_output=True, text=True).stdout.split())
    assert hard > 600
    assert _ulimits(rl, "ours", []) == ((str(soft), str(hard)), "python")


def test_published_ports_of_the_proxy_and_a_terminal_are_handed_over(rl):
    from tests.support.registry import free_port

    port = free_port()
    rl("run", "-d", "--name", "web", "--network", "slirp4netns:port_handler=proxy",
       "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
       "mkdir /www && echo handed over > /www/index.html && httpd -f -p 80 -h /www",
       check=True)
    assert _stat(_inspect(rl, "web")["State"]["MonitorPid"])[0] == "rl-monitor"

    def fetch():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                return resp.read().decode()
        except OSError:
            return None

    assert _wait(fetch, "the page through the proxied port") == "handed over\n"
    rl("rm", "-f", "web", check=True)
    with socket.socket() as s:  # nothing listens on the port any more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        s.bind(("127.0.0.1", port))
        s.listen()
    rl("run", "-dt", "--name", "tty", "busybox", "sh", "-c", "tty; sleep 300", check=True)
    assert _stat(_inspect(rl, "tty")["State"]["MonitorPid"])[0] == "rl-monitor"
    out = _wait(lambda: rl("logs", "tty", check=True).stdout.strip(), "the output")
    assert out.startswith("/dev/pts/"), out
    rl("rm", "-f", "tty", check=True)

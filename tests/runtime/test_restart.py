"""Restart policies (`--restart`), kept by the container's monitor, as the test user."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.runtime.test_lifecycle import ps_json
from tests.support.waiting import wait_until


def inspect(rl, name):
    return json.loads(rl("inspect", name, check=True).stdout)[0]


def test_on_failure_restarts_n_times_then_stays_exited(rl):
    rl("run", "-d", "--network", "none", "--name", "flaky", "--restart", "on-failure:3",
       "busybox", "sh", "-c", "echo life; exit 1", check=True)

    def done():
        d = inspect(rl, "flaky")
        return d if d["State"]["Status"] == "exited" and d["RestartCount"] == 3 else None

    d = wait_until(done, what="three restarts")
    assert d["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert d["State"]["ExitCode"] == 1
    time.sleep(1.5)  # no fourth life: the back-off after the third would be 0.8 s
    d = inspect(rl, "flaky")
    assert d["State"]["Status"] == "exited" and d["RestartCount"] == 3
    assert rl("logs", "flaky").stdout == "life\n" * 4
    assert ps_json(rl) == []


def test_on_failure_does_not_restart_a_success(rl):
    rl("run", "-d", "--network", "none", "--name", "ok", "--restart", "on-failure",
       "busybox", "true", check=True)
    assert rl("wait", "ok").stdout.strip() == "0"
    time.sleep(0.5)
    d = inspect(rl, "ok")
    assert d["State"]["Status"] == "exited" and d["RestartCount"] == 0


def test_always_restarts_after_pid1_killed_and_stop_ends_it(rl):
    rl("run", "-d", "--network", "none", "--name", "svc", "--restart", "always",
       "busybox", "sleep", "300", check=True)
    pid = inspect(rl, "svc")["State"]["Pid"]
    assert pid
    os.kill(pid, signal.SIGKILL)  # from outside, not through rl: the policy restarts it

    def again():
        d = inspect(rl, "svc")
        return d if d["State"]["Running"] and d["State"]["Pid"] != pid else None

    monitor = inspect(rl, "svc")["State"]["MonitorPid"]
    d = wait_until(again, what="the restart")
    assert d["RestartCount"] == 1
    # the same monitor, lean again once the new life runs (engine not kept in memory)
    assert d["State"]["MonitorPid"] == monitor
    cmdline = wait_until(lambda: b"monitor_main" in open(f"/proc/{monitor}/cmdline", "rb")
                         .read() and open(f"/proc/{monitor}/cmdline", "rb").read(),
                         what="the lean monitor")
    assert b"\0-S\0" in cmdline
    assert ps_json(rl)[0]["Status"].startswith("Up")
    t0 = time.monotonic()
    rl("stop", "-t", "1", "svc", check=True)
    assert time.monotonic() - t0 < 8
    time.sleep(0.8)  # a restart would come after 0.2 s
    d = inspect(rl, "svc")
    assert d["State"]["Status"] == "exited" and d["RestartCount"] == 1
    assert ps_json(rl) == []
    # a manual start clears the stop (and the count) and the policy applies again
    rl("start", "svc", check=True)
    pid = inspect(rl, "svc")["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: inspect(rl, "svc")["State"]["Pid"] not in (0, pid), what="restart")
    rl("rm", "-f", "svc", check=True)
    assert rl("ps", "-aq", check=True).stdout == ""


def test_restarting_shows_in_ps_and_stop_ends_the_back_off(rl):
    rl("run", "-d", "--network", "none", "--name", "crash", "--restart", "unless-stopped",
       "busybox", "sh", "-c", "exit 2", check=True)
    # 100 ms, 200, 400, ... 6.4 s: soon in a long back-off, shown as Docker shows it
    row = wait_until(lambda: next((r for r in ps_json(rl) if r["State"] == "restarting"
                                   and inspect(rl, "crash")["RestartCount"] >= 6), None),
                     what="a restarting row")
    assert row["Status"].startswith("Restarting (2) ")
    rl("container", "prune", "-f", check=True)  # a restarting container is not stopped
    assert inspect(rl, "crash")["State"]["Status"] in ("restarting", "running")
    t0 = time.monotonic()
    rl("stop", "crash", check=True)
    assert time.monotonic() - t0 < 3
    d = inspect(rl, "crash")
    count = d["RestartCount"]
    assert d["State"]["Status"] == "exited"
    time.sleep(0.5)
    assert inspect(rl, "crash")["RestartCount"] == count


@pytest.mark.parametrize("value, message", [
    ("sometimes", "invalid restart policy 'sometimes'"),
    ("on-failure:x", "the maximum retry count must be a number"),
    ("always:3", "a maximum retry count goes with on-failure only"),
])
def test_bad_restart_values_are_refused(rl, value, message):
    r = rl("run", "--restart", value, "busybox", "true")
    assert r.returncode == 125
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert rl("ps", "-aq", check=True).stdout == ""


def test_restart_with_rm_is_refused(rl):
    r = rl("run", "--rm", "--restart", "always", "busybox", "true")
    assert r.returncode == 125
    assert "--restart and --rm cannot be used together" in r.stderr
    assert rl("ps", "-aq", check=True).stdout == ""


def test_foreground_run_returns_and_restarts_go_on_detached(rl):
    r = rl("run", "--network", "none", "--name", "fg", "--restart", "on-failure:2",
           "busybox", "sh", "-c", "echo once; exit 4")
    assert r.returncode == 4 and r.stdout == "once\n"
    d = wait_until(lambda: (lambda d: d if d["State"]["Status"] == "exited"
                            and d["RestartCount"] == 2 else None)(inspect(rl, "fg")),
                   what="two restarts")
    assert d["State"]["ExitCode"] == 4


def test_rl_kill_ends_the_policy(rl):
    rl("run", "-d", "--network", "none", "--name", "k", "--restart", "always",
       "busybox", "sleep", "300", check=True)
    rl("kill", "k", check=True)  # SIGKILL through rl: Docker's ExitOnNext, no restart
    assert rl("wait", "k").stdout.strip() == "137"
    time.sleep(0.6)
    d = inspect(rl, "k")
    assert d["State"]["Status"] == "exited" and d["RestartCount"] == 0


def test_generate_systemd_writes_a_user_unit(rl, tmp_path):
    import shutil
    import subprocess

    rl("create", "--network", "none", "--name", "svc", "--restart", "always",
       "--stop-timeout", "5", "busybox", "sleep", "300", check=True)
    cid = inspect(rl, "svc")["Id"]
    text = rl("generate", "systemd", "svc", check=True).stdout
    lines = text.splitlines()
    start = next(line for line in lines if line.startswith("ExecStart="))
    assert start.endswith(f" start {cid}") and start.split("=", 1)[1].startswith("/")
    assert f"ExecStop={start.split('=', 1)[1].rsplit(' start ', 1)[0]} stop -t 5 {cid}" in lines
    assert "WantedBy=default.target" in lines and "RemainAfterExit=yes" in lines
    assert "loginctl enable-linger" in text
    assert any(line.startswith("Environment=XDG_DATA_HOME=") for line in lines)
    r = rl("generate", "systemd", "nosuch")
    assert r.returncode == 125 and "no such container: nosuch" in r.stderr
    unit = tmp_path / "container-svc.service"
    unit.write_text(text)
    if shutil.which("systemd-analyze"):
        v = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                           text=True)
        assert v.returncode == 0, v.stderr
    # the unit's ExecStart starts it
    rl(*start.split("=", 1)[1].split()[1:], check=True)
    assert inspect(rl, "svc")["State"]["Running"]


def test_update_restart_applies_to_a_running_container(rl):
    rl("run", "-d", "--network", "none", "--name", "u", "busybox", "sleep", "300", check=True)
    rl("update", "--restart", "always", "u", check=True)
    d = inspect(rl, "u")
    assert d["HostConfig"]["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    pid = d["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: inspect(rl, "u")["State"]["Pid"] not in (0, pid), what="restart")
    rl("update", "--restart", "no", "u", check=True)
    pid = inspect(rl, "u")["State"]["Pid"]
    os.kill(pid, signal.SIGKILL)
    assert rl("wait", "u").stdout.strip() == "137"
    time.sleep(0.6)
    assert inspect(rl, "u")["State"]["Status"] == "exited"
    r = rl("update", "--restart", "bogus", "u")
    assert r.returncode == 125 and "invalid restart policy 'bogus'" in r.stderr
    r = rl("update", "--memory", "1g", "u")
    assert r.returncode == 125 and "--memory cannot be honoured" in r.stderr
    # what runs here of `update --memory-swap` (its checks against the container's
    # --memory: tests/runtime/test_cgroup_tree.py): the host's reason, in one line
    r = rl("update", "--memory-swap", "1g", "u")
    assert r.returncode == 125 and "--memory-swap cannot be honoured" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr

"""Health checks (`--health-*`, the image's HEALTHCHECK) run by the monitor, as the test
user."""

from __future__ import annotations

import json

import pytest

from tests.runtime.test_lifecycle import ps_json
from tests.runtime.test_restart import inspect
from tests.support.waiting import wait_until


def health(rl, name):
    return inspect(rl, name)["State"].get("Health")


def test_failing_check_turns_unhealthy_then_healthy_when_it_passes(rl):
    # the first check waits for /tmp/armed: `starting` is seen however slow the machine
    rl("run", "-d", "--network", "none", "--name", "hc", "--health-cmd",
       "while [ ! -e /tmp/armed ]; do sleep 0.05; done; echo probing; test -e /tmp/ok",
       "--health-interval", "300ms", "--health-timeout", "2m", "--health-retries", "2",
       "busybox", "sleep", "300", check=True)
    h = health(rl, "hc")
    assert h["Status"] == "starting"
    assert "(health: starting)" in ps_json(rl)[0]["Status"]
    rl("exec", "hc", "touch", "/tmp/armed", check=True)
    h = wait_until(lambda: (lambda h: h if h["Status"] == "unhealthy" else None)(
        health(rl, "hc")), what="unhealthy")
    assert h["FailingStreak"] >= 2
    entry = h["Log"][-1]
    assert entry["ExitCode"] == 1 and entry["Output"] == "probing\n"
    assert entry["Start"] <= entry["End"]
    assert ps_json(rl)[0]["Status"].endswith("(unhealthy)")
    assert [r["Names"] for r in ps_json(rl, "--filter", "health=unhealthy")] == ["hc"]
    assert ps_json(rl, "--filter", "health=healthy") == []
    assert rl("healthcheck", "run", "hc").returncode == 1
    rl("exec", "hc", "touch", "/tmp/ok", check=True)
    h = wait_until(lambda: (lambda h: h if h["Status"] == "healthy" else None)(
        health(rl, "hc")), what="healthy")
    assert h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0
    assert len(h["Log"]) <= 5
    assert ps_json(rl)[0]["Status"].endswith("(healthy)")
    assert [r["Names"] for r in ps_json(rl, "--filter", "health=healthy")] == ["hc"]
    assert rl("healthcheck", "run", "hc").returncode == 0


def test_timeout_counts_as_a_failure(rl):
    rl("run", "-d", "--network", "none", "--name", "slow", "--health-cmd", "sleep 5",
       "--health-timeout", "200ms", "--health-interval", "10m", "--health-retries", "1",
       "busybox", "sleep", "300", check=True)
    r = rl("healthcheck", "run", "slow")
    assert r.returncode == 1 and r.stdout.strip() == "unhealthy"
    entry = health(rl, "slow")["Log"][-1]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (200ms)"  # Go's words
    # the timed-out command was killed in the container
    top = rl("top", "slow", check=True).stdout
    assert "sleep 5" not in top


def test_start_period_failures_do_not_count(rl):
    rl("run", "-d", "--network", "none", "--name", "sp", "--health-cmd", "false",
       "--health-retries", "1", "--health-start-period", "10m", "--health-interval", "10m",
       "busybox", "sleep", "300", check=True)
    assert rl("healthcheck", "run", "sp").returncode == 1
    h = health(rl, "sp")
    assert h["Status"] == "starting" and h["FailingStreak"] == 0 and len(h["Log"]) == 1


def test_image_healthcheck_and_no_healthcheck(rl, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        'FROM busybox\nHEALTHCHECK --interval=200ms --retries=1 CMD ["true"]\n')
    rl("build", "-q", "-t", "hcimg", str(tmp_path), check=True)
    rl("run", "-d", "--network", "none", "--name", "img", "hcimg", "sleep", "300", check=True)
    wait_until(lambda: health(rl, "img")["Status"] == "healthy", what="healthy")
    rl("run", "-d", "--network", "none", "--name", "off", "--no-healthcheck", "hcimg",
       "sleep", "300", check=True)
    assert health(rl, "off") is None
    assert "(" not in ps_json(rl, "--filter", "name=off")[0]["Status"]
    r = rl("healthcheck", "run", "off")
    assert r.returncode == 125 and "has no health check" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--health-interval", "often", "--health-cmd", "true"], "invalid --health-interval 'often'"),
    (["--health-timeout", "5"], "invalid --health-timeout '5'"),
    (["--health-retries", "-1", "--health-cmd", "true"], "--health-retries -1 is negative"),
    (["--health-cmd", ""], "--health-cmd must not be empty"),
    (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck conflicts"),
    (["--health-start-period", "10us"], "--health-start-period '10us' is too short"),
])
def test_bad_health_values_are_refused(rl, args, message):
    r = rl("run", *args, "busybox", "true")
    assert r.returncode == 125, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert rl("ps", "-aq", check=True).stdout == ""


def test_inspect_has_no_health_without_a_check(rl):
    rl("run", "-d", "--network", "none", "--name", "plain", "busybox", "sleep", "300",
       check=True)
    assert "Health" not in json.loads(rl("inspect", "plain", check=True).stdout)[0]["State"]


def test_foreground_run_runs_the_checks_too(rl):
    r = rl("run", "--network", "none", "--name", "fg", "--health-cmd", "true",
           "--health-interval", "100ms", "busybox", "sleep", "2")
    assert r.returncode == 0, r.stderr
    h = health(rl, "fg")
    assert h["Status"] == "healthy" and h["Log"][-1]["ExitCode"] == 0


def test_idle_monitor_stays_lean_with_checks_and_restarts(rl):
    """The monitor of a detached container imports the engine (sqlite...) only after its
    container exited: with a health schedule and after a restart it is lean again."""
    import os
    import signal

    rl("run", "-d", "--network", "none", "--name", "lean", "--restart", "always",
       "--health-cmd", "true", "--health-interval", "200ms", "busybox", "sleep", "300",
       check=True)
    wait_until(lambda: health(rl, "lean")["Status"] == "healthy", what="healthy")
    state = inspect(rl, "lean")["State"]
    os.kill(state["Pid"], signal.SIGKILL)
    wait_until(lambda: inspect(rl, "lean")["State"]["Pid"] not in (0, state["Pid"]),
               what="the restart")
    wait_until(lambda: health(rl, "lean")["Status"] == "healthy", what="healthy again")
    assert inspect(rl, "lean")["State"]["MonitorPid"] == state["MonitorPid"]

    def lean_maps():
        maps = open(f"/proc/{state['MonitorPid']}/maps").read()
        return maps if "_sqlite3" not in maps else None

    assert wait_until(lean_maps, timeout=5, what="a lean monitor")


def test_health_status_changes_are_events(rl):
    import time

    rl("run", "-d", "--network", "none", "--name", "hev", "--health-cmd", "test -e /tmp/ok",
       "--health-retries", "1", "--health-interval", "10m", "busybox", "sleep", "300",
       check=True)
    assert rl("healthcheck", "run", "hev").returncode == 1
    assert rl("healthcheck", "run", "hev").returncode == 1  # no change: no second event
    rl("exec", "hev", "touch", "/tmp/ok", check=True)
    assert rl("healthcheck", "run", "hev").returncode == 0
    until = str(time.time() + 1)
    out = rl("events", "--since", "10m", "--until", until, "--filter", "container=hev",
             "--filter", "event=health_status", "--format", "{{.Action}}", check=True).stdout
    assert out.splitlines() == ["health_status: unhealthy", "health_status: healthy"]

"""`rl compose` on a three-service application (tests/compose/conftest.py), as the
unprivileged user, on images the test builds: up -d --wait, the published port, names and
aliases between services, logs, recreation of only what changed, down -v leaving nothing."""

from __future__ import annotations

import json
import time
import urllib.request

LABEL = "com.docker.compose."


def ids_by_service(app) -> dict[str, str]:
    rows = [json.loads(line) for line in app("ps", "-a", "--format", "json",
                                             check=True).stdout.splitlines()]
    return {r["Service"]: r["ID"] for r in rows}


def worker_output(app, want: str) -> str:
    """The worker's log once it printed `want` (it fetches right after it starts)."""
    for _ in range(100):
        out = app("logs", "--no-color", "worker", check=True).stdout
        if want in out:
            return out
        time.sleep(0.2)
    raise AssertionError(f"the worker never printed {want!r}: {out!r}")


def test_up_wait_reach_logs_recreate_down(app, rlc):
    r = app("up", "-d", "--wait", check=True)
    assert "demo-worker-1" in r.stderr

    # the web server built with its build arg, reached through its published port
    with urllib.request.urlopen(f"http://127.0.0.1:{app.port}/", timeout=10) as resp:
        assert resp.read() == b"hello from web\n"

    rows = [json.loads(line) for line in app("ps", "--format", "json",
                                             check=True).stdout.splitlines()]
    assert sorted(r["Name"] for r in rows) == ["demo-kv-1", "demo-web-1", "demo-worker-1"]
    assert {r["State"] for r in rows} == {"running"}
    assert {r["Health"] for r in rows if r["Service"] != "worker"} == {"healthy"}
    web = next(r for r in rows if r["Service"] == "web")
    assert f"127.0.0.1:{app.port}->80/tcp" in web["Ports"]

    # docker compose's labels, as `rl inspect` shows them
    labels = json.loads(rlc("inspect", "demo-kv-1", check=True).stdout)[0]["Config"]["Labels"]
    assert labels[LABEL + "project"] == "demo" and labels[LABEL + "service"] == "kv"
    assert labels[LABEL + "container-number"] == "1" and labels[LABEL + "oneoff"] == "False"
    assert labels[LABEL + "project.config_files"] == str(app.file)
    assert labels[LABEL + "project.working_dir"] == str(app.dir)
    assert len(labels[LABEL + "config-hash"]) == 64
    nets = json.loads(rlc("network", "inspect", "demo_default", check=True).stdout)[0]
    assert nets["Labels"][LABEL + "project"] == "demo"
    vol = json.loads(rlc("volume", "inspect", "demo_kvdata", check=True).stdout)[0]
    assert vol["Labels"][LABEL + "volume"] == "kvdata"

    # the worker reached web by service name and by alias, kv by name (its named volume)
    out = worker_output(app, "kv: stored-durable")
    assert "by-name: hello from web" in out and "by-alias: hello from web" in out
    assert "worker first" in out

    # logs of all three, each line prefixed with its container's name
    logs = app("logs", "--no-color", check=True).stdout.splitlines()
    assert any(line.startswith("demo-worker-1  | kv: stored-durable") for line in logs)
    assert {line.split("|")[0].strip() for line in logs} >= {"demo-worker-1"}

    # nothing changed: nothing recreated
    before = ids_by_service(app)
    r = app("up", "-d", check=True)
    assert "Recreated" not in r.stderr and "Created" not in r.stderr, r.stderr
    assert ids_by_service(app) == before

    # a change to the worker recreates the worker only
    r = app("up", "-d", "--wait", env={"WORKER_MODE": "second"}, check=True)
    after = ids_by_service(app)
    assert after["web"] == before["web"] and after["kv"] == before["kv"]
    assert after["worker"] != before["worker"]
    assert "worker second" in worker_output(app, "worker second")

    # down -v: no container, network or volume of the project is left
    app("down", "-v", check=True, env={"WORKER_MODE": "second"})
    assert rlc("ps", "-aq", check=True).stdout == ""
    assert "demo_default" not in rlc("network", "ls", check=True).stdout
    assert rlc("volume", "ls", "-q", check=True).stdout == ""


def test_down_finds_the_project_after_the_file_changed(app, rlc):
    app("up", "-d", "kv", check=True)
    assert sorted(ids_by_service(app)) == ["kv"]
    # the service is gone from the file: down still removes its container (by label)
    app.file.write_text(app.file.read_text().replace("  kv:\n", "  kv2:\n")
                        .replace("      kv:\n        condition", "      kv2:\n        condition"))
    r = app("down", "-v", "--remove-orphans", check=True)
    assert "demo-kv-1" in r.stderr
    assert rlc("ps", "-aq", check=True).stdout == ""
    assert rlc("volume", "ls", "-q", check=True).stdout == ""

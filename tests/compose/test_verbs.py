"""The other verbs of `rl compose` on a small busybox project: attached `up` (prefixed
output, --abort-on-container-exit), --scale, exec, run, port, stop/start/restart/kill/rm,
top, images."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.support.registry import free_port

FILE = """\
name: verbs
services:
  once:
    image: busybox
    command: ["sh", "-c", "echo hello from once; sleep 1; exit 3"]
  srv:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 80 -h /etc & wait"]
    ports: ["127.0.0.1:{port}:80"]
"""


@pytest.fixture
def proj(rlc, tmp_path):
    port = free_port()
    d = tmp_path / "verbs"
    d.mkdir()
    (d / "compose.yaml").write_text(textwrap.dedent(FILE.format(port=port)))

    def compose(*args, check=False, timeout=180, **kw):
        return rlc("compose", "-f", str(d / "compose.yaml"), *args, check=check,
                   timeout=timeout, **kw)

    compose.port = port
    try:
        yield compose
    finally:
        compose("down", "-v", "--remove-orphans", timeout=120)


def names(compose, *args) -> list[str]:
    return sorted(json.loads(line)["Name"] for line in
                  compose("ps", "--format", "json", *args, check=True).stdout.splitlines())


def test_attached_up_prefixes_output_and_aborts_on_exit(proj, rlc):
    r = proj("up", "--abort-on-container-exit", "--no-color")
    assert r.returncode == 3, r.stderr
    assert "verbs-once-1  | hello from once" in r.stdout
    assert "verbs-once-1 exited with code 3" in r.stdout
    assert names(proj, "-a") == ["verbs-once-1", "verbs-srv-1"]
    assert names(proj) == []  # the others were stopped with it


def test_scale_exec_run_port_and_lifecycle(proj, rlc):
    proj("up", "-d", "srv", "--scale", "srv=2", check=False)
    # two replicas cannot publish the same host port: the second is refused, the first
    # stays, and nothing unlabelled is left
    proj("up", "-d", "srv", check=True)
    assert names(proj) == ["verbs-srv-1"]
    assert all(c.startswith("verbs-") for c in
               rlc("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split())

    assert proj("port", "srv", "80", check=True).stdout.strip() == f"127.0.0.1:{proj.port}"
    r = proj("exec", "-T", "srv", "sh", "-c", "echo in $(hostname); exit 4")
    assert r.returncode == 4 and r.stdout.startswith("in ")
    r = proj("run", "--rm", "-e", "X=from-run", "srv", "sh", "-c", "echo $X")
    assert r.returncode == 0 and r.stdout == "from-run\n", r.stderr
    assert names(proj, "-a") == ["verbs-srv-1"]  # --rm: the one-off is gone
    assert "httpd" in proj("top", "srv", check=True).stdout

    proj("stop", "srv", check=True)
    assert names(proj) == [] and names(proj, "-a") == ["verbs-srv-1"]
    proj("start", "srv", check=True)
    assert names(proj) == ["verbs-srv-1"]
    before = json.loads(rlc("inspect", "verbs-srv-1", check=True).stdout)[0]["State"]["Pid"]
    proj("restart", "srv", check=True)
    after = json.loads(rlc("inspect", "verbs-srv-1", check=True).stdout)[0]["State"]["Pid"]
    assert before != after
    proj("kill", "srv", check=True)
    assert names(proj) == []
    assert "busybox" in proj("images", check=True).stdout
    proj("rm", check=True)
    assert names(proj, "-a") == []


def test_scale_gives_numbered_replicas(proj, rlc, tmp_path):
    f = tmp_path / "verbs" / "compose.yaml"
    f.write_text(f.read_text().replace(f'    ports: ["127.0.0.1:{proj.port}:80"]\n', ""))
    proj("up", "-d", "--scale", "srv=3", "srv", check=True)
    assert names(proj) == ["verbs-srv-1", "verbs-srv-2", "verbs-srv-3"]
    proj("up", "-d", "--scale", "srv=1", "srv", check=True)
    assert names(proj, "-a") == ["verbs-srv-1"]


def test_up_failing_halfway_leaves_only_labelled_containers(rlc, tmp_path):
    """A port in use on the second service: up reports it; what it made carries the
    project's labels (docker compose leaves the started ones running)."""
    import socket

    d = tmp_path / "half"
    d.mkdir()
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        (d / "compose.yaml").write_text(textwrap.dedent(f"""\
            services:
              first:
                image: busybox
                command: ["sleep", "600"]
                stop_signal: KILL
              second:
                image: busybox
                depends_on: [first]
                ports: ["127.0.0.1:{port}:80"]
            """))
        try:
            r = rlc("compose", "-f", str(d / "compose.yaml"), "up", "-d", timeout=180)
            assert r.returncode != 0 and str(port) in r.stderr, r.stderr
            rows = [json.loads(x) for x in rlc("ps", "-a", "--format", "json",
                                               check=True).stdout.splitlines()]
            assert rows and all("com.docker.compose.project=half" in x["Labels"]
                                for x in rows)
            assert [x["Names"] for x in rows if x["State"] == "running"] == ["half-first-1"]
        finally:
            rlc("compose", "-f", str(d / "compose.yaml"), "down", timeout=120)
    assert rlc("ps", "-aq", check=True).stdout == ""

"""The same compose file brought up by rl compose and by podman-compose (Debian's, the
peer): the same services, container numbering, published port, volume and network names,
and the same answers between services. podman-compose 1.0.3 names containers
`<project>_<service>_1` where docker compose (and rl) write `<project>-<service>-1`: the
names are compared with that separator mapped, and the difference asserted. It also reads a
service's `networks:` only as a list (no per-network aliases): both run the application
without its alias (PEER_COMPOSE); tests/compose/test_app.py covers the alias on rl."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.compose.conftest import COMPOSE, write_app
from tests.compose.test_app import worker_output
from tests.support import users
from tests.support.podman import end_pause_processes
from tests.support.registry import free_port

ALIAS = """\
    networks:
      default:
        aliases: [frontend]
"""
assert ALIAS in COMPOSE
PEER_COMPOSE = COMPOSE.replace(ALIAS, "").replace("http://frontend/", "http://web/")

CONTAINERS_CONF = """\
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "none"
[network]
network_backend = "netavark"
"""


@pytest.fixture
def podman_compose(tmp_path, ctr_images):
    users.need(shutil.which("podman-compose") is not None, "podman-compose is not installed")
    users.need(os.path.exists("/usr/lib/podman/netavark"),
               "netavark is not installed (podman-compose's networks)")
    root = tmp_path / "podman"
    for d in ("storage", "conf/containers"):
        (root / d).mkdir(parents=True, exist_ok=True)
    # podman's rootlessport binds a unix socket below the runtime dir: a path under
    # pytest's tmp_path is longer than sun_path's 108 bytes, and podman then hangs
    run_dir = Path(tempfile.mkdtemp(prefix="pc-", dir="/tmp"))
    conf = root / "conf" / "containers"
    (conf / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{root}/storage"\nrunroot = "{run_dir}"\n')
    (conf / "containers.conf").write_text(CONTAINERS_CONF)
    (conf / "registries.conf").write_text(
        'unqualified-search-registries = ["docker.io"]\n[[registry]]\n'
        f'prefix = "docker.io/library"\nlocation = "{ctr_images.host}"\ninsecure = true\n')
    env = {"HOME": str(root), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
           "XDG_RUNTIME_DIR": str(run_dir), "XDG_CONFIG_HOME": str(root / "conf"),
           "CONTAINERS_STORAGE_CONF": str(conf / "storage.conf"),
           "CONTAINERS_CONF": str(conf / "containers.conf"),
           "CONTAINERS_REGISTRIES_CONF": str(conf / "registries.conf"), "LANG": "C.UTF-8"}

    def run(*args, check=True, extra_env=None, cwd=None, timeout=150):
        # output to a file, not a pipe: podman's helpers (conmon, rootlessport, aardvark)
        # outlive the command and would hold a pipe open
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                proc = subprocess.run(list(args), env={**env, **(extra_env or {})},
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                      text=True, timeout=timeout, cwd=cwd)
            except subprocess.TimeoutExpired:
                err.seek(0)
                raise AssertionError(f"{args} timed out: {err.read()[-3000:]}") from None
            out.seek(0)
            err.seek(0)
            proc.stdout, proc.stderr = out.read(), err.read()
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr[-2000:]}")
        return proc

    run.root = root
    yield run
    run("podman", "system", "reset", "-f", check=False)
    run("podman", "unshare", "rm", "-rf", str(root / "storage"), check=False)
    end_pause_processes(run_dir)
    run("podman", "unshare", "rm", "-rf", str(run_dir), check=False)
    end_pause_processes(run_dir)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(run_dir, ignore_errors=True)


def test_same_file_same_objects_as_podman_compose(rlc, podman_compose, tmp_path):
    from tests.compose.conftest import App

    # rl compose
    rl_app = App(rlc, write_app(tmp_path / "rl" / "demo", PEER_COMPOSE), free_port())
    try:
        rl_app("up", "-d", "--wait", check=True)
        rl_rows = [json.loads(x) for x in rl_app("ps", "--format", "json",
                                                 check=True).stdout.splitlines()]
        rl_names = sorted(r["Name"] for r in rl_rows)
        rl_out = worker_output(rl_app, "kv: stored-durable")
        rl_vols = rlc("volume", "ls", "-q", check=True).stdout.split()
        rl_nets = [n for n in rlc("network", "ls", "--format", "{{.Name}}",
                                  check=True).stdout.split() if n.startswith("demo")]
        rl_port = next(r for r in rl_rows if r["Service"] == "web")["Publishers"][0]
    finally:
        rl_app("down", "-v", check=True)

    # podman-compose, the same file
    pdir = write_app(tmp_path / "podman" / "demo", PEER_COMPOSE)
    port = free_port()
    pc = ["podman-compose", "-f", str(pdir / "compose.yaml")]
    penv = {"WEB_PORT": str(port)}
    try:
        podman_compose(*pc, "up", "-d", extra_env=penv, cwd=pdir)
        ps = podman_compose("podman", "ps", "-a", "--format", "json").stdout
        p_rows = json.loads(ps)
        p_names = sorted(n for r in p_rows for n in r["Names"])
        for _ in range(150):
            p_out = podman_compose("podman", "logs", "demo_worker_1").stdout
            if "kv: stored-durable" in p_out:
                break
            time.sleep(0.2)
        p_vols = podman_compose("podman", "volume", "ls", "--format",
                                "{{.Name}}").stdout.split()
        p_nets = [n for n in podman_compose("podman", "network", "ls", "--format",
                                            "{{.Name}}").stdout.split() if n.startswith("demo")]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            p_page = resp.read()
        p_ports = [p for r in p_rows for p in (r.get("Ports") or [])]
    finally:
        podman_compose(*pc, "down", "-v", extra_env=penv, cwd=pdir, check=False)

    # the same containers (docker's separator in rl's names), numbered from 1
    assert rl_names == ["demo-kv-1", "demo-web-1", "demo-worker-1"]
    assert [n.replace("_", "-") for n in p_names] == rl_names
    # the same named volume and network
    assert rl_vols == p_vols == ["demo_kvdata"]
    assert rl_nets == p_nets == ["demo_default"]
    # the same published port (127.0.0.1:PORT -> 80/tcp) and page
    assert rl_port["URL"] == "127.0.0.1" and rl_port["TargetPort"] == 80
    assert [(p["host_ip"], p["container_port"]) for p in p_ports] == [("127.0.0.1", 80)]
    assert p_page == b"hello from web\n"
    # the worker reached the others by name in both
    for line in ("by-name: hello from web", "kv: stored-durable"):
        assert line in rl_out and line in p_out, (line, rl_out, p_out)

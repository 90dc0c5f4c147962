"""`rl compose up -d` and `down` of a three-service application (images present), against
podman-compose (Debian's) on the same file, one run each as the issue asks (median of
RL_BENCH_REPEAT runs, default 1); and a second `rl compose up -d` with nothing changed,
whose target is absolute (<= 0.5 s). As the unprivileged test user, in the temporary
stores of contrib/bench/run.py's Env.

The file is the tests' application without its build (images present) and with depends_on
in the short form: podman-compose 1.0.3 does not wait for `service_healthy`, and rl would
otherwise be timed waiting for a health check's interval. Each command ends on SIGTERM (a
shell's trap), so neither tool is timed waiting out a stop timeout."""

from __future__ import annotations

import os
import shutil
import statistics

from contrib.bench.run import Env, _as_user, _time

COMPOSE = """\
name: rlbench
services:
  web:
    image: localhost/rlbench:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 80 -h / & wait"]
    ports: ["127.0.0.1:{port}:80"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 5s
  kv:
    image: localhost/rlbench:latest
    command: ["sh", "-c", "echo stored > /data/key; trap 'exit 0' TERM; sleep 600 & wait"]
    volumes: [kvdata:/data]
    healthcheck:
      test: ["CMD", "test", "-s", "/data/key"]
      interval: 5s
  worker:
    image: localhost/rlbench:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]
    depends_on: [kv, web]
volumes:
  kvdata: {{}}
"""


def _podman_conf(e: Env) -> dict:
    """podman-compose runs plain `podman`: the Env's flags as configuration files."""
    conf = e.podman_root / "conf" / "containers"
    conf.mkdir(parents=True, exist_ok=True)
    root = e.podman_root
    (conf / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/root"\n'
        f'runroot = "{root}/runroot"\n[storage.options.overlay]\n'
        'mount_program = "/usr/bin/fuse-overlayfs"\n')
    (conf / "containers.conf").write_text(
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\n'
        '[network]\nnetwork_backend = "netavark"\n')
    if os.getuid() == 0:
        for p in [e.podman_root / "conf", *(e.podman_root / "conf").rglob("*")]:
            shutil.chown(p, "rltest")
    return {**e.env, "CONTAINERS_STORAGE_CONF": str(conf / "storage.conf"),
            "CONTAINERS_CONF": str(conf / "containers.conf")}


def run(report) -> None:
    repeat = int(os.environ.get("RL_BENCH_REPEAT", "1"))
    e = Env()
    try:
        from tests.support.registry import free_port

        e.load_podman()
        penv = _podman_conf(e)
        f = e.tmp / "app" / "compose.yaml"
        f.parent.mkdir()
        f.write_text(COMPOSE.format(port=free_port()))
        os.chmod(f.parent, 0o755)
        os.chmod(f, 0o644)
        rl = [*e.rl_argv, "compose", "-f", str(f)]
        pc = ["podman-compose", "-f", str(f)]
        ups, downs, again, p_ups, p_downs = [], [], [], [], []
        for _ in range(repeat):
            ups.append(_time([*rl, "up", "-d"], e.env))
            again.append(_time([*rl, "up", "-d"], e.env))
            downs.append(_time([*rl, "down", "-v"], e.env))
            p_ups.append(_time([*pc, "up", "-d"], penv))
            p_downs.append(_time([*pc, "down", "-v"], penv))
        report.ratio("compose up -d, 3 services", statistics.median(ups), "podman-compose",
                     statistics.median(p_ups), target="<= 0.7")
        report.ratio("compose down -v, 3 services", statistics.median(downs),
                     "podman-compose", statistics.median(p_downs), target="<= 0.7")
        report.ratio("compose up -d again, nothing changed", statistics.median(again),
                     "0.5 s target", 0.5, target="<= 1.0 (absolute: <= 0.5 s)")
    finally:
        _as_user(["podman-compose", "-f", str(e.tmp / "app" / "compose.yaml"), "down", "-v"],
                 _podman_conf(e) if (e.podman_root / "conf").exists() else e.env)
        e.cleanup()

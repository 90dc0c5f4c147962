"""`rl system service` against `podman system service`, with the same clients, as the
unprivileged test user, in contrib/bench/run.py's temporary stores:

- `docker run --rm IMAGE true` through each service's socket (the docker CLI), and
  against `rl run --rm IMAGE true` without the service (what the API adds);
- 20 clients at once, each alternating GET /containers/json?all=1 and
  GET /containers/{id}/json, with 20 containers present: requests per second;
- the memory (PSS) of each idle service, its helper processes included.
Medians of RL_BENCH_REPEAT (default 10) interleaved runs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

from contrib.bench.run import Env, _as_user, _descendants, _procs, _pss, _time

CLIENTS = 20
CONTAINERS = 20
REQUESTS = 50  # per client

_LOAD = r"""
import http.client, json, socket, sys, threading, time
path, ids, n = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(path)
errors = []
def client(k):
    c = C("d")
    try:
        for i in range(n):
            url = "/v1.41/containers/json?all=1" if i % 2 == 0 else \
                f"/v1.41/containers/{ids[(k + i) % len(ids)]}/json"
            c.request("GET", url); r = c.getresponse(); r.read()
            if r.status != 200: errors.append(r.status)
    except Exception as e:
        errors.append(repr(e))
ts = [threading.Thread(target=client, args=(k,)) for k in range(int(sys.argv[4]))]
t0 = time.perf_counter()
for t in ts: t.start()
for t in ts: t.join()
dt = time.perf_counter() - t0
print(json.dumps({"rps": n * len(ts) / dt, "errors": errors[:3]}))
"""


def _docker() -> str:
    path = shutil.which("docker")
    if path is None:
        raise RuntimeError("no docker CLI on PATH (contrib/prepare-host.sh installs one)")
    return path


def _start(argv: list[str], env: dict, sock: str) -> subprocess.Popen:
    if os.getuid() == 0:
        argv = ["runuser", "-u", "rltest", "--", "env", "-i",
                *(f"{k}={v}" for k, v in env.items()), *argv]
        env = None
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[-3:]} exited: {proc.stderr.read().decode()[-500:]}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(sock)
            return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{sock}: nobody listens")


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _tree_pss(pid: int) -> int:
    procs = _procs()
    return sum(_pss(p) for p in _descendants(pid, procs))


def _service_pid(proc: subprocess.Popen, needle: str) -> int:
    """The service process itself (below runuser/env when started as root)."""
    procs = _procs()
    for p in sorted(_descendants(proc.pid, procs)):
        if needle in procs[p][1] and "runuser" not in procs[p][1]:
            return p
    return proc.pid


def run(report) -> None:
    repeat = int(os.environ.get("RL_BENCH_REPEAT", "10"))
    docker = _docker()
    e = Env()
    rl_proc = podman_proc = None
    try:
        e.load_podman()
        rl_sock = str(e.rl_root / "run" / "rl" / "rl.sock")
        pm_sock = str(e.tmp / "podman.sock")
        cfg = e.tmp / "docker-config"
        cfg.mkdir()
        if os.getuid() == 0:
            shutil.chown(cfg, "rltest")
        rl_proc = _start([*e.rl_argv, "system", "service", "--time", "0"], e.env, rl_sock)
        podman_proc = _start([*e.podman, "system", "service", "--time", "0",
                              f"unix://{pm_sock}"], e.env, pm_sock)
        time.sleep(1.0)
        mem_rl = _tree_pss(_service_pid(rl_proc, "system service"))
        mem_pm = _tree_pss(_service_pid(podman_proc, "system service"))
        report.ratio("idle service memory (PSS, helpers included)", mem_rl / 2**20,
                     "podman", mem_pm / 2**20, unit="MiB")
        env_rl = dict(e.env, DOCKER_HOST=f"unix://{rl_sock}", DOCKER_CONFIG=str(cfg))
        env_pm = dict(e.env, DOCKER_HOST=f"unix://{pm_sock}", DOCKER_CONFIG=str(cfg))
        img_rl, img_pm = e.image, "localhost/rlbench:latest"
        api_rl, api_pm, cli_rl = [], [], []
        for _ in range(repeat):
            api_rl.append(_time([docker, "run", "--rm", "--network", "none", img_rl, "true"],
                                env_rl))
            api_pm.append(_time([docker, "run", "--rm", "--network", "none", img_pm, "true"],
                                env_pm))
            cli_rl.append(_time([*e.rl_argv, "run", "--rm", "--network", "none", img_rl,
                                 "true"], e.env))
        report.ratio("docker run --rm busybox true, through the socket",
                     statistics.median(api_rl), "podman system service",
                     statistics.median(api_pm), target="<= 1.0")
        report.ratio("docker run --rm busybox true via rl's socket vs rl run --rm",
                     statistics.median(api_rl), "rl run", statistics.median(cli_rl),
                     target="<= 1.3")
        ids = {"rl": [], "podman": []}
        for i in range(CONTAINERS):
            for key, env, img in (("rl", env_rl, img_rl), ("podman", env_pm, img_pm)):
                r = _as_user([docker, "create", "--network", "none", "--name", f"load{i}",
                              img, "true"], env)
                if r.returncode != 0:
                    raise RuntimeError(f"{key}: docker create: {r.stderr}")
                ids[key].append(r.stdout.strip())
        rps = {}
        for key, sock in (("rl", rl_sock), ("podman", pm_sock)):
            samples = []
            for _ in range(max(1, repeat // 3)):
                r = _as_user([sys.executable, "-c", _LOAD, sock, ",".join(ids[key]),
                              str(REQUESTS), str(CLIENTS)], e.env)
                import json

                doc = json.loads(r.stdout)
                if doc["errors"]:
                    raise RuntimeError(f"{key}: load errors {doc['errors']}")
                samples.append(doc["rps"])
            rps[key] = statistics.median(samples)
        report.ratio(f"{CLIENTS} clients listing/inspecting, {CONTAINERS} containers "
                     "(requests/s, higher is better)", rps["rl"], "podman", rps["podman"],
                     unit="req/s", target=">= 1.0")
        for key, env in (("rl", env_rl), ("podman", env_pm)):
            _as_user([docker, "rm", "-f", *ids[key]], env)
    finally:
        for p in (rl_proc, podman_proc):
            if p is not None:
                _stop(p)
        e.cleanup()

"""Through a published port: requests per second of 1,000 sequential small HTTP requests and
throughput of a 200 MB download, `rl run -p` (both port handlers) against podman rootless
(both of its) on the same work.

Both run busybox httpd from the same busybox image (loaded into each store from one
docker-archive, as the run benchmark does), published with `-p 127.0.0.1:PORT:80`, serving
one host directory bind-mounted read-only at /www (index.html and a sparse 200 MB file: the
disk costs nothing, the network carries every byte). The client is this process
(http.client), a new connection per request.

The download is fetched with curl when it is installed (a C client: what a user would
run; http.client's own copying would be part of the figure otherwise).

Sides, each started fresh for every round, rounds interleaved (who goes first rotates),
medians reported:
- rl's default (slirp4netns's forwards) against podman `--network
  slirp4netns:port_handler=slirp4netns`: the like-for-like pair (the data path is
  slirp4netns in both, and both keep the client's source address); target >= 0.9x.
- rl `--network slirp4netns:port_handler=proxy` (network/proxy.py: the monitor accepts
  and splices) against podman's default (slirp4netns with rootlessport, a userspace proxy
  that rewrites the source address): the like-for-like pair of the fast way; target
  >= 0.9x.
Also printed: the CPU time the server side (slirp4netns + httpd and its per-connection
children) spends on the 1,000 requests, rl against podman with the same port handler. It
is what rl could add on the data path, and unlike wall time it barely moves with the load
other users put on a shared machine.
Run as an unprivileged user, or as root (then rl and podman run as rltest, as in run.py).
RL_BENCH_REPEAT (default 5) rounds, after one uncounted warm-up round per side.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path

from contrib.bench import processes
from contrib.bench.run import USER, Env, _as_user
from tests.support.podman import end_pause_processes

REQUESTS = 1000
BIG = 200 * 1024 * 1024
NAME = "rlbench-net"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, timeout: float = 10) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().read()
    finally:
        conn.close()


def _wait_http(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if _get(port, "/index.html", timeout=2):
                return
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")
        time.sleep(0.05)


def _cpu_ticks(pids: list[int]) -> int:
    """utime + stime of `pids` and of their reaped children (httpd's per-connection ones)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15])
    return total


def measure(port: int, pids: list[int]) -> tuple[float, float, float | None]:
    """(requests/s over REQUESTS sequential GETs, MB/s of one BIG download, CPU ms the
    server side (`pids`: slirp4netns and httpd) spent on the requests, None without pids).
    """
    _wait_http(port)
    for _ in range(50):  # warm up both ends
        _get(port, "/index.html")
    cpu0 = _cpu_ticks(pids)
    t0 = time.perf_counter()
    for _ in range(REQUESTS):
        _get(port, "/index.html")
    rps = REQUESTS / (time.perf_counter() - t0)
    cpu_ms = (_cpu_ticks(pids) - cpu0) * 1000 / os.sysconf("SC_CLK_TCK") if pids else None
    if shutil.which("curl"):
        return rps, _curl_rate(port), cpu_ms
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    t0 = time.perf_counter()
    conn.request("GET", "/big")
    resp = conn.getresponse()
    got = 0
    while chunk := resp.read(1 << 20):
        got += len(chunk)
    conn.close()
    elapsed = time.perf_counter() - t0
    if got != BIG:
        raise RuntimeError(f"downloaded {got} bytes, expected {BIG}")
    return rps, BIG / elapsed / 1e6, cpu_ms


def _curl_rate(port: int) -> float:
    """MB/s of one download of /big with curl (its own timing: from the request on)."""
    import subprocess

    r = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-w",
                        "%{size_download} %{time_total}", f"http://127.0.0.1:{port}/big"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"curl: {r.stderr.strip()}")
    size, total = r.stdout.split()
    if int(size) != BIG:
        raise RuntimeError(f"downloaded {size} bytes, expected {BIG}")
    return BIG / float(total) / 1e6


def _server_pids(argv: list[str], env: dict, podman: bool) -> list[int]:
    """httpd and the slirp4netns serving it: rl's is the monitor's child, podman's names
    the container's netns path. [] when not found (podman's rootlessport side: its proxy
    processes cannot be told apart, so its CPU is not counted)."""
    import json

    r = _as_user([*argv, "inspect", NAME], env)
    doc = json.loads(r.stdout)[0]
    httpd = doc["State"]["Pid"]
    procs = processes()
    if podman:
        key = (doc.get("NetworkSettings") or {}).get("SandboxKey") or ""
        slirp = [p for p, _, comm, cmd in procs if comm == "slirp4netns" and key
                 and key.encode() in cmd and b"--api-socket" in cmd]
    else:
        slirp = [p for p, pp, comm, _ in procs
                 if comm == "slirp4netns" and pp == doc["State"]["MonitorPid"]]
        # the monitor: with port_handler=proxy it carries the connections
        slirp.append(doc["State"]["MonitorPid"])
        return [httpd, *slirp] if len(slirp) == 2 else []
    return [httpd, *slirp] if len(slirp) == 1 else []


def _www(e: Env) -> Path:
    www = e.tmp / "www"
    www.mkdir()
    (www / "index.html").write_text("hello\n")
    with open(www / "big", "wb") as f:
        f.truncate(BIG)
    for p in (www, www / "index.html", www / "big"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
        if os.getuid() == 0:
            shutil.chown(p, USER)
    return www


def _one(argv: list[str], image: str, network: list[str], www: Path, env: dict) -> tuple:
    """Start the server with `argv` (rl or podman), measure, remove it."""
    port = _free_port()
    r = _as_user([*argv, "run", "-d", "--name", NAME, *network, "-p", f"127.0.0.1:{port}:80",
                  "-v", f"{www}:/www:ro", image, "httpd", "-f", "-p", "80", "-h", "/www"], env)
    if r.returncode != 0:
        raise RuntimeError(f"{argv[0]} run: {r.stderr.strip()}")
    try:
        _wait_http(port)
        return measure(port, _server_pids(argv, env, podman=argv[0] == "podman"))
    finally:
        r = _as_user([*argv, "rm", "-f", NAME], env)
        if r.returncode != 0:
            raise RuntimeError(f"{argv[0]} rm -f {NAME}: {r.stderr.strip()}")


def run(report) -> None:
    if shutil.which("podman") is None:
        report.note("net: podman missing, nothing to compare with")
        return
    repeat = int(os.environ.get("RL_BENCH_REPEAT", "5"))
    e = Env()
    # podman puts slirp4netns's API socket at $XDG_RUNTIME_DIR/libpod/tmp/<id>.net: give
    # it a runtime dir short enough for a unix socket path (107 bytes)
    short = Path(tempfile.mkdtemp(prefix="rlnb-", dir="/tmp"))
    penv = dict(e.env, XDG_RUNTIME_DIR=str(short))
    try:
        if os.getuid() == 0:
            shutil.chown(short, USER)
        www = _www(e)
        sides = {
            "rl": (e.rl_argv, e.image, [], e.env),
            "rl(port_handler=proxy)": (e.rl_argv, e.image,
                                       ["--network", "slirp4netns:port_handler=proxy"], e.env),
            "podman(port_handler=slirp4netns)": (
                e.podman, "localhost/rlbench",
                ["--network", "slirp4netns:port_handler=slirp4netns"], penv),
            "podman(rootlessport)": (e.podman, "localhost/rlbench", [], penv),
        }
        got: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
        loads = []
        r = _as_user([*e.podman, "load", "-q", "-i", str(e.archive)], penv)
        if r.returncode != 0:
            raise RuntimeError(f"podman load: {r.stderr}")
        order = list(sides)
        # One round per side first, not counted: after its first container rl starts its
        # warm fuse server and podman its pause process, one-time costs that would land in
        # the first round's transfer, not costs of the data path measured here.
        for name in order:
            argv, image, network, env = sides[name]
            _one(argv, image, network, www, env)
        for i in range(repeat):
            k = i % len(order)
            for name in order[k:] + order[:k]:  # who goes first rotates
                argv, image, network, env = sides[name]
                got[name].append(_one(argv, image, network, www, env))
            loads.append(os.getloadavg()[0])
        for name, samples in got.items():
            cpu = [round(s[2]) for s in samples if s[2] is not None]
            report.note(f"{name}: req/s {[round(s[0]) for s in samples]}, "
                        f"MB/s {[round(s[1]) for s in samples]}"
                        + (f", server CPU ms per {REQUESTS} requests {cpu}" if cpu else ""))
        pairs = (("rl", "podman(port_handler=slirp4netns)", ">= 0.9x"),
                 ("rl", "podman(rootlessport)", ""),
                 ("rl(port_handler=proxy)", "podman(rootlessport)", ">= 0.9x"))
        for mine, peer, target in pairs:
            what = "" if mine == "rl" else " with port_handler=proxy"
            report.ratio(f"net: 1000 sequential requests{what}",
                         statistics.median(s[0] for s in got[mine]), peer,
                         statistics.median(s[0] for s in got[peer]), "req/s", target=target)
            report.ratio(f"net: 200 MB download{what}",
                         statistics.median(s[1] for s in got[mine]), peer,
                         statistics.median(s[1] for s in got[peer]), "MB/s", target=target)
        # each round's own ratio too: the machine's load moves both sides of a round
        # together, and the medians of a run alone have swung 0.8x-1.6x here
        for mine, peer, _ in pairs[::2]:
            per = [round(a[1] / b[1], 2) for a, b in zip(got[mine], got[peer], strict=True)]
            report.note(f"{mine} / {peer}, download, round by round: {per}")
        # CPU time is what rl adds or not, and unlike wall time barely moves with the load
        # other users put on the machine
        peer = "podman(port_handler=slirp4netns)"
        cpus = {k: [s[2] for s in got[k] if s[2] is not None] for k in ("rl", peer)}
        if all(cpus.values()):
            report.ratio(f"net: server CPU (slirp4netns + httpd) for {REQUESTS} requests",
                         statistics.median(cpus["rl"]), peer, statistics.median(cpus[peer]),
                         "ms")
        report.note(f"medians of {repeat} interleaved rounds; higher is better (CPU: lower); load average "
                    f"{', '.join(f'{x:.2f}' for x in loads)} on {os.cpu_count()} cores")
    finally:
        _as_user([*e.podman, "rm", "-af", "-t", "0"], penv)
        # podman keeps its first runtime dir in its database and uses it again (also in
        # e.cleanup), and conmon's exit commands run after rm returns: clean `short` last,
        # once no process names it
        e.cleanup()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
                str(short).encode() in cmd for *_, cmd in processes()):
            time.sleep(0.1)
        end_pause_processes(short)
        shutil.rmtree(short, ignore_errors=True)


def main() -> None:
    from contrib.bench import Report

    run(Report())


if __name__ == "__main__":
    main()

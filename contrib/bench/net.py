"""Through a published port: requests per second of 1,000 sequential small HTTP requests and
throughput of a 200 MB download, rl's network layer against podman rootless (slirp4netns).

The server is busybox httpd in both. rl's side is rootless/network alone (a user+net
namespace made with unshare, slirp4netns started by `slirp.start`, the port added with
`add_hostfwd`) because the runtime does not publish ports yet; podman runs the same busybox
from a plain rootfs (`--rootfs`, no image needed) with `--runtime runc`, once with its
default port handler (rootlessport, a userspace proxy) and once with
`port_handler=slirp4netns` (the same data path as ours). Run as an unprivileged user.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.podman import end_pause_processes

REQUESTS = 1000
BIG = 200 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/index.html")
            if conn.getresponse().read():
                conn.close()
                return
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")
        time.sleep(0.05)


def measure(port: int) -> tuple[float, float]:
    """(requests/s over REQUESTS sequential GETs, MB/s of one BIG download)."""
    _wait_http(port)
    for _ in range(50):  # warm up both ends
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/index.html")
        conn.getresponse().read()
        conn.close()
    t0 = time.perf_counter()
    for _ in range(REQUESTS):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/index.html")
        conn.getresponse().read()
        conn.close()
    rps = REQUESTS / (time.perf_counter() - t0)
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
    return rps, BIG / elapsed / 1e6


def _rootfs(base: Path) -> Path:
    root = base / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "www").mkdir()
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    (root / "www" / "index.html").write_text("hello\n")
    with open(root / "www" / "big", "wb") as f:
        f.truncate(BIG)  # sparse: the disk costs nothing, the network carries every byte
    return root


def bench_rl(root: Path, sockdir: Path) -> tuple[float, float]:
    from rootless.network import slirp

    ns = subprocess.Popen(["unshare", "--user", "--map-root-user", "--net", "sleep", "600"])
    enter = ["nsenter", "--preserve-credentials", "-U", "-n", "-t", str(ns.pid)]
    httpd = None
    try:
        deadline = time.monotonic() + 5
        while Path(f"/proc/{ns.pid}/comm").read_text().strip() != "sleep":
            if time.monotonic() > deadline:
                raise RuntimeError("unshare did not start")
            time.sleep(0.01)
        httpd = subprocess.Popen([*enter, str(root / "bin/busybox"), "httpd", "-f", "-p", "80",
                                  "-h", str(root / "www")])
        port = _free_port()
        with slirp.start(ns.pid, api_socket=sockdir / "bench.sock") as s:
            s.add_hostfwd("tcp", "127.0.0.1", port, 80)
            return measure(port)
    finally:
        for p in (httpd, ns):
            if p is not None:
                p.kill()
                p.wait()


def bench_podman(root: Path, port_handler: str | None, env: dict) -> tuple[float, float]:
    port = _free_port()
    name = f"rl-bench-net-{os.getpid()}"
    network = "slirp4netns" + (f":port_handler={port_handler}" if port_handler else "")
    subprocess.run(["podman", "--runtime", "runc", "run", "-d", "--name", name,
                    "--network", network, "-p", f"127.0.0.1:{port}:80", "--rootfs", str(root),
                    "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"],
                   check=True, capture_output=True, text=True, env=env)
    try:
        return measure(port)
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True, env=env)


def run(report) -> None:
    if os.geteuid() == 0:
        report.note("net: run as an unprivileged user (rootless networking is what is measured)")
        return
    with tempfile.TemporaryDirectory(prefix="rlnb-", dir="/tmp") as tmp:
        base = Path(tmp)
        root = _rootfs(base)
        rl_rps, rl_mbs = bench_rl(root, base)
        have_podman = shutil.which("podman") is not None
        if not have_podman:
            report.note(f"net: podman missing; rl alone: {rl_rps:.0f} req/s, {rl_mbs:.0f} MB/s")
            return
        run_dir = base / "podman-run"
        run_dir.mkdir(mode=0o700)
        env = dict(os.environ, XDG_RUNTIME_DIR=str(run_dir))
        try:
            # the machine is shared: run each side twice, interleaved, and keep the best
            pd_rps, pd_mbs = bench_podman(root, None, env)
            ps_rps, ps_mbs = bench_podman(root, "slirp4netns", env)
            rl2 = bench_rl(root, base)
            pd2 = bench_podman(root, None, env)
            ps2 = bench_podman(root, "slirp4netns", env)
        finally:
            end_pause_processes(run_dir)
        rl_rps, rl_mbs = max(rl_rps, rl2[0]), max(rl_mbs, rl2[1])
        pd_rps, pd_mbs = max(pd_rps, pd2[0]), max(pd_mbs, pd2[1])
        ps_rps, ps_mbs = max(ps_rps, ps2[0]), max(ps_mbs, ps2[1])
        report.ratio("net: 1000 sequential requests", rl_rps, "podman", pd_rps, "req/s",
                     target=">= 0.9x")
        report.ratio("net: 200 MB download", rl_mbs, "podman", pd_mbs, "MB/s", target=">= 0.9x")
        report.ratio("net: 1000 sequential requests", rl_rps, "podman(port_handler=slirp4netns)",
                     ps_rps, "req/s")
        report.ratio("net: 200 MB download", rl_mbs, "podman(port_handler=slirp4netns)",
                     ps_mbs, "MB/s")
        report.note("rl = rootless/network alone (slirp4netns + add_hostfwd); the runtime "
                    "does not publish ports yet. Higher is better for both units.")


def main() -> None:
    from contrib.bench import Report

    run(Report())


if __name__ == "__main__":
    main()

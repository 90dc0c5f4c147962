"""`rl build` against `podman build` (buildah inside) on the same Dockerfiles in one run:
a cold five-step build FROM a busybox image, a rebuild with every step cached, a rebuild
after changing the last COPYed file, a two-stage build, and a build whose RUN downloads
many small files from a local HTTP server into a cache mount, rebuilt after a change in
the context (the second RUN finds them in the cache; both with --network host, the
server being on the host's loopback). Both start from the same
busybox rootfs imported into each (`rl import`, `podman import`); as the unprivileged test
user when run as root."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from contrib.bench import Report
from tests.support.podman import end_pause_processes
from tests.support.users import stop_fuse_zygotes

TEST_USER = "rltest"
FIVE = """\
FROM localhost/benchbase:1
ENV A=1
COPY one.txt /one.txt
RUN echo built > /built && ls / > /dev/null
COPY two.txt /two.txt
CMD ["cat", "/two.txt"]
"""
CACHED_DOWNLOADS = """\
FROM localhost/benchbase:1
COPY req.txt /req.txt
RUN --mount=type=cache,target=/cache,id=dl cd /cache && for i in $(seq 1 {n}); do \\
    test -e f$i || wget -q http://127.0.0.1:{port}/f$i || exit 1; done; ls /cache > /listed
"""
TWO_STAGE = """\
FROM localhost/benchbase:1 AS b
RUN mkdir /out && echo x > /out/x
FROM localhost/benchbase:1
COPY --from=b /out/x /x
CMD ["cat", "/x"]
"""


def _rootfs(path: Path) -> None:
    with tarfile.open(path, "w") as tf:
        for d in ("bin", "etc", "tmp"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
        data = Path("/bin/busybox").read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(data), 0o755
        tf.addfile(info, io.BytesIO(data))
        for applet in ("sh", "ls", "cat", "echo", "mkdir", "wget", "seq", "test", "["):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tf.addfile(info)


def run(report: Report) -> None:
    from tests.support.users import rl_executable

    if shutil.which("podman") is None:
        report.note("podman is not installed: no peer to compare with")
        return
    work = Path(tempfile.mkdtemp(prefix="rl-bench-build-", dir="/var/tmp"))
    try:
        _run(report, work, rl_executable())
    finally:
        stop_fuse_zygotes(work / "rl" / "run" / "rl")  # rl's warm fuse server
        end_pause_processes(work / "prun")
        if os.getuid() == 0:
            subprocess.run(["/usr/sbin/runuser", "-u", TEST_USER, "--", "podman", "unshare", "rm",
                            "-rf", str(work / "podman")], capture_output=True,
                           env={"HOME": str(work), "PATH": "/usr/bin:/bin",
                                "XDG_RUNTIME_DIR": str(work / "prun")})
        end_pause_processes(work / "prun")  # the `podman unshare` above started one again
        shutil.rmtree(work, ignore_errors=True)


def _run(report: Report, work: Path, rl: str) -> None:
    for d in ("rl/data", "rl/config", "rl/run", "podman", "prun", "ctx5", "ctx2", "ctxc"):
        (work / d).mkdir(parents=True)
    (work / "rl/run").chmod(0o700)
    (work / "prun").chmod(0o700)
    _rootfs(work / "rootfs.tar")
    (work / "ctx5/Dockerfile").write_text(FIVE)
    (work / "ctx5/one.txt").write_text("one\n")
    (work / "ctx5/two.txt").write_text("two\n")
    (work / "ctx2/Dockerfile").write_text(TWO_STAGE)
    server = _file_server()
    (work / "ctxc/Dockerfile").write_text(CACHED_DOWNLOADS.format(
        n=DOWNLOADS, port=server.server_address[1]))
    (work / "ctxc/req.txt").write_text("0\n")
    if os.getuid() == 0:
        subprocess.run(["chown", "-R", TEST_USER, str(work)], check=True)
    base = {"HOME": str(work), "PATH": f"{os.path.dirname(rl)}:/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8"}
    rl_env = {**base, "XDG_DATA_HOME": str(work / "rl/data"),
              "XDG_CONFIG_HOME": str(work / "rl/config"),
              "XDG_RUNTIME_DIR": str(work / "rl/run")}
    p_env = {**base, "XDG_RUNTIME_DIR": str(work / "prun")}
    podman = ["podman", "--root", str(work / "podman"), "--runroot", str(work / "prun/s"),
              "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]

    def cmd(argv, env):
        if os.getuid() == 0:
            argv = ["/usr/sbin/runuser", "-u", TEST_USER, "--", "env", "-i",
                    *(f"{k}={v}" for k, v in env.items()), *argv]
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
        return time.perf_counter() - t0

    cmd([rl, "import", str(work / "rootfs.tar"), "benchbase:1"], rl_env)
    cmd([*podman, "import", str(work / "rootfs.tar"), "localhost/benchbase:1"], p_env)
    ctx5, ctx2 = str(work / "ctx5"), str(work / "ctx2")
    # alternate the two (shared machine), best of two each
    cases = [
        ("build cold (5 steps)", ["build", "--no-cache", "-t", "b5", ctx5]),
        ("build all cached", ["build", "-t", "b5", ctx5]),
        ("build after editing the last COPY", None),
        ("build two-stage", ["build", "--no-cache", "-t", "b2", ctx2]),
    ]
    for name, args in cases:
        ours, theirs = [], []
        for i in range(2):
            if args is None:
                (work / "ctx5/two.txt").write_text(f"two {i} rl\n")
                ours.append(cmd([rl, "build", "-t", "b5", ctx5], rl_env))
                (work / "ctx5/two.txt").write_text(f"two {i} podman\n")
                theirs.append(cmd([*podman, "build", "-t", "b5", ctx5], p_env))
            else:
                ours.append(cmd([rl, *args], rl_env))
                theirs.append(cmd([*podman, *args], p_env))
        report.ratio(name, min(ours), "podman build", min(theirs), target="<= 1")
    # the cache mount: a cold build fills it, then each edit of req.txt runs the step again
    ctxc = str(work / "ctxc")
    try:
        cmd([rl, "build", "--network", "host", "-t", "bc", ctxc], rl_env)
        cmd([*podman, "build", "--network", "host", "-t", "bc", ctxc], p_env)
        ours, theirs = [], []
        for i in range(2):
            (work / "ctxc/req.txt").write_text(f"{i} rl\n")
            ours.append(cmd([rl, "build", "--network", "host", "-t", "bc", ctxc], rl_env))
            (work / "ctxc/req.txt").write_text(f"{i} podman\n")
            theirs.append(cmd([*podman, "build", "--network", "host", "-t", "bc", ctxc],
                              p_env))
        report.ratio(f"build with a cache mount ({DOWNLOADS} files), after a context edit",
                     min(ours), "podman build", min(theirs), target="<= 0.5")
    finally:
        server.shutdown()
        server.server_close()


DOWNLOADS = 200


def _file_server():
    """A threaded HTTP server on 127.0.0.1 answering every path with a small body."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (self.path * 8).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

"""File system work inside a running container: rl (fuse_overlay) against rl on
fuse-overlayfs (RL_ROOTFS_BACKEND=fuse-overlayfs: the same engine, only the root file
system's server differs) and rootless podman (runc, fuse-overlayfs).

Workloads (issue 18), each timed inside the container by busybox `time` (10 ms steps):
`ls -lR` of 20,000 small files of the image, `dd` of a 200 MiB file into the container,
reading it back 5 times (`cat`, so the page cache across opens counts), and `rm` of it.
RL_BENCH_REPEAT (default 3) rounds run interleaved; each figure is the median. As the
unprivileged test user when run as root.
"""

from __future__ import annotations

import os
import re
import statistics
import sys

from contrib.bench.run import REPO, Env, _as_user, _docker_archive

FILES = 20000
BIG_MB = 200
READS = 5  # the file read back 5 times: busybox `time` counts in steps of 10 ms
SCRIPT = (f"time ls -lR /data >/dev/null; "
          f"time sh -c 'dd if=/dev/zero of=/big bs=1M count={BIG_MB} 2>/dev/null'; "
          f"time sh -c 'for i in {' '.join(str(i) for i in range(READS))}; do cat /big; done "
          ">/dev/null'; time rm /big")
STEPS = ("ls -lR", "write", "read back", "rm")
IMAGE = "localhost/rlbench-files:latest"


def _image():
    sys.path.insert(0, str(REPO))
    from tests.support import images

    t = images.TarBuilder().dir("data")
    chunk = os.urandom(4096)
    per_dir = 500
    for i in range(FILES):
        if i % per_dir == 0:
            t.dir(f"data/d{i // per_dir:03d}")
        t.file(f"data/d{i // per_dir:03d}/f{i}", chunk[: 100 + (i * 37) % 2000])
    return images.Image([images.busybox_layer(), t.layer()], images._config())


def _times(stderr: str) -> list[float]:
    out = []
    for m in re.finditer(r"real\s+(?:(\d+)m\s*)?([\d.]+)s", stderr):
        out.append(int(m.group(1) or 0) * 60 + float(m.group(2)))
    return out


def run(report) -> None:
    repeat = int(os.environ.get("RL_BENCH_REPEAT", "3"))
    e = Env()
    try:
        archive = e.tmp / "files.tar"
        _docker_archive(archive, _image(), IMAGE)
        os.chmod(archive, 0o644)
        for argv in ([*e.rl_argv, "load", "-i", str(archive)],
                     [*e.podman, "load", "-q", "-i", str(archive)]):
            r = _as_user(argv, e.env)
            if r.returncode != 0:
                raise RuntimeError(f"load: {r.stderr}")
        systems = {
            "rl": ([*e.rl_argv, "run", "--rm", "--network", "none"], e.env),
            "rl on fuse-overlayfs": ([*e.rl_argv, "run", "--rm", "--network", "none"],
                                     dict(e.env, RL_ROOTFS_BACKEND="fuse-overlayfs")),
            "podman": ([*e.podman, "run", "--rm", "--network", "none"], e.env),
        }
        results: dict[str, list[list[float]]] = {k: [] for k in systems}
        for _ in range(repeat):
            for name, (argv, env) in systems.items():
                r = _as_user([*argv, IMAGE, "sh", "-c", SCRIPT], env)
                t = _times(r.stderr)
                if r.returncode != 0 or len(t) != len(STEPS):
                    raise RuntimeError(f"{name}: exit {r.returncode}: {r.stderr[-2000:]}")
                results[name].append(t)
        med = {k: [statistics.median(x[i] for x in v) for i in range(len(STEPS))]
               for k, v in results.items()}
        for i, step in enumerate(STEPS):
            for peer in ("rl on fuse-overlayfs", "podman"):
                if step in ("write", "read back"):
                    n = READS if step == "read back" else 1
                    ours = n * BIG_MB / max(med["rl"][i], 0.005)
                    theirs = n * BIG_MB / max(med[peer][i], 0.005)
                    report.ratio(f"in a container: {step} {BIG_MB} MiB", ours, peer, theirs,
                                 "MiB/s", ">= 0.8x" if step == "read back" else "")
                else:
                    what = f"{FILES} files" if step == "ls -lR" else f"a {BIG_MB} MiB file"
                    report.ratio(f"in a container: {step} of {what}", med["rl"][i], peer,
                                 med[peer][i], "s", "<= 1.5x")
        report.note(f"{repeat} interleaved rounds, medians; load average "
                    f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    finally:
        e.cleanup()


def main() -> None:
    sys.path.insert(0, str(REPO))
    from contrib.bench import Report

    run(Report())


if __name__ == "__main__":
    main()

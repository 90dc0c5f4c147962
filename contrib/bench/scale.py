"""Cost as work grows (issue 18): `rl ps -a`, `rl images` and `rl run -d` with 1 container
and 1 image present, then with COUNT of each (the target: within 1.2x the time with 1: no
per-container process or file scan on every command), and BURST `run -d` started at once
(all must succeed). podman does the same work in the same run, interleaved, as the
unprivileged test user in the temporary stores of contrib/bench/run.py's Env.

The COUNT containers are created, not running (a running one costs a monitor, a fuse
server and slirp4netns: 100 of them do not fit beside the other benchmarks on a small
machine); the BURST ones run `sleep` while the others start. The images are COUNT images
of one docker archive, each its own config (a label) over busybox's layer.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import tarfile
import time

from contrib.bench.run import Env, _as_user, _time

COUNT = int(os.environ.get("RL_BENCH_SCALE", "100"))
BURST = int(os.environ.get("RL_BENCH_BURST", "20"))


def _many_images_archive(path, count: int) -> None:
    """A `docker save` archive of `count` images (rlbench-n0..): busybox's layer, each
    with a config of its own, so each is an image of its own (not one image's tags)."""
    from tests.support import images

    img = images.build_busybox()
    with tarfile.open(path, "w") as tar:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))

        layers = []
        for i, layer in enumerate(img.layers):
            add(f"layer{i}.tar", layer.tar)
            layers.append(f"layer{i}.tar")
        manifest = []
        for n in range(count):
            cfg = dict(img.config)
            inner = dict(cfg.get("config") or {})
            inner["Labels"] = {**(inner.get("Labels") or {}), "rlbench": str(n)}
            cfg["config"] = inner
            raw = json.dumps(dict(cfg, rootfs={"type": "layers", "diff_ids": [
                layer.diff_id for layer in img.layers]}), sort_keys=True).encode()
            add(f"config{n}.json", raw)
            manifest.append({"Config": f"config{n}.json",
                             "RepoTags": [f"localhost/rlbench-n{n}:latest"], "Layers": layers})
        add("manifest.json", json.dumps(manifest).encode())


def _median(argv_pairs, e: Env, repeat: int, after=None) -> tuple[float, float]:
    """Median times of the rl and podman commands, interleaved; `after(engine, i)` runs
    untimed after each (cleanup)."""
    ours, theirs = [], []
    for i in range(-1, repeat):  # round -1: a warm-up, not counted
        for engine, argv, out in (("rl", argv_pairs[0], ours), ("podman", argv_pairs[1], theirs)):
            dt = _time([a.replace("{i}", str(i + 1)) for a in argv], e.env)
            if i >= 0:
                out.append(dt)
            if after is not None:
                after(engine, i + 1)
    return statistics.median(ours), statistics.median(theirs)


def _measure(e: Env, repeat: int, tag: str) -> dict[str, tuple[float, float]]:
    def rm(engine: str, i: int) -> None:
        argv = e.rl_argv if engine == "rl" else e.podman
        _as_user([*argv, "rm", "-f", f"scale-{tag}{i}"], e.env)

    return {
        "ps -a": _median(([*e.rl_argv, "ps", "-a"], [*e.podman, "ps", "-a"]), e, repeat),
        "images": _median(([*e.rl_argv, "images"], [*e.podman, "images"]), e, repeat),
        "run -d": _median(([*e.rl_argv, "run", "-d", "--network", "none", "--name",
                            f"scale-{tag}{{i}}", e.image, "sleep", "60"],
                           [*e.podman, "run", "-d", "--network", "none", "--name",
                            f"scale-{tag}{{i}}", "localhost/rlbench", "sleep", "60"]),
                          e, repeat, after=rm),
    }


def _burst(e: Env, argv_of, count: int) -> tuple[int, float]:
    """Start `count` commands at once; how many succeeded, and the wall time of all."""
    t0 = time.perf_counter()
    procs = []
    for i in range(count):
        argv = argv_of(i)
        if os.getuid() == 0:
            argv = ["runuser", "-u", "rltest", "--", "env", "-i",
                    *(f"{k}={v}" for k, v in e.env.items()), *argv]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      env=None if os.getuid() == 0 else e.env))
    failed = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            failed.append(err.decode(errors="replace").strip().splitlines()[-1:])
    dt = time.perf_counter() - t0
    if failed:
        print(f"  failures: {failed[:3]}")
    return count - len(failed), dt


def run(report) -> None:
    repeat = int(os.environ.get("RL_BENCH_REPEAT", "5"))
    e = Env()
    try:
        e.load_podman()
        one = _measure(e, repeat, "a")
        archive = e.tmp / "many.tar"
        _many_images_archive(archive, COUNT - 1)
        os.chmod(archive, 0o644)
        for argv in ([*e.rl_argv, "load", "-i", str(archive)],
                     [*e.podman, "load", "-q", "-i", str(archive)]):
            r = _as_user(argv, e.env)
            if r.returncode != 0:
                raise RuntimeError(f"{argv[0]} load: {r.stderr}")
        for i in range(COUNT - 1):
            for argv in ([*e.rl_argv, "create", "--network", "none", "--name", f"many{i}",
                          e.image, "true"],
                         [*e.podman, "create", "--network", "none", "--name", f"many{i}",
                          "localhost/rlbench", "true"]):
                r = _as_user(argv, e.env)
                if r.returncode != 0:
                    raise RuntimeError(f"{argv[0]} create: {r.stderr}")
        many = _measure(e, repeat, "b")
        for what in one:
            (r1, p1), (rn, pn) = one[what], many[what]
            report.ratio(f"scale: {what} with {COUNT} containers and images / with 1 (rl)",
                         rn, "rl with 1", r1, target="<= 1.2")
            report.note(f"podman: {pn:.3f} s with {COUNT}, {p1:.3f} s with 1 "
                        f"({pn / p1:.2f}x); rl / podman with {COUNT}: {rn / pn:.2f}x")
        ok_rl, t_rl = _burst(e, lambda i: [*e.rl_argv, "run", "-d", "--name", f"burst{i}",
                                           e.image, "sleep", "60"], BURST)
        ok_pm, t_pm = _burst(e, lambda i: [*e.podman, "run", "-d", "--name", f"burst{i}",
                                           "localhost/rlbench", "sleep", "60"], BURST)
        report.ratio(f"scale: {BURST} run -d started at once, all done", t_rl, "podman", t_pm,
                     target="all succeed")
        report.note(f"succeeded: rl {ok_rl}/{BURST}, podman {ok_pm}/{BURST}; "
                    f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    finally:
        _as_user([*e.rl_argv, "rm", "-f", *(f"burst{i}" for i in range(BURST))], e.env)
        _as_user([*e.podman, "rm", "-f", "-t", "0", *(f"burst{i}" for i in range(BURST))],
                 e.env)
        e.cleanup()

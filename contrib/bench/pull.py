"""Pull of a ~100 MB multi-layer image from a local registry into an empty store:
`rl pull` against `podman pull` (rootless, empty --root each time), as the unprivileged test
user when run as root. Also times the stages rl's pull is made of (gzip decompression with
zlib vs isal, sha256), to say what limits it."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import tempfile
import time
import zlib
from pathlib import Path

from contrib.bench import Report

TEST_USER = "rltest"
LAYERS = 5
FILES_PER_LAYER = 200
FILE_SIZE = 100_000  # 5 x 200 x 100 kB = 100 MB uncompressed


def _layer(seed: int):
    from tests.support.images import TarBuilder

    rng = random.Random(seed)
    words = [bytes(rng.choices(range(97, 123), k=rng.randint(3, 9))) for _ in range(2000)]
    t = TarBuilder().dir(f"layer{seed}")
    for i in range(FILES_PER_LAYER):
        if i % 2:  # half incompressible, half text-like: gzip ratio about 1.6
            data = rng.randbytes(FILE_SIZE)
        else:
            data = b" ".join(rng.choices(words, k=FILE_SIZE // 6))[:FILE_SIZE]
        t.file(f"layer{seed}/f{i}", data, 0o644)
    return t.layer()


def _as_user(cmd: list[str], env: dict) -> list[str]:
    if os.getuid() != 0:
        return cmd
    return ["runuser", "-u", TEST_USER, "--", "env", "-i",
            *(f"{k}={v}" for k, v in env.items()), *cmd]


def _timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def run(report: Report) -> None:
    from tests.support.images import Image, _config
    from tests.support.registry import Registry
    from tests.support.users import rl_executable

    work = Path(tempfile.mkdtemp(prefix="rl-bench-pull-", dir="/var/tmp"))
    os.chmod(work, 0o755)
    reg = Registry.start(work / "registry")
    try:
        layers = [_layer(i) for i in range(LAYERS)]
        image = Image(layers, _config())
        reg.push_image("bench", "latest", image)
        total = sum(len(x.tar) for x in layers)
        packed = sum(len(x.blob) for x in layers)
        report.note(f"image: {LAYERS} layers, {total / 1e6:.0f} MB uncompressed, "
                    f"{packed / 1e6:.0f} MB gzip")
        ref = reg.ref("bench:latest")
        home = Path(f"/home/{TEST_USER}") if os.getuid() == 0 else Path.home()
        base_env = {"HOME": str(home), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
                    "LANG": "C.UTF-8"}

        def fresh(name: str) -> Path:
            d = work / name
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir()
            if os.getuid() == 0:
                shutil.chown(d, TEST_USER, TEST_USER)
            return d

        def rl_pull() -> float:
            d = fresh("rl")
            env = dict(base_env, XDG_DATA_HOME=str(d / "data"), XDG_CONFIG_HOME=str(d / "cfg"),
                       XDG_RUNTIME_DIR="")
            env.pop("XDG_RUNTIME_DIR")
            return _timed(_as_user([rl_executable(), "pull", "-q", ref], env), env)

        def podman_pull() -> float:
            d = fresh("podman")
            env = dict(base_env)
            return _timed(_as_user(["podman", "--root", str(d / "root"), "--runroot",
                                    str(d / "run"), "--storage-driver", "overlay",
                                    "pull", "-q", "--tls-verify=false", ref], env), env)

        # Alternate the two, best of three each: the machine is shared, its load drifts.
        rl_times, peer_times = [], []
        peer_error = None if shutil.which("podman") else "podman not installed"
        for _ in range(3):
            rl_times.append(rl_pull())
            if peer_error is None:
                try:
                    peer_times.append(podman_pull())
                except subprocess.CalledProcessError as exc:
                    peer_error = f"podman pull failed: {exc.stderr.decode()[-300:]}"
        ours = min(rl_times)
        if peer_times and peer_error is None:
            report.ratio("pull 100 MB, 5 layers, empty store", ours, "podman pull",
                         min(peer_times), target="<= 1.0")
        else:
            report.note(f"{peer_error}; rl pull: {ours:.3f} s")

        # What limits it: the stages, on one core.
        blobs = [x.blob for x in layers]
        t0 = time.perf_counter()
        for b in blobs:
            zlib.decompress(b, 31)
        t_zlib = time.perf_counter() - t0
        from isal import igzip

        t0 = time.perf_counter()
        for b in blobs:
            igzip.decompress(b)
        t_isal = time.perf_counter() - t0
        t0 = time.perf_counter()
        for x in layers:
            hashlib.sha256(x.blob)
            hashlib.sha256(x.tar)
        t_hash = time.perf_counter() - t0
        report.ratio("gunzip 100 MB", t_isal, "zlib", t_zlib)
        report.note(f"sha256 of blobs + tars: {t_hash:.3f} s; "
                    f"rl pull runs (s): {', '.join(f'{t:.2f}' for t in rl_times)}")
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    run(Report())


if __name__ == "__main__":
    main()

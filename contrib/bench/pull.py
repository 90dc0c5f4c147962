"""Pull of a ~100 MB multi-layer image from a local registry into an empty store:
`rl pull` against `podman pull` (rootless, empty --root each time), as the unprivileged test
user when run as root; then an image of 20,000 small files and a 200 MiB file, against
podman and skopeo (copy into a dir:, a floor: no unpacking). Also times the stages rl's
pull is made of (gzip decompression with zlib vs isal, sha256), to say what limits it.
PYTHONPATH, when set, goes to rl (another checkout: a before/after run); RL_BENCH_BEFORE, a
checkout's path, adds that rl as one more peer of the same interleaved rounds."""

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
SMALL_FILES = 20000
BIG_MB = 200


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


def _compare(report: Report, work: Path, ref: str, label: str) -> list[float]:
    """rl pull against podman pull (and skopeo copy into a plain directory, which neither
    unpacks nor stores: a floor), into empty stores, alternating, best of three each."""
    from tests.support.users import rl_executable

    home = Path(f"/home/{TEST_USER}") if os.getuid() == 0 else Path.home()
    base_env = {"HOME": str(home), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8"}
    if os.environ.get("PYTHONPATH"):  # another checkout: a before/after run
        base_env["PYTHONPATH"] = os.environ["PYTHONPATH"]

    trash = work / "trash"
    trash.mkdir(exist_ok=True)

    def fresh(name: str) -> Path:
        # The previous run's tree is moved aside, not deleted: on ext4 without a journal
        # (this machine's /) a new inode skips every inode freed in the last 60-360 s
        # (recently_deleted() in find_inode_bit), so a pull right after an rm -r of
        # 20,000 files spent most of its time in the kernel's open(O_CREAT) (perf).
        d = work / name
        if d.exists():
            d.rename(trash / f"{name}-{len(os.listdir(trash))}")
        d.mkdir()
        if os.getuid() == 0:
            shutil.chown(d, TEST_USER, TEST_USER)
        return d

    def rl_pull(pythonpath: str | None = None, name: str = "rl") -> float:
        d = fresh(name)
        env = dict(base_env, XDG_DATA_HOME=str(d / "data"), XDG_CONFIG_HOME=str(d / "cfg"))
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        return _timed(_as_user([rl_executable(), "pull", "-q", ref], env), env)

    def podman_pull() -> float:
        d = fresh("podman")
        return _timed(_as_user(["podman", "--root", str(d / "root"), "--runroot",
                                str(d / "run"), "--storage-driver", "overlay",
                                "pull", "-q", "--tls-verify=false", ref], base_env), base_env)

    def skopeo_copy() -> float:
        d = fresh("skopeo")
        return _timed(_as_user(["skopeo", "copy", "-q", "--src-tls-verify=false",
                                f"docker://{ref}", f"dir:{d}/img"], base_env), base_env)

    peers = {"podman pull": podman_pull}
    if os.environ.get("RL_BENCH_BEFORE"):  # another checkout's rl in the same rounds
        peers["rl before (RL_BENCH_BEFORE)"] = lambda: rl_pull(os.environ["RL_BENCH_BEFORE"],
                                                               "rl-before")
    if shutil.which("skopeo"):
        peers["skopeo copy to dir:"] = skopeo_copy
    rl_times: list[float] = []
    times: dict[str, list[float]] = {k: [] for k in peers}
    errors: dict[str, str] = {}
    for _ in range(3):
        rl_times.append(rl_pull())
        for name, fn in peers.items():
            if name in errors:
                continue
            try:
                times[name].append(fn())
            except subprocess.CalledProcessError as exc:
                errors[name] = f"{name} failed: {exc.stderr.decode()[-300:]}"
    for name in peers:
        if name in errors or not times[name]:
            report.note(errors.get(name, f"{name}: no result"))
        else:
            report.ratio(label, min(rl_times), name, min(times[name]),
                         target="<= 1.0" if name == "podman pull" else "")
    report.note(f"rl pull runs (s): {', '.join(f'{t:.2f}' for t in rl_times)}")
    return rl_times


def _many_small_and_one_big():
    """Issue 18's second image: 20,000 small files (one layer) and a 200 MiB file (another;
    1 MiB random chunks repeated: gzip's 32 KiB window finds nothing to compress)."""
    from tests.support.images import TarBuilder

    rng = random.Random(18)
    chunk = rng.randbytes(4096)
    t = TarBuilder().dir("data")
    for i in range(SMALL_FILES):
        if i % 500 == 0:
            t.dir(f"data/d{i // 500:03d}")
        t.file(f"data/d{i // 500:03d}/f{i}", chunk[: 100 + (i * 37) % 2000])
    small = t.layer()
    mib = rng.randbytes(1 << 20)
    big = TarBuilder().file("big", mib * BIG_MB).layer()
    return [small, big]


def run(report: Report) -> None:
    from tests.support.images import Image, _config
    from tests.support.registry import Registry

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
        _compare(report, work, reg.ref("bench:latest"),
                            f"pull {total / 1e6:.0f} MB, {LAYERS} layers, empty store")
        many = _many_small_and_one_big()
        reg.push_image("many", "latest", Image(many, _config()))
        _compare(report, work, reg.ref("many:latest"),
                 f"pull {SMALL_FILES} small files + a {BIG_MB} MiB file, empty store")

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
        report.note(f"sha256 of blobs + tars: {t_hash:.3f} s")
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    run(Report())


if __name__ == "__main__":
    main()

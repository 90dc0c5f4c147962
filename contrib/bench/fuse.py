"""fuse_overlay against fuse-overlayfs and the kernel's overlayfs on the same trees.

Workloads (issue 4): sequential read of a 1 GiB file (cold and warm page cache), find + stat
over 50,000 files, `tar c` of a tree of small files, creating 10,000 small files, copy-up of
a 200 MB file, and the server's peak RSS. RL_BENCH_SCALE (default 1) scales every size down
for a shared machine. Runs as a plain user: the measurements happen in a user + mount
namespace (`unshare --map-root-user --mount`), where all three mount. RL_BENCH_REPEAT
(default 3) rounds run interleaved; each figure is the median of the rounds.

"cold" drops the lower file from the page cache with posix_fadvise(DONTNEED) (no root
needed) and mounts afresh, so neither the FUSE nor the underlying page cache holds it.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SYSTEMS = ("fuse_overlay", "fuse-overlayfs", "kernel")


def _scale() -> float:
    return float(os.environ.get("RL_BENCH_SCALE", "1"))


def run(report) -> None:
    if not shutil.which("fuse-overlayfs"):
        report.note("fuse-overlayfs is not installed: no peer to compare with")
        return
    cmd = ["unshare", "--user", "--map-root-user", "--mount", sys.executable, "-m",
           "contrib.bench.fuse", "--inner"]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"benchmark failed: {r.stderr[-3000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    s = res.pop("_scale")
    report.note(f"scale {s}: file {res.pop('_file_mb')} MiB, {res.pop('_files')} files in the "
                f"walk, {res.pop('_creates')} creates, copy-up of {res.pop('_copyup_mb')} MB")
    targets = {"read cold": "MB/s >= 0.8x", "read warm": "MB/s >= 0.8x",
               "find+stat": "<= 1.5x", "tar c": "<= 1.5x", "create": "<= 1.5x",
               "copy-up": "", "peak RSS": "<= 60 MB"}
    for name, target in targets.items():
        ours = res["fuse_overlay"][name]
        unit = "MB/s" if name.startswith("read") else ("MB" if name == "peak RSS" else "s")
        report.ratio(f"fuse {name}", ours, "fuse-overlayfs", res["fuse-overlayfs"][name], unit,
                     target)
        if name != "peak RSS":
            report.ratio(f"fuse {name}", ours, "kernel overlayfs", res["kernel"][name], unit)


# ---- inside the namespace ------------------------------------------------------------------

def _mount(system: str, lower: str, upper: str, work: str, mnt: str):
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if system == "kernel":
        subprocess.run(["mount", "-t", "overlay", "-o", opts + ",userxattr", "overlay", mnt],
                       check=True)
        return None
    if system == "fuse-overlayfs":
        subprocess.run(["fuse-overlayfs", "-o", opts, mnt], check=True)
        pid = None
        for line in subprocess.run(["pgrep", "-f", f"fuse-overlayfs.*{mnt}"],
                                   capture_output=True, text=True).stdout.split():
            pid = int(line)
        return pid
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "fuse_overlay.cli", "-f", "-o",
                             opts + f",ready_fd={w}", mnt], pass_fds=(w,))
    os.close(w)
    with os.fdopen(r, "rb") as f:
        if f.read(1) != b"1":
            raise RuntimeError("fuse-overlay did not mount")
    return proc.pid


def _umount(mnt: str, pid) -> None:
    subprocess.run(["umount", mnt], check=True)
    if pid:
        for _ in range(500):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.01)


def _drop(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


def _read_all(path: str) -> int:
    n = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(1 << 20)
        while True:
            k = f.readinto(buf)
            if not k:
                return n
            n += k


def _peak_rss_mb(pid) -> float:
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _measure(system: str, top: str, lower: str, rnd: int, sizes: dict, chunk: bytes) -> dict:
    """One round of every workload on `system`, with fresh upper dirs and mounts."""
    out = {}
    base = os.path.join(top, f"{system}-{rnd}")
    up, work, mnt = (os.path.join(base, n) for n in ("upper", "work", "mnt"))
    for d in (up, work, mnt):
        os.makedirs(d)
    # read: cold (nothing cached anywhere), then warm
    _drop(f"{lower}/big")
    pid = _mount(system, lower, up, work, mnt)
    out["read cold"] = sizes["file_mb"] / _timed(lambda: _read_all(f"{mnt}/big"))
    out["read warm"] = sizes["file_mb"] / _timed(lambda: _read_all(f"{mnt}/big"))
    _umount(mnt, pid)
    # metadata walk, then tar, each on a fresh mount
    pid = _mount(system, lower, up, work, mnt)
    out["find+stat"] = _timed(lambda: subprocess.run(
        ["find", f"{mnt}/tree", "-ls"], stdout=subprocess.DEVNULL, check=True))
    _umount(mnt, pid)
    pid = _mount(system, lower, up, work, mnt)
    out["tar c"] = _timed(lambda: subprocess.run(
        f"tar -cf - -C {mnt}/tree . | cat > /dev/null", shell=True, check=True))

    def create():
        os.mkdir(f"{mnt}/new")
        for i in range(sizes["creates"]):
            with open(f"{mnt}/new/f{i}", "wb") as f:
                f.write(chunk[:200])
    out["create"] = _timed(create)

    def copy_up():
        fd = os.open(f"{mnt}/copyup", os.O_RDWR)
        os.pwrite(fd, b"x", 0)
        os.close(fd)
    out["copy-up"] = _timed(copy_up)
    out["peak RSS"] = _peak_rss_mb(pid)
    _umount(mnt, pid)
    shutil.rmtree(base, ignore_errors=True)
    return out


def inner() -> dict:
    s = _scale()
    repeat = int(os.environ.get("RL_BENCH_REPEAT", "3"))
    sizes = {"file_mb": max(16, int(1024 * s)), "files": max(1000, int(50000 * s)),
             "creates": max(500, int(10000 * s)), "copyup_mb": max(8, int(200 * s))}
    top = tempfile.mkdtemp(prefix="rl-bench-fuse-", dir="/var/tmp")
    lower = os.path.join(top, "lower")
    os.makedirs(f"{lower}/tree")
    chunk = os.urandom(1 << 20)
    with open(f"{lower}/big", "wb") as f:
        for _ in range(sizes["file_mb"]):
            f.write(chunk)
    with open(f"{lower}/copyup", "wb") as f:
        for _ in range(sizes["copyup_mb"]):
            f.write(chunk)
    per_dir = 500
    for i in range(sizes["files"]):
        d = f"{lower}/tree/d{i // per_dir:03d}"
        if i % per_dir == 0:
            os.mkdir(d)
        with open(f"{d}/f{i}", "wb") as f:
            f.write(chunk[: 100 + (i % 2000)])
    res: dict = {"_scale": s, "_file_mb": sizes["file_mb"], "_files": sizes["files"],
                 "_creates": sizes["creates"], "_copyup_mb": sizes["copyup_mb"]}
    rounds: dict = {system: [] for system in SYSTEMS}
    try:
        # interleaved rounds, the median of each: this machine is shared and noisy
        for rnd in range(repeat):
            for system in SYSTEMS:
                rounds[system].append(_measure(system, top, lower, rnd, sizes, chunk))
                print(system, rounds[system][-1], file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    for system, outs in rounds.items():
        res[system] = {k: statistics.median(o[k] for o in outs) for k in outs[0]}
        res[system]["peak RSS"] = max(o["peak RSS"] for o in outs)
    return res


if __name__ == "__main__":
    if sys.argv[1:] == ["--inner"]:
        print(json.dumps(inner()))
    else:
        import contrib.bench as bench

        run(bench.Report())

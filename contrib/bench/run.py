"""`rl run --rm IMAGE true` against `podman run --rm` on the same busybox image, and the
memory one running container costs (its processes' PSS).

Both run as the unprivileged test user (rltest when started as root, else the caller):
- latency: median of RL_BENCH_REPEAT (default 10) interleaved runs, `--network none` and
  the default network (slirp4netns for both);
- memory (PSS): one `sleep` container detached; rl: monitor + sandbox + fuse server +
  slirp4netns; podman: conmon + fuse-overlayfs + slirp4netns, podman storage set to use
  fuse-overlayfs as its mount program so that the two do the same work. Then with MANY
  running, every process of each engine (rl's fuse server zygote, podman's pause process
  too) divided by MANY: what one more container costs, shared pages included.
podman runs with `--runtime runc` (crun refuses this host's hybrid cgroups), its own
--root/--runroot in a temporary directory, and loads the image from a docker-archive made
from tests/support/images.py. rl gets the same image through the image store, or through
tests/runtime/standin.py while the image store is not merged.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from tests.support.podman import end_pause_processes
from tests.support.users import stop_fuse_zygotes

REPO = Path(__file__).resolve().parents[2]
USER = "rltest"


def _as_user(argv: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    if os.getuid() == 0:
        argv = ["runuser", "-u", USER, "--", "env", "-i",
                *(f"{k}={v}" for k, v in env.items()), *argv]
        env = None
    return subprocess.run(argv, env=env, capture_output=True, text=True, **kw)


def _docker_archive(path: Path, img=None, tag: str = "localhost/rlbench:latest") -> None:
    """A `docker save` archive of `img` (tests.support.images.Image; busybox by default)."""
    sys.path.insert(0, str(REPO))
    from tests.support import images

    img = img or images.build_busybox()
    with tarfile.open(path, "w") as tar:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            import io

            tar.addfile(ti, io.BytesIO(data))

        layers = []
        for i, layer in enumerate(img.layers):
            add(f"layer{i}.tar", layer.tar)
            layers.append(f"layer{i}.tar")
        add("config.json", img.config_bytes)
        add("manifest.json", json.dumps([{"Config": "config.json",
                                          "RepoTags": [tag],
                                          "Layers": layers}]).encode())


class Env:
    def __init__(self) -> None:
        # Byte-code as an installed rl has it: the test user cannot write __pycache__ in a
        # checkout owned by root, and would otherwise compile every changed module on
        # every run (seen: +60 ms per `rl run`).
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "rootless"),
                        str(REPO / "fuse_overlay")], capture_output=True)
        self.tmp = Path(tempfile.mkdtemp(prefix="rl-bench-run-"))
        os.chmod(self.tmp, 0o755)
        home = f"/home/{USER}" if os.getuid() == 0 else os.environ.get("HOME", "/tmp")
        self.rl_root = self.tmp / "rl"
        self.env = {
            "HOME": home, "LANG": "C.UTF-8",
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin:/usr/sbin:/sbin",
            "XDG_DATA_HOME": str(self.rl_root / "data"),
            "XDG_CONFIG_HOME": str(self.rl_root / "config"),
            "XDG_RUNTIME_DIR": str(self.rl_root / "run"),
        }
        # RL_FUSE_ZYGOTE=0: cold starts; PYTHONPATH: another checkout (a before/after run)
        for var in ("RL_ROOTFS_BACKEND", "RL_FUSE_ZYGOTE", "PYTHONPATH"):
            if os.environ.get(var):
                self.env[var] = os.environ[var]
        self.podman_root = self.tmp / "podman"
        for d in ("data", "config", "run"):
            (self.rl_root / d).mkdir(parents=True)
        (self.podman_root).mkdir()
        if os.getuid() == 0:
            shutil.chown(self.tmp, USER)
            for p in self.tmp.rglob("*"):
                shutil.chown(p, USER)
        os.chmod(self.rl_root / "run", 0o700)
        self.archive = self.tmp / "busybox.tar"
        _docker_archive(self.archive)
        os.chmod(self.archive, 0o644)
        self.rl_argv = self._rl_argv()
        self.podman = ["podman", "--root", str(self.podman_root / "root"),
                       "--runroot", str(self.podman_root / "runroot"),
                       "--storage-driver", "overlay",
                       "--storage-opt", "overlay.mount_program=/usr/bin/fuse-overlayfs",
                       "--runtime", "runc", "--cgroup-manager", "cgroupfs",
                       "--events-backend", "none"]

    def _rl_argv(self) -> list[str]:
        try:
            import importlib.util

            real = importlib.util.find_spec("rootless.engine.images") is not None
        except ModuleNotFoundError:
            real = False
        if real:
            argv = [str(Path(sys.executable).with_name("rl"))]
            r = _as_user([*argv, "load", "-i", str(self.archive)], self.env)
            if r.returncode == 0:
                self.image = "localhost/rlbench:latest"
                return argv
        # the stand-in store of the runtime tests
        data = str(self.rl_root / "data" / "rl")
        script = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from pathlib import Path;"
                  "from tests.runtime import standin; from tests.support import images;"
                  f"standin.install(Path({data!r}), 'busybox:latest', images.build_busybox())")
        r = _as_user([sys.executable, "-c", script], self.env, cwd="/")
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        self.image = "busybox"
        return [sys.executable, str(REPO / "tests" / "runtime" / "rl_standin.py")]

    def load_podman(self) -> None:
        r = _as_user([*self.podman, "load", "-q", "-i", str(self.archive)], self.env)
        if r.returncode != 0:
            raise RuntimeError(f"podman load: {r.stderr}")

    def cleanup(self) -> None:
        stop_fuse_zygotes(self.rl_root / "run" / "rl")
        _as_user([*self.podman, "rm", "-af", "-t", "0"], self.env)
        _as_user([*self.podman, "unshare", "rm", "-rf", str(self.podman_root)], self.env)
        _as_user([*self.rl_argv, "rm", "-f", *(f"rlbench-mem{i}" for i in range(MANY))],
                 self.env)
        _as_user([*self.rl_argv, "unshare", "rm", "-rf", str(self.rl_root)], self.env)
        end_pause_processes(self.env["XDG_RUNTIME_DIR"])
        shutil.rmtree(self.tmp, ignore_errors=True)


def _time(argv: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    r = _as_user(argv, env)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}... exited {r.returncode}: {r.stderr}")
    return dt


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _procs() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, command line with spaces)."""
    from contrib.bench import processes

    return {p.pid: (p.ppid, p.cmdline.replace(b"\0", b" ").decode(errors="replace"))
            for p in processes()}


def _descendants(root: int, procs) -> set[int]:
    members = {root}
    changed = True
    while changed:
        changed = False
        for p, (pp, _) in procs.items():
            if pp in members and p not in members:
                members.add(p)
                changed = True
    return members


def _rl_container_pids(e: Env, name: str, procs) -> set[int]:
    """The processes container `name` costs: its monitor, its sandbox (if it still runs:
    it exits once pid 1 runs since issue 18), its slirp4netns, and its fuse server (forked
    by the warm zygote, so not below the monitor: the one whose user namespace is the
    container's; it leaves the mount namespace once mounted). Not the container's own
    processes."""
    doc = json.loads(_as_user([*e.rl_argv, "inspect", name], e.env).stdout)[0]
    monitor = doc["State"]["MonitorPid"]
    mine = _descendants(monitor, procs) - _descendants(doc["State"]["Pid"], procs)
    sandbox_userns = None
    try:
        sandbox_userns = os.readlink(f"/proc/{doc['State']['Pid']}/ns/user")
    except OSError:
        pass
    # slirp4netns is the child of the process that started the container, which hands it
    # over to a monitor the zygote forked and exits: found by its API socket's name
    slirp = f"/slirp-{doc['Id'][:12]}.sock"
    mine |= {p for p, (_, cmd) in procs.items() if "slirp4netns" in cmd and slirp in cmd}
    zygotes = _rl_zygotes(e, procs)
    for p, (pp, _) in procs.items():
        if pp in zygotes and p != monitor:
            try:
                if os.readlink(f"/proc/{p}/ns/user") == sandbox_userns:
                    mine.add(p)
            except OSError:
                pass
    return mine


def _rl_zygotes(e: Env, procs) -> set[int]:
    zygotes = set()
    for pidfile in (e.rl_root / "run" / "rl").glob("fuse-zygote-*.pid"):
        zygotes |= {int(p) for p in pidfile.read_text().split() if int(p) in procs}
    return zygotes


def _podman_pids(e: Env, procs) -> tuple[set[int], set[int]]:
    """conmon, fuse-overlayfs and slirp4netns of every container of this podman root;
    and its shared pause process (catatonit -P, one per user, as rl's zygote is)."""
    root = str(e.podman_root)
    theirs = {p for p, (_, cmd) in procs.items()
              if (cmd.startswith("/usr/bin/conmon") or "fuse-overlayfs" in cmd) and root in cmd}
    theirs |= {p for p, (_, cmd) in procs.items()
               if "slirp4netns" in (cmd.split() or [""])[0] and "netns-" in cmd
               and str(e.rl_root) in cmd}  # podman's runroot tmp sits in our XDG_RUNTIME_DIR
    pause = set()
    try:
        pid = int((e.rl_root / "run" / "libpod" / "tmp" / "pause.pid").read_text().strip())
        if pid in procs:
            pause.add(pid)
    except (OSError, ValueError):
        pass
    return theirs, pause


def _kinds(pids, procs, zygotes=frozenset()) -> str:
    """`rl` processes named by role (the lean ones all run python3 -I -S -c ...)."""
    names: dict[str, int] = {}
    for p in pids:
        cmd = procs[p][1]
        name = cmd.split()[0].rsplit("/", 1)[-1] if cmd.split() else "?"
        try:
            comm = open(f"/proc/{p}/comm").read().strip()
        except OSError:
            comm = ""
        if comm == "rl-monitor":  # forked by the zygote (rootless/runtime/monitorfork.py)
            name = "monitor (zygote's)"
        elif p in zygotes:
            name = "zygote"
        elif procs[p][0] in zygotes:
            name = "fuse server"
        elif "lean.monitor_main" in cmd:
            name = "monitor"
        elif "lean.waiter_main" in cmd:
            name = "sandbox"
        names[name] = names.get(name, 0) + 1
    return ", ".join(f"{k} x{v}" for k, v in sorted(names.items()))


def _start_sleepers(e: Env, names: list[str]) -> tuple[float, float]:
    """Start a `sleep` container of each name with rl and with podman, one after another,
    interleaved; the total time of each engine's `run -d`."""
    ours = theirs = 0.0
    for name in names:
        ours += _time([*e.rl_argv, "run", "-d", "--name", name, e.image, "sleep", "300"], e.env)
        theirs += _time([*e.podman, "run", "-d", "--name", name, "localhost/rlbench",
                         "sleep", "300"], e.env)
    time.sleep(1)
    return ours, theirs


MANY = int(os.environ.get("RL_BENCH_MANY", "20"))  # issue 18: the cost with 20 running


def memory(e: Env, report) -> None:
    """Two views, both PSS (shared pages split among the processes that map them): one
    running container, counting the processes it alone costs (the zygote is shared by all
    containers of the user: shown apart); and MANY running containers, every process of
    each engine counted (rl's zygote, podman's pause process) and divided by MANY: the
    marginal cost of a container."""
    names = [f"rlbench-mem{i}" for i in range(MANY)]
    _start_sleepers(e, names[:1])
    procs = _procs()
    mine = _rl_container_pids(e, names[0], procs)
    zygotes = _rl_zygotes(e, procs)
    theirs, pause = _podman_pids(e, procs)
    # no target: issue 18 dropped "<= 2x podman" for the cost with 20 running (below)
    report.ratio("run: memory of one running container (PSS)", _pss_sum(mine), "podman",
                 _pss_sum(theirs), unit="MiB")
    report.note(f"rl: {_kinds(mine, procs, zygotes)}; podman: {_kinds(theirs, procs)}")
    report.note(f"shared by all containers of the user: rl's fuse server zygote "
                f"{_pss_sum(zygotes):.1f} MiB, podman's pause process {_pss_sum(pause):.1f} "
                "MiB (PSS)")
    ours, theirs = _start_sleepers(e, names[1:])
    report.ratio(f"run -d of {MANY - 1} containers one after another", ours, "podman", theirs,
                 target="<= 1.0")
    procs = _procs()
    mine = set().union(*(_rl_container_pids(e, n, procs) for n in names)) | _rl_zygotes(e, procs)
    theirs, pause = _podman_pids(e, procs)
    theirs |= pause
    report.ratio(f"run: memory per container, {MANY} running (all PSS / {MANY})",
                 _pss_sum(mine) / MANY, "podman", _pss_sum(theirs) / MANY, unit="MiB",
                 target="<= 6 MiB")
    report.note(f"rl: {_kinds(mine, procs, _rl_zygotes(e, procs))}; "
                f"podman: {_kinds(theirs, procs)}")


def _pss_sum(pids) -> float:
    return sum(_pss(p) for p in pids) / 2**20


def run(report) -> None:
    repeat = int(os.environ.get("RL_BENCH_REPEAT", "10"))
    e = Env()
    try:
        e.load_podman()
        for label, net in (("--network none", ["--network", "none"]), ("default network", [])):
            rl_argv = [*e.rl_argv, "run", "--rm", *net, e.image, "true"]
            pd_argv = [*e.podman, "run", "--rm", *net, "localhost/rlbench", "true"]
            _time(rl_argv, e.env)
            _time(pd_argv, e.env)
            ours, theirs = [], []
            for _ in range(repeat):
                ours.append(_time(rl_argv, e.env))
                theirs.append(_time(pd_argv, e.env))
            report.ratio(f"run --rm true ({label})", statistics.median(ours), "podman",
                         statistics.median(theirs), target="<= 1.0")
        memory(e, report)
        report.note(f"rootfs backend: {e.env.get('RL_ROOTFS_BACKEND', 'fuse_overlay')}, "
                    f"zygote {'off' if e.env.get('RL_FUSE_ZYGOTE') == '0' else 'on'}; "
                    f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    finally:
        e.cleanup()


def main() -> None:
    sys.path.insert(0, str(REPO))
    from contrib.bench import Report

    run(Report())


if __name__ == "__main__":
    main()

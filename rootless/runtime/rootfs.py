"""The container's root filesystem: one interface, three ways to mount it.

A `RootfsSpec` (stored as rootfs.json beside config.json) names the layers (TOP first), the
container's upper and work dirs, the mount point and the backend:

- "fuse_overlay" (default): our union fs (fuse_overlay.server.run), served by a process
  forked from the sandbox. It is forked as early as possible (`Server.prestart`) so that
  importing pyfuse3, the slowest step of a start, overlaps the rest of the set-up.
- "fuse-overlayfs": the C program from Debian, same options and same ownership xattr.
- "kernel": overlayfs with `userxattr`, mounted in the user namespace. Layers stored in the
  OCI form (`.wh.` whiteouts, ownership in an xattr) are not what the kernel expects, so this
  backend shows whiteout files and the plain user as owner; it is here for benchmarks.

Everything here runs inside the sandbox's user and mount namespaces. The process serving a
FUSE mount never touches the mount itself.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field

from rootless.linux import syscalls

BACKENDS = ("fuse_overlay", "fuse-overlayfs", "kernel")
DEFAULT_BACKEND = "fuse_overlay"
BACKEND_ENV = "RL_ROOTFS_BACKEND"


class RootfsError(Exception):
    pass


@dataclass
class RootfsSpec:
    lowerdirs: list[str]  # TOP first, as overlayfs takes them
    upperdir: str
    workdir: str
    mountpoint: str
    backend: str = DEFAULT_BACKEND
    log: str | None = None
    options: dict = field(default_factory=dict)

    def save(self, path: str) -> None:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> RootfsSpec:
        with open(path) as f:
            return cls(**json.load(f))


def default_backend() -> str:
    value = os.environ.get(BACKEND_ENV, "").strip()
    return value if value in BACKENDS else DEFAULT_BACKEND


def _escape(path: str) -> str:
    # overlay option syntax: ',' separates options, ':' separates lower dirs.
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def overlay_options(spec: RootfsSpec) -> str:
    return (f"lowerdir={':'.join(_escape(d) for d in spec.lowerdirs)},"
            f"upperdir={_escape(spec.upperdir)},workdir={_escape(spec.workdir)}")


def _is_mounted(path: str) -> bool:
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo", "rb") as f:
        data = f.read()
    needle = os.fsencode(path).replace(b" ", b"\\040")
    return any(line.split(b" ")[4] == needle for line in data.splitlines() if line)


def _child_log(spec: RootfsSpec) -> int:
    if spec.log:
        return os.open(spec.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


class Server:
    """The process that serves the rootfs (None for the kernel backend)."""

    def __init__(self, backend: str, early_ready_fd: int | None = None) -> None:
        self.backend = backend
        self.pid: int | None = None  # a server that is our child
        self._pre = None
        # A server forked by `rl run` before this sandbox existed (rootless.runtime.early):
        # it joins our namespaces and mounts by itself; we only wait for its ready byte.
        self._early_ready = early_ready_fd
        self._zygote = False  # a warm zygote will fork our server

    # -- fuse_overlay: fork now, import pyfuse3 while the caller does other work ----------
    def prestart(self, *, fork: bool = False) -> None:
        """Get a server ready: nothing to do when one was forked before us or a warm
        zygote answers; otherwise (or with `fork`) fork one now."""
        if self.backend != "fuse_overlay" or self._pre is not None:
            return
        if not fork and (self._early_ready is not None or self._zygote):
            return
        from rootless.runtime import early, zygote

        try:
            if not fork and zygote.available():
                self._zygote = True
                return
        except Exception:
            pass
        self._pre = early.fork_server()
        self.pid = self._pre.pid

    def mount(self, spec: RootfsSpec, timeout: float = 30.0) -> None:
        os.makedirs(spec.mountpoint, exist_ok=True)
        if spec.backend == "kernel":
            syscalls.mount("overlay", spec.mountpoint, "overlay", 0,
                           overlay_options(spec) + ",userxattr")
            return
        if spec.backend == "fuse_overlay":
            ready_r = None
            if self._early_ready is not None:
                ready_r = self._early_ready
                self._early_ready = None
            elif self._zygote:
                from rootless.runtime import zygote

                ready_r = zygote.request(asdict(spec), os.getpid())
                if ready_r is None:  # it went away: serve it ourselves
                    self._zygote = False
            if ready_r is None:
                self.prestart(fork=True)
                assert self._pre is not None
                self._pre.send(asdict(spec))
                ready_r = self._pre.ready_r
            answer = b""
            while chunk := os.read(ready_r, 4096):
                answer += chunk
                if answer.startswith(b"1"):
                    break
            os.close(ready_r)
            if not answer.startswith(b"1"):
                msg = answer[2:].decode(errors="replace") if answer.startswith(b"E ") else ""
                raise RootfsError(msg or "the fuse_overlay server exited before the mount "
                                  f"was ready (see {spec.log})")
            return
        if spec.backend == "fuse-overlayfs":
            self._start_fuse_overlayfs(spec, timeout)
            return
        raise RootfsError(f"unknown rootfs backend {spec.backend!r}")

    def _start_fuse_overlayfs(self, spec: RootfsSpec, timeout: float) -> None:
        import shutil

        exe = shutil.which("fuse-overlayfs", path="/usr/bin:/bin:/usr/local/bin")
        if exe is None:
            raise RootfsError("fuse-overlayfs is not installed")
        argv = [exe, "-f", "-o", overlay_options(spec), spec.mountpoint]
        pid = os.fork()
        if pid == 0:
            try:
                syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                null = os.open(os.devnull, os.O_RDWR)
                log = _child_log(spec)
                os.dup2(null, 0)
                os.dup2(null, 1)
                os.dup2(log, 2)
                syscalls.close_range(3)
                os.execv(exe, argv)
            finally:
                os._exit(127)
        self.pid = pid
        # fuse-overlayfs -f has no readiness signal: watch our own mount table for it.
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while not _is_mounted(spec.mountpoint):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                self.pid = None
                raise RootfsError(f"fuse-overlayfs exited ({status:#x}) before mounting "
                                  f"(see {spec.log})")
            if time.monotonic() > deadline:
                raise RootfsError("fuse-overlayfs did not mount in time")
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def stop(self, spec: RootfsSpec | None = None) -> None:
        """Unmount (the server then exits) and reap the server."""
        if spec is not None and spec.backend != "kernel":
            try:
                syscalls.umount2(spec.mountpoint, 0)
            except OSError:
                try:
                    syscalls.umount2(spec.mountpoint, syscalls.MNT_DETACH)
                except OSError:
                    pass
        if self.pid is None:
            return
        for sig, wait in ((None, 0.5), (signal.SIGTERM, 0.5), (signal.SIGKILL, 5)):
            if sig is not None:
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    self.pid = None
                    return
                time.sleep(0.002)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.pid = None

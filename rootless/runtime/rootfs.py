"""The container's root filesystem: one interface, two ways to serve it.

A `RootfsSpec` (stored as rootfs.json beside config.json) names the layers (TOP first), the
container's upper and work dirs, the mount point and the backend:

- "fuse_overlay" (default): our union fs (fuse_overlay.server.run), served by a process
  the warm zygote forks (rootless.runtime.zygote; the monitor connected to it for us), or
  `rl run` forked before parsing (rootless.runtime.early), or else one forked from the
  sandbox as early as possible (`Server.prestart`), so that importing pyfuse3, the
  slowest step of a start, overlaps the rest of the set-up.
- "fuse-overlayfs": the C program from Debian, same options and same ownership xattr.

The kernel's overlayfs is not a backend, though it mounts in a user namespace here: the
store keeps layers in the OCI form that fuse_overlay and fuse-overlayfs read (`.wh.`
whiteouts, owners and modes in the user.containers.override_stat xattr), and the kernel
reads neither. Checked here: it showed deleted files and their `.wh.` markers, every file
owned by root, /tmp without its sticky bit and /root mode 0755. Serving it correctly would
need a second copy of every layer in the kernel's form (real chown to subordinate ids, 0/0
character-device whiteouts), impossible with a single id mapping. Selecting it
(RL_ROOTFS_BACKEND=kernel) is refused with that reason; `checked_backend` says so before
anything of a container exists, as it does for an unknown name or an unusable /dev/fuse.

Everything here runs inside the sandbox's user and mount namespaces. The process serving a
FUSE mount never touches the mount itself.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass, field

from rootless.errors import RlError
from rootless.linux import syscalls

BACKENDS = ("fuse_overlay", "fuse-overlayfs")
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


FUSE_DEVICE = "/dev/fuse"
FUSE_OVERLAYFS_FIX = f"ask root to run `apt-get install fuse-overlayfs`, or unset {BACKEND_ENV}"


def fuse_overlayfs_path() -> str | None:
    import shutil

    return shutil.which("fuse-overlayfs", path="/usr/bin:/bin:/usr/local/bin")


def fuse_device_problem() -> RlError | None:
    """Why this user cannot open /dev/fuse (both backends need it), or None. One access()
    call: it runs on every start. Inside the user namespace the device's owner (the host's
    root) is not mapped, so container root gets no more than the user's own rights."""
    if os.access(FUSE_DEVICE, os.R_OK | os.W_OK):
        return None
    if not os.path.exists(FUSE_DEVICE):
        return RlError(f"{FUSE_DEVICE} does not exist: the root filesystem is served by FUSE",
                       "ask root to run `modprobe fuse` (Debian package fuse3)")
    mode = os.stat(FUSE_DEVICE).st_mode & 0o7777
    return RlError(f"{FUSE_DEVICE} (mode {mode:04o}) cannot be opened by you: the root "
                   "filesystem is served by FUSE",
                   f"ask root to run `chmod 0666 {FUSE_DEVICE}`, the mode distributions ship")


def checked_backend() -> str:
    """The backend for a container about to start, or an RlError saying why none can serve
    it: an unknown RL_ROOTFS_BACKEND, the kernel's overlayfs (see the module docstring),
    fuse-overlayfs chosen but not installed, or a /dev/fuse this user cannot open."""
    value = os.environ.get(BACKEND_ENV, "").strip() or DEFAULT_BACKEND
    if value == "kernel":
        raise RlError(f"{BACKEND_ENV}=kernel: the kernel's overlayfs cannot show rl's layers "
                      "(it reads neither their .wh. whiteouts nor their owners and modes, "
                      "kept in xattrs)", f"unset {BACKEND_ENV} or use fuse-overlayfs")
    if value not in BACKENDS:
        raise RlError(f"unknown {BACKEND_ENV} value {value!r}",
                      f"use one of {', '.join(BACKENDS)} or unset it")
    if value == "fuse-overlayfs" and fuse_overlayfs_path() is None:
        raise RlError(f"{BACKEND_ENV}=fuse-overlayfs, but fuse-overlayfs is not installed",
                      FUSE_OVERLAYFS_FIX)
    problem = fuse_device_problem()
    if problem is not None:
        raise problem
    return value


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


def _wait_gone(pid: int, timeout: float = 2.0) -> None:
    """Wait until `pid`, a server that is not our child, has exited (it does once the
    rootfs is unmounted), so that a container's end leaves no process behind; kill it
    after `timeout` (it shares our user namespace, so we may)."""
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return  # gone already
    try:
        if not select.select([pidfd], [], [], timeout)[0]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                return
            select.select([pidfd], [], [], 5.0)
    finally:
        os.close(pidfd)


class Server:
    """The process that serves the rootfs."""

    def __init__(self, backend: str, early_ready_fd: int | None = None,
                 zygote_conn: int | None = None) -> None:
        self.backend = backend
        self.pid: int | None = None  # a server that is our child
        self._pre = None
        # A server forked by `rl run` before this sandbox existed (rootless.runtime.early):
        # it joins our namespaces and mounts by itself; we only wait for its ready byte.
        self._early_ready = early_ready_fd
        # A connection to the warm zygote (rootless.runtime.zygote), made by the monitor
        # in the user's namespace: the zygote forks our server when we send our request.
        self._zygote_conn = zygote_conn
        self.peer_pid: int | None = None  # the server the zygote forked (not our child)
        self._said_left = False  # its ready answer was b"1L" (early._leave_mount)

    def left_us(self) -> bool:
        """Has the server the zygote forked for us moved to a mount namespace of its own
        (rootless.runtime.early._leave_mount)? Then it holds no reference to our rootfs
        mount and needs nothing of us: it ends with the FUSE connection."""
        if self.peer_pid is None:
            return False
        if self._said_left:  # a server of today says so: it is not dumpable (early.serve)
            return True
        try:  # a zygote of older code (same key) only answers b"1": look at it
            return os.readlink(f"/proc/{self.peer_pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        except OSError:
            return False

    # -- fuse_overlay: fork now, import pyfuse3 while the caller does other work ----------
    def prestart(self, *, fork: bool = False) -> None:
        """Get a server ready: nothing to do when one was forked before us or a warm
        zygote will fork one; otherwise (or with `fork`) fork one now."""
        if self.backend != "fuse_overlay" or self._pre is not None:
            return
        if not fork and (self._early_ready is not None or self._zygote_conn is not None):
            return
        from rootless.runtime import early

        self._pre = early.fork_server()
        self.pid = self._pre.pid

    def mount(self, spec: RootfsSpec, timeout: float = 30.0) -> None:
        os.makedirs(spec.mountpoint, exist_ok=True)
        if spec.backend == "fuse_overlay":
            ready_r = None
            if self._early_ready is not None:
                ready_r = self._early_ready
                self._early_ready = None
            elif self._zygote_conn is not None:
                from rootless.runtime import zygote

                conn, self._zygote_conn = self._zygote_conn, None
                answer = zygote.request(asdict(spec), os.getpid(), conn)
                if answer is not None:  # otherwise it went away: serve it ourselves
                    ready_r, self.peer_pid = answer
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
            self._said_left = answer.startswith(b"1L")
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
        exe = fuse_overlayfs_path()
        if exe is None:
            raise RootfsError(f"fuse-overlayfs is not installed ({FUSE_OVERLAYFS_FIX})")
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
        if spec is not None:
            try:
                syscalls.umount2(spec.mountpoint, 0)
            except OSError:
                try:
                    syscalls.umount2(spec.mountpoint, syscalls.MNT_DETACH)
                except OSError:
                    pass
        if self.peer_pid is not None:
            _wait_gone(self.peer_pid)
            self.peer_pid = None
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

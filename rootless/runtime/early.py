"""Start the fuse_overlay server process before anything else, so that its imports
(pyfuse3, without trio since fuse_overlay.loop stands in for it) overlap the rest of a
container's start.

`fork_server()` forks a process that imports the server at once, then waits for its
parameters on a pipe: the rootfs description and, when it was forked outside the
container's namespaces, the pid of a process (the sandbox) whose user and mount namespaces
it joins before mounting. It writes b"1" on its ready pipe once the mount is live (b"1L" when it
also left the sandbox's mount namespace), or `E message` if it cannot serve.

`rl run` calls `start_for_run(argv)` first thing, before click and the engine are even
imported; the engine later `take()`s the process and hands it to the sandbox. The module
imports nothing heavy: it is on that path.
"""

from __future__ import annotations

import json
import os
import signal

from rootless.linux import syscalls as sc
from rootless.trace import trace

BACKEND_ENV = "RL_ROOTFS_BACKEND"


class Prestarted:
    def __init__(self, pid: int, params_w: int, ready_r: int) -> None:
        self.pid = pid
        self.params_w = params_w
        self.ready_r = ready_r

    def send(self, spec: dict, ns_pid: int | None = None) -> None:
        msg = dict(spec, ns_pid=ns_pid)
        try:
            os.write(self.params_w, json.dumps(msg).encode())
        except BrokenPipeError:
            pass  # it died early: the reason is on the ready pipe
        self.close_params()

    def close_params(self) -> None:
        if self.params_w >= 0:
            os.close(self.params_w)
            self.params_w = -1

    def kill(self) -> None:
        self.close_params()
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.reap()

    def reap(self, timeout: float = 2.0) -> None:
        """Wait for the server to exit (it does once the sandbox unmounted the rootfs);
        kill it if it has not after `timeout` (a sandbox killed before unmounting leaves
        it serving a namespace nobody else is in)."""
        if not self.pid:
            return
        import time

        deadline = time.monotonic() + timeout
        delay = 0.001
        try:
            while True:
                done, _ = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                    break
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
        except (ChildProcessError, ProcessLookupError):
            pass
        self.pid = 0


def fork_server() -> Prestarted:
    params_r, params_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(params_w)
            os.close(ready_r)
            _server_main(params_r, ready_w)
        finally:
            os._exit(1)
    os.close(params_r)
    os.close(ready_w)
    return Prestarted(pid, params_w, ready_r)


def import_server():
    """Import what serving needs (the point of forking early or keeping a warm zygote)."""
    from fuse_overlay import server

    server.preload()
    return server


def _server_main(params_r: int, ready_w: int) -> None:
    try:
        trace("F start")
        import gc

        gc.enable()  # a sandbox forks us with its collector off; we run for long
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            server = import_server()
        except ImportError as exc:
            os.write(ready_w, f"E fuse_overlay is not available: {exc}".encode())
            os._exit(1)
        trace("F imported")
        raw = b""
        while chunk := os.read(params_r, 65536):
            raw += chunk
        os.close(params_r)
        if not raw:
            os._exit(0)
        serve(server, json.loads(raw), ready_w, watch=False)
    except BaseException as exc:  # report, never return into the caller's code
        try:
            os.write(ready_w, f"E {exc}".encode(errors="replace"))
            os.write(2, f"fuse_overlay server: {exc!r}\n".encode())
        finally:
            os._exit(1)


def serve(server, spec: dict, ready_w: int, *, watch: bool) -> None:
    """Mount spec's rootfs and serve it; never returns. With `watch` (a server forked by
    the zygote, so no PDEATHSIG tie to the container) that could not leave the sandbox's
    mount namespace (_leave_mount), a thread exits the process when the sandbox
    (spec["ns_pid"]) dies, which tears the mount down with its namespace. One that left
    needs no watch (the end of the connection ends it) and must have none: a detached
    container's sandbox exits while the container runs (rootless/runtime/sandbox.py)."""
    trace("F params")
    # Not dumpable from here on: the server is a process of the host's user namespace (the
    # zygote's, or rl's) that joins the container's, and with `--pid host` the container's
    # root (our kernel uid) would otherwise open its /proc/PID/root, fd/ (layer dirs whose
    # `..` leads home) and mem. Nobody needs them: the sandbox learns on the ready pipe
    # whether we left its mount namespace (b"1L"), not from our /proc/PID/ns/mnt.
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    if spec.get("log"):
        logfd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(logfd, 2)
        os.close(logfd)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    sc.neutralize_fds({0, 1, 2, ready_w})
    pidfd = None
    if spec.get("ns_pid"):
        if watch:
            pidfd = os.pidfd_open(spec["ns_pid"])
        _join(spec["ns_pid"])
    try:  # root inside (keep-id maps our own uid to itself): allow_other needs it
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError:
        pass

    def on_ready() -> None:
        # Before the ready byte, so that the sandbox, which may exit once pid 1 runs,
        # finds us gone from its mount namespace (Server.left_us); before any thread:
        # unshare needs a lone thread.
        left = _leave_mount(spec["mountpoint"])
        os.write(ready_w, b"1L" if left else b"1")  # one write: one read gets both
        os.close(ready_w)
        if left and pidfd is not None:
            os.close(pidfd)
        elif pidfd is not None:
            import select
            import threading

            def watcher() -> None:
                select.select([pidfd], [], [])
                os._exit(0)

            threading.Thread(target=watcher, daemon=True).start()

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the zygote's handler
    # No stop signal: the server ends with the FUSE connection (see _leave_mount), so it
    # need not poll for one, and an idle server never wakes (fuse_overlay/loop.py). A
    # SIGTERM or SIGHUP ends it at once (the default action), as it ended it before.
    # The kernel's writeback cache: writes gather in the page cache and reach the server
    # in large requests, and a file just written reads back from memory (write-through
    # loses those pages at the next attribute refresh, since the mtime the server reports
    # differs from the one the kernel cached). Only this mount writes the upper layer
    # while the container runs; a close flushes the file's pages to it.
    options = {"writeback": "1", **(spec.get("options") or {})}
    server.run(spec["lowerdirs"], spec["upperdir"], spec["workdir"], spec["mountpoint"],
               ready_fd=None, options=options, on_ready=on_ready, stop_signals=())
    os._exit(0)


def _leave_mount(mountpoint: str) -> bool:
    """Once the rootfs is mounted in the sandbox's mount namespace: move to a private copy
    of that namespace and drop the mount from it. The server then holds no reference to
    its own file system, so when the container's last process is gone (however the
    sandbox ended: unmounted, or killed before it could) the kernel ends the connection
    and the server's read of /dev/fuse returns: it exits at once instead of serving a
    namespace nobody is in. False if it could not."""
    try:
        sc.unshare(sc.CLONE_NEWNS)
        sc.umount2(mountpoint, sc.MNT_DETACH)
    except OSError:
        return False  # still correct: the sandbox's unmount or the pidfd watch ends us
    return True


def _join(pid: int) -> None:
    """Enter the sandbox's user and mount namespaces (this process is single-threaded:
    importing pyfuse3 starts no thread) and become root there."""
    if len(os.listdir("/proc/self/task")) != 1:
        raise RuntimeError("the fuse server has threads; it cannot join a user namespace")
    user = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    mnt = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    sc.setns(user, sc.CLONE_NEWUSER)
    sc.setns(mnt, sc.CLONE_NEWNS)
    os.close(user)
    os.close(mnt)
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError:
        pass


# -- the early start of `rl run` ------------------------------------------------------------

_EARLY: Prestarted | None = None

# `rl run` options that take a value (the rest are flags). Only used to find -d before
# click is imported (importing it here would cost what the early fork saves);
# tests/test_code_quality.py derives this set from the click command and compares.
_VALUED = {"--name", "-e", "--env", "--env-file", "-w", "--workdir", "-u", "--user",
           "--entrypoint", "-h", "--hostname", "-l", "--label", "--userns", "--cap-add",
           "--cap-drop", "--ulimit", "--security-opt", "--network", "--net", "-v",
           "--volume", "--mount", "--tmpfs", "-p", "--publish", "--network-alias", "--pull",
           "-m", "--memory", "--cpus", "--restart",
           "--health-cmd", "--health-interval", "--health-timeout", "--health-retries",
           "--health-start-period", "--health-start-interval", "--add-host", "--dns",
           "--dns-search", "--dns-option", "--expose", "--stop-signal", "--stop-timeout",
           "--cidfile", "--group-add", "--label-file", "--shm-size", "--sysctl", "--device",
           "--memory-swap", "--memory-reservation", "--cpu-shares", "--cpu-quota",
           "--cpu-period", "--cpuset-cpus", "--cpuset-mems", "--pids-limit", "--blkio-weight",
           "--device-cgroup-rule", "-a", "--attach", "--detach-keys", "--sig-proxy", "--pid",
           "--ipc", "--uts", "--ip", "--ip6", "--mac-address", "--volumes-from", "--platform",
           "--log-driver", "--log-opt"}


def _wants_early(args: list[str]) -> bool:
    backend = os.environ.get(BACKEND_ENV, "").strip() or "fuse_overlay"
    if backend != "fuse_overlay":
        return False
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--" or not a.startswith("-") or a == "-":
            break
        if a in ("-d", "--detach"):
            return False  # detached: the monitor, not this process, runs it
        if a == "--help":
            return False
        if a.startswith("--"):
            if a in _VALUED:
                i += 1
        else:  # short flags, maybe combined (-it, -dp 80:80, -e=X): the first valued one
            for j, c in enumerate(a[1:], 1):  # takes the rest of the word, or the next one
                if c == "d":
                    return False
                if "-" + c in _VALUED:
                    if j == len(a) - 1:
                        i += 1
                    break
        i += 1
    return True


def start_for_run(args: list[str]) -> None:
    """Fork the fuse server now if this `rl run` will serve its rootfs with fuse_overlay
    and no warm zygote (rootless.runtime.zygote) will."""
    global _EARLY
    if _EARLY is None and _wants_early(args):
        from rootless.runtime import zygote

        try:
            if zygote.available():
                return
        except Exception:
            pass
        _EARLY = fork_server()


def take() -> Prestarted | None:
    global _EARLY
    p, _EARLY = _EARLY, None
    return p


def discard() -> None:
    p = take()
    if p is not None:
        p.kill()

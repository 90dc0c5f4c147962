"""A detached container's long-lived processes, re-executed as lean interpreters.

The monitor of `rl run -d` is a fork of the CLI, and the sandbox a fork of the monitor:
each carries every page of click, the engine, sqlite and the image store (~10 MiB PSS
each) although, once the container runs, all they do is wait. Once the container's
command runs, each execs `python -I -S` with just what its wait needs:

- the sandbox (`waiter_main`): wait for pid 1, report its wait status on the status pipe,
  then unmount the rootfs and stop a fuse server that is its child;
- the monitor (`monitor_main`): rootless.runtime.monitor's loop (log, pty, signals) on the
  fds it kept, then, once the container exited, the engine's bookkeeping
  (rootless.engine.running.finish_detached: slirp4netns, exit code, --rm), and
  serves the attach socket (rootless.runtime.attachsock);
- and the fuse server zygote (rootless.runtime.zygote) starts from here, not as a fork of
  the `rl run` that spawned it, so the servers it forks share only what serving needs.

The first start of a detached container, when the zygote answers, has a monitor the
zygote forked instead (rootless/runtime/monitorfork.py): it runs `monitor_main` with the
same arguments, handed over on a socket instead of an exec's argv.

Both keep their pid (rl ps/stop find the monitor by pid and start time), their children
(pid 1, slirp4netns, a fuse server) and PR_SET_PDEATHSIG. The heavy imports of the end
happen after the container exited, when memory no longer counts. This module imports
only os and sys: it is the whole steady state of both.
"""

import os
import sys

_BOOT = ("import sys; sys.path[:0] = sys.argv[1].split('\\n'); "
         "from rootless.runtime import lean; lean.{}(sys.argv[2:])")


def _argv(entry: str, args: list[str]) -> list[str]:
    import rootless

    root = os.path.dirname(os.path.dirname(os.path.abspath(rootless.__file__)))
    path = [root] + [p for p in sys.path if p and p != root]
    return [sys.executable, "-I", "-S", "-c", _BOOT.format(entry), "\n".join(path), *args]


def entry_argv(entry: str, args: list[str]) -> list[str]:
    """The command line of a fresh interpreter running this module's `entry(args)` (for
    subprocess, from a caller with threads that must not fork)."""
    return _argv(entry, args)


def exec_entry(entry: str, args: list[str], keep: list[int]) -> None:
    """Exec `python -I -S` running this module's `entry(args)`, keeping fds `keep`."""
    for fd in keep:
        os.set_inheritable(fd, True)
    os.execv(sys.executable, _argv(entry, args))


def _entry(name: str):
    """The function named `module:function`: the work after a container's end and the
    health check are the engine's, handed to this lower layer by name (never imported
    from here: rootless/runtime sits below rootless/engine)."""
    import importlib

    module, _, func = name.partition(":")
    return getattr(importlib.import_module(module), func)


def zygote_main(args: list[str]) -> None:
    from rootless.runtime import zygote

    try:
        zygote._main(zygote.socket_path())  # from the environment: no path in our argv
    except Exception as exc:  # its stderr is /dev/null: the traceback goes to rl.log
        from rootless import crashlog

        crashlog.record(exc, "fuse server zygote")


def health_main(args: list[str]) -> None:
    """One health check of a container (started by its monitor's HealthTimer with the
    check's `module:function` and the container id): exit 0 when it is healthy after it,
    1 when not, 2 when the check could not be run."""
    probe, cid = args
    try:
        from rootless.errors import RlError

        try:
            status = _entry(probe)(cid)
        except RlError:  # stopped or removed meanwhile: nothing to record
            os._exit(2)
    except BaseException as exc:  # a bug: its stderr is /dev/null, the traceback to rl.log
        from rootless import crashlog

        crashlog.record(exc, f"health check of container {cid[:12]}")
        os._exit(2)
    os._exit(0 if status == "healthy" else 1)


def call_main(args: list[str]) -> None:
    """A fresh interpreter started by a caller with threads, which must not fork (a
    detached monitor: rootless.engine.running._start_detached; an exec, which must be
    single-threaded to setns: rootless.engine.execs): `module:function` and its
    arguments (strings). The function is the engine's, named here, never imported
    (rootless/runtime sits below rootless/engine)."""
    _entry(args[0])(*args[1:])


def wait_child(pid: int) -> int | None:
    """The wait status of our child `pid` (None if it was reaped elsewhere)."""
    while True:
        try:
            done, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return None
        if done == pid:
            return status


def server_gone(pidfd: int, timeout: float = 2.0) -> None:
    """Wait until the fuse server (a pidfd; not our child) exited, which it does once
    the container's last process is gone (the end of its FUSE connection); kill it after
    `timeout`, so that a container's end leaves nothing running. Closes pidfd."""
    import _signal as signal  # see monitor.py
    import select

    try:
        if not select.select([pidfd], [], [], timeout)[0]:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except OSError:
                return
            select.select([pidfd], [], [], 5.0)
    finally:
        os.close(pidfd)


# -- the sandbox ---------------------------------------------------------------------------

def exec_waiter(pid1: int, status_w: int, backend: str, mountpoint: str,
                server_pid: int | None, peer_pid: int | None) -> None:
    """In the sandbox, once pid 1 runs its command: become the lean waiter."""
    exec_entry("waiter_main", [str(pid1), str(status_w), backend, mountpoint,
                               str(server_pid or 0), str(peer_pid or 0)], [status_w])


def waiter_main(args: list[str]) -> None:
    pid1, status_w, backend, mountpoint, server_pid, peer_pid = args
    pid1, status_w = int(pid1), int(status_w)
    while True:
        done, status = os.waitpid(pid1, 0)
        if done == pid1:
            break
    from rootless.trace import trace

    trace("S P exited")
    os.write(status_w, f"X {status}\n".encode())
    from rootless.runtime import rootfs

    server = rootfs.Server(backend)
    server.pid = int(server_pid) or None
    server.peer_pid = int(peer_pid) or None
    server.stop(rootfs.RootfsSpec([], "", "", mountpoint, backend=backend))


# -- the monitor ---------------------------------------------------------------------------

class _Started:
    """What monitor.run_loop needs of a started sandbox.Launch, rebuilt from fds. Folded
    (the sandbox exited once pid 1 ran: rootless/runtime/sandbox.py), `status` is
    "pFD:SERVERFD": pidfds of pid 1, our child, and of the fuse server; else the fd of
    the status pipe, on which the waiter writes pid 1's wait status."""

    def __init__(self, sandbox_pid: int, status: str, pty_master: int | None,
                 pid1: int) -> None:
        self.sandbox_pid = sandbox_pid
        self.folded = status.startswith("p")
        fd, _, server = status.lstrip("p").partition(":")
        self.status_fd = int(fd)
        self.server_fd = int(server) if server else None
        self.pid1 = pid1
        self.pty_master = pty_master
        self.exit_status = None
        self._buf = b""

    def read_exit(self):
        if self.folded:
            self.exit_status = wait_child(self.pid1)
            return self.exit_status
        while True:
            while b"\n" not in self._buf:
                chunk = os.read(self.status_fd, 4096)
                if not chunk:
                    return None
                self._buf += chunk
            line, self._buf = self._buf.split(b"\n", 1)
            if line.startswith(b"X "):
                self.exit_status = int(line[2:])
                return self.exit_status

    def wait(self) -> int:
        from rootless.runtime import exitcode

        status = self.exit_status if self.exit_status is not None else self.read_exit()
        if self.folded and self.server_fd is not None:
            server_gone(self.server_fd)
            self.server_fd = None
        try:  # folded, reaped already
            if self.sandbox_pid > 0:
                os.waitpid(self.sandbox_pid, 0)
        except ChildProcessError:
            pass
        return 137 if status is None else exitcode.from_status(status)


def exec_monitor(*, container_id: str, log_path: str, launch, wiring, pid1: int,
                 pending: list[int], net: str, blocked: set[int], after_exit: str,
                 health: str = "", hub=None, handover=None) -> bool:
    """In a detached monitor, once the container runs: become the lean monitor. The
    caller blocked the forwarded signals (`blocked`) so none is lost across the exec;
    `pending` are those caught before; `net` says what to stop at the end, which
    `after_exit` (`module:function`, called as f(cid, exit code, net, error)) does;
    `hub`: the attach socket and the clients connected so far
    (rootless.runtime.attachsock). With `handover` (a monitor the zygote forked, which
    is pid 1's parent: rootless/runtime/monitorfork.py), the same arguments and fds go
    to it instead, and this returns True: the caller exits."""
    fds = [launch.status_fd]
    status = str(launch.status_fd)
    if launch.exit_fd is not None:  # folded: a pidfd of pid 1, our child, and the server's
        status = f"p{launch.exit_fd}:{launch.server_fd if launch.server_fd is not None else ''}"
        if launch.server_fd is not None:
            fds.append(launch.server_fd)
    opt = {"out": wiring.out_r, "err": wiring.err_r, "pty": launch.pty_master,
           "in": wiring.in_w}
    fds += [fd for fd in opt.values() if fd is not None]
    args = [container_id, log_path, str(launch.sandbox_pid or 0), status, str(pid1),
            ",".join(f"{k}={v}" for k, v in opt.items() if v is not None),
            ",".join(map(str, pending)), ",".join(str(int(s)) for s in blocked), net,
            health, after_exit]
    if hub is not None:
        args += hub.handover_args()
        fds += hub.handover_fds()
    fds += _net_fds(net)
    if handover is not None:
        handover.hand_over(args, fds)
        return True
    exec_entry("monitor_main", args, fds)
    return False


def _net_fds(net: str) -> list[int]:
    """slirp4netns's exit fd stays open across the exec (it exits when the fd closes), and
    so do the port proxy's listeners and namespace fds (rootless.network.proxy)."""
    import json

    state = json.loads(net)
    slirp = state.get("slirp", {})
    fds = [fd for fd in (slirp.get("exit_w"), slirp.get("pidfd")) if fd is not None]
    if "proxy" in state:
        from rootless.network import proxy

        fds += proxy.Proxy.adopt(state["proxy"]).fds()
    return fds


def monitor_main(args: list[str], env: dict | None = None) -> None:
    """The lean monitor (its arguments: exec_monitor's). `env`: the environment of the
    `rl` that started the container, if it is not ours (a monitor the zygote forked:
    rootless/runtime/monitorfork.py): for the health checks, and ours once the container
    ended, for the engine's work then."""
    import _signal as signal  # see monitor.py

    from rootless.runtime import monitor

    (cid, log_path, sandbox_pid, status_fd, pid1, opt, pending, blocked, net, health,
     after_exit) = args[:11]
    proxy = None
    if '"proxy"' in net:  # --network slirp4netns:port_handler=proxy: ours to serve
        from rootless.network.proxy import take_handed_over

        try:
            proxy = take_handed_over(net)
        except Exception as exc:  # the container runs on; its ports do not answer
            from rootless import crashlog

            crashlog.record(exc, f"port proxy of container {cid[:12]}")
    fds = dict(kv.split("=") for kv in opt.split(",") if kv)
    fds = {k: int(v) for k, v in fds.items()}
    wiring = monitor.Wiring((0, 1, 2), fds.get("out"), fds.get("err"), tty="pty" in fds,
                            in_w=fds.get("in"))
    hub = None
    if len(args) >= 14:
        from rootless.runtime import attachsock

        listen_fd, path, clients = args[11:14]
        for fd in [listen_fd, *clients.split(",")]:
            if fd:
                os.set_inheritable(int(fd), False)
        hub = attachsock.Hub(int(listen_fd), path, [int(fd) for fd in clients.split(",") if fd])
    launch = _Started(int(sandbox_pid), status_fd, fds.get("pty"), int(pid1))
    if launch.folded and launch.sandbox_pid > 0:  # it exits: no zombie while the container runs
        try:
            os.waitpid(launch.sandbox_pid, 0)
        except ChildProcessError:
            pass
    forwarder = monitor.Forwarder()
    forwarder.pending.extend(int(s) for s in pending.split(",") if s)
    forwarder.install()
    # Signals that came during the exec were kept pending by the mask: handled now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [int(s) for s in blocked.split(",") if s])
    pid1 = int(pid1)

    def send(sig: int) -> None:
        try:
            os.kill(pid1, sig)
        except ProcessLookupError:
            pass
        except PermissionError:  # it runs as a subordinate id: from inside its user ns
            from rootless.runtime import join

            try:
                join.kill(pid1, sig)
            except (ProcessLookupError, PermissionError):
                pass

    timer = None
    if health:  # the container has a health check: its schedule runs in this loop
        from rootless.runtime.healthtimer import HealthTimer

        timer = HealthTimer(cid, health, env)
    code, error = None, None
    try:
        code = monitor.run_loop(launch, wiring, log_path=log_path, attach=False,
                                interactive=False, send_signal=send, forwarder=forwarder,
                                timer=timer, hub=hub, proxy=proxy)
    except BaseException as exc:
        error = exc
    if proxy is not None:  # the ports close before the exit is recorded
        proxy.stop()
    forwarder.restore()
    # the attach clients get the exit code once it is recorded (and, with --rm, the
    # container removed): a client's next verb sees what it saw
    on_recorded = (lambda: hub.finish(code)) if hub is not None else None
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    try:
        _entry(after_exit)(cid, code, net, error, on_recorded=on_recorded)
    finally:
        if hub is not None:
            hub.finish(code)
    os._exit(0)

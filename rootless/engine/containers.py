"""Containers as verbs: create, run, start, stop, kill, restart, rm, ps, logs, wait,
inspect, exec, top, cp, prune, unshare. Every front end calls these, by this module's
names; the code lives along its seams:

- the stored record (the `containers` table, `Container`, lookup): rootless/store/containerdb.py
- create and the bundle: rootless/engine/create.py
- stop, kill, wait, restart, update, rm, prune, rename: rootless/engine/lifecycle.py
- ps, logs, inspect, top: rootless/engine/ctrinfo.py
- cp: rootless/engine/ctrcopy.py
- here: start and run, the monitor (foreground, detached, lean), exec, unshare.

A running container has a monitor process (the `rl run` process itself in the
foreground, a detached double-forked one otherwise); its pid and start time are in the
row (rootless/store/containerdb.py).
"""

from __future__ import annotations

import os
import signal
import time

from rootless.engine import events
from rootless.engine.create import check_unsupported as _check_unsupported
from rootless.engine.create import check_workdir as _check_workdir
from rootless.engine.create import create
from rootless.engine.ctrcopy import copy_from, copy_to
from rootless.engine.ctrinfo import (
    _ago,
    container_doc,
    inspect,
    list_containers,
    logs,
    top,
    upper_size,
)
from rootless.engine.ctrinfo import maps_of as _maps_of
from rootless.engine.ctrinfo import running_container as _running
from rootless.engine.lifecycle import (
    STOP_TIMEOUT,
    kill,
    parse_signal,
    prune,
    remove,
    rename,
    restart,
    stop,
    update,
    wait,
)
from rootless.engine.lifecycle import remove_files as _remove_files
from rootless.engine.lifecycle import set_manual_stop as _set_manual_stop
from rootless.engine.spec import RunOptions
from rootless.errors import InvalidArgument, NotFound, RlError
from rootless.store import catalog, paths
from rootless.store.containerdb import Container, containers_dir, lookup
from rootless.store.containerdb import db as _db
from rootless.store.containerdb import proc_start as _proc_start

# The facade: every verb of a container by the name front ends use (the code of most is
# in the modules above; the names with _ are for this module's own code, and _ago for the
# CLI's ps).
__all__ = [
    "STOP_TIMEOUT", "Container", "RunOptions", "_ago", "container_doc", "containers_dir",
    "copy_from", "copy_to", "create", "exec_", "finish_detached", "inspect", "kill",
    "list_containers", "logs", "lookup", "parse_signal", "prune", "relaunch", "remove",
    "rename", "restart", "run", "start", "stop", "top", "unshare", "update", "upper_size",
    "wait",
]



def _detach_from_caller() -> None:
    """In a forked child: a new session, a grandchild (the caller reaps the child at
    once), stdio on /dev/null, / as cwd, SIGHUP ignored: a process that outlives `rl`."""
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.chdir("/")
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


# -- start and run ------------------------------------------------------------------------

def _namespaces(network: str) -> set[str]:
    kinds = {"pid", "ipc", "uts"}
    if network != "host" and not network.startswith("container:"):
        kinds.add("network")
    return kinds


def _launch(c_options: dict, maps, wiring, early=None, lean: bool = False):
    from rootless.engine import netwire
    from rootless.runtime import rootfs
    from rootless.runtime.sandbox import Launch

    try:  # --network container:NAME: its pid 1 (which must run); --network NAME: holder
        join_pid = netwire.join_pid(c_options.get("network"))
        holder = netwire.holder_for(c_options.get("network"))
    except BaseException:
        if early is not None:
            early.kill()
        raise
    return Launch(maps=maps, backend=rootfs.default_backend(), join_pid=join_pid, holder=holder,
                  namespaces=_namespaces(c_options.get("network", "slirp4netns")),
                  stdio=wiring.stdio, terminal=wiring.tty, early=early, lean=lean)


def _set_running(c: Container, pid: int) -> None:
    with _db() as conn, catalog.transaction(conn):
        conn.execute("UPDATE containers SET state='running', monitor_pid=?, monitor_start=?,"
                     " pid=?, started=?, exit_code=NULL, finished=NULL WHERE id=?",
                     (os.getpid(), _proc_start(os.getpid()), pid, time.time(), c.id))
        if c.options.get("healthcheck"):
            from rootless.engine import health

            health.reset(conn, c.id, c.options["healthcheck"])
    events.container("start", c)


def _set_exited(c: Container, code: int | None) -> None:
    from rootless.runtime.sandbox import trace

    trace(f"set exited {code}")
    with _db() as conn, catalog.transaction(conn):
        conn.execute("UPDATE containers SET state='exited', pid=NULL, exit_code=?,"
                     " finished=? WHERE id=?", (code, time.time(), c.id))
    events.container("die", c, exitCode="" if code is None else code)


def _drive(c: Container, launch, wiring, *, attach: bool, log: bool,
           on_started=None, ending: list | None = None) -> int:
    """Start the forked sandbox on c's bundle and monitor it to the end. Returns the exit
    code; raises RlError when the container could not start. With `ending`, a
    slirp4netns that was told to exit is put there for the caller to stop() (reap) after
    its own work, instead of waiting for it here: its exit is slow."""
    from rootless.runtime import join, monitor
    from rootless.runtime.sandbox import trace

    for fd in wiring.close_after_fork:
        os.close(fd)
    slirp: list = []

    def before_go(sandbox_pid: int) -> None:
        from rootless.engine import netwire

        sock = str(paths.runtime_dir(create=True) / f"slirp-{c.short_id}.sock")
        trace("M network")
        s = netwire.start(c.options, sandbox_pid, sock, c)  # slirp4netns/veth + ports
        trace("M network ready")
        if s is not None:
            slirp.append(s)

    forwarder = monitor.Forwarder()
    forwarder.install()
    try:
        launch.start(c.dir, before_go=before_go)
    except RlError as exc:
        forwarder.restore()
        for s in slirp:
            s.stop()
        _set_exited(c, exc.exit_code)
        raise
    _set_running(c, launch.pid)

    def network_end() -> None:  # slirp4netns takes ~16 ms to exit: start it now
        for s in slirp:
            if hasattr(s, "terminate"):
                s.terminate()

    launch.on_exit = network_end
    if on_started is not None:
        on_started()
    if not attach:
        _become_lean(c, launch, wiring, forwarder, slirp)  # returns only if that failed

    def send(sig: int) -> None:
        try:
            join.kill(launch.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    try:
        timer = None
        if c.options.get("healthcheck"):
            from rootless.runtime.healthtimer import HealthTimer

            timer = HealthTimer(c.id, _health_timer_args(c))
        code = monitor.run_loop(launch, wiring, log_path=str(c.dir / "ctr.log") if log else None,
                                attach=attach, interactive=bool(c.options.get("interactive")),
                                send_signal=send, forwarder=forwarder, timer=timer)
    finally:
        forwarder.restore()
        for s in slirp:
            if ending is not None and hasattr(s, "terminate"):
                s.terminate()
                ending.append(s)
            else:
                s.stop()
    if not c.options.get("rm"):  # otherwise the row is about to go
        _set_exited(c, code)
    trace(f"M recorded exit code {code}")
    return code


def _become_lean(c: Container, launch, wiring, forwarder, stoppers: list) -> None:
    """A detached monitor, its container started: exec the lean monitor
    (rootless.runtime.lean), which keeps this pid, the fds and the children, and calls
    finish_detached at the end. The forwarded signals stay blocked across the exec, so
    none is lost nor kills the new interpreter before it has its handlers."""
    import json

    from rootless.runtime import lean, monitor

    net: dict = {}
    for s in stoppers:
        if hasattr(s, "handover"):
            net["slirp"] = s.handover()
        else:
            net["endpoint"] = True
    blocked = set(monitor.FORWARDED)
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        lean.exec_monitor(container_id=c.id, log_path=str(c.dir / "ctr.log"), launch=launch,
                          wiring=wiring, pid1=launch.pid, pending=list(forwarder.pending),
                          net=json.dumps(net), blocked=blocked, health=_health_timer_args(c),
                          after_exit="rootless.engine.containers:finish_detached")
    except OSError:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)  # go on in this process


def _health_timer_args(c: Container) -> str:
    hc = c.options.get("healthcheck")
    if not hc:
        return ""
    from rootless.engine import health

    return health.timer_args(hc)


def finish_detached(cid: str, code: int | None, net: str, error: BaseException | None) -> None:
    """The end of a lean monitor (rootless.runtime.lean): what _drive and _start_detached
    do after the container exited."""
    import json

    from rootless.errors import NotFound

    try:
        c = lookup(cid)
    except NotFound:
        return
    state = json.loads(net)
    try:
        if "slirp" in state:
            from rootless.network import slirp

            slirp.Slirp.adopt(state["slirp"]).stop()
        if state.get("endpoint"):
            from rootless.engine import netwire

            netwire.endpoint_of(c).stop()
        if error is None and not c.options.get("rm"):
            _set_exited(c, code)
    except BaseException as exc:
        error = exc
    finally:
        if error is not None:
            _monitor_log(c, error)
        if c.options.get("rm"):
            _remove_files(c, volumes=True)
    if error is None and c.options.get("restart"):
        from rootless.engine import restart

        restart.after_exit(c.id, code)


def relaunch(cid: str) -> int | None:
    """In a detached monitor (rootless/engine/restart.py): start the container again and
    become its lean monitor (so this returns only if that exec failed, with the exit code
    once the container ended). None, and the reason in monitor.log, if it did not start."""
    from rootless.runtime import monitor

    try:
        c = lookup(cid)
    except NotFound:
        return None
    try:
        wiring = monitor.wire(mode="detached", interactive=False,
                              tty=bool(c.options.get("tty")))
        launch = _launch(c.options, _maps_of(c), wiring, lean=True)
        launch.fork()
        return _drive(c, launch, wiring, attach=False, log=True)
    except RlError as exc:
        _monitor_log(c, exc)
        return None


def _continue_detached(c: Container, code: int) -> None:
    """A foreground `rl run`/`rl start -a` whose container exited and whose restart
    policy restarts it: the restarts go on under a detached monitor (as Docker's client
    returns while the daemon restarts the container)."""
    from rootless.engine import restart

    c = lookup(c.id)
    if not restart.wants_restart(c.options.get("restart"), code, c.restart_count,
                                 bool(c.manual_stop)):
        return
    pid = os.fork()
    if pid == 0:
        try:
            _detach_from_caller()
            restart.after_exit(c.id, code)
        except BaseException as exc:
            _monitor_log(c, exc)
        os._exit(0)
    os.waitpid(pid, 0)


def run(opts: RunOptions) -> int | str:
    """`rl run`: the exit code (foreground) or the container id (detached)."""
    from rootless.runtime import early, monitor, userns

    try:
        _check_unsupported(opts)
    except BaseException:
        early.discard()
        raise
    if opts.detach:
        early.discard()
        c = create(opts)
        try:
            _start_detached(c)
        except RlError as exc:
            _forget_unstarted(c, exc)
            raise
        _warm_up()
        return c.id
    maps = userns.plan(opts.userns == "keep-id")
    direct = opts.rm and not opts.tty
    wiring = monitor.wire(mode="direct" if direct else "pipes", interactive=opts.interactive,
                          tty=opts.tty)
    # The fuse server `rl` forked before parsing (rootless.runtime.early), if any.
    launch = _launch({"network": opts.network}, maps, wiring, early=early.take())
    # Fork the sandbox now: its fuse server imports pyfuse3 while we resolve the image
    # and write the bundle.
    launch.fork()
    try:
        c = create(opts, maps=maps)
    except BaseException:
        launch.abort()
        for fd in wiring.close_after_fork:
            os.close(fd)
        raise
    ending: list = []
    try:
        code = _drive(c, launch, wiring, attach=True, log=not direct, ending=ending)
        if not opts.rm:
            _continue_detached(c, code)
        return code
    except RlError as exc:
        if not opts.rm:  # otherwise removed below
            _forget_unstarted(c, exc)
        raise
    finally:
        from rootless.runtime.sandbox import trace

        trace("M driven")
        if opts.rm:
            _remove_files(c, volumes=True)
        for s in ending:
            s.stop()
        trace("M removed")
        _warm_up()


def _forget_unstarted(c: Container, exc: RlError) -> None:
    """`rl run` made `c` and could not start it for a reason of rl or the host (exit 125):
    remove it, so the error leaves nothing behind. A command that is not found or not
    executable (126, 127) keeps its exited container, as Docker does."""
    if exc.exit_code == 125:
        _remove_files(c, volumes=True)


def _warm_up() -> None:
    """After a container ran (so that its start did not pay for it): start the fuse
    server zygote for the next ones, if fuse_overlay serves root filesystems."""
    from rootless.runtime import rootfs

    if rootfs.default_backend() != "fuse_overlay":
        return
    from rootless.runtime import zygote

    try:
        zygote.spawn()
    except OSError:
        pass


def _start_detached(c: Container) -> None:
    """Start `c` under a monitor that outlives this process (setsid, double fork)."""
    from rootless.runtime import monitor

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        pipe = [w]
        try:
            os.close(r)
            _detach_from_caller()
            wiring = monitor.wire(mode="detached", interactive=False,
                                  tty=bool(c.options.get("tty")))
            launch = _launch(c.options, _maps_of(c), wiring, lean=True)

            # pipe[0] is -1 once closed: its number may be reused by then.
            def started() -> None:
                os.write(pipe[0], b"ok")
                os.close(pipe[0])
                pipe[0] = -1

            launch.fork()
            try:
                _drive(c, launch, wiring, attach=False, log=True, on_started=started)
            finally:
                if c.options.get("rm"):
                    _remove_files(c, volumes=True)
        except BaseException as exc:
            code = exc.exit_code if isinstance(exc, RlError) else 125
            text = str(exc)
            if not isinstance(exc, RlError):  # a bug: the traceback to rl.log, not lost
                from rootless import crashlog

                logged = crashlog.record(exc, f"monitor of container {c.short_id}")
                text = f"internal error: {crashlog.summary(exc)}" + \
                    (f" (details in {logged})" if logged else "")
            if pipe[0] >= 0:
                try:
                    os.write(pipe[0], f"E {code} {text}".encode())
                except OSError:
                    pass
            else:  # already started: the CLI is gone, keep the reason
                _monitor_log(c, exc)
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    answer = b""
    while chunk := os.read(r, 4096):
        answer += chunk
    os.close(r)
    if answer == b"ok":
        return
    text = answer.decode(errors="replace")
    if text.startswith("E "):
        code, _, msg = text[2:].partition(" ")
        raise RlError(msg, exit_code=int(code) if code.isdigit() else 125)
    raise RlError("the container's monitor exited before the container started")


def _monitor_log(c: Container, exc: BaseException) -> None:
    import traceback

    try:
        with open(c.dir / "monitor.log", "a") as f:
            traceback.print_exception(exc, file=f)
    except OSError:
        pass


def start(ref: str, *, attach: bool = False) -> int | None:
    c = lookup(ref)
    if c.state in ("running", "restarting"):
        return None
    from rootless.runtime import rootfs

    rootfs.checked_backend()
    _set_manual_stop(c, False)
    if attach:
        from rootless.runtime import monitor

        wiring = monitor.wire(mode="pipes", interactive=bool(c.options.get("interactive")),
                              tty=bool(c.options.get("tty")))
        launch = _launch(c.options, _maps_of(c), wiring)
        launch.fork()
        try:
            code = _drive(c, launch, wiring, attach=True, log=True)
        finally:
            if c.options.get("rm"):
                _remove_files(c, volumes=True)
        _continue_detached(c, code)
        return code
    _start_detached(c)
    return None


# -- exec ---------------------------------------------------------------------------------

def exec_(ref: str, command: list[str], *, interactive: bool = False, tty: bool = False,
          user: str | None = None, workdir: str | None = None,
          env: list[str] | None = None, env_files: list[str] | None = None) -> int:
    from rootless.engine import spec as spec_mod
    from rootless.runtime import join, monitor

    if not command:
        raise InvalidArgument("rl exec needs a command")
    _check_workdir(workdir)
    c = _running(ref)
    spec = c.spec()
    process = dict(spec["process"])
    extra = []
    for f in env_files or []:
        extra += spec_mod.parse_env_file(f)
    extra += env or []
    process["env"] = spec_mod.merge_env(process["env"], extra + (["TERM=xterm"] if tty else []))
    process["args"] = list(command)
    process["terminal"] = tty
    if workdir:
        process["cwd"] = workdir
    from rootless.runtime import seccomp

    try:  # the filter of the container, compiled at its create (runtime/seccomp.py)
        bpf = seccomp.read_bundle(str(c.dir), spec)
    except seccomp.SeccompError as exc:
        raise RlError(str(exc)) from None
    sock_parent = sock_child = None
    if tty:
        import socket

        sock_parent, sock_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    pid = os.fork()
    if pid == 0:
        if not interactive:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
        if sock_parent is not None:
            sock_parent.close()
        join.exec_child(c.pid, spec, process,
                        tty_sock=sock_child.detach() if sock_child is not None else None,
                        user=user, seccomp_bpf=bpf)
    if sock_child is not None:
        sock_child.close()
    if not tty:
        from rootless.runtime import exitcode

        return exitcode.wait(pid)
    import socket

    _, fds, _, _ = socket.recv_fds(sock_parent, 16, 1)
    sock_parent.close()
    return monitor.run_exec_pty(pid, fds[0] if fds else None, interactive=interactive)


# -- unshare ------------------------------------------------------------------------------

def unshare(command: list[str]) -> int:
    from rootless.runtime import userns

    return userns.unshare(command)

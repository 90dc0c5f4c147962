"""Starting and running containers, and attaching to them: the monitor's life.

    run(opts, streams=None, *, sig_proxy=True, detach_keys=None, warn=None)
        -> RunResult(id, exit_code, warnings)
        create + start + attach; opts.detach: returns after the start (exit_code None).
        exit_code None also when the caller detached (detach keys on stdin).
    start(ref, *, attach=False) -> int | None
        detached start: the container runs under a monitor process of its own, which
        outlives the caller; returns once the command runs (RlError if it could not).
        `attach` (the CLI's `start -a`): then its output on fds 1/2 and its exit code.
    attach(ref, streams, *, logs=False, stream=True, detach_keys=None, stdin_once=True)
        -> int | None
        until the container exits (its exit code) or the detach keys come on stdin (None).
        A `created` container: waits for its start and loses none of its output. `logs`:
        this run's output so far first; `stream=False`: only that. `stdin_once`: EOF on
        the caller's stdin closes the container's (Docker's StdinOnce; ignored with a tty).
    resize(ref, rows, cols) -> None
        the container's terminal (a `-t` container).

Processes (docs/design.md section 4): a container's monitor is forked from the caller
only when the caller is single-threaded (the CLI: fork is the fast path); from a process
with threads (the API service), the monitor starts as a fresh interpreter
(rootless.runtime.lean call_main), and so does every other process the verbs make. No
verb here forks a multi-threaded caller, installs signal handlers in it or touches its fds
0/1/2 unless given them in `streams`. The foreground `rl run` without stdin keeps being
its container's monitor (rootless.runtime.monitor.run_loop in the CLI process: no
monitor process to start, the fastest `rl run --rm IMAGE true`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field

from rootless.engine import events
from rootless.engine.create import check_unsupported as _check_unsupported
from rootless.engine.create import create
from rootless.engine.ctrinfo import maps_of as _maps_of
from rootless.engine.lifecycle import remove_files as _remove_files
from rootless.engine.lifecycle import set_manual_stop as _set_manual_stop
from rootless.engine.spec import RunOptions
from rootless.engine.streams import Streams
from rootless.errors import Conflict, NotFound, RlError
from rootless.store import catalog, containerdb, paths
from rootless.store.containerdb import Container, lookup
from rootless.store.containerdb import db as _db
from rootless.store.containerdb import monitor_alive as _monitor_alive
from rootless.store.containerdb import proc_start as _proc_start


@dataclass
class RunResult:
    id: str
    exit_code: int | None  # None: detached (opts.detach, or the detach keys)
    warnings: list[str] = field(default_factory=list)  # what `warn` was given, in order


def _single_threaded() -> bool:
    """Is fork() safe here? (threading never imported: no thread was started by it.)"""
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def _launch(c_options: dict, maps, wiring, early=None, lean: bool = False,
            own_monitor: bool = False):
    from rootless.engine import netwire, nsflags
    from rootless.runtime import rootfs
    from rootless.runtime.sandbox import Launch

    try:  # --network/--pid/--ipc container:NAME: its pid 1 (which must run);
        # --network NAME: holder
        kinds, joins = nsflags.launch_plan(c_options, netwire.join_pid(c_options.get("network")))
        holder = netwire.holder_for(c_options.get("network"))
    except BaseException:
        if early is not None:
            early.kill()
        raise
    return Launch(maps=maps, backend=rootfs.default_backend(), joins=joins, holder=holder,
                  namespaces=kinds,
                  stdio=wiring.stdio, terminal=wiring.tty, early=early, lean=lean,
                  own_monitor=own_monitor)


def _set_running(c: Container, pid: int, monitor_pid: int) -> None:
    with _db() as conn, catalog.transaction(conn):
        containerdb.update(conn, c.id, state="running", monitor_pid=monitor_pid,
                           monitor_start=_proc_start(monitor_pid), pid=pid,
                           started=time.time(), exit_code=None, finished=None)
        if c.options.get("healthcheck"):
            from rootless.engine import health

            health.reset(conn, c.id, c.options["healthcheck"])
    events.container("start", c)


def _set_exited(c: Container, code: int | None) -> None:
    """Record the exit and write the die event; an --rm container's row is about to go,
    so it gets the event only (then destroy), as Docker's."""
    from rootless.runtime.sandbox import trace

    trace(f"set exited {code}")
    if not c.options.get("rm"):
        with _db() as conn, catalog.transaction(conn):
            containerdb.update(conn, c.id, state="exited", pid=None, exit_code=code,
                               finished=time.time())
    events.container("die", c, exitCode="" if code is None else code)


def _drive(c: Container, launch, wiring, *, attach: bool, log: bool,
           on_started=None, ending: list | None = None, hub_fds=(),
           stdio: tuple = (0, 1, 2)) -> int:
    """Start the forked sandbox on c's bundle and monitor it to the end. Returns the exit
    code; raises RlError when the container could not start. With `ending`, a
    slirp4netns that was told to exit is put there for the caller to stop() (reap) after
    its own work, instead of waiting for it here: its exit is slow. With a log, the
    attach socket listens from before the start (`hub_fds`: clients connected already,
    rootless/runtime/attachsock.py); `attach`: the output goes to the `stdio` fds too."""
    from rootless.runtime import join, monitor
    from rootless.runtime.sandbox import trace

    for fd in wiring.close_after_fork:
        os.close(fd)
    slirp: list = []
    hub = _listen(c, hub_fds) if log else None

    def before_go(sandbox_pid: int) -> None:
        from rootless.engine import cgroups, netwire

        # the sandbox into the container's cgroup before it forks pid 1: every process of
        # the container descends from it (a no-op without cgroup v2 delegation)
        cgroups.join(c.short_id, c.options.get("limits"), sandbox_pid)
        sock = str(paths.runtime_dir(create=True) / f"slirp-{c.short_id}.sock")
        trace("M network")
        try:
            slirp.extend(netwire.start(c.options, sandbox_pid, sock, c))  # slirp4netns/veth
        finally:                                                          # + ports
            if launch.holder is not None:
                netwire.holder_used(launch.holder)
        trace("M network ready")

    forwarder = monitor.Forwarder()
    forwarder.install()
    try:
        launch.start(c.dir, before_go=before_go)
    except RlError as exc:
        forwarder.restore()
        for s in slirp:
            s.stop()
        _set_exited(c, exc.exit_code)
        if hub is not None:
            hub.finish(None, grace=0)
        raise
    _set_running(c, launch.pid, launch.monitor_pid)

    def network_end() -> None:  # slirp4netns takes ~16 ms to exit: start it now
        for s in slirp:
            if hasattr(s, "terminate"):
                s.terminate()

    launch.on_exit = network_end
    if on_started is not None:
        on_started()
    # A detached monitor becomes lean (its memory is what an idle container costs), but
    # not one with attach clients from before the start: that is a foreground run from
    # another process (the API's `docker run`, `rl run -i`), whose monitor stays whole as
    # `rl run`'s own does, so its end imports nothing (the lean one imports the engine
    # after the exit: ~100 ms that the client waits for).
    foreground = not attach and bool(hub_fds)
    if not attach and not foreground:
        _become_lean(c, launch, wiring, forwarder, slirp, hub)  # returns only if that failed

    # port_handler=proxy: this process serves the published ports (network/proxy.py)
    proxy = next((s for s in slirp if getattr(s, "handover_key", "") == "proxy"), None)
    if proxy is not None:
        proxy.start()

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
        code = monitor.run_loop(launch, wiring, log_path=_log_target(c) if log else None,
                                attach=attach, interactive=bool(c.options.get("interactive")),
                                send_signal=send, forwarder=forwarder, timer=timer, hub=hub,
                                stdio=stdio, proxy=proxy)
    finally:
        forwarder.restore()
        for s in slirp:
            if ending is not None and hasattr(s, "terminate"):
                s.terminate()
                ending.append(s)
            else:
                s.stop()
    _set_exited(c, code)
    trace(f"M recorded exit code {code}")
    if foreground and c.options.get("rm"):
        # as finish_detached: removed before the clients get the exit code, so that a
        # client's next verb (the API's wait for "removed") sees it gone
        _remove_files(c, volumes=True)
    if hub is not None:
        hub.finish(code)
    if foreground and c.options.get("restart"):
        from rootless.engine import restart

        restart.after_exit(c.id, code)
    return code


def _listen(c: Container, client_fds=()):
    """The container's attach socket (rootless/runtime/attachsock.py)."""
    from rootless.runtime import attachsock

    path = attachsock.socket_path(str(paths.runtime_dir(create=True)), c.id)
    return attachsock.Hub(attachsock.listen(path), path, client_fds)


def _become_lean(c: Container, launch, wiring, forwarder, stoppers: list, hub=None) -> None:
    """A detached monitor, its container started: exec the lean monitor
    (rootless.runtime.lean), which keeps this pid, the fds and the children, and calls
    finish_detached at the end. The forwarded signals stay blocked across the exec, so
    none is lost nor kills the new interpreter before it has its handlers."""

    from rootless.runtime import lean, monitor

    net: dict = {}
    for s in stoppers:
        if hasattr(s, "handover"):  # slirp4netns, the port proxy (network/proxy.py)
            net[getattr(s, "handover_key", "slirp")] = s.handover()
        else:
            net["endpoint"] = True
    blocked = set(monitor.FORWARDED)
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        if lean.exec_monitor(container_id=c.id, log_path=_log_target(c) or "", launch=launch,
                             wiring=wiring, pid1=launch.pid, pending=list(forwarder.pending),
                             net=json.dumps(net), blocked=blocked,
                             health=_health_timer_args(c),
                             after_exit="rootless.engine.running:finish_detached", hub=hub,
                             handover=launch.monitor):
            os._exit(0)  # the zygote's monitor has it (rootless/runtime/monitorfork.py)
    except OSError as exc:
        if launch.monitor is not None:  # the zygote's monitor failed: the container ends
            _lost_to_monitor(c, launch, stoppers, hub, exc)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)  # go on in this process


def _lost_to_monitor(c: Container, launch, stoppers: list, hub, exc: OSError) -> None:
    """The monitor the zygote forked did not take the container over (it is gone, and
    pid 1, its child, with it): end what is left, record the end, say why."""
    if launch.exit_fd is not None:  # pid 1, in case it was still before its PDEATHSIG
        try:
            signal.pidfd_send_signal(launch.exit_fd, signal.SIGKILL)
        except OSError:
            pass
    for s in stoppers:
        s.stop()
    if hub is not None:
        hub.finish(None, grace=0)
    _set_exited(c, None)
    raise RlError(f"container {c.short_id}: its monitor failed after the start: {exc}")


def _log_target(c: Container) -> str | None:
    from rootless.engine import runextras

    return runextras.log_target(c.options, str(c.dir / "ctr.log"))


def _health_timer_args(c: Container) -> str:
    hc = c.options.get("healthcheck")
    if not hc:
        return ""
    from rootless.engine import health

    return health.timer_args(hc)


def finish_detached(cid: str, code: int | None, net: str, error: BaseException | None,
                    on_recorded=None) -> None:
    """The end of a lean monitor (rootless.runtime.lean): what _drive and _start_detached
    do after the container exited. `on_recorded` is called once the exit is recorded (and
    an --rm container removed), before a restart policy starts it again."""

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
        if error is None:
            _set_exited(c, code)
    except BaseException as exc:
        error = exc
    finally:
        if error is not None:
            _monitor_log(c, error)
        if c.options.get("rm"):
            _remove_files(c, volumes=True)
        if on_recorded is not None:
            on_recorded()
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

    try:
        c = lookup(c.id)
    except NotFound:  # --rm: removed at its exit (no policy restarts an --rm container)
        return
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


# -- run ----------------------------------------------------------------------------------

def run(opts: RunOptions, streams: Streams | None = None, *, sig_proxy: bool = True,
        detach_keys: str | None = None, on_started=None, warn=None) -> RunResult:
    """`rl run`: see the module's docstring. Nothing is left behind when it raises (a
    command not found or not executable, 126/127, keeps its exited container, as Docker).
    `warn(text)`: as create()'s, called before the container starts; the result's
    `warnings` holds the same texts."""
    from rootless.runtime import early

    warnings: list[str] = []

    def noted(text: str) -> None:
        warnings.append(text)
        if warn is not None:
            warn(text)

    try:
        _check_unsupported(opts)
        if detach_keys is not None:
            from rootless.engine.streams import parse_detach_keys

            parse_detach_keys(detach_keys)
    except BaseException:
        early.discard()
        raise
    if opts.detach:
        early.discard()
        c = create(opts, warn=noted)
        try:
            _start_detached(c)
        except RlError as exc:
            _forget_unstarted(c, exc)
            raise
        # no warm_up() here: the detached monitor made sure a zygote runs before its
        # start (rootless.runtime.zygote.connect_or_spawn)
        return RunResult(c.id, None, warnings)
    streams = streams or Streams()
    # The caller's own fds, nothing to read for the container, and the caller may be the
    # monitor (signals forwarded by it): this process monitors the container itself.
    if (_single_threaded() and streams.all_fds() and sig_proxy
            and (not opts.interactive or streams.stdin is None)):
        return _run_here(opts, streams, noted, warnings)
    early.discard()
    c = create(opts, warn=noted)
    try:
        code = _start_attached(c, streams if opts.interactive else
                               Streams(None, streams.stdout, streams.stderr),
                               detach_keys=detach_keys, on_started=on_started)
    except RlError as exc:
        _forget_unstarted(c, exc)
        raise
    return RunResult(c.id, code, warnings)


def _run_here(opts: RunOptions, streams: Streams, warn, warnings: list[str]) -> RunResult:
    """The foreground run in this (single-threaded) process: it forks the sandbox and
    is the container's monitor."""
    from rootless.runtime import early, monitor, userns

    maps = userns.plan(opts.userns == "keep-id")
    direct = opts.rm and not opts.tty
    fds = streams.fds()
    wiring = monitor.wire(mode="direct" if direct else "pipes", interactive=False,
                          tty=opts.tty, fds=fds)
    # The fuse server `rl` forked before parsing (rootless.runtime.early), if any.
    from rootless.engine import nsflags

    launch = _launch(nsflags.launch_options(opts), maps, wiring, early=early.take())
    # Fork the sandbox now: its fuse server imports pyfuse3 while we resolve the image
    # and write the bundle.
    launch.fork()
    try:
        c = create(opts, maps=maps, warn=warn)
    except BaseException:
        launch.abort()
        for fd in wiring.close_after_fork:
            os.close(fd)
        raise
    ending: list = []
    try:
        code = _drive(c, launch, wiring, attach=True, log=not direct, ending=ending,
                      stdio=(None, fds[1], fds[2] if not opts.tty else None))
        if not opts.rm:
            _continue_detached(c, code)
        return RunResult(c.id, code, warnings)
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
        warm_up()


def _start_attached(c: Container, streams: Streams, *, detach_keys: str | None,
                    on_started=None, stdin_once: bool = True) -> int | None:
    """Start `c` under a monitor process of its own with this caller already its attach
    client (a socket pair handed over before the container runs: no output can come
    before it), then attach. The exit code, or None when detached."""
    import socket

    from rootless.engine import streams as streams_mod

    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    waiting = _take_pending(c.id)
    others = _other_waiters(c)
    try:
        try:
            _start_detached(c, [theirs] + [s for s, _ in waiting] + others)
        except BaseException:
            mine.close()
            raise
    finally:
        theirs.close()
        for s in others:
            s.close()
        for s, ev in waiting:
            s.close()
            ev.set()
    if on_started is not None:
        on_started(c.id)
    detached, code = streams_mod.session(mine, streams, tty=bool(c.options.get("tty")),
                                         replay=False, detach_keys=detach_keys,
                                         stdin_once=stdin_once)
    if detached:
        return None
    return code if code is not None else _exit_code_of(c.id)


def _exit_code_of(cid: str) -> int | None:
    """After an attach that ended without the monitor's word: the recorded exit."""
    try:
        c = lookup(cid)
    except NotFound:
        return None
    if c.state in ("running", "restarting") and _monitor_alive(c):
        from rootless.engine.lifecycle import _wait_exit

        _wait_exit(c, 10)
        try:
            c = lookup(cid)
        except NotFound:
            return None
    return c.exit_code if c.state == "exited" else None


def _forget_unstarted(c: Container, exc: RlError) -> None:
    """`rl run` made `c` and could not start it for a reason of rl or the host (exit 125):
    remove it, so the error leaves nothing behind. A command that is not found or not
    executable (126, 127) keeps its exited container, as Docker does."""
    if exc.exit_code == 125:
        _remove_files(c, volumes=True)


def warm_up() -> None:
    """After a container ran (so that its start did not pay for it; `rl run`, the API's
    start): start the fuse server zygote for the next ones, if fuse_overlay serves root
    filesystems and none runs (it idles out after 10 min)."""
    from rootless.runtime import rootfs

    if rootfs.default_backend() != "fuse_overlay":
        return
    from rootless.runtime import zygote

    try:
        zygote.spawn()
    except OSError:
        pass


def _monitor_log(c: Container, exc: BaseException) -> None:
    import traceback

    try:
        with open(c.dir / "monitor.log", "a") as f:
            traceback.print_exception(exc, file=f)
    except OSError:
        pass




# -- start --------------------------------------------------------------------------------

def start(ref: str, *, attach: bool = False, streams: Streams | None = None,
          detach_keys: str | None = None, on_started=None, attach_socks=()) -> int | None:
    """See the module's docstring. A running container: nothing (None). With `streams`
    (and attach): attached to those, as run() is (`rl start -ai`). `attach_socks`: the
    sockets of attach clients waiting in another process (take_pending in the API
    service, whose starts run in a single-threaded helper: the fast fork path)."""
    c = lookup(ref)
    if c.state in ("running", "restarting"):
        return None
    from rootless.runtime import rootfs

    rootfs.checked_backend()
    _set_manual_stop(c, False)
    if attach and streams is None and _single_threaded():
        from rootless.runtime import monitor

        wiring = monitor.wire(mode="pipes", interactive=False,
                              tty=bool(c.options.get("tty")))
        launch = _launch(c.options, _maps_of(c), wiring)
        launch.fork()
        others = [s.detach() for s in _other_waiters(c)]  # the hub owns them
        try:
            code = _drive(c, launch, wiring, attach=True, log=True, hub_fds=others)
        finally:
            if c.options.get("rm"):
                _remove_files(c, volumes=True)
        _continue_detached(c, code)
        return code
    if attach:
        if streams is None:
            streams = Streams(None, 1, 2)
        if not c.options.get("interactive"):
            streams = Streams(None, streams.stdout, streams.stderr)
        return _start_attached(c, streams, detach_keys=detach_keys, on_started=on_started)
    waiting = _take_pending(c.id)
    others = _other_waiters(c)
    try:
        _start_detached(c, [s for s, _ in waiting] + list(attach_socks) + others)
    finally:
        for s in others:
            s.close()
        for s, ev in waiting:
            s.close()
            ev.set()
    return None


def _other_waiters(c: Container) -> list:
    """Attach clients of other processes waiting for this start (engine/attachwait.py)."""
    from rootless.engine import attachwait

    return attachwait.connect_all(c.short_id)


def _start_detached(c: Container, attach_socks=()) -> None:
    """Start `c` under a monitor that outlives this process (setsid, double fork), with
    `attach_socks` (sockets) as attach clients from before the start; return once the
    command runs. Forked from a single-threaded caller; from one with threads, a fresh
    interpreter (rootless.runtime.lean.call_main: monitor_main) does the same."""
    fds = [s.fileno() for s in attach_socks]
    r, w = os.pipe()
    try:
        if _single_threaded():
            pid = os.fork()
            if pid == 0:
                os.close(r)
                monitor_process(c, w, fds)  # never returns
            os.close(w)
            w = -1
            os.waitpid(pid, 0)
        else:
            import subprocess

            from rootless.runtime import lean

            argv = lean.entry_argv("call_main", ["rootless.engine.running:monitor_main", c.id,
                                                 str(w), ",".join(map(str, fds))])
            child = subprocess.Popen(argv, pass_fds=[w, *fds], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd="/")
            os.close(w)
            w = -1
            child.wait()
        answer = b""
        while chunk := os.read(r, 4096):
            answer += chunk
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if answer == b"ok":
        return
    text = answer.decode(errors="replace")
    if text.startswith("E "):
        code, _, msg = text[2:].partition(" ")
        raise RlError(msg, exit_code=int(code) if code.isdigit() else 125)
    raise RlError("the container's monitor exited before the container started")


def monitor_main(cid: str, w: str, clients: str) -> None:
    """A detached monitor in a fresh interpreter (rootless.runtime.lean.call_main)."""
    monitor_process(cid, int(w), [int(fd) for fd in clients.split(",") if fd])


def monitor_process(c: Container | str, w: int, hub_fds=()) -> None:
    """The body of a detached monitor (a fork of the caller, or monitor_main): detach, start the container, write b"ok" (or "E CODE MESSAGE") on `w`,
    monitor it to the end. Never returns."""
    pipe = [w]
    try:
        if isinstance(c, str):
            c = lookup(c)
        _detach_from_caller()
        from rootless.runtime import monitor

        wiring = monitor.wire(mode="detached", interactive=bool(c.options.get("interactive")),
                              tty=bool(c.options.get("tty")))
        # a foreground run (clients from birth, see _drive): the sandbox stays whole too,
        # so that its end (unmount, stop the fuse server) imports nothing
        launch = _launch(c.options, _maps_of(c), wiring, lean=not hub_fds,
                         own_monitor=not hub_fds)

        # pipe[0] is -1 once closed: its number may be reused by then.
        def started() -> None:
            os.write(pipe[0], b"ok")
            os.close(pipe[0])
            pipe[0] = -1

        launch.fork()
        try:
            _drive(c, launch, wiring, attach=False, log=True, on_started=started,
                   hub_fds=hub_fds)
        finally:
            if c.options.get("rm") and _still_there(c):  # _drive may have removed it
                _remove_files(c, volumes=True)
    except BaseException as exc:
        code = exc.exit_code if isinstance(exc, RlError) else 125
        text = str(exc)
        if not isinstance(exc, RlError):  # a bug: the traceback to rl.log, not lost
            from rootless import crashlog

            logged = crashlog.record(exc, "monitor of container "
                                     f"{getattr(c, 'short_id', str(c)[:12])}")
            text = f"internal error: {crashlog.summary(exc)}" + \
                (f" (details in {logged})" if logged else "")
        if pipe[0] >= 0:
            try:
                os.write(pipe[0], f"E {code} {text}".encode())
            except OSError:
                pass
        elif isinstance(c, Container):  # already started: the caller is gone, keep the reason
            _monitor_log(c, exc)
    os._exit(0)


def _still_there(c: Container) -> bool:
    try:
        lookup(c.id)
    except NotFound:
        return False
    return True


def _detach_from_caller() -> None:
    """In a forked child: a new session, a grandchild (the caller reaps the child at
    once), stdio on /dev/null, / as cwd, SIGHUP ignored: a process that outlives `rl`."""
    from rootless.linux import syscalls

    syscalls.detach_session()
    os.chdir("/")
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


# -- attach -------------------------------------------------------------------------------

# Attach clients waiting for the start of a created container in this process (the API
# attaches before it starts): start() hands their sockets to the monitor before the
# container runs. A start by another process is seen by polling the row instead.
_pending: dict[str, list] = {}
_pending_lock = None


def _lock():
    global _pending_lock
    if _pending_lock is None:
        import threading

        _pending_lock = threading.Lock()
    return _pending_lock


def pending_count(cid: str) -> int:
    """How many attach clients of this process wait for the start of `cid`."""
    if _pending_lock is None:
        return 0
    with _lock():
        return len(_pending.get(cid, []))


def take_pending(cid: str) -> list:
    """The attach clients of this process waiting for the start of `cid`, taken: a list
    of (socket, event); pass the sockets to start() (maybe in another process: their
    fds), then close them and set the events, as start() does with its own."""
    return _take_pending(cid)


def _take_pending(cid: str) -> list:
    if _pending_lock is None:
        return []
    with _lock():
        return _pending.pop(cid, [])


def attach(ref: str, streams: Streams, *, logs: bool = False, stream: bool = True,
           detach_keys: str | None = None, stdin_once: bool = True) -> int | None:
    """See the module's docstring. Conflict when the container is not running (nor
    created, nor restarting)."""
    from rootless.engine import streams as streams_mod

    c = lookup(ref)
    streams_mod.parse_detach_keys(detach_keys)  # a bad value: before anything
    if not c.options.get("interactive"):
        streams = Streams(None, streams.stdout, streams.stderr)
    replay = logs
    sock = None
    if c.state == "created":
        sock, replay = _wait_for_start(c, logs)
    else:
        sock = _connect(c)
    if sock is None:
        c = lookup(c.id)
        if c.state in ("running", "restarting") and _monitor_alive(c):
            return _exit_code_of(c.id)  # its monitor is finishing: no more output
        raise Conflict(f"container {c.name} is not running: you cannot attach to a "
                       "stopped container", "start it first (rl start)")
    detached, code = streams_mod.session(sock, streams, tty=bool(c.options.get("tty")),
                                         replay=replay, once=not stream,
                                         detach_keys=detach_keys, stdin_once=stdin_once)
    if detached or not stream:
        return None
    return code if code is not None else _exit_code_of(c.id)


def _socket_path(c: Container) -> str:
    from rootless.runtime import attachsock

    return attachsock.socket_path(str(paths.runtime_dir()), c.id)


def _connect(c: Container):
    """A socket connected to the monitor of `c`, or None when none listens."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(_socket_path(c))
    except OSError:
        s.close()
        return None
    return s


def _wait_for_start(c: Container, logs: bool):
    """Block until `c` starts; (socket, replay). Started by this process: the monitor got
    our socket before the container ran. Started by another: we see it running and
    connect, the replay from the start of its run making up for what we missed."""
    import select
    import socket

    from rootless.engine import attachwait

    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    taken = _Taken()
    entry = (theirs, taken)
    with _lock():
        _pending.setdefault(c.id, []).append(entry)

    def withdraw() -> bool:
        """Out of the pending list; False when a start() of this process took it."""
        with _lock():
            waiting = _pending.get(c.id, [])
            if entry not in waiting:
                return False
            waiting.remove(entry)
            if not waiting:
                _pending.pop(c.id, None)
            return True

    try:  # a start by another process connects here (rootless/engine/attachwait.py)
        waiter = attachwait.Waiter(c.short_id)
    except OSError:
        waiter = None
    try:
        delay = 0.01
        while not taken.wait(delay, also=waiter):
            if waiter is not None and select.select([waiter], [], [], 0)[0]:
                conn = waiter.accept()
                if conn is not None:  # the monitor has its other end, from the start
                    if withdraw():
                        mine.close()
                        theirs.close()
                        return conn, logs
                    conn.close()  # a start of this process took ours meanwhile
                    taken.wait()
                    break
            delay = min(delay * 2, 0.25)
            try:
                state = lookup(c.id).state
            except NotFound:
                state = "removed"
            if state == "created":
                continue
            if not withdraw():  # start() took it meanwhile
                taken.wait()
                break
            mine.close()
            theirs.close()
            if state == "removed":
                raise NotFound(f"no such container: {c.id}")
            return _connect(c), True
        return mine, logs
    finally:
        if waiter is not None:
            waiter.close()
        taken.close()


class _Taken:
    """threading.Event's set/wait for a pending attach, whose wait also wakes when
    `also` (a waiter's socket) is readable: one select for both."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.flag = False

    def set(self) -> None:
        self.flag = True
        try:
            os.write(self.w, b"x")
        except OSError:  # closed: its waiter is gone
            pass

    def wait(self, timeout: float | None = None, also=None) -> bool:
        import select

        if not self.flag:
            try:
                select.select([self.r] + ([also] if also is not None else []), [], [],
                              timeout)
            except (OSError, ValueError):  # closed meanwhile
                pass
        return self.flag

    def close(self) -> None:
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass


def resize(ref: str, rows: int, cols: int) -> None:
    """The terminal size of a running `-t` container (its processes get SIGWINCH)."""
    from rootless.runtime.attachsock import frame

    c = lookup(ref)
    if c.state != "running":
        raise Conflict(f"container {c.name} is not running", "start it first (rl start)")
    sock = _connect(c)
    if sock is None:
        raise Conflict(f"container {c.name} is not running", "start it first (rl start)")
    with sock:
        # returns once the monitor applied it (output sent after this sees the new size)
        try:
            sock.sendall(frame(b"r", f"{int(rows)} {int(cols)}".encode()))
            sock.settimeout(10)
            while (data := sock.recv(64)) and not data.startswith(b"a"):
                pass
        except OSError:
            pass

"""`exec`: a command in a running container, with the caller's streams; and `unshare`.

    exec_(ref, command, *, streams=None, tty=False, interactive=False, user=None,
          workdir=None, env=None, env_files=None, detach=False, privileged=False,
          on_started=None, detach_keys=None) -> int | None
        the command's exit code (126/127 when it cannot be run, 125 when the container
        cannot be entered, with the reason on its stderr); None with `detach` (it runs
        on, its output dropped). `on_started(handle)` is called once it runs; with a tty,
        exec_resize(handle, rows, cols) sets its terminal's size. `privileged`: every
        capability of the container's user namespace and no seccomp filter.
        `detach_keys` (Docker's syntax; None: ctrl-p,ctrl-q; "": none), with -it from
        the CLI: at the keys the command is left running and None is returned.

setns(2) into the container's user namespace needs a single-threaded process: from the
single-threaded CLI with its own fds the command's process is forked (the fast path);
otherwise it is a fresh interpreter (rootless.runtime.lean call_main: exec_process) whose
stdio are pipes (or the caller's fds) that threads of the engine copy to and from
`streams`.
"""

from __future__ import annotations

import json
import os
import threading

from rootless.engine.create import check_workdir as _check_workdir
from rootless.engine.ctrinfo import running_container as _running
from rootless.engine.streams import Streams, read_some, write_out
from rootless.errors import InvalidArgument, RlError
from rootless.store.containerdb import lookup


class ExecHandle:
    """A started exec: its process (the host's pid of the joining process) and, with a
    tty, the pty master this side holds."""

    def __init__(self, pid: int | None, master: int | None = None) -> None:
        self.pid = pid
        self.master = master


def exec_resize(handle: ExecHandle, rows: int, cols: int) -> None:
    if handle.master is None:
        return
    import fcntl
    import struct
    import termios

    try:
        fcntl.ioctl(handle.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except OSError:
        pass


def _process_of(c, command: list[str], *, tty: bool, workdir: str | None,
                env: list[str] | None, env_files: list[str] | None) -> tuple[dict, dict]:
    from rootless.engine import spec as spec_mod

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
    return spec, process


def _bpf(c, spec: dict) -> bytes | None:
    from rootless.runtime import seccomp

    try:  # the filter of the container, compiled at its create (runtime/seccomp.py)
        return seccomp.read_bundle(str(c.dir), spec)
    except seccomp.SeccompError as exc:
        raise RlError(str(exc)) from None


def exec_(ref: str, command: list[str], *, streams: Streams | None = None,
          interactive: bool = False, tty: bool = False, user: str | None = None,
          workdir: str | None = None, env: list[str] | None = None,
          env_files: list[str] | None = None, detach: bool = False,
          privileged: bool = False, on_started=None,
          detach_keys: str | None = None) -> int | None:
    """See the module's docstring."""
    from rootless.engine.streams import parse_detach_keys

    if not command:
        raise InvalidArgument("rl exec needs a command")
    keys = parse_detach_keys(detach_keys)
    if detach_keys is not None and not (tty and interactive):
        raise InvalidArgument("--detach-keys needs -i and -t: the keys are read from the "
                              "command's terminal", "add -it, or drop --detach-keys")
    _check_workdir(workdir)
    c = _running(ref)
    spec, process = _process_of(c, command, tty=tty, workdir=workdir, env=env,
                                env_files=env_files)
    bpf = _bpf(c, spec)  # a broken filter: refused here, before any process
    if privileged:  # every capability of the user namespace, no filter (procflags.py)
        from rootless.engine import procflags

        process, bpf = procflags.privileged_exec(process), None
    streams = streams or Streams()
    from rootless.engine.running import _single_threaded

    if (not detach and _single_threaded()
            and streams.fds() in ((0, 1, 2), (None, 1, 2))):
        return _exec_forked(c, spec, process, bpf, interactive=interactive and
                            streams.stdin is not None, tty=tty, user=user,
                            on_started=on_started, keys=keys)
    return _exec_spawned(c, process, streams, interactive=interactive, tty=tty, user=user,
                         detach=detach, on_started=on_started, privileged=privileged)


def _exec_forked(c, spec, process, bpf, *, interactive, tty, user, on_started,
                 keys: bytes = b"") -> int | None:
    """The CLI's exec: a fork of this single-threaded process on its own fds 0/1/2. With
    -it, the detach keys hand the command to the joining process, which keeps it running
    (rootless.runtime.join.keep_after_detach): None then."""
    from rootless.runtime import join, monitor

    sock_parent = sock_child = ctl_parent = ctl_child = None
    if tty:
        import socket

        sock_parent, sock_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        if interactive and keys:
            ctl_parent, ctl_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        if not interactive:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
        for s in (sock_parent, ctl_parent):
            if s is not None:
                s.close()
        join.exec_child(c.pid, spec, process,
                        tty_sock=sock_child.detach() if sock_child is not None else None,
                        user=user, seccomp_bpf=bpf,
                        control=ctl_child.detach() if ctl_child is not None else None)
    for s in (sock_child, ctl_child):
        if s is not None:
            s.close()
    if not tty:
        if on_started is not None:
            on_started(ExecHandle(pid))
        from rootless.runtime import exitcode

        return exitcode.wait(pid)
    import socket

    _, fds, _, _ = socket.recv_fds(sock_parent, 16, 1)
    sock_parent.close()
    master = fds[0] if fds else None
    if on_started is not None:
        on_started(ExecHandle(pid, master))
    if ctl_parent is None or master is None:
        return monitor.run_exec_pty(pid, master, interactive=interactive)
    from rootless.engine.streams import DetachScanner

    def hand_over() -> bool:
        """The joining process takes the pty and stays (its answer: b"k"); no answer,
        the command has just ended: go on to its exit code."""
        try:
            socket.send_fds(ctl_parent, [b"d"], [master])
            ctl_parent.settimeout(5)
            return ctl_parent.recv(1) == b"k"
        except OSError:
            return False

    try:
        code = monitor.run_exec_pty(pid, master, interactive=interactive,
                                    scan=DetachScanner(keys).feed, detach=hand_over)
    finally:
        ctl_parent.close()
    # None: detached, the joining process not waited for (it outlives us; init reaps it)
    return code


def _exec_spawned(c, process: dict, streams: Streams, *, interactive: bool, tty: bool,
                  user: str | None, detach: bool, on_started,
                  privileged: bool = False) -> int | None:
    """A fresh interpreter joins the container; its stdio are copied to `streams`."""
    import socket
    import subprocess

    from rootless.runtime import lean

    sock_parent = sock_child = None
    if tty and not detach:
        sock_parent, sock_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    args = json.dumps({"id": c.id, "process": process, "user": user, "detach": detach,
                       "privileged": privileged,
                       "tty_fd": sock_child.fileno() if sock_child is not None else None})
    pass_fds = [sock_child.fileno()] if sock_child is not None else []
    dev = subprocess.DEVNULL

    def target(s):
        if detach:
            return dev
        if isinstance(s, int):
            return s
        if s is None:
            return dev
        return subprocess.PIPE

    stdin = target(streams.stdin) if interactive and not tty else dev
    stdout = target(streams.stdout)
    # with a tty the command's output is on the pty; the interpreter's own stderr
    # carries only a failure to enter the container
    stderr = target(streams.stdout if tty else streams.stderr)
    argv = lean.entry_argv("call_main", ["rootless.engine.execs:exec_process", args])
    child = subprocess.Popen(argv, stdin=stdin,
                             stdout=stdout, stderr=stderr, pass_fds=pass_fds, cwd="/")
    if sock_child is not None:
        sock_child.close()
    if detach:
        child.wait()
        if child.returncode != 0:
            raise RlError(f"cannot start the command in container {c.name}",
                          exit_code=child.returncode)
        if on_started is not None:
            on_started(ExecHandle(None))
        return None
    pumps = []
    if child.stdin is not None:
        _pump_in(streams.stdin, child.stdin.fileno(), child.stdin)
    if child.stdout is not None:
        pumps.append(_pump_out(child.stdout.fileno(), streams.stdout))
    if child.stderr is not None:
        pumps.append(_pump_out(child.stderr.fileno(), streams.stdout if tty else streams.stderr))
    master = None
    if sock_parent is not None:
        try:
            _, fds, _, _ = socket.recv_fds(sock_parent, 16, 1)
        except OSError:
            fds = []
        sock_parent.close()
        if fds:
            master = fds[0]
    if on_started is not None:  # before any output: the caller may resize first
        on_started(ExecHandle(child.pid, master))
    if master is not None:
        pumps.append(_pump_out(master, streams.stdout))
        if interactive and streams.stdin is not None:
            _pump_in(streams.stdin, master, None, eof=b"\x04")
    code = child.wait()
    for t in pumps:
        # the pty's pump ends on EIO once no process holds its other side: one that the
        # command left running in the background may; it is not waited for long
        t.join(timeout=5 if master is not None else None)
    if master is not None:
        os.close(master)
    return 128 - code if code < 0 else code


def _pump_out(fd: int, target) -> threading.Thread:
    def run() -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the pty's last slave was closed
                break
            if not data:
                break
            try:
                write_out(target, data)
            except (OSError, ValueError):
                pass  # the caller's stream went away: drain to the end anyway
    t = threading.Thread(target=run, name="rl-exec-out", daemon=True)
    t.start()
    return t


def _pump_in(source, fd: int, owner, eof: bytes | None = None) -> None:
    """Copy the caller's stdin to the command; at its EOF, close the pipe (or send `eof`
    on a pty). Not joined: it may wait for input that never comes."""
    def run() -> None:
        try:
            while data := read_some(source):
                write_out(fd, data)
        except (OSError, ValueError):
            pass
        try:
            if eof is not None:
                os.write(fd, eof)
            elif owner is not None:
                owner.close()
        except OSError:
            pass
    threading.Thread(target=run, name="rl-exec-in", daemon=True).start()


def exec_process(raw: str) -> None:
    """In a fresh interpreter (rootless.runtime.lean.call_main): join the container and exec."""
    from rootless.runtime import join

    req = json.loads(raw)
    try:
        c = lookup(req["id"])
        if c.state != "running" or not c.pid:
            raise RlError(f"container {c.name} is not running")
        spec = c.spec()
        bpf = None if req.get("privileged") else _bpf(c, spec)
    except RlError as exc:
        os.write(2, f"rl: error: {exc}\n".encode())
        os._exit(125)
    if req["detach"]:
        _detach_for_exec()
    join.exec_child(c.pid, spec, req["process"], tty_sock=req["tty_fd"], user=req["user"],
                    seccomp_bpf=bpf)


def _detach_for_exec() -> None:
    """exec -d: a process that outlives the caller (setsid, double fork). join.exec_child
    sets PR_SET_PDEATHSIG: only once the intermediate is gone, or it would kill us."""
    import time

    from rootless.linux import syscalls

    first = syscalls.detach_session()
    while os.getppid() == first:  # reparented once it exited (microseconds)
        time.sleep(0.001)


# -- unshare ------------------------------------------------------------------------------

def unshare(command: list[str]) -> int:
    from rootless.runtime import userns

    return userns.unshare(command)

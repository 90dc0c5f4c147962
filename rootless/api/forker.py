"""Engine calls that fork, made from a process that has no threads.

Several engine verbs fork the calling process (a container's monitor, `cp`'s child in
the container, a build's RUN steps). fork() in a process with threads copies only the
calling thread: a lock another thread held at that moment (sqlite's, malloc arenas of
some libcs, Python objects' locks) stays locked forever in the child, which then hangs
(seen here: a detached monitor forked from a worker thread stuck on a futex). So the
service forks one helper, the forker, before it starts any thread; the forker stays
single-threaded and forks a fresh worker per call, which runs the engine function and
sends back its result. File descriptors (a pipe for a tar stream, a hijacked socket for
an attach) travel with the call (SCM_RIGHTS).

The forker is warm: before its first call it imports the engine modules the state-changing
calls use (WARM), so a worker starts with them loaded, shared copy-on-write, instead of
importing them per call (~60-100 ms each for a create or a start here). It imports them in
its own process, after the fork: the service itself stays as light as before, and a
forker that imports nothing but this module would fork workers that pay each time.

    forker = Forker.start()              # before trio and its threads
    forker.call("rootless.engine.containers:start", cid)   # blocks; from any thread
    forker.call("rootless.api.calls:archive_read", cid, path, FD(0), fds=[w])

The result comes back pickled; an RlError comes back as the same class with the same
message, fix and exit code, any other exception as RlError with its text. A `Sink()` given
as an argument (the engine's `warn=`) stands for a callable in the worker: what the engine
said through it comes back with the answer, in the Sink's `said` (the answer's Warnings).
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import threading
from dataclasses import dataclass, field

from rootless.errors import RlError


@dataclass(frozen=True)
class FD:
    """Marks an argument that is the n-th fd sent with the call."""
    index: int


@dataclass
class Sink:
    """Marks an argument that is a warn(text) callable: in the worker, one that collects
    the texts; here, after the call (also one that raised), they are in `said`."""
    said: list[str] = field(default_factory=list)


def _sinks_to_callables(args, kwargs, said: list[str]):
    args = [said.append if isinstance(a, Sink) else a for a in args]
    kwargs = {k: said.append if isinstance(v, Sink) else v for k, v in kwargs.items()}
    return args, kwargs


def _resolve(fn_path: str):
    import importlib

    mod, _, name = fn_path.partition(":")
    return getattr(importlib.import_module(mod), name)


def _worker(conn: socket.socket, ctl: socket.socket) -> None:
    """In the worker: read the call, run it, write the answer, exit."""
    code = 0
    try:
        ctl.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the engine waits for its children
        msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 64)
        fn_path, args, kwargs = pickle.loads(msg)
        args = [fds[a.index] if isinstance(a, FD) else a for a in args]
        kwargs = {k: fds[v.index] if isinstance(v, FD) else v for k, v in kwargs.items()}
        said: list[str] = []
        args, kwargs = _sinks_to_callables(args, kwargs, said)
        if os.environ.get("RL_TRACE"):
            import sys

            from rootless.trace import trace

            before = set(sys.modules)
            trace(f"forker worker {fn_path}")
        try:
            answer = ("ok", _resolve(fn_path)(*args, **kwargs))
        except RlError as exc:
            answer = ("rl", type(exc).__module__, type(exc).__qualname__, exc.message,
                      exc.fix, exc.exit_code)
        except BaseException as exc:
            answer = ("rl", "rootless.errors", "RlError",
                      f"internal error: {type(exc).__name__}: {exc}", None, 125)
        try:
            data = pickle.dumps((answer, said))
        except Exception as exc:
            data = pickle.dumps((("rl", "rootless.errors", "RlError",
                                  f"internal error: unpicklable result: {exc}", None, 125),
                                 said))
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        if os.environ.get("RL_TRACE"):
            new = sorted(m for m in set(sys.modules) - before if m.startswith("rootless"))
            trace(f"forker worker {fn_path} done; imported {' '.join(new)}")
    except BaseException:
        code = 1
    finally:
        os._exit(code)


# What a create, a start, a stop or a removal imports in the worker (found with
# RL_TRACE: the worker traces what its call imported beyond these).
WARM = ("rootless.api.calls", "rootless.engine.containers", "rootless.engine.create",
        "rootless.engine.running", "rootless.engine.lifecycle", "rootless.engine.netwire",
        "rootless.engine.nsflags", "rootless.engine.cgroups", "rootless.engine.health",
        "rootless.engine.images", "rootless.engine.mounts", "rootless.engine.mountspec",
        "rootless.engine.netflags", "rootless.engine.procflags", "rootless.engine.restart",
        "rootless.engine.runextras", "rootless.engine.security",
        "rootless.network.etcfiles", "rootless.network.loopguard", "rootless.network.modes",
        "rootless.network.ports", "rootless.runtime.seccomp", "rootless.runtime.sandbox",
        "rootless.runtime.monitor", "rootless.runtime.attachsock", "rootless.runtime.rootfs",
        "rootless.runtime.userns", "rootless.store.buildcache", "rootless.store.imagedb",
        "rootless.store.layers", "rootless.store.locks", "rootless.store.volumes")


def _warm() -> None:
    import importlib

    for name in WARM:
        try:
            importlib.import_module(name)
        except Exception:  # a worker will meet it again and report it
            pass


def _loop(ctl: socket.socket) -> None:
    """The forker: one worker per call; reaps them as they end."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service says when to stop (EOF)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _warm()
    while True:
        try:
            _, fds, _, _ = socket.recv_fds(ctl, 1, 1)
        except InterruptedError:
            continue
        if not fds:  # EOF: the service is gone
            os._exit(0)
        if os.fork() == 0:
            _worker(socket.socket(fileno=fds[0]), ctl)
        os.close(fds[0])


class Forker:
    def __init__(self, ctl: socket.socket, pid: int) -> None:
        self.ctl = ctl
        self.pid = pid
        self.lock = threading.Lock()

    @classmethod
    def start(cls) -> Forker:
        """Fork the forker. Call while this process has one thread."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            parent.close()
            keep = child.fileno()
            os.closerange(3, keep)  # listening sockets and the like are not the forker's
            os.closerange(keep + 1, 65536)
            try:
                _loop(child)
            finally:
                os._exit(0)
        child.close()
        return cls(parent, pid)

    def call(self, fn_path: str, *args, fds: list[int] = (), **kwargs):
        """Run fn_path(*args, **kwargs) in a fresh single-threaded worker; its result, or
        its RlError raised here. `fds` are sent along (FD(i) in args stands for fds[i]);
        the caller keeps and closes its own."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self.lock:
                socket.send_fds(self.ctl, [b"c"], [theirs.fileno()])
            theirs.close()
            socket.send_fds(mine, [pickle.dumps((fn_path, args, kwargs))], list(fds))
            chunks = []
            while chunk := mine.recv(1 << 16):
                chunks.append(chunk)
        finally:
            mine.close()
            if theirs.fileno() >= 0:
                theirs.close()
        if not chunks:
            raise RlError("internal error: the engine's worker process died")
        answer, said = pickle.loads(b"".join(chunks))
        for a in [*args, *kwargs.values()]:
            if isinstance(a, Sink):
                a.said.extend(said)
        if answer[0] == "ok":
            return answer[1]
        _, mod, qual, message, fix, code = answer
        try:
            cls = _resolve(f"{mod}:{qual}")
            if not (isinstance(cls, type) and issubclass(cls, RlError)):
                cls = RlError
        except (ImportError, AttributeError):
            cls = RlError
        exc = cls.__new__(cls)
        RlError.__init__(exc, message, fix, exit_code=code)
        raise exc

    def close(self) -> None:
        self.ctl.close()


_FORKER: Forker | None = None


def install(f: Forker) -> None:
    global _FORKER
    _FORKER = f


def call(fn_path: str, *args, fds: list[int] = (), **kwargs):
    """Through the service's forker; in-process when there is none (tests of handlers)."""
    if _FORKER is None:
        fn = _resolve(fn_path)
        if fds:
            args = tuple(fds[a.index] if isinstance(a, FD) else a for a in args)
        sinks = [a for a in [*args, *kwargs.values()] if isinstance(a, Sink)]
        if sinks:
            args, kwargs = _sinks_to_callables(args, kwargs, sinks[0].said)
        return fn(*args, **kwargs)
    return _FORKER.call(fn_path, *args, fds=fds, **kwargs)

"""A minimal stand-in for trio under pyfuse3: one coroutine, no scheduler, blocking reads.

Why: every handler of fuse_overlay is synchronous (syscalls on local files), and pyfuse3
then runs one request at a time anyway. trio's scheduler, written in Python, costs about as
much per request as the handler itself (an epoll re-arm, a scheduling round, a lock). Here
`wait_readable` returns at once and pyfuse3's read(2) of /dev/fuse blocks until the kernel
has a request: one syscall and one sleep per request, not a poll() and a coroutine switch
more (measured on a no-op filesystem: 14-16 instead of 20-26 us of server CPU per
open+release). It implements just what pyfuse3 uses of trio (the same set pyfuse3.asyncio
provides): open_nursery, Lock, ClosedResourceError, and in `lowlevel` wait_readable,
notify_closing, current_task, current_trio_token. Hand-written because no library offers
this; pyfuse3.asyncio is the model. Select it with loop=direct (the default); loop=trio runs
on trio itself.

Signals: a stop signal (SIGTERM/SIGINT/SIGHUP, those the caller asked for and does not
ignore) must end the loop even while the read waits for a request that may never come.
pyfuse3 holds the GIL in that read, so no helper thread can step in, and a signal landing
between a check of a flag and the read would wait for the next request. So when stop
signals are wanted, their handlers are Python's (a C-level flag) with a wakeup fd (a pipe
the C handler writes the signal number to), and wait_readable poll()s /dev/fuse and that
pipe together: no timer, no wake-up while idle, one poll(2) more per request. A server
that needs no stop signal (rl's, which ends with the FUSE connection: the kernel ends it
when the container's last process goes) passes stop_signals=() and reads directly.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import types


class ClosedResourceError(Exception):
    pass


_closing: set[int] = set()


_wake: list = []  # [poll object, the wakeup pipe's read end, /dev/fuse's fd] when stopping
# by signal is on
_pyfuse3 = None


async def wait_readable(fd: int) -> None:
    # The read that follows blocks until a request comes (see the module docstring).
    if _wake and fd not in _closing:
        poller, wake_r = _wake[0], _wake[1]
        if len(_wake) == 2:  # the session's fd: known only here (pyfuse3 keeps it in C)
            poller.register(fd, select.POLLIN)
            _wake.append(fd)
        ready = poller.poll()  # a signal's handler writes to wake_r: never lost
        if any(f == wake_r for f, _ in ready):
            try:
                while os.read(wake_r, 64):
                    pass
            except BlockingIOError:
                pass
            _pyfuse3.terminate()  # -> notify_closing(fd)
    if fd in _closing:
        raise ClosedResourceError()


def notify_closing(fd: int) -> None:
    _closing.add(fd)


class _Task:
    name = "fuse-overlay"


def current_task() -> _Task:
    return _Task()


def current_trio_token() -> str:
    return "direct"


class Lock:
    """Never contended: there is one task."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return False


class _Nursery:
    def __init__(self) -> None:
        self.pending = []

    async def __aenter__(self):
        return self

    def start_soon(self, fn, *args, name=None):
        self.pending.append(fn(*args))

    async def __aexit__(self, exc_type, exc, tb):
        # one task at a time, in order (pyfuse3 starts one worker when max_tasks=1)
        while self.pending:
            await self.pending.pop(0)
        return False


def open_nursery() -> _Nursery:
    return _Nursery()


def _module() -> types.ModuleType:
    """This module dressed as `trio` (with .lowlevel and .from_thread) for pyfuse3."""
    mod = sys.modules[__name__]
    mod.lowlevel = mod
    mod.from_thread = mod
    return mod


def import_pyfuse3() -> types.ModuleType:
    """Import pyfuse3 without trio: pyfuse3 imports trio at module level but only uses it
    once its main loop runs, which `run` below dresses this module up for. Skipping trio
    saves ~6 MiB of every fuse server and most of the import time (trio is ~3/4 of
    `import pyfuse3`). `trio` is in sys.modules only during the import, so code that
    imports trio later gets the real one; loop=trio sets pyfuse3.trio to it. The same
    for importlib.metadata (`_no_metadata`)."""
    if "pyfuse3" in sys.modules or "trio" in sys.modules:
        import pyfuse3

        return pyfuse3
    sys.modules["trio"] = _module()
    metadata = None
    if "importlib.metadata" not in sys.modules:
        metadata = sys.modules["importlib.metadata"] = _no_metadata()
    try:
        import pyfuse3
    finally:
        if sys.modules.get("trio") is sys.modules[__name__]:
            del sys.modules["trio"]
        if metadata is not None and sys.modules.get("importlib.metadata") is metadata:
            del sys.modules["importlib.metadata"]
    return pyfuse3


def _no_metadata() -> types.ModuleType:
    """A stand-in for importlib.metadata while pyfuse3 is imported: pyfuse3 asks it only
    for its own version string (then "unknown"), and the real module (email, zipfile,
    csv, pathlib, inspect...) was 3 MiB and 35 ms of every process that forks servers."""
    mod = types.ModuleType("importlib.metadata")

    class PackageNotFoundError(ModuleNotFoundError):
        pass

    def version(name: str) -> str:
        raise PackageNotFoundError(name)

    mod.PackageNotFoundError = PackageNotFoundError
    mod.version = version
    return mod


def run(pyfuse3, main_coro_fn,
        stop_signals=(signal.SIGTERM, signal.SIGINT, signal.SIGHUP)):
    """Run pyfuse3's main loop (`main_coro_fn()` awaits pyfuse3.main()) on this runner,
    until the mount is unmounted or a stop signal comes."""
    global _pyfuse3
    saved_trio = pyfuse3.trio
    pyfuse3.trio = _module()
    _pyfuse3 = pyfuse3
    _closing.clear()
    _wake.clear()
    # a signal the caller ignores stays ignored (the runtime ignores SIGINT, which the
    # container's terminal sends to the whole process group)
    wanted = [sig for sig in stop_signals if signal.getsignal(sig) is not signal.SIG_IGN]
    old_handlers = {}
    old_wakeup = None
    pipe = None
    if wanted:
        pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(pipe[1], warn_on_full_buffer=False)
        old_handlers = {sig: signal.signal(sig, lambda s, f: None) for sig in wanted}
        poller = select.poll()
        poller.register(pipe[0], select.POLLIN)
        _wake.extend((poller, pipe[0]))
    coro = main_coro_fn()
    try:
        try:
            coro.send(None)
        except StopIteration:
            return
        raise RuntimeError("pyfuse3 waited on something this runner does not provide")
    finally:
        coro.close()
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
        if pipe is not None:
            signal.set_wakeup_fd(old_wakeup)
            os.close(pipe[0])
            os.close(pipe[1])
        _wake.clear()
        pyfuse3.trio = saved_trio
        _pyfuse3 = None

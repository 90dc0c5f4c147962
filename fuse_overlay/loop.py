"""A minimal stand-in for trio under pyfuse3: one coroutine, driven by a blocking poll().

Why: every handler of fuse_overlay is synchronous (syscalls on local files), and pyfuse3
then runs one request at a time anyway. trio's scheduler, written in Python, costs about as
much per request as the handler itself (an epoll re-arm, a scheduling round, a lock); this
runner costs one poll() and a coroutine resume. It implements just what pyfuse3 uses of trio
(the same set pyfuse3.asyncio provides): open_nursery, Lock, ClosedResourceError, and in
`lowlevel` wait_readable, notify_closing, current_task, current_trio_token. Hand-written
because no library offers this; pyfuse3.asyncio is the model. Select it with loop=direct
(the default); loop=trio runs on trio itself.

Signals: SIGTERM/SIGINT/SIGHUP (those not ignored by the caller) wake the poll through a
self-pipe (signal.set_wakeup_fd) and end the main loop the way pyfuse3.terminate() does.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import types


class ClosedResourceError(Exception):
    pass


class _WaitReadable:
    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __await__(self):
        yield self


_closing: set[int] = set()


async def wait_readable(fd: int) -> None:
    if fd in _closing:
        raise ClosedResourceError()
    await _WaitReadable(fd)
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
    imports trio later gets the real one; loop=trio sets pyfuse3.trio to it."""
    if "pyfuse3" in sys.modules or "trio" in sys.modules:
        import pyfuse3

        return pyfuse3
    sys.modules["trio"] = _module()
    try:
        import pyfuse3
    finally:
        if sys.modules.get("trio") is sys.modules[__name__]:
            del sys.modules["trio"]
    return pyfuse3


def run(pyfuse3, main_coro_fn, stop_signals=(signal.SIGTERM, signal.SIGINT, signal.SIGHUP)):
    """Run pyfuse3's main loop (`main_coro_fn()` awaits pyfuse3.main()) on this runner."""
    saved_trio = pyfuse3.trio
    pyfuse3.trio = _module()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = signal.set_wakeup_fd(wake_w)
    stop = []
    # a signal the caller ignores stays ignored (the runtime ignores SIGINT, which the
    # container's terminal sends to the whole process group)
    old_handlers = {sig: signal.signal(sig, lambda s, f: stop.append(s)) for sig in stop_signals
                    if signal.getsignal(sig) is not signal.SIG_IGN}
    poller = select.poll()
    poller.register(wake_r, select.POLLIN)
    registered = None
    coro = main_coro_fn()
    try:
        value, exc = None, None
        while True:
            try:
                req = coro.throw(exc) if exc is not None else coro.send(value)
            except StopIteration:
                return
            value, exc = None, None
            if registered != req.fd:
                if registered is not None:
                    poller.unregister(registered)
                poller.register(req.fd, select.POLLIN)
                registered = req.fd
            while True:
                if stop:
                    pyfuse3.terminate()  # -> notify_closing: wait_readable raises
                    stop.clear()
                    break
                ready = poller.poll()
                if any(fd == wake_r for fd, _ in ready):
                    try:
                        while os.read(wake_r, 64):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                break
    finally:
        coro.close()
        signal.set_wakeup_fd(old_wakeup)
        for sig, h in old_handlers.items():
            signal.signal(sig, h)
        os.close(wake_r)
        os.close(wake_w)
        pyfuse3.trio = saved_trio

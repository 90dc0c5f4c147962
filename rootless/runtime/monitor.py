"""The monitor's work while a container runs: copy its output to the terminal and the log,
feed stdin or the pty, forward signals, and return its exit code.

Three ways to wire the container's stdio, chosen by the engine:
- direct: pid 1 inherits the caller's own fds (foreground `rl run --rm` without -t: the
  fastest path, and exactly the bytes the command writes, unbuffered);
- pipes: stdout/stderr through pipes that the monitor copies to the log (and to the
  terminal when attached);
- pty: `-t`; the pty comes from the container's own devpts (so `tty` inside names it), the
  monitor copies between it and the user's terminal in raw mode, and follows SIGWINCH.

A detached container's monitor runs this loop in a lean interpreter (rootless.runtime.lean):
so this module imports only what a bare `python -I -S` has at hand (no dataclasses, no
contextlib: each costs the monitor of every container a MiB or more).
"""

from __future__ import annotations

# The C module under `signal`: the same functions and numbers without the enums, whose
# import (enum) costs the lean monitor ~0.8 MiB.
import _signal as signal
import errno
import os
import select

from rootless.runtime import exitcode
from rootless.runtime.logfile import Writer

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)


class Wiring:
    """The container's stdio as given to the sandbox, and the monitor's ends."""

    def __init__(self, stdio: tuple[int, int, int], out_r: int | None = None,
                 err_r: int | None = None, tty: bool = False,
                 close_after_fork: list[int] | None = None) -> None:
        self.stdio = stdio
        self.out_r = out_r
        self.err_r = err_r
        self.tty = tty
        self.close_after_fork = close_after_fork or []


def wire(*, mode: str, interactive: bool, tty: bool) -> Wiring:
    """mode: "direct" (the caller's fds), "pipes" (attached or logged), "detached"."""
    null = os.open(os.devnull, os.O_RDWR)
    stdin = 0 if interactive and mode != "detached" else null
    if tty:
        return Wiring((null, null, null), tty=True, close_after_fork=[null])
    if mode == "direct":
        return Wiring((stdin, 1, 2), close_after_fork=[null])
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    return Wiring((stdin, out_w, err_w), out_r, err_r, close_after_fork=[null, out_w, err_w])


def _copy_winsize(src: int, dst: int) -> None:
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> bool:
    while data:
        try:
            n = os.write(fd, data)
        except BrokenPipeError:
            return False
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                select.select([], [fd], [])
                continue
            return False
        data = data[n:]
    return True


class Forwarder:
    """Catches the signals to forward from before the container starts (a SIGTERM that
    arrives while it is being set up must not kill the monitor), queued until run_loop."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.old: dict = {}

    def install(self) -> None:
        for sig in FORWARDED:
            try:
                self.old[sig] = signal.signal(sig, self._on)
            except (ValueError, OSError):
                pass

    def _on(self, signum, frame) -> None:
        self.pending.append(signum)

    def restore(self) -> None:
        for sig, handler in self.old.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError, TypeError):
                pass
        self.old = {}


def run_loop(launch, wiring: Wiring, *, log_path: str | None, attach: bool,
             interactive: bool, send_signal, forwarder: Forwarder | None = None,
             timer=None) -> int:
    """Until the container exits: copy, log, forward, and run `timer` (the health-check
    schedule, rootless/runtime/healthtimer.py) when it is due. Returns Docker's exit
    code."""
    log = Writer(log_path) if log_path else None
    sources: dict[int, str] = {}
    if wiring.out_r is not None:
        sources[wiring.out_r] = "stdout"
    if wiring.err_r is not None:
        sources[wiring.err_r] = "stderr"
    master = launch.pty_master
    if master is not None:
        sources[master] = "stdout"
    stdin_open = master is not None and attach and interactive
    status_fd = launch.status_fd
    exited = False
    old_tty = None
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    pending: list[int] = forwarder.pending if forwarder is not None else []

    def on_signal(signum, frame):
        if signum == signal.SIGWINCH:
            if master is not None:
                _copy_winsize(0, master)
            return
        pending.append(signum)

    old_handlers = {}
    for sig in (*FORWARDED, signal.SIGWINCH):
        try:
            old_handlers[sig] = signal.signal(sig, on_signal)
        except (ValueError, OSError):
            pass
    old_wakeup = signal.set_wakeup_fd(wake_w)
    try:
        if master is not None and attach:
            import termios
            import tty

            if os.isatty(0):
                _copy_winsize(0, master)
                if interactive:
                    old_tty = termios.tcgetattr(0)
                    tty.setraw(0)
        while sources or not exited:
            while pending:
                send_signal(pending.pop(0))
            watch = list(sources) + [wake_r] + ([] if exited else [status_fd])
            if stdin_open:
                watch.append(0)
            wait = timer.timeout() if timer is not None and not exited else None
            try:
                ready, _, _ = select.select(watch, [], [], wait)
            except InterruptedError:
                continue
            if timer is not None and not exited:
                timer.tick()
            for fd in ready:
                if fd == wake_r:
                    try:
                        os.read(wake_r, 256)
                    except OSError:
                        pass
                elif fd == status_fd:
                    launch.read_exit()
                    exited = True
                    if master is not None:
                        # Output still buffered in the pty is drained below; a pty has no
                        # EOF while a process of the container could still hold it.
                        pass
                elif fd == 0:
                    try:
                        data = os.read(0, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        stdin_open = False
                        if master is not None:
                            _write_all(master, b"\x04")
                    elif master is not None:
                        _write_all(master, data)
                else:
                    try:
                        data = os.read(fd, 65536)
                    except OSError:  # EIO: the pty's last slave was closed
                        data = b""
                    if not data:
                        del sources[fd]
                        os.close(fd)
                        if fd == master:
                            launch.pty_master = None
                        continue
                    if log is not None:
                        log.write(sources[fd], data)
                    if attach:
                        _write_all(1 if sources[fd] == "stdout" else 2, data)
            if exited and master is not None and master in sources:
                # pid 1 is gone, so is every process that held the pty: drain and stop.
                try:
                    os.set_blocking(master, False)
                    while data := os.read(master, 65536):
                        if log is not None:
                            log.write("stdout", data)
                        if attach:
                            _write_all(1, data)
                except OSError:
                    pass
                del sources[master]
                os.close(master)
                launch.pty_master = None
    finally:
        if timer is not None:
            timer.stop()
        if old_tty is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, old_tty)
        signal.set_wakeup_fd(old_wakeup)
        for sig, handler in old_handlers.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError, TypeError):
                pass
        os.close(wake_r)
        os.close(wake_w)
        if log is not None:
            log.close()
    return launch.wait()


def run_exec_pty(child: int, master: int | None, *, interactive: bool) -> int:
    """`rl exec -t`: copy between the terminal and the pty until `child` exits."""
    import termios
    import tty

    old = None
    if master is not None and os.isatty(0):
        _copy_winsize(0, master)
        if interactive:
            old = termios.tcgetattr(0)
            tty.setraw(0)

    def on_winch(signum, frame):
        if master is not None:
            _copy_winsize(0, master)

    prev = signal.signal(signal.SIGWINCH, on_winch)
    stdin_open = interactive
    status = None
    try:
        while master is not None:
            watch = [master] + ([0] if stdin_open else [])
            try:
                ready, _, _ = select.select(watch, [], [], 0.2)
            except InterruptedError:
                continue
            if not ready:
                done, st = os.waitpid(child, os.WNOHANG)
                if done:
                    status = st
                    try:
                        os.set_blocking(master, False)
                        while data := os.read(master, 65536):
                            _write_all(1, data)
                    except OSError:
                        pass
                    break
                continue
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    stdin_open = False
                    _write_all(master, b"\x04")
                else:
                    _write_all(master, data)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                _write_all(1, data)
    finally:
        if master is not None:
            os.close(master)
        if old is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, old)
        signal.signal(signal.SIGWINCH, prev)
    if status is None:
        _, status = os.waitpid(child, 0)
    return exitcode.from_status(status)

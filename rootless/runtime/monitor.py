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
                 close_after_fork: list[int] | None = None, in_w: int | None = None) -> None:
        self.stdio = stdio
        self.out_r = out_r
        self.err_r = err_r
        self.tty = tty
        self.close_after_fork = close_after_fork or []
        # The monitor's end of the container's stdin pipe (-i of a container whose
        # monitor is detached): attach clients write to it (rootless.runtime.attachsock).
        self.in_w = in_w


def wire(*, mode: str, interactive: bool, tty: bool,
         fds: tuple = (0, 1, 2)) -> Wiring:
    """mode: "direct" (the caller's fds), "pipes" (attached or logged), "detached".
    `fds`: the caller's stdin, stdout, stderr (None: not attached)."""
    null = os.open(os.devnull, os.O_RDWR)
    if tty:
        return Wiring((null, null, null), tty=True, close_after_fork=[null])
    in_w = None
    if interactive and mode == "detached":  # kept open for attach clients
        in_r, in_w = os.pipe()
        stdin, close = in_r, [null, in_r]
    else:
        stdin = fds[0] if interactive and fds[0] is not None else null
        close = [null]
    if mode == "direct":
        out, err = (null if fd is None else fd for fd in fds[1:])
        return Wiring((stdin, out, err), close_after_fork=close)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    return Wiring((stdin, out_w, err_w), out_r, err_r, close_after_fork=[*close, out_w, err_w],
                  in_w=in_w)


def _copy_winsize(src: int, dst: int) -> None:
    import fcntl
    import termios

    try:
        size = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, size)
    except OSError:
        pass


# what select() counts as readable and writable (no POLLPRI: urgent data is its third set,
# and an attach client's MSG_OOB byte, never read, would be ready every round)
_IN = select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLNVAL
_OUT = select.POLLOUT | select.POLLERR | select.POLLHUP | select.POLLNVAL


def _poll(reads: list[int], writes: list[int], timeout: float | None
          ) -> tuple[list[int], list[int]]:
    """select()'s answer (the readable of `reads`, the writable of `writes`, in their
    order; an error or hang-up counts as both: a write there fails at once, which its
    handler takes as the end) from poll(2), which has no
    FD_SETSIZE: a monitor's fds go above 1024 when its NOFILE limit allows (port_handler=
    proxy connections). `timeout` in seconds, None: no end; rounded up to a millisecond,
    so a wait for a due time does not come back just before it."""
    p = select.poll()
    masks: dict[int, int] = {}
    for fd in reads:
        masks[fd] = masks.get(fd, 0) | select.POLLIN
    for fd in writes:
        masks[fd] = masks.get(fd, 0) | select.POLLOUT
    for fd, mask in masks.items():
        p.register(fd, mask)
    ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    got = dict(p.poll(ms))
    if not got:
        return [], []
    return ([fd for fd in reads if got.get(fd, 0) & _IN],
            [fd for fd in writes if got.get(fd, 0) & _OUT])


def _write_all(fd: int, data: bytes) -> bool:
    while data:
        try:
            n = os.write(fd, data)
        except BrokenPipeError:
            return False
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                _poll([], [fd], None)
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


def _serve_proxy(proxy):
    """proxy.service(); a bug in it ends the published ports, not the monitor's loop
    (which would take the container as ended): None then."""
    try:
        proxy.service()
        return proxy
    except Exception as exc:
        from rootless import crashlog

        crashlog.record(exc, "port proxy")
        try:
            proxy.stop()
        except Exception:
            pass
        return None


def run_loop(launch, wiring: Wiring, *, log_path: str | None, attach: bool,
             interactive: bool, send_signal, forwarder: Forwarder | None = None,
             timer=None, hub=None, stdio: tuple = (0, 1, 2), proxy=None) -> int:
    """Until the container exits: copy, log, forward, serve the attach socket (`hub`,
    rootless.runtime.attachsock), the published ports of `proxy`
    (rootless.network.proxy, port_handler=proxy) and run `timer` (the health-check
    schedule, rootless/runtime/healthtimer.py) when it is due. `attach`: copy to and from the
    caller's `stdio` fds too (None: that one is not attached). Returns Docker's exit
    code; the hub stays open (its owner finishes it once the exit is recorded)."""
    log = Writer(log_path) if log_path else None
    if hub is not None:
        hub.set_log(log.path if log is not None else None, log.fd if log is not None else None)
        if log is not None:  # --log-opt max-size: replays read the new file after a rotation
            log.on_rotate = lambda: hub.set_log(log.path, log.fd)
    in_fd, out_fd, err_fd = stdio if attach else (None, None, None)
    # the caller's terminal, whose size the container's follows
    size_fd = next((fd for fd in (in_fd, out_fd) if fd is not None and os.isatty(fd)), None)
    # stdin of attach clients: to the pipe kept for them, or the pty
    stdin_w = wiring.in_w if wiring.in_w is not None else launch.pty_master
    if stdin_w is not None:
        os.set_blocking(stdin_w, False)
    stdin_buf = bytearray()
    stdin_eof = False
    sources: dict[int, str] = {}
    if wiring.out_r is not None:
        sources[wiring.out_r] = "stdout"
    if wiring.err_r is not None:
        sources[wiring.err_r] = "stderr"
    master = launch.pty_master
    if master is not None:
        sources[master] = "stdout"
    stdin_open = master is not None and attach and interactive and in_fd is not None
    status_fd = launch.status_fd
    exited = False
    old_tty = None
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    pending: list[int] = forwarder.pending if forwarder is not None else []

    def on_signal(signum, frame):
        if signum == signal.SIGWINCH:
            if master is not None and size_fd is not None:
                _copy_winsize(size_fd, master)
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

            if size_fd is not None:
                _copy_winsize(size_fd, master)
            if interactive and in_fd is not None and os.isatty(in_fd):
                old_tty = termios.tcgetattr(in_fd)
                tty.setraw(in_fd)
        while sources or not exited:
            while pending:
                send_signal(pending.pop(0))
            watch = list(sources) + [wake_r] + ([] if exited else [status_fd])
            if stdin_open:
                watch.append(in_fd)
            writes = []
            hub_fds: set[int] = set()
            if hub is not None:
                hub_fds = set(hub.read_fds())
                watch += hub_fds
                writes = hub.write_fds()
            if stdin_w is not None and (stdin_buf or stdin_eof):
                writes.append(stdin_w)
            wait = timer.timeout() if timer is not None and not exited else None
            proxy_fd = proxy.watch() if proxy is not None else None
            proxy_due = None
            if proxy_fd is not None:
                watch.append(proxy_fd)
                proxy_due = proxy.timeout()  # a UDP flow's idle end, an accept's retry
                if proxy_due is not None:
                    wait = proxy_due if wait is None else min(wait, proxy_due)
            try:
                ready, can_write = _poll(watch, writes, wait)
            except InterruptedError:
                continue
            if proxy_due is not None and proxy_fd not in ready and not proxy.timeout():
                # its time came with nothing ready (else service() runs below): a UDP
                # flow ends, a paused accept tries again; without this call the wait was
                # 0 from then on, a spin
                proxy = _serve_proxy(proxy)
            if timer is not None and not exited:
                timer.tick()
            for fd in can_write:
                if fd == stdin_w:
                    stdin_w, stdin_eof = _feed_stdin(stdin_w, stdin_buf, stdin_eof, wiring,
                                                     launch)
                elif hub is not None:
                    hub.writable(fd)
            for fd in ready:
                # an attach client's fd is the hub's even when the hub closed it in this
                # round (a write to a client that detached failed): never a source's
                if fd in hub_fds:
                    for kind, payload in hub.readable(fd):
                        if kind == "i" and stdin_w is not None and not stdin_eof:
                            stdin_buf += payload
                        elif kind == "c":
                            stdin_eof = True
                        elif kind == "r" and launch.pty_master is not None:
                            _set_winsize(launch.pty_master, payload)
                    hub.acknowledge()
                    continue
                if fd == proxy_fd:
                    proxy = _serve_proxy(proxy)
                elif fd == wake_r:
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
                elif fd == in_fd:
                    try:
                        data = os.read(in_fd, 65536)
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
                    except BlockingIOError:
                        # the pty master is non-blocking (it is stdin_w too): a readiness
                        # whose bytes were flushed meanwhile (tcflush in the container) is
                        # no end; taken as one, the master was closed and pid 1 hung up
                        continue
                    except OSError:  # EIO: the pty's last slave was closed
                        data = b""
                    if not data:
                        del sources[fd]
                        os.close(fd)
                        if fd == master:
                            # its number may be a proxy socket's or pipe's by the next
                            # round: nothing may write to it or wait on it again
                            launch.pty_master = master = None
                            if stdin_w == fd:
                                stdin_w = None
                        continue
                    if log is not None:
                        log.write(sources[fd], data)
                    if hub is not None:
                        hub.send(sources[fd], data)
                    to = out_fd if sources[fd] == "stdout" else err_fd
                    if to is not None:
                        _write_all(to, data)
            if exited and master is not None and master in sources:
                # pid 1 is gone, so is every process that held the pty: drain and stop.
                try:
                    os.set_blocking(master, False)
                    while data := os.read(master, 65536):
                        if log is not None:
                            log.write("stdout", data)
                        if hub is not None:
                            hub.send("stdout", data)
                        if out_fd is not None:
                            _write_all(out_fd, data)
                except OSError:
                    pass
                del sources[master]
                os.close(master)
                launch.pty_master = None
                if stdin_w == master:
                    stdin_w = None
        if hub is not None:
            # what clients still wait for is sent by hub.finish, once the exit is recorded
            hub.stop_listening()
    finally:
        if timer is not None:
            timer.stop()
        if old_tty is not None:
            import termios

            termios.tcsetattr(in_fd, termios.TCSADRAIN, old_tty)
        if wiring.in_w is not None:
            try:
                os.close(wiring.in_w)
            except OSError:
                pass
            wiring.in_w = None
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


def _feed_stdin(fd: int, buf: bytearray, eof: bool, wiring: Wiring, launch):
    """Write what attach clients sent for stdin (the fd is writable); at their close, the
    pipe's end closes (EOF for the container) or the pty gets ^D. Returns (fd, eof): fd
    None once stdin is closed."""
    if buf:
        try:
            n = os.write(fd, buf)
        except BlockingIOError:
            return fd, eof
        except OSError:  # nobody reads it any more
            buf.clear()
            n = 0
        del buf[:n]
    if eof and not buf:
        if fd == wiring.in_w:
            os.close(fd)
            wiring.in_w = None
        else:
            _write_all(fd, b"\x04")
        return None, False
    return fd, eof


def _set_winsize(master: int, payload: bytes) -> None:
    import fcntl
    import termios

    try:
        rows, cols = (int(x) for x in payload.split())
        size = (rows.to_bytes(2, "little") + cols.to_bytes(2, "little") + bytes(4))
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    except (ValueError, OSError):
        pass


def run_exec_pty(child: int, master: int | None, *, interactive: bool, scan=None,
                 detach=None) -> int | None:
    """`rl exec -t`: copy between the terminal and the pty until `child` exits. `scan`
    (the detach keys: bytes -> (bytes to pass on, hit)) looks at the terminal's input; at a
    hit, `detach()` hands the command over (True) and this returns None."""
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
                ready, _ = _poll(watch, [], 0.2)
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
                    continue
                hit = False
                if scan is not None:
                    data, hit = scan(data)
                if data:
                    _write_all(master, data)
                if hit and detach is not None and detach():
                    return None
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

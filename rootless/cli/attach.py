"""`rl attach`, and the terminal side of every attached session (run -i, start -ai,
attach): the CLI's own fds as the engine's streams, raw mode for a tty, its size followed
(SIGWINCH -> engine resize), and Docker's --sig-proxy (signals the CLI gets are sent to
the container through the engine's kill). The session itself is the engine's
(rootless.engine.running.attach)."""

from __future__ import annotations

import os
import signal
import sys

import click

# Docker's sig-proxy forwards every signal it can catch; these are the ones a user sends
# to a foreground command.
_PROXIED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
            signal.SIGUSR2)


class Terminal:
    """What the CLI does around an attached session; restore() undoes it."""

    def __init__(self, *, tty: bool, stdin: bool, sig_proxy: bool) -> None:
        self.tty = tty
        self.stdin = stdin
        self.sig_proxy = sig_proxy
        self.saved_tty = None
        self.old: dict = {}

    def started(self, cid: str) -> None:
        """The engine's on_started: the container runs, the session is about to begin."""
        from rootless.engine import containers

        if self.tty:
            if self.stdin and os.isatty(0):
                import termios
                import tty

                self.saved_tty = termios.tcgetattr(0)
                tty.setraw(0)
            size_fd = next((fd for fd in (0, 1) if os.isatty(fd)), None)
            if size_fd is not None:
                def follow(*_):
                    rows, cols = os.get_terminal_size(size_fd)[::-1]
                    try:
                        containers.resize(cid, rows, cols)
                    except Exception:  # it ended meanwhile: the session ends too
                        pass
                follow()
                self.old[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, follow)
        elif self.sig_proxy:
            def proxy(signum, frame):
                try:
                    containers.kill(cid, signum)
                except Exception:  # not running any more: the session ends by itself
                    pass
            for sig in _PROXIED:
                self.old[sig] = signal.signal(sig, proxy)

    def restore(self) -> None:
        if self.saved_tty is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved_tty)
            self.saved_tty = None
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        self.old = {}


def attached_exit(code: int | None) -> None:
    """Leave with the container's exit code (0 once detached by the keys)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if code is None else code)


@click.command()
@click.option("--no-stdin", is_flag=True, help="Do not attach stdin.")
@click.option("--sig-proxy", type=click.BOOL, default=True, metavar="true|false",
              help="Send the signals rl gets to the container (default true; not with "
                   "a tty, whose keys reach it anyway).")
@click.option("--detach-keys", metavar="KEYS",
              help="Keys that detach, leaving it running (default ctrl-p,ctrl-q).")
@click.argument("container")
def attach(no_stdin: bool, sig_proxy: bool, detach_keys: str | None, container: str) -> None:
    """Attach your terminal to a running container's stdin and output."""
    from rootless.engine import containers
    from rootless.engine.streams import Streams

    eng = containers
    c = eng.lookup(container)
    tty = bool(c.options.get("tty"))
    stdin = not no_stdin and bool(c.options.get("interactive"))
    if stdin and tty and not os.isatty(0):
        from rootless.errors import InvalidArgument

        raise InvalidArgument("the input device is not a TTY",
                              "attach from a terminal, or use --no-stdin")
    term = Terminal(tty=tty, stdin=stdin, sig_proxy=sig_proxy)
    term.started(c.id)
    try:
        # Docker's attach leaves the container's stdin open at our EOF (StdinOnce is
        # only for the run that made it)
        code = eng.attach(c.id, Streams(0 if stdin else None, 1, 2), detach_keys=detach_keys,
                          stdin_once=False)
    finally:
        term.restore()
    attached_exit(code)

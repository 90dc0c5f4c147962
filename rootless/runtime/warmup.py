"""What the zygote (rootless/runtime/zygote.py) runs once, at its first quiet moment: the
work of its children, on stand-ins, so that the children it forks later share the result.

CPython 3.11 writes into a function's code object while it is new (a call counter, then
the bytecode rewritten with inline caches, then each instruction's counter until it is
specialised) and builds caches lazily; in a forked child each such write copies a page
it shared with the zygote. So the zygote serves FUSE requests on scratch layers
(fuse_overlay/warm.py) and runs a detached container's monitor loop on a stand-in
container (a child that writes a line to stdout and stderr and exits) with the attach
socket and log file the real one has, and passes fds and a JSON request over a socket
pair as its clients do. Measured with 20 containers running (docs/design.md section 4).

Best effort: a failure here costs memory, never service. Everything made is closed and
removed before it returns; the stand-in is reaped by run_loop, or by the zygote's own
reaping of its children if the loop failed.
"""

from __future__ import annotations

import contextlib
import os

ROUNDS = 16  # past CPython's quickening delay (8 calls) and its first specialisations


def warm_up(scratch: str) -> None:
    """Warm the fuse server's and the monitor's code; `scratch`: a new directory's path
    (made and removed here) next to the zygote's socket."""
    try:
        from fuse_overlay import warm

        warm.warm_up(scratch + ".fuse", rounds=ROUNDS)
    except Exception:
        pass
    try:
        os.mkdir(scratch, 0o700)
    except OSError:
        return
    try:
        for _ in range(ROUNDS):
            _requests()
            _monitor(scratch)
    except Exception:
        pass
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


def _requests() -> None:
    """A request as a client sends it (JSON and fds on a unix socket), read the way the
    zygote's child reads it. Small and fixed (not our environment, which may be larger
    than the socket's buffer: the send would wait for a reader that is this thread)."""
    import json
    import socket

    from rootless.runtime import zygote

    req = {"monitor": {"env": {"PATH": "/usr/bin:/bin", "HOME": "/", "LANG": "C.UTF-8"},
                       "umask": 0o22, "fds": {"out": 1}},
           "lowerdirs": ["/a", "/b"], "upperdir": "/u", "workdir": "/w",
           "mountpoint": "/m", "ns_pid": 1, "options": {}}
    with contextlib.ExitStack() as done:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        done.callback(a.close)
        done.callback(b.close)
        r, w = os.pipe2(os.O_CLOEXEC)
        done.callback(os.close, r)
        done.callback(os.close, w)
        socket.send_fds(a, [json.dumps(req).encode() + b"\n"], [r, w])
        msg, fds, _, _ = socket.recv_fds(b, 1 << 20, 16)
        for fd in fds:
            done.callback(os.close, fd)
        zygote._whole_request(b, msg)


def _monitor(scratch: str) -> None:
    """monitor.run_loop as a detached container's monitor runs it (folded: pid 1 waited
    for on a pidfd; log file; attach socket) until the stand-in exits. Signals for us
    that come meanwhile reach run_loop's handlers: they are raised again at the end."""
    terms: list[int] = []
    try:
        _monitor_round(scratch, terms)
    finally:
        # signals for the zygote that came while the loop had the handlers: its own
        # handling now (SIGTERM ends it, SIGINT and SIGHUP are ignored)
        for sig in terms:
            os.kill(os.getpid(), sig)


def _monitor_round(scratch: str, terms: list[int]) -> None:
    import socket

    from rootless.runtime import attachsock, lean, monitor

    with contextlib.ExitStack() as done:
        writers: list[int] = []  # ours until the stand-in has them
        done.callback(lambda: [os.close(fd) for fd in writers])
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        writers.append(out_w)
        done.callback(_close_if, out_r, _ident(out_r))  # run_loop closes it at its end
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        writers.append(err_w)
        done.callback(_close_if, err_r, _ident(err_r))
        # unnamed (autobind): the runtime dir's path may be too long for a socket name
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        done.callback(listener.close)
        listener.bind("")
        listener.listen(8)
        pid = os.fork()
        if pid == 0:  # the stand-in for pid 1
            try:
                os.write(out_w, b"ready\n")
                os.write(err_w, b"warning\n")
            finally:
                os._exit(3)
        for fd in writers:
            os.close(fd)
        writers.clear()
        pidfd = os.pidfd_open(pid)
        done.callback(os.close, pidfd)
        hub = attachsock.Hub(listener.detach(), os.path.join(scratch, "none.sock"), [])
        done.callback(hub.finish, None, 0)
        launch = lean._Started(0, f"p{pidfd}", None, pid)
        wiring = monitor.Wiring((0, 1, 2), out_r, err_r, tty=False, in_w=None)
        forwarder = monitor.Forwarder()
        forwarder.install()
        try:
            code = monitor.run_loop(launch, wiring, log_path=os.path.join(scratch, "log"),
                                    attach=False, interactive=False,
                                    send_signal=terms.append, forwarder=forwarder, hub=hub)
        finally:
            forwarder.restore()
            terms.extend(forwarder.pending)  # caught after run_loop's last round
        hub.finish(code)


def _close_if(fd: int, ident) -> None:
    """Close `fd` if it is still the file it was (a number closed elsewhere may be
    another file's by now)."""
    if _ident(fd) == ident:
        os.close(fd)


def _ident(fd: int):
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino

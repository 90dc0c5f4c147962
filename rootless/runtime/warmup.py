"""What the zygote (rootless/runtime/zygote.py) runs once before it forks anything: the
work of its children, on stand-ins, so that the children share the result.

CPython 3.11 writes into a function's code object while it is new (a call counter, then
the bytecode rewritten with inline caches, then each instruction's counter until it is
specialised) and builds caches lazily; in a forked child each such write copies a page
it shared with the zygote. So the zygote serves FUSE requests on scratch layers
(fuse_overlay/warm.py) and runs a detached container's monitor loop on a stand-in
container (a child that writes a line to stdout and stderr and exits) with the attach
socket and log file the real one has, and passes fds and a JSON request over a socket
pair as its clients do. Measured with 20 containers running (docs/design.md section 4).

Best effort: a failure here costs memory, never service. Everything made is closed,
reaped and removed before it returns.
"""

from __future__ import annotations

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
        for i in range(ROUNDS):
            _requests()
            _monitor(scratch, i)
    except Exception:
        pass
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


def _requests() -> None:
    """A request as a client sends it (JSON and fds on a unix socket), read the way the
    zygote's child reads it."""
    import json
    import socket

    from rootless.runtime import zygote

    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        req = {"monitor": {"env": dict(os.environ), "umask": 0o22, "fds": {"out": 1}},
               "lowerdirs": ["/a", "/b"], "upperdir": "/u", "workdir": "/w",
               "mountpoint": "/m", "ns_pid": 1, "options": {}}
        socket.send_fds(a, [json.dumps(req).encode() + b"\n"], [r, w])
        msg, fds, _, _ = socket.recv_fds(b, 1 << 20, 16)
        zygote._whole_request(b, msg)
        for fd in fds:
            os.close(fd)
    finally:
        for s in (a, b):
            s.close()
        os.close(r)
        os.close(w)


def _monitor(scratch: str, i: int) -> None:
    """monitor.run_loop as a detached container's monitor runs it (folded: pid 1 waited
    for on a pidfd; log file; attach socket) until the stand-in exits."""
    import socket

    from rootless.runtime import attachsock, lean, monitor

    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the stand-in for pid 1
        try:
            os.write(out_w, b"ready\n")
            os.write(err_w, b"warning\n")
        finally:
            os._exit(3)
    os.close(out_w)
    os.close(err_w)
    pidfd = os.pidfd_open(pid)
    path = os.path.join(scratch, f"attach{i}.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    listener.bind(path)
    listener.listen(8)
    terms: list[int] = []
    pipes = {fd: _ident(fd) for fd in (out_r, err_r)}
    try:
        launch = lean._Started(0, f"p{pidfd}", None, pid)
        wiring = monitor.Wiring((0, 1, 2), out_r, err_r, tty=False, in_w=None)
        hub = attachsock.Hub(listener.detach(), path, [])
        forwarder = monitor.Forwarder()
        forwarder.install()
        try:
            code = monitor.run_loop(launch, wiring, log_path=os.path.join(scratch, "log"),
                                    attach=False, interactive=False,
                                    send_signal=terms.append, forwarder=forwarder, hub=hub)
        finally:
            forwarder.restore()
        hub.finish(code)
    finally:
        listener.close()
        os.close(pidfd)
        for fd, ident in pipes.items():  # run_loop closes them at their end: a number
            if _ident(fd) == ident:      # may be another file's by now
                os.close(fd)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        # signals for the zygote that came while the loop had the handlers: its own
        # handling now (SIGTERM ends it, SIGINT and SIGHUP are ignored)
        for sig in terms:
            os.kill(os.getpid(), sig)


def _ident(fd: int):
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino

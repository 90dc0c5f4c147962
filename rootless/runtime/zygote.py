"""A warm per-user process that has the fuse_overlay server imported and forks one server
per container on request: the import of the server (pyfuse3 and fuse_overlay) leaves the
start of a container.

Protocol, on the unix socket `<runtime dir>/fuse-zygote-<key>.sock` (the runtime dir is
private to the user and checked on every use; the zygote checks that its peer has our uid
AND is in our user namespace: a container's root has our kernel uid too, and a server
the zygote forks runs with all of the user's file access): the monitor connects (connect(),
before it forks the sandbox, which soon leaves the user's namespace), the zygote checks the
peer and forks a child for the connection at once, and goes back to accept(). The sandbox,
which inherited the connection, sends one JSON message (the rootfs description plus
`ns_pid`, its own pid, whose user and mount namespaces the server joins) with one fd
attached, the write end of the pipe on which the server writes b"1" once the mount is
live; the child answers b"k<pid>" and serves (rootless.runtime.early.serve: it ends with
the FUSE connection, or, if it could not leave the sandbox's mount namespace, with the
sandbox, which it then watches with a pidfd).

The key names the code (rl's version, the fuse_overlay files' mtimes): a zygote of older
code is never used. The zygote exits after IDLE seconds without a request, or when its
socket is removed or replaced; idle, it never wakes (no timer but the idle limit).
`rl run` starts one after its container ended when none answers (until then a server is
forked for each foreground container); the monitor of a detached container starts one
before its own start and waits for it (connect_or_spawn). At its first quiet moment it
runs its children's work on stand-ins (rootless/runtime/warmup.py), so that they share
the pages that work writes instead of each copying them.
"""

from __future__ import annotations

import json
import os
import signal

WARM_AFTER = 0.2  # seconds without a request before the warm-up
IDLE = 600.0
DISABLE_ENV = "RL_FUSE_ZYGOTE"  # "0" disables


def enabled() -> bool:
    return os.environ.get(DISABLE_ENV, "1") != "0"


def _key() -> str:
    import zlib

    from rootless import __version__

    parts = [__version__]
    try:
        import fuse_overlay

        # the server's code, and the monitors' and sandboxes' it forks too (runtime, and
        # the linux/ and top-level modules they import)
        here = os.path.dirname(__file__)
        top = os.path.dirname(here)
        for d in (os.path.dirname(fuse_overlay.__file__), here, top,
                  os.path.join(top, "linux")):
            for name in sorted(os.listdir(d)):
                if name.endswith(".py"):
                    parts.append(f"{d}/{name}:{os.stat(os.path.join(d, name)).st_mtime_ns}")
    except (ImportError, OSError):
        pass
    return f"{zlib.crc32(' '.join(parts).encode()):08x}"


def socket_path(create: bool = False) -> str:
    from rootless.store import paths

    return str(paths.runtime_dir(create=create) / f"fuse-zygote-{_key()}.sock")


def pid_path() -> str:
    return socket_path()[: -len(".sock")] + ".pid"


def connect():
    """A connection to the zygote (a socket), or None when none answers. Made by the
    monitor, in the user's own namespace, before it forks the sandbox: the zygote serves
    no peer of another user namespace (see _peer_is_ours), and the sandbox, which sends
    the request on this connection once it knows its rootfs, has left it by then."""
    if not enabled():
        return None
    path = socket_path()
    if not os.path.exists(path):
        return None
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
    except OSError:
        s.close()
        return None
    return s


def request(spec: dict, ns_pid: int, conn: int) -> tuple[int, int] | None:
    """Ask for a server on `conn` (the fd of a connect() socket; closed here): the fd to
    wait on for its ready byte and the server's pid (not our child: wait for it with a
    pidfd), or None when the zygote did not answer (the caller then forks a server)."""
    import socket

    s = socket.socket(fileno=conn)
    try:
        r, w = os.pipe()
        try:
            socket.send_fds(s, [json.dumps(dict(spec, ns_pid=ns_pid)).encode() + b"\n"], [w])
        finally:
            os.close(w)
        answer = b""
        while chunk := s.recv(64):  # b"k<pid>", then the server closes its end
            answer += chunk
        if not answer.startswith(b"k") or not answer[1:].isdigit():
            os.close(r)
            return None
        return r, int(answer[1:])
    except OSError:
        return None
    finally:
        s.close()


def connect_or_spawn(timeout: float = 3.0):
    """connect(), starting the zygote first when none answers, and waiting for it (up to
    `timeout`; None then: the caller forks a server of its own). For a detached
    container's monitor, whose start nobody waits on as on a foreground `rl run`'s: its
    server is then a fork of the zygote too (~4 MiB PSS, not the 16 MiB of a server that
    imported everything itself), and its sandbox may exit while the container runs
    (rootless/runtime/sandbox.py). Forks: a single-threaded caller only."""
    conn = connect()
    if conn is not None or not enabled():
        return conn
    import time

    try:
        spawn()
    except OSError:
        return None
    deadline = time.monotonic() + timeout
    delay = 0.002
    while (conn := connect()) is None and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return conn


def available() -> bool:
    return enabled() and os.path.exists(socket_path())


def spawn() -> None:
    """Start a zygote in the background (double fork, setsid) unless one runs."""
    if not enabled():
        return
    path = socket_path(create=True)
    if os.path.exists(path):
        return
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            child = os.fork()
            if child != 0:
                # Written before spawn() returns, so whoever started it can stop it; one
                # line per spawn (of several at once, the one that gets the lock stays).
                with open(path[: -len(".sock")] + ".pid", "a") as f:
                    f.write(f"{child}\n")
                os._exit(0)
            # A fresh interpreter: a fork of `rl run` would carry click, the engine and
            # sqlite into every server it forks (~8 MiB PSS per zygote).
            from rootless.runtime import lean

            try:
                lean.exec_entry("zygote_main", [], [])
            except OSError:
                _main(path)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def _main(path: str) -> None:
    import fcntl
    import select
    import socket
    import time

    from rootless.linux import syscalls as sc
    from rootless.runtime import early

    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    sc.neutralize_fds({0, 1, 2})
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def on_term(signum, frame):
        raise SystemExit(0)  # through the finally below: the socket goes too

    signal.signal(signal.SIGTERM, on_term)
    # Idle, the zygote sleeps in select() without a timeout but its idle limit: it wakes
    # for a connection, the end of a server it forked (SIGCHLD, through the wakeup pipe),
    # and a change to its socket's name (inotify), never on a timer.
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    lock = os.open(path[: -len(".sock")] + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                   0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another zygote is starting
    try:
        server = early.import_server()
    except ImportError:
        return
    import gc

    # and what a detached container's monitor runs (rootless/runtime/monitorfork.py)
    from rootless.runtime import attachsock, lean, logfile, monitor, monitorfork, warmup  # noqa: F401

    # Every object made so far goes to the collector's permanent generation: a forked
    # server's collections then never write to their pages (the gc header sits in each
    # object), so those pages stay shared with us instead of being copied per container.
    gc.collect()
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    tmp = f"{path}.{os.getpid()}"
    listener.bind(tmp)
    listener.listen(64)
    os.rename(tmp, path)
    ino = os.stat(path).st_ino  # ours, as long as nobody replaced or removed it
    # unlink, rename over it, rm -r of the directory: IN_ATTRIB (its link count) or
    # IN_MOVE_SELF/IN_DELETE_SELF on the socket's inode
    watch = sc.inotify_watch(path, sc.IN_ATTRIB | sc.IN_MOVE_SELF | sc.IN_DELETE_SELF)
    last = time.monotonic()
    warm = False
    try:
        while (left := IDLE - (time.monotonic() - last)) > 0:
            ready, _, _ = select.select([listener, wake_r] + ([watch] if watch >= 0 else []),
                                        [], [], left if warm else min(left, WARM_AFTER))
            if not ready and not warm:
                # The first quiet moment: run our children's work on stand-ins
                # (rootless/runtime/warmup.py), so that they share its result. Not before
                # listening: the `rl run -d` that started us waits for its monitor.
                warmup.warm_up(f"{path}.warm.{os.getpid()}")
                # the monitor loop it ran had a wakeup pipe of its own: ours again, and a
                # server that ended meanwhile is reaped
                signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
                _reap()
                gc.collect()
                gc.freeze()
                warm = True
                from rootless.trace import trace

                trace("Z warmed up")
                continue
            if wake_r in ready:
                _drain(wake_r)
                _reap()
            if watch in ready:
                _drain(watch)
            try:
                if os.stat(path).st_ino != ino:
                    return
            except OSError:
                return  # socket removed (its directory too): nothing will call us
            if listener not in ready:
                continue
            conn, _ = listener.accept()
            last = time.monotonic()
            _handle(conn, server)
    finally:
        try:
            if os.stat(path).st_ino == ino:
                os.unlink(path)
        except OSError:
            pass
        listener.close()


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _reap() -> None:
    """Reap the servers whose container ended."""
    while True:
        try:
            done, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if not done:
            return


SO_PEERPIDFD = 77  # Linux 6.5; not in Python 3.11's socket module


def _peer_is_ours(conn) -> bool:
    """Is the process at the other end of `conn` one of ours: our uid, and our user
    namespace (compared by the (st_dev, st_ino) of /proc/PID/ns/user)? A process of a
    container, or of `rl unshare`, runs as our kernel uid in a user namespace of its own:
    it must not get a server that mounts what it names with our file access."""
    import socket
    import struct

    cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", cred)
    if uid != os.getuid() or pid <= 0:
        return False
    # The pid was the peer's when it connected; a pidfd of that very process (where the
    # kernel has SO_PEERPIDFD) proves it had not exited, so its pid was not reused, when
    # we looked at its namespace.
    pidfd = -1
    try:
        pidfd = struct.unpack("i", conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD, 4))[0]
    except OSError:
        pass
    try:
        mine = os.stat("/proc/self/ns/user")
        theirs = os.stat(f"/proc/{pid}/ns/user")
        if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
            return False
        if pidfd >= 0:
            import select

            return not select.select([pidfd], [], [], 0)[0]  # readable: it exited
        return True
    except OSError:
        return False
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _handle(conn, server) -> None:
    """Fork a server for a peer that is ours, at once: the child waits for the request
    (the sandbox sends it once it knows its rootfs) while we go back to accept()."""
    try:
        if not _peer_is_ours(conn):
            return
        pid = os.fork()
        if pid == 0:
            _child(conn, server)
    except OSError:
        pass
    finally:
        conn.close()


def _whole_request(conn, msg: bytes) -> dict:
    """The JSON request that `msg` begins: a long one (a monitor's, with the caller's
    environment) arrives in more than one read; it ends with a newline or where the
    JSON ends."""
    while True:
        try:
            return json.loads(msg)
        except ValueError:
            if not msg or msg.endswith(b"\n"):
                raise
        chunk = conn.recv(1 << 20)
        if not chunk:
            raise ValueError("the request ended early")
        msg += chunk


def _child(conn, server) -> None:
    import socket

    from rootless.linux import syscalls as sc
    from rootless.runtime import early

    ready_w = -1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # Drop the zygote's listener, lock, inotify watch and wakeup pipe now, not once
        # the request came: a child waiting for it with the lock made a zygote started
        # meanwhile give up, and its copy of the listener kept a dead zygote's socket.
        sc.neutralize_fds({0, 1, 2, conn.fileno()})
        msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 16)
        spec = _whole_request(conn, msg)
        if "monitor" in spec:  # a detached container's monitor, not a server
            from rootless.runtime import monitorfork

            monitorfork.serve(conn, spec["monitor"], fds)
        if len(fds) != 1:
            os._exit(0)
        ready_w = fds[0]
        conn.sendall(b"k%d" % os.getpid())
        conn.close()
        early.serve(server, spec, ready_w, watch=True)
    except BaseException as exc:
        try:
            if ready_w >= 0:
                os.write(ready_w, f"E {exc}".encode(errors="replace"))
        finally:
            os._exit(1)
    os._exit(0)

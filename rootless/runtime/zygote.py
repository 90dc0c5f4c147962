"""A warm per-user process that has the fuse_overlay server imported and forks one server
per container on request: the import of the server (pyfuse3 and fuse_overlay) leaves the
start of a container.

Protocol, on the unix socket `<runtime dir>/fuse-zygote-<key>.sock` (the runtime dir is
private to the user and checked on every use; the zygote checks that its peer has our uid
AND is in our user namespace: a container's root has our kernel uid too, and a server
the zygote forks runs with all of the user's file access): the client sends one JSON message
(the rootfs description plus `ns_pid`, the sandbox whose user and mount namespaces the
server joins) with one fd attached, the write end of the pipe on which the server writes
b"1" once the mount is live. The zygote forks, the child serves (rootless.runtime.early
.serve, with a pidfd watch on the sandbox so it never outlives the container) and the
zygote goes back to accept().

The key names the code (rl's version, the fuse_overlay files' mtimes): a zygote of older
code is never used. The zygote exits after IDLE seconds without a request, or when its
socket is removed. `rl run` starts one (after its container ended, so that the start
itself does not pay for it) when none answers; until then it forks a server itself.
"""

from __future__ import annotations

import json
import os
import signal

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

        d = os.path.dirname(fuse_overlay.__file__)
        for name in sorted(os.listdir(d)):
            if name.endswith(".py"):
                parts.append(f"{name}:{os.stat(os.path.join(d, name)).st_mtime_ns}")
    except (ImportError, OSError):
        pass
    return f"{zlib.crc32(' '.join(parts).encode()):08x}"


def socket_path(create: bool = False) -> str:
    from rootless.store import paths

    return str(paths.runtime_dir(create=create) / f"fuse-zygote-{_key()}.sock")


def pid_path() -> str:
    return socket_path()[: -len(".sock")] + ".pid"


def request(spec: dict, ns_pid: int) -> tuple[int, int] | None:
    """Ask the zygote for a server; the fd to wait on for its ready byte and the server's
    pid (not our child: wait for it with a pidfd), or None when no zygote answers (the
    caller then forks a server itself)."""
    if not enabled():
        return None
    path = socket_path()
    if not os.path.exists(path):
        return None
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
        r, w = os.pipe()
        try:
            socket.send_fds(s, [json.dumps(dict(spec, ns_pid=ns_pid)).encode()], [w])
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
    # Every object made so far goes to the collector's permanent generation: a forked
    # server's collections then never write to their pages (the gc header sits in each
    # object), so those pages stay shared with us instead of being copied per container.
    import gc

    gc.collect()
    gc.freeze()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    tmp = f"{path}.{os.getpid()}"
    listener.bind(tmp)
    listener.listen(64)
    os.rename(tmp, path)
    ino = os.stat(path).st_ino  # ours, as long as nobody replaced or removed it
    last = time.monotonic()
    try:
        while time.monotonic() - last < IDLE:
            ready, _, _ = select.select([listener], [], [], 1.0)
            while True:  # reap servers whose container ended
                try:
                    done, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if not done:
                    break
            try:
                if os.stat(path).st_ino != ino:
                    return
            except OSError:
                return  # socket removed (its directory too): nothing will call us
            if not ready:
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
    import socket

    try:
        if not _peer_is_ours(conn):
            return
        msg, fds, _, _ = socket.recv_fds(conn, 65536, 1)
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return
        ready_w = fds[0]
        spec = json.loads(msg)
        pid = os.fork()
        if pid == 0:
            from rootless.runtime import early

            try:
                conn.sendall(b"k%d" % os.getpid())
                conn.close()
                early.serve(server, spec, ready_w, watch=True)
            except BaseException as exc:
                try:
                    os.write(ready_w, f"E {exc}".encode(errors="replace"))
                finally:
                    os._exit(1)
        os.close(ready_w)
    except (OSError, ValueError):
        pass
    finally:
        conn.close()

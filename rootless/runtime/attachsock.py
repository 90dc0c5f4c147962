"""A container's attach socket: how a client that is not the monitor reads the container's
output, writes its stdin and resizes its terminal while it runs.

The monitor (rootless.runtime.monitor.run_loop, in the `rl run` process in the
foreground or in the lean monitor of a detached container) listens on
`<runtime dir>/attach-<short id>.sock` (the runtime dir is the user's, 0700, checked on
every use) from before the container starts until its exit is recorded. Every connection
must come from our uid AND our user namespace (as the fuse zygote checks: a process of a
container runs as our kernel uid too). Conmon's attach socket was the model (one socket per
container beside its other runtime files, the monitor the only one holding the pty
master); the framing is ours, because our clients are our own code.

Frames, both ways: one kind byte, the payload length (4 bytes, big endian), the payload.
  client -> monitor: h hello (flags, comma-separated: `replay` sends this run's output
                     from the log first, `once` ends after that replay), i stdin bytes,
                     c close stdin, r resize ("ROWS COLS")
  monitor -> client: 1 stdout bytes, 2 stderr bytes, a resize applied, x exit code (sent
                     once the exit is recorded; then the monitor closes the connection)
A client gets the output from its hello on (after the replay, which ends at the log offset
of the moment of the hello: the monitor is the only writer of ctr.log, so no byte is lost
or repeated between the two). A client that does not read is dropped once MAX_QUEUED bytes
wait for it, as the monitor never blocks on one.

Imported by the lean monitor: os, select, errno and the C module _socket only (no enum).
"""

import _socket
import os
import select
import sys

MAX_QUEUED = 8 << 20
MAX_FRAME = 1 << 20  # from a client
SO_PEERPIDFD = 77  # Linux 6.5; not in Python 3.11


def socket_path(runtime_dir: str, container_id: str) -> str:
    return f"{runtime_dir}/attach-{container_id[:12]}.sock"


def frame(kind: bytes, data: bytes = b"") -> bytes:
    return kind + len(data).to_bytes(4, "big") + data


class FrameReader:
    """Frames out of a byte stream, as they complete."""

    def __init__(self, limit: int = 0) -> None:
        self.buf = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list:
        self.buf += data
        out = []
        while len(self.buf) >= 5:
            n = int.from_bytes(self.buf[1:5], "big")
            if self.limit and n > self.limit:
                raise ValueError("frame too large")
            if len(self.buf) < 5 + n:
                break
            out.append((bytes(self.buf[:1]), bytes(self.buf[5:5 + n])))
            del self.buf[:5 + n]
        return out


def peer_is_ours(fd: int) -> bool:
    """Our uid and our user namespace (see rootless.runtime.zygote._peer_is_ours)."""
    s = _socket.socket(fileno=fd)
    pidfd = -1
    try:
        cred = s.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        pid = int.from_bytes(cred[0:4], sys.byteorder, signed=True)
        uid = int.from_bytes(cred[4:8], sys.byteorder)
        if uid != os.getuid() or pid <= 0:
            return False
        try:
            pidfd = int.from_bytes(s.getsockopt(_socket.SOL_SOCKET, SO_PEERPIDFD, 4),
                                   sys.byteorder, signed=True)
        except OSError:
            pass
        mine = os.stat("/proc/self/ns/user")
        theirs = os.stat(f"/proc/{pid}/ns/user")
        if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
            return False
        if pidfd >= 0:  # readable: it exited (its pid may be another process's by now)
            # poll, not select: the monitor's fds go above select()'s 1024 when its
            # NOFILE limit allows (port_handler=proxy connections)
            p = select.poll()
            p.register(pidfd, select.POLLIN)
            return not p.poll(0)
        return True
    except OSError:
        return False
    finally:
        s.detach()
        if pidfd >= 0:
            os.close(pidfd)


def listen(path: str) -> int:
    """A listening socket at `path` (made under another name and renamed over it: a
    socket left by a monitor that was killed is replaced). Returns its fd."""
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    tmp = f"{path}.{os.getpid()}"
    try:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        s.bind(tmp)
        os.chmod(tmp, 0o600)
        s.listen(16)
        os.rename(tmp, path)
    except BaseException:
        s.close()
        raise
    return s.detach()


class _Client:
    __slots__ = ("fd", "hello", "once", "out", "reader", "replay")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reader = FrameReader(MAX_FRAME)
        self.out = bytearray()
        self.hello = False
        self.replay = None  # [position, end] in the log, while replaying
        self.once = False


class Hub:
    """The monitor's side: the listening socket and its clients. The monitor's loop
    selects on read_fds()/write_fds() and calls readable()/writable(); readable() returns
    what clients asked of the container: ("i", bytes), ("c", b""), ("r", b"ROWS COLS")."""

    def __init__(self, listen_fd: int, path: str, client_fds=()) -> None:
        self.listen_fd = listen_fd
        self.path = path
        try:
            self.ino = os.stat(path).st_ino
        except OSError:
            self.ino = None
        self.clients: dict[int, _Client] = {}
        for fd in client_fds:  # handed over by the caller of start: trusted, and they
            self._add(fd)      # get all the output, from before their hello arrives
            self.clients[fd].hello = True
        self.resized: list[_Client] = []
        self.log_fd = -1
        self.run_start = 0
        self.log_end = None  # the log offset now: a function of the monitor's writer

    def _add(self, fd: int) -> None:
        os.set_inheritable(fd, False)
        os.set_blocking(fd, False)
        self.clients[fd] = _Client(fd)

    def set_log(self, log_path: str | None, writer_fd: int | None) -> None:
        """This run's log: replays start at its current end."""
        if self.log_fd >= 0:
            os.close(self.log_fd)
            self.log_fd = -1
        if log_path is None or writer_fd is None:
            return
        try:
            self.log_fd = os.open(log_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        self.run_start = os.fstat(writer_fd).st_size
        self.log_end = lambda: os.fstat(writer_fd).st_size

    # -- the loop's side ---------------------------------------------------------------------
    def read_fds(self) -> list[int]:
        return ([self.listen_fd] if self.listen_fd >= 0 else []) + list(self.clients)

    def write_fds(self) -> list[int]:
        return [c.fd for c in self.clients.values() if c.out or c.replay]

    def readable(self, fd: int) -> list:
        if fd == self.listen_fd:
            self._accept()
            return []
        c = self.clients.get(fd)
        if c is None:
            return []
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return []
        except OSError:
            data = b""
        if not data:
            self._drop(c)
            return []
        try:
            frames = c.reader.feed(data)
        except ValueError:
            self._drop(c)
            return []
        asked = []
        for kind, payload in frames:
            if kind == b"h" and not c.hello:
                c.hello = True
                flags = payload.decode(errors="replace").split(",")
                c.once = "once" in flags
                if "replay" in flags and self.log_fd >= 0 and self.log_end is not None:
                    c.replay = [self.run_start, self.log_end()]
                elif c.once:
                    self._drop(c)
                    return asked
            elif kind in (b"i", b"c", b"r"):
                asked.append((kind.decode(), payload))
                if kind == b"r":  # acknowledged once applied (see acknowledge)
                    self.resized.append(c)
        return asked

    def _accept(self) -> None:
        s = _socket.socket(fileno=self.listen_fd)
        try:
            fd, _ = s._accept()
        except OSError:
            return
        finally:
            s.detach()
        os.set_inheritable(fd, False)
        if not peer_is_ours(fd):
            os.close(fd)
            return
        self._add(fd)

    def acknowledge(self) -> None:
        """The monitor applied the resizes readable() returned: tell their clients (a
        resize returns once it is in effect, as Docker's)."""
        for c in self.resized:
            if c.fd in self.clients:
                c.out += frame(b"a")
        self.resized = []

    def send(self, stream: str, data: bytes) -> None:
        """Output of the container, to every client that said hello."""
        f = frame(b"1" if stream == "stdout" else b"2", data)
        for c in list(self.clients.values()):
            if c.hello and not c.once:
                c.out += f
                if len(c.out) > MAX_QUEUED:
                    self._drop(c)

    def writable(self, fd: int) -> None:
        c = self.clients.get(fd)
        if c is None:
            return
        if not c.out and c.replay:
            self._replay_some(c)
        if c.out:
            try:
                n = os.write(fd, c.out)
            except BlockingIOError:
                return
            except OSError:
                self._drop(c)
                return
            del c.out[:n]
        if c.once and not c.out and not c.replay:
            self._drop(c)

    def _replay_some(self, c: _Client) -> None:
        pos, end = c.replay
        chunk = os.pread(self.log_fd, min(1 << 18, end - pos), pos) if pos < end else b""
        cut = chunk.rfind(b"\n") + 1
        if not chunk or cut == 0:  # the end, or a record longer than the chunk: stop
            c.replay = None
            return
        c.replay[0] = pos + cut
        out = []
        for line in chunk[:cut].split(b"\n")[:-1]:
            parts = line.split(b" ", 3)
            if len(parts) < 3:
                continue
            data = (parts[3] if len(parts) == 4 else b"") + (b"\n" if parts[2] == b"F" else b"")
            if data:
                out.append(frame(b"1" if parts[1] == b"stdout" else b"2", data))
        # the replay goes before what came live since the hello
        c.out[:0] = b"".join(out)

    def _drop(self, c: _Client) -> None:
        self.clients.pop(c.fd, None)
        try:
            os.close(c.fd)
        except OSError:
            pass

    def stop_listening(self) -> None:
        """No new clients (the container exited): the socket goes."""
        if self.listen_fd < 0:
            return
        try:
            if self.ino is not None and os.stat(self.path).st_ino == self.ino:
                os.unlink(self.path)
        except OSError:
            pass
        os.close(self.listen_fd)
        self.listen_fd = -1

    def finish(self, code, grace: float = 5.0) -> None:
        """The exit is recorded: flush what the clients still wait for (at most `grace`
        seconds for a slow one), send them the exit code and close. Idempotent."""
        self.stop_listening()
        import time

        deadline = time.monotonic() + grace
        tail = frame(b"x", b"" if code is None else str(code).encode())
        for c in self.clients.values():
            if c.hello and not c.once:
                c.out += tail
        while self.write_fds():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            p = select.poll()  # not select: fds above 1024 (see peer_is_ours)
            for fd in self.write_fds():
                p.register(fd, select.POLLOUT)
            try:
                ready = [fd for fd, _ in p.poll(int(left * 1000) + 1)]
            except InterruptedError:
                continue
            for fd in ready:
                self.writable(fd)
        for c in list(self.clients.values()):
            self._drop(c)
        if self.log_fd >= 0:
            os.close(self.log_fd)
            self.log_fd = -1

    def handover_fds(self) -> list[int]:
        """The fds a new image of the monitor keeps (see rootless.runtime.lean)."""
        return ([self.listen_fd] if self.listen_fd >= 0 else []) + list(self.clients)

    def handover_args(self) -> list[str]:
        return [str(self.listen_fd), self.path, ",".join(map(str, self.clients))]

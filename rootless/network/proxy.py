"""The proxy port handler (`--network slirp4netns:port_handler=proxy`): published ports
served by a helper of the container's monitor instead of slirp4netns's forwards.

Docker rootless (rootlesskit's builtin driver) and podman (rootlessport) forward ports
this way by default: a process accepts on the host and connects inside the container's
network namespace, so bytes go socket -> kernel -> socket instead of through libslirp's
user-space TCP stack. The price: the container sees its own address as the client's, not
the client's (slirp4netns's forwards keep it, which is why they stay rl's default).

How, and why so:
- `bind()`, in the monitor before the container's command runs (a port taken meanwhile
  is a Conflict there): one listening TCP socket or bound UDP socket per mapping, in the
  host's network namespace, and fds of the container's user and network namespaces.
- `Proxy.start()` forks the helper from the monitor (the lean one of a detached
  container: a fork shares its pages, so the helper costs what it writes, not a fresh
  interpreter's ~3 MiB). The helper joins the container's user namespace (our uid owns
  it, so setns may: the monitor itself cannot join its network namespace without that,
  and must not join the user namespace: it would lose the host's setuid newuidmap), then
  its network namespace. A socket keeps the namespace it was made in: the listeners stay
  the host's, every socket the helper makes from then on is the container's. It connects
  to the container's own address (10.0.2.100 with the default cidr), as docker-proxy
  connects to the container's IP: a server bound to the container's 127.0.0.1 is not
  published, as with slirp4netns's forwards.
- TCP bytes move with splice(2) through a pipe per direction (os.splice): none passes
  through Python, which only runs the epoll loop. UDP datagrams are copied by the helper
  (splice keeps no datagram boundaries), one socket in the container per client address,
  dropped after UDP_IDLE seconds without traffic (docker-proxy's 90 s).
- Idle, the helper sleeps in epoll_wait without a timeout (a timeout only while a UDP
  flow lives), so an idle container still has no process that wakes.
- Lifetime: the monitor kills it (SIGKILL) when the container ends, which closes the
  listeners: the port is free when `rl stop` returns. If the monitor dies first,
  PR_SET_PDEATHSIG kills the helper. It has a session of its own (no terminal signals).

Hand-written: no library proxies between two network namespaces; the loop is small.
"""

from __future__ import annotations

import os

HANDLERS = ("slirp4netns", "proxy")  # "rootlesskit" (podman's word) means proxy
UDP_IDLE = 90.0
PIPE_SIZE = 1 << 20  # F_SETPIPE_SZ; the unprivileged maximum by default (pipe-max-size)
_F_SETPIPE_SZ = 1031
_F_GETPIPE_SZ = 1032
_SPLICE = 2 | 1  # SPLICE_F_NONBLOCK | SPLICE_F_MOVE
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1


class Proxy:
    """The listeners of a container's published ports and, once started, the helper
    serving them. `stop()` when the container ends; `handover()`/`adopt()` carry it across
    the monitor's exec into the lean monitor (rootless.runtime.lean)."""

    handover_key = "proxy"

    def __init__(self, listeners: list[list], userns: int, netns: int, guest: str,
                 pid: int | None = None) -> None:
        self.listeners = listeners  # [fd, "tcp"|"udp", container port]
        self.userns = userns
        self.netns = netns
        self.guest = guest
        self.pid = pid

    def fds(self) -> list[int]:
        """What must stay open across the monitor's exec."""
        if self.pid:
            return []
        return [fd for fd, _, _ in self.listeners] + [self.userns, self.netns]

    def handover(self) -> dict:
        return {"listeners": self.listeners, "userns": self.userns, "netns": self.netns,
                "guest": self.guest, "pid": self.pid}

    @classmethod
    def adopt(cls, state: dict) -> Proxy:
        return cls(state["listeners"], state["userns"], state["netns"], state["guest"],
                   state.get("pid"))

    def start(self) -> None:
        """Fork the helper. The caller must be single-threaded (PDEATHSIG follows the
        forking thread) and keeps only the helper's pid: the listeners are the helper's."""
        if self.pid:
            return
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            try:
                _helper(parent, self.listeners, self.userns, self.netns, self.guest)
            except BaseException as exc:  # no terminal: the reason goes to rl.log
                try:
                    from rootless import crashlog

                    crashlog.record(exc, "port proxy")
                finally:
                    os._exit(1)
            os._exit(0)
        self.pid = pid
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in [fd for fd, _, _ in self.listeners] + [self.userns, self.netns]:
            try:
                os.close(fd)
            except OSError:
                pass
        self.listeners = []

    def terminate(self) -> None:
        """Kill the helper without waiting (its listeners close with it)."""
        if self.pid:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Kill and reap the helper (or close the listeners of one never started). Safe
        to call twice."""
        if self.pid:
            self.terminate()
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = None
        else:
            self._close_fds()


def bind(mappings, ns_pid: int, guest: str) -> Proxy:
    """Listeners for `mappings` (ports.PortMapping) on the host and fds of the namespaces
    of `ns_pid` (the sandbox: its user and network namespaces are the container's). A port
    in use raises Conflict naming it; nothing is left open then."""
    import errno
    import socket

    from rootless.errors import Conflict

    listeners: list[list] = []
    ns_fds: list[int] = []
    try:
        for m in mappings:
            family = socket.AF_INET6 if ":" in m.host_ip else socket.AF_INET
            kind = socket.SOCK_STREAM if m.protocol == "tcp" else socket.SOCK_DGRAM
            sock = socket.socket(family, kind)
            try:
                if kind == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind((m.host_ip or "0.0.0.0", m.host_port))
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        raise Conflict(f"host port {m.host()}/{m.protocol} is already in use",
                                       "choose another host port, or stop what listens on it"
                                       ) from None
                    raise
                if kind == socket.SOCK_STREAM:
                    sock.listen(socket.SOMAXCONN)
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            listeners.append([sock.detach(), m.protocol, m.container_port])
        for ns in ("user", "net"):
            ns_fds.append(os.open(f"/proc/{ns_pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC))
    except BaseException:
        for fd in [fd for fd, _, _ in listeners] + ns_fds:
            os.close(fd)
        raise
    return Proxy(listeners, ns_fds[0], ns_fds[1], guest)


def start_handed_over(net: str) -> str:
    """In the lean monitor (rootless.runtime.lean), before its loop: start the helper of
    the proxy the heavy monitor bound, and return `net` with the helper's pid in it (for
    the end: rootless.engine.running.finish_detached stops it)."""
    import json

    state = json.loads(net)
    proxy = Proxy.adopt(state["proxy"])
    proxy.start()
    state["proxy"] = proxy.handover()
    return json.dumps(state)


# -- the helper ----------------------------------------------------------------------------
# Runs in the forked child. It imports only C modules (_socket, select, fcntl) and, on
# Pythons before 3.12 (no os.setns), rootless.linux.syscalls (ctypes).

def _setns(fd: int, kind: int) -> None:
    if hasattr(os, "setns"):
        os.setns(fd, kind)
    else:
        from rootless.linux import syscalls

        syscalls.setns(fd, kind)


def _prctl_pdeathsig() -> None:
    from rootless.linux import syscalls

    syscalls.prctl(_PR_SET_PDEATHSIG, 9)


def _helper(parent: int, listeners: list[list], userns: int, netns: int, guest: str) -> None:
    import _signal

    from rootless.linux import syscalls

    keep = {fd for fd, _, _ in listeners} | {userns, netns}
    syscalls.neutralize_fds(keep)  # the monitor's pipes, sockets, slirp4netns's exit fd
    os.setsid()  # no SIGINT from the user's terminal: the monitor forwards those
    for sig in (2, 15, 1, 3, 10, 12):
        _signal.signal(sig, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    _setns(userns, _CLONE_NEWUSER)
    _setns(netns, _CLONE_NEWNET)
    os.close(userns)
    os.close(netns)
    # after setns: joining a user namespace changes the credentials, which clears it
    _prctl_pdeathsig()
    if os.getppid() != parent:
        return
    _Loop(listeners, guest).run()


class _Loop:
    """The helper's epoll loop (level-triggered; each fd's interest follows its state)."""

    def __init__(self, listeners: list[list], guest: str) -> None:
        import _socket
        import select

        self._socket = _socket
        self.select = select
        self.guest = guest
        self.ep = select.epoll()
        self.handlers: dict[int, object] = {}
        self.listeners: dict[int, tuple] = {}
        for fd, proto, port in listeners:
            lsock = _socket.socket(fileno=fd)
            self.listeners[fd] = (lsock, proto, port)
            self.handlers[fd] = self._accept if proto == "tcp" else self._udp_in
            self.ep.register(fd, select.EPOLLIN)
        self.paused = False  # out of fds: listeners unregistered until a connection ends
        self.flows: dict[tuple, _Flow] = {}

    def run(self) -> None:
        import time

        while True:
            timeout = -1.0
            if self.flows:
                timeout = max(0.0, min(f.last for f in self.flows.values()) + UDP_IDLE
                              - time.monotonic())
            try:
                events = self.ep.poll(timeout)
            except InterruptedError:
                continue
            for fd, ev in events:
                handler = self.handlers.get(fd)
                if handler is not None:
                    handler(fd, ev)
            if self.flows:
                self._expire(time.monotonic())

    # -- tcp --

    def _accept(self, fd: int, ev: int) -> None:
        import errno

        lsock, _, port = self.listeners[fd]
        for _ in range(64):
            try:
                cfd, _addr = lsock._accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause()
                return
            try:
                _Conn(self, cfd, port)
            except OSError as exc:
                os.close(cfd)
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    self._pause()
                    return

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            for fd in self.listeners:
                self.ep.unregister(fd)

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            for fd in self.listeners:
                self.ep.register(fd, self.select.EPOLLIN)

    # -- udp --

    def _udp_in(self, fd: int, ev: int) -> None:
        import time

        lsock, _, port = self.listeners[fd]
        now = time.monotonic()
        for _ in range(64):
            try:
                data, addr = lsock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            flow = self.flows.get((fd, addr))
            if flow is None:
                try:
                    flow = _Flow(self, fd, addr, port)
                except OSError:
                    continue
            flow.last = now
            try:
                flow.sock.send(data)
            except OSError:
                pass

    def _expire(self, now: float) -> None:
        for flow in list(self.flows.values()):
            if now - flow.last >= UDP_IDLE:
                flow.close()


class _Flow:
    """One UDP client address: a connected socket in the container's namespace."""

    def __init__(self, loop: _Loop, lfd: int, addr: tuple, port: int) -> None:
        import time

        _socket = loop._socket
        self.loop, self.lfd, self.addr = loop, lfd, addr
        self.sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        try:
            self.sock.connect((loop.guest, port))
        except BaseException:
            self.sock.close()
            raise
        self.last = time.monotonic()
        loop.flows[(lfd, addr)] = self
        loop.handlers[self.sock.fileno()] = self._reply
        loop.ep.register(self.sock.fileno(), loop.select.EPOLLIN)

    def _reply(self, fd: int, ev: int) -> None:
        import time

        lsock = self.loop.listeners[self.lfd][0]
        self.last = time.monotonic()
        for _ in range(64):
            try:
                data = self.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP port unreachable from the container: try again later
                return
            try:
                lsock.sendto(data, self.addr)
            except OSError:
                pass

    def close(self) -> None:
        fd = self.sock.fileno()
        self.loop.handlers.pop(fd, None)
        self.loop.ep.unregister(fd)
        self.sock.close()
        del self.loop.flows[(self.lfd, self.addr)]


class _Half:
    """One direction of a TCP connection: src -> pipe -> dst."""

    __slots__ = ("buffered", "cap", "dst", "eof", "pr", "pw", "shut", "src")

    def __init__(self, src: int, dst: int) -> None:
        import fcntl

        self.src, self.dst = src, dst
        self.pr, self.pw = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            self.cap = fcntl.fcntl(self.pw, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:  # over the user's pipe quota: what it has (64 KiB by default)
            self.cap = fcntl.fcntl(self.pw, _F_GETPIPE_SZ)
        self.buffered = 0
        self.eof = False
        self.shut = False

    def pump(self) -> None:
        """Move what can move now; raises OSError on a broken connection."""
        while True:
            moved = False
            if not self.eof and self.buffered < self.cap:
                try:
                    n = os.splice(self.src, self.pw, self.cap - self.buffered, flags=_SPLICE)
                except BlockingIOError:
                    n = -1
                if n == 0:
                    self.eof = True
                elif n > 0:
                    self.buffered += n
                    moved = True
            if self.buffered:
                try:
                    m = os.splice(self.pr, self.dst, self.buffered, flags=_SPLICE)
                except BlockingIOError:
                    m = 0
                self.buffered -= m
                moved = moved or m > 0
            if self.eof and not self.buffered and not self.shut:
                self.shut = True
                _shutdown_wr(self.dst)
            if not moved:
                return

    def close(self) -> None:
        os.close(self.pr)
        os.close(self.pw)


def _shutdown_wr(fd: int) -> None:
    import _socket

    s = _socket.socket(fileno=fd)
    try:
        s.shutdown(_socket.SHUT_WR)
    except OSError:
        pass
    finally:
        s.detach()


class _Conn:
    """One TCP client: its accepted socket and one made in the container's namespace."""

    def __init__(self, loop: _Loop, cfd: int, port: int) -> None:
        _socket = loop._socket
        self.loop = loop
        self.client = cfd
        os.set_blocking(cfd, False)
        up = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        self.upstream = up.detach()
        os.set_blocking(self.upstream, False)
        self.connected = False
        self.halves: list[_Half] = []
        self.mask = {cfd: 0, self.upstream: 0}
        s = _socket.socket(fileno=self.upstream)
        try:
            err = s.connect_ex((loop.guest, port))
        finally:
            s.detach()
        if err not in (0, 115):  # EINPROGRESS
            os.close(self.upstream)
            raise OSError(err, os.strerror(err))
        loop.handlers[cfd] = self._event
        loop.handlers[self.upstream] = self._event
        loop.ep.register(cfd, 0)
        loop.ep.register(self.upstream, loop.select.EPOLLOUT)
        self.mask[self.upstream] = loop.select.EPOLLOUT

    def _event(self, fd: int, ev: int) -> None:
        try:
            if not self.connected:
                if fd != self.upstream:
                    return
                s = self.loop._socket.socket(fileno=self.upstream)
                try:
                    err = s.getsockopt(self.loop._socket.SOL_SOCKET, self.loop._socket.SO_ERROR)
                finally:
                    s.detach()
                if err:
                    raise OSError(err, os.strerror(err))
                self.connected = True
                self.halves = [_Half(self.client, self.upstream),
                               _Half(self.upstream, self.client)]
            for half in self.halves:
                half.pump()
        except OSError:
            self.close()
            return
        if all(h.shut for h in self.halves):
            self.close()
            return
        self._interest()

    def _interest(self) -> None:
        sel = self.loop.select
        want = {self.client: 0, self.upstream: 0}
        for h in self.halves:
            if not h.eof and h.buffered < h.cap:
                want[h.src] |= sel.EPOLLIN
            if h.buffered:
                want[h.dst] |= sel.EPOLLOUT
        for fd, mask in want.items():
            if self.mask[fd] != mask:
                self.loop.ep.modify(fd, mask)
                self.mask[fd] = mask

    def close(self) -> None:
        for fd in (self.client, self.upstream):
            self.loop.handlers.pop(fd, None)
            try:
                self.loop.ep.unregister(fd)
            except OSError:
                pass
            os.close(fd)
        for h in self.halves:
            h.close()
        self.halves = []
        self.loop.resume()

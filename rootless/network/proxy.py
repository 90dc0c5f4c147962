"""The proxy port handler (`--network slirp4netns:port_handler=proxy`): published ports
served by the container's monitor instead of slirp4netns's forwards.

Docker rootless (rootlesskit's builtin driver) and podman (rootlessport) forward ports
this way by default: a process accepts on the host and connects inside the container's
network namespace, so bytes go socket -> kernel -> socket instead of through libslirp's
user-space TCP stack. The price: the container sees its own address as the client's, not
the client's (slirp4netns's forwards keep it, which is why they stay rl's default).

How, and why so:
- `bind()`, in the monitor before the container's command runs (a port taken meanwhile
  is a Conflict there): one listening TCP socket or bound UDP socket per mapping, in the
  host's network namespace, and fds of the container's user and network namespaces.
- The monitor serves them in its own loop (rootless.runtime.monitor.run_loop watches
  the proxy's epoll fd), in the lean monitor of a detached container too: no process of
  its own, so no memory of its own. A socket keeps the network namespace it was made in:
  the listeners are the host's; the sockets that connect to the container are made in
  its namespace by a child forked for the purpose (`_make_sockets`: it joins the
  container's user namespace, which our uid owns, then its network namespace, and sends
  a batch of unconnected sockets back), kept in a pool, connected by the monitor. One
  short-lived fork per batch (16 TCP sockets, 4 UDP, growing to 64 in a burst of
  connections), none while nothing connects. At most (soft RLIMIT_NOFILE - 256) / 6
  connections (128 under the usual 1024) are served at once; more wait in the listen
  backlog. Out of fds (EMFILE), the TCP listeners are paused until a connection or flow
  ends or a second passes; UDP goes on.
  It connects to the container's own address (10.0.2.100 with the default cidr), as
  docker-proxy connects to the container's IP: a server bound to the container's
  127.0.0.1 is not published, as with slirp4netns's forwards.
- TCP bytes move with splice(2) through a pipe per direction (os.splice): none passes
  through Python, which only runs the epoll loop. At most BIG_PIPES (16) pipes are
  enlarged to 1 MiB, so many connections do not use up the user's pipe quota (past it
  every new pipe of the user is 8 KiB). UDP datagrams are copied by the loop
  (splice keeps no datagram boundaries), one socket in the container per client address,
  dropped after UDP_IDLE seconds without traffic (docker-proxy's 90 s); at most
  MAX_FLOWS, the longest quiet one ending for a new one.
- The loop is hostile-client safe: a direction moves at most PUMP_BUDGET bytes per
  round (a fast stream cannot starve the monitor's other work); a socket with nothing to
  wait for is watched edge-triggered with an empty mask (epoll reports an error or
  hang-up even then, level-triggered it would report it again every round: a client
  reset while the container did not read spun the monitor), and an error ends the
  connection once what can move has moved.
- Idle, nothing wakes: the monitor's poll has no timeout from the proxy unless a UDP
  flow lives (then until its idle end) or accepting is paused (a second).
- Lifetime: the monitor closes the listeners when the container ends, before its exit is
  recorded, so the port is free when `rl stop` returns; a killed monitor's fds close with
  it.

Hand-written: no library proxies between two network namespaces; the loop is small.
"""

from __future__ import annotations

import os

UDP_IDLE = 90.0
PIPE_SIZE = 1 << 20  # F_SETPIPE_SZ; the unprivileged maximum by default (pipe-max-size)
# Pipes of PIPE_SIZE at once; the others keep the default 64 KiB. The kernel counts pipe
# pages per user (pipe-user-pages-soft, 64 MiB by default) and past it gives every new
# pipe of the user 8 KiB: 32 connections with two 1 MiB pipes each did that to all the
# user's pipes. 16 MiB is a quarter of the default quota.
BIG_PIPES = 16
MAX_BATCH = 64  # sockets of the container's namespace made by one fork
MAX_UDP_BATCH = 16
# Connections served at once (more wait in the listen backlog): each holds 6 fds (2
# sockets, 2 pipes), so what the monitor's soft RLIMIT_NOFILE allows less FD_RESERVE for
# the pools, UDP flows, its own files and attach clients: 128 under the usual 1024.
FD_RESERVE = 256
MAX_CONNS = 4096
# UDP client addresses served at once, one socket each: a new one beyond this ends the
# flow that was quiet the longest (conntrack's way), so a client sending from many source
# ports cannot take the monitor's fds.
MAX_FLOWS = 64
# Bytes one direction of a connection splices (in and out of its pipe) per loop round:
# then the monitor's other work (attach clients, signals, the exit, other connections)
# gets its turn; level-triggered epoll brings the rest next round.
PUMP_BUDGET = 4 << 20
# Bytes spliced in one round of the monitor's loop over all connections: past it, the
# rest waits a round, so the log, attach clients, signals and the exit are not starved.
ROUND_BUDGET = 16 << 20
# Out of fds, the TCP listeners are unwatched (clients wait in the backlog) until a
# connection or flow ends, or this many seconds pass (fds freed elsewhere, a raised limit).
RETRY_ACCEPT = 1.0
_F_SETPIPE_SZ = 1031
_F_GETPIPE_SZ = 1032
_SPLICE = 2 | 1  # SPLICE_F_NONBLOCK | SPLICE_F_MOVE
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000


class Proxy:
    """The listeners of a container's published ports and, once started, the loop serving
    them in the monitor. The monitor's select watches `fd` (an epoll fd: readable when any
    of the proxy's sockets is ready) and calls `service()`, and waits at most `timeout()`
    (a UDP flow's end). `stop()` when the container ends; `handover()`/`adopt()` carry the
    fds across the monitor's exec into the lean monitor (rootless.runtime.lean)."""

    handover_key = "proxy"

    def __init__(self, listeners: list[list], userns: int, netns: int, guest: str) -> None:
        self.listeners = listeners  # [fd, "tcp"|"udp", container port]
        self.userns = userns
        self.netns = netns
        self.guest = guest
        self.loop: _Loop | None = None
        self.stopped = False

    def fds(self) -> list[int]:
        """What must stay open across the monitor's exec."""
        return [fd for fd, _, _ in self.listeners] + [self.userns, self.netns]

    def handover(self) -> str:
        """`USERNS;NETNS;GUEST;FD:PROTO:PORT,...`: digits, letters and punctuation only, so
        the lean monitor finds it in the JSON it is given without a JSON parser (json
        imports re and enum: a MiB and more in every such monitor)."""
        return ";".join([str(self.userns), str(self.netns), self.guest,
                         ",".join(f"{fd}:{proto}:{port}" for fd, proto, port in self.listeners)])

    @classmethod
    def adopt(cls, state: str) -> Proxy:
        userns, netns, guest, items = state.split(";")
        listeners = [[int(fd), proto, int(port)] for fd, proto, port in
                     (item.split(":") for item in items.split(",") if item)]
        return cls(listeners, int(userns), int(netns), guest)

    def start(self) -> None:
        """Serve from now on (in the process that will run the monitor's loop)."""
        if self.loop is None and not self.stopped:
            self.loop = _Loop(self.listeners, self.guest, self.userns, self.netns)

    def watch(self) -> int | None:
        """The fd for the monitor's select (None once stopped)."""
        return self.loop.ep.fileno() if self.loop is not None else None

    def service(self) -> None:
        """Handle what is ready (the epoll fd was readable, or timeout() passed)."""
        if self.loop is not None:
            self.loop.service(0)

    def timeout(self) -> float | None:
        """Seconds until service() must run even if nothing is ready (a UDP flow's idle
        end, a paused accept's retry), else None."""
        return self.loop.timeout() if self.loop is not None else None

    def terminate(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Close the listeners (the ports are free then), every connection and the
        namespace fds. Safe to call twice."""
        if self.stopped:
            return
        self.stopped = True
        if self.loop is not None:
            self.loop.close()
            self.loop = None
        for fd in [fd for fd, _, _ in self.listeners] + [self.userns, self.netns]:
            try:
                os.close(fd)
            except OSError:
                pass
        self.listeners = []


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


# -- in the monitor ------------------------------------------------------------------------
# The loop imports only C modules (_socket, select, fcntl) and, once a connection comes,
# rootless.linux.syscalls (ctypes: prctl for the socket child, setns before Python 3.12):
# the lean monitor of a detached container runs it (rootless/runtime/lean.py).

def _child_calls():
    """(setns, nondumpable) for the forked child: os.setns (Python 3.12+), else ctypes'
    (rootless.linux.syscalls), and prctl(PR_SET_DUMPABLE, 0), which Python has not.
    Imported in the monitor, not in each forked child: ctypes' import took 50 ms in a
    child here, under load, against ~0.4 MiB PSS once in the monitor of a container that
    has connections."""
    from rootless.linux import syscalls

    def nondumpable() -> None:
        syscalls.prctl(syscalls.PR_SET_DUMPABLE, 0)

    return getattr(os, "setns", syscalls.setns), nondumpable


def _make_sockets(userns: int, netns: int, kind: int, count: int) -> list[int]:
    """`count` sockets made in the container's network namespace, unconnected (a connect
    from here routes in their namespace). A child forked for it joins the container's user
    namespace (ours owns it: setns may), then its network namespace, makes them and sends
    them back (SCM_RIGHTS), and exits: the monitor itself must not join the user
    namespace (it would lose the host's setuid newuidmap) and cannot join the network
    namespace without it. A fork of this single-threaded process is single-threaded, as
    setns into a user namespace requires."""
    import _socket
    import errno
    import sys

    setns, nondumpable = _child_calls()
    ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        pid = os.fork()
        if pid == 0:
            try:
                # a fork of the monitor (its fds, the host's root) in the container's
                # namespaces: no container process may open its /proc/PID/*
                nondumpable()
                setns(userns, _CLONE_NEWUSER)
                setns(netns, _CLONE_NEWNET)
                fds = b"".join(
                    _socket.socket(_socket.AF_INET, kind | _socket.SOCK_NONBLOCK
                                   | _socket.SOCK_CLOEXEC).detach().to_bytes(4, sys.byteorder)
                    for _ in range(count))
                theirs.sendmsg([b"k"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
            finally:
                os._exit(0)
        theirs.close()
        try:
            _, anc, flags, _ = ours.recvmsg(1, _socket.CMSG_SPACE(4 * count))
        finally:
            while True:
                try:
                    os.waitpid(pid, 0)
                    break
                except InterruptedError:
                    continue
                except ChildProcessError:
                    break
    finally:
        ours.close()
        theirs.close()
    out: list[int] = []
    for level, typ, data in anc:
        if level == _socket.SOL_SOCKET and typ == _socket.SCM_RIGHTS:
            out += [int.from_bytes(data[i:i + 4], sys.byteorder)
                    for i in range(0, len(data) - len(data) % 4, 4)]
    if not out:
        if flags & _socket.MSG_CTRUNC:  # no fd number left for them here
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        raise OSError(1, "could not make a socket in the container's network namespace")
    return out


class _Loop:
    """The proxy's epoll loop (level-triggered; each fd's interest follows its state)."""

    def __init__(self, listeners: list[list], guest: str, userns: int, netns: int) -> None:
        import _socket
        import select

        self._socket = _socket
        self.select = select
        self.guest = guest
        self.userns, self.netns = userns, netns
        self.pools: dict[int, list[int]] = {_socket.SOCK_STREAM: [], _socket.SOCK_DGRAM: []}
        self.batch = {_socket.SOCK_STREAM: 0, _socket.SOCK_DGRAM: 0}
        self.refilled = {_socket.SOCK_STREAM: 0.0, _socket.SOCK_DGRAM: 0.0}
        self.pipes: list[tuple[int, int, int]] = []  # empty pipes to reuse: (r, w, size)
        self.big_pipes = 0  # pipes of PIPE_SIZE open (in use or kept for reuse)
        self.ep = select.epoll()
        self.handlers: dict[int, object] = {}
        self.listeners: dict[int, tuple] = {}
        for fd, proto, port in listeners:
            lsock = _socket.socket(fileno=fd)
            self.listeners[fd] = (lsock, proto, port, lsock.family)
            self.handlers[fd] = self._accept if proto == "tcp" else self._udp_in
            self.ep.register(fd, select.EPOLLIN)
        self.budget = ROUND_BUDGET  # what this round may still splice
        self.closed: set[int] = set()  # fds closed in this round (service)
        self.paused = False  # TCP listeners unwatched: at max_conns, or out of fds
        self.retry_at: float | None = None  # out of fds: when to try accepting again
        self.flows: dict[tuple, _Flow] = {}
        self.conns: set[_Conn] = set()
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.max_conns = MAX_CONNS if soft < 0 else max(16, min(MAX_CONNS,
                                                                (soft - FD_RESERVE) // 6))

    def inner_socket(self, kind: int) -> int:
        """An unconnected socket of the container's namespace, from a pool refilled a
        batch at a time: one fork per batch, not per connection. A batch is 16 TCP (4 UDP)
        sockets, doubled up to MAX_BATCH while refills come within 2 s of each other
        (a burst of connections), so an idle container holds few."""
        import time

        pool = self.pools[kind]
        if not pool:
            now = time.monotonic()
            tcp = kind == self._socket.SOCK_STREAM
            first, most = (16, MAX_BATCH) if tcp else (4, MAX_UDP_BATCH)
            recent = now - self.refilled[kind] < 2.0
            self.batch[kind] = min(most, self.batch[kind] * 2) if recent else first
            self.refilled[kind] = now
            pool += _make_sockets(self.userns, self.netns, kind, self.batch[kind])
        return pool.pop()

    def pipe(self) -> tuple[int, int, int]:
        """A pipe (r, w, its size) for a direction of a connection: an empty one a closed
        connection left, else a new one, of PIPE_SIZE while fewer than BIG_PIPES are."""
        if self.pipes:
            return self.pipes.pop()
        import fcntl

        r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        if self.big_pipes < BIG_PIPES:
            try:
                size = fcntl.fcntl(w, _F_SETPIPE_SZ, PIPE_SIZE)
                self.big_pipes += 1
                return r, w, size
            except OSError:  # over the user's pipe quota
                pass
        # what it has: 64 KiB by default, 8 KiB once the user is over the quota
        return r, w, fcntl.fcntl(w, _F_GETPIPE_SZ)

    def unpipe(self, r: int, w: int, size: int, empty: bool) -> None:
        if empty and len(self.pipes) < 16:
            self.pipes.append((r, w, size))
        else:
            os.close(r)
            os.close(w)
            if size >= PIPE_SIZE:
                self.big_pipes -= 1

    def timeout(self) -> float | None:
        if not self.flows and self.retry_at is None:
            return None
        import time

        due = [f.last + UDP_IDLE for f in self.flows.values()]
        if self.retry_at is not None:
            due.append(self.retry_at)
        return max(0.0, min(due) - time.monotonic())

    def service(self, timeout: float) -> None:
        try:
            events = self.ep.poll(timeout)
        except InterruptedError:
            return
        self.budget = ROUND_BUDGET
        # an fd closed by an earlier event of this batch: its later events were its old
        # owner's, not those of a connection that got the same number meanwhile
        self.closed = set()
        if self.retry_at is not None:
            import time

            if time.monotonic() >= self.retry_at:
                self.resume()
        for fd, ev in events:
            handler = self.handlers.get(fd)
            if handler is not None and fd not in self.closed:
                try:
                    handler(fd, ev)
                except Exception as exc:  # a bug here must not end the monitor's loop
                    self._drop(fd, handler)
                    from rootless import crashlog

                    crashlog.record(exc, "port proxy")
        if self.flows:
            import time

            self._expire(time.monotonic())

    def _drop(self, fd: int, handler) -> None:
        """After a failure in `handler`: its connection or flow closed, or the listener
        no longer watched, so that a level-triggered fd cannot spin the loop."""
        owner = getattr(handler, "__self__", None)
        try:
            if isinstance(owner, (_Conn, _Flow)):
                owner.close()
                return
        except Exception:
            pass
        self.handlers.pop(fd, None)
        entry = self.listeners.pop(fd, None)
        if entry is not None:
            entry[0].detach()  # the Proxy closes the listeners' fds
        try:
            self.ep.unregister(fd)
        except OSError:
            pass

    def close(self) -> None:
        for conn in list(self.conns):
            conn.close()
        for flow in list(self.flows.values()):
            flow.close()
        for lsock, *_ in self.listeners.values():
            lsock.detach()  # the Proxy closes the listeners' fds
        self.listeners = {}
        for pool in self.pools.values():
            for fd in pool:
                os.close(fd)
            pool.clear()
        for r, w, _ in self.pipes:
            os.close(r)
            os.close(w)
        self.pipes = []
        self.ep.close()

    # -- tcp --

    def _accept(self, fd: int, ev: int) -> None:
        import errno

        lsock, _, port, family = self.listeners[fd]
        for _ in range(64):
            if len(self.conns) >= self.max_conns:  # the rest wait in the listen backlog
                self._pause(out_of_fds=False)
                return
            try:
                cfd, _addr = lsock._accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause(out_of_fds=True)  # the client waits in the backlog
                return
            try:
                _Conn(self, cfd, family, port)
            except OSError as exc:
                os.close(cfd)
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    self._pause(out_of_fds=True)
                return

    def _pause(self, out_of_fds: bool) -> None:
        """Stop watching the TCP listeners (UDP goes on: its flows need no new fd): until
        a connection ends, and, out of fds, at most RETRY_ACCEPT seconds (fds may be freed
        by what the proxy does not see, or the limit raised)."""
        if out_of_fds:
            import time

            self.retry_at = time.monotonic() + RETRY_ACCEPT
        if not self.paused:
            self.paused = True
            for fd, (_, proto, *_) in self.listeners.items():
                if proto == "tcp":
                    self.ep.unregister(fd)

    def resume(self) -> None:
        """Watch the TCP listeners again (something was freed): at worst they fail once
        more and pause again."""
        self.retry_at = None
        if self.paused:
            self.paused = False
            for fd, (_, proto, *_) in self.listeners.items():
                if proto == "tcp":
                    self.ep.register(fd, self.select.EPOLLIN)

    # -- udp --

    def _udp_in(self, fd: int, ev: int) -> None:
        import time

        lsock, _, port, _ = self.listeners[fd]
        now = time.monotonic()
        for _ in range(64):
            try:
                data, addr = lsock.recvfrom(65535)
            except OSError:  # EAGAIN: all read
                return
            flow = self.flows.get((fd, addr))
            if flow is None:
                if len(self.flows) >= MAX_FLOWS:
                    min(self.flows.values(), key=lambda f: f.last).close()
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
        self.sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM, 0,
                                   loop.inner_socket(_socket.SOCK_DGRAM))
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
        self.loop.closed.add(fd)
        self.loop.handlers.pop(fd, None)
        self.loop.ep.unregister(fd)
        self.sock.close()
        del self.loop.flows[(self.lfd, self.addr)]
        self.loop.resume()  # a fd is free: accept again if that was what stopped it


class _Half:
    """One direction of a TCP connection: src -> pipe -> dst (sockets; dst is shut down
    for writing once src ended and the pipe is empty)."""

    __slots__ = ("buffered", "cap", "dsock", "dst", "eof", "pr", "pw", "shut", "src",
                 "stalled")

    def __init__(self, src, dst, pipe: tuple[int, int, int]) -> None:
        self.src, self.dst, self.dsock = src.fileno(), dst.fileno(), dst
        self.pr, self.pw, self.cap = pipe
        self.buffered = 0
        self.eof = False
        self.shut = False
        # the pipe took nothing with bytes in it: full by its slots (one per packet
        # fragment: 16 small segments fill a 64 KiB pipe), not by `cap`. Until bytes
        # leave it, src is not watched: its level-triggered readiness would spin the loop
        self.stalled = False

    def pump(self, budget: int = PUMP_BUDGET) -> int:
        """Move what can move now, up to `budget` bytes spliced (the rest next round: its
        fds stay ready, and the loop is level-triggered); the bytes moved. Raises OSError
        on a broken connection."""
        left = budget
        while left > 0:
            moved = False
            if not self.eof and self.buffered < self.cap:
                try:
                    n = os.splice(self.src, self.pw, min(self.cap - self.buffered, left),
                                  flags=_SPLICE)
                except BlockingIOError:
                    n = -1
                    self.stalled = self.buffered > 0
                if n == 0:
                    self.eof = True
                elif n > 0:
                    self.buffered += n
                    left -= n
                    moved = True
            if self.buffered:
                try:
                    m = os.splice(self.pr, self.dst, self.buffered, flags=_SPLICE)
                except BlockingIOError:
                    m = 0
                self.buffered -= m
                if m > 0:
                    self.stalled = False
                moved = moved or m > 0
            if self.eof and not self.buffered and not self.shut:
                self.shut = True
                try:
                    self.dsock.shutdown(1)  # SHUT_WR
                except OSError:
                    pass
            if not moved:
                break
        return budget - left

    def close(self, loop: _Loop) -> None:
        loop.unpipe(self.pr, self.pw, self.cap, self.buffered == 0)


class _Conn:
    """One TCP client: its accepted socket and one made in the container's namespace.
    Socket objects are made with family and type given: else each would ask the kernel."""

    def __init__(self, loop: _Loop, cfd: int, family: int, port: int) -> None:
        _socket = loop._socket
        self.loop = loop
        ufd = loop.inner_socket(_socket.SOCK_STREAM)  # OSError: the caller closes cfd
        os.set_blocking(cfd, False)
        self.csock = _socket.socket(family, _socket.SOCK_STREAM, 0, cfd)
        self.usock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, 0, ufd)
        self.client, self.upstream = cfd, ufd
        self.connected = False
        self.halves: list[_Half] = []
        self.mask = {cfd: 0, ufd: 0}
        err = self.usock.connect_ex((loop.guest, port))
        if err not in (0, 115):  # EINPROGRESS
            self.csock.detach()  # the caller closes the client's fd
            self.usock.close()
            raise OSError(err, os.strerror(err))
        loop.conns.add(self)
        loop.handlers[cfd] = self._event
        loop.handlers[ufd] = self._event
        # while connecting, the client only for its reset (edge-triggered, empty mask:
        # its bytes wait in its socket, an error is reported once)
        loop.ep.register(cfd, loop.select.EPOLLET)
        self.mask[cfd] = loop.select.EPOLLET
        loop.ep.register(ufd, loop.select.EPOLLOUT)
        self.mask[ufd] = loop.select.EPOLLOUT
        if err == 115:
            # the container's address is local to its namespace: the handshake is usually
            # done when connect() returns, so go on without another round of the loop
            try:
                self.usock.getpeername()
            except OSError:
                return
        self._event(ufd, 0)

    def _event(self, fd: int, ev: int) -> None:
        sel = self.loop.select
        try:
            if not self.connected:
                if fd != self.upstream:
                    if ev & (sel.EPOLLERR | sel.EPOLLHUP):  # the client reset: give up
                        self.close()
                    return
                _socket = self.loop._socket
                err = self.usock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
                if err:
                    raise OSError(err, os.strerror(err))
                first = self.loop.pipe()
                try:
                    second = self.loop.pipe()
                except OSError:
                    self.loop.unpipe(*first, True)
                    raise
                self.connected = True
                self.halves = [_Half(self.csock, self.usock, first),
                               _Half(self.usock, self.csock, second)]
            for half in self.halves:
                # what is left of this round's budget (ROUND_BUDGET): past it, the rest
                # waits for the next round, so the monitor's other work is not starved
                if self.loop.budget > 0:
                    self.loop.budget -= half.pump(min(PUMP_BUDGET, self.loop.budget))
        except OSError as exc:
            self.close()
            import errno

            if exc.errno in (errno.EMFILE, errno.ENFILE):  # no fds for its pipes
                self.loop._pause(out_of_fds=True)
            return
        # an error (a reset) on either socket ends the connection once what could move
        # has moved: else a socket with nothing to splice would never see it
        if ev & sel.EPOLLERR or all(h.shut for h in self.halves):
            self.close()
            return
        self._interest()

    def _interest(self) -> None:
        sel = self.loop.select
        want = {self.client: 0, self.upstream: 0}
        for h in self.halves:
            if not h.eof and h.buffered < h.cap and not h.stalled:
                want[h.src] |= sel.EPOLLIN
            if h.buffered:
                want[h.dst] |= sel.EPOLLOUT
        for fd, mask in want.items():
            # epoll reports an error or hang-up even with an empty mask: edge-triggered,
            # once, not every round (a hang-up with bytes left to move is no end)
            mask = mask or sel.EPOLLET
            if self.mask[fd] != mask:
                self.loop.ep.modify(fd, mask)
                self.mask[fd] = mask

    def close(self) -> None:
        for fd in (self.client, self.upstream):
            self.loop.closed.add(fd)
            self.loop.handlers.pop(fd, None)
            try:
                self.loop.ep.unregister(fd)
            except OSError:
                pass
        self.csock.close()
        self.usock.close()
        for h in self.halves:
            h.close(self.loop)
        self.halves = []
        self.loop.conns.discard(self)
        self.loop.resume()


def take_handed_over(net: str) -> Proxy | None:
    """In the lean monitor (rootless.runtime.lean): the proxy the heavy monitor bound (its
    handover() under "proxy" in the JSON `net`), started; None if there is none. The lean
    monitor stops it before the exit is recorded."""
    key = '"proxy": "'
    at = net.find(key)
    if at < 0:
        return None
    at += len(key)
    proxy = Proxy.adopt(net[at:net.index('"', at)])
    proxy.start()
    return proxy

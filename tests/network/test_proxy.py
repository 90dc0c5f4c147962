"""The proxy port handler (`--network slirp4netns:port_handler=proxy`, rootless/network/
proxy.py) in real containers, as the unprivileged user: TCP and UDP forwarded, the ports
closed with the container, a port in use refused; and the attacks on the monitor that
serves them (a reset client, a flood of UDP source ports, running out of fds, fds above
select()'s 1024). Traffic stays on the host's loopback."""

from __future__ import annotations

import hashlib
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from tests.network.test_publish import (
    fetch,
    free_udp_port,
    ok,
    port_free,
    refused,
    udp_echo,
    udp_port_free,
)
from tests.support import users
from tests.support.registry import free_port

PROXY = "slirp4netns:port_handler=proxy"


def test_proxy_forwards_tcp_and_the_port_closes_with_the_container(rlc):
    port = free_port()
    cgi = ("mkdir -p /www/cgi-bin; cd /www/cgi-bin;"
           " printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n'"
           " > addr; printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\n"
           "head -c $CONTENT_LENGTH | md5sum\\n' > sum; chmod 755 addr sum;"
           " dd if=/dev/urandom of=/www/big bs=1M count=3 2>/dev/null;"
           " exec httpd -f -p 80 -h /www")
    ok(rlc, "run", "-d", "--name", "web", "--network", PROXY, "-p", f"127.0.0.1:{port}:80",
       rlc.voltest, "sh", "-c", cgi)
    assert fetch(port) == "hello from rl\n"
    assert ok(rlc, "port", "web").stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    # the documented price: the container sees its own address, not the client's
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/cgi-bin/addr", timeout=10) as r:
        seen = r.read().decode().strip().strip("[]").removeprefix("::ffff:")
    assert seen == "10.0.2.100"
    # more than the pipes hold, each way: what arrives is what was sent
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/big", timeout=30) as r:
        big = r.read()
    inside = ok(rlc, "exec", "web", "md5sum", "/www/big").stdout.split()[0]
    assert len(big) == 3 << 20 and hashlib.md5(big).hexdigest() == inside
    body = os.urandom(3 << 20)
    req = urllib.request.Request(f"http://127.0.0.1:{port}/cgi-bin/sum", data=body)
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.read().decode().split()[0] == hashlib.md5(body).hexdigest()
    ok(rlc, "stop", "-t", "1", "web")
    assert refused(port)
    assert port_free(port)
    ok(rlc, "start", "web")  # listens again at the next start
    assert fetch(port) == "hello from rl\n"
    ok(rlc, "rm", "-f", "web")
    assert port_free(port)


def test_proxy_forwards_udp_per_client_and_frees_the_port(rlc, udpecho_image):
    port = free_udp_port()
    ok(rlc, "pull", "-q", udpecho_image)
    ok(rlc, "run", "-d", "--name", "echo", "--network", "slirp4netns:port_handler=rootlesskit",
       "-p", f"127.0.0.1:{port}:{port}/udp", udpecho_image, "udpecho", str(port))
    assert udp_echo(port, b"first client") == b"first client"
    assert udp_echo(port, b"second client") == b"second client"  # another source port
    assert not udp_port_free(port)
    ok(rlc, "rm", "-f", "echo")
    assert udp_port_free(port)


def test_proxy_in_a_foreground_run_stops_with_it(rlc):
    port = free_port()
    proc = subprocess.Popen([users.rl_executable(), "run", "--name", "fg", "--network",
                             PROXY, "-p", f"127.0.0.1:{port}:80", rlc.voltest],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=rlc.env)
    try:
        assert fetch(port) == "hello from rl\n"
        # (not --rm: `rl stop` of a foreground --rm container races its removal)
        ok(rlc, "stop", "-t", "1", "fg")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert refused(port)
    assert port_free(port)
    ok(rlc, "rm", "fg")


def test_proxy_port_in_use_is_refused_and_nothing_is_left(rlc):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for detach in (["-d"], []):
            r = rlc("run", *detach, "--rm", "--network", PROXY, "-p", f"127.0.0.1:{port}:80",
                    rlc.voltest)
            assert r.returncode == 125
            assert f"127.0.0.1:{port}" in r.stderr and "in use" in r.stderr
            assert len(r.stderr.strip().splitlines()) == 1
            assert ok(rlc, "ps", "-aq").stdout == ""


def test_an_unknown_port_handler_is_one_line_and_exit_125(rlc):
    r = rlc("run", "--rm", "--network", "slirp4netns:port_handler=socat", "-p", "8080:80",
            rlc.busybox, "true")
    assert r.returncode == 125
    assert "port_handler=socat is not supported" in r.stderr
    assert ok(rlc, "ps", "-aq").stdout == ""


def _monitor(rlc, name: str) -> int:
    return int(ok(rlc, "inspect", "-f", "{{.State.MonitorPid}}", name).stdout)


def _cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` (its own threads, not its waited-for children)."""
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fds(pid: int) -> list[int]:
    return [int(fd) for fd in os.listdir(f"/proc/{pid}/fd")]


def _stuck_client(port: int) -> socket.socket:
    """A client connected through the proxy to a server that accepted and never reads:
    it sent until every buffer on the way was full (no byte moved for a second). Retries
    while the container's server is not listening yet (the proxy then closes the client)."""
    deadline = time.monotonic() + 30
    chunk = b"x" * 65536
    while True:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setblocking(False)
        sent = 0
        try:
            while True:
                try:
                    sent += s.send(chunk)
                    continue
                except BlockingIOError:
                    pass
                if not select.select([], [s], [], 1.0)[1]:
                    if sent > 1 << 20:
                        return s  # full (a closed one fails with EPIPE/ECONNRESET)
                    break
        except OSError:
            pass
        s.close()
        assert time.monotonic() < deadline, "the container's server never took the flood"
        time.sleep(0.2)


def test_a_client_that_resets_while_the_container_does_not_read_costs_no_cpu(rlc):
    """A reset client whose socket had nothing left to wait for (the container does not
    read, so the proxy watched it for nothing): epoll still reports its error and
    hang-up, level-triggered, and the monitor spun at 100% CPU on them."""
    port = free_port()
    ok(rlc, "run", "-d", "--name", "sink", "--network", PROXY, "-p", f"127.0.0.1:{port}:80",
       rlc.busybox, "sh", "-c", "sleep 3600 | nc -l -p 80 | sleep 3600")
    monitor = _monitor(rlc, "sink")
    _reset_costs_no_cpu(_stuck_client(port), monitor)
    _stops_cleanly(rlc, "sink")


def _reset_costs_no_cpu(client: socket.socket, monitor: int) -> None:
    """Reset `client` (RST); the monitor then uses (almost) no CPU for 3 s."""
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    time.sleep(0.5)
    before = _cpu_seconds(monitor)
    time.sleep(3)
    used = _cpu_seconds(monitor) - before
    assert used < 0.9, f"the monitor used {used:.2f} s of CPU in 3 s after a client reset"


@pytest.fixture(scope="session")
def listenonly_image(ctr_images, tmp_path_factory):
    """`listenonly` in the test registry: busybox + listenonly.c (a server that listens
    with a backlog of 0 and never accepts), built with gcc -static."""
    from tests.support import images

    return images.push_static_probe(ctr_images, tmp_path_factory.mktemp("listenonly"),
                                    Path(__file__).with_name("listenonly.c"), "listenonly",
                                    ["listenonly", "80"])


def test_a_client_that_resets_while_the_connect_hangs_costs_no_cpu(rlc, listenonly_image):
    """The proxy's connect into the container hangs (the server's accept queue is full:
    its SYNs are dropped); the client resets meanwhile. Its fd, registered with an empty
    mask while connecting, reported the error every round: the monitor spun until the
    connect timed out (minutes). Now the reset ends the connection."""
    port = free_port()
    ok(rlc, "pull", "-q", listenonly_image)
    ok(rlc, "run", "-d", "--name", "full", "--network", PROXY, "-p", f"127.0.0.1:{port}:80",
       listenonly_image)
    monitor = _monitor(rlc, "full")
    deadline = time.monotonic() + 30
    while True:  # the first connection that stays open fills the accept queue
        first = socket.create_connection(("127.0.0.1", port), timeout=5)
        first.settimeout(1)
        try:
            first.recv(1)  # b"" or a reset: not listening yet, the proxy closed it
        except TimeoutError:
            break
        except OSError:
            pass
        first.close()
        assert time.monotonic() < deadline, "the container's server never listened"
        time.sleep(0.2)
    with first:
        time.sleep(0.5)
        fds = len(_fds(monitor))
        hanging = socket.create_connection(("127.0.0.1", port), timeout=5)
        hanging.sendall(b"x" * 65536)
        time.sleep(1)  # the proxy accepted it and is connecting
        assert len(_fds(monitor)) > fds, "the proxy did not take the second client"
        _reset_costs_no_cpu(hanging, monitor)
        assert len(_fds(monitor)) <= fds, "the abandoned connection's fds are still open"
    _stops_cleanly(rlc, "full")


def _stops_cleanly(rlc, name: str) -> None:
    """The monitor is alive and records the exit (it was not wedged)."""
    ok(rlc, "stop", "-t", "1", name)
    assert ok(rlc, "inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "exited"


def test_udp_from_many_source_ports_is_capped_and_the_port_still_answers(rlc, udpecho_image):
    """A socket in the container per client address: a client sending from many source
    ports made one each until the monitor's fds ran out. Flows are capped (the least
    recently used goes)."""
    port = free_udp_port()
    ok(rlc, "pull", "-q", udpecho_image)
    ok(rlc, "run", "-d", "--name", "echo", "--network", PROXY,
       "-p", f"127.0.0.1:{port}:{port}/udp", udpecho_image, "udpecho", str(port))
    assert udp_echo(port, b"first") == b"first"
    monitor = _monitor(rlc, "echo")
    before = len(_fds(monitor))
    clients = []
    try:
        for i in range(400):  # each from its own source port, answered one after another
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            clients.append(s)
            s.settimeout(0.5)
            payload = b"client %d" % i
            for _ in range(20):
                s.sendto(payload, ("127.0.0.1", port))
                try:
                    if s.recv(2048) == payload:
                        break
                except (TimeoutError, ConnectionRefusedError):
                    pass
            else:
                raise AssertionError(f"client {i} got no answer")
        grown = len(_fds(monitor)) - before
    finally:
        for s in clients:
            s.close()
    assert grown < 200, f"the monitor holds {grown} more fds after 400 UDP clients"
    assert udp_echo(port, b"still there") == b"still there"


def _tcp_get(sock: socket.socket) -> bytes:
    sock.settimeout(20)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_out_of_fds_pauses_tcp_only_and_serving_resumes(rlc, udpecho_image):
    """At EMFILE the proxy stops accepting (the clients wait in the backlog): UDP flows
    go on, and accepting resumes once fds are there again, with no TCP client closing."""
    tport, uport = free_port(), free_udp_port()
    ok(rlc, "pull", "-q", udpecho_image)
    ok(rlc, "run", "-d", "--name", "both", "--network", PROXY,
       "-p", f"127.0.0.1:{tport}:80", "-p", f"127.0.0.1:{uport}:{uport}/udp",
       udpecho_image, "sh", "-c",
       f"mkdir /www; echo hi > /www/index.html; httpd -p 80 -h /www; exec udpecho {uport}")
    assert fetch(tport) == "hi\n"
    monitor = _monitor(rlc, "both")
    limits = resource.prlimit(monitor, resource.RLIMIT_NOFILE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(0.5)
        assert _echo_on(u, uport, b"before")  # the flow (and its socket) exists now
        used = set(_fds(monitor))
        lowest_free = min(set(range(len(used) + 1)) - used)
        resource.prlimit(monitor, resource.RLIMIT_NOFILE, (lowest_free, limits[1]))
        try:
            waiting = socket.create_connection(("127.0.0.1", tport), timeout=5)
            time.sleep(1)  # the proxy tried to accept it: EMFILE
            assert _echo_on(u, uport, b"while tcp waits"), "UDP stopped with TCP"
        finally:
            resource.prlimit(monitor, resource.RLIMIT_NOFILE, limits)
        with waiting:
            assert _tcp_get(waiting).endswith(b"\r\n\r\nhi\n")
    assert fetch(tport) == "hi\n"


def _echo_on(s: socket.socket, port: int, payload: bytes) -> bool:
    for _ in range(20):
        s.sendto(payload, ("127.0.0.1", port))
        try:
            if s.recv(2048) == payload:
                return True
        except (TimeoutError, ConnectionRefusedError):
            pass
    return False


def test_many_connections_with_a_raised_fd_limit_take_fds_above_1024(rlc):
    """With a soft NOFILE limit above 1024 (raised before `rl run`, which the monitor
    inherits), the proxy serves more connections at once, and the monitor's loop works
    with fds above select()'s FD_SETSIZE: the 200th connection, opened while the 199
    before it hold theirs, is answered."""
    port = free_port()
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, old[1]), old[1]))
    clients: list[socket.socket] = []
    try:
        ok(rlc, "run", "-d", "--name", "many", "--network", PROXY,
           "-p", f"127.0.0.1:{port}:80", rlc.voltest)
        assert fetch(port) == "hello from rl\n"
        monitor = _monitor(rlc, "many")
        for _ in range(199):  # connected, no request sent: httpd waits for it
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as last:
            assert _tcp_get(last).endswith(b"hello from rl\n")
        deadline = time.monotonic() + 20  # until the proxy has connected the 199 too
        while max(_fds(monitor)) < 1024 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert max(_fds(monitor)) >= 1024
        for c in clients[:5]:
            assert _tcp_get(c).endswith(b"hello from rl\n")
        # an attach client now gets fds above 1024 in the monitor too (its socket, the
        # pidfd of its peer check): select() there raised ValueError and the monitor died
        attach = subprocess.Popen([users.rl_executable(), "attach", "--no-stdin", "many"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=rlc.env, text=True)
        try:
            time.sleep(2)
            assert attach.poll() is None, attach.stderr.read()
            assert os.path.exists(f"/proc/{monitor}"), "the monitor died"
            with socket.create_connection(("127.0.0.1", port), timeout=5) as more:
                assert _tcp_get(more).endswith(b"hello from rl\n")
            ok(rlc, "stop", "-t", "1", "many")
            attach.wait(timeout=30)  # it saw the exit
        finally:
            if attach.poll() is None:
                attach.kill()
                attach.wait()
    finally:
        for c in clients:
            c.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, old)
    assert refused(port)
    assert port_free(port)


def test_one_direction_gives_the_loop_back_however_fast_both_ends_are():
    """A source that never runs dry and a sink that never fills (a container streaming to
    a fast client, at its limit): pump() moved bytes as long as any moved, and the
    monitor's loop (attach clients, signals, the exit, other connections) waited for the
    stream's end. Now it returns after PUMP_BUDGET bytes. In a child, so the old endless
    loop is a failure, not a hung suite."""
    code = textwrap.dedent("""
        import os
        from rootless.network import proxy
        src = open("/dev/zero", "rb", buffering=0)
        dst = open("/dev/null", "wb", buffering=0)
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        half = proxy._Half(src, dst, (r, w, 1 << 16))
        half.pump()
        half.pump()
        print("returned", half.buffered)
        """)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=30, cwd=os.path.dirname(os.path.dirname(
                                 os.path.dirname(os.path.abspath(__file__)))))
    except subprocess.TimeoutExpired:
        raise AssertionError("pump() never returned while both ends stayed ready") from None
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "returned"


@pytest.mark.slow
def test_a_udp_flow_that_goes_quiet_ends_without_spinning_the_monitor(rlc, udpecho_image):
    """A UDP flow ends after UDP_IDLE (90 s) of silence. The monitor's wait ended then,
    with nothing ready, and the proxy was served only when its epoll fd was: the flow
    never ended and every later wait was 0, 100% CPU until the next datagram."""
    from rootless.network.proxy import UDP_IDLE

    port = free_udp_port()
    ok(rlc, "pull", "-q", udpecho_image)
    ok(rlc, "run", "-d", "--name", "quiet", "--network", PROXY,
       "-p", f"127.0.0.1:{port}:{port}/udp", udpecho_image, "udpecho", str(port))
    assert udp_echo(port, b"once") == b"once"
    monitor = _monitor(rlc, "quiet")
    fds = len(_fds(monitor))
    time.sleep(UDP_IDLE + 2)
    before = _cpu_seconds(monitor)
    time.sleep(3)
    used = _cpu_seconds(monitor) - before
    assert used < 0.9, f"the monitor used {used:.2f} s of CPU in 3 s after a flow's end"
    assert len(_fds(monitor)) < fds, "the quiet flow's socket is still open"
    assert udp_echo(port, b"again") == b"again"


def _pipe_fds(pid: int) -> int:
    n = 0
    for fd in _fds(pid):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:[")
        except OSError:  # closed meanwhile
            pass
    return n


def _new_pipe_size() -> int:
    import fcntl

    r, w = os.pipe()
    try:
        return fcntl.fcntl(w, 1032)  # F_GETPIPE_SZ
    finally:
        os.close(r)
        os.close(w)


def test_many_connections_leave_the_user_s_other_pipes_their_size(rlc):
    """Each connection's two pipes were enlarged to 1 MiB: the kernel counts pipe pages
    per user, and past the quota (64 MiB) every new pipe of the user, in any process, is
    8 KiB. 40 connections did it; now only 16 pipes are enlarged."""
    assert _new_pipe_size() == 65536, "the user's pipe quota is already used up"
    port = free_port()
    ok(rlc, "run", "-d", "--name", "pipes", "--network", PROXY,
       "-p", f"127.0.0.1:{port}:80", rlc.voltest)
    assert fetch(port) == "hello from rl\n"
    monitor = _monitor(rlc, "pipes")
    pipes = _pipe_fds(monitor)  # its own, and the two pipes the fetch left for reuse
    clients = []
    try:
        for _ in range(40):  # connected, no request sent: httpd waits for it
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        # the last one answered: the proxy has connected all 40 (accepted in order)
        assert _tcp_get(clients[-1]).endswith(b"hello from rl\n")
        # until the other 39 have their two pipes each (made once their connect is seen)
        deadline = time.monotonic() + 20
        while _pipe_fds(monitor) < pipes + 39 * 4 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _pipe_fds(monitor) >= pipes + 39 * 4
        assert _new_pipe_size() == 65536
    finally:
        for c in clients:
            c.close()

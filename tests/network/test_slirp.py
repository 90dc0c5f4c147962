"""slirp4netns attached to namespaces the test made: forwards, udp, host loopback, errors,
and that nothing is left listening or running after stop()."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rootless.errors import Conflict, RlError
from rootless.network import ports, slirp
from tests.network.conftest import BUSYBOX, http_get
from tests.support.httpserver import serving

REPO = Path(__file__).resolve().parents[2]


def free_port(proto: str = "tcp") -> int:
    return ports.allocate(ports.parse_publish(f"127.0.0.1::1/{proto}"))[0].host_port


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


UDP_ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(data, peer)
"""


@pytest.fixture
def httpd(netns, webroot):
    netns.spawn(BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(webroot))
    netns.spawn(BUSYBOX, "httpd", "-f", "-p", "8080", "-h", str(webroot))
    return netns


def test_container_is_configured(netns, sockdir):
    with slirp.start(netns.pid, api_socket=sockdir / "api.sock"):
        out = netns.run(BUSYBOX, "ip", "-4", "addr", "show", "tap0").stdout
        assert "10.0.2.100/24" in out
        assert "mtu 65520" in out
        assert "default via 10.0.2.2" in netns.run(BUSYBOX, "ip", "route").stdout


def test_httpd_through_forward_then_stop_frees_everything(httpd, sockdir):
    port = free_port()
    s = slirp.start(httpd.pid, api_socket=sockdir / "api.sock")
    try:
        fid = s.add_hostfwd("tcp", "127.0.0.1", port, 80)
        assert http_get(f"http://127.0.0.1:{port}/") == "hello from the namespace\n"
        [entry] = s.list_hostfwd()
        assert (entry.id, entry.proto, entry.host_addr, entry.host_port, entry.guest_port) == \
            (fid, "tcp", "127.0.0.1", port, 80)
        assert ports.port_in_use("tcp", "127.0.0.1", port)
    finally:
        s.stop()
    assert not pid_alive(s.process.pid)
    assert not (sockdir / "api.sock").exists()
    assert not (sockdir / "api.sock.log").exists()
    assert not ports.port_in_use("tcp", "127.0.0.1", port)
    with socket.create_server(("127.0.0.1", port)):
        pass  # the port can be listened on again


def test_two_ports_and_remove_one(httpd, sockdir):
    p1, p2 = free_port(), free_port()
    with slirp.start(httpd.pid, api_socket=sockdir / "api.sock") as s:
        f1 = s.add_hostfwd("tcp", "127.0.0.1", p1, 80)
        s.add_hostfwd("tcp", "127.0.0.1", p2, 8080)
        assert http_get(f"http://127.0.0.1:{p1}/").startswith("hello")
        assert http_get(f"http://127.0.0.1:{p2}/").startswith("hello")
        assert sorted(e.host_port for e in s.list_hostfwd()) == sorted([p1, p2])
        s.remove_hostfwd(f1)
        assert [e.host_port for e in s.list_hostfwd()] == [p2]
        assert not ports.port_in_use("tcp", "127.0.0.1", p1)
        with pytest.raises(ConnectionRefusedError):  # nothing listens there any more
            socket.create_connection(("127.0.0.1", p1), timeout=2).recv(1)


def test_udp_forward(netns, sockdir):
    """A udp forward to a client on 127.0.0.1. libslirp addresses the reply to 10.0.2.2,
    which it drops while host loopback is disabled, so a loopback client needs
    allow_host_loopback (test_source_address checks a non-loopback client with the
    default settings, and the drop)."""
    port = free_port("udp")
    netns.spawn(sys.executable, "-c", UDP_ECHO)
    with slirp.start(netns.pid, api_socket=sockdir / "api.sock", allow_host_loopback=True) as s:
        s.add_hostfwd("udp", "127.0.0.1", port, 5353)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            deadline = time.monotonic() + 10
            while True:
                sock.sendto(b"ping over udp\n", ("127.0.0.1", port))
                try:
                    data = sock.recv(100)
                    break
                except TimeoutError:
                    assert time.monotonic() < deadline, "no udp echo through the forward"
        assert data == b"ping over udp\n"


def test_port_in_use_names_the_port(netns, sockdir):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with slirp.start(netns.pid, api_socket=sockdir / "api.sock") as s:
            with pytest.raises(Conflict, match=rf"host port 127\.0\.0\.1:{port}/tcp is already in use"):
                s.add_hostfwd("tcp", "127.0.0.1", port, 80)
            assert s.list_hostfwd() == []
            assert s.alive()


def test_privileged_port_refused_before_start():
    start = ports.unprivileged_port_start()
    if start == 0:
        pytest.skip("net.ipv4.ip_unprivileged_port_start is 0 here: every port is unprivileged")
    with pytest.raises(RlError, match=r"below net\.ipv4\.ip_unprivileged_port_start"):
        ports.allocate(ports.parse_publish("127.0.0.1:80:80"))


def test_privileged_port_through_slirp_fails_cleanly(netns, sockdir):
    if ports.unprivileged_port_start() == 0:
        pytest.skip("every port is unprivileged here")
    with (slirp.start(netns.pid, api_socket=sockdir / "api.sock") as s,
          pytest.raises(RlError, match=r"could not forward 127\.0\.0\.1:80/tcp")):
        s.add_hostfwd("tcp", "127.0.0.1", 80, 80)


@pytest.fixture
def host_server():
    with serving(b"host loopback service\n") as port:
        yield port


@pytest.mark.parametrize("allow", [True, False])
def test_host_loopback(netns, sockdir, host_server, allow):
    with slirp.start(netns.pid, api_socket=sockdir / "api.sock", allow_host_loopback=allow):
        # busybox 1.35's wget crashes with -T: bound the wait with timeout(1) instead
        res = netns.run("timeout", "5", BUSYBOX, "wget", "-q", "-O", "-",
                        f"http://10.0.2.2:{host_server}/", check=False)
    if allow:
        assert res.returncode == 0, res.stderr
        assert res.stdout == "host loopback service\n"
    else:
        # refused by slirp itself (host loopback disabled): not a timeout (124), not a missing tool (127)
        assert res.returncode == 1, (res.returncode, res.stderr)
        assert "Network is unreachable" in res.stderr, res.stderr  # slirp answers ICMP
        assert "host loopback service" not in res.stdout


def test_custom_cidr(netns, sockdir):
    with slirp.start(netns.pid, api_socket=sockdir / "api.sock", cidr="10.99.0.0/24"):
        assert "10.99.0.100/24" in netns.run(BUSYBOX, "ip", "-4", "addr").stdout


def test_missing_slirp4netns_names_the_package(netns, sockdir, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RlError) as info:
        slirp.start(netns.pid, api_socket=sockdir / "api.sock")
    assert "slirp4netns is not installed" in str(info.value)
    assert "apt-get install slirp4netns" in str(info.value)
    assert "\n" not in str(info.value)


def test_failure_reports_last_stderr_line(sockdir):
    # a pid that does not exist: slirp4netns cannot open its namespaces and exits
    with pytest.raises(RlError, match=r"^slirp4netns failed: .+") as info:
        slirp.start(2**22 + 12345, api_socket=sockdir / "api.sock", timeout=5)
    assert f"/proc/{2**22 + 12345}/ns/" in str(info.value)  # its own words, not "child failed"
    assert "\n" not in str(info.value)


def test_slirp_dies_with_the_process_that_started_it(netns, sockdir):
    """--exit-fd: when the monitor is killed with SIGKILL, slirp4netns exits too."""
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from rootless.network import slirp
        s = slirp.start({netns.pid}, api_socket=Path({str(sockdir / 'api.sock')!r}))
        print(s.process.pid, flush=True)
        time.sleep(600)
    """)
    monitor = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                               cwd=REPO)
    try:
        slirp_pid = int(monitor.stdout.readline())
        assert pid_alive(slirp_pid)
        monitor.send_signal(signal.SIGKILL)
        monitor.wait()
        deadline = time.monotonic() + 5
        while pid_alive(slirp_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(slirp_pid), "slirp4netns outlived the process that started it"
    finally:
        if monitor.poll() is None:
            monitor.kill()
            monitor.wait()


def test_forward_all_is_all_or_nothing(httpd, sockdir):
    [ok] = ports.allocate(ports.parse_publish("127.0.0.1::80"))
    with socket.create_server(("127.0.0.1", 0)) as taken, \
            slirp.start(httpd.pid, api_socket=sockdir / "api.sock") as s:
        busy = ports.PortMapping(8080, "tcp", "127.0.0.1", taken.getsockname()[1])
        with pytest.raises(Conflict, match="already in use"):
            ports.forward_all(s, [ok, busy])
        assert s.list_hostfwd() == []
        assert not ports.port_in_use("tcp", "127.0.0.1", ok.host_port)
        ids = ports.forward_all(s, [ok])
        assert [e.id for e in s.list_hostfwd()] == ids
        assert http_get(f"http://127.0.0.1:{ok.host_port}/").startswith("hello")

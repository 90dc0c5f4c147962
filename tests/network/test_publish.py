"""Published ports and network modes in real containers (issue 6), as the unprivileged user.
Traffic stays on the host's loopback and inside the containers' namespaces."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request

import pytest

from tests.support.httpserver import serving
from tests.support.registry import free_port


def ok(rlc, *args, **kw):
    return rlc(*args, check=True, **kw)


def fetch(port: int, host: str = "127.0.0.1", timeout: float = 10) -> str:
    """GET / through the published port, retrying while httpd starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/", timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def slirps_of(rlc) -> list[int]:
    """slirp4netns processes whose API socket is under this runner's runtime dir."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"slirp4netns") and any(
                str(rlc.root).encode() in part for part in cmd):
            out.append(int(pid))
    return out


def test_httpd_published_on_127_0_0_1_answers_and_is_listed(rlc):
    port = free_port()
    ok(rlc, "run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", rlc.voltest)
    assert fetch(port) == "hello from rl\n"
    assert ok(rlc, "port", "web").stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    assert ok(rlc, "port", "web", "80").stdout == f"127.0.0.1:{port}\n"
    assert f"127.0.0.1:{port}->80/tcp" in ok(rlc, "ps").stdout
    doc = json.loads(ok(rlc, "inspect", "web").stdout)[0]
    assert doc["NetworkSettings"]["Ports"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}], "8081/tcp": None}
    ok(rlc, "stop", "-t", "1", "web")
    assert refused(port)  # published ports stop listening with the container
    assert slirps_of(rlc) == []


def test_two_ports_published(rlc):
    p1, p2 = free_port(), free_port()
    ok(rlc, "run", "-d", "-p", f"127.0.0.1:{p1}:80", "-p", f"127.0.0.1:{p2}:8081/tcp",
       rlc.voltest, "sh", "-c", "echo other > /www/o.html; httpd -p 8081 -h /www;"
       " exec httpd -f -p 80 -h /www")
    assert fetch(p1) == "hello from rl\n"
    with urllib.request.urlopen(f"http://127.0.0.1:{p2}/o.html", timeout=5) as r:
        assert r.read() == b"other\n"


def test_publish_all_maps_every_exposed_port(rlc):
    cid = ok(rlc, "run", "-d", "-P", rlc.voltest).stdout.strip()
    lines = ok(rlc, "port", cid).stdout.splitlines()
    assert [line.split(" -> ")[0] for line in lines] == ["80/tcp", "8081/tcp"]
    host_port = int(lines[0].rsplit(":", 1)[1])
    assert fetch(host_port) == "hello from rl\n"


def test_port_in_use_is_refused_naming_it_and_nothing_is_left(rlc):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for detach in (["-d"], []):
            r = rlc("run", *detach, "--rm", "-p", f"127.0.0.1:{port}:80", rlc.voltest)
            assert r.returncode == 125
            assert f"127.0.0.1:{port}" in r.stderr and "in use" in r.stderr
            assert ok(rlc, "ps", "-aq").stdout == ""
            assert slirps_of(rlc) == []


def test_after_rm_f_no_slirp4netns_is_left_and_the_port_is_free(rlc):
    port = free_port()
    ok(rlc, "run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", rlc.voltest)
    assert fetch(port)
    assert len(slirps_of(rlc)) == 1
    ok(rlc, "rm", "-f", "web")
    assert slirps_of(rlc) == []
    assert port_free(port)


def test_network_none_has_only_loopback_and_refuses_ports(rlc):
    r = ok(rlc, "run", "--rm", "--network", "none", rlc.busybox, "ls", "/sys/class/net")
    assert r.stdout.split() == ["lo"]
    r = rlc("run", "--rm", "--network", "none", "-p", "8080:80", rlc.busybox, "true")
    assert r.returncode == 125 and "--network none" in r.stderr


def test_network_host_sees_the_hosts_interfaces(rlc):
    r = ok(rlc, "run", "--rm", "--network", "host", rlc.busybox, "ls", "/sys/class/net")
    assert sorted(r.stdout.split()) == sorted(os.listdir("/sys/class/net"))




@pytest.fixture
def host_server():
    """An HTTP server on the host's 127.0.0.1 (the test's own), stopped afterwards."""
    with serving(b"host loopback\n") as port:
        yield port


def test_allow_host_loopback_reaches_the_hosts_127_0_0_1(rlc, host_server):
    # busybox-static's wget exits 139 (SIGSEGV) in this test; nc speaks HTTP/1.0 as well
    get = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 10.0.2.2 {host_server}"
    r = ok(rlc, "run", "--rm", "--network", "slirp4netns:allow_host_loopback=true",
           rlc.busybox, "sh", "-c", get)
    assert r.stdout.endswith("host loopback\n")
    r = rlc("run", "--rm", rlc.busybox, "sh", "-c", get)
    assert "host loopback" not in r.stdout


@pytest.mark.parametrize("spec, words", [
    ("80:80", "net.ipv4.ip_unprivileged_port_start"),
    ("127.0.0.1:x:80", "invalid hostPort"),
    ("8080:80/sctp", "sctp"),
    ("300.1.1.1:8080:80", "invalid IP address"),
])
def test_bad_publish_is_one_clear_error_and_nothing_is_made(rlc, spec, words):
    if words.startswith("net.") and int(open("/proc/sys/net/ipv4/ip_unprivileged_port_start"
                                             ).read()) <= 80:
        pytest.skip("port 80 is not privileged on this host")
    r = rlc("run", "-d", "-p", spec, rlc.voltest)
    assert r.returncode == 125
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert ok(rlc, "ps", "-aq").stdout == ""
    assert slirps_of(rlc) == []


def test_network_container_shares_the_other_containers_namespace_and_ports(rlc):
    port = free_port()
    ok(rlc, "run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", rlc.voltest)
    get = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 127.0.0.1 80; ls /sys/class/net"
    r = ok(rlc, "run", "--rm", "--network", "container:web", rlc.busybox, "sh", "-c", get)
    assert "hello from rl" in r.stdout
    assert r.stdout.split()[-2:] == ["lo", "tap0"]
    assert fetch(port) == "hello from rl\n"  # web is untouched
    r = rlc("run", "--rm", "--network", "container:nosuch", rlc.busybox, "true")
    assert r.returncode == 125 and "nosuch" in r.stderr
    ok(rlc, "stop", "-t", "0", "web")
    r = rlc("run", "--rm", "--network", "container:web", rlc.busybox, "true")
    assert r.returncode == 125 and "not running" in r.stderr
    assert len(ok(rlc, "ps", "-aq").stdout.split()) == 1  # only web: nothing was made


def _host_address() -> str | None:
    """A non-loopback IPv4 address of this host (a client from it is not rewritten)."""
    import subprocess

    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        addr = line.split()[3].split("/")[0]
        if not addr.startswith("127."):
            return addr
    return None


def test_published_port_keeps_the_clients_source_address(rlc):
    addr = _host_address()
    if addr is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    port = free_port()
    cgi = ("mkdir -p /www/cgi-bin; printf '#!/bin/sh\\necho Content-Type: text/plain\\n"
           "echo\\necho $REMOTE_ADDR\\n' > /www/cgi-bin/addr; chmod 755 /www/cgi-bin/addr;"
           " exec httpd -f -p 80 -h /www")
    ok(rlc, "run", "-d", "-p", f"{port}:80", rlc.voltest, "sh", "-c", cgi)
    fetch(port)
    with urllib.request.urlopen(f"http://{addr}:{port}/cgi-bin/addr", timeout=10) as r:
        seen = r.read().decode().strip()
    # busybox httpd listens dual-stack: an IPv4 client shows as [::ffff:A.B.C.D]
    assert seen.strip("[]").removeprefix("::ffff:") == addr


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_echo(port: int, payload: bytes, timeout: float = 10) -> bytes | None:
    """Send `payload` to 127.0.0.1:port until the same bytes come back (None on timeout)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        while time.monotonic() < deadline:
            s.sendto(payload, ("127.0.0.1", port))
            try:
                return s.recv(2048)
            except (TimeoutError, ConnectionRefusedError):
                time.sleep(0.05)
    return None


def udp_port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_udp_published_port_answers_a_host_client_and_is_free_after_rm(rlc, udpecho_image):
    port = free_udp_port()
    ok(rlc, "pull", "-q", udpecho_image)
    ok(rlc, "run", "-d", "--name", "echo", "-p", f"127.0.0.1:{port}:{port}/udp",
       udpecho_image, "udpecho", str(port))
    assert ok(rlc, "port", "echo").stdout == f"{port}/udp -> 127.0.0.1:{port}\n"
    assert udp_echo(port, b"ping over udp") == b"ping over udp"
    assert not udp_port_free(port)
    ok(rlc, "rm", "-f", "echo")
    assert udp_port_free(port)
    assert slirps_of(rlc) == []


def test_udp_publish_keeps_the_hosts_loopback_closed_to_the_container(rlc, udpecho_image,
                                                                       host_server):
    """The published UDP port needs host loopback in slirp4netns (rootless/network/
    loopguard.py); the container still cannot open anything to the host's 127.0.0.1."""
    ok(rlc, "pull", "-q", udpecho_image)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as host_udp:
        host_udp.bind(("127.0.0.1", 0))
        host_udp.settimeout(10)  # a loaded machine: the datagram that must come may be late
        probe = (f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 10.0.2.2 {host_server};"
                 f" udpecho 10.0.2.2 {host_udp.getsockname()[1]} from-container")
        # the probe works where host loopback is open: what follows is not vacuous
        r = ok(rlc, "run", "--rm", "--network", "slirp4netns:allow_host_loopback=true",
               udpecho_image, "sh", "-c", probe)
        assert "host loopback" in r.stdout
        assert host_udp.recv(100) == b"from-container"
        port = free_udp_port()
        ok(rlc, "run", "-d", "--name", "echo", "-p", f"127.0.0.1:{port}:{port}/udp",
           udpecho_image, "udpecho", str(port))
        assert udp_echo(port, b"still answered") == b"still answered"
        r = rlc("exec", "echo", "sh", "-c", probe)
        assert "host loopback" not in r.stdout
        host_udp.settimeout(2)  # the probe ran to its end: a datagram would be here
        with pytest.raises(TimeoutError):
            host_udp.recv(100)


def test_ports_allocated_at_create_are_forwarded_at_every_start(rlc):
    port = free_port()
    ok(rlc, "create", "--name", "later", "-p", f"127.0.0.1:{port}:80", rlc.voltest)
    assert ok(rlc, "port", "later").stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    assert refused(port)  # nothing listens before the container runs
    ok(rlc, "start", "later")
    assert fetch(port) == "hello from rl\n"
    ok(rlc, "restart", "-t", "1", "later")
    assert fetch(port) == "hello from rl\n"

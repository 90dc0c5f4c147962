"""The proxy port handler (`--network slirp4netns:port_handler=proxy`, rootless/network/
proxy.py) in real containers, as the unprivileged user: TCP and UDP forwarded, the ports
closed with the container, a port in use refused. Traffic stays on the host's loopback."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import urllib.request

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

"""What address a published port's client has inside the container, checked honestly.

slirp4netns's forwards keep a client's own address, except that a client on the host's
loopback (127.0.0.0/8) shows up as the gateway 10.0.2.2 (libslirp rewrites it). To see a
non-loopback client without leaving the machine, the test makes an outer user+net
namespace with 192.0.2.1 on its lo, runs slirp4netns there for an inner namespace, and
connects from 192.0.2.1. UDP is checked in the same place: replies to a loopback client
are dropped by libslirp while host loopback is disabled (see test_udp_loopback_client)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rootless.network import slirp
from tests.network.conftest import BUSYBOX

REPO = Path(__file__).resolve().parents[2]

# Runs inside the outer namespace. The loopback client goes first: after a non-loopback
# client used a udp forward, replies to a loopback client were lost even with host loopback
# allowed (observed with libslirp 4.7; a udp forward is one socket with one remembered peer).
# It starts slirp4netns for the inner namespace, forwards ports and reports what the
# container saw for each client address.
CLIENT = r"""
import json, socket, sys, time
from pathlib import Path
from rootless.network import slirp

inner, sock, allow = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
out = {}
with slirp.start(inner, api_socket=sock, allow_host_loopback=allow) as s:
    s.add_hostfwd("tcp", "0.0.0.0", 18080, 80)
    s.add_hostfwd("udp", "0.0.0.0", 18053, 5353)
    for src in ("127.0.0.1", "192.0.2.1"):
        for attempt in range(100):
            try:
                conn = socket.create_connection((src, 18080), timeout=3, source_address=(src, 0))
                conn.sendall(b"GET /cgi-bin/peer HTTP/1.0\r\n\r\n")
                data = b""
                while chunk := conn.recv(4096):
                    data += chunk
                conn.close()
                if b"200 OK" in data:
                    out["tcp " + src] = data.decode().strip().splitlines()[-1]
                    break
            except OSError:
                pass
            time.sleep(0.05)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((src, 0))
        u.settimeout(0.3)
        out["udp " + src] = None
        for attempt in range(10):
            u.sendto(b"who am i", (src, 18053))
            try:
                out["udp " + src] = u.recv(100).decode()
                break
            except TimeoutError:
                pass
        u.close()
print(json.dumps(out))
"""

# In the container: udp echo that answers with the sender's address.
UDP_PEER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(peer[0].encode(), peer)
"""


@pytest.fixture
def nested(netns_factory, webroot, sockdir):
    outer = netns_factory()
    outer.run(BUSYBOX, "ip", "addr", "add", "192.0.2.1/24", "dev", "lo")
    inner = netns_factory(parent=outer)
    inner.spawn(BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(webroot))
    inner.spawn(sys.executable, "-c", UDP_PEER)

    def run(allow_host_loopback: bool) -> dict:
        res = subprocess.run(
            outer.cmd(sys.executable, "-c", CLIENT, str(inner.pid), str(sockdir / "api.sock"),
                      "1" if allow_host_loopback else "0"),
            capture_output=True, text=True, timeout=90, cwd=REPO)
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout)

    return run


def _addr(text: str | None) -> str | None:
    # busybox httpd listens on [::] and reports IPv4 clients as [::ffff:a.b.c.d]
    return text.removeprefix("[").removesuffix("]").removeprefix("::ffff:") if text else text


def test_source_address_kept_for_non_loopback_clients(nested):
    seen = {k: _addr(v) for k, v in nested(allow_host_loopback=False).items()}
    assert seen["tcp 192.0.2.1"] == "192.0.2.1"
    assert seen["udp 192.0.2.1"] == "192.0.2.1"
    # a client on the host's loopback appears as the gateway, not as 127.0.0.1
    assert seen["tcp 127.0.0.1"] == "10.0.2.2"


def test_udp_loopback_client(nested):
    """libslirp drops a udp reply to a loopback client while host loopback is disabled
    (the reply is addressed to 10.0.2.2, which --disable-host-loopback forbids); with
    allow_host_loopback it arrives. TCP is not affected. Documented limitation."""
    allowed = nested(allow_host_loopback=True)
    assert allowed["udp 127.0.0.1"] == "10.0.2.2", allowed
    assert nested(allow_host_loopback=False)["udp 127.0.0.1"] is None


def test_slirp_binary_in_nested_namespace_is_ours():
    # guard: the nested test above runs our slirp module, not some other copy
    assert Path(slirp.__file__).resolve().is_relative_to(REPO)

"""The per-user network holder: bridges and veths made with pyroute2 inside its
namespaces, containers on one network reaching each other, networks isolated, the
outside and published ports through slirp4netns attached to the holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rootless.errors import RlError
from rootless.network import holder as holder_mod
from rootless.network import ports, slirp
from rootless.network.holder import Holder
from tests.network.conftest import BUSYBOX, http_get
from tests.support.httpserver import serving


@pytest.fixture
def holder(netns_factory, tmp_path):
    state = tmp_path / "holder.json"
    h = Holder.start(state)
    yield h
    h.stop(state)


NETS = [("rl-a", "10.89.1.0/24"), ("rl-b", "10.89.2.0/24")]


def fetch(ns, url: str, tries: int = 1) -> subprocess.CompletedProcess:
    # busybox 1.35's wget crashes with -T: bound the wait with timeout(1)
    for _ in range(tries):
        res = ns.run("timeout", "2", BUSYBOX, "wget", "-q", "-O", "-", url, check=False,
                     timeout=20)
        if res.returncode == 0:
            break
        time.sleep(0.1)
    return res


def test_holder_namespaces_and_state(holder, tmp_path):
    assert holder.alive()
    for ns in ("user", "net"):
        assert os.readlink(f"/proc/{holder.pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
    uid_map = open(f"/proc/{holder.pid}/uid_map").read().split()
    assert uid_map[:3] == ["0", str(os.getuid()), "1"]
    from rootless.runtime import idmap
    if idmap.read_ranges(idmap.SUBUID_FILE):
        assert len(uid_map) == 6, "the subordinate range is mapped into the holder"
    assert Holder.find(tmp_path / "holder.json") == holder
    assert "lo" in holder.links()


def test_stop_leaves_nothing(tmp_path):
    state = tmp_path / "h.json"
    h = Holder.start(state)
    h.add_bridge("rl-x", "10.89.9.0/24", "10.89.9.1")
    h.stop(state)
    assert not h.alive()
    assert not os.path.exists(f"/proc/{h.pid}")
    assert not state.exists()
    assert Holder.find(state) is None


@pytest.fixture
def two_networks(holder, netns_factory, webroot):
    holder.add_bridge("rl-a", "10.89.1.0/24", "10.89.1.1")
    holder.add_bridge("rl-b", "10.89.2.0/24", "10.89.2.1")
    c1 = netns_factory(holder.pid)                 # net ns owned by the holder's user ns
    c2 = netns_factory(holder.pid, own_user=True)  # its own user ns, a child of the holder's
    c3 = netns_factory(holder.pid, own_user=True)
    holder.connect("rl-a", c1.pid, "10.89.1.2", "10.89.1.0/24", "10.89.1.1")
    holder.connect("rl-a", c2.pid, "10.89.1.3", "10.89.1.0/24", "10.89.1.1")
    holder.connect("rl-b", c3.pid, "10.89.2.2", "10.89.2.0/24", "10.89.2.1")
    holder.set_ruleset(NETS)
    for c in (c1, c3):
        c.spawn(BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(webroot))
    return c1, c2, c3


def test_same_network_reaches_other_network_does_not(holder, two_networks):
    c1, c2, c3 = two_networks
    assert "10.89.1.3/24" in c2.run(BUSYBOX, "ip", "-4", "addr", "show", "eth0").stdout
    assert "default via 10.89.1.1" in c2.run(BUSYBOX, "ip", "route").stdout
    ok = fetch(c2, "http://10.89.1.2/", tries=5)  # httpd may still be starting
    assert ok.stdout == "hello from the namespace\n"
    assert fetch(c3, "http://10.89.1.2/").returncode != 0
    assert fetch(c1, "http://10.89.2.2/").returncode != 0
    # the bridge-side ends are in the holder; removing one cuts the container off
    links = holder.links()
    assert {"rl-a", "rl-b"} <= set(links)
    veths = [n for n in links if n.startswith("rlv")]
    assert len(veths) == 3


def test_disconnect_and_remove_bridge(holder, netns_factory):
    holder.add_bridge("rl-c", "10.89.3.0/24", "10.89.3.1")
    c = netns_factory(holder.pid)
    host_if = holder.connect("rl-c", c.pid, "10.89.3.2", "10.89.3.0/24", "10.89.3.1")
    assert "eth0" in c.run(BUSYBOX, "ip", "link").stdout
    holder.disconnect(host_if)
    assert "eth0" not in c.run(BUSYBOX, "ip", "link").stdout
    holder.remove_bridge("rl-c")
    assert "rl-c" not in holder.links()


def test_sibling_user_namespace_cannot_join(holder, netns):
    """A container whose user ns is not under the holder's cannot get a veth (the reason
    the runtime must create such containers inside the holder's user namespace)."""
    holder.add_bridge("rl-d", "10.89.4.0/24", "10.89.4.1")
    with pytest.raises(RlError, match="network holder"):
        holder.connect("rl-d", netns.pid, "10.89.4.2", "10.89.4.0/24", "10.89.4.1")
    assert not [n for n in holder.links() if n.startswith("rlv")]


def test_outside_and_published_port_through_holder_slirp(holder, two_networks, sockdir):
    from tests.network.test_publish import _host_address

    c1, _, _ = two_networks
    addr = _host_address()
    if addr is None:
        pytest.skip("this host has no non-loopback IPv4 address to stand for the outside")
    with serving(b"host service\n", host=addr) as server_port, \
            serving(b"host loopback\n") as loopback_port, \
            slirp.start(holder.pid, api_socket=sockdir / "holder.sock",
                        allow_host_loopback=True) as s:
        # outbound: container -> bridge -> holder (masquerade) -> tap0 -> the host's address
        res = fetch(c1, f"http://{addr}:{server_port}/")
        assert res.stdout == "host service\n", res.stderr
        # host loopback is open in slirp4netns, but the ruleset refuses new flows to it
        res = fetch(c1, f"http://10.0.2.2:{loopback_port}/")
        assert "host loopback" not in res.stdout
        # inbound: host 127.0.0.1:P -> slirp -> holder port 20080 -> DNAT -> c1:80
        [m] = ports.allocate(ports.parse_publish("127.0.0.1::80"))
        s.add_hostfwd("tcp", "127.0.0.1", m.host_port, 20080)
        holder.set_ruleset(NETS, dnat=[("tcp", 20080, "10.89.1.2", 80)])
        assert http_get(f"http://127.0.0.1:{m.host_port}/") == "hello from the namespace\n"


def test_ruleset_text():
    text = holder_mod.ruleset([("rl-a", "10.89.1.0/24")],
                              dnat=[("udp", 20053, "10.89.1.5", 53)])
    assert 'iifname "rl-a" oifname "rl-a" accept' in text
    assert 'ip saddr 10.89.1.0/24 oifname "tap0" masquerade' in text
    assert 'iifname "tap0" udp dport 20053 dnat to 10.89.1.5:53' in text
    assert "ip daddr 10.0.2.2 reject" in text
    assert "policy drop" in text
    internal = holder_mod.ruleset([("rl-i", "10.89.6.0/24", True)])
    assert "masquerade" not in internal
    assert 'iifname "rl-i" drop' in internal


def _children(pid: int, comm: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            if name == comm and int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry))
    return out


def _gone(pids, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(holder_mod._start_time(p) for p in pids):
            return True
        time.sleep(0.02)
    return False


def test_holder_with_its_own_slirp_and_published_port(tmp_path, sockdir, netns_factory, webroot):
    state = tmp_path / "h.json"
    h = Holder.start(state, slirp_socket=sockdir / "holder.sock")
    try:
        assert Holder.find(state) == h and h.keeper and h.api_socket
        [slirp_pid] = _children(h.keeper, "slirp4netns")
        assert "tap0" in h.links()
        h.add_bridge("rl-p", "10.89.5.0/24", "10.89.5.1")
        c = netns_factory(h.pid, own_user=True)
        h.connect("rl-p", c.pid, "10.89.5.2", "10.89.5.0/24", "10.89.5.1")
        c.spawn(BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(webroot))
        [m] = ports.allocate(ports.parse_publish("127.0.0.1::80"))
        h.slirp_api().add_hostfwd("tcp", "127.0.0.1", m.host_port, m.host_port)
        h.set_ruleset([("rl-p", "10.89.5.0/24")], dnat=[("tcp", m.host_port, "10.89.5.2", 80)])
        assert http_get(f"http://127.0.0.1:{m.host_port}/") == "hello from the namespace\n"
    finally:
        h.stop(state)
    assert _gone([h.keeper, h.pid, slirp_pid])
    assert not state.exists()
    assert not ports.port_in_use("tcp", "127.0.0.1", m.host_port)


def test_killing_the_keeper_ends_namespace_and_slirp(tmp_path, sockdir):
    h = Holder.start(tmp_path / "h.json", slirp_socket=sockdir / "holder.sock")
    [slirp_pid] = _children(h.keeper, "slirp4netns")
    os.kill(h.keeper, signal.SIGKILL)
    os.waitpid(h.keeper, 0)
    assert _gone([h.pid, slirp_pid]), "namespace holder or slirp4netns outlived the keeper"
    assert Holder.find(tmp_path / "h.json") is None


def test_container_user_namespace_under_holder_gets_the_full_range(holder, netns_factory):
    """The runtime's path for --network NAME: a user namespace made inside the holder's,
    its maps written from the holder, then joined to a bridge."""
    from rootless.runtime import idmap

    ranges = idmap.read_ranges(idmap.SUBUID_FILE)
    if not ranges:
        pytest.skip("no subordinate uid range for this user")
    # a process that unshared a user ns (no maps yet) and a net ns, inside the holder's
    proc = subprocess.Popen(
        ["nsenter", "--preserve-credentials", "-U", "-n", "-t", str(holder.pid),
         "unshare", "--user", "--net", "sh", "-c", "read x; exec sleep 600"],
        stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        refs = {os.readlink(f"/proc/{holder.pid}/ns/user"), os.readlink("/proc/self/ns/user")}
        while time.monotonic() < deadline:  # nsenter, then unshare, then sh
            try:
                if os.readlink(f"/proc/{proc.pid}/ns/user") not in refs:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        holder.write_id_maps(proc.pid)
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        lines = [ln.split() for ln in open(f"/proc/{proc.pid}/uid_map").read().splitlines()]
        # seen from the host: root is the user, 1.. the subordinate range
        assert lines[0] == ["0", str(os.getuid()), "1"]
        assert lines[1] == ["1", str(ranges[0].start), str(ranges[0].count)]
        holder.add_bridge("rl-u", "10.89.7.0/24", "10.89.7.1")
        holder.connect("rl-u", proc.pid, "10.89.7.2", "10.89.7.0/24", "10.89.7.1")
        out = subprocess.run(["nsenter", "--preserve-credentials", "-U", "-n", "-t",
                              str(proc.pid), BUSYBOX, "ip", "-4", "addr", "show", "eth0"],
                             capture_output=True, text=True, check=True).stdout
        assert "10.89.7.2/24" in out
    finally:
        proc.kill()
        proc.wait()


def test_ensure_starts_one_holder_for_concurrent_callers(tmp_path):
    state = tmp_path / "h.json"
    script = ("import sys; from pathlib import Path; from rootless.network.holder import Holder;"
              f"print(Holder.ensure(Path({str(state)!r})).pid)")
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2]) for _ in range(3)]
    pids = {p.communicate(timeout=60)[0].strip() for p in procs}
    h = Holder.find(state)
    try:
        assert h is not None and pids == {str(h.pid)}
    finally:
        if h:
            h.stop(state)

"""Containers on user-defined networks (issue 6): by name and alias on one network, not
across networks; the holder ends with the last container. Unprivileged user."""

from __future__ import annotations

import json
import os

from tests.support.httpserver import serving
from tests.support.registry import free_port

GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {host} 80"


def ok(rlc, *args, **kw):
    return rlc(*args, check=True, **kw)


def holder_pids(rlc) -> list[int]:
    state = rlc.root / "run" / "rl" / "netns-holder.json"
    if not state.exists():
        return []
    pid = json.loads(state.read_text()).get("pid")
    return [pid] if pid and os.path.exists(f"/proc/{pid}") else []


def test_containers_reach_each_other_by_name_and_alias_only_on_their_network(rlc):
    ok(rlc, "network", "create", "--subnet", "10.89.71.0/24", "neta")
    ok(rlc, "network", "create", "--subnet", "10.89.72.0/24", "netb")
    port = free_port()
    ok(rlc, "run", "-d", "--name", "web", "--network", "neta", "--network-alias", "www",
       "-p", f"127.0.0.1:{port}:80", rlc.voltest)
    nets = json.loads(ok(rlc, "inspect", "web").stdout)[0]["NetworkSettings"]["Networks"]
    assert nets["neta"]["IPAddress"] == "10.89.71.2" and nets["neta"]["Aliases"] == ["www"]
    hosts = ok(rlc, "exec", "web", "cat", "/etc/hosts").stdout
    assert any(line.startswith("10.89.71.2\t") and line.endswith(" web www")
               for line in hosts.splitlines())
    for name in ("web", "www", "10.89.71.2"):
        r = ok(rlc, "run", "--rm", "--network", "neta", rlc.busybox, "sh", "-c",
               GET.format(host=name))
        assert "hello from rl" in r.stdout, (name, r.stderr)
    r = rlc("run", "--rm", "--network", "netb", rlc.busybox, "sh", "-c",
            GET.format(host="10.89.71.2").replace("-w 5", "-w 2"))
    assert "hello from rl" not in r.stdout
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
        assert resp.read() == b"hello from rl\n"
    assert holder_pids(rlc)
    ok(rlc, "rm", "-f", "web")
    assert holder_pids(rlc) == []
    r = rlc("network", "rm", "neta", "netb")
    assert r.returncode == 0, r.stderr


def test_unknown_network_and_alias_without_network_are_refused(rlc):
    r = rlc("run", "--rm", "--network", "nosuchnet", rlc.busybox, "true")
    assert r.returncode == 125 and "nosuchnet" in r.stderr
    r = rlc("run", "--rm", "--network-alias", "x", rlc.busybox, "true")
    assert r.returncode == 125 and "--network-alias" in r.stderr
    assert ok(rlc, "ps", "-aq").stdout == ""
    assert holder_pids(rlc) == []


def test_udp_published_from_a_user_network_answers_a_host_loopback_client(rlc, udpecho_image):
    from tests.network.test_publish import free_udp_port, udp_echo, udp_port_free

    ok(rlc, "pull", "-q", udpecho_image)
    ok(rlc, "network", "create", "--subnet", "10.89.73.0/24", "netu")
    port = free_udp_port()
    ok(rlc, "run", "-d", "--name", "echo", "--network", "netu",
       "-p", f"127.0.0.1:{port}:{port}/udp", udpecho_image, "udpecho", str(port))
    assert udp_echo(port, b"over the holder") == b"over the holder"
    # the holder lets replies to the host's loopback through, and nothing new to it
    probe = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 10.0.2.2 {port}"
    with serving(b"host loopback\n") as host_port:
        r = rlc("exec", "echo", "sh", "-c", probe.format(port=host_port))
        assert "host loopback" not in r.stdout
    ok(rlc, "rm", "-f", "echo")
    assert udp_port_free(port)
    assert holder_pids(rlc) == []


def test_rename_shows_in_the_peers_hosts(rlc):
    """As Docker's embedded DNS: a renamed container is found by its new name, not the old."""
    ok(rlc, "network", "create", "--subnet", "10.89.73.0/24", "netr")
    try:
        for name in ("one", "two"):
            ok(rlc, "run", "-d", "--name", name, "--network", "netr", rlc.busybox,
               "sleep", "300")
        ok(rlc, "rename", "one", "uno")
        names = [line.split()[1:] for line in
                 ok(rlc, "exec", "two", "cat", "/etc/hosts").stdout.splitlines()
                 if line.startswith("10.89.73.2\t")]
        assert names == [["uno"]], names
        r = ok(rlc, "exec", "two", "ping", "-c", "1", "-W", "5", "uno")
        assert "1 packets received" in r.stdout, r.stdout
    finally:
        rlc("rm", "-f", "one", "uno", "two")
        rlc("network", "rm", "netr")

"""A container on several user-defined networks (issue 6): `--network a --network b`,
`rl network connect` and `rl network disconnect`, running or stopped. Names resolve on
each network the container is on; containers on different networks still cannot reach
each other. Unprivileged user, traffic only inside the namespaces rl makes."""

from __future__ import annotations

import json

import pytest

GET = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w {w} {host} 80"


def ok(rlc, *args, **kw):
    return rlc(*args, check=True, **kw)


def fetches(rlc, container: str, host: str, wait: int = 3) -> bool:
    r = rlc("exec", container, "sh", "-c", GET.format(w=wait, host=host))
    return "hello from rl" in r.stdout


def networks_of(rlc, container: str) -> dict:
    return json.loads(ok(rlc, "inspect", container).stdout)[0]["NetworkSettings"]["Networks"]


def one_line_error(r, *words) -> None:
    assert r.returncode == 125, (r.returncode, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


@pytest.fixture
def nets(rlc):
    for i, name in enumerate(("neta", "netb")):
        ok(rlc, "network", "create", "--subnet", f"10.89.{81 + i}.0/24", name)
    return rlc


def test_a_container_on_two_networks_is_found_by_name_on_each(nets):
    rlc = nets
    ok(rlc, "run", "-d", "--name", "weba", "--network", "neta", rlc.voltest)
    ok(rlc, "run", "-d", "--name", "webb", "--network", "netb", rlc.voltest)
    ok(rlc, "run", "-d", "--name", "both", "--network", "neta", "--network", "netb",
       rlc.voltest)
    addrs = {n: v["IPAddress"] for n, v in networks_of(rlc, "both").items()}
    assert sorted(addrs) == ["neta", "netb"]
    assert addrs["neta"].startswith("10.89.81.") and addrs["netb"].startswith("10.89.82.")
    links = ok(rlc, "exec", "both", "ls", "/sys/class/net").stdout.split()
    assert sorted(links) == ["eth0", "eth1", "lo"]
    # `both` is reached by name from each network, and reaches each side by name
    assert fetches(rlc, "weba", "both") and fetches(rlc, "webb", "both")
    assert fetches(rlc, "both", "weba") and fetches(rlc, "both", "webb")
    hosts_a = ok(rlc, "exec", "weba", "cat", "/etc/hosts").stdout
    assert f"{addrs['neta']}\tboth" in hosts_a and "webb" not in hosts_a
    # the two single-network containers still cannot reach each other, even by address
    webb_ip = networks_of(rlc, "webb")["netb"]["IPAddress"]
    assert not fetches(rlc, "weba", webb_ip, wait=2)


def test_connect_and_disconnect_a_running_container(nets):
    rlc = nets
    ok(rlc, "run", "-d", "--name", "web", "--network", "neta", rlc.voltest)
    ok(rlc, "run", "-d", "--name", "client", "--network", "netb", rlc.voltest)
    web_ip = networks_of(rlc, "web")["neta"]["IPAddress"]
    assert not fetches(rlc, "client", web_ip, wait=2)

    r = ok(rlc, "network", "connect", "--alias", "cli", "neta", "client")
    assert r.stdout == ""
    assert sorted(networks_of(rlc, "client")) == ["neta", "netb"]
    assert networks_of(rlc, "client")["neta"]["Aliases"] == ["cli"]
    assert fetches(rlc, "client", "web")
    assert fetches(rlc, "web", "cli") and fetches(rlc, "web", "client")

    # off netb, where its eth0 and default route were: neta stays, with a default route
    ok(rlc, "network", "disconnect", "netb", "client")
    assert sorted(networks_of(rlc, "client")) == ["neta"]
    route = ok(rlc, "exec", "client", "ip", "route").stdout
    assert "default via 10.89.81.1" in route, route
    assert fetches(rlc, "client", "web")

    ok(rlc, "network", "connect", "netb", "client")
    ok(rlc, "network", "disconnect", "neta", "client")
    assert not fetches(rlc, "client", web_ip, wait=2)
    assert "client" not in ok(rlc, "exec", "web", "cat", "/etc/hosts").stdout
    # once every container is gone, both networks can go
    ok(rlc, "rm", "-f", "web", "client")
    ok(rlc, "network", "rm", "neta", "netb")


def test_connect_a_stopped_container_takes_effect_at_start(nets):
    rlc = nets
    ok(rlc, "create", "--name", "later", "--network", "neta", rlc.voltest)
    ok(rlc, "network", "connect", "--alias", "www", "netb", "later")
    ok(rlc, "start", "later")
    got = networks_of(rlc, "later")
    assert sorted(got) == ["neta", "netb"] and got["netb"]["Aliases"] == ["www"]
    ok(rlc, "run", "-d", "--name", "peer", "--network", "netb", rlc.voltest)
    assert fetches(rlc, "peer", "www")
    ok(rlc, "stop", "-t", "0", "later")
    hosts = ok(rlc, "exec", "peer", "cat", "/etc/hosts").stdout
    assert "www" not in hosts and "later" not in hosts  # a stopped peer is forgotten
    ok(rlc, "network", "disconnect", "neta", "later")
    ok(rlc, "start", "later")
    assert sorted(networks_of(rlc, "later")) == ["netb"]


def test_bad_connect_and_disconnect_are_one_line_errors(nets):
    rlc = nets
    ok(rlc, "run", "-d", "--name", "web", "--network", "neta", rlc.voltest)
    one_line_error(rlc("network", "connect", "nosuchnet", "web"), "nosuchnet")
    one_line_error(rlc("network", "connect", "neta", "nosuchctr"), "nosuchctr")
    one_line_error(rlc("network", "connect", "neta", "web"), "already connected", "neta")
    one_line_error(rlc("network", "disconnect", "netb", "web"), "not connected", "netb")
    one_line_error(rlc("network", "disconnect", "neta", "web"), "only network")
    ok(rlc, "run", "-d", "--name", "plain", rlc.voltest)
    one_line_error(rlc("network", "connect", "neta", "plain"), "slirp4netns")
    assert sorted(networks_of(rlc, "web")) == ["neta"]
    for args in (["--network", "none", "--network", "neta"],
                 ["--network", "neta", "--network", "neta"],
                 ["--network", "neta", "--network", "nosuchnet"]):
        r = rlc("run", "--rm", *args, rlc.busybox, "true")
        one_line_error(r)
    assert len(ok(rlc, "ps", "-aq").stdout.split()) == 2

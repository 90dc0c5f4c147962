"""`rl run` flags for /etc/hosts, resolv.conf, exposed ports and the process (Docker's),
as the test user."""

from __future__ import annotations

import json

import pytest


def run_out(rl, *args):
    r = rl("run", "--rm", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def refused(rl, args, message):
    before = rl("ps", "-aq", check=True).stdout
    r = rl("run", *args, "busybox", "true")
    assert r.returncode == 125, r.stderr
    assert message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert rl("ps", "-aq", check=True).stdout == before


def test_add_host_and_dns_in_etc_files(rl):
    out = run_out(rl, "--add-host", "db.local:192.0.2.7", "--add-host", "gw:host-gateway",
                  "--add-host", "v6=2001:db8::1", "--dns", "192.0.2.53", "--dns", "192.0.2.54",
                  "--dns-search", "example.com", "--dns-option", "ndots:2",
                  "busybox", "sh", "-c", "cat /etc/hosts; echo ---; cat /etc/resolv.conf")
    hosts, resolv = out.split("---\n")
    lines = hosts.splitlines()
    assert "192.0.2.7\tdb.local" in lines
    assert "10.0.2.2\tgw" in lines  # slirp4netns: the host is 10.0.2.2
    assert "2001:db8::1\tv6" in lines
    assert [x for x in resolv.splitlines() if x.startswith("nameserver")] == [
        "nameserver 192.0.2.53", "nameserver 192.0.2.54"]
    assert "search example.com" in resolv.splitlines()
    assert "options ndots:2" in resolv.splitlines()



def test_expose_shows_in_inspect_and_publish_all(rl):
    rl("create", "--name", "ex", "--expose", "7000", "--expose", "7100-7101/udp", "busybox",
       "true", check=True)
    ports = json.loads(rl("inspect", "ex", check=True).stdout)[0]["NetworkSettings"]["Ports"]
    assert {"7000/tcp", "7100/udp", "7101/udp"} <= set(ports)
    rows = rl("ps", "-a", "--filter", "expose=7000", "--format", "{{.Names}}").stdout.split()
    assert rows == ["ex"]


@pytest.mark.parametrize("args, message", [
    (["--add-host", "nocolon"], "invalid --add-host 'nocolon'"),
    (["--add-host", "db:999.1.1.1"], "invalid IP address '999.1.1.1'"),
    (["--add-host", "bad name:1.2.3.4"], "invalid host name 'bad name'"),
    (["--network", "none", "--add-host", "h:host-gateway"], "host-gateway needs a network"),
    (["--dns", "dns.example"], "invalid --dns 'dns.example': not an IP address"),
    (["--dns-search", "bad domain"], "invalid --dns-search 'bad domain'"),
    (["--dns-option", "a b"], "invalid --dns-option 'a b'"),
    (["--expose", "http"], "invalid port 'http' in --expose 'http'"),
    (["--expose", "80/icmp"], "invalid protocol 'icmp'"),
    (["--expose", "90-80"], "invalid port range '90-80'"),
])
def test_bad_network_flag_values_are_refused(rl, args, message):
    refused(rl, args, message)

"""`rl run` flags for /etc/hosts, resolv.conf, exposed ports and the process (Docker's),
as the test user."""

from __future__ import annotations

import json

import pytest


def run_out(rl, *args):
    r = rl("run", "--rm", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def refused(rl, args, message, env=None):
    before = rl("ps", "-aq", check=True).stdout
    r = rl("run", *args, "busybox", "true", env=env)
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


def test_add_host_kept_on_a_user_network(rl):
    rl("network", "create", "flagnet", check=True)
    try:
        out = run_out(rl, "--network", "flagnet", "--add-host", "db.local:192.0.2.7",
                      "--add-host", "gw:host-gateway", "busybox", "cat", "/etc/hosts")
        assert "192.0.2.7\tdb.local" in out.splitlines()
        assert any(line.endswith("\tgw") for line in out.splitlines())
    finally:
        rl("network", "rm", "flagnet")


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


def test_sysctl_namespaced_is_set_in_the_container(rl):
    out = run_out(rl, "--network", "none", "--sysctl", "kernel.shmmax=123456789",
                  "--sysctl", "net.ipv4.ip_unprivileged_port_start=80", "busybox", "sh", "-c",
                  "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_unprivileged_port_start")
    assert out.split() == ["123456789", "80"]
    with open("/proc/sys/kernel/shmmax") as f:
        assert f.read().strip() != "123456789"  # the host's is untouched


def test_shm_size_group_add_device_privileged(rl):
    out = run_out(rl, "--network", "none", "--shm-size", "16m", "--group-add", "user",
                  "--group-add", "1234", "--device", "/dev/null:/dev/mynull",
                  "busybox", "sh", "-c",
                  "df -k /dev/shm | tail -1; id -G; echo hi > /dev/mynull && echo wrote; "
                  "ls -l /dev/mynull")
    lines = out.splitlines()
    assert lines[0].split()[1] == "16384"
    assert {"1000", "1234"} <= set(lines[1].split())  # user is 1000 in the image
    assert lines[2] == "wrote"
    assert lines[3].startswith("c")
    out = run_out(rl, "--network", "none", "--privileged", "busybox", "sh", "-c",
                  "grep -E '^(CapEff|Seccomp):' /proc/self/status; cat /proc/kcore | head -c1 "
                  "| wc -c; touch /proc/sys/kernel/shmmax && echo rw")
    status = dict(line.split(":\t") for line in out.splitlines()[:2])
    assert int(status["CapEff"], 16) >> 21 & 1  # CAP_SYS_ADMIN (of the user namespace)
    assert status["Seccomp"].strip() == "0"
    out = run_out(rl, "--network", "none", "busybox", "sh", "-c",
                  "grep -E '^Seccomp:' /proc/self/status")
    assert out.split()[1] == "2"  # without --privileged: filtered


def test_stop_signal_and_timeout_cidfile_label_file(rl, tmp_path):
    labels = tmp_path / "labels"
    labels.write_text("# a comment\na=1\nb=2\n")
    cidfile = tmp_path / "cid"
    rl("run", "-d", "--network", "none", "--name", "sig", "--stop-signal", "USR1",
       "--stop-timeout", "1", "--cidfile", str(cidfile), "--label-file", str(labels),
       "--label", "b=3", "busybox", "sh", "-c",
       'trap "exit 7" USR1; while true; do sleep 0.1; done', check=True)
    d = json.loads(rl("inspect", "sig", check=True).stdout)[0]
    assert cidfile.read_text() == d["Id"]
    assert d["Config"]["Labels"] == {"a": "1", "b": "3"}
    assert d["Config"]["StopSignal"] == "USR1" and d["Config"]["StopTimeout"] == 1
    rl("stop", "sig", check=True)
    assert rl("wait", "sig").stdout.strip() == "7"
    refused(rl, ["--cidfile", str(cidfile)], "container ID file found")
    rl("run", "-d", "--network", "none", "--name", "slow", "--stop-timeout", "1",
       "busybox", "sleep", "300", check=True)
    import time

    t0 = time.monotonic()
    rl("stop", "slow", check=True)  # killed after 1 s, not the default 10
    assert time.monotonic() - t0 < 6
    assert rl("wait", "slow").stdout.strip() == "137"


def test_quiet_pull(rl):
    rl("rmi", "layered", check=True)
    r = rl("run", "--rm", "-q", "--network", "none", "layered", "true")
    assert r.returncode == 0 and r.stderr == ""


@pytest.mark.parametrize("args, message", [
    (["--sysctl", "kernel.hostname=x"], "--sysctl kernel.hostname is not namespaced"),
    (["--sysctl", "vm.swappiness=10"], "--sysctl vm.swappiness is not namespaced"),
    (["--sysctl", "nonsense"], "invalid --sysctl 'nonsense'"),
    (["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
     "--sysctl net.ipv4.ip_forward cannot be set with --network host"),
    (["--shm-size", "lots"], "invalid --shm-size 'lots'"),
    (["--shm-size", "0"], "must be greater than 0"),
    (["--stop-signal", "NOPE"], "invalid signal 'NOPE'"),
    (["--stop-timeout", "soon"], "invalid --stop-timeout 'soon'"),
    (["--group-add", "a b"], "invalid --group-add 'a b'"),
    (["--label-file", "/nonexistent/labels"], "cannot read label file /nonexistent/labels"),
    (["--device", "/nonexistent"], "cannot use device /nonexistent"),
    (["--device", "/etc/passwd"], "/etc/passwd is not a device node"),
    (["--device", "/dev/null:/dev/n:rx"], "invalid device permissions 'rx'"),
    (["--device", "/dev/kmsg:rw"], "you cannot open /dev/kmsg with permissions 'rw'"),
])
def test_bad_process_flag_values_are_refused(rl, args, message):
    refused(rl, args, message)


def test_unknown_group_fails_at_start(rl):
    r = rl("run", "--rm", "--network", "none", "--group-add", "nosuchgroup", "busybox", "true")
    assert r.returncode == 125 and "unable to find group nosuchgroup" in r.stderr

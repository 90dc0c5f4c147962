"""`-p`/`-P` parsing (Docker's rules and messages), host-side checks, and Docker's output."""

from __future__ import annotations

import socket

import pytest

from rootless.errors import Conflict, InvalidArgument
from rootless.network import ports
from rootless.network.ports import PortMapping, PortRequest


@pytest.mark.parametrize(("spec", "expected"), [
    ("80", [PortRequest(80, "tcp", "", 0, 0)]),
    ("80/TCP", [PortRequest(80, "tcp", "", 0, 0)]),
    ("53/udp", [PortRequest(53, "udp", "", 0, 0)]),
    ("8080:80", [PortRequest(80, "tcp", "", 8080, 8080)]),
    ("127.0.0.1:8080:80/udp", [PortRequest(80, "udp", "127.0.0.1", 8080, 8080)]),
    ("127.0.0.1::80", [PortRequest(80, "tcp", "127.0.0.1", 0, 0)]),
    ("0.0.0.0:8080:80", [PortRequest(80, "tcp", "0.0.0.0", 8080, 8080)]),
    ("[::1]:8080:80", [PortRequest(80, "tcp", "::1", 8080, 8080)]),
    ("::1:8080:80", [PortRequest(80, "tcp", "::1", 8080, 8080)]),
    ("8000-8001:80-81", [PortRequest(80, "tcp", "", 8000, 8000),
                         PortRequest(81, "tcp", "", 8001, 8001)]),
    ("80-81", [PortRequest(80, "tcp", "", 0, 0), PortRequest(81, "tcp", "", 0, 0)]),
    ("8000-8010:80", [PortRequest(80, "tcp", "", 8000, 8010)]),
    ("65535:65535", [PortRequest(65535, "tcp", "", 65535, 65535)]),
])
def test_parse_valid(spec, expected):
    assert ports.parse_publish(spec) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ("", "no port specified: <empty>"),
    ("80:", "no port specified: 80:<empty>"),
    ("127.0.0.1:8080:", "no port specified: 127.0.0.1:8080:<empty>"),
    ("abc", "invalid containerPort: abc"),
    ("8080:abc", "invalid containerPort: abc"),
    ("-1", "invalid containerPort: -1"),
    ("0", "invalid containerPort: 0"),
    ("65536", "invalid containerPort: 65536"),
    ("90-80", "invalid containerPort: 90-80"),
    ("80-", "invalid containerPort: 80-"),
    ("abc:80", "invalid hostPort: abc"),
    ("127.0.0.1:0:80", "invalid hostPort: 0"),
    ("70000:80", "invalid hostPort: 70000"),
    ("8080-8070:80", "invalid hostPort: 8080-8070"),
    ("80/sctp", "invalid proto: sctp"),
    ("80/foo", "invalid proto: foo"),
    ("80/", "invalid proto: "),
    ("1.2.3.4.5:80:80", "invalid IP address: 1.2.3.4.5"),
    ("localhost:80:80", "invalid IP address: localhost"),
    ("[::1:80:80", "invalid IP address: [::1"),
    ("8000-8002:80-81", "invalid ranges specified for container and host Ports: 80-81 and 8000-8002"),
])
def test_parse_malformed(spec, message):
    with pytest.raises(InvalidArgument) as info:
        ports.parse_publish(spec)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_parts_give_what_the_text_gives():
    """The API's PortBindings and compose's long syntax give the parts; same requests,
    same refusals as the -p text."""
    assert ports.bindings(80, "8080", "127.0.0.1", "udp") == \
        ports.parse_publish("127.0.0.1:8080:80/udp")
    assert ports.bindings("80-81", "8000-8001") == ports.parse_publish("8000-8001:80-81")
    assert ports.bindings(80, "", "[::1]") == ports.parse_publish("[::1]::80")
    for parts, message in [((0,), "invalid containerPort: 0"),
                           ((80, "x"), "invalid hostPort: x"),
                           ((80, "", "not-an-ip"), "invalid IP address: not-an-ip"),
                           ((80, "", "", "sctp"), "invalid proto: sctp")]:
        with pytest.raises(InvalidArgument) as info:
            ports.bindings(*parts)
        assert message in str(info.value)


def test_hand_built_requests_are_checked():
    assert ports.checked(PortRequest(80, "tcp", "", 8000, 8010)) == \
        PortRequest(80, "tcp", "", 8000, 8010)
    with pytest.raises(InvalidArgument, match="invalid containerPort: 70000"):
        ports.checked(PortRequest(70000))
    with pytest.raises(InvalidArgument, match="invalid proto: icmp"):
        ports.checked(PortRequest(80, "icmp"))


def test_publish_all_exposed_ports_get_distinct_free_ports():
    mappings = ports.allocate(ports.publish_all(["80/tcp", "443", "53/udp"]))
    assert [(m.container_port, m.protocol) for m in mappings] == \
        [(80, "tcp"), (443, "tcp"), (53, "udp")]
    tcp_ports = [m.host_port for m in mappings if m.protocol == "tcp"]
    assert len(set(tcp_ports)) == 2
    for m in mappings:
        assert m.host_port >= ports.unprivileged_port_start()
        assert not ports.port_in_use(m.protocol, "", m.host_port)


def test_port_in_use_is_named():
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        with pytest.raises(Conflict, match=rf"host port 127\.0\.0\.1:{port}/tcp is already in use"):
            ports.allocate(ports.parse_publish(f"127.0.0.1:{port}:80"))
        # every address (0.0.0.0) clashes with a listener on 127.0.0.1 too
        with pytest.raises(Conflict, match=rf"0\.0\.0\.0:{port}/tcp is already in use"):
            ports.allocate(ports.parse_publish(f"{port}:80"))


def test_udp_port_in_use_is_named():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(Conflict, match=rf"127\.0\.0\.1:{port}/udp is already in use"):
            ports.allocate(ports.parse_publish(f"127.0.0.1:{port}:53/udp"))
        # the same number over tcp is another port
        assert ports.allocate(ports.parse_publish(f"127.0.0.1:{port}:53/tcp"))


def test_privileged_port_names_the_sysctl():
    start = ports.unprivileged_port_start()
    if start <= 1:
        pytest.skip("net.ipv4.ip_unprivileged_port_start allows every port here")
    with pytest.raises(InvalidArgument) as info:
        ports.allocate(ports.parse_publish(f"127.0.0.1:{start - 1}:80"))
    msg = str(info.value)
    assert f"host port {start - 1} is below net.ipv4.ip_unprivileged_port_start ({start})" in msg
    assert "sysctl" in msg and "\n" not in msg


def test_same_host_port_twice():
    port = ports.allocate(ports.parse_publish("127.0.0.1::1"))[0].host_port
    reqs = ports.parse_publish(f"127.0.0.1:{port}:80") + ports.parse_publish(f"127.0.0.1:{port}:81")
    with pytest.raises(Conflict, match="published twice"):
        ports.allocate(reqs)


def test_host_range_for_one_port_takes_first_free():
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        if port >= 65535:
            pytest.skip("ephemeral port at the very top")
        [m] = ports.allocate(ports.parse_publish(f"127.0.0.1:{port}-{port + 1}:80"))
    assert m.host_port == port + 1


def test_unknown_host_address():
    with pytest.raises(InvalidArgument, match=r"192\.0\.2\.77 is not an address of this host"):
        ports.allocate(ports.parse_publish("192.0.2.77:18080:80"))


def test_docker_port_and_ps_format():
    m = PortMapping(80, "tcp", "127.0.0.1", 8080)
    assert str(m) == "80/tcp -> 127.0.0.1:8080"
    assert str(PortMapping(53, "udp", "", 5353)) == "53/udp -> 0.0.0.0:5353"
    assert str(PortMapping(80, "tcp", "::1", 8080)) == "80/tcp -> [::1]:8080"
    assert PortMapping.from_dict(m.to_dict()) == m
    assert ports.format_ps([
        PortMapping(81, "tcp", "", 8001), PortMapping(80, "tcp", "", 8000),
        PortMapping(53, "udp", "127.0.0.1", 5353), PortMapping(443, "tcp", "", 9443),
    ]) == "0.0.0.0:8000-8001->80-81/tcp, 0.0.0.0:9443->443/tcp, 127.0.0.1:5353->53/udp"
    assert ports.format_ps([]) == ""

"""`--network` values."""

import pytest

from rootless.errors import InvalidArgument
from rootless.network.modes import NetworkMode, parse_network, publishing_allowed


@pytest.mark.parametrize(("value", "expected"), [
    (None, NetworkMode("slirp4netns")),
    ("slirp4netns", NetworkMode("slirp4netns")),
    ("bridge", NetworkMode("slirp4netns")),
    ("slirp4netns:allow_host_loopback=true", NetworkMode("slirp4netns", allow_host_loopback=True)),
    ("slirp4netns:mtu=1500,cidr=10.5.0.0/24",
     NetworkMode("slirp4netns", mtu=1500, cidr="10.5.0.0/24")),
    ("slirp4netns:port_handler=slirp4netns", NetworkMode("slirp4netns")),
    ("slirp4netns:port_handler=proxy", NetworkMode("slirp4netns", port_handler="proxy")),
    ("slirp4netns:port_handler=rootlesskit,mtu=1500",
     NetworkMode("slirp4netns", mtu=1500, port_handler="proxy")),
    ("none", NetworkMode("none")),
    ("host", NetworkMode("host")),
    ("container:web", NetworkMode("container", "web")),
    ("mynet", NetworkMode("bridge", "mynet")),
])
def test_valid(value, expected):
    assert parse_network(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("slirp4netns:allow_host_loopback=maybe", "invalid value 'maybe' for allow_host_loopback"),
    ("slirp4netns:bogus=1", "unknown slirp4netns option 'bogus=1'"),
    ("slirp4netns:mtu=10", "invalid mtu '10'"),
    ("slirp4netns:cidr=10.0.0.0/30", "invalid cidr '10.0.0.0/30'"),
    ("slirp4netns:port_handler=socat", "port_handler=socat is not supported"),
    ("none:x", "--network none takes no options"),
    ("container:", "needs a container name"),
    ("weird:thing", "invalid --network value 'weird:thing'"),
    ("mynet:port_handler=proxy", "port_handler is an option of slirp4netns only"),
])
def test_invalid(value, message):
    with pytest.raises(InvalidArgument, match=None) as info:
        parse_network(value)
    assert message in str(info.value)


def test_publishing():
    assert publishing_allowed(parse_network("slirp4netns"))
    assert publishing_allowed(parse_network("mynet"))
    assert not publishing_allowed(parse_network("none"))
    assert not publishing_allowed(parse_network("host"))
    assert not publishing_allowed(parse_network("container:x"))

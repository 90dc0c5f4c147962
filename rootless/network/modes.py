"""`--network` values: what kind of network a container gets, and its options.

    slirp4netns[:allow_host_loopback=true,mtu=N,cidr=A.B.C.D/M,port_handler=H]   the default
                         port_handler=slirp4netns (default): slirp4netns forwards the
                         published ports and the container sees the client's address;
                         port_handler=proxy (or rootlesskit, podman's word for it): the
                         container's monitor does, faster, and the container sees its
                         own address as the client's (network/proxy.py)
    none                 only lo
    host                 the user's own network namespace. Rootless this is the network
                         namespace rl itself runs in: the container sees the host's
                         interfaces and may bind ports >= net.ipv4.ip_unprivileged_port_start
                         on them, but cannot change them (no CAP_NET_ADMIN there);
                         published ports are meaningless and refused.
    container:NAME       share NAME's network namespace (and its ports)
    NAME                 a user-defined network (rl network create)

Hand-written: Docker's and podman's syntax, no library parses it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from rootless.errors import InvalidArgument

_SLIRP_OPTIONS = {"allow_host_loopback", "mtu", "cidr", "port_handler", "enable_ipv6"}


@dataclass(frozen=True)
class NetworkMode:
    kind: str  # "slirp4netns", "none", "host", "container", "bridge"
    name: str = ""  # the container (kind container) or network (kind bridge)
    allow_host_loopback: bool = False
    mtu: int = 65520
    cidr: str | None = None
    port_handler: str = "slirp4netns"  # or "proxy"
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        if self.kind == "container":
            return f"container:{self.name}"
        if self.kind == "bridge":
            return self.name
        return self.kind


def _bool(key: str, value: str) -> bool:
    low = value.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise InvalidArgument(f"invalid value {value!r} for {key}", "use true or false")


def parse_network(value: str | None) -> NetworkMode:
    """Parse one `--network` value (None or "" means the default, slirp4netns)."""
    value = (value or "slirp4netns").strip()
    kind, _, rest = value.partition(":")
    if kind in ("slirp4netns", "default", "private"):
        opts: dict = {}
        for item in filter(None, rest.split(",")):
            key, eq, val = item.partition("=")
            if key not in _SLIRP_OPTIONS or not eq:
                raise InvalidArgument(f"unknown slirp4netns option {item!r}",
                                      "known: allow_host_loopback=true|false, mtu=N, cidr=NET,"
                                      " port_handler=slirp4netns|proxy")
            opts[key] = val
        mode = {"kind": "slirp4netns"}
        if "allow_host_loopback" in opts:
            mode["allow_host_loopback"] = _bool("allow_host_loopback", opts["allow_host_loopback"])
        if "mtu" in opts:
            if not opts["mtu"].isdigit() or not 68 <= int(opts["mtu"]) <= 65521:
                raise InvalidArgument(f"invalid mtu {opts['mtu']!r}", "slirp4netns takes 68 to 65521")
            mode["mtu"] = int(opts["mtu"])
        if "cidr" in opts:
            try:
                net = ipaddress.ip_network(opts["cidr"])
            except ValueError:
                raise InvalidArgument(f"invalid cidr {opts['cidr']!r}") from None
            if net.version != 4 or net.prefixlen > 25:
                raise InvalidArgument(f"invalid cidr {opts['cidr']!r}",
                                      "an IPv4 network of /25 or larger (the guest is .100)")
            mode["cidr"] = str(net)
        handler = opts.get("port_handler", "slirp4netns")
        if handler in ("proxy", "rootlesskit"):  # podman's name for the same way
            mode["port_handler"] = "proxy"
        elif handler != "slirp4netns":
            raise InvalidArgument(f"port_handler={handler} is not supported",
                                  "use port_handler=slirp4netns (the default: keeps the "
                                  "client's address) or port_handler=proxy (faster)")
        if _bool("enable_ipv6", opts.get("enable_ipv6", "false")):
            raise InvalidArgument("enable_ipv6 is not supported yet")
        return NetworkMode(**mode)
    if kind in ("none", "host"):
        if rest:
            raise InvalidArgument(f"--network {kind} takes no options")
        return NetworkMode(kind)
    if kind == "container":
        if not rest:
            raise InvalidArgument("--network container: needs a container name or id")
        return NetworkMode("container", rest)
    if kind == "bridge" and not rest:
        # Docker's default network; ours is slirp4netns
        return NetworkMode("slirp4netns")
    if rest.startswith("port_handler="):
        raise InvalidArgument(f"--network {kind}: port_handler is an option of slirp4netns "
                              "only", "a user-defined network publishes ports through its "
                              "own slirp4netns, which keeps client addresses")
    if rest:
        raise InvalidArgument(f"invalid --network value {value!r}")
    return NetworkMode("bridge", value)


def publishing_allowed(mode: NetworkMode) -> bool:
    """Whether -p/-P mean something for this mode (not for none, host, container:)."""
    return mode.kind in ("slirp4netns", "bridge")

"""The text of a container's /etc/resolv.conf and /etc/hosts; the runtime writes the files.

On the default network slirp4netns answers DNS on the third address of its subnet
(10.0.2.3) and the host is reachable on the second (10.0.2.2, which we name
`host.containers.internal` as podman does); the container itself is the hundredth
(10.0.2.100).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

DEFAULT_CIDR = "10.0.2.0/24"
HOST_ALIASES = ("host.containers.internal", "host.docker.internal")


def slirp_addresses(cidr: str | None = None) -> dict[str, str]:
    """gateway/host, dns and container addresses slirp4netns uses for `cidr`."""
    net = ipaddress.ip_network(cidr or DEFAULT_CIDR, strict=False)
    base = net.network_address
    return {"gateway": str(base + 2), "dns": str(base + 3), "container": str(base + 100),
            "prefixlen": str(net.prefixlen)}


def resolv_conf(nameservers: Iterable[str] | None = None, *, cidr: str | None = None,
                search: Iterable[str] = (), options: Iterable[str] = ()) -> str:
    """resolv.conf text: slirp4netns's DNS (or `nameservers`), then search and options."""
    servers = list(nameservers) if nameservers else [slirp_addresses(cidr)["dns"]]
    lines = [f"nameserver {s}" for s in servers]
    if search := list(search):
        lines.append("search " + " ".join(search))
    if options := list(options):
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def host_search_options(path: str = "/etc/resolv.conf") -> tuple[list[str], list[str]]:
    """The host's `search` domains and `options`, which containers keep (as podman does)."""
    search: list[str] = []
    options: list[str] = []
    try:
        with open(path) as f:
            for line in f:
                fields = line.split()
                if fields and fields[0] == "search":
                    search = fields[1:]
                elif fields and fields[0] == "options":
                    options += fields[1:]
    except OSError:
        pass
    return search, options


def hosts(hostname: str, *, container_ip: str | None = None, cidr: str | None = None,
          host_ip: str | None = None, extra: Iterable[tuple[str, str]] = (),
          aliases: Iterable[str] = ()) -> str:
    """/etc/hosts text: localhost, the container's hostname (and aliases) on its address,
    host.containers.internal on the host's address, then `extra` (--add-host) lines.

    `container_ip` None and no cidr: the slirp4netns default address. Pass
    container_ip="" for a container without a network (--network none): the hostname then
    points at 127.0.0.1."""
    addrs = slirp_addresses(cidr)
    if container_ip is None:
        container_ip = addrs["container"]
    names = " ".join(dict.fromkeys([hostname, *aliases]))
    lines = ["127.0.0.1\tlocalhost localhost.localdomain",
             "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines.append(f"{container_ip or '127.0.0.1'}\t{names}")
    if container_ip:
        lines.append(f"{host_ip or addrs['gateway']}\t{' '.join(HOST_ALIASES)}")
    lines += [f"{ip}\t{name}" for name, ip in extra]
    return "\n".join(lines) + "\n"

"""`rl run` flags that change a container's /etc/hosts and /etc/resolv.conf and the ports
it exposes: --add-host, --dns, --dns-search, --dns-option, --expose (Docker's).

`check()` refuses bad values before anything exists; `apply()` edits the texts that
rootless/engine/netwire.py made for the network mode.
"""

from __future__ import annotations

import ipaddress
import re

from rootless.errors import InvalidArgument

HOST_GATEWAY = "host-gateway"
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?")


def parse_add_host(text: str) -> tuple[str, str]:
    """`--add-host NAME:IP` (or NAME=IP, Docker 25's form; IP may be IPv6 or
    host-gateway) -> (name, ip as given)."""
    sep = "=" if "=" in text else ":"
    name, found, ip = text.partition(sep)
    fix = "use --add-host NAME:IP (or NAME:host-gateway)"
    if not found or not name or not ip:
        raise InvalidArgument(f"invalid --add-host {text!r}", fix)
    if not _HOSTNAME.fullmatch(name):
        raise InvalidArgument(f"invalid host name {name!r} in --add-host {text!r}", fix)
    if ip != HOST_GATEWAY:
        if ip.startswith("[") and ip.endswith("]"):
            ip = ip[1:-1]
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidArgument(f"invalid IP address {ip!r} in --add-host {text!r}",
                                  fix) from None
    return name, ip


def parse_dns(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidArgument(f"invalid --dns {text!r}: not an IP address",
                              "give a name server's address, e.g. --dns 1.1.1.1") from None


def parse_dns_search(text: str) -> str:
    if text != "." and not _HOSTNAME.fullmatch(text):
        raise InvalidArgument(f"invalid --dns-search {text!r}",
                              "give a domain, e.g. example.com (or . for none)")
    return text


def parse_dns_option(text: str) -> str:
    if not text or any(ch.isspace() for ch in text):
        raise InvalidArgument(f"invalid --dns-option {text!r}",
                              "give one resolv.conf option, e.g. ndots:2")
    return text


def parse_expose(text: str) -> list[str]:
    """`--expose PORT[/PROTO]` or a range `START-END[/PROTO]` -> ["80/tcp", ...]."""
    port, _, proto = text.partition("/")
    proto = proto.lower() or "tcp"
    fix = "use --expose PORT[/tcp|udp] or START-END[/PROTO]"
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid protocol {proto!r} in --expose {text!r}", fix)
    lo, dash, hi = port.partition("-")
    if not lo.isdigit() or (dash and not hi.isdigit()):
        raise InvalidArgument(f"invalid port {port!r} in --expose {text!r}", fix)
    first, last = int(lo), int(hi) if dash else int(lo)
    if not 1 <= first <= last <= 65535:
        raise InvalidArgument(f"invalid port range {port!r} in --expose {text!r}",
                              "ports are 1 to 65535, the start not above the end")
    return [f"{p}/{proto}" for p in range(first, last + 1)]


def check(opts) -> None:
    """Every value well-formed, and usable with the network mode."""
    from rootless.network.modes import parse_network

    for h in opts.add_hosts:
        parse_add_host(h)
    for d in opts.dns:
        parse_dns(d)
    for s in opts.dns_search:
        parse_dns_search(s)
    for o in opts.dns_options:
        parse_dns_option(o)
    for e in opts.expose:
        parse_expose(e)
    kind = parse_network(opts.network).kind
    if kind == "container" and (opts.add_hosts or opts.dns or opts.dns_search or
                                opts.dns_options):
        raise InvalidArgument("--add-host and --dns* cannot be used with --network container:",
                              "the container shares the other's /etc/hosts and resolv.conf")
    if kind == "none" and any(parse_add_host(h)[1] == HOST_GATEWAY for h in opts.add_hosts):
        raise InvalidArgument("--add-host NAME:host-gateway needs a network",
                              "drop --network none, or give the host's address")


def exposed(image_config: dict, opts) -> list[str]:
    """The image's ExposedPorts and --expose's, in order, once each."""
    ports = list((image_config.get("config") or {}).get("ExposedPorts") or {})
    for e in opts.expose:
        ports += parse_expose(e)
    return list(dict.fromkeys(ports))


def gateway(network: str | None) -> str:
    """The host as the container reaches it (what host-gateway means)."""
    from rootless.network import etcfiles
    from rootless.network.modes import parse_network

    mode = parse_network(network)
    if mode.kind == "host":
        return "127.0.0.1"
    return etcfiles.slirp_addresses(mode.cidr)["gateway"]


def hosts_lines(entries: list[str], network: str | None) -> list[tuple[str, str]]:
    """--add-host values -> (name, ip) with host-gateway resolved."""
    out = []
    for e in entries:
        name, ip = parse_add_host(e)
        out.append((name, gateway(network) if ip == HOST_GATEWAY else ip))
    return out


def apply(files: dict[str, str], opts) -> dict[str, str]:
    """Add --add-host lines to hosts; put --dns, --dns-search and --dns-option in
    resolv.conf in place of what the network mode wrote for them."""
    files = dict(files)
    lines = hosts_lines(opts.add_hosts, opts.network)
    if lines:
        files["hosts"] = files["hosts"] + "".join(f"{ip}\t{name}\n" for name, ip in lines)
    if opts.dns or opts.dns_search or opts.dns_options:
        files["resolv.conf"] = resolv(files["resolv.conf"], opts.dns, opts.dns_search,
                                      opts.dns_options)
    return files


def resolv(text: str, dns: list[str], search: list[str], options: list[str]) -> str:
    kept = {"nameserver": [], "search": [], "options": [], "other": []}
    for line in text.splitlines():
        word = line.split()[0] if line.split() else ""
        kept[word if word in kept else "other"].append(line)
    if dns:
        kept["nameserver"] = [f"nameserver {parse_dns(d)}" for d in dns]
    if search:
        kept["search"] = [] if search == ["."] else ["search " + " ".join(search)]
    if options:
        kept["options"] = ["options " + " ".join(options)]
    out = kept["other"] + kept["nameserver"] + kept["search"] + kept["options"]
    return "\n".join(out) + "\n"

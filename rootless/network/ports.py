"""Published ports: parse `-p`, assign `-P`, check the host side, and print them as Docker does.

`parse_publish("127.0.0.1:8080:80/tcp")` follows Docker's rules and error messages
(go-connections nat.ParsePortSpec): `[hostip:][hostport:]containerport[/proto]`, ranges
`8000-8002:80-82`, a host range for one container port (the first free port of the range is
used), IPv6 host addresses in brackets. `PortRequest` is the engine's typed record of a
publication (RunOptions.publish): the CLI gets it from parse_publish, the API and compose
from `bindings(container, host, ip, proto)` with their own parts; `checked(req)` checks one. `publish_all(exposed)` is `-P`. `allocate(requests)`
turns requests into `PortMapping`s with concrete host ports, and refuses, before anything
is started, a host port in use, a port below net.ipv4.ip_unprivileged_port_start, or the
same host port twice. The runtime stores the mappings in the container's record;
`str(mapping)` is the `rl port` line and `format_ps(mappings)` the `rl ps` PORTS column.

Hand-written: there is no Python library for Docker's port syntax.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from rootless.errors import Conflict, InvalidArgument

PROTOCOLS = ("tcp", "udp")
SYSCTL = "net.ipv4.ip_unprivileged_port_start"
_SYSCTL_PATH = "/proc/sys/net/ipv4/ip_unprivileged_port_start"


@dataclass(frozen=True)
class PortMapping:
    """One published port: host_ip:host_port on the host -> container_port in the container.

    host_ip "" means every address (Docker shows it as 0.0.0.0)."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: int = 0

    def host(self) -> str:
        ip = self.host_ip or "0.0.0.0"
        if ":" in ip:
            ip = f"[{ip}]"
        return f"{ip}:{self.host_port}"

    def __str__(self) -> str:
        """`80/tcp -> 127.0.0.1:8080`, the line `docker port` prints."""
        return f"{self.container_port}/{self.protocol} -> {self.host()}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PortMapping:
        return cls(container_port=int(data["container_port"]), protocol=data["protocol"],
                   host_ip=data.get("host_ip", ""), host_port=int(data["host_port"]))


@dataclass(frozen=True)
class PortRequest:
    """What one `-p` asked for, per container port. host_port_start 0: any free port;
    a host range (start < end) with one container port: the first free port in it."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port_start: int = 0
    host_port_end: int = 0


def _port_range(text: str) -> tuple[int, int]:
    """Docker's ParsePortRange: "80" or "80-90", each 0..65535, start <= end."""
    if not text:
        raise ValueError("empty string specified for ports")
    start_s, sep, end_s = text.partition("-")
    if not start_s.isdigit() or (sep and not end_s.isdigit()):
        raise ValueError(text)
    start = int(start_s)
    end = int(end_s) if sep else start
    if start > 65535 or end > 65535:
        raise ValueError(text)
    if start > end:
        raise ValueError(f"invalid range specified for port: {text}")
    return start, end


def _split(raw: str) -> tuple[str, str, str]:
    """(ip, hostport, containerport) as Docker's splitParts does it."""
    parts = raw.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    # an unbracketed IPv6 address: everything before the last two fields
    return ":".join(parts[:-2]), parts[-2], parts[-1]


def parse_publish(spec: str) -> list[PortRequest]:
    """Parse one `-p` value into one request per container port."""
    raw, _, proto = spec.rpartition("/") if "/" in spec else (spec, "", "tcp")
    proto = _check_proto(proto)
    ip, host, container = _split(raw)
    ip = _check_ip(ip)
    if not container:
        raise InvalidArgument(f"no port specified: {raw}<empty>")
    return bindings(container, host, ip, proto)


def _check_ip(ip: str) -> str:
    if ip.startswith("["):
        if not ip.endswith("]"):
            raise InvalidArgument(f"invalid IP address: {ip}")
        ip = ip[1:-1]
    if ip:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {ip}") from None
    return ip


def _check_proto(proto: str) -> str:
    proto = proto.lower()
    if proto not in PROTOCOLS:
        if proto == "sctp":
            raise InvalidArgument(f"invalid proto: {proto} (rootless networking through "
                                  "slirp4netns forwards only tcp and udp)")
        raise InvalidArgument(f"invalid proto: {proto}", "use /tcp or /udp")
    return proto


def bindings(container: str | int, host: str | int = "", ip: str = "",
             proto: str = "tcp") -> list[PortRequest]:
    """The requests of one publication given as its parts (what `-p ip:host:container/proto`
    says, or the API's PortBindings, or compose's long syntax): a port or a range on each
    side, the host side "" for any free port. Docker's rules and messages."""
    proto = _check_proto(proto)
    container, host, ip = str(container), str(host), _check_ip(ip)
    try:
        cstart, cend = _port_range(container)
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {container}") from None
    if cstart == 0:
        raise InvalidArgument(f"invalid containerPort: {container}", "ports are 1 to 65535")
    hstart = hend = 0
    if host:
        try:
            hstart, hend = _port_range(host)
        except ValueError:
            raise InvalidArgument(f"invalid hostPort: {host}") from None
        if hstart == 0:
            raise InvalidArgument(f"invalid hostPort: {host}", "ports are 1 to 65535")
        if (hend - hstart) != (cend - cstart) and cend != cstart:
            raise InvalidArgument(
                f"invalid ranges specified for container and host Ports: {container} and {host}")
    if cend == cstart:
        return [PortRequest(cstart, proto, ip, hstart, hend)]
    return [PortRequest(cstart + i, proto, ip, hstart + i if host else 0,
                        hstart + i if host else 0) for i in range(cend - cstart + 1)]


def checked(req: PortRequest) -> PortRequest:
    """A request a front end built itself, checked as bindings() checks its parts."""
    host = "" if not req.host_port_start else (
        str(req.host_port_start) if req.host_port_end in (0, req.host_port_start)
        else f"{req.host_port_start}-{req.host_port_end}")
    [out] = bindings(req.container_port, host, req.host_ip, req.protocol)
    return out


def publish_all(exposed: Iterable[str]) -> list[PortRequest]:
    """`-P`: every EXPOSEd port ("80", "80/tcp", "53/udp", "8000-8002/tcp") to a free port."""
    requests: list[PortRequest] = []
    for item in exposed:
        port, _, proto = item.partition("/")
        for req in parse_publish(f"{port}/{proto or 'tcp'}"):
            requests.append(req)
    return requests


def unprivileged_port_start() -> int:
    """The lowest port an unprivileged process may bind here (1024 when unknown)."""
    try:
        with open(_SYSCTL_PATH) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def _bind_probe(proto: str, host_ip: str, port: int) -> int | None:
    """Bind host_ip:port (0: any); return the port bound, or None when it is in use."""
    family = socket.AF_INET6 if ":" in (host_ip or "") else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as sock:
        if kind == socket.SOCK_STREAM:
            # as slirp4netns's listener does: a port in TIME_WAIT is free for it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host_ip or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(f"host address {host_ip} is not an address of this host",
                                      "use 127.0.0.1, 0.0.0.0 or an address of an interface"
                                      ) from None
            if exc.errno == errno.EACCES:
                return port  # privileged: reported by check_privileged
            raise
        return sock.getsockname()[1]


def port_in_use(proto: str, host_ip: str, port: int) -> bool:
    return _bind_probe(proto, host_ip, port) is None


def _in_use_error(m: PortMapping) -> Conflict:
    return Conflict(f"host port {m.host()}/{m.protocol} is already in use",
                    "choose another host port, or stop what listens on it")


def check_privileged(port: int) -> None:
    start = unprivileged_port_start()
    if port < start and os.geteuid() != 0:
        raise InvalidArgument(
            f"host port {port} is below {SYSCTL} ({start}): a rootless container cannot "
            "publish it",
            f"use a host port >= {start}, or as root: sysctl -w {SYSCTL}={port}")


def allocate(requests: Iterable[PortRequest]) -> list[PortMapping]:
    """Concrete mappings for `requests`, checked: raises before anything is started when a
    host port is privileged, in use, or asked for twice. Free ports are chosen for
    requests without a host port (the kernel's ephemeral range, as Docker does)."""
    mappings: list[PortMapping] = []
    taken: set[tuple[str, int]] = set()

    def clash(proto: str, port: int) -> bool:
        return (proto, port) in taken

    for req in requests:
        if req.host_port_start and req.host_port_start == req.host_port_end:
            m = PortMapping(req.container_port, req.protocol, req.host_ip, req.host_port_start)
            check_privileged(m.host_port)
            if clash(m.protocol, m.host_port):
                raise Conflict(f"host port {m.host()}/{m.protocol} is published twice",
                               "give each -p its own host port")
            if port_in_use(m.protocol, m.host_ip, m.host_port):
                raise _in_use_error(m)
        elif req.host_port_start:
            chosen = None
            for port in range(req.host_port_start, req.host_port_end + 1):
                check_privileged(port)
                if not clash(req.protocol, port) and not port_in_use(req.protocol, req.host_ip,
                                                                     port):
                    chosen = port
                    break
            if chosen is None:
                raise Conflict(f"every host port in {req.host_port_start}-{req.host_port_end}"
                               f"/{req.protocol} is in use")
            m = PortMapping(req.container_port, req.protocol, req.host_ip, chosen)
        else:
            for _ in range(20):
                port = _bind_probe(req.protocol, req.host_ip, 0)
                if port and not clash(req.protocol, port):
                    break
            else:  # pragma: no cover - the kernel kept handing out ports we already chose
                raise Conflict("no free host port found")
            m = PortMapping(req.container_port, req.protocol, req.host_ip, port)
        taken.add((m.protocol, m.host_port))
        mappings.append(m)
    return mappings


def format_ps(mappings: Iterable[PortMapping]) -> str:
    """The PORTS column of `docker ps`: `0.0.0.0:8000-8001->80-81/tcp, 127.0.0.1:53->53/udp`.

    Consecutive host and container ports with the same address and protocol are joined
    into one range, as Docker does."""
    items = sorted(mappings, key=lambda m: (m.protocol, m.host_ip, m.container_port))
    groups: list[list[PortMapping]] = []
    for m in items:
        last = groups[-1][-1] if groups else None
        if (last and last.protocol == m.protocol and last.host_ip == m.host_ip
                and m.container_port == last.container_port + 1
                and m.host_port == last.host_port + 1):
            groups[-1].append(m)
        else:
            groups.append([m])
    out = []
    for g in groups:
        first, last = g[0], g[-1]
        host_ports = str(first.host_port) if len(g) == 1 else f"{first.host_port}-{last.host_port}"
        cports = str(first.container_port) if len(g) == 1 else \
            f"{first.container_port}-{last.container_port}"
        host = first.host().rsplit(":", 1)[0]
        out.append(f"{host}:{host_ports}->{cports}/{first.protocol}")
    return ", ".join(out)


def forward_all(slirp, mappings: Iterable[PortMapping]) -> list[int]:
    """add_hostfwd for every mapping on a started Slirp; on a failure the forwards made so
    far are removed again and the error raised. Returns slirp4netns's forward ids."""
    ids: list[int] = []
    try:
        for m in mappings:
            ids.append(slirp.add_hostfwd(m.protocol, m.host_ip or "0.0.0.0", m.host_port,
                                         m.container_port))
    except BaseException:
        for fid in ids:
            with contextlib.suppress(Exception):
                slirp.remove_hostfwd(fid)
        raise
    return ids

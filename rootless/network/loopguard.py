"""Replies to UDP clients on the host's loopback, without opening the host's loopback to the
container.

The problem: with `--disable-host-loopback` (rl's default, as podman's) libslirp drops
every UDP datagram the container sends to the gateway (10.0.2.2), and a client on the
host's 127.0.0.1 appears in the container as 10.0.2.2. So a published UDP port receives
the loopback client's datagram but its answer is lost (libslirp's sotranslate_out; podman
issue #4586, which podman answered by proxying ports in userspace with rootlessport, at
the price of the client's address). TCP is not affected: a forwarded connection's replies
go back over the accepted socket.

What rl does instead, only when a container publishes a UDP port that a loopback client
can reach (host address 127.0.0.0/8 or every address) and host loopback was not asked
for: slirp4netns runs with host loopback allowed, and before the container's command
starts, a rule in the container's own network namespace refuses every *new* flow to the
gateway:

    table ip rl_loopguard { chain output { type filter hook output priority 0;
        ip daddr 10.0.2.2 ct state new reject } }

Replies to flows the host started (ct state established) pass, so the UDP answer reaches
the client; the container still cannot open anything to the host's 127.0.0.1. The rule
is installed from outside (nft run in the container's user and network namespaces) and the
container's processes lack CAP_NET_ADMIN to remove it, unless it was given with --cap-add
NET_ADMIN or --privileged: with those, and a published UDP port, the container can reach
the host's loopback as with allow_host_loopback=true (said in README.md, Networking).
Such a container also gets no CAP_NET_RAW unless `--cap-add NET_RAW` names it (nor one that
joins its namespace with `--network container:`): a packet socket on tap0 sends frames
that no output hook sees (engine/spec.py, netwire.loopback_guarded).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterable

from rootless.errors import RlError
from rootless.linux import syscalls

PACKAGE = "nftables"


def needed(mappings: Iterable, allow_host_loopback: bool) -> bool:
    """Whether a container with these port mappings needs the guard (see the docstring)."""
    if allow_host_loopback:
        return False
    for m in mappings:
        if m.protocol != "udp":
            continue
        ip = m.host_ip or "0.0.0.0"
        if ip in ("0.0.0.0", "::") or ipaddress.ip_address(ip).is_loopback:
            return True
    return False


def ruleset(gateway: str) -> str:
    gw = ipaddress.ip_address(gateway)
    return ("table ip rl_loopguard {\n"
            "  chain output {\n"
            "    type filter hook output priority 0; policy accept;\n"
            f"    ip daddr {gw} ct state new reject\n"
            "  }\n"
            "}\n")


def install(pid: int, gateway: str) -> None:
    """Add the rule to the network namespace of `pid` (run nft there, in pid's user
    namespace, which the caller's user owns). Raises RlError with nft's first error."""
    nft = shutil.which("nft") or ("/usr/sbin/nft" if os.path.exists("/usr/sbin/nft") else None)
    if nft is None:
        raise RlError("nft is not installed; rl needs it to answer UDP clients on the host's "
                      "loopback through a published port",
                      f"install the '{PACKAGE}' package, or publish the UDP port on a "
                      "non-loopback address")
    user_fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    net_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def enter() -> None:  # in the forked child, single-threaded as setns(user) requires
        syscalls.setns(user_fd, syscalls.CLONE_NEWUSER)
        syscalls.setns(net_fd, syscalls.CLONE_NEWNET)

    try:
        res = subprocess.run([nft, "-f", "-"], input=ruleset(gateway), capture_output=True,
                             text=True, preexec_fn=enter, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RlError(f"could not guard the host's loopback: {exc}") from exc
    finally:
        os.close(user_fd)
        os.close(net_fd)
    if res.returncode != 0:
        line = (res.stderr.strip().splitlines() or [f"exit status {res.returncode}"])[0]
        raise RlError(f"could not guard the host's loopback: nft: {line}")

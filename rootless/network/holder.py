"""The per-user network holder: a process owning the user and network namespaces in which
user-defined networks live, and the netlink work done inside it.

Design (user-defined networks, rootless; podman's rootless-netns is the anchor)

    host (the user, init namespaces)
    ├─ slirp4netns ──tap0── holder: user ns H + net ns N     one per user, `rl-netns-holder`
    │                       ├─ rl-<net>  bridge per network, gateway .1 of its subnet
    │                       │    └─ rlv<id> ══ veth ══ eth0 in a container's net ns
    │                       └─ nftables `table ip rl`: masquerade each subnet out of tap0,
    │                          forward only bridge->tap0, replies, and DNATed port forwards
    └─ each container on a user network: its user ns is a CHILD of H (or H itself)

Why the container's user namespace must live under H: moving a veth end into a network
namespace needs CAP_NET_ADMIN over the user namespace owning it, checked against the
credentials of the netlink socket's opener. Root of H has that over H's descendants only;
a container whose user namespace is a sibling of H (made directly by the user) cannot be
reached, and the user in the initial namespace may not change N at all (checked here: "ip
link add ... peer netns /proc/SIBLING/ns/net" fails, into a child of H succeeds). So for
`--network NAME` the runtime creates the container's user namespace after setns() into H
(H's maps hold the user's full subordinate range, written by newuidmap/newgidmap when the
holder starts, so the container can map them again: `Holder.write_id_maps(pid)` writes
them from inside H, since newuidmap cannot write for a grandchild namespace), then calls
`Holder.connect()`.

- Outside world: `slirp.start(holder.pid, ...)` gives N a tap0 (10.0.2.100, default route
  via 10.0.2.2); bridge subnets leave through tap0 masqueraded (`set_ruleset`).
- Isolation: the forward chain drops bridge-to-bridge traffic; containers on one network
  talk over the bridge (layer 2, not forwarded), so they reach each other and nobody else.
- Published ports of such a container: an add_hostfwd on the holder's slirp4netns to a
  holder port, and a DNAT rule in `table ip rl` to container-ip:port. DNAT keeps the
  client's address, which slirp4netns already kept (except loopback clients: 10.0.2.2).
  The engine's holder runs slirp4netns with host loopback allowed, as UDP replies to a
  loopback client need it (rootless/network/loopguard.py), and the forward chain refuses
  every new flow to 10.0.2.2, so containers still cannot reach the host's 127.0.0.1;
  they cannot change the holder's rules, which live outside their namespaces.
- Names: every container's /etc/hosts lists the members of its networks (name and
  aliases), rewritten by the engine when a container joins or leaves
  (`etcfiles.hosts(extra=...)`). No DNS server needed for this.
- Lifetime: the holder is started on first need, its pid kept in
  $XDG_RUNTIME_DIR/rl/netns-holder.json; the engine stops it when no container uses a user
  network. It ignores the death of the rl command that started it (setsid, no pdeathsig).

Each operation forks a child that setns()es into H and N (a fresh fork is single-threaded,
which setns into a user namespace requires), runs pyroute2 there, and sends the result
back through a pipe. nftables rules go through `nft -f -`: pyroute2's nftables module
cannot express nat/masquerade rules (hand-written ruleset text instead).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import os
import pickle
import shutil
import signal
import subprocess
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from rootless.errors import RlError
from rootless.linux import syscalls

HOLDER_NAME = "rl-netns-holder"


@dataclass
class Holder:
    pid: int  # the process in the namespaces ("rl-netns-holder", a sleep)
    start_time: str
    keeper: int = 0  # its parent in the host namespaces; owns the holder's slirp4netns
    api_socket: str = ""  # that slirp4netns's API socket ("" when started without one)

    # -- lifetime -------------------------------------------------------------------------

    @classmethod
    def start(cls, state_file: Path | None = None, *, slirp_socket: Path | None = None,
              allow_host_loopback: bool = False) -> Holder:
        """Start the holder and return once it is ready.

        Two processes: a keeper (setsid, in the user's own namespaces) and its child in a
        new user + net namespace (ids mapped, lo up, ip_forward on) that sleeps. With
        `slirp_socket`, the keeper also runs slirp4netns for the namespace (tap0, the
        outside world). SIGTERM to the keeper (`stop()`) ends all three; if the keeper is
        killed outright, the child dies by PR_SET_PDEATHSIG and slirp4netns by its
        --exit-fd. The keeper outlives the rl command that started it."""
        # A long-lived fork of rl must not hold its files and locks: every fd but stdio and
        # the answer pipe is pointed at /dev/null (syscalls.neutralize_fds), never closed,
        # so a Python object of rl that still owns the number (an sqlite connection in a
        # reference cycle) closes /dev/null when collected, not what reused the number
        # (seen here when they were closed: the answer pipe of a helper, "died without an
        # answer"). Collecting garbage first still spares the keeper those finalizers.
        import gc

        gc.collect()
        r, w = os.pipe()
        keeper = os.fork()
        if keeper == 0:
            code = 1
            try:
                os.close(r)
                os.setsid()
                from rootless.linux import syscalls

                syscalls.neutralize_fds({0, 1, 2, w})
                code = _keeper_main(w, state_file, slirp_socket, allow_host_loopback)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.write(w, pickle.dumps(("err", f"{exc}")))
            finally:
                os._exit(code)
        os.close(w)
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
        os.close(r)
        answer = pickle.loads(b"".join(chunks)) if chunks else ("err", "it died while starting")
        if answer[0] != "ok":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(keeper, 0)
            raise RlError(f"the network holder could not start: {answer[1]}",
                          "are unprivileged user namespaces enabled? (rl info)")
        return cls(**answer[1])

    @classmethod
    def find(cls, state_file: Path) -> Holder | None:
        """The running holder recorded in state_file, or None (a stale file is removed)."""
        try:
            data = json.loads(state_file.read_text())
            holder = cls(int(data["pid"]), str(data["start_time"]), int(data.get("keeper", 0)),
                         str(data.get("api_socket", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if holder.alive():
            return holder
        with contextlib.suppress(FileNotFoundError):
            state_file.unlink()
        return None

    @classmethod
    def ensure(cls, state_file: Path, *, slirp_socket: Path | None = None) -> Holder:
        """The running holder, or a new one; two rl commands at once start only one."""
        import fcntl

        with open(state_file.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # host loopback on: replies to UDP clients on the host's 127.0.0.1 need it (see
            # rootless/network/loopguard.py); `ruleset` refuses new flows to it
            return cls.find(state_file) or cls.start(state_file, slirp_socket=slirp_socket,
                                                     allow_host_loopback=True)

    def alive(self) -> bool:
        return _start_time(self.pid) == self.start_time

    def stop(self, state_file: Path | None = None) -> None:
        """End the holder (keeper, namespaces with their bridges and veths, slirp4netns)."""
        if self.keeper and _start_time(self.keeper):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.keeper, signal.SIGTERM)
        elif self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.keeper:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(self.keeper, os.WNOHANG)  # our child when we started it
            if not self.alive() and not (self.keeper and _start_time(self.keeper)):
                break
            time.sleep(0.01)
        else:
            for pid in (self.keeper, self.pid):
                if pid:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        if state_file:
            with contextlib.suppress(FileNotFoundError):
                state_file.unlink()

    def slirp_api(self):
        """The holder's slirp4netns API (add_hostfwd for published ports)."""
        from rootless.network import slirp

        if not self.api_socket:
            raise RlError("the network holder runs without slirp4netns")
        return slirp.Api(self.api_socket)

    # -- running code inside --------------------------------------------------------------

    def run(self, fn: Callable, *args, netns_of: int | None = None, enter: bool = True):
        """fn(*args) in a forked child inside the holder's user and net namespaces; returns
        its picklable result. With `netns_of` (a pid), the child then enters that process's
        net namespace (enter=True), or gets an fd of it as a last argument (enter=False).
        Namespace files are opened here, before the child changes its credentials."""
        r, w = os.pipe()
        user_fd = os.open(f"/proc/{self.pid}/ns/user", os.O_RDONLY)
        net_fd = os.open(f"/proc/{self.pid}/ns/net", os.O_RDONLY)
        other_fd = os.open(f"/proc/{netns_of}/ns/net", os.O_RDONLY) if netns_of else None
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                os.close(r)
                syscalls.setns(user_fd, syscalls.CLONE_NEWUSER)
                syscalls.setns(net_fd, syscalls.CLONE_NEWNET)
                if other_fd is not None and enter:
                    syscalls.setns(other_fd, syscalls.CLONE_NEWNET)
                elif other_fd is not None:
                    args = (*args, other_fd)
                result = ("ok", fn(*args))
            except BaseException as exc:
                status = 1
                result = ("err", f"{type(exc).__name__}: {exc}", traceback.format_exc())
            try:
                os.write(w, pickle.dumps(result))
            finally:
                os._exit(status)
        os.close(w)
        for fd in (user_fd, net_fd, other_fd):
            if fd is not None:
                os.close(fd)
        chunks = []
        while chunk := os.read(r, 65536):
            chunks.append(chunk)
        os.close(r)
        os.waitpid(pid, 0)
        if not chunks:
            raise RlError("a helper inside the network holder died without an answer")
        result = pickle.loads(b"".join(chunks))
        if result[0] == "err":
            raise RlError(f"network holder: {result[1]}")
        return result[1]

    def write_id_maps(self, pid: int, uid_map: str | None = None,
                      gid_map: str | None = None) -> None:
        """Write the id maps of `pid`'s new user namespace, a child of the holder's, from
        inside the holder (newuidmap cannot: it only writes for children of the caller's
        namespace). The lines are in the holder's ids; the default is the identity over
        everything the holder maps (the user as root, then the subordinate range)."""
        self.run(_write_child_maps, pid, uid_map, gid_map)

    # -- networks -------------------------------------------------------------------------

    def add_bridge(self, bridge: str, subnet: str, gateway: str) -> None:
        self.run(_add_bridge, bridge, gateway, ipaddress.ip_network(subnet).prefixlen)

    def remove_bridge(self, bridge: str) -> None:
        self.run(_remove_link, bridge)

    def links(self) -> list[str]:
        return self.run(_links)

    def connect(self, bridge: str, pid: int, address: str, subnet: str, gateway: str,
                ifname: str = "eth0", key: str | None = None, mac: str | None = None) -> str:
        """A veth pair from `bridge` into the net namespace of `pid` (which must belong to H
        or a user namespace under it): `ifname` there gets address/prefix, a default route
        via gateway when it has none yet. Returns the host-side interface name."""
        tag = hashlib.sha256(f"{key or pid}-{bridge}".encode()).hexdigest()[:8]
        host_if, peer_if = f"rlv{tag}", f"rlp{tag}"
        prefixlen = ipaddress.ip_network(subnet).prefixlen
        self.run(_veth_to, bridge, host_if, peer_if, netns_of=pid, enter=False)
        try:
            self.run(_configure_peer, peer_if, ifname, address, prefixlen, gateway, mac,
                     netns_of=pid)
        except BaseException:
            with contextlib.suppress(RlError):
                self.run(_remove_link, host_if)
            raise
        return host_if

    def free_ifname(self, pid: int) -> str:
        """The first ethN not yet in the net namespace of `pid` (for a hot-plugged network)."""
        taken = set(self.run(_links, netns_of=pid))
        return next(f"eth{i}" for i in range(len(taken) + 1) if f"eth{i}" not in taken)

    def ensure_default_route(self, pid: int, gateway: str) -> None:
        """In the net namespace of `pid`: a default route via `gateway` if it has none (the
        one it had went with a disconnected network)."""
        self.run(_default_route, gateway, netns_of=pid)

    def disconnect(self, host_if: str) -> None:
        """Remove the veth pair (both ends go when one is deleted)."""
        self.run(_remove_link, host_if)

    def set_ruleset(self, networks: Iterable[tuple],
                    dnat: Iterable[tuple[str, int, str, int]] = (),
                    outside_if: str = "tap0") -> None:
        """Replace `table ip rl` for `networks` (bridge, subnet[, internal]): masquerade
        each subnet out of outside_if (not internal ones, which may not leave); forward only within a bridge, outbound, replies and DNATed
        connections (so networks cannot reach each other); DNAT (proto, holder_port,
        container_ip, container_port) coming in on outside_if."""
        self.run(_apply_nft, ruleset(networks, dnat, outside_if))


def ruleset(networks: Iterable[tuple], dnat: Iterable[tuple[str, int, str, int]] = (),
            outside_if: str = "tap0", host_gateway: str = "10.0.2.2") -> str:
    """The nftables text of `Holder.set_ruleset`. Containers never open a flow to
    `host_gateway` (slirp4netns's door to the host's loopback, which the holder's
    slirp4netns leaves open so that replies to loopback UDP clients get through)."""
    networks = [(n[0], n[1], bool(n[2]) if len(n) > 2 else False) for n in networks]
    lines = ["add table ip rl", "delete table ip rl", "table ip rl {",
             "  chain prerouting {", "    type nat hook prerouting priority -100; policy accept;"]
    for proto, hport, cip, cport in dnat:
        lines.append(f'    iifname "{outside_if}" {proto} dport {int(hport)} '
                     f"dnat to {ipaddress.ip_address(cip)}:{int(cport)}")
    lines += ["  }", "  chain postrouting {",
              "    type nat hook postrouting priority 100; policy accept;"]
    for _, net, internal in networks:
        if not internal:
            lines.append(f'    ip saddr {ipaddress.ip_network(net)} oifname "{outside_if}" '
                         "masquerade")
    lines += ["  }", "  chain forward {", "    type filter hook forward priority 0; policy drop;",
              "    ct state established,related accept",
              f"    ip daddr {ipaddress.ip_address(host_gateway)} reject"]
    # With br_netfilter loaded (bridge-nf-call-iptables, as on these machines), frames
    # between two ports of one bridge pass this hook too, with the bridge as in and out.
    for bridge, _, internal in networks:
        lines.append(f'    iifname "{_ifname(bridge)}" oifname "{_ifname(bridge)}" accept')
        if internal:
            lines.append(f'    iifname "{bridge}" drop')
    lines += [f'    oifname "{outside_if}" accept', "    ct status dnat accept", "  }", "}"]
    return "\n".join(lines) + "\n"


def _ifname(name: str) -> str:
    if not name or len(name) > 15 or not all(c.isalnum() or c in "-_." for c in name):
        raise RlError(f"invalid interface name {name!r}")
    return name


# -- what runs inside (module level so the forked child finds it) -------------------------

def _ipr():
    from pyroute2 import IPRoute  # heavy: only in the forked helper

    return IPRoute()


def _index(ipr, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise RlError(f"no interface {name}")
    return found[0]


def _write_child_maps(pid: int, uid_map: str | None, gid_map: str | None) -> None:
    def identity(path: str) -> str:
        # one line per extent of the holder's own map: the kernel maps each line of a
        # child's map into ONE extent of the parent's, so "0 0 65537" would be refused
        with open(path) as f:
            return "".join(f"{ln.split()[0]} {ln.split()[0]} {ln.split()[2]}\n"
                           for ln in f if ln.strip())

    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(uid_map or identity("/proc/self/uid_map"))
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(gid_map or identity("/proc/self/gid_map"))


def _lo_up() -> None:
    with _ipr() as ipr:
        ipr.link("set", index=_index(ipr, "lo"), state="up")
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1\n")


def _add_bridge(bridge: str, gateway: str, prefixlen: int) -> None:
    with _ipr() as ipr:
        if not ipr.link_lookup(ifname=bridge):
            ipr.link("add", ifname=bridge, kind="bridge")
        idx = _index(ipr, bridge)
        with contextlib.suppress(Exception):  # already there after a restart of rl
            ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")


def _remove_link(name: str) -> None:
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            ipr.link("del", index=found[0])


def _links() -> list[str]:
    with _ipr() as ipr:
        return sorted(link.get_attr("IFLA_IFNAME") for link in ipr.get_links())


def _veth_to(bridge: str, host_if: str, peer_if: str, netns_fd: int) -> None:
    with _ipr() as ipr:
        ipr.link("add", ifname=host_if, kind="veth", peer=peer_if)
        try:
            ipr.link("set", index=_index(ipr, host_if), master=_index(ipr, bridge), state="up")
            ipr.link("set", index=_index(ipr, peer_if), net_ns_fd=netns_fd)
        except BaseException:
            ipr.link("del", index=_index(ipr, host_if))
            raise


def _configure_peer(peer_if: str, ifname: str, address: str, prefixlen: int,
                    gateway: str, mac: str | None = None) -> None:
    with _ipr() as ipr:
        idx = _index(ipr, peer_if)
        ipr.link("set", index=idx, ifname=ifname)
        if mac:  # --mac-address
            ipr.link("set", index=idx, address=mac)
        ipr.addr("add", index=idx, address=address, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
        ipr.link("set", index=_index(ipr, "lo"), state="up")
        has_default = any(r.get_attr("RTA_DST") is None and r["dst_len"] == 0
                          for r in ipr.get_routes(family=2, table=254))
        if not has_default:
            ipr.route("add", dst="0.0.0.0/0", gateway=gateway)


def _default_route(gateway: str) -> None:
    with _ipr() as ipr:
        if not any(r.get_attr("RTA_DST") is None and r["dst_len"] == 0
                   for r in ipr.get_routes(family=2, table=254)):
            ipr.route("add", dst="0.0.0.0/0", gateway=gateway)


def _apply_nft(text: str) -> None:
    nft = shutil.which("nft") or "/usr/sbin/nft"
    res = subprocess.run([nft, "-f", "-"], input=text, capture_output=True, text=True)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["nft failed"])[0]
        raise RlError(f"nft: {last}")


# -- the keeper ---------------------------------------------------------------------------

def _spawn_namespace_child() -> int:
    """Fork the process that owns the namespaces; returns its pid once its ids are mapped
    and it has exec'd sleep (so that setns finds the final process)."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(go_w)
            syscalls.prctl(syscalls.PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(1)
            syscalls.unshare(syscalls.CLONE_NEWUSER | syscalls.CLONE_NEWNET)
            os.write(ready_w, b"1")
            if os.read(go_r, 1) != b"1":
                os._exit(1)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.execv(shutil.which("sleep") or "/bin/sleep", [HOLDER_NAME, "infinity"])
        finally:
            os._exit(127)
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise RlError("could not create the user and network namespaces")
        _write_id_maps(pid)
        os.write(go_w, b"1")
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(ready_r)
        os.close(go_w)
    deadline = time.monotonic() + 5
    while _comm(pid) != "sleep" and time.monotonic() < deadline:
        time.sleep(0.005)
    return pid


class _Stop(BaseException):
    pass


def _keeper_main(answer_w: int, state_file: Path | None, slirp_socket: Path | None,
                 allow_host_loopback: bool) -> int:
    from rootless.network import slirp

    def on_term(*_):
        # raise, not set a flag: Python retries an interrupted waitpid after a handler
        # that returns (PEP 475)
        raise _Stop

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = _spawn_namespace_child()
    s = None
    try:
        holder = Holder(child, _start_time(child), os.getpid(), str(slirp_socket or ""))
        holder.run(_lo_up)
        if slirp_socket:
            s = slirp.start(child, api_socket=Path(slirp_socket),
                            allow_host_loopback=allow_host_loopback)
            if allow_host_loopback:  # the guard (see ruleset) before any container joins
                holder.run(_apply_nft, ruleset([]))
        if state_file:
            tmp = state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(dataclasses.asdict(holder)))
            tmp.replace(state_file)
        os.write(answer_w, pickle.dumps(("ok", dataclasses.asdict(holder))))
        os.close(answer_w)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        with contextlib.suppress(_Stop):
            os.waitpid(child, 0)  # until the namespace process dies or SIGTERM comes
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if s is not None:
            s.stop()
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)
    return 0


# -- helpers ------------------------------------------------------------------------------

def _start_time(pid: int) -> str:
    from rootless.linux import procstat

    t = procstat.start_time(pid)
    return "" if t is None else str(t)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _write_id_maps(pid: int) -> None:
    """H maps root to the user and, when newuidmap and subordinate ranges exist, the
    ranges after it (so containers under H can use them); else only the user."""
    from rootless.runtime import idmap

    uid, gid = os.getuid(), os.getgid()
    uranges = idmap.read_ranges(idmap.SUBUID_FILE)
    granges = idmap.read_ranges(idmap.SUBGID_FILE)
    newuidmap, newgidmap = shutil.which("newuidmap"), shutil.which("newgidmap")
    if uranges and granges and newuidmap and newgidmap:
        for tool, m in ((newuidmap, idmap.default_map(uid, uranges)),
                        (newgidmap, idmap.default_map(gid, granges))):
            res = subprocess.run([tool, str(pid), *m.newidmap_args()], capture_output=True,
                                 text=True)
            if res.returncode != 0:
                raise RlError(f"{os.path.basename(tool)} failed for the network holder: "
                              f"{res.stderr.strip().splitlines()[-1:] or res.returncode}")
        return
    with open(f"/proc/{pid}/setgroups", "w") as f:
        f.write("deny")
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(f"0 {uid} 1\n")
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(f"0 {gid} 1\n")

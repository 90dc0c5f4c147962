"""User-defined networks as engine verbs: create, list, inspect, remove, prune; and for the
runtime, attaching a container (address, veth, /etc/hosts entries) and detaching it.

A network is a row in the catalog's `networks` table (name, subnet, gateway, bridge name)
and, while containers use it, a bridge in the per-user network holder
(rootless/network/holder.py, whose docstring holds the design). Endpoints (which container
has which address on which network, under which names) are rows in `network_endpoints`;
the holder starts with the first endpoint and stops with the last.

Also here: `container_ports(name)` for `rl port`, read from the container's record
(rootless/store/containerdb.py; options JSON key "ports": a list of PortMapping.to_dict()).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from rootless.errors import Conflict, InvalidArgument, NotFound, RlError
from rootless.network.ports import PortMapping
from rootless.store import catalog, paths

catalog.register_schema("networks", (
    """CREATE TABLE IF NOT EXISTS networks (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        driver TEXT NOT NULL DEFAULT 'bridge',
        subnet TEXT NOT NULL UNIQUE,
        gateway TEXT NOT NULL,
        bridge TEXT NOT NULL UNIQUE,
        internal INTEGER NOT NULL DEFAULT 0,
        labels TEXT NOT NULL DEFAULT '{}',
        created REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS network_endpoints (
        network_id TEXT NOT NULL REFERENCES networks(id),
        container_id TEXT NOT NULL,
        name TEXT NOT NULL,
        aliases TEXT NOT NULL DEFAULT '[]',
        ip TEXT NOT NULL,
        host_if TEXT NOT NULL DEFAULT '',
        ports TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (network_id, container_id),
        UNIQUE (network_id, ip)
    )""",
))

# Names that mean something else after --network (Docker's and podman's built-ins).
RESERVED = frozenset({"bridge", "host", "none", "default", "slirp4netns", "pasta", "podman",
                      "private", "container"})
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# Automatic subnets: 10.89.N.0/24 as podman does; 10.0.2.0/24 is slirp4netns's own.
_AUTO_BASE = ipaddress.ip_network("10.89.0.0/16")
_SLIRP_NET = ipaddress.ip_network("10.0.2.0/24")


@dataclass
class Network:
    id: str
    name: str
    driver: str
    subnet: str
    gateway: str
    bridge: str
    internal: bool
    labels: dict
    created: float
    endpoints: list[dict] = field(default_factory=list)

    def to_inspect(self) -> dict:
        """`rl network inspect` output, in Docker's shape."""
        return {
            "Name": self.name,
            "Id": self.id,
            "Created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
            "Scope": "local",
            "Driver": self.driver,
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {},
                     "Config": [{"Subnet": self.subnet, "Gateway": self.gateway}]},
            "Internal": self.internal,
            "Attachable": False,
            "Containers": {e["container_id"]: {"Name": e["name"],
                                               "IPv4Address": f"{e['ip']}/{self.prefixlen}",
                                               "Aliases": e["aliases"]}
                           for e in self.endpoints},
            "Options": {"com.docker.network.bridge.name": self.bridge},
            "Labels": self.labels,
        }

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen


def _connect(root: Path | None = None) -> sqlite3.Connection:
    return catalog.connect(root)


def _row_to_network(conn: sqlite3.Connection, row: sqlite3.Row) -> Network:
    eps = [{"container_id": e["container_id"], "name": e["name"],
            "aliases": json.loads(e["aliases"]), "ip": e["ip"], "host_if": e["host_if"]}
           for e in conn.execute("SELECT * FROM network_endpoints WHERE network_id=? "
                                 "ORDER BY name", (row["id"],))]
    return Network(id=row["id"], name=row["name"], driver=row["driver"], subnet=row["subnet"],
                   gateway=row["gateway"], bridge=row["bridge"], internal=bool(row["internal"]),
                   labels=json.loads(row["labels"]), created=row["created"], endpoints=eps)


def _find(conn: sqlite3.Connection, ref: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM networks WHERE name=?", (ref,)).fetchone()
    if row is None and len(ref) >= 3 and re.fullmatch(r"[0-9a-f]+", ref):
        rows = conn.execute("SELECT * FROM networks WHERE id LIKE ?", (ref + "%",)).fetchall()
        if len(rows) > 1:
            raise Conflict(f"network id prefix {ref} is ambiguous", "give more characters")
        row = rows[0] if rows else None
    if row is None:
        raise NotFound(f"network {ref} not found", "see rl network ls")
    return row


def _pick_subnet(taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    for candidate in _AUTO_BASE.subnets(new_prefix=24):
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise Conflict("no free subnet left in 10.89.0.0/16", "give one with --subnet")


def create(name: str, *, subnet: str | None = None, gateway: str | None = None,
           labels: dict | None = None, internal: bool = False, driver: str = "bridge",
           root: Path | None = None) -> Network:
    """Record a new bridge network (the only driver). Nothing runs until a container
    joins it."""
    if driver != "bridge":
        raise InvalidArgument(f"network driver {driver} is not supported", "use bridge")
    if not _NAME_RE.match(name or ""):
        raise InvalidArgument(f"invalid network name {name!r}",
                              "use letters, digits and _ . - (starting with a letter or digit)")
    if name in RESERVED:
        raise InvalidArgument(f"network name {name} is reserved", "choose another name")
    net = None
    if subnet is not None:
        try:
            net = ipaddress.ip_network(subnet, strict=True)
        except ValueError as exc:
            raise InvalidArgument(f"invalid subnet {subnet}: {exc}",
                                  "give a network address like 10.90.0.0/24") from None
        if net.version != 4:
            raise InvalidArgument(f"invalid subnet {subnet}: only IPv4 subnets are supported")
        if net.prefixlen > 30:
            raise InvalidArgument(f"subnet {subnet} is too small", "use /30 or larger")
        if net.overlaps(_SLIRP_NET):
            raise InvalidArgument(f"subnet {subnet} overlaps slirp4netns's {_SLIRP_NET}",
                                  "choose another subnet")
    conn = _connect(root)
    with catalog.transaction(conn):
        if conn.execute("SELECT 1 FROM networks WHERE name=?", (name,)).fetchone():
            raise Conflict(f"network with name {name} already exists",
                           "choose another name, or remove it with rl network rm")
        taken = [ipaddress.ip_network(r["subnet"]) for r in
                 conn.execute("SELECT subnet FROM networks")]
        if net is None:
            net = _pick_subnet([*taken, _SLIRP_NET])
        else:
            for t in taken:
                if net.overlaps(t):
                    other = conn.execute("SELECT name FROM networks WHERE subnet=?",
                                         (str(t),)).fetchone()["name"]
                    raise Conflict(f"subnet {net} overlaps network {other} ({t})",
                                   "choose another subnet")
        hosts = net.hosts()
        gw = ipaddress.ip_address(gateway) if gateway else next(iter(hosts))
        if gw not in net or gw in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"gateway {gw} is not a host address of {net}")
        net_id = secrets.token_hex(32)
        row = {"id": net_id, "name": name, "driver": "bridge", "subnet": str(net),
               "gateway": str(gw), "bridge": f"rl-{net_id[:12]}", "internal": int(internal),
               "labels": json.dumps(labels or {}, sort_keys=True), "created": time.time()}
        conn.execute("INSERT INTO networks (id, name, driver, subnet, gateway, bridge, internal,"
                     " labels, created) VALUES (:id, :name, :driver, :subnet, :gateway,"
                     " :bridge, :internal, :labels, :created)", row)
    _event("create", net_id, name, root)
    return get_network(name, root=root)


def _event(action: str, net_id: str, name: str, root: Path | None) -> None:
    from rootless.engine import events

    events.emit("network", action, net_id, {"name": name, "type": "bridge"}, root)


def get_network(ref: str, root: Path | None = None) -> Network:
    """The network record of a name or (abbreviated) id; NotFound otherwise."""
    conn = _connect(root)
    return _row_to_network(conn, _find(conn, ref))


def inspect(ref: str, root: Path | None = None) -> dict:
    """`docker network inspect`'s document, as every object's inspect gives one."""
    return get_network(ref, root).to_inspect()


def list_networks(root: Path | None = None) -> list[Network]:
    conn = _connect(root)
    return [_row_to_network(conn, r) for r in
            conn.execute("SELECT * FROM networks ORDER BY name")]


def remove(ref: str, *, force: bool = False, root: Path | None = None) -> str:
    """Remove a network no container uses (force: only when every user is gone too).

    Returns the name removed."""
    conn = _connect(root)
    with catalog.transaction(conn):
        row = _find(conn, ref)
        users = [r["name"] for r in conn.execute(
            "SELECT name FROM network_endpoints WHERE network_id=? ORDER BY name", (row["id"],))]
        if users:
            raise Conflict(f"network {row['name']} is in use by container(s) {', '.join(users)}",
                           "remove or disconnect those containers first")
        conn.execute("DELETE FROM networks WHERE id=?", (row["id"],))
    _holder_cleanup(conn, drop_bridge=row["bridge"])
    _event("destroy", row["id"], row["name"], root)
    return row["name"]


def prune(root: Path | None = None, filters: dict[str, list[str]] | None = None) -> list[str]:
    """Remove every network without containers that passes the prune filters (label,
    label!, until: rootless/engine/filters.py); returns their names."""
    from rootless.engine.filters import prune_predicate

    keep = prune_predicate(filters or {})
    conn = _connect(root)
    with catalog.transaction(conn):
        rows = conn.execute("SELECT id, name, bridge, labels, created FROM networks WHERE id "
                            "NOT IN (SELECT network_id FROM network_endpoints) ORDER BY name"
                            ).fetchall()
        rows = [r for r in rows if keep(json.loads(r["labels"] or "{}"), r["created"])]
        for r in rows:
            conn.execute("DELETE FROM networks WHERE id=?", (r["id"],))
    for r in rows:
        _holder_cleanup(conn, drop_bridge=r["bridge"])
        _event("destroy", r["id"], r["name"], root)
    return [r["name"] for r in rows]


# -- for the runtime ----------------------------------------------------------------------

def holder_state_file(create: bool = True) -> Path:
    return paths.runtime_dir(create=create) / "netns-holder.json"


def holder_use_lock(shared: bool) -> int | None:
    """The lock that keeps the holder from being stopped while a container is being
    started on a user network (its sandbox nests under the holder's user namespace
    before its endpoint exists, and `_holder_cleanup` stops the holder when no endpoint
    is left: a container ending at that moment took the holder away from one starting,
    which failed on /proc/PID/ns/user). Held shared by a start from before it looks the
    holder up until its endpoint is in; exclusive (not waiting) by a stop. The fd, or
    None when it cannot be had (exclusive: someone is starting)."""
    import fcntl

    fd = os.open(paths.runtime_dir(create=True) / "netns-holder-use.lock",
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def holder_slirp_socket() -> Path:
    return paths.runtime_dir(create=True) / "netns-holder-slirp.sock"


def reserve_endpoint(ref: str, container_id: str, name: str, aliases: list[str] | None = None,
                     ip: str | None = None, root: Path | None = None) -> dict:
    """Give `container_id` an address on network `ref` (the next free one, or `ip`) and
    record it; the runtime calls this before starting the container, then `attach()`.
    Returns {"network", "bridge", "ip", "prefixlen", "gateway", "subnet"}."""
    conn = _connect(root)
    with catalog.transaction(conn):
        row = _find(conn, ref)
        net = ipaddress.ip_network(row["subnet"])
        used = {r["ip"] for r in conn.execute(
            "SELECT ip FROM network_endpoints WHERE network_id=?", (row["id"],))}
        used.add(row["gateway"])
        if ip is not None:
            if ipaddress.ip_address(ip) not in net:
                raise InvalidArgument(f"address {ip} is not in {row['name']}'s subnet {net}")
            if ip in used:
                raise Conflict(f"address {ip} is already in use on network {row['name']}")
            chosen = ip
        else:
            chosen = next((str(h) for h in net.hosts() if str(h) not in used), None)
            if chosen is None:
                raise Conflict(f"network {row['name']} has no free address left")
        conn.execute("INSERT INTO network_endpoints (network_id, container_id, name, aliases, ip)"
                     " VALUES (?, ?, ?, ?, ?)",
                     (row["id"], container_id, name, json.dumps(list(aliases or [])), chosen))
    return {"network": row["name"], "bridge": row["bridge"], "ip": chosen,
            "prefixlen": net.prefixlen, "gateway": row["gateway"], "subnet": str(net)}


def attach(container_id: str, pid: int, root: Path | None = None,
           mac: str | None = None) -> list[dict]:
    """Wire every reserved endpoint of `container_id` into the net namespace of `pid`
    (eth0, eth1, ... in the order of the networks' names). `pid`'s user namespace must be
    the holder's or under it (see rootless/network/holder.py). `mac`: eth0's address
    (--mac-address)."""
    from rootless.network.holder import Holder

    conn = _connect(root)
    eps = conn.execute("SELECT e.*, n.bridge, n.subnet, n.gateway, n.name AS net FROM "
                       "network_endpoints e JOIN networks n ON n.id=e.network_id "
                       "WHERE e.container_id=? ORDER BY n.name", (container_id,)).fetchall()
    holder = Holder.ensure(holder_state_file(), slirp_socket=holder_slirp_socket())
    done = []
    for i, e in enumerate(eps):
        holder.add_bridge(e["bridge"], e["subnet"], e["gateway"])
        host_if = holder.connect(e["bridge"], pid, e["ip"], e["subnet"], e["gateway"],
                                 ifname=f"eth{i}", key=container_id,
                                 mac=mac if i == 0 else None)
        with catalog.transaction(conn):
            conn.execute("UPDATE network_endpoints SET host_if=? WHERE network_id=? AND "
                         "container_id=?", (host_if, e["network_id"], container_id))
        done.append({"network": e["net"], "ip": e["ip"], "interface": f"eth{i}"})
    _apply_rules(conn, holder)
    return done


def attach_one(container_id: str, network: str, pid: int, root: Path | None = None) -> str:
    """Wire the reserved endpoint of `container_id` on `network` into the net namespace of
    the running `pid` (`rl network connect`): the first free ethN there. Returns it."""
    from rootless.network.holder import Holder

    conn = _connect(root)
    e = conn.execute("SELECT e.network_id, e.ip, n.bridge, n.subnet, n.gateway FROM "
                     "network_endpoints e JOIN networks n ON n.id=e.network_id "
                     "WHERE e.container_id=? AND n.name=?", (container_id, network)).fetchone()
    if e is None:
        raise RlError(f"container {container_id[:12]} has no address on network {network}")
    holder = Holder.ensure(holder_state_file(), slirp_socket=holder_slirp_socket())
    holder.add_bridge(e["bridge"], e["subnet"], e["gateway"])
    ifname = holder.free_ifname(pid)
    host_if = holder.connect(e["bridge"], pid, e["ip"], e["subnet"], e["gateway"],
                             ifname=ifname, key=container_id)
    with catalog.transaction(conn):
        conn.execute("UPDATE network_endpoints SET host_if=? WHERE network_id=? AND "
                     "container_id=?", (host_if, e["network_id"], container_id))
    _apply_rules(conn, holder)
    return ifname


def detach_one(container_id: str, network: str, pid: int | None,
               root: Path | None = None) -> list[str]:
    """Take `container_id` off `network` (`rl network disconnect`): its veth there goes
    (when running: `pid`), its published ports move to its next network, its default route
    is put back via that network if it went. Returns the ids of the containers that shared
    `network` with it (their /etc/hosts must lose it)."""
    from rootless.network.holder import Holder

    conn = _connect(root)
    row = conn.execute("SELECT e.network_id, e.host_if, e.ports FROM network_endpoints e "
                       "JOIN networks n ON n.id=e.network_id WHERE e.container_id=? AND "
                       "n.name=?", (container_id, network)).fetchone()
    if row is None:
        return []
    peers = [r[0] for r in conn.execute(
        "SELECT container_id FROM network_endpoints WHERE network_id=? AND container_id!=?",
        (row["network_id"], container_id))]
    holder = Holder.find(holder_state_file(create=False))
    if holder is not None and row["host_if"]:
        holder.disconnect(row["host_if"])
    with catalog.transaction(conn):
        conn.execute("DELETE FROM network_endpoints WHERE network_id=? AND container_id=?",
                     (row["network_id"], container_id))
        nxt = conn.execute("SELECT e.network_id, n.gateway FROM network_endpoints e JOIN "
                           "networks n ON n.id=e.network_id WHERE e.container_id=? ORDER BY "
                           "n.name LIMIT 1", (container_id,)).fetchone()
        if nxt is not None and json.loads(row["ports"]):
            conn.execute("UPDATE network_endpoints SET ports=? WHERE network_id=? AND "
                         "container_id=?", (row["ports"], nxt["network_id"], container_id))
    if holder is not None:
        if pid and nxt is not None:
            holder.ensure_default_route(pid, nxt["gateway"])
        _apply_rules(conn, holder)
        if not conn.execute("SELECT 1 FROM network_endpoints WHERE network_id=?",
                            (row["network_id"],)).fetchone():
            bridge = conn.execute("SELECT bridge FROM networks WHERE id=?",
                                  (row["network_id"],)).fetchone()
            if bridge is not None:
                with contextlib.suppress(RlError):
                    holder.remove_bridge(bridge["bridge"])
    return peers


def publish(container_id: str, mappings: list[PortMapping],
            root: Path | None = None) -> None:
    """Publish `mappings` (from ports.allocate) of an attached container: host port ->
    the same port in the holder (add_hostfwd on the holder's slirp4netns) -> DNAT to the
    container's address on its first network. All or nothing."""
    from rootless.network.holder import Holder

    conn = _connect(root)
    ep = conn.execute("SELECT e.network_id, e.ip FROM network_endpoints e JOIN networks n ON "
                      "n.id=e.network_id WHERE e.container_id=? ORDER BY n.name LIMIT 1",
                      (container_id,)).fetchone()
    holder = Holder.find(holder_state_file(create=False))
    if ep is None or holder is None:
        raise RlError(f"container {container_id[:12]} is not attached to a network")
    api = holder.slirp_api()
    added: list[dict] = []
    try:
        for m in mappings:
            fid = api.add_hostfwd(m.protocol, m.host_ip or "0.0.0.0", m.host_port, m.host_port)
            added.append({**m.to_dict(), "fwd_id": fid})
        with catalog.transaction(conn):
            conn.execute("UPDATE network_endpoints SET ports=? WHERE network_id=? AND "
                         "container_id=?", (json.dumps(added), ep["network_id"], container_id))
        _apply_rules(conn, holder)
    except BaseException:
        for p in added:
            with contextlib.suppress(RlError):
                api.remove_hostfwd(p["fwd_id"])
        raise


def release(container_id: str, root: Path | None = None) -> None:
    """Forget `container_id`'s endpoints (its veths went with its net namespace) and its
    published ports; stop the holder when no endpoint is left."""
    from rootless.network.holder import Holder

    conn = _connect(root)
    holder = Holder.find(holder_state_file(create=False))
    if holder is not None and holder.api_socket:
        for row in conn.execute("SELECT ports FROM network_endpoints WHERE container_id=?",
                                (container_id,)):
            for p in json.loads(row["ports"]):
                with contextlib.suppress(RlError):
                    holder.slirp_api().remove_hostfwd(p["fwd_id"])
    with catalog.transaction(conn):
        conn.execute("DELETE FROM network_endpoints WHERE container_id=?", (container_id,))
    _holder_cleanup(conn)
    holder = Holder.find(holder_state_file(create=False))
    if holder is not None:
        _apply_rules(conn, holder)


def hosts_entries(container_id: str, root: Path | None = None) -> list[tuple[str, str]]:
    """(name, ip) of every other container sharing a network with `container_id`, by
    container name and by each alias: the lines its /etc/hosts needs (etcfiles.hosts extra)."""
    conn = _connect(root)
    rows = conn.execute(
        "SELECT e.name, e.aliases, e.ip FROM network_endpoints e WHERE e.network_id IN "
        "(SELECT network_id FROM network_endpoints WHERE container_id=?) "
        "AND e.container_id != ? ORDER BY e.name", (container_id, container_id)).fetchall()
    out = []
    for r in rows:
        for n in [r["name"], *json.loads(r["aliases"])]:
            out.append((n, r["ip"]))
    return out


def _apply_rules(conn: sqlite3.Connection, holder) -> None:
    nets = [(r["bridge"], r["subnet"], bool(r["internal"])) for r in conn.execute(
        "SELECT bridge, subnet, internal FROM networks WHERE id IN "
        "(SELECT network_id FROM network_endpoints) ORDER BY name")]
    dnat = [(p["protocol"], p["host_port"], r["ip"], p["container_port"])
            for r in conn.execute("SELECT ip, ports FROM network_endpoints")
            for p in json.loads(r["ports"])]
    holder.set_ruleset(nets, dnat)


def _holder_cleanup(conn: sqlite3.Connection, drop_bridge: str | None = None) -> None:
    from rootless.network.holder import Holder

    state = holder_state_file(create=False)
    holder = Holder.find(state)
    if holder is None:
        return
    in_use = conn.execute("SELECT 1 FROM network_endpoints LIMIT 1").fetchone()
    if not in_use:
        lock = holder_use_lock(shared=False)
        if lock is None:  # a container is starting on it
            return
        try:
            holder.stop(state)
        finally:
            os.close(lock)
        return
    if drop_bridge:
        with contextlib.suppress(RlError):
            holder.remove_bridge(drop_bridge)


# -- rl port ------------------------------------------------------------------------------

def container_ports(ref: str) -> tuple[str, list[PortMapping]]:
    """(container name, its published ports) from the container's stored record."""
    from rootless.store import containerdb

    c = containerdb.lookup(ref)  # NotFound: no such container
    return c.name, [PortMapping.from_dict(p) for p in c.options.get("ports", [])]


def published_port(ref: str, private_port: str) -> tuple[str, list[PortMapping]]:
    """`docker port CONTAINER PORT[/PROTO]`: (container name, the mappings of that port);
    NotFound when it is not published."""
    name, mappings = container_ports(ref)
    num, _, proto = private_port.partition("/")
    if not num.isdigit():
        raise InvalidArgument(f"invalid port {private_port}", "give PORT or PORT/PROTO")
    proto = proto or "tcp"
    hits = [m for m in mappings if m.container_port == int(num) and m.protocol == proto]
    if not hits:
        raise NotFound(f"no public port '{num}/{proto}' published for {name}")
    return name, hits

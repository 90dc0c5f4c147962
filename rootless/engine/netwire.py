"""A container's network as the engine wires it: `--network`, `-p`/`-P` checked and host
ports allocated at create (before anything starts), slirp4netns and the forwards started
by the monitor, and the shapes `rl inspect` / `rl ps` show.

The allocated mappings are stored in the container's options (`ports`, a list of
PortMapping dicts, which engine.networks.container_ports reads for `rl port`).
"""

from __future__ import annotations

import os

from rootless.errors import InvalidArgument


def mode_of(network: str | None):
    from rootless.network import modes

    return modes.parse_network(network)


def _target(ref: str, userns: str | None = None):
    """The container whose network namespace `--network container:REF` shares."""
    from rootless.store import containerdb

    target = containerdb.lookup(ref)
    if userns is not None and (target.options.get("userns") or "") != (userns or ""):
        raise InvalidArgument(f"--network container:{ref} needs the same --userns as {ref}",
                              "the two containers share one user namespace")
    return target


def join_pid(network: str | None) -> int | None:
    """For `--network container:NAME`: the host pid of NAME's pid 1, whose user and net
    namespaces the new container joins; None for every other mode."""
    from rootless.errors import Conflict

    mode = mode_of(network)
    if mode.kind != "container":
        return None
    target = _target(mode.name)
    if target.state != "running" or not target.pid:
        raise Conflict(f"container {mode.name} is not running",
                       f"start it first: rl start {mode.name}")
    return target.pid


def plan(*, network: str | None, publish: list, publish_all: bool,
         image_config: dict, userns: str | None = None,
         aliases: list[str] | None = None,
         extra_networks: list[str] | None = None) -> tuple[object, list]:
    """(NetworkMode, [PortMapping]) for a new container. Raises before anything starts on a
    malformed or unusable network/port, a host port in use or below the unprivileged start.
    `extra_networks`: more user-defined networks (--network given again)."""
    from rootless.network import modes, ports

    mode = modes.parse_network(network)
    if extra_networks and mode.kind != "bridge":
        raise InvalidArgument(f"--network {mode} cannot be combined with another --network",
                              "only user-defined networks (rl network create) can be "
                              "given more than once")
    if mode.kind == "bridge":
        from rootless.engine import networks

        seen = set()
        for name in [mode.name, *(extra_networks or [])]:
            if modes.parse_network(name).kind != "bridge":
                raise InvalidArgument(f"--network {name} cannot be combined with another "
                                      "--network", "give only user-defined networks")
            real = networks.get_network(name).name  # NotFound: no such network
            if real in seen:
                raise InvalidArgument(f"network {real} is given twice",
                                      "give each --network once")
            seen.add(real)
        if userns == "keep-id":  # the holder writes the default maps (Holder.write_id_maps)
            raise InvalidArgument("--userns=keep-id cannot be used with a user-defined "
                                  "network yet", "drop one of --userns and --network")
    elif aliases:
        raise InvalidArgument("--network-alias is only for user-defined networks",
                              "use it with --network NAME (rl network create NAME)")
    if mode.kind == "container":
        _target(mode.name, userns or "")
    exposed = list((image_config.get("config") or {}).get("ExposedPorts") or {})
    requests = [ports.checked(r) for r in publish]  # PortRequests (RunOptions.publish)
    if publish_all:
        requests += ports.publish_all(exposed)
    if requests and not modes.publishing_allowed(mode):
        raise InvalidArgument(f"-p/-P cannot be used with --network {mode}",
                              "the container shares a network namespace that rl does not "
                              "forward ports into; drop -p or use the default network")
    return mode, ports.allocate(requests)


def loopback_guarded(network: str | None, port_maps: list) -> bool:
    """Whether a new container's network namespace has slirp4netns's host loopback on with
    only the nft guard in front of it (network/loopguard.py): its own, for a published UDP
    port, or that of the container it joins with --network container:NAME."""
    from rootless.network import loopguard

    mode = mode_of(network)
    if mode.kind == "slirp4netns":
        return loopguard.needed(port_maps, mode.allow_host_loopback)
    if mode.kind == "container":
        target = _target(mode.name)
        return loopback_guarded(target.options.get("network"), mappings_of(target.options))
    return False


def plan_networks(opts) -> dict[str, list[str]]:
    """options["networks"] of a new container given --network more than once: its aliases
    go with the first network, as Docker's --network-alias does."""
    from rootless.engine import networks

    names = [networks.get_network(n).name for n in [opts.network, *opts.extra_networks]]
    return {name: list(opts.network_aliases) if i == 0 else [] for i, name in enumerate(names)}


def user_networks(options: dict) -> dict[str, list[str]]:
    """The user-defined networks of a container, {name: aliases}, the first its --network;
    {} for the other modes. Kept in options["networks"] (options["network"] names the
    first, options["aliases"] its aliases, as before `rl network connect` existed)."""
    mode = mode_of(options.get("network"))
    if mode.kind != "bridge":
        return {}
    nets = options.get("networks")
    if nets:
        return {k: list(v) for k, v in nets.items()}
    return {mode.name: list(options.get("aliases") or [])}


def mappings_of(options: dict) -> list:
    from rootless.network.ports import PortMapping

    return [PortMapping.from_dict(p) for p in options.get("ports") or []]


def start(options: dict, sandbox_pid: int, api_socket: str, container=None) -> list:
    """In the monitor, once the sandbox's net namespace exists: slirp4netns and every
    published port (all or nothing), or the veth on a user-defined network. Returns what
    to stop() when the container ends (slirp4netns, and with port_handler=proxy the
    listeners the monitor serves: network/proxy.py)."""
    from rootless.network import ports, slirp

    mode = mode_of(options.get("network"))
    if mode.kind == "bridge":
        return [_Endpoint.attach(container, mode.name, sandbox_pid)]
    if mode.kind != "slirp4netns":
        return []
    maps = mappings_of(options)
    from rootless.network import etcfiles, loopguard

    proxied = mode.port_handler == "proxy" and maps
    # a UDP port a loopback client can reach needs host loopback in slirp4netns and a rule
    # keeping the container from opening flows to the host's loopback (loopguard.py); the
    # proxy's UDP comes from inside the namespace and needs neither
    guard = not proxied and loopguard.needed(maps, mode.allow_host_loopback)
    s = slirp.start(sandbox_pid, api_socket=api_socket,
                    allow_host_loopback=mode.allow_host_loopback or guard, mtu=mode.mtu,
                    cidr=mode.cidr, mac=options.get("mac_address"))
    try:
        if guard:
            loopguard.install(sandbox_pid, etcfiles.slirp_addresses(mode.cidr)["gateway"])
        if proxied:
            from rootless.network import proxy

            guest = etcfiles.slirp_addresses(mode.cidr)["container"]
            return [s, proxy.bind(maps, sandbox_pid, guest)]
        ports.forward_all(s, maps)
    except BaseException:
        s.stop()
        raise
    return [s]


def files(network: str | None, hostname: str) -> dict[str, str]:
    """/etc/hosts, /etc/hostname and /etc/resolv.conf for the mode (with its cidr)."""
    from rootless.network import etcfiles

    mode = mode_of(network)
    if mode.kind in ("slirp4netns", "bridge"):  # bridge: the holder's slirp4netns DNS
        search, opts = etcfiles.host_search_options()
        return {"hosts": etcfiles.hosts(hostname, cidr=mode.cidr),
                "hostname": hostname + "\n",
                "resolv.conf": etcfiles.resolv_conf(cidr=mode.cidr, search=search,
                                                    options=opts)}
    if mode.kind == "container":  # the other container's hosts and resolv.conf
        target = _target(mode.name)
        out = {"hostname": hostname + "\n"}
        for name in ("hosts", "resolv.conf"):
            out[name] = (target.dir / name).read_text()
        return out
    from rootless.engine import spec as spec_mod

    return spec_mod.network_files(mode.kind, hostname)


def ps_ports(options: dict) -> str:
    if not options.get("ports"):  # most containers: no import of the ports module (socket)
        return ""
    from rootless.network import ports

    return ports.format_ps(mappings_of(options))


def inspect_settings(options: dict, exposed: list[str], container_id: str = "") -> dict:
    """NetworkSettings in Docker's shape: Ports maps "80/tcp" to its host bindings, or
    None for an exposed port that is not published."""
    out: dict = {}
    for item in exposed:
        port, _, proto = item.partition("/")
        out[f"{port}/{proto or 'tcp'}"] = None
    for m in mappings_of(options):
        key = f"{m.container_port}/{m.protocol}"
        out[key] = (out.get(key) or []) + [{"HostIp": m.host_ip or "0.0.0.0",
                                            "HostPort": str(m.host_port)}]
    mode = mode_of(options.get("network"))
    settings = {"Ports": out, "NetworkMode": str(mode)}
    if mode.kind == "slirp4netns":
        from rootless.network import etcfiles

        addrs = etcfiles.slirp_addresses(mode.cidr)
        settings.update({"IPAddress": addrs["container"], "Gateway": addrs["gateway"]})
    elif mode.kind == "bridge":  # while it runs: its endpoint on the network
        import json

        from rootless.store import catalog

        with catalog.session() as conn:
            rows = conn.execute(
                "SELECT n.name, n.gateway, n.subnet, e.ip, e.aliases FROM network_endpoints e"
                " JOIN networks n ON n.id=e.network_id WHERE e.container_id=?",
                (container_id,)).fetchall()
        settings["Networks"] = {
            r["name"]: {"IPAddress": r["ip"], "Gateway": r["gateway"],
                        "IPPrefixLen": int(r["subnet"].split("/")[1]),
                        "Aliases": json.loads(r["aliases"])} for r in rows}
        if rows:
            settings.update({"IPAddress": rows[0]["ip"], "Gateway": rows[0]["gateway"]})
    return settings


# -- user-defined networks ----------------------------------------------------------------

def holder_for(network: str | None):
    """The running network holder for `--network NAME` (started if needed), None for the
    other modes. Called before the sandbox forks: its user namespace goes under the
    holder's."""
    if mode_of(network).kind != "bridge":
        return None
    from rootless.engine import networks
    from rootless.network.holder import Holder

    networks.get_network(mode_of(network).name)
    lock = networks.holder_use_lock(shared=True)  # till the endpoint is in: holder_used
    try:
        holder = Holder.ensure(networks.holder_state_file(),
                               slirp_socket=networks.holder_slirp_socket())
    except BaseException:
        os.close(lock)
        raise
    holder.use_lock = lock
    return holder


def holder_used(holder) -> None:
    """The container's endpoint is in (or its start failed): the holder may be stopped
    with the last endpoint again (networks.holder_use_lock)."""
    lock = getattr(holder, "use_lock", None)
    if lock is not None:
        holder.use_lock = None
        os.close(lock)


def abandon(network: str | None) -> None:
    """A container that will not exist after all: stop the holder if nothing uses it."""
    if mode_of(network).kind != "bridge":
        return
    from rootless.engine import networks
    from rootless.store import catalog

    with catalog.session() as conn:
        networks._holder_cleanup(conn)


def forget(container_id: str, options: dict) -> None:
    """`rl rm`: the endpoints a container still holds (its monitor was killed) go."""
    if mode_of(options.get("network")).kind == "bridge":
        _release(container_id)


def _release(container_id: str) -> None:
    """Give back every endpoint of the container; its former peers' /etc/hosts forget it."""
    from rootless.engine import networks

    peers = _peers(container_id)
    networks.release(container_id)
    rewrite_hosts(container_id, also=peers)


class _Endpoint:
    """A running container's place on a user-defined network: address reserved, veth
    attached, ports published, /etc/hosts of every member rewritten; stop() undoes it."""

    def __init__(self, container) -> None:
        self.container = container

    @classmethod
    def attach(cls, c, network: str, pid: int) -> _Endpoint:
        import gc

        from rootless.engine import networks

        # engine.networks leaves its connections to the collector: collect them here, not
        # in a helper the holder forks from us (a sqlite connection must not cross a fork)
        gc.collect()
        ep = cls(c)
        try:
            for i, (name, aliases) in enumerate(user_networks(c.options).items()):
                # --ip: the address on the first network (the one --network named)
                networks.reserve_endpoint(name, c.id, c.name, aliases,
                                          ip=c.options.get("ip") if i == 0 else None)
            networks.attach(c.id, pid, mac=c.options.get("mac_address"))
            maps = mappings_of(c.options)
            if maps:
                networks.publish(c.id, maps)
            rewrite_hosts(c.id)
        except BaseException:
            ep.stop()
            raise
        return ep

    def stop(self) -> None:
        _release(self.container.id)


def endpoint_of(c) -> _Endpoint:
    """The attached endpoint of running container `c`, for a monitor that re-executed
    (rootless.runtime.lean) to stop."""
    return _Endpoint(c)


def _peers(container_id: str) -> list[str]:
    """Ids of the containers sharing a network with `container_id` now."""
    from rootless.store import catalog

    with catalog.session() as conn:
        return [r[0] for r in conn.execute(
            "SELECT DISTINCT container_id FROM network_endpoints WHERE network_id IN "
            "(SELECT network_id FROM network_endpoints WHERE container_id=?) AND "
            "container_id != ?", (container_id, container_id))]


def rewrite_hosts(container_id: str, also: list[str] = ()) -> None:
    """/etc/hosts of `container_id` (if attached), of every container sharing a network
    with it and of the containers in `also` (former peers): each lists the others by name
    and alias. Rewritten in place: the file is bind-mounted, a rename would not be seen."""
    import json

    from rootless.engine import netflags, networks
    from rootless.errors import NotFound
    from rootless.network import etcfiles
    from rootless.store import catalog, containerdb

    ids = [container_id, *_peers(container_id), *also]
    with catalog.session() as conn:
        rows = []
        for cid in dict.fromkeys(ids):
            # its own line: its address on the first of its networks (by name, as eth0 is)
            row = conn.execute(
                "SELECT e.container_id, e.ip, e.aliases FROM network_endpoints e JOIN networks"
                " n ON n.id=e.network_id WHERE e.container_id=? ORDER BY n.name LIMIT 1",
                (cid,)).fetchone()
            if row is not None:
                rows.append(row)
    for row in rows:
        try:
            c = containerdb.lookup(row["container_id"])
        except NotFound:
            continue
        hostname = (c.dir / "hostname").read_text().strip() or c.short_id
        text = etcfiles.hosts(hostname, container_ip=row["ip"],
                              aliases=[c.name, *json.loads(row["aliases"])],
                              extra=networks.hosts_entries(c.id) + netflags.hosts_lines(
                                  c.options.get("add_hosts") or [], c.options.get("network")))
        try:
            with open(c.dir / "hosts", "w") as f:
                f.write(text)
        except OSError:
            pass

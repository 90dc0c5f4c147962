"""`rl network connect` and `rl network disconnect` (Docker's semantics): put a container on
one more user-defined network, or take it off one, running or not.

A container's user-defined networks are kept in its options (`netwire.user_networks`:
{name: aliases}, the first being its --network). A stopped container only has that
record changed; it takes effect at its next start. A running one is changed live: an
address is reserved and a veth from the network's bridge appears in it as the next free
ethN (connect), or its veth there is removed (disconnect); the /etc/hosts of every
container on that network is rewritten, so names resolve on each network it is on.

Only containers already on a user-defined network can be connected: their user namespace
lives under the network holder's (rootless/network/holder.py explains why that is
needed), which is not true of a container on slirp4netns, none, host or container:NAME.
A container keeps at least one network: disconnecting the last one is refused (Docker
would leave it with only lo).
"""

from __future__ import annotations

from rootless.engine import netwire, networks
from rootless.errors import Conflict, InvalidArgument
from rootless.store import containerdb


def _save(c, nets: dict[str, list[str]]) -> None:
    first = next(iter(nets))
    options = dict(c.options, network=first, aliases=nets[first], networks=nets)
    containerdb.set_options(c.id, options)
    c.options = options


def _target(network_ref: str, container_ref: str):
    net = networks.get_network(network_ref)  # NotFound: network X not found
    c = containerdb.lookup(container_ref)  # NotFound: no such container
    nets = netwire.user_networks(c.options)
    if not nets:
        mode = netwire.mode_of(c.options.get("network"))
        # Docker connects any bridge container; rootless podman refuses a slirp4netns one
        # too ('"slirp4netns" is not supported: invalid network mode'). Same text for the
        # CLI and the API (400, as Docker's refusals of host/container: network modes).
        raise InvalidArgument(
            f"container {c.name} uses --network {mode}, not a user-defined network: only a "
            "container started on one can join others (its user namespace is made under "
            "the networks' holder at its start, which cannot be changed later)",
            "recreate it with --network NAME (a network of rl network create), then "
            "connect it to more networks")
    return net, c, nets


def connect(network_ref: str, container_ref: str, aliases: list[str] | None = None) -> None:
    """Put the container on the network (live when it runs). Raises NotFound for an unknown
    network or container, Conflict when it is already connected."""
    net, c, nets = _target(network_ref, container_ref)
    if net.name in nets:
        raise Conflict(f"container {c.name} is already connected to network {net.name}",
                       f"see rl inspect {c.name}")
    before = dict(nets)
    nets[net.name] = list(aliases or [])
    _save(c, nets)
    if c.state != "running" or not c.pid:
        return
    try:
        networks.reserve_endpoint(net.name, c.id, c.name, nets[net.name])
        networks.attach_one(c.id, net.name, c.pid)
    except BaseException:
        networks.detach_one(c.id, net.name, c.pid)
        _save(c, before)
        raise
    netwire.rewrite_hosts(c.id)


def disconnect(network_ref: str, container_ref: str) -> None:
    """Take the container off the network (live when it runs). Raises NotFound for an
    unknown network or container, Conflict when it is not connected to it or when it is
    its only network."""
    net, c, nets = _target(network_ref, container_ref)
    if net.name not in nets:
        raise Conflict(f"container {c.name} is not connected to network {net.name}",
                       f"its networks: {', '.join(nets)}")
    if len(nets) == 1:
        raise Conflict(f"network {net.name} is the only network of container {c.name}",
                       "connect it to another network first, or remove the container")
    del nets[net.name]
    _save(c, nets)
    if c.state == "running" and c.pid:
        peers = networks.detach_one(c.id, net.name, c.pid)
        netwire.rewrite_hosts(c.id, also=peers)

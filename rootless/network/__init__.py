"""Networking without root: slirp4netns, port forwards, user-defined networks.

What the runtime and engine call (nothing here imports pyroute2 or the engine at import
time; `rl run` pays only for slirp.py, ports.py, etcfiles.py, modes.py):

Before anything starts (engine, in `rl run`/`rl create`):
    mode = modes.parse_network(opts.network)              # --network value -> NetworkMode
    reqs = [ports.checked(r) for r in opts.publish]         # PortRequests (parse_publish: -p)
    reqs += ports.publish_all(image_exposed_ports) if opts.publish_all else []
    mappings = ports.allocate(reqs)   # checks: in use, privileged port, twice; picks -P ports
    # store [m.to_dict() for m in mappings] in the container's options JSON under "ports":
    # `rl port` reads it (engine.networks.container_ports), `rl ps` prints
    # ports.format_ps(mappings).
    write etcfiles.resolv_conf(cidr=mode.cidr, search=..., options=...) and
          etcfiles.hosts(hostname, cidr=mode.cidr) into the container's /etc files.

In the monitor, once the sandbox's net namespace exists (pid = a process in it, its user
namespace final) and after forking the container's processes:
    s = slirp.start(pid, api_socket=runtime_dir / f"slirp-{short_id}.sock",
                    allow_host_loopback=mode.allow_host_loopback, mtu=mode.mtu, cidr=mode.cidr)
    ports.forward_all(s, mappings)    # all or nothing; a port taken meanwhile -> Conflict
    # a UDP port loopback clients reach: host loopback on in slirp.start, and before the
    # command runs loopguard.install(pid, gateway) (see loopguard.needed)
When the container ends (also on a failed start): s.stop(). The monitor owns the Slirp
and stops it; if the monitor is killed, slirp4netns exits by itself (--exit-fd pipe, see
slirp.py). Ports stop listening with slirp4netns.

User-defined networks (engine.networks, design in holder.py):
    ep = networks.reserve_endpoint(net_name, container_id, name, aliases)  # per network
    h = Holder.ensure(networks.holder_state_file(), slirp_socket=networks.holder_slirp_socket())
    # create the container's user namespace INSIDE h's: the sandbox does setns to
    # /proc/{h.pid}/ns/user, then unshare(CLONE_NEWUSER|...); its maps are written with
    # h.write_id_maps(sandbox_pid) (not newuidmap: it cannot write for a grandchild
    # namespace; the default map gives the same ids as today: root = the user, 1.. = the
    # subordinate range). Then, with pid a process in its net namespace:
    networks.attach(container_id, pid)          # eth0.. with the reserved addresses
    networks.publish(container_id, mappings)    # -p for such a container (no own slirp)
    etcfiles.hosts(hostname, container_ip=ep["ip"],
                   extra=networks.hosts_entries(container_id))   # names of the others
    networks.release(container_id)              # on rm; the holder ends with the last one
Other containers' /etc/hosts must be rewritten when one joins or leaves (hosts_entries).
`rl network connect/disconnect` on a running container: networks.attach_one (next free
ethN) and networks.detach_one (ports and default route move to its next network), driven
by engine/netconnect.py.
"""

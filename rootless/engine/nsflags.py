"""`--pid`, `--ipc` and `--uts`: which namespaces a container makes, shares with the host,
or joins from another container (Docker's modes, rootless).

- `--pid host`: no pid namespace of its own. A user namespace may not mount a proc of the
  host's pid namespace (it does not own it), so /proc is the host's, bound (as podman).
- `--pid container:NAME`: NAME's pid namespace, so its user namespace too (rootless/
  runtime/nsjoin.py): the new container's processes are forked into it; NAME must run.
- `--ipc host`: the host's IPC namespace, /dev/shm (and /dev/mqueue where the host has
  one) bound from the host: an mqueue of the host's namespace cannot be mounted here.
- `--ipc private|shareable` (Docker's default is private): an IPC namespace of its own;
  only a shareable one may be joined, as Docker.
- `--ipc container:NAME`: NAME's IPC namespace and its /dev/shm (pid 1 binds it from NAME's
  root: runtime/pid1.py `_donor_shm`). `--ipc none`: its own namespace, no /dev/shm.
- `--uts host`: the host's hostname (no --hostname then, as Docker).
Every `container:` target shares one user namespace with the new container, so every
target (and a --network container: one) must be the same container or share its user
namespace; checked when it starts. Modes are kept in the row's options (pid_mode,
ipc_mode, uts_mode); targets are stored by id, as Docker's HostConfig.
"""

from __future__ import annotations

from rootless.errors import Conflict, InvalidArgument

MODES = {"pid": ("host",), "ipc": ("host", "private", "shareable", "none"),
         "uts": ("host",)}
JOINABLE = ("pid", "ipc")


def parse(kind: str, value: str | None) -> str:
    """'' (the default: a namespace of its own), a mode, or `container:NAME`."""
    if not value:
        return ""
    if value in MODES[kind]:
        return value
    if kind in JOINABLE and value.startswith("container:") and value[10:]:
        return value
    forms = "|".join(MODES[kind] + (("container:NAME",) if kind in JOINABLE else ()))
    raise InvalidArgument(f"invalid --{kind} {value!r}", f"use --{kind} {forms}")


def _target(kind: str, ref: str, userns: str | None):
    from rootless.engine import containers

    target = containers.lookup(ref)  # NotFound: no such container
    if (target.options.get("userns") or "") != (userns or ""):
        raise InvalidArgument(f"--{kind} container:{ref} needs the same --userns as {ref}",
                              "the two containers share one user namespace")
    if kind == "ipc" and target.options.get("ipc_mode") not in ("shareable", "host"):
        raise InvalidArgument(f"container {ref}: non-shareable IPC",
                              f"create {ref} with --ipc shareable to join its IPC")
    return target


def plan(opts, network_kind: str) -> dict[str, str]:
    """Checked at create, before any pull: {"pid_mode": ..., ...} for the row's options
    (only the modes given), container names resolved to ids."""
    out = {}
    for kind in ("pid", "ipc", "uts"):
        mode = parse(kind, getattr(opts, kind))
        if mode.startswith("container:"):
            mode = "container:" + _target(kind, mode[10:], opts.userns).id
        if mode:
            out[f"{kind}_mode"] = mode
    if out.get("uts_mode") == "host" and opts.hostname:
        raise InvalidArgument("conflicting options: --hostname and --uts host",
                              "drop one of them: the host's hostname is used with --uts host")
    if out.get("ipc_mode", "").startswith(("host", "container:")):
        for key in opts.sysctls:
            key = key.strip().replace("/", ".")
            if not key.startswith("net."):
                raise InvalidArgument(f"--sysctl {key} cannot be set with --ipc "
                                      f"{out['ipc_mode'].split(':')[0]}",
                                      "the IPC namespace is not the container's own")
    joined = [m for m in out.values() if m.startswith("container:")]
    _check_pid_host(opts, out, joined, network_kind)
    if joined and network_kind == "bridge":
        raise InvalidArgument("--pid/--ipc container: cannot be combined with a "
                              "user-defined network yet",
                              "use --network container:NAME (or the default network)")
    return out


def _check_pid_host(opts, out: dict, joined: list[str], network_kind: str) -> None:
    """`--pid host` shows the container every process of the user, and its root has
    CAP_SYS_PTRACE (or gets it) in its own user namespace: no process that was exec'd in
    that user namespace may run outside its pid namespace. rl's own are not dumpable, but
    an exec'd one is reachable whatever it sets (the kernel records the namespace at
    exec): a lean waiter of a sandbox that did not fold, exec'd in a container's user
    namespace (so one that a container joining it, or joined by it, shares), and the
    fuse-overlayfs process, exec'd in the container's. Refused in those cases."""
    from rootless.engine import containers

    targets = [m[10:] for m in joined]
    if network_kind == "container":
        from rootless.network.modes import parse_network

        targets.append(containers.lookup(parse_network(opts.network).name).id)
    if out.get("pid_mode") == "host":
        if targets:
            raise InvalidArgument("--pid host cannot be combined with joining another "
                                  "container's namespaces (--network/--ipc container:)",
                                  "run it with namespaces of its own, or without --pid host")
        from rootless.runtime import rootfs

        if rootfs.default_backend() != "fuse_overlay":
            raise InvalidArgument("--pid host needs the fuse_overlay root filesystem backend "
                                  "(the fuse-overlayfs process runs in the container's user "
                                  "namespace, where --pid host would reach it)",
                                  "unset RL_ROOTFS_BACKEND, or run without --pid host")
    for ref in targets:
        if containers.lookup(ref).options.get("pid_mode") == "host":
            raise InvalidArgument(f"container {ref[:12]} runs with --pid host: its namespaces "
                                  "cannot be joined", "join a container without --pid host")


def spec_namespaces(options: dict, network_kind: str) -> list[dict]:
    """The OCI spec's linux.namespaces: a kind shared with the host is left out; a joined
    one names its container (as `path`), which the runtime resolves when it starts."""
    out = []
    for kind in ("pid", "ipc", "uts", "mount", "user"):
        mode = options.get(f"{kind}_mode", "")
        if mode == "host":
            continue
        out.append({"type": kind, **({"path": mode} if mode.startswith("container:") else {})})
    if network_kind != "host":
        out.append({"type": "network"})
    return out


def adjust_mounts(mounts: list[dict], options: dict) -> list[dict]:
    """/proc, /dev/shm and /dev/mqueue for the shared and joined modes."""
    import os

    from rootless.runtime.pid1 import DONOR_SHM

    pid, ipc = options.get("pid_mode", ""), options.get("ipc_mode", "")
    out = []
    for m in mounts:
        dest = m["destination"]
        if dest == "/proc" and pid == "host":
            m = {"destination": "/proc", "type": "bind", "source": "/proc",
                 "options": ["rbind", "nosuid", "noexec", "nodev"]}
        elif dest == "/dev/shm" and ipc == "host":
            m = {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                 "options": ["rbind", "nosuid", "noexec", "nodev"]}
        elif dest == "/dev/shm" and ipc.startswith("container:"):
            m = {"destination": "/dev/shm", "type": "bind", "source": DONOR_SHM,
                 "options": ["rbind", "nosuid", "noexec", "nodev"]}
        elif dest == "/dev/shm" and ipc == "none":
            continue
        elif dest == "/dev/mqueue" and ipc == "host":
            if not os.path.isdir("/dev/mqueue"):
                continue
            m = {"destination": "/dev/mqueue", "type": "bind", "source": "/dev/mqueue",
                 "options": ["rbind", "nosuid", "noexec", "nodev"]}
        out.append(m)
    return out


def default_hostname(options: dict, cid: str) -> str:
    if options.get("uts_mode") == "host":
        import socket

        return socket.gethostname()
    return cid[:12]


def launch_options(opts) -> dict:
    """What _launch reads of a container's options, for `rl run` (which forks the
    sandbox before the row exists)."""
    from rootless.network.modes import parse_network

    return {"network": opts.network, **plan(opts, parse_network(opts.network).kind)}


def launch_plan(options: dict, net_join_pid: int | None) -> tuple[set[str], dict[str, int]]:
    """At start: (kinds the sandbox unshares, {kind: host pid of the container to join}).
    Raises Conflict when a target does not run, InvalidArgument when the targets do not
    share a user namespace."""
    import os

    from rootless.engine import containers

    network = options.get("network", "slirp4netns")
    kinds = set()
    joins: dict[str, int] = {}
    if net_join_pid is not None:
        joins["net"] = net_join_pid
    elif network != "host":
        kinds.add("network")
    for kind in ("pid", "ipc", "uts"):
        mode = options.get(f"{kind}_mode", "")
        if mode == "host":
            continue
        if mode.startswith("container:"):
            target = containers.lookup(mode[10:])
            if target.state != "running" or not target.pid:
                raise Conflict(f"cannot join the {kind} namespace of {target.name}: it is "
                               "not running", f"start it first: rl start {target.name}")
            joins[kind] = target.pid
            continue
        kinds.add(kind)
    if len(set(joins.values())) > 1:
        users = set()
        for pid in set(joins.values()):
            st = os.stat(f"/proc/{pid}/ns/user")
            users.add((st.st_dev, st.st_ino))
        if len(users) > 1:
            raise InvalidArgument("the containers given with container: are in different "
                                  "user namespaces, and one container can join only one",
                                  "name the same container in --network, --pid and --ipc")
    return kinds, joins


def inspect_modes(options: dict) -> dict:
    """HostConfig's PidMode, IpcMode and UTSMode (Docker's default IPC mode: private)."""
    return {"PidMode": options.get("pid_mode", ""),
            "IpcMode": options.get("ipc_mode", "") or "private",
            "UTSMode": options.get("uts_mode", "")}

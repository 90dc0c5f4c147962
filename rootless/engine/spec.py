"""Image config + `rl run` flags -> an OCI runtime spec (config.json) and a rootfs
description (rootfs.json): the boundary between the engine and the runtime.

The spec is the standard document (https://github.com/opencontainers/runtime-spec); what it
cannot say is in `annotations` under `io.rl.*` (a user named rather than numbered, resolved
inside the container's own /etc/passwd when it starts).

`RunOptions` is what every front end gives `create`/`run`. Its structured values are typed
records, never CLI text: `mounts` are mountspec.Mount (-v, --mount, --tmpfs), `publish`
network.ports.PortRequest (-p), `ulimits` Ulimit (--ulimit), `devices` procflags.Device
(--device), `sysctls` a mapping (--sysctl). The CLI turns its flags into
them with the parsers of Docker's syntax (engine/cliflags.py); the API and compose build
them from their JSON and long syntax; the engine checks each record again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rootless.errors import InvalidArgument
from rootless.runtime import caps

if TYPE_CHECKING:
    from rootless.engine.mountspec import Mount
    from rootless.engine.procflags import Device
    from rootless.network.ports import PortRequest

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_BINARIES = ("/usr/bin/catatonit", "/usr/libexec/podman/catatonit", "/usr/bin/tini",
                 "/usr/bin/tini-static")
NETWORKS = ("slirp4netns", "none", "host")

MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/fs/selinux", "/sys/dev/block", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

ULIMIT_NAMES = {
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
    "rss", "rtprio", "rttime", "sigpending", "stack", "as",
}


@dataclass(frozen=True)
class Ulimit:
    """One resource limit (--ulimit NAME=SOFT[:HARD], HostConfig.Ulimits, compose's
    ulimits): NAME without RLIMIT_, lower case; -1 is unlimited."""

    name: str
    soft: int
    hard: int

    def rlimit(self) -> dict:
        """The spec's process.rlimits entry; InvalidArgument for a bad one."""
        text = f"{self.name}={self.soft}:{self.hard}"
        if self.name not in ULIMIT_NAMES:
            raise InvalidArgument(f"invalid ulimit {text!r}", "use NAME=SOFT[:HARD], NAME one "
                                  f"of {', '.join(sorted(ULIMIT_NAMES))}")
        inf = (1 << 64) - 1
        s, h = (inf if self.soft < 0 else self.soft), (inf if self.hard < 0 else self.hard)
        if s > h:
            raise InvalidArgument(f"invalid ulimit {text!r}: soft limit above the hard limit")
        return {"type": f"RLIMIT_{self.name.upper()}", "soft": s, "hard": h}


@dataclass
class RunOptions:
    """Everything `rl run` / `rl create` accept, as the engine sees it."""

    image: str
    command: list[str] = field(default_factory=list)
    name: str | None = None
    entrypoint: str | None = None  # "" resets the image's entrypoint
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    rm: bool = False
    detach: bool = False
    interactive: bool = False
    tty: bool = False
    userns: str | None = None  # None or "keep-id"
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    ulimits: list[Ulimit] = field(default_factory=list)
    init: bool = False
    read_only: bool = False
    network: str = "slirp4netns"
    mounts: list[Mount] = field(default_factory=list)  # -v, --mount, --tmpfs
    publish: list[PortRequest] = field(default_factory=list)  # -p
    publish_all: bool = False  # -P
    network_aliases: list[str] = field(default_factory=list)  # --network-alias
    extra_networks: list[str] = field(default_factory=list)  # --network given again
    pull: str = "missing"
    memory: str | None = None
    cpus: str | None = None
    security_opt: list[str] = field(default_factory=list)  # --security-opt
    restart: str | None = None  # --restart (rootless/engine/restart.py)
    stop_signal: str | None = None  # --stop-signal (engine/procflags.py for these)
    stop_timeout: str | None = None  # --stop-timeout
    cidfile: str | None = None  # --cidfile
    group_add: list[str] = field(default_factory=list)  # --group-add
    label_files: list[str] = field(default_factory=list)  # --label-file
    shm_size: str | None = None  # --shm-size
    sysctls: dict[str, str] = field(default_factory=dict)  # --sysctl NAME=VALUE
    privileged: bool = False  # --privileged
    devices: list[Device] = field(default_factory=list)  # --device
    # a pull's progress (rootless/image/progress.py): the caller's renderer, None: none
    progress: Any = None
    # the other cgroup flags, "--flag" -> value (refused: rootless/engine/cgroups.py)
    resources: dict = field(default_factory=dict)
    health_cmd: str | None = None  # --health-* (rootless/engine/health.py)
    health_interval: str | None = None
    health_timeout: str | None = None
    health_retries: int | None = None
    health_start_period: str | None = None
    health_start_interval: str | None = None
    no_healthcheck: bool = False
    health_test: list[str] | None = None  # a whole Test list (compose's healthcheck.test)
    add_hosts: list[str] = field(default_factory=list)  # --add-host (engine/netflags.py)
    dns: list[str] = field(default_factory=list)  # --dns
    dns_search: list[str] = field(default_factory=list)  # --dns-search
    dns_options: list[str] = field(default_factory=list)  # --dns-option
    expose: list[str] = field(default_factory=list)  # --expose
    pid: str | None = None  # --pid host|container:NAME (engine/nsflags.py for these)
    ipc: str | None = None  # --ipc host|private|shareable|none|container:NAME
    uts: str | None = None  # --uts host
    ip: str | None = None  # --ip (engine/runextras.py for these)
    ip6: str | None = None  # --ip6
    mac_address: str | None = None  # --mac-address
    volumes_from: list[str] = field(default_factory=list)  # --volumes-from NAME[:ro|rw]
    platform: str | None = None  # --platform
    log_driver: str | None = None  # --log-driver
    log_opts: list[str] = field(default_factory=list)  # --log-opt KEY=VALUE


def parse_env_file(path: str) -> list[str]:
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"cannot read env file {path}: {exc.strerror}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """Later entries win by key; `NAME` alone takes the host's value (or is dropped)."""
    order: dict[str, str] = {}
    for item in [*base, *extra]:
        if "=" in item:
            k, v = item.split("=", 1)
        else:
            k = item
            if k not in os.environ:
                continue
            v = os.environ[k]
        if not k:
            raise InvalidArgument(f"invalid environment variable {item!r}")
        order.pop(k, None)
        order[k] = v
    return [f"{k}={v}" for k, v in order.items()]


def parse_ulimit(text: str) -> Ulimit:
    """One --ulimit NAME=SOFT[:HARD] (Docker's syntax; "unlimited" or -1 for no limit)."""
    name, sep, values = text.partition("=")
    if not sep or name not in ULIMIT_NAMES:
        raise InvalidArgument(f"invalid ulimit {text!r}",
                              f"use NAME=SOFT[:HARD], NAME one of {', '.join(sorted(ULIMIT_NAMES))}")
    soft, _, hard = values.partition(":")
    try:
        s = -1 if soft in ("-1", "unlimited") else int(soft)
        h = s if not hard else (-1 if hard in ("-1", "unlimited") else int(hard))
    except ValueError:
        raise InvalidArgument(f"invalid ulimit {text!r}", "values are integers") from None
    ulimit = Ulimit(name, s, h)
    try:
        ulimit.rlimit()
    except InvalidArgument:
        raise InvalidArgument(f"invalid ulimit {text!r}: soft limit above the hard limit") \
            from None
    return ulimit


def command_of(config: dict, opts: RunOptions) -> list[str]:
    if opts.entrypoint is not None:
        import shlex

        entry = shlex.split(opts.entrypoint) if opts.entrypoint else []
        cmd = list(opts.command)
    else:
        entry = list(config.get("Entrypoint") or [])
        cmd = list(opts.command) or list(config.get("Cmd") or [])
    args = entry + cmd
    if not args:
        raise InvalidArgument("no command specified: the image has no Cmd or Entrypoint",
                              "give a command after the image name")
    return args


def find_init() -> str:
    for path in INIT_BINARIES:
        if os.access(path, os.X_OK):
            return path
    raise InvalidArgument("--init needs catatonit or tini on the host",
                          "apt-get install catatonit")


def build(*, image_config: dict, opts: RunOptions, hostname: str, bundle: str,
          uid_maps: list[dict], gid_maps: list[dict], loopback_guard: bool = False,
          ns_modes: dict | None = None) -> dict:
    """The OCI runtime spec for a container. Raises InvalidArgument on bad flags.

    `loopback_guard`: the container's network namespace reaches the host's loopback and
    only an nft rule in it keeps new flows out (network/loopguard.py). A raw frame on tap0
    (AF_PACKET) passes no netfilter hook, so such a container gets no CAP_NET_RAW unless
    --cap-add names it. `ns_modes`: --pid/--ipc/--uts as engine/nsflags.plan gave them."""
    config = image_config.get("config") or {}
    args = command_of(config, opts)
    extra_env = []
    for f in opts.env_files:
        extra_env += parse_env_file(f)
    extra_env += opts.env
    env = merge_env(config.get("Env") or [], extra_env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")
    env = merge_env(env, [f"HOSTNAME={hostname}"] + (["TERM=xterm"] if opts.tty else []))
    try:
        capset = caps.compute(opts.cap_add, opts.cap_drop)
        if opts.privileged:  # every capability of the user namespace, less --cap-drop
            drop = {caps.normalize(c) for c in opts.cap_drop}
            capset = [] if "ALL" in drop else [c for c in caps.NUMBERS if c not in drop]
    except ValueError as exc:
        raise InvalidArgument(f"unknown capability {exc.args[0]!r}",
                              "use names like NET_ADMIN or CAP_NET_ADMIN") from None
    if loopback_guard and "CAP_NET_RAW" not in {caps.normalize(c) for c in opts.cap_add}:
        capset = [c for c in capset if c != "CAP_NET_RAW"]
    from rootless.engine import security

    secopts = security.parse(opts.security_opt)
    if opts.privileged and secopts.seccomp == "default":
        secopts.seccomp = "unconfined"  # as podman: --privileged runs without a filter
    seccomp_section = security.seccomp_section(secopts, capset)
    rlimits = [u.rlimit() for u in opts.ulimits]
    from rootless.network.modes import parse_network

    network_kind = parse_network(opts.network).kind  # every --network form (modes.py)
    user = opts.user if opts.user is not None else (config.get("User") or "")
    annotations = {}
    proc_user: dict = {"uid": 0, "gid": 0}
    if opts.userns == "keep-id" and opts.user is None:
        proc_user = {"uid": os.getuid(), "gid": os.getgid()}
    elif user:
        annotations["io.rl.user"] = user
    annotations["io.rl.security-opt"] = json.dumps(secopts.as_list())
    if opts.stop_signal or config.get("StopSignal"):
        annotations["io.rl.stop-signal"] = str(opts.stop_signal or config["StopSignal"])
    if opts.group_add:
        annotations["io.rl.group-add"] = ",".join(opts.group_add)  # names have no ","
    from rootless.engine import procflags

    shm = procflags.parse_size(opts.shm_size, "--shm-size") if opts.shm_size else 64 << 20
    sysctls = dict(procflags.check_sysctl(k, v, network_kind) for k, v in opts.sysctls.items())
    from rootless.engine import nsflags

    ns_modes = ns_modes or {}
    namespaces = nsflags.spec_namespaces(ns_modes, network_kind)
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm // 1024}k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]
    if ns_modes:
        mounts = nsflags.adjust_mounts(mounts, ns_modes)
    for name in ("hosts", "hostname", "resolv.conf"):
        mounts.append({"destination": f"/etc/{name}", "type": "bind",
                       "source": os.path.join(bundle, name), "options": ["rbind", "rprivate"]})
    mounts += [procflags.device_mount(d) for d in opts.devices]
    # -v/--mount/--tmpfs and the image's VOLUMEs: engine/mounts.py adds them to the spec
    if opts.init:
        mounts.append({"destination": "/dev/init", "type": "bind", "source": find_init(),
                       "options": ["bind", "ro"]})
        args = ["/dev/init", "--", *args]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": opts.tty,
            "user": proc_user,
            "args": args,
            "env": env,
            "cwd": opts.workdir or config.get("WorkingDir") or "/",
            "capabilities": {k: capset for k in ("bounding", "effective", "permitted")},
            "rlimits": rlimits,
            "noNewPrivileges": secopts.no_new_privileges,
        },
        "root": {"path": os.path.join(bundle, "merged"), "readonly": opts.read_only},
        "hostname": hostname,
        "mounts": mounts,
        "annotations": annotations,
        "linux": {
            "uidMappings": uid_maps,
            "gidMappings": gid_maps,
            "namespaces": namespaces,
            "maskedPaths": [] if opts.privileged else MASKED_PATHS,
            "readonlyPaths": [] if opts.privileged else READONLY_PATHS,
            **({"sysctl": sysctls} if sysctls else {}),
            **({"seccomp": seccomp_section} if seccomp_section else {}),
        },
    }


def network_files(network: str, hostname: str) -> dict[str, str]:
    """Contents of /etc/hosts, /etc/hostname, /etc/resolv.conf for the container."""
    def host_file(path: str) -> str:
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""

    resolv = host_file("/etc/resolv.conf")
    if network == "host":
        hosts = host_file("/etc/hosts") or "127.0.0.1\tlocalhost\n"
    else:
        ip = "10.0.2.100" if network == "slirp4netns" else "127.0.1.1"
        hosts = (f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                 f"{ip}\t{hostname}\n")
        kept = [line for line in resolv.splitlines()
                if not line.startswith("nameserver") or not
                line.split()[1:2] or not line.split()[1].startswith(("127.", "::1"))]
        if network == "slirp4netns":
            kept = [line for line in kept if not line.startswith("nameserver")]
            kept.append("nameserver 10.0.2.3")
        resolv = "\n".join(kept) + "\n"
    return {"hosts": hosts, "hostname": hostname + "\n", "resolv.conf": resolv}

"""POST /containers/create's body (Config, HostConfig, NetworkingConfig) -> the engine's
RunOptions, as the CLI's flag parsing does for `rl create`. Mounts, port bindings,
ulimits, devices and sysctls become the engine's typed records (mountspec.Mount,
network.ports.PortRequest, spec.Ulimit, procflags.Device, a mapping) straight from the
JSON; Binds and Tmpfs, which are Docker's CLI syntax inside the JSON too, go through the
engine's parsers of that syntax.

Every field of Docker's body is either mapped to an engine option, or known to mean
nothing here (the attach flags, which the attach call carries), or refused with a 400 that
names it when it is set to anything but its empty value: a setting is never dropped
silently. Clients send every field with its zero value, so "set" means: not None, "", 0,
False, or a list/dict of such.
"""

from __future__ import annotations

import shlex

from rootless.api.protocol import ApiError
from rootless.engine import mountspec
from rootless.engine.mountspec import Mount
from rootless.engine.spec import RunOptions, Ulimit

# Fields whose value carries no meaning for rl (documented reasons in the comments).
_IGNORED_CONFIG = {
    "AttachStdin", "AttachStdout", "AttachStderr",  # the attach request says what it wants
    "StdinOnce",  # stdin closes when the attached client closes it, as StdinOnce does
    "ArgsEscaped",  # Windows only
    "OnBuild",  # an image's ONBUILD triggers: meaningless for a container
    "Shell",  # SHELL for build steps
}
_IGNORED_HOST = {
    "ConsoleSize",  # the tty's first size: clients resize after the start
    "ContainerIDFile",  # the CLI writes the cidfile itself
    "Isolation",  # "default" is the only one on Linux
}
_STRING_LISTS = {  # HostConfig lists of strings -> the RunOptions field taking them as given
    "CapAdd": "cap_add", "CapDrop": "cap_drop", "ExtraHosts": "add_hosts", "Dns": "dns",
    "DnsSearch": "dns_search", "DnsOptions": "dns_options", "GroupAdd": "group_add",
    "SecurityOpt": "security_opt",
}
_RESOURCE_FLAGS = {  # HostConfig resources -> the `rl run` flag the engine judges
    "CpuShares": "--cpu-shares", "CpuPeriod": "--cpu-period", "CpuQuota": "--cpu-quota",
    "CpuRealtimePeriod": "--cpu-rt-period", "CpuRealtimeRuntime": "--cpu-rt-runtime",
    "CpusetCpus": "--cpuset-cpus", "CpusetMems": "--cpuset-mems",
    "BlkioWeight": "--blkio-weight", "BlkioWeightDevice": "--blkio-weight-device",
    "BlkioDeviceReadBps": "--device-read-bps", "BlkioDeviceWriteBps": "--device-write-bps",
    "BlkioDeviceReadIOps": "--device-read-iops", "BlkioDeviceWriteIOps": "--device-write-iops",
    "MemoryReservation": "--memory-reservation", "MemorySwap": "--memory-swap",
    "MemorySwappiness": "--memory-swappiness", "KernelMemory": "--kernel-memory",
    "OomKillDisable": "--oom-kill-disable", "PidsLimit": "--pids-limit",
    "CpuCount": "--cpu-count", "CpuPercent": "--cpu-percent",
    "IOMaximumIOps": "--io-maxiops", "IOMaximumBandwidth": "--io-maxbandwidth",
    "CgroupParent": "--cgroup-parent", "DeviceCgroupRules": "--device-cgroup-rule",
    "DeviceRequests": "--gpus", "KernelMemoryTCP": "--kernel-memory-tcp",
}


def is_unset(v) -> bool:
    if v is None or v is False or v == "" or v == 0:
        return True
    if isinstance(v, list):
        return all(is_unset(x) for x in v)
    if isinstance(v, dict):
        return all(is_unset(x) for x in v.values())
    return False


def _refuse(where: str, name: str, why: str = "") -> ApiError:
    return ApiError(400, f"{where}.{name} is not supported by rl"
                    + (f": {why}" if why else "") + " (leave it unset)")


def _strs(v, where: str) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ApiError(400, f"{where} must be a list of strings")
    return list(v)


def _duration(ns) -> str | None:
    if not ns:
        return None
    return f"{int(ns)}ns"


def to_run_options(body: dict, name: str | None) -> RunOptions:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    image = body.get("Image")
    if not image or not isinstance(image, str):
        raise ApiError(400, "Config.Image is required")
    # Docker's API never pulls on create: a missing image is a 404, and clients pull.
    opts = RunOptions(image=image, pull="never", name=name or None)
    host = body.get("HostConfig") or {}
    if not isinstance(host, dict):
        raise ApiError(400, "HostConfig must be a JSON object")
    anonymous = _config(body, opts)
    binds, mounts, tmpfs = _host(host, opts)
    _networking(body.get("NetworkingConfig") or {}, opts)
    # Config.Volumes names the mount points; one a bind or mount already serves is not
    # an anonymous volume (docker-py sends both for `volumes=`)
    taken = {m.target for m in binds + mounts}
    binds += [mountspec.parse_volume(p) for p in anonymous if p not in taken]
    opts.mounts = binds + mounts + tmpfs
    return opts


def _config(body: dict, opts: RunOptions) -> list[str]:
    """Config's fields into `opts`; returns the anonymous volumes' mount points."""
    anonymous: list[str] = []
    for key, v in body.items():
        if key in ("Image", "HostConfig", "NetworkingConfig") or key in _IGNORED_CONFIG:
            continue
        if key == "Cmd":
            opts.command = _strs(v, "Cmd") if not isinstance(v, str) else [v]
        elif key == "Entrypoint":
            entry = [v] if isinstance(v, str) else _strs(v, "Entrypoint") if v is not None \
                else None
            if entry is not None:
                # the engine takes --entrypoint's text (split as a shell would)
                opts.entrypoint = shlex.join(entry) if entry and entry != [""] else ""
        elif key == "Env":
            opts.env = _strs(v, "Env")
        elif key == "WorkingDir":
            opts.workdir = v or None
        elif key == "User":
            opts.user = v or None
        elif key == "Hostname":
            opts.hostname = v or None
        elif key == "Labels":
            opts.labels = {str(k): str(x) for k, x in (v or {}).items()}
        elif key == "Tty":
            opts.tty = bool(v)
        elif key == "OpenStdin":
            opts.interactive = bool(v)
        elif key == "ExposedPorts":
            opts.expose = list((v or {}).keys())
        elif key == "Volumes":  # anonymous volumes: {"/data": {}}, added after the binds
            anonymous = list((v or {}).keys())
        elif key == "StopSignal":
            opts.stop_signal = v or None
        elif key == "StopTimeout":
            opts.stop_timeout = None if v is None else str(v)
        elif key == "NetworkDisabled":
            if v:
                opts.network = "none"
        elif key == "Healthcheck":
            _healthcheck(v or {}, opts)
        elif not is_unset(v):
            raise _refuse("Config", key)
    return anonymous


def _healthcheck(hc: dict, opts: RunOptions) -> None:
    test = hc.get("Test") or []
    if test[:1] == ["NONE"]:
        opts.no_healthcheck = True
        return
    if test[:1] == ["CMD-SHELL"] and len(test) == 2:
        opts.health_cmd = test[1]
    elif test[:1] == ["CMD"] and len(test) > 1:
        opts.health_cmd = shlex.join(test[1:])
    elif test:
        raise ApiError(400, f"Config.Healthcheck.Test {test!r}: use [\"CMD\", ...], "
                       "[\"CMD-SHELL\", \"...\"] or [\"NONE\"]")
    opts.health_interval = _duration(hc.get("Interval"))
    opts.health_timeout = _duration(hc.get("Timeout"))
    opts.health_start_period = _duration(hc.get("StartPeriod"))
    opts.health_start_interval = _duration(hc.get("StartInterval"))
    if hc.get("Retries"):
        opts.health_retries = int(hc["Retries"])


def _mount(m: dict) -> Mount:
    """One of HostConfig.Mounts (Docker's mount.Mount) as the engine's record; the engine
    checks the paths as it checks a --mount's."""
    mtype = m.get("Type") or "volume"
    if mtype not in ("bind", "volume", "tmpfs"):
        raise ApiError(400, f"HostConfig.Mounts: type {mtype!r} is not supported by rl "
                       "(use bind, volume or tmpfs)")
    out = Mount(mtype, m.get("Target") or "", m.get("Source") or None,
                readonly=bool(m.get("ReadOnly")))
    if mtype == "bind":
        bo = m.get("BindOptions") or {}
        if bo.get("Propagation"):
            out.propagation = bo["Propagation"]
        for k, v in bo.items():
            if k != "Propagation" and not is_unset(v):
                raise _refuse("HostConfig.Mounts.BindOptions", k)
    elif mtype == "volume":
        vo = m.get("VolumeOptions") or {}
        out.nocopy = bool(vo.get("NoCopy"))
        for k, v in vo.items():
            if k != "NoCopy" and not is_unset(v) and not (k == "DriverConfig" and
                                                           (v or {}).get("Name") in ("local", "")):
                raise _refuse("HostConfig.Mounts.VolumeOptions", k)
    elif mtype == "tmpfs":
        to = m.get("TmpfsOptions") or {}
        if to.get("SizeBytes"):
            out.tmpfs_options.append(f"size={int(to['SizeBytes'])}")
        if to.get("Mode"):
            out.tmpfs_options.append(f"mode={int(to['Mode']):o}")
    for k, v in m.items():
        if k not in ("Type", "Source", "Target", "ReadOnly", "BindOptions", "VolumeOptions",
                     "TmpfsOptions", "Consistency") and not is_unset(v):
            raise _refuse("HostConfig.Mounts", k)
    return out


def _port_bindings(v: dict) -> list:
    """HostConfig.PortBindings {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]} as the
    engine's PortRequests (an empty list or HostPort: any free port)."""
    from rootless.network import ports

    out = []
    for port, binds in v.items():
        num, _, proto = str(port).partition("/")
        for b in binds or [{}]:
            b = b or {}
            out += ports.bindings(num, b.get("HostPort") or "", b.get("HostIp") or "",
                                  proto or "tcp")
    return out


def _device(d: dict):
    """HostConfig.Devices' {PathOnHost, PathInContainer, CgroupPermissions} as the
    engine's Device (which device_mount checks)."""
    from rootless.engine.procflags import Device

    if not isinstance(d, dict) or not d.get("PathOnHost"):
        raise ApiError(400, f"HostConfig.Devices: invalid entry {d!r}: PathOnHost is required")
    return Device(str(d["PathOnHost"]), str(d.get("PathInContainer") or ""),
                  str(d.get("CgroupPermissions") or "rwm"))


def _ulimit(u: dict) -> Ulimit:
    try:
        return Ulimit(str(u["Name"]), int(u.get("Soft", -1)), int(u.get("Hard", -1)))
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, f"HostConfig.Ulimits: invalid entry {u!r}: give Name, Soft "
                       "and Hard") from None


def _host(host: dict, opts: RunOptions) -> tuple[list[Mount], list[Mount], list[Mount]]:
    """HostConfig into `opts`; returns the mounts of Binds, Mounts and Tmpfs."""
    binds: list[Mount] = []
    mounts: list[Mount] = []
    tmpfs: list[Mount] = []
    for key, v in host.items():
        # only a top-level empty value skips a key: {"80/tcp": [{"HostPort": ""}]}
        # (publish on any port) and {"/run": ""} (a tmpfs) are empty only deep down
        if key in _IGNORED_HOST or v is None or v is False or (
                v in ("", 0, [], {}) and key != "NetworkMode"):
            continue
        if key in _STRING_LISTS:
            setattr(opts, _STRING_LISTS[key], _strs(v, f"HostConfig.{key}"))
        elif key == "Binds":  # Docker's -v syntax in the JSON: the engine's parser
            binds += [mountspec.parse_volume(b) for b in _strs(v, "HostConfig.Binds")]
        elif key == "Mounts":
            mounts += [_mount(m) for m in v]
        elif key == "Tmpfs":  # {"/run": "size=64m,exec"}: --tmpfs's options
            for target, o in v.items():
                spec = f"{target}:{o}" if o else target
                tmpfs.append(Mount("tmpfs", target, tmpfs_options=mountspec.parse_tmpfs_options(
                    o or "", spec)))
        elif key == "PortBindings":
            opts.publish += _port_bindings(v)
        elif key == "PublishAllPorts":
            opts.publish_all = True
        elif key == "NetworkMode":
            if v not in (None, "", "default", "bridge"):
                opts.network = v
        elif key == "RestartPolicy":
            name = v.get("Name") or "no"
            count = v.get("MaximumRetryCount") or 0
            if name != "no":
                opts.restart = f"{name}:{count}" if name == "on-failure" and count else name
        elif key == "AutoRemove":
            opts.rm = True
        elif key == "Privileged":
            opts.privileged = True
        elif key == "Init":
            opts.init = True
        elif key == "ReadonlyRootfs":
            opts.read_only = True
        elif key == "Sysctls":
            opts.sysctls = {str(k): str(x) for k, x in v.items()}
        elif key == "ShmSize":
            opts.shm_size = str(int(v))
        elif key == "UsernsMode":
            opts.userns = v
        elif key == "Ulimits":
            opts.ulimits = [_ulimit(u) for u in v]
        elif key == "Devices":
            opts.devices = [_device(d) for d in v]
        elif key == "Memory":
            opts.memory = str(int(v))
        elif key == "NanoCpus":
            opts.cpus = str(int(v) / 1e9)
        elif key in _RESOURCE_FLAGS:
            flag = _RESOURCE_FLAGS[key]
            if v == -1 and key in ("MemorySwappiness", "PidsLimit", "MemorySwap"):
                continue  # -1: "unset" (swappiness) or "unlimited", which is what rl gives
            from rootless.engine import cgroups

            if flag not in cgroups.FLAGS:
                raise _refuse("HostConfig", key, f"rl has no {flag} (no cgroup controller "
                              "for it here)")
            opts.resources[flag] = str(v)
        elif key == "LogConfig":
            if (v.get("Type") or "json-file") not in ("json-file", "k8s-file") \
                    or not is_unset(v.get("Config")):
                raise _refuse("HostConfig", "LogConfig", "rl keeps each container's log "
                              "in its own file (json-file, no options)")
        elif key == "VolumeDriver":
            if v != "local":
                raise _refuse("HostConfig", key, "volumes use the local driver")
        elif key == "Runtime":
            if v not in ("rl", "runc", "crun"):
                raise _refuse("HostConfig", key)
        elif key in ("IpcMode", "CgroupnsMode"):
            if v not in ("private", "shareable"):
                raise _refuse("HostConfig", key, "containers get private namespaces")
        elif not is_unset(v):
            raise _refuse("HostConfig", key)
    return binds, mounts, tmpfs


def _networking(nc: dict, opts: RunOptions) -> None:
    endpoints = (nc or {}).get("EndpointsConfig") or {}
    primary = opts.network
    for net, ep in endpoints.items():
        ep = ep or {}
        for k, v in ep.items():
            if k not in ("Aliases", "NetworkID", "EndpointID", "DNSNames") and not is_unset(v):
                raise _refuse(f"NetworkingConfig.EndpointsConfig.{net}", k)
        if net == primary or (primary in ("slirp4netns", "default", "bridge") and
                              net in ("bridge", "default")):
            opts.network_aliases += _strs(ep.get("Aliases"), "Aliases")
        else:
            opts.extra_networks.append(net)
            if ep.get("Aliases"):
                raise ApiError(400, f"aliases on the extra network {net}: connect it after "
                               "the create (POST /networks/{id}/connect)")

"""More `rl run`/`rl create` flags, checked before anything exists and kept in the row's
options: --volumes-from, --ip/--ip6/--mac-address, --platform, --log-driver/--log-opt
(and --pid/--ipc/--uts through engine/nsflags.py).

`check(opts)` refuses bad values before any pull; `options(opts)` gives what the row keeps;
`host_config(options)` what `rl inspect` shows of them in Docker's HostConfig.
"""

from __future__ import annotations

import re

from rootless.errors import InvalidArgument

LOG_DRIVERS = ("json-file", "k8s-file", "none")
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


# -- logging ------------------------------------------------------------------------------

def parse_log(driver: str | None, opts: list[str]) -> dict:
    """{"driver", "max_size" (bytes, 0: no limit), "max_file"}. json-file is written in
    the k8s-file format, as podman does: `rl logs` reads either the same way."""
    from rootless.engine.procflags import parse_size

    driver = driver or "json-file"
    if driver not in LOG_DRIVERS:
        raise InvalidArgument(f"logging driver {driver!r} is not supported",
                              "use --log-driver json-file, k8s-file or none")
    out = {"driver": driver, "max_size": 0, "max_file": 1}
    config = {}
    for item in opts:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid --log-opt {item!r}", "use --log-opt KEY=VALUE")
        if driver == "none":
            raise InvalidArgument(f"--log-opt {key} is not valid for the none log driver",
                                  "drop --log-opt, or use --log-driver json-file")
        if key == "max-size":
            out["max_size"] = 0 if value == "-1" else parse_size(value, "--log-opt max-size")
        elif key == "max-file":
            if not value.isdigit() or int(value) < 1:
                raise InvalidArgument(f"invalid --log-opt max-file={value!r}",
                                      "give a number of files, 1 or more")
            out["max_file"] = int(value)
        else:
            raise InvalidArgument(f"unknown log opt {key!r} for the {driver} log driver",
                                  "rl keeps max-size and max-file")
        config[key] = value
    if out["max_file"] > 1 and not out["max_size"]:
        raise InvalidArgument("--log-opt max-file needs max-size",
                              "give --log-opt max-size=10m too")
    out["config"] = config
    return out


def log_target(options: dict, log_path: str) -> str | None:
    """What the monitor's log writer opens (rootless/runtime/logfile.py Writer): None for
    the none driver, the path, or `MAXSIZE:MAXFILE:PATH` with rotation."""
    log = options.get("log") or {}
    if log.get("driver") == "none":
        return None
    if log.get("max_size"):
        return f"{log['max_size']}:{log.get('max_file', 1)}:{log_path}"
    return log_path


def check_readable(options: dict) -> None:
    """`rl logs` of a container with the none driver: Docker's refusal."""
    if (options.get("log") or {}).get("driver") == "none":
        from rootless.errors import RlError

        raise RlError("configured logging driver does not support reading",
                      "the container runs with --log-driver none", exit_code=1)


# -- --volumes-from -----------------------------------------------------------------------

def volumes_from(refs: list[str], explicit: list) -> list:
    """`--volumes-from NAME[:ro|rw]` -> Mounts of NAME's volumes and bind mounts (its
    tmpfs mounts are not shared, as in Docker); a target that the explicit mounts (-v,
    --mount, --tmpfs) give too is left out (the explicit one wins). ro/rw override NAME's
    mode; by default it is kept."""
    if not refs:
        return []
    from rootless.engine import containers, mounts
    from rootless.engine.mountspec import Mount

    taken = {m.target for m in explicit}
    out = []
    for item in refs:
        ref, _, mode = item.partition(":")
        if mode not in ("", "ro", "rw") or not ref:
            raise InvalidArgument(f"invalid --volumes-from {item!r}",
                                  "use --volumes-from CONTAINER[:ro|rw]")
        c = containers.lookup(ref)  # NotFound: no such container
        for m in mounts.inspect_mounts(c.spec(), str(c.dir)):
            if m["Type"] == "tmpfs" or m["Destination"] in taken:
                continue
            readonly = mode == "ro" or (not mode and not m["RW"])
            if m["Type"] == "volume":  # shared as it is: no copy of the image's files
                out.append(Mount("volume", m["Destination"], m["Name"], readonly=readonly,
                                 nocopy=True))
            else:
                out.append(Mount("bind", m["Destination"], m["Source"], readonly=readonly,
                                 create_source=True))
            taken.add(m["Destination"])
    return out


# -- --ip, --mac-address, --platform ------------------------------------------------------

def _check_addresses(opts, network_kind: str) -> None:
    import ipaddress

    if opts.ip6:
        raise InvalidArgument("--ip6 cannot be given: rl's networks are IPv4 only",
                              "drop --ip6")
    if opts.ip:
        try:
            ip = ipaddress.ip_address(opts.ip)
        except ValueError:
            raise InvalidArgument(f"invalid --ip {opts.ip!r}: not an IP address",
                                  "give an address of the network's subnet") from None
        if network_kind != "bridge":
            raise InvalidArgument("user specified IP address is supported on user defined "
                                  "networks only",
                                  "use --network NAME (rl network create NAME) with --ip")
        from rootless.engine import networks

        net = networks.get_network(opts.network)
        subnet = ipaddress.ip_network(net.subnet)
        if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address) \
                or str(ip) == net.gateway:
            raise InvalidArgument(f"--ip {ip} is not a free host address of network "
                                  f"{net.name} ({subnet}, gateway {net.gateway})",
                                  "give another address of the subnet")
    if opts.mac_address:
        if not _MAC.fullmatch(opts.mac_address):
            raise InvalidArgument(f"invalid --mac-address {opts.mac_address!r}",
                                  "give six hex pairs, e.g. 02:42:ac:11:00:02")
        if int(opts.mac_address[:2], 16) & 1:
            raise InvalidArgument(f"--mac-address {opts.mac_address} is a multicast address",
                                  "the first byte must be even, e.g. 02:...")
        if network_kind not in ("bridge", "slirp4netns"):
            raise InvalidArgument(f"--mac-address cannot be used with --network "
                                  f"{opts.network}",
                                  "the container has no interface of its own to set it on")


def _check_platform(platform: str | None) -> None:
    if not platform:
        return
    from rootless.image import manifest as mf

    os_, arch, _variant = mf.parse_platform(platform)
    _hos, host_arch, _hv = mf.host_platform()
    if os_ != "linux":
        raise InvalidArgument(f"--platform {platform}: rl runs linux containers only",
                              "give --platform linux/ARCH")
    if arch == host_arch or (host_arch == "amd64" and arch == "386"):
        return
    from rootless.engine.buildmounts import emulator_for

    if emulator_for(arch) is None:
        raise InvalidArgument(f"--platform {platform}: this host is linux/{host_arch} and "
                              f"has no emulator for {arch} registered in binfmt_misc",
                              "install qemu-user-static (or qemu-user-binfmt), or run "
                              f"linux/{host_arch}")


# -- the whole ----------------------------------------------------------------------------

def check(opts) -> None:
    """Before any pull: every flag of this module and of nsflags."""
    from rootless.engine import nsflags
    from rootless.network.modes import parse_network

    kind = parse_network(opts.network).kind
    nsflags.plan(opts, kind)
    parse_log(opts.log_driver, opts.log_opts)
    _check_addresses(opts, kind)
    _check_platform(opts.platform)
    volumes_from(opts.volumes_from, opts.mounts)


def options(opts, ns_modes: dict) -> dict:
    """What the row keeps of these flags."""
    out = dict(ns_modes)
    log = parse_log(opts.log_driver, opts.log_opts)
    if log["driver"] != "json-file" or log["max_size"]:
        out["log"] = log
    for key in ("ip", "mac_address", "platform"):
        if getattr(opts, key):
            out[key] = getattr(opts, key)
    if opts.volumes_from:
        out["volumes_from"] = list(opts.volumes_from)
    return out


def host_config(options: dict) -> dict:
    """Docker's HostConfig fields for these flags."""
    from rootless.engine import nsflags

    log = options.get("log") or {}
    return {**nsflags.inspect_modes(options),
            "LogConfig": {"Type": log.get("driver", "json-file"),
                          "Config": log.get("config", {})},
            "VolumesFrom": options.get("volumes_from") or None}

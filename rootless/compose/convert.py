"""A compose service -> the engine's RunOptions (its mounts, ports and ulimits built as the
engine's typed records from compose's long syntax: no CLI text in between), and the
labels docker compose puts on
every object it creates (so `up` finds what it made, `down` what belongs to the project,
and docker-compose-aware tools read rl's objects as theirs).

The config hash is sha256 of the canonical service (model.py) without what does not change
the container (scale, build, pull policy, profiles, depends_on): `up` recreates a
container only when its hash label or its image differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex

from rootless import __version__
from rootless.compose.errors import ComposeError
from rootless.engine.spec import RunOptions

L = "com.docker.compose."
PROJECT, SERVICE, NUMBER, ONEOFF = L + "project", L + "service", L + "container-number", \
    L + "oneoff"
HASH, IMAGE, VERSION = L + "config-hash", L + "image", L + "version"
WORKDIR, FILES, DEPENDS = L + "project.working_dir", L + "project.config_files", \
    L + "depends_on"
NETWORK, VOLUME = L + "network", L + "volume"
_NOT_HASHED = ("build", "pull_policy", "scale", "profiles", "depends_on")


def config_hash(svc: dict) -> str:
    doc = {k: v for k, v in svc.items() if k not in _NOT_HASHED}
    if "deploy" in doc:
        doc["deploy"] = {k: v for k, v in doc["deploy"].items() if k != "replicas"}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def replicas(svc: dict) -> int:
    n = (svc.get("deploy") or {}).get("replicas", svc.get("scale", 1))
    return 1 if n is None else int(n)


def image_name(project: str, name: str, svc: dict) -> str:
    """The service's image; one it builds without naming is `<project>-<service>`."""
    return svc.get("image") or f"{project}-{name}"


def project_labels(project) -> dict[str, str]:
    return {PROJECT: project.name, WORKDIR: project.working_dir,
            FILES: ",".join(project.config_files), VERSION: __version__}


def container_name(project: str, service: str, number: int, svc: dict) -> str:
    if svc.get("container_name"):
        return svc["container_name"]
    return f"{project}-{service}-{number}"


def _seconds(text, key: str) -> str:
    from rootless.engine import health

    if isinstance(text, (int, float)):
        return str(int(text))
    try:
        return str(int(health.parse_duration(str(text), key) // 1_000_000_000))
    except Exception as exc:  # RlError with the flag's wording: say the key instead
        raise ComposeError(f"services: {key}: invalid duration {text!r}",
                           "give a duration like 10s or 1m30s") from exc


def _duration(value) -> str | None:
    if value is None:
        return None
    return f"{value}s" if isinstance(value, (int, float)) else str(value)


def run_options(project, name: str, svc: dict, number: int, *, image_id: str = "",
                oneoff: bool = False, pull: str = "missing") -> RunOptions:
    """The container `number` of service `name` (or a one-off of it, `compose run`)."""
    p = project.name
    labels = {**(svc.get("labels") or {}), **project_labels(project),
              SERVICE: name, NUMBER: str(number), ONEOFF: "True" if oneoff else "False",
              HASH: config_hash(svc), IMAGE: image_id,
              DEPENDS: ",".join(f"{d}:{v['condition']}:{str(v.get('restart', False)).lower()}"
                                for d, v in (svc.get("depends_on") or {}).items())}
    # the image is in the store by now (project.ensure_images): create() pulls nothing
    opts = RunOptions(image=image_name(p, name, svc), name=None if oneoff else
                      container_name(p, name, number, svc), labels=labels, detach=True,
                      pull=pull)
    opts.command = list(svc.get("command") or [])
    if svc.get("entrypoint") is not None:
        opts.entrypoint = shlex.join(svc["entrypoint"])
    opts.env = [f"{k}={v}" for k, v in (svc.get("environment") or {}).items()]
    opts.workdir = svc.get("working_dir")
    opts.user = None if svc.get("user") is None else str(svc["user"])
    opts.hostname = svc.get("hostname")
    opts.cap_add = list(svc.get("cap_add") or [])
    opts.cap_drop = list(svc.get("cap_drop") or [])
    from rootless.engine.spec import Ulimit

    opts.ulimits = [Ulimit(k, int(v["soft"]), int(v["hard"]))
                    for k, v in (svc.get("ulimits") or {}).items()]
    opts.init = bool(svc.get("init"))
    opts.read_only = bool(svc.get("read_only"))
    opts.privileged = bool(svc.get("privileged"))
    opts.tty = bool(svc.get("tty"))
    opts.interactive = bool(svc.get("stdin_open"))
    opts.restart = None if svc.get("restart") in (None, "no") else svc["restart"]
    opts.stop_signal = svc.get("stop_signal")
    if svc.get("stop_grace_period") is not None:
        opts.stop_timeout = _seconds(svc["stop_grace_period"], f"{name}.stop_grace_period")
    opts.add_hosts = list(svc.get("extra_hosts") or [])
    opts.dns = list(svc.get("dns") or [])
    opts.dns_search = list(svc.get("dns_search") or [])
    opts.dns_options = list(svc.get("dns_opt") or [])
    opts.sysctls = {str(k): str(v) for k, v in (svc.get("sysctls") or {}).items()}
    opts.devices = _devices(svc)
    opts.security_opt = list(svc.get("security_opt") or [])
    opts.group_add = [str(g) for g in svc.get("group_add") or []]
    if svc.get("shm_size") is not None:
        opts.shm_size = str(svc["shm_size"])
    opts.expose = list(svc.get("expose") or [])
    opts.mounts = _mounts(project, svc)
    if not oneoff:
        opts.publish = publish(svc)
    _network(project, name, svc, opts)
    hc = svc.get("healthcheck")
    if hc:
        if hc.get("test") is not None:
            opts.health_test = list(hc["test"])
        opts.health_interval = _duration(hc.get("interval"))
        opts.health_timeout = _duration(hc.get("timeout"))
        opts.health_start_period = _duration(hc.get("start_period"))
        opts.health_start_interval = _duration(hc.get("start_interval"))
        if hc.get("retries") is not None:
            opts.health_retries = int(hc["retries"])
    return opts


def _devices(svc: dict) -> list:
    """devices: compose's short syntax is Docker's --device text; the long one
    ({source, target, permissions}) maps field by field."""
    from rootless.engine.procflags import Device, parse_device

    out = []
    for d in svc.get("devices") or []:
        if isinstance(d, dict):
            out.append(Device(str(d.get("source") or ""), str(d.get("target") or ""),
                              str(d.get("permissions") or "rwm")))
        else:
            out.append(parse_device(str(d)))
    return out


def publish(svc: dict) -> list:
    """The service's ports (model.py's long form) as the engine's PortRequests."""
    if not svc.get("ports"):
        return []
    from rootless.network import ports

    return [r for p in svc["ports"]
            for r in ports.bindings(p["target"], p.get("published") or "",
                                    p.get("host_ip") or "", p.get("protocol") or "tcp")]


def _mounts(project, svc: dict) -> list:
    """volumes (binds, named and anonymous volumes, tmpfs) and tmpfs as Mounts: those of
    `volumes` first, then the tmpfs ones, in the file's order."""
    from rootless.engine.mountspec import Mount, parse_tmpfs

    out, tmpfs = [], []
    for v in svc.get("volumes") or []:
        kind, target, ro = v.get("type"), v["target"], bool(v.get("read_only"))
        if kind == "tmpfs":
            size = (v.get("tmpfs") or {}).get("size")
            tmpfs.append(Mount("tmpfs", target, tmpfs_options=[f"size={size}"] if size else []))
        elif kind == "bind":
            # create_host_path (default true, as the short syntax): the engine makes a
            # missing source, as -v; false: refused, as --mount (check_binds says so first)
            bind = v.get("bind") or {}
            out.append(Mount("bind", target, v["source"], readonly=ro,
                             create_source=bool(bind.get("create_host_path", True)),
                             propagation=bind.get("propagation") or "rprivate"))
        else:
            # nocopy: the volume is not filled from the image's files at the target
            nocopy = bool((v.get("volume") or {}).get("nocopy"))
            name = project.volumes[v["source"]]["name"] if v.get("source") else None
            out.append(Mount("volume", target, name, readonly=ro, nocopy=nocopy))
    # compose's `tmpfs:` entries are Docker's --tmpfs text (PATH[:OPTIONS])
    return out + [parse_tmpfs(t) for t in svc.get("tmpfs") or []] + tmpfs


def check_binds(project, services: list[str]) -> None:
    """Before anything of an `up` is made: a bind whose host path is missing and may not
    be created (`bind: {create_host_path: false}`) is one error naming it."""
    for name in services:
        for i, v in enumerate(project.services[name].get("volumes") or []):
            if v.get("type") == "bind" and \
                    not (v.get("bind") or {}).get("create_host_path", True) and \
                    not os.path.exists(v["source"]):
                raise ComposeError(f"services.{name}.volumes[{i}]: bind source path "
                                   f"{v['source']} does not exist (create_host_path is "
                                   "false)", "create it first, or drop create_host_path: "
                                   "false")


def _network(project, name: str, svc: dict, opts: RunOptions) -> None:
    mode = svc.get("network_mode")
    if mode:
        if mode.startswith("service:"):
            mode = "container:" + container_name(project.name, mode[8:], 1,
                                                 project.services[mode[8:]])
        opts.network = {"bridge": "slirp4netns"}.get(mode, mode)
        return
    nets = svc.get("networks") or {"default": None}
    first = next(iter(nets))
    opts.network = project.networks[first]["name"]
    opts.network_aliases = [name, *((nets[first] or {}).get("aliases") or [])]


def extra_networks(project, name: str, svc: dict) -> list[tuple[str, list[str]]]:
    """(network name, aliases) of the service's networks after the first: connected after
    the container is created, as docker compose does."""
    if svc.get("network_mode"):
        return []
    nets = list((svc.get("networks") or {"default": None}).items())
    return [(project.networks[k]["name"], [name, *((v or {}).get("aliases") or [])])
            for k, v in nets[1:]]

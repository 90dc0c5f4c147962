"""What of the Compose Specification rl carries out. A key outside these tables is refused
with its path (never silently ignored); `x-` extension keys are the user's own and pass.

Each table maps a key to None (supported as it is) or to a nested table of its own keys."""

from __future__ import annotations

from rootless.compose.errors import ComposeError, path_text

_BUILD = {k: None for k in ("context", "dockerfile", "args", "target", "labels", "network",
                            "extra_hosts", "cache_from", "no_cache", "pull")}
_HEALTH = {k: None for k in ("test", "interval", "timeout", "retries", "start_period",
                             "start_interval", "disable")}
_PORT = {k: None for k in ("target", "published", "host_ip", "protocol", "mode", "name")}
_VOLUME = {"type": None, "source": None, "target": None, "read_only": None,
           "bind": {"create_host_path": None, "propagation": None}, "volume": {"nocopy": None},
           "tmpfs": {"size": None}}
SERVICE = {
    **{k: None for k in (
        "image", "command", "entrypoint", "environment", "env_file", "expose",
        "container_name", "hostname", "user", "working_dir", "init", "read_only", "tmpfs",
        "ulimits", "cap_add", "cap_drop", "stop_signal", "stop_grace_period", "restart",
        "labels", "profiles", "extends", "extra_hosts", "dns", "dns_search", "dns_opt",
        "sysctls", "privileged", "devices", "security_opt", "shm_size", "tty", "stdin_open",
        "pull_policy", "network_mode", "group_add", "scale", "depends_on")},
    "build": _BUILD, "healthcheck": _HEALTH, "ports": _PORT, "volumes": _VOLUME,
    "networks": {"aliases": None},
    "deploy": {"replicas": None},
}
NETWORK = {k: None for k in ("name", "external", "labels", "internal", "driver")} | {
    "ipam": {"config": {"subnet": None, "gateway": None}}}
VOLUME = {k: None for k in ("name", "external", "labels", "driver")}
TOP = {"version": None, "name": None, "include": None, "services": None, "networks": None,
       "volumes": None}
_DICT_OF_ENTRIES = {"networks", "depends_on"}  # service keys whose mapping is name -> table


def check(doc: dict, file: str) -> None:
    """Raise ComposeError for the first key of `doc` rl does not support."""
    for key, value in doc.items():
        if key.startswith("x-"):
            continue
        if key not in TOP:
            _refuse(file, [key], "a top-level section")
        if key in ("services", "networks", "volumes"):
            table = {"services": SERVICE, "networks": NETWORK, "volumes": VOLUME}[key]
            for name, item in (value or {}).items():
                if isinstance(item, dict):
                    if key == "services":
                        _service(item, file, [key, name])
                    else:
                        _walk(item, table, file, [key, name])
                        _values(key, item, file, [key, name])


def _service(svc: dict, file: str, path: list) -> None:
    for key, value in svc.items():
        if key.startswith("x-"):
            continue
        if key not in SERVICE:
            _refuse(file, [*path, key], "a service key")
        sub = SERVICE[key]
        if sub is None:
            continue
        if key in _DICT_OF_ENTRIES and isinstance(value, dict):
            for name, entry in value.items():
                if isinstance(entry, dict):
                    _walk(entry, sub, file, [*path, key, name])
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    _walk(item, sub, file, [*path, key, i])
        elif isinstance(value, dict):
            _walk(value, sub, file, [*path, key])
    mode = svc.get("network_mode")
    if mode is not None and not (mode in ("host", "none", "bridge")
                                 or mode.startswith(("service:", "container:"))):
        raise ComposeError(f"{file}: {path_text([*path, 'network_mode'])}: {mode!r} is not "
                           "supported by rl", "use host, none, service:NAME or container:NAME")
    for i, v in enumerate(svc.get("volumes") or []):
        if isinstance(v, dict) and v.get("type") not in (None, "bind", "volume", "tmpfs"):
            raise ComposeError(f"{file}: {path_text([*path, 'volumes', i, 'type'])}: "
                               f"{v['type']!r} is not supported by rl",
                               "use bind, volume or tmpfs")


def _walk(item: dict, table: dict, file: str, path: list) -> None:
    for key, value in item.items():
        if key.startswith("x-"):
            continue
        if key not in table:
            _refuse(file, [*path, key], "a key here")
        sub = table[key]
        if sub is None:
            continue
        if isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, dict):
                    _walk(v, sub, file, [*path, key, i])
        elif isinstance(value, dict):
            _walk(value, sub, file, [*path, key])


def _values(section: str, item: dict, file: str, path: list) -> None:
    driver = item.get("driver")
    ok = {"networks": ("bridge",), "volumes": ("local",)}[section]
    if driver is not None and driver not in ok:
        raise ComposeError(f"{file}: {path_text([*path, 'driver'])}: driver {driver!r} is "
                           f"not supported by rl", f"use {ok[0]} or leave it out")
    cfg = (item.get("ipam") or {}).get("config") or []
    if len(cfg) > 1:
        raise ComposeError(f"{file}: {path_text([*path, 'ipam', 'config'])}: rl networks "
                           "have one subnet", "give one config entry")


def _refuse(file: str, path: list, what: str) -> None:
    raise ComposeError(f"{file}: {path_text(path)}: not supported by rl "
                       f"(the key is valid Compose, but rl does not carry it out)",
                       "remove it, or move it under an x- key")

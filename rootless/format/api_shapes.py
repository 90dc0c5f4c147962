"""The Docker Engine API's documents (moby api/swagger.yaml) built from the engine's
records: ContainerSummary (GET /containers/json), the container inspect document as the
API gives it (Name with its leading slash, Image the id, Config.Image the name, HostConfig
with PortBindings and Binds), ImageSummary, and the version document.

Kept beside docker_shapes.py (the CLI's --format documents) so that every front end shapes
objects in one layer; nothing here calls an engine verb that changes state.
"""

from __future__ import annotations

import time
from typing import Any


def _unix(text: str | None) -> int:
    from rootless.format.docker_shapes import parse_time

    t = parse_time(text) if text else None
    return int(t) if t else 0


def ports_list(port_map: dict) -> list[dict]:
    """NetworkSettings.Ports ({"80/tcp": [{"HostIp", "HostPort"}]}) as the list of
    ContainerSummary.Ports."""
    out = []
    for key, bindings in (port_map or {}).items():
        port, _, proto = key.partition("/")
        if not bindings:
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
            continue
        for b in bindings:
            out.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(port),
                        "PublicPort": int(b.get("HostPort") or 0), "Type": proto or "tcp"})
    return out


def container_summary(c: Any, inspected: dict, network_names: list[str],
                      size: int | None = None) -> dict:
    """One entry of GET /containers/json for the engine's Container `c`, from its
    NetworkSettings and Mounts (as the engine's inspect has them) and the names of its
    networks (engine/ctrinfo.container_networks)."""
    from rootless.format import docker_shapes as shapes

    settings = inspected.get("NetworkSettings") or {}
    networks = settings.get("Networks") or {
        n: {"IPAddress": settings.get("IPAddress", ""), "Gateway": settings.get("Gateway", "")}
        for n in network_names}
    doc = {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": " ".join(c.command),
        "Created": int(c.created),
        "Ports": ports_list(settings.get("Ports") or {}),
        "Labels": c.labels or {},
        "State": c.state,
        "Status": shapes.docker_status(c),
        "HostConfig": {"NetworkMode": str(c.options.get("network") or "default")},
        "NetworkSettings": {"Networks": networks},
        "Mounts": inspected.get("Mounts") or [],
    }
    if size is not None:
        doc["SizeRw"] = size
    return doc


def container_inspect(doc: dict) -> dict:
    """The engine's inspect document as the API gives it."""
    out = dict(doc)
    out["Name"] = "/" + doc["Name"]
    out["Image"] = doc["Image"]
    cfg = dict(doc.get("Config") or {})
    cfg["Image"] = doc.get("ImageName", "")
    path, args = doc.get("Path", ""), doc.get("Args") or []
    cfg.setdefault("Cmd", [path, *args] if path else [])
    cfg.setdefault("Entrypoint", None)
    cfg["AttachStdin"] = cfg["AttachStdout"] = cfg["AttachStderr"] = False
    cfg.setdefault("OpenStdin", bool((doc.get("HostConfig") or {}).get("OpenStdin")))
    out["Config"] = cfg
    host = dict(doc.get("HostConfig") or {})
    settings = dict(doc.get("NetworkSettings") or {})
    bindings = {k: v for k, v in (settings.get("Ports") or {}).items() if v}
    host.setdefault("PortBindings", bindings)
    host["Binds"] = [f"{m['Source']}:{m['Destination']}" + ("" if m.get("RW", True) else ":ro")
                     for m in doc.get("Mounts") or [] if m.get("Type") == "bind"] or None
    host.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
    rp = host.get("RestartPolicy")
    if isinstance(rp, str):
        name, _, count = rp.partition(":")
        host["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count or 0)}
    out["HostConfig"] = host
    settings.setdefault("Networks", {})
    if not settings["Networks"] and settings.get("NetworkMode"):
        settings["Networks"] = {settings["NetworkMode"]: {
            "IPAddress": settings.get("IPAddress", ""), "Gateway": settings.get("Gateway", ""),
            "Aliases": None}}
    out["NetworkSettings"] = settings
    state = dict(out.get("State") or {})
    state.setdefault("Paused", False)
    state.setdefault("OOMKilled", False)
    state.setdefault("Dead", False)
    state.setdefault("Error", "")
    out["State"] = state
    out.setdefault("Driver", "fuse-overlay")
    out.setdefault("Platform", "linux")
    return out


def image_summary(r: Any) -> dict:
    """One entry of GET /images/json for the engine's ImageRecord `r`."""
    from rootless.format.docker_shapes import _short_repo

    tags = []
    for n in r.repo_tags:
        repo, _, tag = n.rpartition(":")
        tags.append(f"{_short_repo(repo)}:{tag}")
    return {
        "Id": r.id,
        "ParentId": "",
        "RepoTags": tags,
        "RepoDigests": r.repo_digests,
        "Created": _unix(r.created),
        "Size": r.size,
        "VirtualSize": r.size,
        "SharedSize": -1,
        "Labels": (r.config.get("config") or {}).get("Labels") or {},
        "Containers": -1,
    }


def image_inspect(doc: dict) -> dict:
    """The engine's image inspect document with the fields the API adds."""
    from rootless.format.docker_shapes import _short_repo

    out = dict(doc)
    out["RepoTags"] = [f"{_short_repo(n.rpartition(':')[0])}:{n.rpartition(':')[2]}"
                       for n in doc.get("RepoTags") or []]
    out.setdefault("Parent", "")
    out.setdefault("Comment", "")
    out.setdefault("DockerVersion", "")
    out["ContainerConfig"] = out.get("Config") or {}
    out["VirtualSize"] = doc.get("Size", 0)
    out["GraphDriver"] = {"Name": "fuse-overlay", "Data": None}
    out["Metadata"] = {"LastTagTime": "0001-01-01T00:00:00Z"}
    return out


def version_doc(version: str, api_version: str, min_api_version: str) -> dict:
    """GET /version."""
    import platform

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "Platform": {"Name": "rl"},
        "Components": [{"Name": "Engine", "Version": version,
                        "Details": {"ApiVersion": api_version,
                                    "MinAPIVersion": min_api_version, "Os": "linux",
                                    "Arch": arch, "KernelVersion": platform.release()}}],
        "Version": version, "ApiVersion": api_version, "MinAPIVersion": min_api_version,
        "GitCommit": "", "GoVersion": "python" + platform.python_version(), "Os": "linux",
        "Arch": arch, "KernelVersion": platform.release(),
        "BuildTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0)),
    }

"""The documents `docker ps/images/volume ls/network ls/history --format` works on, with
Docker's field names and Docker's string values (docker/cli's formatter contexts), and
the column names of their table headers.

Every field is a string, as Docker prints it: `--format json` gives the same keys and
values as `docker ... --format json`, so jq scripts written for Docker work. A field
that needs more than the catalog row (Mounts and LocalVolumes read the container's
config.json) is computed only when a template or the JSON output asks for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rootless.format.gotemplate import go_quote


class _Lazy:
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn


class Doc(dict):
    """A document whose missing fields are template errors, as on Docker's structs, and
    whose values may be computed on first use (`_Lazy`)."""

    go_strict = True
    go_methods: tuple[str, ...] = ()
    go_json_escape_html = True  # Docker marshals these with encoding/json's defaults

    def __getitem__(self, key: str) -> Any:
        v = dict.__getitem__(self, key)
        if isinstance(v, _Lazy):
            v = v.fn()
            dict.__setitem__(self, key, v)
        return v

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def resolved(self) -> dict:
        return {k: self[k] for k in self}


# -- Go's and docker/go-units' ways of printing times and sizes ---------------------------

def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 hours"..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)  # Go's Duration.Round: halves away from zero
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def human_size(n: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision(n, 3): powers of 1000, "%.3g" and the unit
    (precision 4 is go-units HumanSize, what `system df` and prune totals print)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    i = 0
    n = float(n)
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.{precision}g}{units[i]}"


def go_time(t: float) -> str:
    """Go's time.Time.String() of a Unix time in local time: "2021-03-10 00:15:05 +0100 CET"."""
    d = datetime.fromtimestamp(int(t)).astimezone()
    return d.strftime("%Y-%m-%d %H:%M:%S %z %Z")


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 time (as image configs hold) as Unix time."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def ellipsis(s: str, width: int) -> str:
    """docker/cli's formatter.Ellipsis: at most `width` characters, the last one "…"."""
    if len(s) <= width:
        return s
    return s[:width - 1] + "…" if width > 1 else s[:width]


# -- containers (docker ps) ---------------------------------------------------------------

PS_HEADER = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
             "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
             "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
             "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
             "Networks": "NETWORKS"}


class _LabelledDoc(Doc):
    """A document with Docker's `.Label "key"` method (its value, or "")."""

    go_methods = ("Label",)

    def Label(self, name: str) -> str:  # Docker's method name
        return self.labels.get(name, "")


class ContainerDoc(_LabelledDoc):
    go_type = "*formatter.ContainerContext"


def docker_status(c: Any, now: float | None = None) -> str:
    """The STATUS column as Docker words it ("Up 5 minutes", "Exited (0) 2 hours ago")."""
    now = time.time() if now is None else now
    if c.state == "running":
        up = f"Up {human_duration(now - (c.started or now))}"
        if paused(c):
            return f"{up} (Paused)"
        health = health_status(c)
        if health == "starting":
            return f"{up} (health: starting)"
        return f"{up} ({health})" if health in ("healthy", "unhealthy") else up
    code = -1 if c.exit_code is None else c.exit_code
    if c.state == "exited":
        return f"Exited ({code}) {human_duration(now - (c.finished or now))} ago"
    if c.state == "restarting":
        return f"Restarting ({code}) {human_duration(now - (c.finished or now))} ago"
    return "Created"


def paused(c: Any) -> bool:
    """Frozen by `rl pause` since its last start (rootless/engine/lifecycle.py)."""
    options = getattr(c, "options", None) or {}
    return c.state == "running" and (options.get("paused") or 0) >= (c.started or 0)


def health_status(c: Any) -> str:
    """starting, healthy, unhealthy, or none (no health check, or not running)."""
    raw = getattr(c, "health", None)
    if not raw or c.state != "running":
        return "none"
    import json

    try:
        return json.loads(raw).get("Status") or "none"
    except ValueError:
        return "none"


def container_doc(c: Any, *, mounts: Callable[[], list[dict]],
                  networks: Callable[[], list[str]], ports: Callable[[], str],
                  no_trunc: bool = False, size: str | None = None,
                  now: float | None = None) -> ContainerDoc:
    """`docker ps --format json`'s object for the engine's Container record `c`. What
    needs more than the record comes from the engine, called only when a template uses
    it: `mounts` (inspect's Mounts), `networks` (names), `ports` (ps's PORTS text);
    rootless/engine/ctrinfo.py container_doc passes them."""
    now = time.time() if now is None else now
    cmd = " ".join(c.command)
    cache: dict = {}

    def _mounts() -> list[dict]:
        if "m" not in cache:
            cache["m"] = mounts()
        return cache["m"]

    def mount_names() -> str:
        names = []
        for m in doc.mounts():
            name = m.get("Name") or m.get("Source") or ""
            names.append(name if no_trunc else ellipsis(name, 15))
        return ",".join(names)

    doc = ContainerDoc(
        Command=go_quote(cmd if no_trunc else ellipsis(cmd, 20)),
        CreatedAt=go_time(c.created),
        ID=c.id if no_trunc else c.id[:12],
        Image=c.image,
        Labels=",".join(f"{k}={v}" for k, v in sorted(c.labels.items())),
        LocalVolumes=_Lazy(lambda: str(sum(1 for m in doc.mounts()
                                           if m.get("Type") == "volume"))),
        Mounts=_Lazy(mount_names),
        Names=c.name,
        Networks=_Lazy(lambda: ",".join(networks())),
        Ports=_Lazy(ports),
        RunningFor=human_duration(now - c.created) + " ago",
        Size=size if size is not None else "0B",
        State="paused" if paused(c) else c.state,
        Status=docker_status(c, now),
    )
    doc.labels = c.labels
    doc.mounts = _mounts
    return doc


# -- images (docker images) ---------------------------------------------------------------

IMAGES_HEADER = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG",
                 "Digest": "DIGEST", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                 "Size": "SIZE", "Containers": "CONTAINERS", "VirtualSize": "VIRTUAL SIZE",
                 "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"}


class ImageDoc(Doc):
    go_type = "*formatter.imageContext"


def image_docs(r: Any, *, no_trunc: bool = False, now: float | None = None) -> list[ImageDoc]:
    """One document per repository:tag of the image record `r` (a dangling image: one,
    <none>:<none>), as `docker images --format json` prints them."""
    now = time.time() if now is None else now
    created = parse_time(r.created)
    names: list[tuple[str, str]] = []
    for n in r.names:
        if "@" in n:
            continue
        repo, _, tag = n.rpartition(":")
        names.append((repo, tag))
    if not names:
        repos = {n.split("@", 1)[0] for n in r.names}
        names = [(repo, "<none>") for repo in sorted(repos)] or [("<none>", "<none>")]
    out = []
    for repo, tag in dict.fromkeys(names):
        out.append(ImageDoc(
            Containers="N/A",
            CreatedAt=go_time(created) if created is not None else "",
            CreatedSince=(human_duration(now - created) + " ago") if created is not None
            else "N/A",
            Digest=r.manifest_digest or "<none>",
            ID=r.id if no_trunc else r.short_id,
            Repository=_short_repo(repo),
            SharedSize="N/A",
            Size=human_size(r.size),
            Tag=tag,
            UniqueSize="N/A",
            VirtualSize=human_size(r.size),
        ))
    return out


def _short_repo(repo: str) -> str:
    """Docker shows Docker Hub's official images without docker.io/library/."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if repo.startswith(prefix):
            return repo[len(prefix):]
    return repo


# -- volumes, networks, history -----------------------------------------------------------

VOLUME_HEADER = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                 "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS",
                 "Size": "SIZE", "Availability": "AVAILABILITY", "Group": "GROUP",
                 "Status": "STATUS"}


class VolumeDoc(_LabelledDoc):
    go_type = "*formatter.volumeContext"


def volume_doc(v: Any) -> VolumeDoc:
    doc = VolumeDoc(Availability="N/A", Driver="local", Group="N/A",
                    Labels=",".join(f"{k}={x}" for k, x in sorted(v.labels.items())),
                    Links="N/A", Mountpoint=str(v.mountpoint), Name=v.name, Scope="local",
                    Size="N/A", Status="N/A")
    doc.labels = v.labels
    return doc


NETWORK_HEADER = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                  "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
                  "CreatedAt": "CREATED AT"}


class NetworkDoc(_LabelledDoc):
    go_type = "*formatter.networkContext"


def network_doc(n: Any, *, no_trunc: bool = False) -> NetworkDoc:
    doc = NetworkDoc(CreatedAt=go_time(n.created), Driver=n.driver,
                     ID=n.id if no_trunc else n.id[:12], IPv6="false",
                     Internal="true" if n.internal else "false",
                     Labels=",".join(f"{k}={x}" for k, x in sorted(n.labels.items())),
                     Name=n.name, Scope="local")
    doc.labels = n.labels
    return doc


HISTORY_HEADER = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                  "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


class HistoryDoc(Doc):
    go_type = "*formatter.historyContext"


def history_doc(e: dict, *, no_trunc: bool = False, human: bool = True,
                now: float | None = None) -> HistoryDoc:
    """One entry of rootless.engine.ship.history as `docker history --format json`."""
    now = time.time() if now is None else now
    created = parse_time(e.get("created"))
    ident = e["id"]
    if not no_trunc and ident != "<missing>":
        ident = ident.partition(":")[2][:12] if ":" in ident else ident[:12]
    by = e.get("created_by") or ""
    if not no_trunc:
        by = ellipsis(by, 45)
    return HistoryDoc(
        Comment=e.get("comment") or "",
        CreatedAt=(go_time(created) if human else e.get("created") or "")
        if created is not None else "",
        CreatedBy=by,
        CreatedSince=(human_duration(now - created) + " ago") if created is not None
        else "N/A",
        ID=ident,
        Size=human_size(e.get("size") or 0) if human else str(e.get("size") or 0),
    )



# -- info, version ------------------------------------------------------------------------

def info_doc(rl_info: dict, counts: dict[str, int]) -> dict:
    """`docker info --format json`'s main fields for this host, then rl's own host report
    (rootless.engine.hostinfo, lower-case keys: they never clash with Docker's)."""
    import os
    import platform

    mem = 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    doc = {
        "ID": "", **counts,
        "Driver": "fuse-overlay", "LoggingDriver": "json-file", "CgroupDriver": "none",
        "KernelVersion": platform.release(), "OperatingSystem": _os_name(),
        "OSType": "linux", "Architecture": platform.machine(), "NCPU": os.cpu_count() or 1,
        "MemTotal": mem, "DockerRootDir": rl_info.get("storage", ""),
        "Name": platform.node(), "ServerVersion": rl_info.get("version", ""),
        "SecurityOptions": ["name=seccomp,profile=unconfined", "name=rootless"],
    }
    doc.update(rl_info)
    return doc


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def version_doc(version: str) -> dict:
    """`docker version --format json`: Client and Server, both rl (there is no daemon)."""
    import platform

    side = {"Version": version, "ApiVersion": "1.41", "Os": "linux",
            "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(),
                                                                 platform.machine()),
            "GoVersion": "python" + platform.python_version()}
    return {"Client": dict(side, Platform={"Name": "rl"}),
            "Server": dict(side, Platform={"Name": "rl"}, Components=[
                {"Name": "rl", "Version": version}])}

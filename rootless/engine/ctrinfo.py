"""What a container shows: ps (list_containers, and `ps_rows`: the row model every front
end lists containers with), the size of what it wrote, logs, inspect (Docker's shape), top.

`PsRow` holds Docker's ps fields of one container, unformatted (the whole command, the
PORTS text, bytes): the CLI's table escapes and cuts them, its --format goes through
rootless/format/docker_shapes.py, the API's /containers/json shapes them with
format/api_shapes.py; what needs more than the row (mounts, networks, NetworkSettings)
is read when asked for, once.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from rootless.errors import Conflict, InvalidArgument, NotFound
from rootless.store.containerdb import Container, every_container, lookup


def _ago(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return "Less than a minute" if s >= 1 else "Less than a second"
    if s < 3600:
        return f"{s // 60} minute{'s' if s >= 120 else ''}"
    if s < 86400:
        return f"{s // 3600} hour{'s' if s >= 7200 else ''}"
    return f"{s // 86400} day{'s' if s >= 172800 else ''}"


def list_containers(all_: bool = False, filters: dict[str, list[str]] | None = None,
                    last: int | None = None) -> list[Container]:
    """Containers, newest first: the running ones, or all (`all_`, or a `status` filter,
    or `last`: the `last` newest of every state, as `docker ps -n`), that pass Docker's
    filters (rootless/engine/filters.py)."""
    out = every_container()
    if filters:
        from rootless.engine import filters as flt

        out = flt.containers(out, filters, lookup)
    if last is not None and last >= 0:
        return out[:last]
    if all_ or (filters and "status" in filters):
        return out
    return [c for c in out if c.state in ("running", "restarting")]


@dataclass
class PsRow:
    """One container as `ps` lists it (Docker's fields: ID, Image, Command, CreatedAt,
    RunningFor, Ports, Status, Size, Names, Labels, Mounts, Networks, State)."""

    container: Container
    id: str
    image: str
    command: list[str]  # whole and raw: the container chose it (front ends escape it)
    created: float  # CreatedAt, Unix time
    running_for: str  # the table's CREATED without " ago": "5 minutes"
    status: str  # "Up 5 minutes (healthy)", "Exited (0) 2 hours ago", "Created"
    state: str  # the record's state (created, running, restarting, exited)
    ports: str  # the PORTS column: "0.0.0.0:8080->80/tcp"
    names: str
    labels: dict[str, str]
    size: int | None = None  # bytes the container wrote (ps -s); None: not asked for
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def mounts(self) -> list[dict]:
        """Mounts in `docker inspect`'s shape (reads the container's config.json)."""
        if "mounts" not in self._cache:
            self._cache["mounts"] = container_mounts(self.container)
        return self._cache["mounts"]

    def networks(self) -> list[str]:
        """Names of its networks (or its network mode)."""
        if "networks" not in self._cache:
            self._cache["networks"] = container_networks(self.container)
        return self._cache["networks"]

    def network_settings(self) -> dict:
        """NetworkSettings as inspect has it (published and exposed ports, addresses)."""
        if "settings" not in self._cache:
            from rootless.engine import netwire

            c = self.container
            self._cache["settings"] = netwire.inspect_settings(
                c.options, c.options.get("exposed") or [], c.id)
        return self._cache["settings"]


def ps_row(c: Container, *, size: bool = False, now: float | None = None) -> PsRow:
    from rootless.engine import netwire

    now = time.time() if now is None else now
    return PsRow(container=c, id=c.id, image=c.image, command=list(c.command),
                 created=c.created, running_for=_ago(now - c.created),
                 status=c.status_text(), state=c.state, ports=netwire.ps_ports(c.options),
                 names=c.name, labels=dict(c.labels),
                 size=upper_size(c) if size else None)


def ps_rows(all_: bool = False, filters: dict[str, list[str]] | None = None,
            last: int | None = None, *, size: bool = False) -> list[PsRow]:
    """`ps`: list_containers' containers as rows; `size`: with the bytes each wrote."""
    now = time.time()
    return [ps_row(c, size=size, now=now) for c in list_containers(all_, filters, last)]


def container_mounts(c: Container) -> list[dict]:
    """The container's mounts in `docker inspect`'s shape (reads its config.json)."""
    from rootless.engine import mounts

    try:
        spec = c.spec()
    except OSError:
        return []
    return mounts.inspect_mounts(spec, str(c.dir))


def container_networks(c: Container) -> list[str]:
    """Names of the networks a container is on: its user-defined networks, or its mode
    (slirp4netns, host, none, container:ID)."""
    from rootless.engine import netwire

    user = netwire.user_networks(c.options)
    if user:
        return list(user)
    return [str(c.options.get("network") or "slirp4netns").partition(":")[0]]


def container_doc(c: Container | PsRow, *, no_trunc: bool = False, size: str | None = None,
                  now: float | None = None):
    """`docker ps --format json`'s object for `c` (a record, or a PsRow whose mounts and
    networks are then read once for both) (rootless/format/docker_shapes.py), its mounts,
    networks and ports found here when a template asks for them."""
    from rootless.format import docker_shapes

    if isinstance(c, PsRow):
        row = c
        return docker_shapes.container_doc(row.container, mounts=row.mounts,
                                           networks=row.networks, ports=lambda: row.ports,
                                           no_trunc=no_trunc, size=size, now=now)
    from rootless.engine import netwire

    return docker_shapes.container_doc(
        c, mounts=lambda: container_mounts(c), networks=lambda: container_networks(c),
        ports=lambda: netwire.ps_ports(c.options), no_trunc=no_trunc, size=size, now=now)


def upper_size(c: Container) -> int:
    """Bytes of the files the container wrote (its upper dir), for `ps -s` and `system df`.

    The upper dir is the container's to write: walked by directory fd with os.fwalk, which
    never follows a symlink and opens each directory relative to its parent's fd (and
    checks it is the directory it listed); entries this user cannot read (owned by a
    subordinate uid, mode 0700) are not counted."""
    from rootless.linux import safepath

    return safepath.tree_size(c.dir / "upper")


def logs(ref: str, *, follow: bool = False, tail: int | str | None = None,
         since: float | None = None, until: float | None = None):
    """(timestamp, stream, data) records of the container's output; `tail`: the last N
    lines (a number, or Docker's text: "all" or digits; None: all); `since`/`until`
    (Unix times) keep those written in [since, until)."""
    from rootless.runtime import logfile

    tail = parse_tail(tail)
    c = lookup(ref)
    from rootless.engine import runextras

    runextras.check_readable(c.options)  # --log-driver none
    path = str(c.dir / "ctr.log")
    # the records' timestamps are RFC 3339 in UTC with 9 decimals: they compare as text
    # The times come parsed to the microsecond (datetime) in a float, which cannot hold
    # nanoseconds of today's times: rounded to the microsecond they are what was given,
    # so `--since` of a record's own printed time keeps that record.
    lo = logfile.timestamp(round(since * 1e6) * 1000) if since is not None else None
    hi = logfile.timestamp(round(until * 1e6) * 1000) if until is not None else None

    def window(records):
        for rec in records:
            if hi is not None and rec[0] >= hi:
                return
            if lo is None or rec[0] >= lo:
                yield rec

    if lo is not None or hi is not None:
        return _logs(c, path, window, follow, tail)
    return _logs(c, path, lambda r: r, follow, tail)


def parse_tail(tail: int | str | None) -> int | None:
    """Docker's `tail` (`--tail`, the API's ?tail=): "all" (or None) or a number of lines."""
    if tail is None or tail == "all":
        return None
    if isinstance(tail, int) and tail >= 0:
        return tail
    if isinstance(tail, str) and tail.isdigit():
        return int(tail)
    raise InvalidArgument(f"invalid --tail value {tail!r}", "a number or all")


def _logs(c: Container, path: str, window, follow: bool, tail: int | None):
    from rootless.runtime import logfile

    recs = window(logfile.records(path))
    if tail is not None:
        from collections import deque

        # tail counts lines, not records: a line may be several partial records.
        lines: deque = deque(maxlen=max(tail, 0) or None)
        cur: list = []
        for rec in recs:
            cur.append(rec)
            if rec[2].endswith(b"\n"):
                lines.append(cur)
                cur = []
        if cur:
            lines.append(cur)
        if tail == 0:
            lines.clear()
        head = [r for line in lines for r in line]
        yield from head
        if not follow:
            return
        skip = sum(1 for _ in window(logfile.records(path)))
    else:
        skip = 0
        if not follow:
            yield from recs
            return

    def running() -> bool:
        try:
            return lookup(c.id).state in ("running", "restarting")  # follows restarts
        except NotFound:
            return False

    follow_recs = logfile.records(path, follow=True, still_running=running)
    for i, rec in enumerate(window(follow_recs)):
        if i >= skip:
            yield rec


def inspect(ref: str) -> dict:
    from rootless.format.docker_shapes import paused

    c = lookup(ref)
    spec = c.spec()
    try:
        from rootless.runtime.rootfs import RootfsSpec

        rootfs = RootfsSpec.load(str(c.dir / "rootfs.json")).__dict__
    except OSError:
        rootfs = {}
    return {
        "Id": c.id,
        "Name": c.name,
        "Created": _iso(c.created),
        "Image": c.image_id,
        "ImageName": c.image,
        "Path": c.command[0] if c.command else "",
        "Args": c.command[1:],
        "State": {
            "Status": "paused" if paused(c) else c.state,
            "Running": c.state == "running",
            "Paused": paused(c),
            "Restarting": c.state == "restarting",
            "Pid": c.pid or 0,
            "MonitorPid": c.monitor_pid or 0,
            "ExitCode": c.exit_code if c.exit_code is not None else 0,
            "StartedAt": _iso(c.started),
            "FinishedAt": _iso(c.finished),
            **_health_of(c),
        },
        "RestartCount": c.restart_count,
        "Config": {
            "Hostname": spec.get("hostname"),
            "Env": spec["process"]["env"],
            "Cmd": c.command,
            "WorkingDir": spec["process"]["cwd"],
            "User": spec.get("annotations", {}).get("io.rl.user", ""),
            "Labels": c.labels,
            "Tty": spec["process"]["terminal"],
            "StopSignal": spec.get("annotations", {}).get("io.rl.stop-signal", ""),
            **({"StopTimeout": c.options["stop_timeout"]}
               if c.options.get("stop_timeout") is not None else {}),
            **({"Healthcheck": c.options["healthcheck"]}
               if c.options.get("healthcheck") else {}),
            "ExposedPorts": {p: {} for p in c.options.get("exposed") or []},
        },
        "NetworkSettings": _network_settings(c, spec),
        "HostConfig": {"NetworkMode": c.options.get("network"),
                       "AutoRemove": c.options.get("rm"),
                       "RestartPolicy": c.options.get("restart") or
                       {"Name": "no", "MaximumRetryCount": 0},
                       "Privileged": bool(c.options.get("privileged")),
                       "ExtraHosts": c.options.get("add_hosts") or None,
                       "Dns": c.options.get("dns") or [],
                       "DnsSearch": c.options.get("dns_search") or [],
                       "DnsOptions": c.options.get("dns_options") or [],
                       "GroupAdd": c.options.get("group_add") or None,
                       "Devices": _devices_of(c),
                       "Sysctls": dict(x.split("=", 1) for x in c.options.get("sysctls") or []),
                       "ShmSize": _shm_size(spec),
                       "ReadonlyRootfs": spec["root"].get("readonly", False),
                       "UsernsMode": c.options.get("userns", ""),
                       "SecurityOpt": _security_opt(spec),
                       **_limits(c.options),
                       **_more_host_config(c.options)},
        "Mounts": _mounts_of(spec, str(c.dir)),
        "Rootfs": rootfs,
        "LogPath": str(c.dir / "ctr.log"),
        "Bundle": str(c.dir),
        "OCISpec": spec,
    }


def _limits(options: dict) -> dict:
    from rootless.engine import cgroups

    return cgroups.host_config(options.get("limits"))


def _more_host_config(options: dict) -> dict:
    from rootless.engine import runextras

    return runextras.host_config(options)


def _devices_of(c: Container) -> list[dict]:
    from rootless.engine import procflags

    out = []
    for d in c.options.get("devices") or []:
        parts = d.split(":")
        perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
        try:
            dest = procflags.device_mount(procflags.parse_device(d))["destination"]
        except InvalidArgument:  # the host's device went away since
            dest = parts[1] if len(parts) > 1 and parts[1].startswith("/") else parts[0]
        out.append({"PathOnHost": parts[0], "PathInContainer": dest,
                    "CgroupPermissions": perms})
    return out


def _shm_size(spec: dict) -> int:
    for m in spec.get("mounts", []):
        if m.get("destination") == "/dev/shm":
            for o in m.get("options", []):
                if o.startswith("size=") and o.endswith("k"):
                    return int(o[5:-1]) * 1024
    return 64 << 20


def _health_of(c: Container) -> dict:
    """State.Health when the container has a health check (Docker omits it otherwise)."""
    if not c.options.get("healthcheck"):
        return {}
    health = json.loads(c.health) if c.health else {"Status": "starting",
                                                     "FailingStreak": 0, "Log": []}
    return {"Health": health}


def _security_opt(spec: dict) -> list[str]:
    """What the container runs with; a container made before rl had seccomp has none."""
    raw = spec.get("annotations", {}).get("io.rl.security-opt")
    if raw:
        return json.loads(raw)
    return ["seccomp=unconfined"] + (["no-new-privileges"]
                                     if spec["process"].get("noNewPrivileges") else [])


def _mounts_of(spec: dict, bundle: str) -> list[dict]:
    from rootless.engine import mounts

    return mounts.inspect_mounts(spec, bundle)


def _network_settings(c: Container, spec: dict) -> dict:
    from rootless.engine import netwire

    return netwire.inspect_settings(c.options, c.options.get("exposed") or [], c.id)


def _iso(t: float | None) -> str:
    if not t:
        return "0001-01-01T00:00:00Z"
    from rootless.runtime.logfile import timestamp

    return timestamp(int(t * 1e9))


def running_container(ref: str) -> Container:
    c = lookup(ref)
    if c.state != "running" or not c.pid:
        raise Conflict(f"container {c.name} is not running", "start it first (rl start)")
    return c


def maps_of(c: Container):
    from rootless.runtime import userns

    linux = c.spec()["linux"]
    return userns.Maps.from_oci(linux["uidMappings"], linux["gidMappings"])


def top(ref: str) -> list[dict]:
    from rootless.runtime import join

    c = running_container(ref)
    maps = maps_of(c)
    rows = []
    tick = os.sysconf("SC_CLK_TCK")
    for p in join.processes(c.pid):
        inside = next((i + p["uid"] - o for i, o, n in maps.uid.entries
                       if o <= p["uid"] < o + n), p["uid"])
        secs = p["utime"] // tick
        rows.append({"UID": inside, "PID": int(p["nspid"][-1]), "HOSTPID": p["hostpid"],
                     "TIME": f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}",
                     "CMD": p["args"]})
    return rows

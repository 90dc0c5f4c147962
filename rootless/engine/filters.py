"""`--filter KEY=VALUE` as Docker reads it, for ps, images, volume ls and network ls.

Docker's rules: values of one key are alternatives (any may match), different keys must
all match; `label` is the exception: every label given must match. `id` and `name` are
regular expressions searched in the id or name (Docker's `filters.Match`), so
`name=web` also matches `myweb-1`; a name also matches as `/NAME`, as Docker's names are
stored, so `name=^/web$` works as well as `name=^web$`.
"""

from __future__ import annotations

import re
from typing import Any

from rootless.errors import InvalidArgument

PS_KEYS = ("id", "name", "label", "status", "exited", "ancestor", "before", "since",
           "volume", "network", "publish", "expose", "health", "is-task")
IMAGES_KEYS = ("dangling", "label", "before", "since", "reference")
VOLUME_KEYS = ("name", "label", "dangling", "driver")
NETWORK_KEYS = ("name", "id", "label", "driver", "type")
PRUNE_KEYS = ("label", "label!", "until")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH = ("starting", "healthy", "unhealthy", "none")


def _status(c) -> str:
    """Docker's status: a running container frozen by `rl pause` is "paused"."""
    if c.state != "running" or not c.options.get("paused"):
        return c.state
    from rootless.format.docker_shapes import paused

    return "paused" if paused(c) else c.state


def parse(values: tuple[str, ...] | list[str], keys: tuple[str, ...]) -> dict[str, list[str]]:
    """{key: [values]} from KEY=VALUE arguments, refusing keys the command does not know."""
    out: dict[str, list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}",
                                  "give --filter KEY=VALUE")
        if key not in keys:
            raise InvalidArgument(f"invalid filter '{key}'", "use one of: " + ", ".join(keys))
        out.setdefault(key, []).append(value)
    return out


def check(f: dict[str, list[str]], keys: tuple[str, ...]) -> None:
    """Refuse a filter key the listing does not know (any front end: the CLI's --filter,
    the API's `filters` JSON)."""
    for key in f:
        if key not in keys:
            raise InvalidArgument(f"invalid filter '{key}'", "use one of: " + ", ".join(keys))


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return pattern in text


def _labels_match(wanted: list[str], labels: dict[str, str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _bool(key: str, value: str) -> bool:
    v = value.lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise InvalidArgument(f"invalid filter '{key}={value}'", f"use {key}=true or {key}=false")


def _port_range(key: str, value: str) -> tuple[int, int, str]:
    ports, _, proto = value.partition("/")
    lo, _, hi = ports.partition("-")
    if not lo.isdigit() or (hi and not hi.isdigit()):
        raise InvalidArgument(f"invalid filter '{key}={value}'",
                              f"use {key}=PORT[/PROTO] or {key}=START-END[/PROTO]")
    return int(lo), int(hi or lo), proto or "tcp"


# -- containers ---------------------------------------------------------------------------

def containers(cs: list[Any], f: dict[str, list[str]], lookup) -> list[Any]:
    """The containers of `cs` (newest first, every state) that pass the filters.
    `lookup(ref)` finds a container for before/since."""
    check(f, PS_KEYS)
    for s in f.get("status", []):
        if s not in STATUSES:
            raise InvalidArgument(f"invalid filter 'status={s}'",
                                  "use one of: " + ", ".join(STATUSES))
    for h in f.get("health", []):
        if h not in HEALTH:
            raise InvalidArgument(f"invalid filter 'health={h}'",
                                  "use one of: " + ", ".join(HEALTH))
    exited = []
    for e in f.get("exited", []):
        try:
            exited.append(int(e))
        except ValueError:
            raise InvalidArgument(f"invalid filter 'exited={e}'",
                                  "give an exit code: exited=0") from None
    before = [lookup(r).created for r in f.get("before", [])]
    since = [lookup(r).created for r in f.get("since", [])]
    ancestors = [_image_id(a) for a in f.get("ancestor", [])]
    publish = [_port_range("publish", p) for p in f.get("publish", [])]
    expose = [_port_range("expose", p) for p in f.get("expose", [])]
    out = []
    for c in cs:
        if "id" in f and not any(_search(p, c.id) for p in f["id"]):
            continue
        if "name" in f and not any(_search(p, c.name) or _search(p, "/" + c.name)
                                   for p in f["name"]):
            continue
        if "label" in f and not _labels_match(f["label"], c.labels):
            continue
        if "status" in f and _status(c) not in f["status"]:
            continue
        if exited and (c.state != "exited" or c.exit_code not in exited):
            continue
        if "health" in f and _health(c) not in f["health"]:
            continue
        if before and not all(c.created < t for t in before):
            continue
        if since and not all(c.created > t for t in since):
            continue
        if ancestors and not any(_is_ancestor(c, a) for a in ancestors):
            continue
        if "volume" in f and not _uses_volume(c, f["volume"]):
            continue
        if "network" in f and not _on_network(c, f["network"]):
            continue
        if publish and not _has_port(_published(c), publish):
            continue
        if expose and not _has_port(_published(c) + _exposed(c), expose):
            continue
        out.append(c)
    return out


def _image_id(ref: str) -> tuple[str, str | None]:
    """(the reference as given, the image id it names here, if any)."""
    try:
        from rootless.engine import images

        return ref, images.get_image(ref).id
    except Exception:  # not an image here (or no image store): compare by name only
        return ref, None


def _is_ancestor(c: Any, anc: tuple[str, str | None]) -> bool:
    ref, image_id = anc
    if image_id is not None and c.image_id == image_id:
        return True
    return c.image == ref or c.image.rpartition(":")[0] == ref or \
        c.image_id.partition(":")[2].startswith(ref)


def _uses_volume(c: Any, wanted: list[str]) -> bool:
    from rootless.engine.ctrinfo import container_mounts

    for m in container_mounts(c):
        for w in wanted:
            if w in (m.get("Name"), m.get("Destination"), m.get("Source")):
                return True
    return False


def _on_network(c: Any, wanted: list[str]) -> bool:
    from rootless.engine.ctrinfo import container_networks

    nets = container_networks(c)
    ids = []
    try:
        from rootless.engine import networks

        ids = [networks.get_network(n).id for n in nets if n not in ("slirp4netns", "host", "none",
                                                               "container")]
    except Exception:  # a network gone since: match by name only
        pass
    return any(w in nets or any(i.startswith(w) for i in ids) for w in wanted)


def _published(c: Any) -> list[tuple[int, str]]:
    return [(int(p["container_port"]), p.get("protocol", "tcp"))
            for p in c.options.get("ports") or [] if "container_port" in p]


def _exposed(c: Any) -> list[tuple[int, str]]:
    out = []
    for item in c.options.get("exposed") or []:
        port, _, proto = item.partition("/")
        if port.isdigit():
            out.append((int(port), proto or "tcp"))
    return out


def _has_port(ports: list[tuple[int, str]], wanted: list[tuple[int, int, str]]) -> bool:
    return any(lo <= p <= hi and proto == pp for p, pp in ports for lo, hi, proto in wanted)


# -- images, volumes, networks ------------------------------------------------------------

def images(records: list[Any], f: dict[str, list[str]], get_image) -> list[Any]:
    check(f, IMAGES_KEYS)
    from fnmatch import fnmatchcase

    from rootless.format.docker_shapes import parse_time

    dangling = [_bool("dangling", v) for v in f.get("dangling", [])]
    before = [parse_time(get_image(r).created) or 0 for r in f.get("before", [])]
    since = [parse_time(get_image(r).created) or 0 for r in f.get("since", [])]
    out = []
    for r in records:
        is_dangling = not any("@" not in n for n in r.names)
        if dangling and is_dangling not in dangling:
            continue
        labels = (r.config.get("config") or {}).get("Labels") or {}
        if "label" in f and not _labels_match(f["label"], labels):
            continue
        t = parse_time(r.created) or 0
        if before and not all(t < b for b in before):
            continue
        if since and not all(t > s for s in since):
            continue
        if "reference" in f:
            names = [n for n in r.names if "@" not in n]
            short = [_short(n) for n in names]
            if not any(fnmatchcase(n, pat) or fnmatchcase(n.rpartition(":")[0], pat)
                       for pat in f["reference"] for n in names + short):
                continue
        out.append(r)
    return out


def _short(name: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def volumes(vols: list[Any], f: dict[str, list[str]], in_use) -> list[Any]:
    check(f, VOLUME_KEYS)
    dangling = [_bool("dangling", v) for v in f.get("dangling", [])]
    out = []
    for v in vols:
        if "name" in f and not any(_search(p, v.name) for p in f["name"]):
            continue
        if "label" in f and not _labels_match(f["label"], v.labels):
            continue
        if "driver" in f and "local" not in f["driver"]:
            continue
        if dangling and (not in_use(v.name)) not in dangling:
            continue
        out.append(v)
    return out


def networks(nets: list[Any], f: dict[str, list[str]]) -> list[Any]:
    check(f, NETWORK_KEYS)
    for t in f.get("type", []):
        if t not in ("custom", "builtin"):
            raise InvalidArgument(f"invalid filter 'type={t}'", "use type=custom or type=builtin")
    out = []
    for n in nets:
        if "name" in f and not any(_search(p, n.name) for p in f["name"]):
            continue
        if "id" in f and not any(n.id.startswith(p) for p in f["id"]):
            continue
        if "label" in f and not _labels_match(f["label"], n.labels):
            continue
        if "driver" in f and n.driver not in f["driver"]:
            continue
        if "type" in f and "custom" not in f["type"]:
            continue  # every network rl lists is user-defined
        out.append(n)
    return out


# -- prune --------------------------------------------------------------------------------

_DURATION = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_time(text: str, flag: str, now: float | None = None) -> float:
    """A time as Docker reads `--since`/`--until` and the `until` filter: RFC 3339
    (2024-05-01T10:00:00Z, or a date, or without zone: local time), Unix time
    (1714557600[.5]), or a Go duration before now (10m, 1h30m, 45s)."""
    import time
    from datetime import datetime

    now = time.time() if now is None else now
    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", t)
    if parts and "".join(n + u for n, u in parts) == t:
        return now - sum(float(n) * _DURATION[u] for n, u in parts)
    try:
        d = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(f"invalid value for {flag}: {text!r}",
                              "give RFC 3339 (2024-05-01T10:00:00Z), Unix time or a duration "
                              "like 10m") from None
    return d.timestamp() if d.tzinfo else d.astimezone().timestamp()


def prune_predicate(f: dict[str, list[str]], *, until: bool = True):
    """`--filter` of the prune commands (Docker's keys: `label=KEY[=VALUE]`,
    `label!=KEY[=VALUE]`, `until=TIME`) as a test of (labels, created Unix time): True
    for an object that may be pruned. `until=False`: the object type has no `until`
    (volumes, as in Docker), and one given is refused."""
    if "until" in f and not until:
        raise InvalidArgument("invalid filter 'until'", "volumes take only label filters")
    limits = [parse_time(v, "until") for v in f.get("until", [])]

    def ok(labels: dict[str, str], created: float) -> bool:
        if "label" in f and not _labels_match(f["label"], labels):
            return False
        # label!=: prune only what has none of them (Docker: "does not have the label")
        if any(_labels_match([item], labels) for item in f.get("label!", [])):
            return False
        return all(created < t for t in limits)

    return ok


def _health(c) -> str:
    from rootless.format.docker_shapes import health_status

    return health_status(c)

"""The route table, in one place: (method, path pattern, handler, body kind).

Patterns follow Docker's paths (moby api/server/router/*): `{id}` is one path segment,
`{name*}` may hold slashes (image names like `localhost:5000/team/app:1`). A body kind is
"json" (read whole, bounded) or "file" (a tar stream spooled to a temp file).
"""

from __future__ import annotations

import re

from rootless.api import containers, execs, images, networks, system, volumes
from rootless.api.protocol import ApiError

J, F = "json", "file"

TABLE = [
    # system
    ("GET", "/_ping", system.ping, J),
    ("HEAD", "/_ping", system.ping, J),
    ("GET", "/version", system.version, J),
    ("GET", "/info", system.info, J),
    ("GET", "/events", system.events, J),
    ("GET", "/system/df", system.df, J),
    ("POST", "/auth", system.auth, J),
    # images
    ("GET", "/images/json", images.list_, J),
    ("POST", "/images/create", images.create, F),
    ("POST", "/images/load", images.load, F),
    ("GET", "/images/get", images.get_many, J),
    ("POST", "/images/prune", images.prune, J),
    ("POST", "/build", images.build, F),
    ("POST", "/build/prune", images.build_prune, J),
    ("GET", "/images/{name*}/json", images.inspect, J),
    ("GET", "/images/{name*}/history", images.history, J),
    ("GET", "/images/{name*}/get", images.get_one, J),
    ("POST", "/images/{name*}/tag", images.tag, J),
    ("POST", "/images/{name*}/push", images.push, J),
    ("DELETE", "/images/{name*}", images.delete, J),
    ("GET", "/distribution/{name*}/json", images.distribution, J),
    # containers
    ("GET", "/containers/json", containers.list_, J),
    ("POST", "/containers/create", containers.create, J),
    ("POST", "/containers/prune", containers.prune, J),
    ("GET", "/containers/{id}/json", containers.inspect, J),
    ("POST", "/containers/{id}/start", containers.start, J),
    ("POST", "/containers/{id}/stop", containers.stop, J),
    ("POST", "/containers/{id}/restart", containers.restart, J),
    ("POST", "/containers/{id}/kill", containers.kill, J),
    ("POST", "/containers/{id}/wait", containers.wait, J),
    ("DELETE", "/containers/{id}", containers.delete, J),
    ("GET", "/containers/{id}/logs", containers.logs, J),
    ("GET", "/containers/{id}/top", containers.top, J),
    ("GET", "/containers/{id}/changes", containers.changes, J),
    ("GET", "/containers/{id}/export", containers.export, J),
    ("GET", "/containers/{id}/stats", containers.stats, J),
    ("POST", "/containers/{id}/rename", containers.rename, J),
    ("POST", "/containers/{id}/update", containers.update, J),
    ("HEAD", "/containers/{id}/archive", containers.archive_head, J),
    ("GET", "/containers/{id}/archive", containers.archive_get, J),
    ("PUT", "/containers/{id}/archive", containers.archive_put, F),
    ("POST", "/containers/{id}/attach", containers.attach, J),
    ("POST", "/containers/{id}/resize", containers.resize, J),
    ("POST", "/containers/{id}/pause", containers.pause, J),
    ("POST", "/containers/{id}/unpause", containers.pause, J),
    # exec
    ("POST", "/containers/{id}/exec", execs.create, J),
    ("POST", "/exec/{id}/start", execs.start, J),
    ("POST", "/exec/{id}/resize", execs.resize, J),
    ("GET", "/exec/{id}/json", execs.inspect, J),
    # volumes
    ("GET", "/volumes", volumes.list_, J),
    ("POST", "/volumes/create", volumes.create, J),
    ("POST", "/volumes/prune", volumes.prune, J),
    ("GET", "/volumes/{name}", volumes.inspect, J),
    ("DELETE", "/volumes/{name}", volumes.delete, J),
    # networks
    ("GET", "/networks", networks.list_, J),
    ("POST", "/networks/create", networks.create, J),
    ("POST", "/networks/prune", networks.prune, J),
    ("GET", "/networks/{id}", networks.inspect, J),
    ("DELETE", "/networks/{id}", networks.delete, J),
    ("POST", "/networks/{id}/connect", networks.connect, J),
    ("POST", "/networks/{id}/disconnect", networks.disconnect, J),
]


def _compile(pattern: str) -> re.Pattern:
    out = ""
    for part in re.split(r"(\{[a-z]+\*?\})", pattern):
        if part.startswith("{"):
            name = part[1:-1].rstrip("*")
            out += f"(?P<{name}>.+)" if part.endswith("*}") else f"(?P<{name}>[^/]+)"
        else:
            out += re.escape(part)
    return re.compile(out + "/?$")


_COMPILED = [(m, _compile(p), h, b) for m, p, h, b in TABLE]


def match(method: str, path: str):
    """(handler, path params, body kind); ApiError 404 (no such path) or 405."""
    from urllib.parse import unquote

    allowed = False
    for m, rx, handler, body in _COMPILED:
        found = rx.match(path)
        if not found:
            continue
        if m != method:
            allowed = True
            continue
        return handler, {k: unquote(v) for k, v in found.groupdict().items()}, body
    if allowed:
        raise ApiError(405, f"method {method} is not allowed on {path}")
    raise ApiError(404, f"page not found: {method} {path}")

"""System endpoints: /_ping, /version, /info, /events, /system/df, /auth."""

from __future__ import annotations

import json
import time

from rootless import __version__
from rootless.api import API_VERSION, MIN_API_VERSION
from rootless.api.forker import call as engine
from rootless.api.protocol import ApiError, Request, Response, json_response


def ping(req: Request) -> Response:
    # Builder-Version 1: the classic builder (POST /build); rl speaks no BuildKit session.
    return Response(200, b"OK", content_type="text/plain; charset=utf-8",
                    headers=[("Builder-Version", "1"), ("Cache-Control", "no-cache, no-store, "
                                                         "must-revalidate"), ("Pragma", "no-cache")])


def version(req: Request) -> Response:
    from rootless.format import api_shapes

    return json_response(api_shapes.version_doc(__version__, API_VERSION, MIN_API_VERSION))


def info(req: Request) -> Response:
    from rootless.engine.hostinfo import host_info
    from rootless.engine.system import object_counts
    from rootless.format import docker_shapes as shapes

    doc = shapes.info_doc(host_info().as_dict(), object_counts())
    doc.setdefault("Images", 0)
    doc.update({"Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"],
                            "Log": ["json-file"]},
                "MemoryLimit": False, "SwapLimit": False, "CpuCfsPeriod": False,
                "CpuCfsQuota": False, "IPv4Forwarding": True, "Debug": False,
                "OomKillDisable": False, "NGoroutines": 0, "NFd": 0, "NEventsListener": 0,
                "IndexServerAddress": "https://index.docker.io/v1/",
                "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": [],
                                   "Mirrors": []},
                "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "",
                          "ControlAvailable": False, "Error": "", "RemoteManagers": None},
                "DefaultRuntime": "rl", "Runtimes": {"rl": {"path": "rl"}},
                "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "catatonit",
                "Labels": [], "ExperimentalBuild": False, "HttpProxy": "", "HttpsProxy": "",
                "NoProxy": "", "Warnings": None})
    return json_response(doc)


def _time_arg(text: str | None) -> int | None:
    """since/until: Unix seconds (with a fraction), as the clients send them."""
    if text is None or text == "":
        return None
    try:
        return int(float(text) * 1_000_000_000)
    except ValueError:
        from rootless.format.docker_shapes import parse_time

        t = parse_time(text)
        if t is None:
            raise ApiError(400, f"invalid time {text!r}") from None
        return int(t * 1_000_000_000)


def events(req: Request) -> Response:
    from rootless.engine import events as journal

    since = _time_arg(req.q("since"))
    until = _time_arg(req.q("until"))
    f = req.filters()
    if since is None:
        since = time.time_ns()

    def gen():
        stop = req.gone.is_set
        for ev in journal.read(since, until, follow=True, stop=stop):
            if stop():
                return
            if journal.matches(ev, f):
                yield json.dumps(ev).encode() + b"\n"
        return

    return Response(200, gen(), streamed=True)


def df(req: Request) -> Response:
    from rootless.engine import containers, images, volumes
    from rootless.format import api_shapes

    usage = engine("rootless.engine.system:disk_usage")
    imgs = [api_shapes.image_summary(r) for r in images.list_images(all_images=True)]
    ctrs = []
    from rootless.engine import ctrinfo
    from rootless.errors import NotFound

    for c in containers.list_containers(all_=True):
        try:
            ctrs.append(api_shapes.container_summary(c, containers.inspect(c.id),
                                                     ctrinfo.container_networks(c),
                                                     usage.container_size.get(c.id)))
        except (NotFound, OSError):  # removed while we listed
            continue
    vols = [dict(v.as_docker(), UsageData={"Size": -1, "RefCount": -1})
            for v in volumes.list_volumes()]
    return json_response({"LayersSize": getattr(usage, "layers_size", 0), "Images": imgs,
                          "Containers": ctrs, "Volumes": vols, "BuildCache": []})


def auth(req: Request) -> Response:
    body = req.json({}) or {}
    user, password = body.get("username"), body.get("password")
    if not user or not password:
        raise ApiError(400, "username and password are required")

    engine("rootless.engine.images:login", body.get("serveraddress") or None, user, password)
    return json_response({"Status": "Login Succeeded", "IdentityToken": ""})

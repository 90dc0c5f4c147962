"""Volume endpoints: list, create, inspect, delete, prune."""

from __future__ import annotations

from rootless.api.forker import call as engine
from rootless.api.protocol import ApiError, Request, Response, json_response, no_content


def list_(req: Request) -> Response:
    from rootless.engine import volumes

    vols = volumes.list_volumes(req.filters() or None)
    return json_response({"Volumes": [v.as_docker() for v in vols], "Warnings": []})


def create(req: Request) -> Response:
    from rootless.engine import volumes

    body = req.json({}) or {}
    if (body.get("Driver") or "local") != "local":
        raise ApiError(400, f"volume driver {body['Driver']!r} is not supported: rl has the "
                       "local driver only")
    if body.get("DriverOpts"):
        raise ApiError(400, "DriverOpts are not supported by rl's local volumes (no mount "
                       "options)")
    name = body.get("Name") or None
    if name:
        try:  # Docker: creating an existing volume gives it back
            return json_response(volumes.inspect(name), 201)
        except Exception:
            pass
    vol = engine("rootless.engine.volumes:create", name, labels=body.get("Labels") or {})
    return json_response(vol.as_docker(), 201)


def inspect(req: Request) -> Response:
    from rootless.engine import volumes

    return json_response(volumes.inspect(req.params["name"]))


def delete(req: Request) -> Response:
    from rootless.engine import volumes

    volumes.inspect(req.params["name"])  # 404 even with force, as Docker
    engine("rootless.engine.volumes:remove", [req.params["name"]], force=req.qbool("force"))
    return no_content()


def prune(req: Request) -> Response:

    f = req.filters()
    all_ = f.pop("all", ["false"])[-1].lower() in ("1", "true")
    res = engine("rootless.engine.system:prune_volumes", all_volumes=all_, filters=f or None)
    return json_response({"VolumesDeleted": res.volumes or None,
                          "SpaceReclaimed": res.reclaimed})

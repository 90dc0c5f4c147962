"""Network endpoints: list, create, inspect, delete, connect, disconnect, prune."""

from __future__ import annotations

from rootless.api.forker import call as engine
from rootless.api.protocol import ApiError, Request, Response, json_response, no_content


def list_(req: Request) -> Response:
    from rootless.engine import filters, networks

    nets = networks.list_networks()
    f = req.filters()
    if f:
        nets = filters.networks(nets, f)
    return json_response([n.to_inspect() for n in nets])


def create(req: Request) -> Response:
    from rootless.engine import networks

    body = req.json({}) or {}
    name = body.get("Name")
    if not name:
        raise ApiError(400, "Name is required")
    if (body.get("Driver") or "bridge") != "bridge":
        raise ApiError(400, f"network driver {body['Driver']!r} is not supported: rl makes "
                       "bridge networks")
    for key in ("EnableIPv6", "Attachable", "Ingress", "ConfigOnly", "Scope", "ConfigFrom",
                "Options"):
        v = body.get(key)
        if v and not (key == "Scope" and v == "local"):
            raise ApiError(400, f"{key} is not supported by rl's networks (leave it unset)")
    subnet = gateway = None
    ipam = body.get("IPAM") or {}
    configs = ipam.get("Config") or []
    if len(configs) > 1:
        raise ApiError(400, "rl networks take one IPAM config (one subnet)")
    if configs:
        subnet, gateway = configs[0].get("Subnet") or None, configs[0].get("Gateway") or None
        extra = {k for k, v in configs[0].items() if v and k not in ("Subnet", "Gateway")}
        if extra:
            raise ApiError(400, f"IPAM.Config.{sorted(extra)[0]} is not supported by rl")
    try:
        existing = networks.inspect(name)
    except Exception:
        existing = None
    if existing is not None:
        raise ApiError(409, f"network with name {name} already exists")
    net = engine("rootless.engine.networks:create", name, subnet=subnet, gateway=gateway,
                 labels=body.get("Labels") or {}, internal=bool(body.get("Internal")))
    return json_response({"Id": net.id, "Warning": ""}, 201)


def inspect(req: Request) -> Response:
    from rootless.engine import networks

    return json_response(networks.inspect(req.params["id"]))


def delete(req: Request) -> Response:

    engine("rootless.engine.networks:remove", req.params["id"])
    return no_content()


def connect(req: Request) -> Response:

    body = req.json({}) or {}
    ctr = body.get("Container")
    if not ctr:
        raise ApiError(400, "Container is required")
    ep = body.get("EndpointConfig") or {}
    for k, v in ep.items():
        if v and k not in ("Aliases", "NetworkID", "EndpointID", "DNSNames"):
            raise ApiError(400, f"EndpointConfig.{k} is not supported by rl (leave it unset)")
    engine("rootless.engine.netconnect:connect", req.params["id"], ctr,
           aliases=ep.get("Aliases") or None)
    return Response(200, b"", content_type="")


def disconnect(req: Request) -> Response:

    body = req.json({}) or {}
    ctr = body.get("Container")
    if not ctr:
        raise ApiError(400, "Container is required")
    engine("rootless.engine.netconnect:disconnect", req.params["id"], ctr)
    return Response(200, b"", content_type="")


def prune(req: Request) -> Response:

    res = engine("rootless.engine.system:prune_networks", req.filters() or None)
    return json_response({"NetworksDeleted": res.networks or None})

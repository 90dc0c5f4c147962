"""Image endpoints: list, create (pull or import), inspect, history, tag, delete, push,
get/load (save/load archives), prune, /build."""

from __future__ import annotations

import base64
import json
import os

from rootless.api.forker import call as engine
from rootless.api.protocol import ApiError, Request, Response, json_lines, json_response


def _name(req: Request) -> str:
    return req.params["name"]


def list_(req: Request) -> Response:
    from rootless.engine import images
    from rootless.format import api_shapes

    f = req.filters()
    ref = None
    if "reference" in f and len(f["reference"]) == 1:
        ref = f.pop("reference")[0]
    recs = images.list_images(ref, all_images=req.qbool("all"), filters=f or None)
    return json_response([api_shapes.image_summary(r) for r in recs])


def _registry_auth(req: Request) -> dict:
    """X-Registry-Auth: base64url JSON {username, password, serveraddress} (may be {})."""
    raw = req.headers.get("x-registry-auth", "").strip()
    if not raw:
        return {}
    try:
        doc = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except ValueError:
        raise ApiError(400, "X-Registry-Auth is not base64 JSON") from None
    return doc if isinstance(doc, dict) else {}


def _with_auth(req: Request) -> tuple[str, str] | None:
    """X-Registry-Auth's credentials. An identity token (an OAuth2 refresh token from a
    client's login at a registry's token service) is returned, (serveraddress, token),
    for the engine call to use for this request only. A username and password are
    checked and stored as `rl login` does (the engine reads stored credentials). A
    registrytoken (a bare bearer token, which rl cannot renew per scope) is refused with
    the fix."""
    auth = _registry_auth(req)
    if auth.get("identitytoken"):
        return (auth.get("serveraddress") or "", str(auth["identitytoken"]))
    if auth.get("username") or auth.get("password") or auth.get("registrytoken"):
        if auth.get("username") and auth.get("password"):

            engine("rootless.engine.images:login", auth.get("serveraddress") or None,
                   auth["username"], auth["password"])
            return None
        raise ApiError(400, "rl takes a username and password or an identity token in "
                       "X-Registry-Auth, not a registrytoken: run `rl login REGISTRY` once, "
                       "then pull without credentials")
    return None


def create(req: Request) -> Response:
    """POST /images/create: fromImage (pull) or fromSrc (import a rootfs tarball)."""

    src = req.q("fromSrc")
    if src is not None:
        return _import(req, src)
    image = req.q("fromImage")
    if not image:
        raise ApiError(400, "fromImage or fromSrc is required")
    tag = req.q("tag") or ""
    if tag and "@" not in image:
        image = f"{image}@{tag}" if tag.startswith("sha256:") else f"{image}:{tag}"
    identity = _with_auth(req)
    # streamed: the engine's progress events become Docker's lines as they come; an
    # error after the head is an {"error"} line, as Docker's
    from rootless.api.containers import pipe_stream

    return pipe_stream(req, "rootless.api.calls:pull", image, req.q("platform") or None,
                       identity, content_type="application/json")


def _import(req: Request, src: str) -> Response:

    if src != "-":
        raise ApiError(400, "fromSrc takes `-` (the tarball as the request body); rl does "
                       "not fetch URLs here")
    if not req.body_file:
        raise ApiError(400, "the request has no tarball")
    name = req.q("repo")
    if name and req.q("tag"):
        name = f"{name}:{req.q('tag')}"
    image_id = engine("rootless.engine.ship:import_", req.body_file, name or None,
                      req.q("message") or None)
    return Response(200, b"".join(json_lines([{"status": image_id}])))


def inspect(req: Request) -> Response:
    from rootless.engine import images
    from rootless.format import api_shapes

    return json_response(api_shapes.image_inspect(images.inspect(_name(req))))


def history(req: Request) -> Response:
    from rootless.engine import ship
    from rootless.format.docker_shapes import parse_time

    entries = ship.history(_name(req))
    out = []
    for i, e in enumerate(entries):
        out.append({"Id": e["id"], "Created": int(parse_time(e.get("created")) or 0),
                    "CreatedBy": e.get("created_by", ""), "Size": e.get("size", 0),
                    "Comment": e.get("comment", ""), "Tags": None if i else []})
    return json_response(out)


def tag(req: Request) -> Response:

    repo = req.q("repo")
    if not repo:
        raise ApiError(400, "repo is required")
    target = f"{repo}:{req.q('tag')}" if req.q("tag") else repo
    engine("rootless.engine.images:tag", _name(req), target)
    return Response(201, b"", content_type="")


def delete(req: Request) -> Response:

    res = engine("rootless.engine.images:remove", [_name(req)], force=req.qbool("force"))
    return json_response([{"Untagged": n} for n in res.untagged] +
                         [{"Deleted": i} for i in res.deleted])


def push(req: Request) -> Response:

    name = _name(req)
    if req.q("tag"):
        name = f"{name}:{req.q('tag')}"
    identity = _with_auth(req)
    res = engine("rootless.api.calls:push", name, identity)
    tag = name.rpartition(":")[2] if ":" in name.rpartition("/")[2] else "latest"
    lines = [{"status": f"The push refers to repository [{res.destination}]"},
             {"status": f"{tag}: digest: {res.digest} size: 0"},
             {"progressDetail": {}, "aux": {"Tag": tag, "Digest": res.digest, "Size": 0}}]
    return Response(200, b"".join(json_lines(lines)))


def _save_stream(names: list[str], req: Request):
    """The docker-archive of `names`, written by ship.save in a worker into a pipe."""
    from rootless.api.containers import pipe_stream
    from rootless.engine import images

    for n in names:
        images.get_image(n)  # 404 before the answer starts
    return pipe_stream(req, "rootless.api.calls:save", names)


def get_one(req: Request) -> Response:
    return _save_stream([_name(req)], req)


def get_many(req: Request) -> Response:
    names = req.query.get("names") or []
    if not names:
        raise ApiError(400, "names is required")
    return _save_stream(names, req)


def load(req: Request) -> Response:

    if not req.body_file:
        raise ApiError(400, "the request has no archive")
    loaded = engine("rootless.engine.ship:load", req.body_file)
    lines = []
    for image_id, names in loaded:
        if names:
            lines += [{"stream": f"Loaded image: {n}\n"} for n in names]
        else:
            lines.append({"stream": f"Loaded image ID: {image_id}\n"})
    return Response(200, b"".join(json_lines(lines)))


def prune(req: Request) -> Response:

    f = req.filters()
    dangling = f.pop("dangling", ["true"])
    all_images = dangling and dangling[-1].lower() in ("false", "0")
    res = engine("rootless.engine.system:prune_images", all_images=all_images,
                 filters=f or None)
    return json_response({"ImagesDeleted": [{"Deleted": i} for i in res.images] or None,
                          "SpaceReclaimed": res.reclaimed})


def build_prune(req: Request) -> Response:

    res = engine("rootless.engine.system:prune_build_cache", all_cache=req.qbool("all"))
    return json_response({"CachesDeleted": res.cache or None,
                          "SpaceReclaimed": res.reclaimed})


def distribution(req: Request) -> Response:
    raise ApiError(501, "rl does not serve /distribution: pull the image instead")


# -- build ----------------------------------------------------------------------------------

def _json_query(req: Request, name: str) -> dict:
    raw = req.q(name)
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ApiError(400, f"{name} is not JSON: {raw!r}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, f"{name} is not a JSON object")
    return {k: ("" if v is None else str(v)) for k, v in doc.items()}


_REFUSED_BUILD = {"remote": "a remote context (send the context as the request body)",
                  "memory": "--memory", "cpusetcpus": "--cpuset-cpus",
                  "cpuquota": "--cpu-quota", "cpushares": "--cpu-shares",
                  "squash": "--squash", "outputs": "--output (BuildKit)",
                  "session": "a BuildKit session"}


def build(req: Request) -> Response:
    """POST /build: the body is the context as a tar (maybe gzip'd); streamed answers
    {"stream": ...} lines and then {"aux": {"ID": ...}}."""
    from rootless.engine.build import BuildOptions

    for key, what in _REFUSED_BUILD.items():
        v = req.q(key)
        if v not in (None, "", "0", "false"):
            raise ApiError(400, f"rl's builder does not support {what} (the {key} parameter)")
    if req.q("version") == "2":
        raise ApiError(400, "rl does not speak BuildKit's session protocol: build with the "
                       "classic builder (DOCKER_BUILDKIT=0) or run `rl build`")
    tags = [t for t in req.query.get("t", []) if t]
    network = req.q("networkmode") or "default"
    if network == "bridge":
        network = "default"
    opts = BuildOptions(
        context="", dockerfile=req.q("dockerfile") or None, tags=tags,
        build_args=_json_query(req, "buildargs"), target=req.q("target") or None,
        no_cache=req.qbool("nocache"), labels=_json_query(req, "labels"), quiet=True,
        platform=req.q("platform") or None, network=network, pull=req.qbool("pull"),
        add_hosts=[f"{k}:{v}" for k, v in _json_query(req, "extrahosts").items()]
        if (req.q("extrahosts") or "").startswith("{") else
        [h for h in (req.q("extrahosts") or "").split(",") if h])
    cache_from = req.q("cachefrom")
    if cache_from:
        try:
            opts.cache_from = [str(x) for x in json.loads(cache_from)]
        except (ValueError, TypeError):
            raise ApiError(400, "cachefrom is not a JSON list") from None
    if not req.body_file:
        raise ApiError(400, "the request has no build context (a tar as the body)")
    context = _unpack_context(req.body_file)
    quiet = req.qbool("q")
    if opts.dockerfile and not os.path.isabs(opts.dockerfile):
        opts.dockerfile = os.path.join(context, opts.dockerfile)
    opts.context = context
    from rootless.api.containers import pipe_stream

    resp = pipe_stream(req, "rootless.api.calls:build", opts, tags, quiet,
                       content_type="application/json")
    inner = resp.body

    def gen():
        import shutil

        try:
            yield from inner
        finally:
            shutil.rmtree(context, ignore_errors=True)

    resp.body = gen()
    return resp


def _unpack_context(tar_path: str) -> str:
    """The context tar in a fresh directory of the store's tmp area, extracted as `rl cp`
    extracts (runtime/copying.py: no absolute names, `..`, writes through links, devices)."""
    import tarfile
    import tempfile

    from rootless.engine import ship
    from rootless.errors import RlError
    from rootless.runtime import copying

    # named after this process, as the store's TempArea names its work: a build's sweep
    # of the tmp area removes what dead processes left there, and kept nothing else
    dest = tempfile.mkdtemp(prefix=f"{os.getpid()}-api-build-", dir=ship.data_tmp())
    try:
        copying.extract_untrusted(tar_path, dest)
    except (tarfile.TarError, OSError, RlError) as exc:
        import shutil

        shutil.rmtree(dest, ignore_errors=True)
        raise ApiError(400, f"the build context cannot be used: {exc}") from None
    return dest

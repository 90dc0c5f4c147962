"""Container endpoints: create, list, inspect, start/stop/restart/kill, wait, delete, logs,
top, changes, export, stats, rename, update, archive, attach, resize, prune."""

from __future__ import annotations

import base64
import json
import os
import threading
import time

from rootless.api.forker import FD
from rootless.api.forker import call as engine
from rootless.api.protocol import (
    ApiError,
    Request,
    Response,
    frame,
    json_response,
    no_content,
)


def _id(req: Request) -> str:
    return req.params["id"]


def _lookup(ref: str):
    from rootless.engine import containers

    return containers.lookup(ref)


def create(req: Request) -> Response:
    from rootless.api import createbody
    from rootless.api.forker import Sink

    opts = createbody.to_run_options(req.json({}), req.q("name"))
    warnings = Sink()  # the engine's warn= (a single mapped id without a subuid range)
    c = engine("rootless.engine.containers:create", opts, warn=warnings)
    return json_response({"Id": c.id, "Warnings": warnings.said}, 201)


def list_(req: Request) -> Response:
    from rootless.engine import containers
    from rootless.format import api_shapes

    limit = req.qint("limit")
    out = []
    # the engine's ps rows (engine/ctrinfo.py PsRow), as `rl ps` lists them
    for row in containers.ps_rows(req.qbool("all"), req.filters() or None,
                                  limit if limit and limit > 0 else None,
                                  size=req.qbool("size")):
        # the parts of the inspect document a summary shows, not all of it (a list is
        # what many clients poll)
        try:
            doc = {"NetworkSettings": row.network_settings(), "Mounts": row.mounts()}
            names = row.networks()
        except OSError:  # removed while we listed
            continue
        out.append(api_shapes.container_summary(row.container, doc, names, row.size))
    return json_response(out)


def inspect(req: Request) -> Response:
    from rootless.engine import containers
    from rootless.format import api_shapes

    doc = api_shapes.container_inspect(containers.inspect(_id(req)))
    if req.qbool("size"):
        doc["SizeRw"] = containers.upper_size(_lookup(_id(req)))
    return json_response(doc)


def start(req: Request) -> Response:

    c = _lookup(_id(req))
    if c.state in ("running", "restarting"):
        return no_content(304)
    # In the forker's single-threaded worker, where the engine forks the monitor (from
    # this threaded process it would start a fresh interpreter). Attaches waiting here
    # for this start go along as fds: the monitor has them before the container runs,
    # so they lose no output (a --rm container may be gone before they could connect).
    from rootless.engine import running

    # a client that attached just before (docker run) got its 101 before its attach
    # registered with the engine: let it, so that the monitor gets its socket
    deadline = time.monotonic() + 5
    while _ATTACHING.get(c.id, 0) > running.pending_count(c.id) and \
            time.monotonic() < deadline:
        time.sleep(0.005)
    waiting = running.take_pending(c.id)
    try:
        engine("rootless.api.calls:start", c.id, *(FD(i) for i in range(len(waiting))),
               fds=[sock.fileno() for sock, _ in waiting])
    finally:
        for sock, ev in waiting:
            sock.close()
            ev.set()
    return no_content()


def _timeout(req: Request) -> int | None:
    t = req.qint("t")
    return req.qint("timeout") if t is None else t


def stop(req: Request) -> Response:

    c = _lookup(_id(req))
    if c.state not in ("running", "restarting"):
        return no_content(304)
    engine("rootless.engine.containers:stop", c.id, _timeout(req), req.q("signal") or None)
    return no_content()


def restart(req: Request) -> Response:

    engine("rootless.engine.containers:restart", _id(req), _timeout(req),
           req.q("signal") or None)
    return no_content()


def kill(req: Request) -> Response:

    c = _lookup(_id(req))
    if c.state != "running":
        raise ApiError(409, f"cannot kill container {c.name}: it is not running")
    engine("rootless.engine.containers:kill", c.id, req.q("signal") or "KILL")
    return no_content()


def wait(req: Request) -> Response:
    """The answer's head goes out at once (clients send this before the start, and wait
    for the head); the body when the condition is met (engine/waitcond.py)."""
    from rootless.engine import containers, waitcond

    condition = req.q("condition") or "not-running"
    if condition not in waitcond.CONDITIONS:
        raise ApiError(400, f"invalid condition {condition!r}: use not-running, next-exit "
                       "or removed")
    c = _lookup(_id(req))

    def gen():
        code = containers.wait(c.id, condition, gone=req.gone)
        if code is not None:
            yield json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n"

    return Response(200, gen(), streamed=True)


def delete(req: Request) -> Response:

    c = _lookup(_id(req))
    if c.state == "running" and not req.qbool("force"):
        raise ApiError(409, f"cannot remove container {c.name}: it is running (stop it "
                       "first, or force)")
    engine("rootless.engine.containers:remove", c.id, force=req.qbool("force"),
           volumes=req.qbool("v"))
    return no_content()


def prune(req: Request) -> Response:

    res = engine("rootless.engine.system:prune_containers", req.filters() or None)
    return json_response({"ContainersDeleted": res.containers or None,
                          "SpaceReclaimed": res.reclaimed})


def rename(req: Request) -> Response:

    name = req.q("name")
    if not name:
        raise ApiError(400, "name is required")
    engine("rootless.engine.containers:rename", _id(req), name)
    return no_content()


def update(req: Request) -> Response:
    from rootless.api.createbody import is_unset

    body = req.json({}) or {}
    restart = None
    for k, v in body.items():
        if k == "RestartPolicy":
            name = (v or {}).get("Name") or "no"
            count = (v or {}).get("MaximumRetryCount") or 0
            restart = f"{name}:{count}" if name == "on-failure" and count else name
        elif not is_unset(v):
            raise ApiError(400, f"{k} cannot be updated by rl (no cgroup controllers here); "
                           "only RestartPolicy")
    engine("rootless.engine.containers:update", _id(req), restart=restart)
    return json_response({"Warnings": []})


def pause(req: Request) -> Response:
    """The engine's pause: cgroup.freeze where delegated, refused with the reason elsewhere."""
    engine("rootless.engine.containers:pause", _id(req),
           unpause=req.path.rstrip("/").endswith("/unpause"))
    return no_content()


# -- output -------------------------------------------------------------------------------

def _tty(c) -> bool:
    try:
        return bool(c.spec()["process"].get("terminal"))
    except (OSError, KeyError, ValueError):
        return bool(c.options.get("tty"))


def _since(text: str | None) -> float | None:
    if not text or text == "0":
        return None
    try:
        return float(text)
    except ValueError:
        raise ApiError(400, f"invalid since/until {text!r}: Unix seconds expected") from None


def logs(req: Request) -> Response:
    from rootless.engine import containers

    want_out, want_err = req.qbool("stdout"), req.qbool("stderr")
    if not (want_out or want_err):
        raise ApiError(400, "Bad parameters: you must choose at least one stream")
    c = _lookup(_id(req))
    tail = req.q("tail") or "all"
    if tail != "all":
        try:
            tail_n: int | None = int(tail)
        except ValueError:
            raise ApiError(400, f"invalid tail {tail!r}: a number or all") from None
        tail_n = None if tail_n < 0 else tail_n
    else:
        tail_n = None
    follow = req.qbool("follow")
    records = containers.logs(c.id, follow=follow, tail=tail_n, since=_since(req.q("since")),
                              until=_since(req.q("until")))
    tty = _tty(c)
    stamps = req.qbool("timestamps")

    def gen():
        at_line_start = {1: True, 2: True}
        for ts, stream, data in records:
            if req.gone.is_set():
                return
            n = 2 if stream in ("stderr", 2, "2") else 1
            if (n == 1 and not want_out) or (n == 2 and not want_err):
                continue
            if stamps:  # each line of the record gets the record's time
                lines = data.splitlines(keepends=True)
                out = b""
                for line in lines:
                    if at_line_start[n]:
                        out += (ts if isinstance(ts, bytes) else str(ts).encode()) + b" "
                    out += line
                    at_line_start[n] = line.endswith(b"\n")
                data = out
            yield data if tty else frame(n, data)

    content = "application/vnd.docker.raw-stream" if tty else \
        "application/vnd.docker.multiplexed-stream"
    return Response(200, gen(), content_type=content, streamed=follow)


def top(req: Request) -> Response:
    from rootless.engine import containers

    rows = containers.top(_id(req))
    titles = ["UID", "PID", "TIME", "CMD"]
    return json_response({"Titles": titles,
                          "Processes": [[str(r[t]) for t in titles] for r in rows]})


def changes(req: Request) -> Response:

    kinds = {"C": 0, "A": 1, "D": 2}
    items = engine("rootless.engine.changes:container_changes", _id(req))
    return json_response([{"Path": p, "Kind": kinds.get(k, 0)} for k, p in items] or None)


def pipe_stream(req: Request, fn_path: str, *args,
                content_type: str = "application/x-tar") -> Response:
    """A body an engine call writes (a tar): fn_path(*args, fd) runs in a worker of the
    forker, a thread waits for it, and the answer reads the pipe one chunk at a time."""
    r, w = os.pipe()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            engine(fn_path, *args, FD(0), fds=[w])
        except BaseException as exc:
            errors.append(exc)
        finally:
            os.close(w)

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def gen():
        with os.fdopen(r, "rb") as f:
            while not req.gone.is_set():
                chunk = f.read1(1 << 20)  # what is there: progress lines stream
                if not chunk:
                    break
                yield chunk
        t.join()
        if errors:
            raise errors[0]

    return Response(200, gen(), content_type=content_type)


def export(req: Request) -> Response:
    c = _lookup(_id(req))
    return pipe_stream(req, "rootless.api.calls:export", c.id)


# -- archive ------------------------------------------------------------------------------

def _path(req: Request) -> str:
    path = req.q("path")
    if not path:
        raise ApiError(400, "path is required")
    return path


def _stat_header(doc: dict) -> tuple[str, str]:
    raw = json.dumps(doc).encode()
    return ("X-Docker-Container-Path-Stat", base64.b64encode(raw).decode())


def archive_head(req: Request) -> Response:
    doc = engine("rootless.engine.archive:stat", _id(req), _path(req))
    return Response(200, b"", headers=[_stat_header(doc)])


def archive_get(req: Request) -> Response:
    ref, path = _id(req), _path(req)
    doc = engine("rootless.engine.archive:stat", ref, path)  # 404 before the answer starts
    resp = pipe_stream(req, "rootless.api.calls:archive_read", ref, path)
    resp.headers.append(_stat_header(doc))
    return resp


def archive_put(req: Request) -> Response:
    ref, path = _id(req), _path(req)
    doc = engine("rootless.engine.archive:stat", ref, path)
    if not doc["mode"] & (1 << 31):
        raise ApiError(400, f"{path} is not a directory in the container")
    if not req.body_file:
        raise ApiError(400, "the request has no tar body")
    engine("rootless.engine.archive:write", ref, path, req.body_file)
    return Response(200, b"", content_type="")


# -- stats --------------------------------------------------------------------------------

def _stats_doc(c, s, prev, cpu_pct_ticks: tuple[int, int] | None, read: float,
               preread: float) -> dict:
    from rootless.engine import stats as engine_stats

    tick = os.sysconf("SC_CLK_TCK")
    ncpu = os.cpu_count() or 1

    def iso(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
            f".{int(t % 1 * 1e9):09d}Z"

    def cpu(sample, t: float) -> dict:
        return {"cpu_usage": {"total_usage": sample.cpu_ticks * 1_000_000_000 // tick
                              if sample else 0, "usage_in_kernelmode": 0,
                              "usage_in_usermode": 0},
                "system_cpu_usage": int(t * 1e9) * ncpu, "online_cpus": ncpu,
                "throttling_data": {"periods": 0, "throttled_periods": 0,
                                    "throttled_time": 0}}

    return {
        "read": iso(read), "preread": iso(preread) if prev else "0001-01-01T00:00:00Z",
        "name": "/" + c.name, "id": c.id,
        "pids_stats": {"current": s.pids},
        "cpu_stats": cpu(s, read), "precpu_stats": cpu(prev, preread) if prev else
        {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": ncpu,
         "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "memory_stats": {"usage": s.mem, "limit": engine_stats.mem_total(), "stats": {}},
        "networks": {"eth0": {"rx_bytes": s.net_rx, "tx_bytes": s.net_tx, "rx_packets": 0,
                              "tx_packets": 0, "rx_errors": 0, "tx_errors": 0,
                              "rx_dropped": 0, "tx_dropped": 0}},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": s.blk_read},
            {"major": 0, "minor": 0, "op": "write", "value": s.blk_write}]},
        "storage_stats": {},
    }


def stats(req: Request) -> Response:
    """From /proc (no cgroups here): CPU as ticks of the container's processes, against
    wall time times the CPUs, which is what clients divide."""
    from rootless.engine import stats as engine_stats
    from rootless.engine.stats import Sample

    c = _lookup(_id(req))
    stream = req.qbool("stream", True) and not req.qbool("one-shot")

    def one(prev, preread):
        cur = _lookup(c.id)
        s = engine_stats.sample(cur.pid) if cur.state == "running" and cur.pid else Sample()
        now = time.time()
        return s, now, json.dumps(_stats_doc(cur, s, prev, None, now, preread)).encode() + b"\n"

    if not stream:
        prev, t0, _ = one(None, 0.0)
        if not req.qbool("one-shot"):  # Docker samples twice, a second apart
            time.sleep(1.0)
            _, _, doc = one(prev, t0)
        else:
            _, _, doc = one(None, 0.0)
        return Response(200, doc)

    def gen():
        prev, t0 = None, 0.0
        while not req.gone.is_set():
            s, t, doc = one(prev, t0)
            yield doc
            prev, t0 = s, t
            if _lookup(c.id).state != "running":
                return
            time.sleep(1.0)

    return Response(200, gen(), streamed=True)


# -- attach ------------------------------------------------------------------------------

def attach(req: Request) -> Response:
    """The hijacked connection carries the container's stdin/stdout/stderr until it
    exits (or the client detaches, or goes away)."""
    from rootless.engine import containers
    from rootless.engine.streams import parse_detach_keys

    c = _lookup(_id(req))
    keys = req.q("detachKeys")
    parse_detach_keys(keys)  # a bad value: a 400 before the upgrade
    if c.state not in ("created", "running", "restarting"):
        raise ApiError(409, f"container {c.name} is not running: you cannot attach to a "
                       "stopped container, start it first")
    tty = _tty(c)
    want = {k: req.qbool(k) for k in ("stdin", "stdout", "stderr")}
    logs, stream = req.qbool("logs"), req.qbool("stream")

    created = c.state == "created"
    if created:  # counted until the engine has it (see start)
        with _ATTACH_LOCK:
            _ATTACHING[c.id] = _ATTACHING.get(c.id, 0) + 1

    def run(sock, pending: bytes) -> None:
        from rootless.api import hijack

        streams = hijack.streams_for(sock, pending, tty=tty, **want)
        try:
            code = containers.attach(c.id, streams, logs=logs, stream=stream or not logs,
                                     detach_keys=keys)
            if code is not None:  # wakes the waits on it (engine/waitcond.py)
                from rootless.engine import waitcond

                waitcond.note_exit(c.id, code)
        finally:
            hijack.finish(sock)
            if created:
                with _ATTACH_LOCK:
                    _ATTACHING[c.id] -= 1
                    if not _ATTACHING[c.id]:
                        del _ATTACHING[c.id]

    return Response(hijack=run)


# attach requests to created containers, per container id, from their handler until
# their session ends (a start waits for them to be registered with the engine)
_ATTACHING: dict[str, int] = {}
_ATTACH_LOCK = threading.Lock()


def resize(req: Request) -> Response:
    from rootless.engine import containers

    h, w = req.qint("h"), req.qint("w")
    if not h or not w:
        raise ApiError(400, "h and w are required")
    containers.resize(_id(req), h, w)
    return Response(200, b"", content_type="")

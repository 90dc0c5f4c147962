"""Exec endpoints: create (kept in this service's memory, as Docker keeps exec configs in
the daemon), start, inspect, resize."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from rootless.api.protocol import ApiError, Request, Response, json_response


@dataclass
class Exec:
    id: str
    container_id: str
    cmd: list[str]
    tty: bool = False
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    user: str | None = None
    workdir: str | None = None
    env: list[str] = field(default_factory=list)
    privileged: bool = False
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    handle: object = None  # the engine's handle for exec_resize
    started: threading.Event = field(default_factory=threading.Event)


_EXECS: dict[str, Exec] = {}
_LOCK = threading.Lock()


def _get(eid: str) -> Exec:
    with _LOCK:
        e = _EXECS.get(eid)
    if e is None:
        raise ApiError(404, f"No such exec instance: {eid}")
    return e


def create(req: Request) -> Response:
    from rootless.engine import containers

    body = req.json({}) or {}
    c = containers.lookup(req.params["id"])
    if c.state != "running":
        raise ApiError(409, f"container {c.name} is not running")
    cmd = body.get("Cmd")
    if not cmd or not isinstance(cmd, list):
        raise ApiError(400, "Cmd is required (a list)")
    if body.pop("DetachKeys", None):
        # the exec's process is a child of the service's worker, which cannot hand it over
        # mid-stream; the CLI's `rl exec -it` detaches (rootless/engine/execs.py)
        raise ApiError(400, "DetachKeys is not supported for exec through the API: "
                            "leave --detach-keys out (or use rl exec -it, which detaches)")
    body.pop("ConsoleSize", None)
    e = Exec(os.urandom(32).hex(), c.id, [str(x) for x in cmd], tty=bool(body.get("Tty")),
             stdin=bool(body.get("AttachStdin")), stdout=bool(body.get("AttachStdout", True)),
             stderr=bool(body.get("AttachStderr", True)), user=body.get("User") or None,
             workdir=body.get("WorkingDir") or None, env=list(body.get("Env") or []),
             privileged=bool(body.get("Privileged")))
    with _LOCK:
        _EXECS[e.id] = e
    return json_response({"Id": e.id}, 201)


def inspect(req: Request) -> Response:
    e = _get(req.params["id"])
    return json_response({
        "ID": e.id, "ContainerID": e.container_id, "Running": e.running,
        "ExitCode": e.exit_code, "Pid": e.pid, "OpenStdin": e.stdin, "OpenStdout": e.stdout,
        "OpenStderr": e.stderr, "CanRemove": False, "DetachKeys": "",
        "ProcessConfig": {"tty": e.tty, "entrypoint": e.cmd[0], "arguments": e.cmd[1:],
                          "privileged": e.privileged, "user": e.user or ""}})


def _run(e: Exec, streams) -> None:
    from rootless.engine import containers

    def started(handle) -> None:
        e.handle = handle
        e.pid = getattr(handle, "pid", 0) or 0
        e.running = True
        e.started.set()

    try:
        code = containers.exec_(e.container_id, e.cmd, streams=streams, tty=e.tty,
                                interactive=e.stdin, user=e.user, workdir=e.workdir,
                                env=e.env, privileged=e.privileged, on_started=started)
        e.exit_code = code if code is not None else e.exit_code
    except Exception:
        if e.exit_code is None:
            e.exit_code = 126
        raise
    finally:
        e.running = False
        e.started.set()


def start(req: Request) -> Response:
    e = _get(req.params["id"])
    if e.running or e.exit_code is not None:
        raise ApiError(409, f"exec {e.id} has already been started")
    body = req.json({}) or {}
    if body.get("Tty") is not None:
        e.tty = bool(body["Tty"])
    if body.get("Detach"):
        t = threading.Thread(target=_run_logged, args=(e,), daemon=True)
        t.start()
        e.started.wait(30)
        return Response(200, b"", content_type="")

    def run(sock, pending: bytes) -> None:
        from rootless.api import hijack

        streams = hijack.streams_for(sock, pending, tty=e.tty, stdin=e.stdin,
                                     stdout=e.stdout, stderr=e.stderr)
        try:
            _run(e, streams)
        finally:
            hijack.finish(sock)

    return Response(hijack=run)


def _run_logged(e: Exec) -> None:
    try:
        _run(e, None)
    except Exception as exc:
        from rootless.api.server import log

        log(f"exec {e.id[:12]} in {e.container_id[:12]}: {exc}")


def resize(req: Request) -> Response:
    from rootless.engine import containers

    e = _get(req.params["id"])
    h, w = req.qint("h"), req.qint("w")
    if not h or not w:
        raise ApiError(400, "h and w are required")
    if e.handle is not None:
        containers.exec_resize(e.handle, h, w)
    return Response(200, b"", content_type="")

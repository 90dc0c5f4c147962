"""Thin adapters run in the forker's workers (rootless/api/forker.py) where an engine
call writes a stream to a file object: the worker gets the fd, the engine a file."""

from __future__ import annotations

import os


def archive_read(ref: str, path: str, fd: int) -> None:
    from rootless.engine import archive

    with os.fdopen(fd, "wb") as out:
        archive.read(ref, path, out)


def export(ref: str, fd: int) -> None:
    from rootless.engine import ship

    try:
        ship.export(ref, fd)
    finally:
        os.close(fd)


def save(names: list[str], fd: int) -> None:
    from rootless.engine import ship

    with os.fdopen(fd, "wb") as out:
        ship.save(names, out)


def start(cid: str, *fds: int) -> None:
    """A detached start from the forker's single-threaded worker (the engine forks the
    monitor: no fresh interpreter), with the fds of attach clients waiting in the
    service."""
    import socket

    from rootless.engine import containers

    socks = [socket.socket(fileno=fd) for fd in fds]
    try:
        containers.start(cid, attach_socks=socks)
    finally:
        for sock in socks:
            sock.close()
    from rootless.engine.running import warm_up

    warm_up()  # as `rl run` does after a container ran


class DockerProgress:
    """The engine's progress events (rootless/image/progress.py) as Docker's JSON
    progress messages, one line each, on `fd` (the copy's threads call it: a lock keeps
    lines whole)."""

    def __init__(self, fd: int) -> None:
        import threading

        self.fd = fd
        self.lock = threading.Lock()

    def write(self, doc: dict) -> None:
        import json

        data = json.dumps(doc).encode() + b"\r\n"
        with self.lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]

    def __call__(self, ev) -> None:
        short = ev.digest.partition(":")[2][:12] if ev.digest else ""
        if ev.kind == "message":
            self.write({"status": ev.text})
        elif ev.kind == "layer-start":
            self.write({"status": "Pulling fs layer", "progressDetail": {}, "id": short})
        elif ev.kind == "layer-advance":
            self.write({"status": "Downloading", "id": short,
                        "progressDetail": {"current": ev.current, "total": ev.total}})
        elif ev.kind == "layer-done":
            self.write({"status": "Already exists" if ev.status == "exists" else
                        "Pull complete", "progressDetail": {}, "id": short})
        elif ev.kind == "step":
            self.write({"stream": ev.text + "\n"})
        elif ev.kind == "output":
            self.write({"stream": ev.data.decode(errors="replace")})


def _identity(identity: tuple[str, str] | None):
    """The identity token X-Registry-Auth gave, for the engine calls made inside."""
    import contextlib

    if identity is None:
        return contextlib.nullcontext()
    from rootless.image import auth

    server, token = identity
    return auth.for_call(server or None, token)


def pull(image: str, platform: str | None, identity: tuple[str, str] | None,
         fd: int) -> None:
    """POST /images/create's stream: the engine's pull with Docker's progress lines."""
    from rootless.engine import images

    try:
        out = DockerProgress(fd)
        with _identity(identity):
            rec = images.pull(image, platform=platform, progress=out)
        out.write({"status": f"Digest: {rec.manifest_digest}"})
        out.write({"status": f"Status: Downloaded newer image for {image}"})
    finally:
        os.close(fd)


def push(name: str, identity: tuple[str, str] | None):
    """POST /images/{name}/push: the engine's push, with X-Registry-Auth's identity token."""
    from rootless.engine import ship

    with _identity(identity):
        return ship.push(name)


def build(opts, tags: list[str], quiet: bool, fd: int) -> None:
    """POST /build's stream: the steps and RUN output as {"stream"} lines, then the
    image id as {"aux": {"ID"}}."""
    from rootless.engine import build as engine_build

    try:
        out = DockerProgress(fd)
        if not quiet:
            opts.progress = out
        image_id = engine_build.build(opts)
        if not quiet:
            out.write({"stream": f"Successfully built {image_id.partition(':')[2][:12]}\n"})
            for t in tags:
                out.write({"stream": f"Successfully tagged {t}\n"})
        out.write({"aux": {"ID": image_id}})
        if quiet:
            out.write({"stream": image_id + "\n"})
    finally:
        os.close(fd)

"""`rl compose run`: a one-off container of a service (label com.docker.compose.oneoff=True,
name `<project>-<service>-run-<id>`), its dependencies brought up first unless --no-deps,
its ports published only with --service-ports or -p; the engine's run() attaches it to
this process's fds 0/1/2 (Streams), as `rl run` does."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from rootless.compose import convert
from rootless.compose import project as verbs

if TYPE_CHECKING:
    from rootless.engine.running import RunResult


def run(p, service: str, command: list[str], *, rm: bool, detach: bool, env: list[str],
        no_deps: bool, name: str | None, entrypoint: str | None, user: str | None,
        workdir: str | None, tty: bool, publish: list, service_ports: bool,
        on_started=None) -> RunResult:
    """`publish`: PortRequests (-p, parsed by the CLI). The engine's RunResult: the exit code (attached; 0 when the container was
    detached from) or, with `detach`, exit_code None. `on_started(id)`: the engine's
    hook, where a terminal front end puts its tty in raw mode."""
    from rootless.engine import containers as ctr
    from rootless.engine.running import RunResult
    from rootless.engine.streams import Streams

    svc = p.service(service)
    deps = [d for d in svc.get("depends_on") or {} if d in p.services]
    if deps and not no_deps:
        verbs.converge(p, deps)
        verbs.wait_for_dependencies(p, service)
    else:
        verbs.ensure_networks(p, [service])
        verbs.ensure_volumes(p, [service])
    image_id = verbs.ensure_images(p, [service], build=False, no_build=False, pull=None)[service]
    opts = convert.run_options(p, service, svc, 1, image_id=image_id, oneoff=True)
    opts.name = name or f"{p.name}-{service}-run-{os.urandom(6).hex()}"
    if command:
        opts.command = list(command)
    if entrypoint is not None:
        opts.entrypoint = entrypoint
    opts.env = opts.env + list(env)
    if user is not None:
        opts.user = user
    if workdir is not None:
        opts.workdir = workdir
    opts.publish = list(publish) + (convert.publish(svc) if service_ports else [])
    opts.restart = None  # a one-off never restarts, as docker compose's
    opts.rm, opts.detach = rm, detach
    opts.interactive, opts.tty = not detach, tty and not detach
    streams = Streams(0, 1, 2)  # this process's own terminal or pipes, as `rl run`
    if convert.extra_networks(p, service, svc):
        c = verbs._create(p, service, 1, image_id, oneoff=True, extra=vars(opts))
        if detach:
            ctr.start(c.id)
            return RunResult(c.id, None)
        code = ctr.start(c.id, attach=True, streams=streams, on_started=on_started)
        return RunResult(c.id, 0 if code is None else code)
    result = ctr.run(opts, streams, on_started=on_started, warn=verbs.warn)
    if not detach and result.exit_code is None:
        result.exit_code = 0  # detached from with the keys: as docker compose, 0
    return result

"""`rl compose run`: a one-off container of a service (label com.docker.compose.oneoff=True,
name `<project>-<service>-run-<id>`), its dependencies brought up first unless --no-deps,
its ports published only with --service-ports or -p; the engine's run() attaches it to
this process's fds 0/1/2 (Streams), as `rl run` does."""

from __future__ import annotations

import os

from rootless.compose import convert
from rootless.compose import project as verbs


def run(p, service: str, command: list[str], *, rm: bool, detach: bool, env: list[str],
        no_deps: bool, name: str | None, entrypoint: str | None, user: str | None,
        workdir: str | None, tty: bool, publish: list[str], service_ports: bool,
        on_started=None) -> int | str:
    """The exit code (attached) or the container id (detach). `on_started(id)`: the
    engine's hook, where a terminal front end puts its tty in raw mode."""
    from rootless.engine import containers as ctr
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
    opts.publish = list(publish) + ([convert._publish(x) for x in svc.get("ports") or []]
                                    if service_ports else [])
    opts.restart = None  # a one-off never restarts, as docker compose's
    opts.rm, opts.detach = rm, detach
    opts.interactive, opts.tty = not detach, tty and not detach
    streams = Streams(0, 1, 2)  # this process's own terminal or pipes, as `rl run`
    if convert.extra_networks(p, service, svc):
        c = verbs._create(p, service, 1, image_id, oneoff=True, extra=vars(opts))
        if detach:
            ctr.start(c.id)
            return c.id
        code = ctr.start(c.id, attach=True, streams=streams, on_started=on_started)
        return 0 if code is None else code
    result = ctr.run(opts, streams, on_started=on_started)
    if detach:
        return result.id
    return 0 if result.exit_code is None else result.exit_code

"""The verbs of `rl compose` as calls into the engine: converge (up, create), down, start,
stop, restart, kill, rm, ps, build, pull, push, run, exec, top, port, images.

Objects are found by docker compose's labels, never by name alone: containers by
com.docker.compose.project/.service/.oneoff (so `down` finds them after the file changed),
networks and volumes by com.docker.compose.project. Services start in dependency order
(graph.py), waiting for each dependency's condition; they stop in the reverse order.
"""

from __future__ import annotations

import contextlib
import sys
import time

from rootless.compose import convert, graph
from rootless.compose.convert import HASH, IMAGE, NUMBER, ONEOFF, PROJECT, SERVICE
from rootless.compose.errors import ComposeError
from rootless.errors import NotFound, RlError

POLL = 0.1  # seconds between looks at a dependency's state


def warn(text: str) -> None:
    """The engine's warnings, on stderr as the CLI shows them."""
    print(f"rl: warning: {text}", file=sys.stderr, flush=True)


def say(kind: str, name: str, action: str) -> None:
    """docker compose's progress line, on stderr."""
    print(f" {kind} {name}  {action}", file=sys.stderr, flush=True)


# -- finding the project's objects --------------------------------------------------------

def containers(project_name: str, services: list[str] | None = None, *,
               oneoff: bool = False, all_: bool = True) -> list:
    """The project's containers (of `services`), by label, ordered by service and number."""
    from rootless.engine import containers as ctr

    found = ctr.list_containers(all_=all_, filters={"label": [f"{PROJECT}={project_name}"]})
    out = [c for c in found if c.labels.get(ONEOFF, "False") == ("True" if oneoff else "False")
           and (services is None or c.labels.get(SERVICE) in services)]
    return sorted(out, key=lambda c: (c.labels.get(SERVICE, ""), _number(c), c.name))


def _number(c) -> int:
    try:
        return int(c.labels.get(NUMBER, "0"))
    except ValueError:
        return 0


def _by_order(project, conts: list, reverse: bool = False) -> list:
    """Containers in the services' dependency order (services unknown to the file last)."""
    rank = {s: i for i, s in enumerate(graph.order(project.services))}
    out = sorted(conts, key=lambda c: (rank.get(c.labels.get(SERVICE), len(rank)), _number(c)))
    return out[::-1] if reverse else out


def _targets(project, services: list[str] | None, with_deps: bool = True) -> list[str]:
    for s in services or []:
        project.service(s)  # an unknown or disabled service: one clear error
    if not services:
        return graph.order(project.services)
    if not with_deps:
        return [s for s in graph.order(project.services) if s in services]
    return graph.order(project.services, only=list(services))


# -- networks, volumes, images ------------------------------------------------------------

def _object_labels(project, kind: str, key: str) -> dict[str, str]:
    return {PROJECT: project.name, kind: key, convert.VERSION: convert.project_labels(
        project)[convert.VERSION]}


def ensure_networks(project, services: list[str]) -> None:
    from rootless.engine import networks

    used = {n for s in services for n in model_networks(project.services[s])}
    existing = {n.name: n for n in networks.list_networks()}
    for key in sorted(used):
        net = project.networks[key]
        if net["name"] in existing:
            continue
        if net.get("external"):
            raise ComposeError(f"network {net['name']} declared as external, but could not "
                               "be found", f"create it first: rl network create {net['name']}")
        cfg = ((net.get("ipam") or {}).get("config") or [{}])[0]
        networks.create(net["name"], subnet=cfg.get("subnet"), gateway=cfg.get("gateway"),
                        internal=bool(net.get("internal")),
                        labels={**(net.get("labels") or {}),
                                **_object_labels(project, convert.NETWORK, key)})
        say("Network", net["name"], "Created")


def model_networks(svc: dict) -> list[str]:
    if svc.get("network_mode"):
        return []
    return list(svc.get("networks") or {"default": None})


def ensure_volumes(project, services: list[str]) -> None:
    from rootless.engine import volumes

    used = {v["source"] for s in services for v in project.services[s].get("volumes") or []
            if v.get("type") == "volume" and v.get("source")}
    for key in sorted(used):
        vol = project.volumes[key]
        try:
            volumes.inspect(vol["name"])
            continue
        except NotFound:
            pass
        if vol.get("external"):
            raise ComposeError(f"external volume {vol['name']!r} not found",
                               f"create it first: rl volume create {vol['name']}")
        volumes.create(vol["name"], labels={**(vol.get("labels") or {}),
                                            **_object_labels(project, convert.VOLUME, key)})
        say("Volume", vol["name"], "Created")


def _local_image(ref: str):
    from rootless.engine import images

    try:
        return images.get_image(ref)
    except NotFound:
        return None


def build_service(project, name: str, *, no_cache: bool = False, pull: bool = False,
                  quiet: bool = False) -> str:
    """Build the service's image (its `build:`), tagged with its image name; the id."""
    from rootless.engine import build

    svc = project.services[name]
    b = svc["build"]
    tag = convert.image_name(project.name, name, svc)
    opts = build.BuildOptions(
        context=b["context"], dockerfile=b.get("dockerfile"), tags=[tag],
        build_args={k: v for k, v in (b.get("args") or {}).items() if v is not None},
        target=b.get("target"), labels={**(b.get("labels") or {}),
                                        PROJECT: project.name, SERVICE: name},
        no_cache=no_cache or bool(b.get("no_cache")), pull=pull or bool(b.get("pull")),
        quiet=quiet, network=b.get("network") or "default",
        add_hosts=[h.replace("=", ":", 1) for h in b.get("extra_hosts") or []]
        if isinstance(b.get("extra_hosts"), list) else
        [f"{k}:{v}" for k, v in (b.get("extra_hosts") or {}).items()],
        cache_from=list(b.get("cache_from") or []))
    if b.get("dockerfile") and not b["dockerfile"].startswith("/"):
        import os

        opts.dockerfile = os.path.join(b["context"], b["dockerfile"])
    image_id = build.build(opts)
    say("Image", tag, "Built")
    return image_id


def _pull_policy(svc: dict, override: str | None) -> str:
    if override:
        return override
    policy = svc.get("pull_policy") or "missing"
    return {"if_not_present": "missing", "daily": "missing", "weekly": "missing"}.get(
        policy, policy)


def ensure_images(project, services: list[str], *, build: bool, no_build: bool,
                  pull: str | None) -> dict[str, str]:
    """service -> image id, pulling or building what is missing (or wanted anew)."""
    from rootless.engine import images

    out: dict[str, str] = {}
    for name in services:
        svc = project.services[name]
        ref = convert.image_name(project.name, name, svc)
        policy = _pull_policy(svc, pull)
        if svc.get("build") and not no_build and (build or policy == "build"
                                                  or _local_image(ref) is None):
            out[name] = build_service(project, name)
            continue
        if svc.get("build") and _local_image(ref) is None:
            raise ComposeError(f"service {name!r}: image {ref} is not built and --no-build "
                               "was given", "build it first: rl compose build")
        if svc.get("build"):
            out[name] = _local_image(ref).id
            continue
        if policy not in ("always", "missing", "never", "build"):
            raise ComposeError(f"services.{name}.pull_policy: {policy!r} is not supported",
                               "use always, missing, never or build")
        record = images.ensure_image(ref, pull="missing" if policy == "build" else policy)
        out[name] = record.id
    return out


# -- containers ---------------------------------------------------------------------------

def _create(project, name: str, number: int, image_id: str, *, oneoff: bool = False,
            extra: dict | None = None):
    """Create one container of the service, on all its networks; nothing is left when this
    raises (the engine's create promises it; a failed network connect removes it)."""
    from rootless.engine import containers as ctr
    from rootless.engine import netconnect

    svc = project.services[name]
    opts = convert.run_options(project, name, svc, number, image_id=image_id, oneoff=oneoff)
    for k, v in (extra or {}).items():
        setattr(opts, k, v)
    c = ctr.create(opts, warn=warn)
    try:
        for net, aliases in convert.extra_networks(project, name, svc):
            netconnect.connect(net, c.id, aliases)
    except BaseException:
        ctr.remove(c.id, force=True, volumes=True)
        raise
    return c


def _stale(c, svc: dict, image_id: str) -> bool:
    return (c.labels.get(HASH) != convert.config_hash(svc)
            or (image_id and c.labels.get(IMAGE) not in (None, "", image_id)))


def wait_for_dependencies(project, name: str) -> None:
    """Block until each dependency of `name` meets its condition; ComposeError if one
    cannot (unhealthy, exited, exited non-zero)."""
    for dep, d in (project.services[name].get("depends_on") or {}).items():
        if dep not in project.services:
            continue
        cond = d.get("condition", "service_started")
        for c in containers(project.name, [dep]):
            _wait_condition(c.id, c.name, cond, name)


def _wait_condition(cid: str, cname: str, cond: str, waiter: str) -> None:
    from rootless.engine import containers as ctr
    from rootless.format.docker_shapes import health_status

    while True:
        c = ctr.lookup(cid)
        if cond == "service_started":
            return
        if cond == "service_completed_successfully":
            if c.state == "exited":
                if c.exit_code == 0:
                    return
                raise ComposeError(f"service {waiter!r} depends on {cname}, which exited "
                                   f"with code {c.exit_code}")
        elif cond == "service_healthy":
            if not c.options.get("healthcheck"):
                raise ComposeError(f"service {waiter!r} waits for {cname} to be healthy, but "
                                   "it has no health check", "add a healthcheck: to it")
            status = health_status(c)
            if status == "healthy":
                return
            if status == "unhealthy":
                raise ComposeError(f"dependency failed to start: container {cname} is "
                                   "unhealthy")
            if c.state == "exited":
                raise ComposeError(f"dependency failed to start: container {cname} exited "
                                   f"({c.exit_code})")
        else:
            raise ComposeError(f"unknown depends_on condition {cond!r}")
        time.sleep(POLL)


def converge(project, services: list[str] | None = None, *, start: bool = True,
             build: bool = False, no_build: bool = False, pull: str | None = None,
             force_recreate: bool = False, no_recreate: bool = False,
             remove_orphans: bool = False, no_deps: bool = False) -> list[str]:
    """`up -d` and `create`: make the project's containers match the file; returns the
    services brought up. Only containers whose config hash or image changed are replaced."""
    from rootless.engine import containers as ctr

    if force_recreate and no_recreate:
        raise ComposeError("--force-recreate and --no-recreate cannot be combined")
    targets = _targets(project, services, with_deps=not no_deps)
    convert.check_binds(project, targets)
    _orphans(project, remove_orphans)
    ensure_networks(project, targets)
    ensure_volumes(project, targets)
    image_ids = ensure_images(project, targets, build=build, no_build=no_build, pull=pull)
    for name in targets:
        svc = project.services[name]
        want = convert.replicas(svc)
        if svc.get("container_name") and want > 1:
            raise ComposeError(f"services.{name}: container_name {svc['container_name']!r} "
                               f"cannot be used with {want} replicas")
        have = {_number(c): c for c in containers(project.name, [name])}
        for n, c in sorted(have.items()):
            if n > want or n < 1:
                ctr.stop(c.id)
                ctr.remove(c.id, force=True, volumes=True)
                say("Container", c.name, "Removed")
        if start:
            wait_for_dependencies(project, name)
        for n in range(1, want + 1):
            c = have.get(n)
            if c is not None and (force_recreate or (not no_recreate and
                                                     _stale(c, svc, image_ids[name]))):
                with contextlib.suppress(NotFound):
                    ctr.stop(c.id)
                ctr.remove(c.id, force=True)
                c = _create(project, name, n, image_ids[name])
                say("Container", c.name, "Recreated")
                if start:
                    ctr.start(c.id)
                    say("Container", c.name, "Started")
            elif c is None:
                c = _create(project, name, n, image_ids[name])
                say("Container", c.name, "Created")
                if start:
                    ctr.start(c.id)
                    say("Container", c.name, "Started")
            elif start and c.state not in ("running", "restarting"):
                ctr.start(c.id)
                say("Container", c.name, "Started")
            else:
                say("Container", c.name, "Running" if c.state == "running" else "Created")
    return targets


def _orphans(project, remove: bool) -> None:
    from rootless.engine import containers as ctr

    orphans = [c for c in containers(project.name)
               if c.labels.get(SERVICE) not in project.services
               and c.labels.get(SERVICE) not in project.disabled]
    if orphans and not remove:
        print(f"rl compose: warning: found orphan containers ({', '.join(c.name for c in orphans)})"
              " for this project; remove them with --remove-orphans", file=sys.stderr)
    elif orphans:
        for c in orphans:
            with contextlib.suppress(NotFound):
                ctr.stop(c.id)
            ctr.remove(c.id, force=True, volumes=True)
            say("Container", c.name, "Removed")


def wait_ready(project, services: list[str]) -> None:
    """`up --wait`: every container running, and healthy where it has a health check;
    ComposeError for one that exits or turns unhealthy."""
    from rootless.engine import containers as ctr
    from rootless.format.docker_shapes import health_status

    for c in _by_order(project, containers(project.name, services)):
        while True:
            c = ctr.lookup(c.id)
            status = health_status(c)
            if c.state == "exited":
                dep_ok = any(d.get("condition") == "service_completed_successfully"
                             for s in project.services.values()
                             for n, d in (s.get("depends_on") or {}).items()
                             if n == c.labels.get(SERVICE))
                if dep_ok and c.exit_code == 0:
                    break
                raise ComposeError(f"container {c.name} exited ({c.exit_code})")
            if status == "unhealthy":
                raise ComposeError(f"container {c.name} is unhealthy")
            if c.state == "running" and status in ("healthy", "none"):
                break
            time.sleep(POLL)
        say("Container", c.name, "Healthy" if status == "healthy" else "Running")


def down(project, *, volumes: bool = False, rmi: str | None = None,
         remove_orphans: bool = False) -> None:
    from rootless.engine import containers as ctr
    from rootless.engine import images, networks
    from rootless.engine import volumes as vols

    if rmi not in (None, "local", "all"):
        raise ComposeError(f"invalid --rmi {rmi!r}", "use local or all")
    conts = containers(project.name) + containers(project.name, oneoff=True)
    if not remove_orphans:
        kept = [c for c in conts if c.labels.get(SERVICE) not in project.services
                and c.labels.get(SERVICE) not in project.disabled]
        if kept:
            print(f"rl compose: warning: found orphan containers "
                  f"({', '.join(c.name for c in kept)}); remove them with --remove-orphans",
                  file=sys.stderr)
        conts = [c for c in conts if c not in kept]
    stop_in_levels(project, conts)
    for c in _by_order(project, conts, reverse=True):
        ctr.remove(c.id, force=True, volumes=True)
        say("Container", c.name, "Removed")
    for net in networks.list_networks():
        if net.labels.get(PROJECT) == project.name:
            try:
                networks.remove(net.id)
                say("Network", net.name, "Removed")
            except RlError as exc:
                print(f"rl compose: warning: network {net.name}: {exc}", file=sys.stderr)
    if volumes:
        for v in vols.list_volumes(filters={"label": [f"{PROJECT}={project.name}"]}):
            vols.remove([v.name])
            say("Volume", v.name, "Removed")
    if rmi:
        for name, svc in project.services.items():
            if rmi == "local" and svc.get("image"):
                continue
            ref = convert.image_name(project.name, name, svc)
            with contextlib.suppress(NotFound):
                images.remove([ref])
                say("Image", ref, "Removed")


def _stop_levels(project, conts: list) -> list[list]:
    """Containers grouped so that each group may stop together once the groups before it
    have stopped: a service's level is 1 + the highest level of the services depending on
    it (none: 0; containers of services unknown to the file: 0)."""
    dependents: dict[str, list[str]] = {s: [] for s in project.services}
    for name, svc in project.services.items():
        for d in graph.deps(svc):
            if d in dependents:
                dependents[d].append(name)
    level: dict[str, int] = {}
    for name in reversed(graph.order(project.services)):  # dependents come first
        level[name] = 1 + max((level[d] for d in dependents[name]), default=-1)
    groups: dict[int, list] = {}
    for c in conts:
        groups.setdefault(level.get(c.labels.get(SERVICE), 0), []).append(c)
    return [groups[k] for k in sorted(groups)]


def stop_in_levels(project, conts: list, timeout: int | None = None) -> None:
    """Stop the running ones in reverse dependency order, each level's containers at once
    (threads: each stop mostly waits for its container to exit), as docker compose does."""
    from concurrent.futures import ThreadPoolExecutor

    from rootless.engine import containers as ctr

    def stop(c) -> None:
        try:
            ctr.stop(c.id, timeout=timeout)
        except NotFound:
            return
        say("Container", c.name, "Stopped")

    for group in _stop_levels(project, conts):
        running = [c for c in group if c.state in ("running", "restarting")]
        if len(running) == 1:
            stop(running[0])
        elif running:
            with ThreadPoolExecutor(max_workers=min(8, len(running))) as pool:
                list(pool.map(stop, running))  # list(): an error of one is raised here


def for_each(project, services: list[str] | None, action: str, *, reverse: bool = False,
             **kw) -> None:
    """start / stop / restart / kill of the services' containers, in dependency order
    (reverse for stop)."""
    from rootless.engine import containers as ctr

    names = _targets(project, services, with_deps=False) if services else None
    conts = _by_order(project, containers(project.name, names), reverse=reverse)
    if not conts and services:
        raise ComposeError(f"no containers for the services {', '.join(services)}",
                           "create them first: rl compose up")
    if action == "stop":
        stop_in_levels(project, conts, timeout=kw.get("timeout"))
        return
    done = {"start": "Started", "restart": "Restarted", "kill": "Killed"}
    for c in conts:
        if action == "start":
            if c.state in ("running", "restarting"):
                continue
            wait_for_dependencies(project, c.labels[SERVICE])
            ctr.start(c.id)
        elif action == "restart":
            ctr.restart(c.id, timeout=kw.get("timeout"))
        elif action == "kill":
            if c.state not in ("running", "restarting"):
                continue
            sig = kw.get("signal") or "KILL"
            ctr.kill(c.id, sig)
            if ctr.parse_signal(sig) == 9:  # as Docker's kill: SIGKILL returns once it ended
                ctr.wait(c.id)
        say("Container", c.name, done[action])


def remove(project, services: list[str] | None, *, stop: bool = False,
           volumes: bool = False) -> list:
    from rootless.engine import containers as ctr

    names = _targets(project, services, with_deps=False) if services else None
    conts = _by_order(project, containers(project.name, names), reverse=True)
    out = []
    for c in conts:
        if c.state in ("running", "restarting"):
            if not stop:
                continue
            ctr.stop(c.id)
            say("Container", c.name, "Stopped")
        ctr.remove(c.id, force=True, volumes=volumes)
        say("Container", c.name, "Removed")
        out.append(c)
    return out


def one_container(project, service: str, index: int = 1):
    project.service(service)
    for c in containers(project.name, [service]):
        if _number(c) == index:
            return c
    raise ComposeError(f"service {service!r} has no container number {index}",
                       "start it first: rl compose up -d")

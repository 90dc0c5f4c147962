"""`rl compose`: parse the flags, load the project (rootless/compose/model.py), call the
verbs of rootless/compose/project.py, print. No logic beyond that lives here."""

from __future__ import annotations

import json
import sys

import click

from rootless.compose import project as verbs


class _Ctx:
    def __init__(self, files, project_name, profiles, env_files, project_directory):
        self.files = list(files)
        self.project_name = project_name
        self.profiles = list(profiles) or None
        self.env_files = list(env_files)
        self.project_directory = project_directory

    def load(self, wanted: list[str] | None = None):
        from rootless.compose import model

        return model.load(self.files, project_name_=self.project_name,
                          project_directory=self.project_directory,
                          env_files=self.env_files, profiles=self.profiles, wanted=wanted)


pass_ctx = click.make_pass_decorator(_Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-f", "--file", "files", multiple=True, metavar="FILE",
              help="Compose file (several are merged in order)")
@click.option("-p", "--project-name", default=None, help="Project name")
@click.option("--profile", "profiles", multiple=True, help="Enable a profile")
@click.option("--env-file", "env_files", multiple=True, help="Variables for interpolation")
@click.option("--project-directory", default=None, help="Base directory of relative paths")
@click.pass_context
def compose(ctx, files, project_name, profiles, env_files, project_directory) -> None:
    """Run multi-container applications from compose files."""
    ctx.obj = _Ctx(files, project_name, profiles, env_files, project_directory)


def _colour(no_color: bool) -> bool:
    return not no_color and sys.stdout.isatty()


@compose.command()
@click.option("-d", "--detach", is_flag=True, help="Run in the background")
@click.option("--build", is_flag=True, help="Build images before starting")
@click.option("--no-build", is_flag=True, help="Do not build missing images")
@click.option("--pull", type=click.Choice(["always", "missing", "never"]), default=None)
@click.option("--force-recreate", is_flag=True)
@click.option("--no-recreate", is_flag=True)
@click.option("--no-deps", is_flag=True, help="Do not start linked services")
@click.option("--remove-orphans", is_flag=True)
@click.option("--wait", is_flag=True, help="Wait for services to be running|healthy (-d)")
@click.option("--abort-on-container-exit", is_flag=True)
@click.option("--scale", multiple=True, metavar="SERVICE=NUM")
@click.option("--no-color", is_flag=True)
@click.option("--timestamps", is_flag=True)
@click.argument("services", nargs=-1)
@pass_ctx
def up(c, detach, build, no_build, pull, force_recreate, no_recreate, no_deps, remove_orphans,
       wait, abort_on_container_exit, scale, no_color, timestamps, services) -> None:
    """Create and start containers."""
    if detach and abort_on_container_exit:
        raise click.UsageError("--abort-on-container-exit and --detach are incompatible")
    if build and no_build:
        raise click.UsageError("--build and --no-build are incompatible")
    p = c.load(list(services))
    for item in scale:
        name, _, n = item.partition("=")
        if not n.isdigit():
            raise click.UsageError(f"invalid --scale {item!r}: expected SERVICE=NUM")
        svc = p.service(name)
        svc.setdefault("deploy", {})["replicas"] = int(n)
    targets = verbs.converge(p, list(services) or None, build=build, no_build=no_build,
                             pull=pull, force_recreate=force_recreate, no_recreate=no_recreate,
                             remove_orphans=remove_orphans, no_deps=no_deps)
    if wait:
        verbs.wait_ready(p, targets)
    if detach or wait:
        return
    sys.exit(_attached(p, targets, abort_on_container_exit, _colour(no_color), timestamps))


def _attached(p, targets, abort: bool, colour: bool, timestamps: bool) -> int:
    """Attached `up`: every container's output until all end, or Ctrl-C (then stop them,
    as docker compose does)."""
    import threading

    from rootless.compose import logs

    conts = verbs.containers(p.name, targets)
    print(f"Attaching to {', '.join(x.name for x in conts)}", file=sys.stderr, flush=True)
    stop = threading.Event()
    first: list[int] = []

    def on_exit(ct, printer) -> None:
        from rootless.engine import containers as ctr

        code = ctr.lookup(ct.id).exit_code
        printer.note(f"{ct.name} exited with code {code}")
        if abort and not first:
            first.append(code or 0)
            stop.set()

    try:
        logs.show(conts, follow=True, tail=None, timestamps=timestamps, colour=colour,
                  on_exit=on_exit, stop=stop)
    except KeyboardInterrupt:
        print("Gracefully stopping... (press Ctrl+C again to force)", file=sys.stderr)
    verbs.for_each(p, targets, "stop", reverse=True)
    return first[0] if first else 0


@compose.command()
@click.option("-v", "--volumes", is_flag=True, help="Remove named and anonymous volumes")
@click.option("--rmi", type=click.Choice(["local", "all"]), default=None)
@click.option("--remove-orphans", is_flag=True)
@pass_ctx
def down(c, volumes, rmi, remove_orphans) -> None:
    """Stop and remove containers, networks (and volumes, images)."""
    verbs.down(c.load(), volumes=volumes, rmi=rmi, remove_orphans=remove_orphans)


@compose.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show stopped containers too")
@click.option("-q", "--quiet", is_flag=True, help="Only IDs")
@click.option("--format", "fmt", default="table", help="table or json")
@click.option("--services", "only_services", is_flag=True, help="Only service names")
@click.argument("services", nargs=-1)
@pass_ctx
def ps(c, all_, quiet, fmt, only_services, services) -> None:
    """List the project's containers."""
    from rootless.engine import containers as ctr

    if fmt not in ("table", "json"):
        raise click.UsageError(f"invalid --format {fmt!r}: use table or json")
    p = c.load(list(services))
    conts = verbs.containers(p.name, list(services) or None, all_=all_)
    if quiet:
        for x in conts:
            click.echo(x.id)
        return
    if only_services:
        for s in dict.fromkeys(x.labels.get(verbs.SERVICE) for x in conts):
            click.echo(s)
        return
    docs = []
    for x in conts:
        d = ctr.container_doc(x, no_trunc=True).resolved()
        docs.append({"Command": d["Command"], "CreatedAt": d["CreatedAt"],
                     "ExitCode": x.exit_code or 0, "Health": _health(x), "ID": x.id,
                     "Image": x.image, "Labels": d["Labels"],
                     "LocalVolumes": d["LocalVolumes"], "Mounts": d["Mounts"], "Name": x.name,
                     "Names": x.name, "Networks": d["Networks"], "Ports": d["Ports"],
                     "Project": p.name, "Publishers": _publishers(x),
                     "RunningFor": d["RunningFor"], "Service": x.labels.get(verbs.SERVICE),
                     "Size": d["Size"], "State": x.state, "Status": d["Status"]})
    if fmt == "json":
        for d in docs:
            click.echo(json.dumps(d))
        return
    from rootless.cli.tables import printable
    from rootless.format.tabwriter import format_table

    lines = ["NAME\tIMAGE\tCOMMAND\tSERVICE\tCREATED\tSTATUS\tPORTS"]
    for d in docs:
        lines.append("\t".join(printable(str(v)) for v in (
            d["Name"], d["Image"], d["Command"], d["Service"], d["RunningFor"], d["Status"],
            d["Ports"])))
    click.echo(format_table("\n".join(lines) + "\n"), nl=False)


def _health(x) -> str:
    from rootless.format.docker_shapes import health_status

    status = health_status(x)
    return "" if status == "none" else status


def _publishers(x) -> list[dict]:
    return [{"URL": m.get("host_ip") or "0.0.0.0", "TargetPort": m.get("container_port"),
             "PublishedPort": m.get("host_port"), "Protocol": m.get("protocol", "tcp")}
            for m in x.options.get("ports") or []]


@compose.command()
@click.option("-f", "--follow", is_flag=True)
@click.option("-n", "--tail", default="all", help="Lines from the end of each log, or all")
@click.option("-t", "--timestamps", is_flag=True)
@click.option("--no-color", is_flag=True)
@click.option("--no-log-prefix", is_flag=True)
@click.argument("services", nargs=-1)
@pass_ctx
def logs(c, follow, tail, timestamps, no_color, no_log_prefix, services) -> None:
    """Show the services' output."""
    from rootless.compose import logs as logmux

    if tail != "all" and not tail.lstrip("-").isdigit():
        raise click.UsageError(f"invalid --tail {tail!r}: a number or all")
    p = c.load(list(services))
    conts = verbs.containers(p.name, list(services) or None)
    try:
        logmux.show(conts, follow=follow, tail=None if tail == "all" else int(tail),
                    timestamps=timestamps, colour=_colour(no_color),
                    prefixed=not no_log_prefix)
    except KeyboardInterrupt:
        pass


@compose.command()
@click.option("--no-cache", is_flag=True)
@click.option("--pull", is_flag=True, help="Always look for newer base images")
@click.option("-q", "--quiet", is_flag=True)
@click.argument("services", nargs=-1)
@pass_ctx
def build(c, no_cache, pull, quiet, services) -> None:
    """Build the services' images."""
    p = c.load(list(services))
    for name in verbs._targets(p, list(services) or None, with_deps=False):
        if p.services[name].get("build"):
            verbs.build_service(p, name, no_cache=no_cache, pull=pull, quiet=quiet)


@compose.command()
@click.option("-q", "--quiet", is_flag=True)
@click.option("--ignore-buildable", is_flag=True)
@click.argument("services", nargs=-1)
@pass_ctx
def pull(c, quiet, ignore_buildable, services) -> None:
    """Pull the services' images."""
    from rootless.engine import images

    p = c.load(list(services))
    for name in verbs._targets(p, list(services) or None, with_deps=False):
        svc = p.services[name]
        if not svc.get("image") or (svc.get("build") and ignore_buildable):
            continue
        try:
            images.pull(svc["image"])
        except Exception:
            if svc.get("build"):  # docker compose: a buildable image may not exist yet
                continue
            raise
        verbs.say("Image", svc["image"], "Pulled")


@compose.command()
@click.argument("services", nargs=-1)
@pass_ctx
def push(c, services) -> None:
    """Push the services' images (those with both build and image)."""
    from rootless.engine import ship

    p = c.load(list(services))
    for name in verbs._targets(p, list(services) or None, with_deps=False):
        svc = p.services[name]
        if svc.get("build") and svc.get("image"):
            ship.push(svc["image"])
            verbs.say("Image", svc["image"], "Pushed")


@compose.command()
@click.option("--services", "only_services", is_flag=True, help="Only the service names")
@click.option("--volumes", "only_volumes", is_flag=True, help="Only the volume names")
@click.option("-q", "--quiet", is_flag=True, help="Only validate")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml")
@pass_ctx
def config(c, only_services, only_volumes, quiet, fmt) -> None:
    """Show the resolved project."""
    p = c.load()
    if quiet:
        return
    if only_services:
        for s in p.services:
            click.echo(s)
        return
    if only_volumes:
        for v in p.volumes:
            click.echo(v)
        return
    if fmt == "json":
        click.echo(json.dumps(p.to_dict(), indent=2))
        return
    import yaml

    click.echo(yaml.safe_dump(p.to_dict(), sort_keys=False, default_flow_style=False),
               nl=False)


@compose.command("exec", context_settings={"ignore_unknown_options": True,
                                           "allow_interspersed_args": False})
@click.option("-T", "no_tty", is_flag=True, help="Do not allocate a TTY")
@click.option("-e", "--env", multiple=True)
@click.option("-u", "--user", default=None)
@click.option("-w", "--workdir", default=None)
@click.option("--index", default=1, type=int)
@click.argument("service")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_ctx
def exec_(c, no_tty, env, user, workdir, index, service, command) -> None:
    """Run a command in a running service container."""
    from rootless.engine import containers as ctr
    from rootless.engine.streams import Streams

    p = c.load([service])
    target = verbs.one_container(p, service, index)
    tty = not no_tty and sys.stdin.isatty() and sys.stdout.isatty()
    code = ctr.exec_(target.id, list(command), interactive=True, tty=tty, user=user,
                     workdir=workdir, env=list(env), streams=Streams(0, 1, 2))
    sys.stdout.flush()
    sys.exit(code or 0)


@compose.command(context_settings={"ignore_unknown_options": True,
                                   "allow_interspersed_args": False})
@click.option("--rm", is_flag=True, help="Remove the container when it exits")
@click.option("-d", "--detach", is_flag=True)
@click.option("-e", "--env", multiple=True)
@click.option("--no-deps", is_flag=True)
@click.option("--name", default=None)
@click.option("--entrypoint", default=None)
@click.option("-u", "--user", default=None)
@click.option("-w", "--workdir", default=None)
@click.option("-T", "no_tty", is_flag=True)
@click.option("-p", "--publish", multiple=True)
@click.option("--service-ports", is_flag=True)
@click.argument("service")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def run(c, rm, detach, env, no_deps, name, entrypoint, user, workdir, no_tty, publish,
        service_ports, service, command) -> None:
    """Run a one-off command in a new container of a service."""
    from rootless.cli.attach import Terminal
    from rootless.compose import oneoff
    from rootless.engine import cliflags

    p = c.load([service])
    tty = not no_tty and sys.stdin.isatty() and not detach
    term = Terminal(tty=tty, stdin=not detach, sig_proxy=True)
    try:
        result = oneoff.run(p, service, list(command), rm=rm, detach=detach, env=list(env),
                            no_deps=no_deps, name=name, entrypoint=entrypoint, user=user,
                            workdir=workdir, tty=tty,
                            publish=cliflags.publish(publish),
                            service_ports=service_ports, on_started=term.started)
    finally:
        term.restore()
    sys.stdout.flush()
    if detach:
        click.echo(result.id)
        return
    sys.exit(result.exit_code)


def _lifecycle(action: str, help_text: str, reverse: bool = False):
    @click.argument("services", nargs=-1)
    @pass_ctx
    def cmd(c, services, **kw) -> None:
        p = c.load(list(services))
        verbs.for_each(p, list(services) or None, action, reverse=reverse, **kw)

    cmd.__doc__ = help_text
    return cmd


start = compose.command("start")(_lifecycle("start", "Start the services' containers."))
stop = compose.command("stop")(click.option("-t", "--timeout", type=int, default=None)(
    _lifecycle("stop", "Stop the services' containers.", reverse=True)))
restart = compose.command("restart")(click.option("-t", "--timeout", type=int, default=None)(
    _lifecycle("restart", "Restart the services' containers.")))
kill = compose.command("kill")(click.option("-s", "--signal", default="KILL")(
    _lifecycle("kill", "Send a signal to the services' containers.", reverse=True)))


@compose.command()
@click.option("-f", "--force", is_flag=True, help="Do not ask")
@click.option("-s", "--stop", is_flag=True, help="Stop the containers first")
@click.option("-v", "--volumes", is_flag=True, help="Remove their anonymous volumes")
@click.argument("services", nargs=-1)
@pass_ctx
def rm(c, force, stop, volumes, services) -> None:
    """Remove the services' stopped containers."""
    p = c.load(list(services))
    verbs.remove(p, list(services) or None, stop=stop, volumes=volumes)


@compose.command()
@click.argument("services", nargs=-1)
@pass_ctx
def top(c, services) -> None:
    """Show the processes of the services' containers."""
    from rootless.cli.tables import printable
    from rootless.engine import containers as ctr
    from rootless.format.tabwriter import format_table

    p = c.load(list(services))
    for x in verbs.containers(p.name, list(services) or None, all_=False):
        lines = ["UID\tPID\tPPID\tC\tSTIME\tTTY\tTIME\tCMD"]
        for r in ctr.top(x.id):
            lines.append(f"{r['UID']}\t{r['PID']}\t-\t0\t-\t?\t{r['TIME']}\t"
                         f"{printable(r['CMD'])}")
        click.echo(x.name)
        click.echo(format_table("\n".join(lines) + "\n"))


@compose.command()
@click.option("--protocol", default="tcp", type=click.Choice(["tcp", "udp"]))
@click.option("--index", default=1, type=int)
@click.argument("service")
@click.argument("private_port", type=int)
@pass_ctx
def port(c, protocol, index, service, private_port) -> None:
    """Print the public address of a port of a service."""
    from rootless.engine import networks

    p = c.load([service])
    target = verbs.one_container(p, service, index)
    _name, maps = networks.container_ports(target.id)
    for m in maps:
        if m.container_port == private_port and m.protocol == protocol:
            click.echo(f"{m.host_ip or '0.0.0.0'}:{m.host_port}")
            return
    raise click.ClickException(f"no port {private_port}/{protocol} published for {service}")


@compose.command()
@click.option("-q", "--quiet", is_flag=True)
@click.argument("services", nargs=-1)
@pass_ctx
def images(c, quiet, services) -> None:
    """List the images the project's containers use."""
    from rootless.engine import images as imgs
    from rootless.format.docker_shapes import human_size
    from rootless.format.tabwriter import format_table

    p = c.load(list(services))
    lines = ["CONTAINER\tREPOSITORY\tTAG\tIMAGE ID\tSIZE"]
    for x in verbs.containers(p.name, list(services) or None):
        try:
            rec = imgs.get_image(x.image_id)
        except Exception:
            continue
        if quiet:
            click.echo(rec.id)
            continue
        repo, _, tag = x.image.rpartition(":") if ":" in x.image.rsplit("/", 1)[-1] else \
            (x.image, "", "latest")
        lines.append(f"{x.name}\t{repo}\t{tag}\t{rec.id.removeprefix('sha256:')[:12]}\t"
                     f"{human_size(rec.size)}")
    if not quiet:
        click.echo(format_table("\n".join(lines) + "\n"), nl=False)


@compose.command()
@click.option("--build", is_flag=True)
@click.option("--no-build", is_flag=True)
@click.option("--pull", type=click.Choice(["always", "missing", "never"]), default=None)
@click.option("--force-recreate", is_flag=True)
@click.option("--no-recreate", is_flag=True)
@click.option("--remove-orphans", is_flag=True)
@click.argument("services", nargs=-1)
@pass_ctx
def create(c, build, no_build, pull, force_recreate, no_recreate, remove_orphans,
           services) -> None:
    """Create the services' containers without starting them."""
    p = c.load(list(services))
    verbs.converge(p, list(services) or None, start=False, build=build, no_build=no_build,
                   pull=pull, force_recreate=force_recreate, no_recreate=no_recreate,
                   remove_orphans=remove_orphans)


@compose.command()
@click.option("--short", is_flag=True)
@click.option("--format", "fmt", type=click.Choice(["pretty", "json"]), default="pretty")
def version(short, fmt) -> None:
    """Show the rl compose version."""
    from rootless import __version__

    if short:
        click.echo(__version__)
    elif fmt == "json":
        click.echo(json.dumps({"version": __version__}))
    else:
        click.echo(f"rl compose version {__version__}")


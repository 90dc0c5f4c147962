"""Container commands: run, create, start, stop, kill, restart, rm, ps, logs, wait, inspect,
exec, top, cp, container (prune, ls, ...), unshare. Parsing and printing only: the work is
in rootless.engine.containers."""

from __future__ import annotations

import os
import sys

import click

from rootless.cli import options
from rootless.errors import InvalidArgument

_RUN_CTX = {"allow_interspersed_args": False}


def _engine():
    from rootless.engine import containers

    return containers


_CGROUP_HELP = ("A cgroup limit: needs cgroup v2 delegated to you; refused with this "
                "host's reason where it is not (rl info shows it).")
_CGROUP_FLAGS = ("--memory-swap", "--memory-reservation", "--cpu-shares", "--cpu-quota",
                 "--cpu-period", "--cpuset-cpus", "--cpuset-mems", "--pids-limit",
                 "--blkio-weight", "--device-cgroup-rule")


def _run_options(f):
    opts = [
        click.option("--name", metavar="NAME", help="Name of the container."),
        click.option("--rm", is_flag=True, help="Remove the container when it exits."),
        click.option("-d", "--detach", is_flag=True, help="Run in the background, print the id."),
        click.option("-i", "--interactive", is_flag=True, help="Keep stdin open."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal."),
        click.option("-e", "--env", multiple=True, metavar="KEY[=VALUE]",
                     help="Set an environment variable (KEY alone: its value here)."),
        click.option("--env-file", multiple=True, metavar="FILE",
                     help="Read KEY=VALUE lines from a file."),
        click.option("-w", "--workdir", metavar="DIR", help="Working directory inside the container."),
        click.option("-u", "--user", metavar="USER[:GROUP]", help="Who to run as (names or numeric ids)."),
        click.option("--entrypoint", metavar="COMMAND", help="Override the image's entrypoint."),
        click.option("-h", "--hostname", metavar="NAME", help="Hostname of the container."),
        click.option("-l", "--label", multiple=True, metavar="KEY=VALUE", help="Set a label."),
        click.option("--userns", metavar="MODE", help="keep-id: run as your own uid inside."),
        click.option("--cap-add", multiple=True, metavar="CAP", help="Add a capability (NET_ADMIN, ALL)."),
        click.option("--cap-drop", multiple=True, metavar="CAP", help="Drop a capability (CHOWN, ALL)."),
        click.option("--ulimit", multiple=True, metavar="NAME=SOFT[:HARD]", help="Resource limit."),
        click.option("--security-opt", multiple=True, metavar="OPT",
                     help="seccomp=unconfined|PROFILE.json, no-new-privileges[=true|false], "
                          "label=disable, apparmor=unconfined."),
        click.option("--init", is_flag=True, help="Run a reaper as pid 1."),
        click.option("--read-only", is_flag=True, help="Mount the root filesystem read-only."),
        click.option("--network", "--net", multiple=True, metavar="NETWORK",
                     help="slirp4netns[:OPTS] (default), none, host, container:NAME or a "
                          "network's name (repeat for several networks). slirp4netns OPTS: "
                          "allow_host_loopback=true, mtu=N, cidr=NET, port_handler="
                          "slirp4netns|proxy (proxy, or podman's rootlesskit: faster -p, "
                          "but the container sees its own address as the client's)."),
        click.option("-v", "--volume", multiple=True, metavar="SRC:DST[:OPTS]",
                     help="Bind a host path or mount a named volume (OPTS: ro, rw, nocopy, z, Z; comma-separated)."),
        click.option("--mount", multiple=True, metavar="type=TYPE,source=SRC,target=DST[,...]",
                     help="A bind, volume or tmpfs mount (TYPE: bind, volume, tmpfs)."),
        click.option("--tmpfs", multiple=True, metavar="PATH[:size=N,mode=M]",
                     help="Mount a tmpfs."),
        click.option("-p", "--publish", multiple=True,
                     metavar="[HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO]",
                     help="Publish a container port on the host."),
        click.option("-P", "--publish-all", is_flag=True, help="Publish every exposed port."),
        click.option("--network-alias", multiple=True, metavar="NAME",
                     help="Another name on a user-defined network."),
        click.option("--pull", type=click.Choice(["missing", "always", "never", "newer"]),
                     default="missing", help="When to pull the image."),
        click.option("--restart", metavar="POLICY",
                     help="no (default), on-failure[:MAX-RETRIES], always or unless-stopped: "
                          "restarted by the container's monitor, with Docker's back-off."),
        click.option("--health-cmd", metavar="COMMAND",
                     help="Shell command that checks the container's health (exit 0: healthy)."),
        click.option("--health-interval", metavar="DURATION",
                     help="Time between checks (default 30s)."),
        click.option("--health-timeout", metavar="DURATION",
                     help="Time a check may take (default 30s)."),
        click.option("--health-retries", type=int, metavar="N",
                     help="Failures in a row that make it unhealthy (default 3)."),
        click.option("--health-start-period", metavar="DURATION",
                     help="Time to start during which failures do not count (default 0s)."),
        click.option("--health-start-interval", metavar="DURATION",
                     help="Time between checks during the start period (default 5s)."),
        click.option("--no-healthcheck", is_flag=True,
                     help="Disable the image's HEALTHCHECK."),
        click.option("--add-host", multiple=True, metavar="NAME:IP",
                     help="Add a line to /etc/hosts (IP may be host-gateway: the host)."),
        click.option("--dns", multiple=True, metavar="IP", help="A name server for resolv.conf."),
        click.option("--dns-search", multiple=True, metavar="DOMAIN",
                     help="A search domain for resolv.conf (. for none)."),
        click.option("--dns-option", multiple=True, metavar="OPTION",
                     help="An option for resolv.conf (e.g. ndots:2)."),
        click.option("--expose", multiple=True, metavar="PORT[/PROTO]",
                     help="Expose a port or a range (for -P and inspect)."),
        click.option("--stop-signal", metavar="SIGNAL",
                     help="Signal that rl stop sends (default: the image's STOPSIGNAL or TERM)."),
        click.option("--stop-timeout", metavar="SECONDS",
                     help="Seconds rl stop waits before SIGKILL (default 10; -1: no limit)."),
        click.option("--cidfile", metavar="FILE", help="Write the container's id to FILE."),
        click.option("--group-add", multiple=True, metavar="GROUP",
                     help="Another group (name in the image or number) for the process."),
        click.option("--label-file", multiple=True, metavar="FILE",
                     help="Read KEY=VALUE labels from a file."),
        click.option("--shm-size", metavar="SIZE", help="Size of /dev/shm (default 64m)."),
        click.option("--sysctl", multiple=True, metavar="NAME=VALUE",
                     help="A namespaced sysctl: net.*, kernel.shm*, kernel.msg*, kernel.sem, "
                          "fs.mqueue.* (others are refused: they are the host's)."),
        click.option("--privileged", is_flag=True,
                     help="Every capability of rl's user namespace, no masked or read-only "
                          "paths, no seccomp filter (as podman, rootless: no host root)."),
        click.option("--device", multiple=True, metavar="HOST[:CONTAINER][:PERMS]",
                     help="Bind a host device node that you can open into the container."),
        click.option("-q", "--quiet", is_flag=True, help="Do not show the pull's progress."),
        click.option("-m", "--memory", metavar="BYTES", help=_CGROUP_HELP),
        click.option("--cpus", metavar="N", help=_CGROUP_HELP),
        *[click.option(f, multiple=f == "--device-cgroup-rule", metavar="VALUE", help=_CGROUP_HELP)
          for f in _CGROUP_FLAGS],
        click.argument("image"),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    for o in reversed(opts):
        f = o(f)
    from rootless.cli import runflags

    return runflags.add_options(f)


def _make_options(kw: dict):
    from rootless.cli import progress as cli_progress
    from rootless.cli import runflags
    from rootless.engine.spec import RunOptions

    if kw.get("hostname") is not None and not kw["hostname"]:
        raise InvalidArgument("--hostname must not be empty")
    from rootless.engine import cliflags

    return runflags.fill(RunOptions(
        image=kw["image"], command=list(kw["command"]), name=kw["name"],
        entrypoint=kw["entrypoint"], env=list(kw["env"]), env_files=list(kw["env_file"]),
        workdir=kw["workdir"], user=kw["user"], hostname=kw["hostname"],
        labels=options.labels(kw["label"]), rm=kw["rm"], detach=kw.get("detach", False),
        interactive=kw["interactive"], tty=kw["tty"], userns=kw["userns"],
        cap_add=list(kw["cap_add"]), cap_drop=list(kw["cap_drop"]),
        ulimits=cliflags.ulimits(kw["ulimit"]), init=kw["init"], read_only=kw["read_only"],
        network=(kw["network"] or ("slirp4netns",))[0],
        extra_networks=list(kw["network"][1:]), pull=kw["pull"],
        memory=kw["memory"], cpus=kw["cpus"],
        mounts=cliflags.mounts(kw["volume"], kw["mount"], kw["tmpfs"]),
        publish=cliflags.publish(kw["publish"]), publish_all=kw["publish_all"],
        network_aliases=list(kw["network_alias"]), security_opt=list(kw["security_opt"]),
        restart=kw["restart"], health_cmd=kw["health_cmd"],
        health_interval=kw["health_interval"], health_timeout=kw["health_timeout"],
        health_retries=kw["health_retries"], health_start_period=kw["health_start_period"],
        health_start_interval=kw["health_start_interval"], no_healthcheck=kw["no_healthcheck"],
        add_hosts=list(kw["add_host"]), dns=list(kw["dns"]), dns_search=list(kw["dns_search"]),
        dns_options=list(kw["dns_option"]), expose=list(kw["expose"]),
        stop_signal=kw["stop_signal"], stop_timeout=kw["stop_timeout"], cidfile=kw["cidfile"],
        group_add=list(kw["group_add"]), label_files=list(kw["label_file"]),
        shm_size=kw["shm_size"], sysctls=cliflags.sysctls(kw["sysctl"]), privileged=kw["privileged"],
        devices=cliflags.devices(kw["device"]), progress=cli_progress.for_terminal(kw["quiet"]),
        resources={f: kw[f[2:].replace("-", "_")] for f in _CGROUP_FLAGS
                   if kw[f[2:].replace("-", "_")] not in (None, ())}), kw)


_SIG_PROXY_HELP = ("Send the signals rl gets to the container (default true; not with a "
                   "tty, whose keys reach it anyway).")
_DETACH_KEYS_HELP = "Keys that detach from it, leaving it running (default ctrl-p,ctrl-q)."


def _warn(text: str) -> None:
    """The engine's warnings (e.g. a single mapped id), on stderr as they arise."""
    click.echo(f"rl: warning: {text}", err=True)


def _attach_choice(ctx, param, value):
    out = tuple(v.lower() for v in value)
    for v in out:
        if v not in ("stdin", "stdout", "stderr"):
            raise InvalidArgument(f"invalid -a/--attach value {v!r}",
                                  "give stdin, stdout or stderr (repeat -a for several)")
    return out


def _cli_streams(attach: tuple[str, ...], interactive: bool):
    """The CLI's own fds as the container's streams: those of -a, else stdout and
    stderr (and stdin with -i), as Docker's."""
    from rootless.engine.streams import Streams

    if not attach:
        attach = ("stdout", "stderr") + (("stdin",) if interactive else ())
    return Streams(0 if "stdin" in attach else None, 1 if "stdout" in attach else None,
                   2 if "stderr" in attach else None)


@click.command(context_settings=_RUN_CTX)
@_run_options
@click.option("-a", "--attach", "attach_", multiple=True, callback=_attach_choice,
              metavar="stdin|stdout|stderr", help="Attach only these streams (repeatable).")
@click.option("--sig-proxy", type=click.BOOL, default=True, metavar="true|false",
              help=_SIG_PROXY_HELP)
@click.option("--detach-keys", metavar="KEYS", help=_DETACH_KEYS_HELP)
def run(attach_, sig_proxy, detach_keys, **kw) -> None:
    """Run a command in a new container."""
    from rootless.cli.attach import Terminal, attached_exit

    opts = _make_options(kw)
    if opts.detach and attach_:
        raise InvalidArgument("conflicting options: -a and -d",
                              "drop -a (a detached container is attached to with rl attach)")
    streams = _cli_streams(attach_, opts.interactive)
    if opts.tty and opts.interactive and streams.stdin is not None and not os.isatty(0):
        raise InvalidArgument("the input device is not a TTY",
                              "run it from a terminal, or drop -t")
    term = Terminal(tty=opts.tty, stdin=opts.interactive and streams.stdin is not None,
                    sig_proxy=sig_proxy)
    try:
        result = _engine().run(opts, streams, sig_proxy=sig_proxy, detach_keys=detach_keys,
                               on_started=term.started, warn=_warn)
    finally:
        term.restore()
    if opts.detach:
        click.echo(result.id)
        return
    # The container's exit code, and no interpreter teardown (~10 ms of module cleanup
    # for nothing: every file and the catalog are closed and committed already).
    attached_exit(result.exit_code)


@click.command(context_settings=_RUN_CTX)
@_run_options
def create(**kw) -> None:
    """Create a container (start it with rl start)."""
    kw["detach"] = False
    c = _engine().create(_make_options(kw), warn=_warn)
    click.echo(c.id)


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach to the output and wait.")
@click.option("-i", "--interactive", is_flag=True, help="Attach stdin too.")
@click.option("--detach-keys", metavar="KEYS", help=_DETACH_KEYS_HELP)
@click.argument("containers", nargs=-1, required=True)
def start(attach: bool, interactive: bool, detach_keys: str | None,
          containers: tuple[str, ...]) -> None:
    """Start one or more containers."""
    eng = _engine()
    if attach or interactive:
        if len(containers) != 1:
            raise InvalidArgument("rl start -a/-i takes one container")
        if not interactive and detach_keys is None:  # the monitor is this process
            code = eng.start(containers[0], attach=True)
            sys.exit(code or 0)
        from rootless.cli.attach import Terminal, attached_exit
        from rootless.engine.streams import Streams

        c = eng.lookup(containers[0])
        stdin = interactive and bool(c.options.get("interactive"))
        term = Terminal(tty=bool(c.options.get("tty")), stdin=stdin, sig_proxy=True)
        try:
            code = eng.start(c.id, attach=True, detach_keys=detach_keys,
                             streams=Streams(0 if stdin else None, 1, 2),  # as Docker's
                             on_started=term.started)
        finally:
            term.restore()
        attached_exit(code)
    for ref in containers:
        eng.start(ref)
        click.echo(ref)


def _stop_options(f):
    f = click.option("-s", "--signal", "sig", default=None, metavar="SIGNAL",
                     help="Signal to stop with (default: the image's STOPSIGNAL or TERM).")(f)
    return click.option("-t", "--timeout", "--time", "timeout", type=int, default=None,
                        metavar="SECONDS",
                        help="Seconds to wait before killing (default 10).")(f)


@click.command()
@_stop_options
@click.argument("containers", nargs=-1, required=True)
def stop(timeout: int | None, sig: str | None, containers: tuple[str, ...]) -> None:
    """Stop containers: the stop signal, then SIGKILL after the timeout."""
    for ref in containers:
        _engine().stop(ref, timeout, sig)
        click.echo(ref)


@click.command()
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send (default KILL).")
@click.argument("containers", nargs=-1, required=True)
def kill(sig: str, containers: tuple[str, ...]) -> None:
    """Send a signal to containers."""
    for ref in containers:
        _engine().kill(ref, sig)
        click.echo(ref)


@click.command()
@_stop_options
@click.argument("containers", nargs=-1, required=True)
def restart(timeout: int | None, sig: str | None, containers: tuple[str, ...]) -> None:
    """Restart containers."""
    for ref in containers:
        _engine().restart(ref, timeout, sig)
        click.echo(ref)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Stop running containers first.")
@click.option("-v", "--volumes", is_flag=True, help="Remove their anonymous volumes too.")
@click.argument("containers", nargs=-1, required=True)
def rm(force: bool, volumes: bool, containers: tuple[str, ...]) -> None:
    """Remove containers."""
    for ref in containers:
        _engine().remove(ref, force=force, volumes=volumes)
        click.echo(ref)


from rootless.engine.filters import PS_KEYS as _PS_KEYS  # noqa: E402 (the engine's list)


@click.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show stopped containers too.")
@click.option("-q", "--quiet", is_flag=True, help="Only ids.")
@options.format_option("containers (.ID .Names .Image .Status .Ports .Label \"k\" ...)")
@options.filter_option(_PS_KEYS)
@click.option("--no-trunc", is_flag=True, help="Do not shorten ids and commands.")
@click.option("-n", "--last", type=int, default=None, metavar="N",
              help="Show the N last created containers (every state).")
@click.option("-l", "--latest", is_flag=True, help="Show the last created container.")
@click.option("-s", "--size", is_flag=True, help="Show the size of the files each wrote.")
def ps(all_: bool, quiet: bool, fmt: str | None, filters: tuple[str, ...], no_trunc: bool,
       last: int | None, latest: bool, size: bool) -> None:
    """List containers."""
    flt = options.parse_filters(filters, _PS_KEYS)
    if fmt is not None and fmt != "table" and not quiet:
        options.compile_format(fmt)  # a bad template fails before any work
    if quiet:
        for c in _engine().list_containers(all_, flt, 1 if latest else last):
            click.echo(c.id if no_trunc else c.short_id)
        return
    # the engine's row model (engine/ctrinfo.py PsRow); here only the formatting
    rows = _engine().ps_rows(all_, flt, 1 if latest else last, size=size)
    human_size = None
    if size:
        from rootless.format.docker_shapes import human_size
    if fmt not in (None, "table"):
        from rootless.format import docker_shapes as shapes

        options.echo_formatted(fmt, (_engine().container_doc(
            r, no_trunc=no_trunc, size=human_size(r.size) if human_size else None)
            for r in rows), shapes.PS_HEADER)
        return
    table = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES")
             + (("SIZE",) if size else ())]
    from rootless.cli.tables import printable
    from rootless.cli.tables import rows as table_rows

    for r in rows:
        # Escaped before it is cut: the container wrote it (rootless/cli/tables.py).
        cmd = printable(" ".join(r.command))
        cmd = cmd if no_trunc or len(cmd) <= 20 else cmd[:17] + "..."
        table.append((r.id if no_trunc else r.id[:12], r.image, f'"{cmd}"',
                      r.running_for + " ago", r.status, r.ports, r.names)
                     + ((human_size(r.size),) if human_size else ()))
    click.echo("\n".join(table_rows(table)))  # one write, not one per container


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output.")
@click.option("-n", "--tail", default="all", metavar="N|all",
              help="Lines from the end (default all).")
@click.option("--since", metavar="TIME",
              help="Only output from TIME on: RFC 3339, Unix time, or a duration ago (10m).")
@click.option("--until", metavar="TIME", help="Only output before TIME (same forms).")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.argument("container")
def logs(follow: bool, tail: str, since: str | None, until: str | None, timestamps: bool,
         container: str) -> None:
    """Show a container's output."""
    # Raw bytes, escape sequences included, as `docker logs`: it is the container's own
    # output, like `cat` of a file it wrote (rootless/cli/tables.py escapes tables only).
    t_since = options.parse_time_arg(since, "--since") if since else None
    t_until = options.parse_time_arg(until, "--until") if until else None
    out, err = sys.stdout.buffer, sys.stderr.buffer
    line_start = {"stdout": True, "stderr": True}
    for ts, stream, data in _engine().logs(container, follow=follow, tail=tail,
                                           since=t_since, until=t_until):
        target = err if stream == "stderr" else out
        if timestamps and line_start[stream]:
            target.write(ts.encode() + b" ")
        target.write(data)
        line_start[stream] = data.endswith(b"\n")
        target.flush()


@click.command()
@click.argument("containers", nargs=-1, required=True)
def wait(containers: tuple[str, ...]) -> None:
    """Wait for containers to stop; print their exit codes."""
    for ref in containers:
        click.echo(_engine().wait(ref))


@click.command("exec", context_settings=_RUN_CTX)
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal.")
@click.option("-u", "--user", metavar="USER[:GROUP]", help="user[:group] to run as.")
@click.option("-w", "--workdir", metavar="DIR", help="Working directory.")
@click.option("-e", "--env", multiple=True, metavar="KEY[=VALUE]",
                     help="Set an environment variable (KEY alone: its value here).")
@click.option("--env-file", multiple=True, metavar="FILE",
                     help="Read KEY=VALUE lines from a file.")
@click.option("-d", "--detach", is_flag=True, help="Run it in the background.")
@click.option("--detach-keys", metavar="KEYS",
              help="With -it: keys that detach, leaving the command running (default "
                   "ctrl-p,ctrl-q).")
@click.option("--privileged", is_flag=True,
              help="Every capability of rl's user namespace and no seccomp filter.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(interactive, tty, user, workdir, env, env_file, detach, detach_keys, privileged,
          container,
          command) -> None:
    """Run a command in a running container."""
    from rootless.engine.streams import Streams

    code = _engine().exec_(container, list(command), interactive=interactive, tty=tty,
                           user=user, workdir=workdir, env=list(env), env_files=list(env_file),
                           detach=detach, streams=Streams(0 if interactive else None, 1, 2),
                           privileged=privileged, detach_keys=detach_keys)
    sys.stdout.flush()
    sys.exit(code or 0)


@click.command()
@click.argument("container")
def top(container: str) -> None:
    """Show a container's processes."""
    from rootless.cli.tables import printable

    rows = _engine().top(container)
    click.echo(f"{'UID':<8} {'PID':>6} {'HOSTPID':>8} {'TIME':>9}  CMD")
    for r in rows:  # the command lines are the container's own text: escaped
        click.echo(f"{printable(str(r['UID'])):<8} {r['PID']:>6} {r['HOSTPID']:>8} "
                   f"{r['TIME']:>9}  {printable(str(r['CMD']))}")


@click.command()
@click.option("-a", "--archive", is_flag=True,
              help="Keep the uid/gid of what is copied in (default: root's).")
@click.option("-L", "--follow-link", is_flag=True, help="Follow a symbolic link at SRC.")
@click.argument("src")
@click.argument("dest")
def cp(archive: bool, follow_link: bool, src: str, dest: str) -> None:
    """Copy files between a container and the host (CONTAINER:PATH on one side; - is a
    tar stream on stdin or stdout)."""
    s_ctr, s_path = (None, "-") if src == "-" else _split_cp(src)
    d_ctr, d_path = (None, "-") if dest == "-" else _split_cp(dest)
    if (s_ctr is None) == (d_ctr is None):
        raise InvalidArgument("rl cp copies between a container and the host",
                              "write one side as CONTAINER:PATH")
    sys.stdout.flush()
    if s_ctr is not None:
        _engine().copy_from(s_ctr, s_path, None if dest == "-" else d_path,
                            follow_link=follow_link,
                            out_fd=sys.stdout.fileno() if dest == "-" else None)
    else:
        _engine().copy_to(d_ctr, None if src == "-" else s_path, d_path, archive=archive,
                          follow_link=follow_link,
                          in_fd=sys.stdin.fileno() if src == "-" else None)


def _split_cp(arg: str) -> tuple[str | None, str]:
    """CONTAINER:PATH -> (CONTAINER, PATH); a host path (/..., ./..., no colon) -> (None,
    path)."""
    if ":" in arg and not arg.startswith(("/", ".")):
        name, _, path = arg.partition(":")
        return name, path or "/"
    return None, arg


_ELSEWHERE = {"inspect": ("rootless.cli.inspect", "container_inspect"),
              "attach": ("rootless.cli.attach", "attach"),
              "port": ("rootless.cli.networks", "port"),
              "rename": ("rootless.cli.changes", "rename"),
              "diff": ("rootless.cli.changes", "diff"),
              "stats": ("rootless.cli.stats", "stats"),
              "commit": ("rootless.cli.build", "commit"),
              "export": ("rootless.cli.build", "export"),
              "pause": ("rootless.cli.pause", "pause"),
              "unpause": ("rootless.cli.pause", "unpause")}


def _container_group():
    from rootless.cli.lazy import AliasGroup

    return AliasGroup


@click.group(cls=_container_group(), aliases=_ELSEWHERE)
def container() -> None:
    """Manage containers."""


@container.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="label=KEY[=VALUE], label!=KEY[=VALUE] or until=TIME.")
def prune(force: bool, filters: tuple[str, ...]) -> None:
    """Remove every stopped container."""
    from rootless.cli import system as cli_system
    from rootless.engine import system as engine_system

    flt = cli_system.prune_filters(filters)
    if not force:
        cli_system.ask("WARNING! This will remove all stopped containers.", "container prune")
    out = engine_system.prune_containers(flt)
    if out.containers:
        click.echo("Deleted Containers:\n" + "\n".join(out.containers) + "\n")
    click.echo(cli_system.reclaimed_line(out.reclaimed))


for _name, _cmd in (("ls", ps), ("list", ps), ("ps", ps), ("rm", rm), ("remove", rm),
                    ("start", start), ("stop", stop), ("kill", kill), ("logs", logs),
                    ("create", create), ("run", run), ("top", top), ("wait", wait),
                    ("restart", restart), ("exec", exec_), ("cp", cp)):
    container.add_command(_cmd, _name)


@click.command()
@click.option("--restart", metavar="POLICY",
              help="no, on-failure[:MAX-RETRIES], always or unless-stopped (applies at once).")
@click.option("-m", "--memory", help=_CGROUP_HELP)
@click.option("--cpus", help=_CGROUP_HELP)
@click.option("--memory-swap", help=_CGROUP_HELP)
@click.option("--memory-reservation", help=_CGROUP_HELP)
@click.option("--cpu-shares", help=_CGROUP_HELP)
@click.option("--cpu-quota", help=_CGROUP_HELP)
@click.option("--cpu-period", help=_CGROUP_HELP)
@click.option("--cpuset-cpus", help=_CGROUP_HELP)
@click.option("--cpuset-mems", help=_CGROUP_HELP)
@click.option("--pids-limit", help=_CGROUP_HELP)
@click.option("--blkio-weight", help=_CGROUP_HELP)
@click.argument("containers", nargs=-1, required=True)
def update(restart: str | None, containers: tuple[str, ...], **limits) -> None:
    """Change containers' restart policy and resource limits (these need cgroup v2
    delegation: see rl info)."""
    resources = {"--" + k.replace("_", "-"): v for k, v in limits.items() if v is not None}
    for ref in containers:
        _engine().update(ref, restart=restart, resources=resources)
        click.echo(ref)


container.add_command(update, "update")


@click.group()
def healthcheck() -> None:
    """Run containers' health checks."""


@healthcheck.command("run")
@click.argument("container")
def healthcheck_run(container: str) -> None:
    """Run a container's health check now: exit 0 if it is healthy after it, 1 if not."""
    from rootless.engine import health

    status = health.probe(container)
    if status != "healthy":
        click.echo(status)
    sys.exit(0 if status == "healthy" else 1)


@click.group()
def generate() -> None:
    """Generate files that run containers (systemd user units)."""


@generate.command("systemd")
@click.option("--files", is_flag=True, help="Write container-NAME.service here; print its path.")
@click.option("-t", "--time", "stop_time", type=int, default=None, metavar="SECONDS",
              help="Stop timeout in the unit (default: the container's).")
@click.argument("container")
def generate_systemd(files: bool, stop_time: int | None, container: str) -> None:
    """A systemctl --user unit that starts CONTAINER with your service manager."""
    from rootless.engine import sysunit

    name, text = sysunit.unit(container, stop_timeout=stop_time)
    if not files:
        click.echo(text, nl=False)
        return
    path = os.path.abspath(name)
    with open(path, "w") as f:
        f.write(text)
    click.echo(path)


@click.command(context_settings=_RUN_CTX)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def unshare(command: tuple[str, ...]) -> None:
    """Run a command (default: your shell) as root in rl's user namespace."""
    sys.exit(_engine().unshare(list(command)))

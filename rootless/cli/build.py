"""Build and ship commands: build, push, save, load, import, export, history, commit.
Parsing and printing only; the work is in rootless.engine.ship and rootless.engine.build."""

from __future__ import annotations

import os
import sys

import click

from rootless.errors import InvalidArgument, RlError


def _os_errors(fn):
    """An OSError (a path that cannot be read or written) as one line, not a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise RlError(f"{where}{exc.strerror or exc}") from None
    return wrapper


def _exit_1(fn):
    """`rl build` fails with exit code 1, as `docker build` does (not 125)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RlError as exc:
            exc.exit_code = 1
            raise
    return wrapper


def _short(image_id: str) -> str:
    return image_id.partition(":")[2][:12]


@click.command()
@click.argument("image")
@click.argument("destination", required=False)
@click.option("--format", "fmt", type=click.Choice(["oci", "v2s2"]),
              help="Manifest format (default: as pulled).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("--tls-verify/--no-tls-verify", default=True, hidden=True)
@_os_errors
def push(image: str, destination: str | None, fmt: str | None, quiet: bool,
         tls_verify: bool) -> None:
    """Push an image to a registry."""
    from rootless.engine import ship

    result = ship.push(image, destination, fmt)
    if not quiet:
        click.echo(f"Pushed {result.destination}: {result.pushed} blob(s) uploaded, "
                   f"{result.mounted} mounted from another repository, "
                   f"{result.skipped} already present", err=True)
        click.echo(result.digest)


@click.command()
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", help="Write to this file (default: stdout).")
@click.option("--format", "fmt", default="docker-archive",
              type=click.Choice(["docker-archive", "oci-archive"]), help="Archive format.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@_os_errors
def save(images: tuple[str, ...], output: str | None, fmt: str, quiet: bool) -> None:
    """Save images to a tar archive."""
    from rootless.engine import ship

    if output is None and sys.stdout.isatty():
        raise InvalidArgument("refusing to write an archive to a terminal",
                              "use -o FILE or redirect the output")
    ship.save(list(images), output if output else sys.stdout.buffer, fmt)


@click.command()
@click.option("-i", "--input", "input_", help="Read from this file (default: stdin).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ids.")
@_os_errors
def load(input_: str | None, quiet: bool) -> None:
    """Load images from a tar archive (docker-archive or oci-archive)."""
    from rootless.engine import ship

    if input_ is None and sys.stdin.isatty():
        raise InvalidArgument("no archive given", "use -i FILE or pipe one on stdin")
    loaded = ship.load(sys.stdin.buffer if input_ is None else input_)
    for image_id, names in loaded:
        if quiet:
            click.echo(image_id)
        elif names:
            for n in names:
                click.echo(f"Loaded image: {n}")
        else:
            click.echo(f"Loaded image: {image_id}")


@click.command("import")
@click.argument("source")
@click.argument("name", required=False)
@click.option("-m", "--message", help="A comment for the history entry.")
@click.option("-c", "--change", "changes", multiple=True,
              help="Apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, USER).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image id (the default).")
@_os_errors
def import_(source: str, name: str | None, message: str | None, changes: tuple[str, ...],
            quiet: bool) -> None:
    """Create an image from a rootfs tarball (FILE or - for stdin)."""
    from rootless.engine import ship

    click.echo(ship.import_(source, name, message, list(changes),
                            stream=sys.stdin.buffer if source == "-" else None,
                            source_epoch=_source_epoch()).partition(":")[2])


@click.command()
@click.argument("container")
@click.option("-o", "--output", help="Write to this file (default: stdout).")
@_os_errors
def export(container: str, output: str | None) -> None:
    """Export a container's filesystem as a tar."""
    from rootless.engine import ship

    if output is None:
        if sys.stdout.isatty():
            raise InvalidArgument("refusing to write a tar to a terminal",
                                  "use -o FILE or redirect the output")
        sys.stdout.flush()
        ship.export(container, sys.stdout.fileno())
        return
    ship.export(container, output)


def _size(n: int) -> str:
    from rootless.cli.images import _human_size

    return _human_size(n)


@click.command()
@click.argument("image")
@click.option("-H", "--human/--no-human", default=True, help="Sizes and dates for people.")
@click.option("--no-trunc", is_flag=True, help="Do not shorten the output.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the ids.")
@click.option("--format", "fmt", metavar="FORMAT",
              help="table (default), json (one object a line) or a Go template, e.g. "
                   "'{{.CreatedBy}}'.")
@_os_errors
def history(image: str, human: bool, no_trunc: bool, quiet: bool, fmt: str | None) -> None:
    """Show the history of an image."""
    from rootless.cli.images import _ago
    from rootless.engine import ship

    if fmt not in (None, "table") and not quiet:
        from rootless.cli import options

        options.compile_format(fmt)
    entries = ship.history(image)
    if quiet:
        for e in entries:
            click.echo(e["id"] if no_trunc or e["id"] == "<missing>" else _short(e["id"]))
        return
    if fmt not in (None, "table"):
        from rootless.cli import options
        from rootless.format import docker_shapes as shapes

        options.echo_formatted(fmt, (shapes.history_doc(e, no_trunc=no_trunc, human=human)
                                     for e in entries), shapes.HISTORY_HEADER)
        return
    rows = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for e in entries:
        by = e["created_by"] or ""
        if not no_trunc and len(by) > 45:
            by = by[:44] + "…"
        ident = e["id"] if no_trunc or e["id"] == "<missing>" else _short(e["id"])
        rows.append([ident, _ago(e["created"]) if human else (e["created"] or ""), by,
                     _size(e["size"]) if human else str(e["size"]), e["comment"] or ""])
    from rootless.cli.tables import rows as table_rows

    for line in table_rows(rows):  # CREATED BY is the image's own text: escaped
        click.echo(line)


@click.command()
@click.argument("container")
@click.argument("name", required=False)
@click.option("-m", "--message", help="A comment for the history entry.")
@click.option("-a", "--author", help="The author of the image.")
@click.option("-c", "--change", "changes", multiple=True,
              help="Apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, USER).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image id (the default).")
@_os_errors
def commit(container: str, name: str | None, message: str | None, author: str | None,
           changes: tuple[str, ...], quiet: bool) -> None:
    """Create an image from a container's changes."""
    from rootless.engine import ship

    click.echo(ship.commit(container, name, message=message, author=author,
                           changes=list(changes),
                           source_epoch=_source_epoch()).partition(":")[2])


def _source_epoch(option: int | None = None) -> int | None:
    """The source epoch of a build, commit or import: --timestamp, else the
    SOURCE_DATE_EPOCH environment variable (as buildx reads it), else None (now)."""
    if option is not None:
        return option
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    return int(value) if value.isdigit() else None


def _pairs(items: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not k:
            raise InvalidArgument(f"invalid {what} {item!r}", "use KEY=VALUE")
        if not sep:
            v = os.environ.get(k)
            if v is None:
                continue
        out[k] = v
    return out


@click.command()
@click.argument("context", default=".")
@click.option("-t", "--tag", "tags", multiple=True, help="Name the image (repeatable).")
@click.option("-f", "--file", "dockerfile", help="The Dockerfile (default CONTEXT/Dockerfile).")
@click.option("--build-arg", "build_args", multiple=True, metavar="KEY=VALUE",
              help="A build argument.")
@click.option("--target", help="Build this stage.")
@click.option("--no-cache", is_flag=True, help="Do not use the build cache.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
              help="Add a label to the image.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image id.")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]",
              help="The platform of the base images (RUN needs one this host runs).")
@click.option("--timestamp", type=int, metavar="SECONDS",
              help="Creation time and clamp for file times (reproducible images).")
@click.option("--secret", "secrets", multiple=True, metavar="id=ID[,src=FILE|env=VAR]",
              help="A secret for RUN --mount=type=secret (never stored in the image).")
@click.option("--ssh", "ssh", multiple=True, metavar="default|ID=SOCKET",
              help="An SSH agent socket for RUN --mount=type=ssh.")
@click.option("--network", default="default", type=click.Choice(["default", "none", "host"]),
              help="RUN steps' network: default (sandboxed, outbound only), none or host.")
@click.option("--add-host", "add_hosts", multiple=True, metavar="NAME:IP",
              help="An /etc/hosts line for RUN steps.")
@click.option("--iidfile", metavar="FILE", help="Write the image id to FILE.")
@click.option("-o", "--output", "outputs", multiple=True,
              metavar="type=local,dest=DIR|type=tar,dest=FILE|DIR",
              help="Also write the final stage's files to a directory or a tar.")
@click.option("--pull", is_flag=True, help="Always check the registry for FROM images.")
@click.option("--build-context", "build_contexts", multiple=True,
              metavar="NAME=DIR|docker-image://IMAGE|oci-layout://DIR[:TAG]",
              help="A named context for FROM, COPY --from and RUN --mount from=.")
@click.option("--cache-to", "cache_to", metavar="type=local,dest=DIR",
              help="Export the target's steps for a later --cache-from type=local,src=DIR.")
@click.option("--cache-from", "cache_from", multiple=True, metavar="IMAGE",
              help="Reuse the steps of this image (pulled if missing) where they match.")
@click.option("--progress", default="auto", type=click.Choice(["auto", "plain", "tty", "quiet"]),
              help="Output: auto, plain and tty show the steps; quiet prints only the id.")
@_exit_1
@_os_errors
def build(context: str, tags, dockerfile, build_args, target, no_cache, labels,
          quiet, platform, timestamp, secrets, ssh, network, add_hosts, iidfile, outputs,
          pull, progress, build_contexts, cache_to, cache_from) -> None:
    """Build an image from a Dockerfile."""
    from rootless.build import runmounts
    from rootless.cli import progress as cli_progress
    from rootless.engine import build as engine

    if timestamp is not None and timestamp < 0:
        raise InvalidArgument("--timestamp must be >= 0")
    epoch = _source_epoch(timestamp)
    quiet = quiet or progress == "quiet"
    secret_map = dict(runmounts.parse_secret(s) for s in secrets)
    ssh_map = dict(runmounts.parse_ssh(s) for s in ssh)
    for h in add_hosts:
        name, sep, ip = h.partition(":")
        if not sep or not name or not ip or not _is_ip(ip):
            raise InvalidArgument(f"--add-host {h!r}: expected NAME:IP",
                                  "e.g. --add-host db:10.0.0.5")
    cache_from = tuple(_cache_from_ref(c) for c in cache_from)
    cache_dir = _cache_to(cache_to)
    output = [engine.parse_output(o) for o in outputs]
    if len(output) > 1:
        raise InvalidArgument("only one --output is supported")
    from rootless.engine import buildcontext

    named = _build_contexts(build_contexts)
    to_stdout = bool(output) and output[0].dest == "-" and output[0].type != "local"
    if to_stdout and sys.stdout.isatty():
        raise InvalidArgument("refusing to write an archive to a terminal",
                              "give dest=FILE or redirect the output")
    # the archive alone on stdout: the steps and RUN's output go to stderr meanwhile
    printer = None if quiet else cli_progress.BuildPrinter(cli_progress.for_terminal(False),
                                                           to_stderr=to_stdout)
    # "-" (the context or -f) is this process's stdin, unless that is a terminal
    stdin = None if sys.stdin.isatty() else sys.stdin.buffer
    with buildcontext.opened(context, dockerfile, stdin) as (context_dir, dockerfile_path):
        image_id = engine.build(engine.BuildOptions(
            context=context_dir, dockerfile=dockerfile_path, tags=list(tags),
            build_args=_pairs(build_args, "--build-arg"), target=target,
            no_cache=no_cache, labels=_pairs(labels, "--label"), quiet=quiet,
            platform=platform, secrets=secret_map, ssh=ssh_map, network=network,
            add_hosts=list(add_hosts), pull=pull, cache_from=list(cache_from),
            build_contexts=named, progress=printer, source_epoch=epoch))
    if output:
        sys.stdout.flush()
        engine.write_output(image_id, output[0], stream=sys.stdout.buffer, source_epoch=epoch)
    if cache_dir:
        engine.export_cache(image_id, cache_dir)
    if iidfile:
        with open(iidfile, "w") as f:
            f.write(image_id)
    if to_stdout:
        return  # stdout holds the archive
    click.echo(image_id.partition(":")[2] if quiet else
               f"--> {_short(image_id)}\n{image_id.partition(':')[2]}")


def _build_contexts(items) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise InvalidArgument(f"--build-context {item!r}: expected NAME=VALUE",
                                  "e.g. --build-context src=../lib or "
                                  "base=docker-image://alpine:3.20")
        if "://" in value and not value.startswith(("docker-image://", "oci-layout://")):
            raise InvalidArgument(f"--build-context {item!r}: {value.partition(':')[0]}:// "
                                  "is not supported",
                                  "give a directory, docker-image://IMAGE or "
                                  "oci-layout://DIR[:TAG]")
        if "://" not in value:
            if not os.path.isdir(value):
                raise InvalidArgument(f"--build-context {item!r}: {value}: no such "
                                      "directory")
            value = os.path.abspath(value)
        out[name] = value
    return out


def _cache_from_ref(spec: str) -> str:
    """IMAGE, buildx's type=registry,ref=IMAGE, or type=local,src=DIR (what --cache-to
    type=local wrote: "local:DIR" for the engine); other cache types are refused."""
    if "=" not in spec:
        return spec
    kv = dict(p.partition("=")[::2] for p in spec.split(","))
    kind = kv.get("type", "registry")
    if kind == "registry" and kv.get("ref"):
        return kv["ref"]
    if kind == "local" and kv.get("src"):
        return "local:" + os.path.abspath(kv["src"])
    raise InvalidArgument(f"--cache-from {spec}: not supported",
                          "give IMAGE, type=registry,ref=IMAGE or type=local,src=DIR")


def _cache_to(spec: str | None) -> str | None:
    """--cache-to type=local,dest=DIR[,mode=min] -> DIR."""
    if spec is None:
        return None
    kv = dict(p.partition("=")[::2] for p in spec.split(","))
    if kv.get("type") == "local" and kv.get("dest") and kv.get("mode", "min") == "min":
        return os.path.abspath(kv["dest"])
    raise InvalidArgument(f"--cache-to {spec}: not supported",
                          "give type=local,dest=DIR (mode=min: the target's steps)")


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


@click.group()
def builder() -> None:
    """Manage the build cache."""


@builder.command("prune")
@click.option("-a", "--all", "all_", is_flag=True,
              help="Remove all unused build cache, not just dangling ones (also forget "
                   "every cached step's record).")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="until=TIME (last used before TIME: a duration like 24h, RFC 3339 or "
                   "Unix time), type=exec.cachemount|regular.")
@_os_errors
def builder_prune(all_: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove build cache: RUN --mount=type=cache directories no build holds and the
    cached steps' images no container uses."""
    from rootless.cli import options
    from rootless.cli.system import reclaimed_line
    from rootless.engine import filters as flt
    from rootless.engine import system as engine

    parsed = flt.parse(filters, engine.BUILDER_PRUNE_KEYS)
    engine.check_cache_filters(parsed)  # refused before asking
    if not force:  # Docker's words (cli/command/builder/prune.go)
        what = "all build cache" if all_ else "all dangling build cache"
        if not options.confirm(f"WARNING! This will remove {what}. "
                               "Are you sure you want to continue?"):
            raise options.cancelled("builder prune")
    out = engine.prune_build_cache(all_, parsed)
    if out.cache:
        click.echo("Deleted build cache objects:")
        for name in out.cache:
            click.echo(name.partition(":")[2] or name)
    click.echo(reclaimed_line(out.reclaimed))

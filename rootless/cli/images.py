"""Image commands: pull, images (image ls), image inspect/rm/prune/pull/tag, tag, rmi,
login, logout. Parsing and printing only; the work is in rootless.engine.images."""

from __future__ import annotations

import sys
import time
from datetime import datetime

import click

from rootless.engine import images as engine
from rootless.engine.filters import IMAGES_KEYS as _IMAGES_KEYS


def _human_size(n: int) -> str:
    # Docker's units: powers of 1000.
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.3g}{unit}"
        value /= 1000
    return f"{n}B"


def _ago(created: str | None) -> str:
    if not created:
        return "N/A"
    try:
        when = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return created
    delta = max(0, time.time() - when)
    for seconds, unit in ((365 * 86400, "year"), (30 * 86400, "month"), (7 * 86400, "week"),
                          (86400, "day"), (3600, "hour"), (60, "minute")):
        if delta >= seconds:
            k = int(delta // seconds)
            return f"{k} {unit}{'s' if k > 1 else ''} ago"
    return "Less than a minute ago"


def _split_name(name: str) -> tuple[str, str, str]:
    """(repository, tag, digest) for display."""
    if "@" in name:
        repo, digest = name.split("@", 1)
        return repo, "<none>", digest
    repo, _, tag = name.rpartition(":")
    return repo, tag, ""


# -- pull --

@click.command()
@click.argument("reference")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image id.")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]",
              help="Pull this platform from a multi-platform image.")
def pull(reference: str, quiet: bool, platform: str | None) -> None:
    """Pull an image from a registry."""
    from rootless.cli import progress as cli_progress

    record = engine.pull(reference, platform=platform,
                         progress=cli_progress.for_terminal(quiet))
    click.echo(record.id.partition(":")[2])


# -- images / image ls --



def _list(repository: str | None, quiet: bool, digests: bool, fmt: str | None,
          no_trunc: bool, all_images: bool, filters: tuple[str, ...] = ()) -> None:
    from rootless.cli import options

    flt = options.parse_filters(filters, _IMAGES_KEYS)
    if fmt not in (None, "table", "json") and not quiet:
        options.compile_format(fmt)
    records = engine.list_images(repository, all_images=all_images, filters=flt)
    if quiet:
        seen = []
        for r in records:
            ident = r.id if no_trunc else r.short_id
            if ident not in seen:
                seen.append(ident)
        click.echo("\n".join(seen) if seen else "", nl=bool(seen))
        return
    if fmt not in (None, "table"):
        from rootless.format import docker_shapes as shapes

        now = time.time()
        options.echo_formatted(fmt, (d for r in records
                                     for d in shapes.image_docs(r, no_trunc=no_trunc, now=now)),
                               shapes.IMAGES_HEADER)
        return
    rows = []
    for r in records:
        tags = r.repo_tags or [n for n in r.names] or ["<none>:<none>"]
        if not r.repo_tags and r.names:
            tags = [f"{_split_name(n)[0]}:<none>" for n in r.names]
        for name in dict.fromkeys(tags):
            repo, tag, _ = _split_name(name) if name != "<none>:<none>" else ("<none>",
                                                                             "<none>", "")
            row = [repo, tag]
            if digests:
                row.append(r.manifest_digest)
            row += [r.id if no_trunc else r.short_id, _ago(r.created), _human_size(r.size)]
            rows.append(row)
    header = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + \
        ["IMAGE ID", "CREATED", "SIZE"]
    from rootless.cli.tables import rows as table_rows

    click.echo("\n".join(table_rows([header, *rows], sep="   ")))  # one write, not one per row


_list_options = [
    click.argument("repository", required=False),
    click.option("-a", "--all", "all_images", is_flag=True,
                 help="Show intermediate images of builds too."),
    click.option("-q", "--quiet", is_flag=True, help="Print only image ids."),
    click.option("--digests", is_flag=True, help="Show manifest digests."),
    click.option("--format", "fmt", metavar="FORMAT",
                 help="table (default), json (one object a line) or a Go template, e.g. "
                      "'{{.Repository}}:{{.Tag}}'."),
    click.option("--no-trunc", is_flag=True, help="Do not shorten image ids."),
    click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
                 help="Filter output (dangling, label, before, since, reference)."),
]


def _with_list_options(fn):
    for option in reversed(_list_options):
        fn = option(fn)
    return fn


@click.command()
@_with_list_options
def images(repository, all_images, quiet, digests, fmt, no_trunc, filters) -> None:
    """List images."""
    _list(repository, quiet, digests, fmt, no_trunc, all_images, filters)


# -- tag, rmi --

@click.command()
@click.argument("source")
@click.argument("target")
def tag(source: str, target: str) -> None:
    """Give the image SOURCE the name TARGET."""
    engine.tag(source, target)


@click.command()
@click.argument("refs", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True,
              help="Remove an image with several names; untag one used by a container.")
def rmi(refs: tuple[str, ...], force: bool) -> None:
    """Remove images."""
    result = engine.remove(list(refs), force=force)
    for name in result.untagged:
        click.echo(f"Untagged: {name}")
    for image_id in result.deleted:
        click.echo(f"Deleted: {image_id}")


# -- image group --

def _alias_group():
    from rootless.cli.lazy import AliasGroup

    return AliasGroup


@click.group(cls=_alias_group(), aliases={
    "inspect": ("rootless.cli.inspect", "image_inspect"),
    **{verb: ("rootless.cli.build", attr) for verb, attr in (
        ("build", "build"), ("push", "push"), ("save", "save"), ("load", "load"),
        ("import", "import_"), ("history", "history"))}})
def image() -> None:
    """Manage images."""


@image.command("ls")
@_with_list_options
def image_ls(repository, all_images, quiet, digests, fmt, no_trunc, filters) -> None:
    """List images."""
    _list(repository, quiet, digests, fmt, no_trunc, all_images, filters)


@image.command("prune")
@click.option("-a", "--all", "all_images", is_flag=True,
              help="Remove every image no container uses, not only dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="label=KEY[=VALUE], label!=KEY[=VALUE] or until=TIME.")
def image_prune(all_images: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused images and the layers only they used."""
    from rootless.cli import system as cli_system
    from rootless.engine import system as engine_system

    flt = cli_system.prune_filters(filters)
    if not force:
        cli_system.ask("WARNING! This will remove all images without at least one container "
                       "associated to them." if all_images
                       else "WARNING! This will remove all dangling images.", "image prune")
    out = engine_system.prune_images(all_images, flt)
    if out.images:
        click.echo("Deleted Images:\n" + "".join(f"deleted: {i}\n" for i in out.images))
    click.echo(cli_system.reclaimed_line(out.reclaimed))


image.add_command(pull, "pull")
image.add_command(tag, "tag")
image.add_command(rmi, "rm")
image.add_command(rmi, "remove")
image.add_command(image_ls, "list")


# -- login, logout --

@click.command()
@click.argument("registry", required=False)
@click.option("-u", "--username", help="User name.")
@click.option("-p", "--password", help="Password (visible in `ps`; prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
def login(registry: str | None, username: str | None, password: str | None,
          password_stdin: bool) -> None:
    """Log in to a registry (default docker.io); credentials are stored for pulls."""
    if password_stdin:
        if password:
            raise click.UsageError("--password and --password-stdin are exclusive")
        password = sys.stdin.read().rstrip("\n")
    if not username:
        if not sys.stdin.isatty():
            raise click.UsageError("give -u USERNAME when stdin is not a terminal")
        username = click.prompt("Username")
    if not password:
        if not sys.stdin.isatty():
            raise click.UsageError("give --password-stdin or -p when stdin is not a terminal")
        password = click.prompt("Password", hide_input=True)
    engine.login(registry, username, password)
    click.echo("Login Succeeded!")


@click.command()
@click.argument("registry", required=False)
@click.option("-a", "--all", "all_registries", is_flag=True,
              help="Forget the credentials of every registry.")
def logout(registry: str | None, all_registries: bool) -> None:
    """Log out from a registry (default docker.io)."""
    if engine.logout(registry, all_registries=all_registries):
        click.echo("Removed login credentials" + ("" if all_registries
                                                  else f" for {registry or 'docker.io'}"))
    else:
        from rootless.errors import NotFound

        raise NotFound(f"not logged in to {registry or 'docker.io'}")

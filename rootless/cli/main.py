"""Entry point of `rl`: a click group whose commands are imported only when used.

`rl run --rm IMAGE true` must not pay for importing the code of `rl build` or `rl network`,
so each command lives in a module named in COMMANDS and is imported on first use. A command
whose module is not part of this build is not listed. Short help texts sit in the table so
that `rl --help` imports nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from rootless import __version__
from rootless.errors import RlError

# name -> (module, attribute, short help). Group the commands by the module that holds them.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "info": ("rootless.cli.system", "info", "Show what this host offers rootless containers"),
    "version": ("rootless.cli.system", "version", "Show the rl version"),
    "system": ("rootless.cli.system", "system", "Manage rl: disk usage, prune, info"),
    # images (rootless/cli/images.py)
    "pull": ("rootless.cli.images", "pull", "Pull an image from a registry"),
    "images": ("rootless.cli.images", "images", "List images"),
    "image": ("rootless.cli.images", "image", "Manage images"),
    "tag": ("rootless.cli.images", "tag", "Give an image another name"),
    "rmi": ("rootless.cli.images", "rmi", "Remove images"),
    "login": ("rootless.cli.images", "login", "Log in to a registry"),
    "logout": ("rootless.cli.images", "logout", "Log out from a registry"),
    # containers (rootless/cli/containers.py)
    "run": ("rootless.cli.containers", "run", "Run a command in a new container"),
    "create": ("rootless.cli.containers", "create", "Create a container"),
    "start": ("rootless.cli.containers", "start", "Start containers"),
    "stop": ("rootless.cli.containers", "stop", "Stop containers"),
    "kill": ("rootless.cli.containers", "kill", "Send a signal to containers"),
    "restart": ("rootless.cli.containers", "restart", "Restart containers"),
    "rm": ("rootless.cli.containers", "rm", "Remove containers"),
    "ps": ("rootless.cli.containers", "ps", "List containers"),
    "logs": ("rootless.cli.containers", "logs", "Show a container's output"),
    "wait": ("rootless.cli.containers", "wait", "Wait for containers to exit"),
    "inspect": ("rootless.cli.inspect", "inspect", "Show low-level information as JSON"),
    "exec": ("rootless.cli.containers", "exec_", "Run a command in a running container"),
    "attach": ("rootless.cli.attach", "attach", "Attach to a running container"),
    "top": ("rootless.cli.containers", "top", "Show a container's processes"),
    "pause": ("rootless.cli.pause", "pause", "Pause containers (cgroup v2 freezer: see rl info)"),
    "unpause": ("rootless.cli.pause", "unpause", "Unpause containers"),
    "cp": ("rootless.cli.containers", "cp", "Copy files between a container and the host"),
    "events": ("rootless.cli.events", "events", "Show what happens to containers and images"),
    "stats": ("rootless.cli.stats", "stats", "Show containers' CPU, memory and I/O (from /proc)"),
    "rename": ("rootless.cli.changes", "rename", "Rename a container"),
    "diff": ("rootless.cli.changes", "diff", "List the files a container changed"),
    "container": ("rootless.cli.containers", "container", "Manage containers"),
    "unshare": ("rootless.cli.containers", "unshare", "Run a command in rl's user namespace"),
    "healthcheck": ("rootless.cli.containers", "healthcheck", "Run containers' health checks"),
    "generate": ("rootless.cli.containers", "generate", "Generate systemd units"),
    "update": ("rootless.cli.containers", "update", "Change containers' restart policy and limits"),
    "port": ("rootless.cli.networks", "port", "List a container's published ports"),
    "network": ("rootless.cli.networks", "network", "Manage networks"),
    "volume": ("rootless.cli.volumes", "volume", "Manage volumes"),
    # build and ship (rootless/cli/build.py)
    "build": ("rootless.cli.build", "build", "Build an image from a Dockerfile"),
    "builder": ("rootless.cli.build", "builder", "Manage the build cache"),
    "push": ("rootless.cli.build", "push", "Push an image to a registry"),
    "save": ("rootless.cli.build", "save", "Save images to a tar archive"),
    "load": ("rootless.cli.build", "load", "Load images from a tar archive"),
    "import": ("rootless.cli.build", "import_", "Create an image from a rootfs tarball"),
    "export": ("rootless.cli.build", "export", "Export a container's filesystem as a tar"),
    "history": ("rootless.cli.build", "history", "Show the history of an image"),
    "commit": ("rootless.cli.build", "commit", "Create an image from a container's changes"),
    # multi-container applications (rootless/cli/compose.py, rootless/compose/)
    "compose": ("rootless.cli.compose", "compose", "Run applications from compose files"),
}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n, (mod, _, _) in COMMANDS.items() if _available(mod))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None or not _available(entry[0]):
            return None
        module = importlib.import_module(entry[0])
        return getattr(module, entry[1])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, COMMANDS[n][2]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-v", "--version", prog_name="rl",
                      message="%(prog)s version %(version)s")
def cli() -> None:
    """rl: run containers as a normal user, the way Docker does, without a daemon or root."""


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        if args[:1] == ["run"]:
            # Fork the rootfs server before anything else is imported: its ~90 ms of imports
            # then overlap ours and the container's set-up (rootless/runtime/early.py).
            from rootless.runtime import early

            early.start_for_run(args[1:])
        cli.main(args=argv, prog_name="rl", standalone_mode=False)
    except RlError as exc:
        _error(str(exc))
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:  # Ctrl-C (click turns it into Abort): quiet, as Docker
        sys.exit(130)
    except click.NoSuchOption as exc:
        # Docker's wording: click's "Did you mean" guesses mislead (--gpus -> --cpus).
        where = exc.ctx.command_path if exc.ctx else "rl"
        _unknown_flag(exc.option_name, where)
        sys.exit(125)
    except click.UsageError as exc:
        # One line, and exit 125 as Docker does for a bad flag.
        where = exc.ctx.command_path if exc.ctx else "rl"
        _error(f"{exc.format_message()} (see '{where} --help')")
        sys.exit(125)
    except click.ClickException as exc:
        _error(exc.format_message())
        sys.exit(125)
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug of rl, or a case it does not handle: never a traceback
        _internal_error(exc, args)
        sys.exit(125)
    sys.exit(0)


def _unknown_flag(option: str, where: str) -> None:
    """`unknown flag: --gpus` / `unknown shorthand flag: 'x' in -x`, then where the help
    is, on stderr, as Docker (its cobra) words it."""
    from rootless.cli.tables import printable

    option = printable(option)
    if option.startswith("--") or not option.startswith("-"):
        first = f"unknown flag: {option}"
    else:
        first = f"unknown shorthand flag: '{option[1:2]}' in {option}"
    click.echo(f"{first}\nSee '{where} --help'.", err=True)


def _error(text: str) -> None:
    from rootless.cli.tables import printable_lines

    # Messages carry what registries, images and containers wrote: no escape sequences.
    click.echo(f"rl: error: {printable_lines(text)}", err=True)


def _internal_error(exc: Exception, args: list[str]) -> None:
    """One line naming the exception and the log that holds its traceback
    (rootless/crashlog.py); the traceback on stderr too with RL_DEBUG set."""
    from rootless import crashlog

    # Only the command's name: its arguments may hold secrets (-e, login -p).
    where = " ".join(["rl", *args[:1]])
    logged = crashlog.record(exc, where)
    if crashlog.debug():
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    details = f"details in {logged}" if logged else \
        f"its details could not be logged; run again with {crashlog.DEBUG_ENV}=1 to see them"
    _error(f"internal error: {crashlog.summary(exc)} ({details})")

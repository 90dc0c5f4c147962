"""`rl system service`: the Docker Engine API for Docker clients (rootless/api)."""

from __future__ import annotations

import click


@click.command()
@click.option("-t", "--time", "idle", default=5.0, type=float, metavar="SECONDS",
              show_default=True, help="Exit after this many seconds with no client "
              "connected (0: never).")
@click.argument("uri", required=False)
def service(idle: float, uri: str | None) -> None:
    """Serve the Docker Engine API on unix://$XDG_RUNTIME_DIR/rl/rl.sock (default), a
    unix:///PATH, or tcp://127.0.0.1:PORT (any local user could connect: warned).
    Docker clients use it with DOCKER_HOST=unix://... (see `rl info`)."""
    import sys

    from rootless.api import forker, listen, server
    from rootless.store import paths

    if idle < 0:
        raise click.BadParameter("must be 0 (never) or more", param_hint="--time")
    # before any socket or thread exists: the engine's forking verbs run in its workers
    forker.install(forker.Forker.start())
    socks, unix, cleanup, shown, warning = listen.open_listener(uri)
    if warning:
        print(f"rl system service: warning: {warning}", file=sys.stderr, flush=True)
    paths.ensure_store()
    tmp = paths.data_dir() / "tmp"  # request bodies (build contexts, archives) spool here
    tmp.mkdir(mode=0o700, exist_ok=True)
    print(f"rl system service: listening on {shown}"
          + (f" (exits after {idle:g} s without clients)" if idle else ""),
          file=sys.stderr, flush=True)
    server.Service(socks, idle=idle, unix=unix, cleanup=cleanup, tmpdir=str(tmp)).run()

"""`rl cp`: copy between a container (running: joined; stopped: its root filesystem) and
the host (rootless/runtime/copying.py does the copying)."""

from __future__ import annotations

from rootless.errors import InvalidArgument
from rootless.store.containerdb import lookup


def cp(src: str, dst: str) -> None:
    from rootless.runtime import copying

    s_ctr, s_path = _split_cp(src)
    d_ctr, d_path = _split_cp(dst)
    if (s_ctr is None) == (d_ctr is None):
        raise InvalidArgument("rl cp copies between a container and the host",
                              "write one side as CONTAINER:PATH")
    c = lookup(s_ctr if s_ctr is not None else d_ctr)
    target = copy_target(c)
    if s_ctr is not None:
        copying.copy_out(target, s_path, d_path)
    else:
        copying.copy_in(target, s_path, d_path)


def copy_target(c):
    """What runtime/copying joins for container `c`: its pid 1 while it runs (its mounts,
    volumes included, are seen as it sees them), else its root filesystem description."""
    if c.state == "running" and c.pid:
        return c.pid
    from rootless.runtime.rootfs import RootfsSpec

    return RootfsSpec.load(str(c.dir / "rootfs.json"))


def _split_cp(arg: str) -> tuple[str | None, str]:
    if ":" in arg and not arg.startswith(("/", ".")):
        name, _, path = arg.partition(":")
        return name, path or "/"
    return None, arg

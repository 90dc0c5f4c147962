"""`rl cp`: copy between a container (running: joined; stopped: its root filesystem) and
the host (rootless/runtime/copying.py does the copying)."""

from __future__ import annotations

from rootless.errors import InvalidArgument
from rootless.store.containerdb import lookup


def cp(src: str, dst: str, *, archive: bool = False, follow_link: bool = False,
       stdin: int | None = None, stdout: int | None = None) -> None:
    """`rl cp`: `-a` (archive) keeps the uid/gid of what is copied in, `-L` follows a
    symlink at the source; `-` as src or dst is a tar stream on the fd `stdin`/`stdout`."""
    from rootless.runtime import copying

    s_ctr, s_path = (None, "-") if src == "-" else _split_cp(src)
    d_ctr, d_path = (None, "-") if dst == "-" else _split_cp(dst)
    if (s_ctr is None) == (d_ctr is None):
        raise InvalidArgument("rl cp copies between a container and the host",
                              "write one side as CONTAINER:PATH")
    c = lookup(s_ctr if s_ctr is not None else d_ctr)
    if c.state == "running" and c.pid:
        target = c.pid  # join it: its mounts (volumes) are seen as it sees them
    else:
        from rootless.runtime.rootfs import RootfsSpec

        target = RootfsSpec.load(str(c.dir / "rootfs.json"))
    if s_ctr is not None:
        copying.copy_out(target, s_path, None if dst == "-" else d_path, follow=follow_link,
                         out_fd=stdout if dst == "-" else None)
    else:
        copying.copy_in(target, None if src == "-" else s_path, d_path, archive=archive,
                        follow=follow_link, in_fd=stdin if src == "-" else None)


def _split_cp(arg: str) -> tuple[str | None, str]:
    if ":" in arg and not arg.startswith(("/", ".")):
        name, _, path = arg.partition(":")
        return name, path or "/"
    return None, arg

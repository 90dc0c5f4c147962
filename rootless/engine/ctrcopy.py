"""`rl cp`: copy between a container (running: joined, so its volumes are seen as it sees
them; stopped: its root filesystem mounted) and the host (rootless/runtime/copying.py does
the copying). A front end says which side is the container; CONTAINER:PATH is CLI syntax,
parsed by the CLI."""

from __future__ import annotations

from rootless.store.containerdb import lookup


def copy_target(ref: str):
    """What runtime/copying joins for container `ref`: its pid 1 while it runs (its mounts,
    volumes included, are seen as it sees them), else its root filesystem description
    (also for the API's archive endpoints: engine/archive.py)."""
    c = lookup(ref)
    if c.state == "running" and c.pid:
        return c.pid
    from rootless.runtime.rootfs import RootfsSpec

    return RootfsSpec.load(str(c.dir / "rootfs.json"))


def copy_from(ref: str, path: str, dest: str | None, *, follow_link: bool = False,
              out_fd: int | None = None) -> None:
    """`path` of the container (a file or a tree) to `dest` on the host, or with `out_fd`
    (`rl cp CONTAINER:PATH -`) as a tar stream written there. `follow_link` (-L): a
    symlink at `path` is followed, inside the container."""
    from rootless.runtime import copying

    copying.copy_out(copy_target(ref), path, dest, follow=follow_link, out_fd=out_fd)


def copy_to(ref: str, source: str | None, path: str, *, archive: bool = False,
            follow_link: bool = False, in_fd: int | None = None) -> None:
    """`source` on the host (a file or a tree) to `path` in the container, or with `in_fd`
    (`rl cp - CONTAINER:DIR`) a tar stream read there, extracted into the directory
    `path`. As Docker's: owned by root unless `archive` (-a) keeps the source's uid/gid;
    `follow_link` (-L) follows a symlink at `source`."""
    from rootless.runtime import copying

    copying.copy_in(copy_target(ref), source, path, archive=archive, follow=follow_link,
                    in_fd=in_fd)

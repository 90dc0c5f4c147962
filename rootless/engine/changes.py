"""`rl diff`: what a container changed in its filesystem, as Docker lists it (A added,
C changed, D deleted), read from its upper dir against the image's layers.

The upper dir is the container's to write, and it changes while we read it: it is walked
by directory fd (rootless/linux/safepath.py), one name at a time, never following a
symlink (a symlink the container planted is an entry to report, not a way out). The
layers are looked up the same way: a layer is an image's, written by whoever made it.

Docker's rules (moby's archive.changes over an overlay upper dir): a name in the upper
dir that a lower layer shows is C, else A; a whiteout (`.wh.NAME`, or a character device
0/0) is D for NAME; the parent directory of an A or D is C if not listed already. Names
come out in the order of a walk sorted by name, parents before children. Whiteouts and
opaque markers are stored as fuse_overlay/metadata.py describes.
"""

from __future__ import annotations

import json
import os
import stat

from rootless.linux import safepath

WHITEOUT_PREFIX = ".wh."  # fuse_overlay/metadata.py (not imported: rl does not need it
OPAQUE_MARKER = ".wh..wh..opq"  # loaded for a diff, and the names are the OCI format's)


def _open_layers(lowerdirs: list[str]) -> list[int]:
    fds = []
    for d in lowerdirs:
        try:
            fds.append(os.open(d, safepath.DIR_FLAGS))
        except OSError:
            continue
    return fds


def _in_lower(layer_fds: list[int], parts: list[str]) -> bool:
    """Whether the image (its layers, TOP first) shows the path `parts`: the first layer
    that holds the name, or hides it (a whiteout, an opaque parent), decides."""
    parent, name = "/".join(parts[:-1]), parts[-1]
    for lfd in layer_fds:
        try:
            dfd = safepath.open_beneath(lfd, parent or ".", safepath.DIR_FLAGS)
        except OSError:
            continue  # not in this layer (or a symlink there: not a directory we enter)
        try:
            if safepath.lstat_at(dfd, name) is not None:
                return True
            if safepath.lstat_at(dfd, WHITEOUT_PREFIX + name) is not None:
                return False
            if safepath.lstat_at(dfd, OPAQUE_MARKER) is not None:
                return False
        finally:
            os.close(dfd)
    return False


def _is_whiteout_device(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def changes(upperdir: str, lowerdirs: list[str]) -> list[tuple[str, str]]:
    """[(kind, path)] of the upper dir against the lower dirs (TOP first)."""
    out: list[tuple[str, str]] = []
    listed: set[str] = set()
    layer_fds = _open_layers(lowerdirs)
    try:
        root = os.open(upperdir, safepath.DIR_FLAGS)
    except OSError:
        for fd in layer_fds:
            os.close(fd)
        return out

    def add(kind: str, parts: list[str]) -> None:
        path = "/" + "/".join(parts)
        if kind in ("A", "D") and len(parts) > 1:
            parent = "/" + "/".join(parts[:-1])
            if parent not in listed:
                out.append(("C", parent))
                listed.add(parent)
        if path not in listed:
            out.append((kind, path))
            listed.add(path)

    def walk(dfd: int, parts: list[str]) -> None:
        for name, st in safepath.entries(dfd):
            if name == OPAQUE_MARKER:
                continue
            if name.startswith(WHITEOUT_PREFIX):
                add("D", [*parts, name[len(WHITEOUT_PREFIX):]])
                continue
            here = [*parts, name]
            if _is_whiteout_device(st):
                add("D", here)
                continue
            add("C" if _in_lower(layer_fds, here) else "A", here)
            if stat.S_ISDIR(st.st_mode):
                try:
                    sub = safepath.open_dir(dfd, name)
                except OSError:
                    continue  # swapped for a symlink meanwhile, or not ours to read
                try:
                    walk(sub, here)
                finally:
                    os.close(sub)

    try:
        walk(root, [])
    finally:
        os.close(root)
        for fd in layer_fds:
            os.close(fd)
    return out


def container_changes(ref: str) -> list[tuple[str, str]]:
    """`rl diff CONTAINER`: the container's changes, any state."""
    from rootless.engine import containers

    c = containers.lookup(ref)
    with open(c.dir / "rootfs.json") as f:  # rl's own file, beside the upper dir
        spec = json.load(f)
    return changes(spec["upperdir"], spec["lowerdirs"])

"""`rl diff`: what a container changed in its filesystem, as Docker lists it (A added,
C changed, D deleted), read from its upper dir against the image's layers.

The upper dir is the container's to write, and it changes while we read it: it is walked
by directory fd (rootless/linux/safepath.py), one name at a time, never following a
symlink (a symlink the container planted is an entry to report, not a way out). The
layers are looked up the same way: a layer is an image's, written by whoever made it.

Docker's rules (moby's archive.changes over an overlay upper dir): a name in the upper
dir that a lower layer shows is C, else A; a whiteout (`.wh.NAME`, or a character device
0/0) is D for NAME; the directories above a change are C. Names come out in the order of
a walk sorted by name, parents before children. The mount points the runtime makes in
every container (INIT_PATHS) are left out, as Docker's init layer keeps them out. Whiteouts and
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


# What the runtime itself puts in the upper dir for every container (mount points of /dev,
# /proc, /sys and of the files it bind-mounts): Docker keeps these in a hidden "init" layer
# below the container's own, so `docker diff` never lists them; neither does rl.
INIT_PATHS = frozenset({"/dev", "/proc", "/sys", "/etc/hostname", "/etc/hosts",
                        "/etc/resolv.conf", "/etc/mtab", "/.dockerenv"})


def changes(upperdir: str, lowerdirs: list[str]) -> list[tuple[str, str]]:
    """[(kind, path)] of the upper dir against the lower dirs (TOP first).

    A directory the image has is listed as C only when something below it is listed (it
    is in the upper dir because a name below it changed, or because the runtime made a
    mount point there)."""
    out: list[tuple[str, str]] = []
    pending: list[str] = []  # directories of the image entered, not listed yet
    layer_fds = _open_layers(lowerdirs)
    try:
        root = os.open(upperdir, safepath.DIR_FLAGS)
    except OSError:
        for fd in layer_fds:
            os.close(fd)
        return out

    def emit(kind: str, parts: list[str]) -> None:
        out.extend(("C", p) for p in pending)  # Docker: the parent of a change is C
        pending.clear()
        out.append((kind, "/" + "/".join(parts)))

    def walk(dfd: int, parts: list[str]) -> None:
        for name, st in safepath.entries(dfd):
            if name == OPAQUE_MARKER:
                continue
            if name.startswith(WHITEOUT_PREFIX):
                emit("D", [*parts, name[len(WHITEOUT_PREFIX):]])
                continue
            here = [*parts, name]
            path = "/" + "/".join(here)
            if path in INIT_PATHS:
                continue
            if _is_whiteout_device(st):
                emit("D", here)
                continue
            in_image = _in_lower(layer_fds, here)
            if not stat.S_ISDIR(st.st_mode):
                emit("C" if in_image else "A", here)
                continue
            if in_image:
                pending.append(path)
            else:
                emit("A", here)
            try:
                sub = safepath.open_dir(dfd, name)
            except OSError:
                sub = -1  # swapped for a symlink meanwhile, or not ours to read
            if sub >= 0:
                try:
                    walk(sub, here)
                finally:
                    os.close(sub)
            if pending and pending[-1] == path:
                pending.pop()  # nothing below it changed

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

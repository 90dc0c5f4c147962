"""A container's volumes, bind mounts and tmpfs mounts: from `-v`/`--mount`/`--tmpfs` and
the image's VOLUME entries to OCI spec mounts, and the bookkeeping of which container
uses which volume (the `container_volumes` table that `rl volume rm` and `prune` read).

`plan(...)` only parses and checks (no side effect, so bad input leaves everything as it
was); `MountPlan.realize()` creates the volumes the container needs (named ones on first
use, anonymous ones always) and returns the spec mounts; `MountPlan.undo()` removes what
realize created when the container could not be created after all.

Copy-up: a volume mount (not `nocopy`) carries the option `rl-copyup`; pid 1 then copies the
image's files at the target into the volume when the volume is empty, with their owners and
modes, before mounting it (rootless/runtime/volcopy.py). pid 1 does it because only inside
the container's user namespace are the image's owners (as fuse_overlay presents them) and a
chown to them possible.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field

from rootless.engine import mountspec
from rootless.engine.mountspec import Mount
from rootless.errors import InvalidArgument

COPYUP = "rl-copyup"
# Docker's defaults for --tmpfs
TMPFS_DEFAULTS = ["nosuid", "nodev", "noexec"]


@dataclass
class MountPlan:
    requests: list[Mount]
    created: list[str] = field(default_factory=list)  # volumes realize() made
    volumes: list[str] = field(default_factory=list)  # every volume the container uses
    anonymous: list[str] = field(default_factory=list)

    def realize(self) -> list[dict]:
        """Create the needed volumes; the OCI mounts, sorted so that a parent is mounted
        before what is mounted below it."""
        from rootless.store import catalog
        from rootless.store import volumes as store

        out: list[dict] = []
        if not self.requests:  # the usual `rl run`: no catalog work at all
            return out
        with catalog.session() as conn:
            for req in self.requests:
                if req.type == "tmpfs":
                    opts = mountspec.merge_tmpfs_options(
                        [*TMPFS_DEFAULTS, "mode=1777"],
                        req.tmpfs_options + (["ro"] if req.readonly else []))
                    out.append({"destination": req.target, "type": "tmpfs", "source": "tmpfs",
                                "options": opts})
                    continue
                options = ["rbind", req.propagation] + (["ro"] if req.readonly else [])
                if req.type == "bind":
                    source = req.source
                    if not os.path.exists(source):
                        if not req.create_source:
                            raise InvalidArgument(f"bind source path {source} does not exist",
                                                  "create it first, or use -v, which does")
                        try:  # Docker creates a missing -v source dir, and so do we
                            os.makedirs(source, exist_ok=True)
                        except OSError as exc:
                            raise InvalidArgument(
                                f"bind source path {source} does not exist and cannot be "
                                f"created: {exc.strerror}",
                                "create it first, or give a path you may write") from None
                else:
                    name = req.source
                    if name is None:
                        import secrets

                        name = secrets.token_hex(32)
                        vol = store.create(conn, name, anonymous=True)
                        self.created.append(name)
                        self.anonymous.append(name)
                    else:
                        existed = store.find(conn, name) is not None
                        vol = store.create(conn, name, exist_ok=True)
                        if not existed:
                            self.created.append(name)
                    if name not in self.volumes:
                        self.volumes.append(name)
                    source = str(vol.mountpoint)
                    if not req.nocopy:
                        options.append(COPYUP)
                out.append({"destination": req.target, "type": "bind", "source": source,
                            "options": options})
        out.sort(key=lambda m: m["destination"].count("/"))
        return out

    def undo(self) -> None:
        from rootless.store import catalog
        from rootless.store import volumes as store

        with catalog.session() as conn:
            for name in self.created:
                try:
                    store.remove(conn, name)
                except Exception:
                    pass


def plan(*, mounts: list[Mount], image_config: dict) -> MountPlan:
    """Check every mount the front end gave and add the image's VOLUME entries (an
    anonymous volume for each one no mount already covers). Raises InvalidArgument,
    changes nothing."""
    reqs = [mountspec.checked(m) for m in mounts]
    mountspec.check_unique_targets(reqs)
    taken = {r.target for r in reqs}
    for path in sorted((image_config.get("config") or {}).get("Volumes") or {}):
        target = posixpath.normpath("/" + path.lstrip("/"))
        if target != "/" and target not in taken:
            reqs.append(Mount("volume", target))
            taken.add(target)
    return MountPlan(reqs)


def record(conn, container_id: str, container_name: str, mplan: MountPlan) -> None:
    """Inside the transaction that inserts the container's row."""
    for name in mplan.volumes:
        conn.execute("INSERT OR IGNORE INTO container_volumes (container, container_id, volume,"
                     " anonymous) VALUES (?,?,?,?)",
                     (container_name, container_id, name, int(name in mplan.anonymous)))


def release(container_id: str, *, remove_anonymous: bool) -> None:
    """The container is gone: forget its volumes, and remove its anonymous ones when
    asked (`rl rm -v`, `--rm`)."""
    from rootless.store import catalog
    from rootless.store import volumes as store

    with catalog.session() as conn:
        rows = conn.execute("SELECT volume, anonymous FROM container_volumes WHERE "
                            "container_id = ?", (container_id,)).fetchall()
        if not rows:  # no write lock taken for a container without volumes
            return
        with catalog.transaction(conn):
            rows = conn.execute("SELECT volume, anonymous FROM container_volumes WHERE "
                                "container_id = ?", (container_id,)).fetchall()
            conn.execute("DELETE FROM container_volumes WHERE container_id = ?",
                         (container_id,))
        if remove_anonymous:
            from rootless.engine import volumes as engine_volumes

            for row in rows:
                if row["anonymous"] and not store.users(conn, row["volume"]):
                    engine_volumes.remove([row["volume"]], force=True)


def inspect_mounts(spec: dict, bundle: str) -> list[dict]:
    """`Mounts` of `rl inspect`, in Docker's shape."""
    from rootless.store.volumes import volumes_dir

    vdir = str(volumes_dir())
    out = []
    for m in spec.get("mounts", []):
        opts = m.get("options", [])
        if m.get("type") == "tmpfs" and m["destination"] not in ("/dev", "/dev/shm"):
            out.append({"Type": "tmpfs", "Source": "", "Destination": m["destination"],
                        "Mode": "", "RW": "ro" not in opts, "Propagation": ""})
        if m.get("type") != "bind" or m["source"].startswith(bundle) \
                or m["destination"] == "/dev/init":
            continue
        prop = next((o for o in opts if o in mountspec.PROPAGATIONS), "rprivate")
        entry = {"Type": "bind", "Source": m["source"], "Destination": m["destination"],
                 "Mode": "", "RW": "ro" not in opts, "Propagation": prop}
        if m["source"].startswith(vdir + "/"):
            entry["Type"] = "volume"
            entry["Name"] = m["source"][len(vdir) + 1:].split("/")[0]
            entry["Driver"] = "local"
            entry["Propagation"] = ""
        out.append(entry)
    return out

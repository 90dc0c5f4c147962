"""Volume verbs: create, list, inspect, remove, prune.

The CLI, compose and the API call these; they return `Volume` objects from
rootless/store/volumes.py and raise RlError subclasses for the user's mistakes.
"""

from __future__ import annotations

import os

from rootless.store import catalog
from rootless.store import volumes as store
from rootless.store.volumes import Volume


def create(name: str | None = None, labels: dict[str, str] | None = None,
           driver: str = "local") -> Volume:
    """Create a named volume; without a name, an anonymous one with a random 64-hex name.
    `local` is the only driver."""
    if driver != "local":
        from rootless.errors import InvalidArgument

        raise InvalidArgument(f"volume driver {driver!r} is not supported; rl has only "
                              "'local'", "drop --driver")
    anonymous = name is None
    if name is None:
        import secrets

        name = secrets.token_hex(32)
    with catalog.session() as conn:
        vol = store.create(conn, name, labels, anonymous=anonymous)
    _event("create", vol)
    return vol


def _event(action: str, vol: Volume) -> None:
    from rootless.engine import events

    events.emit("volume", action, vol.name, {**vol.labels, "driver": "local"})


def ensure(name: str) -> Volume:
    """The volume `name`, created if it does not exist (what `-v name:/path` does)."""
    with catalog.session() as conn:
        return store.create(conn, name, exist_ok=True)


def get_volume(name: str) -> Volume:
    """The volume record; NotFound otherwise."""
    with catalog.session() as conn:
        return store.get(conn, name)


def inspect(name: str) -> dict:
    """`docker volume inspect`'s document, as every object's inspect gives one."""
    return get_volume(name).as_docker()


def list_volumes(filters: dict[str, list[str]] | None = None) -> list[Volume]:
    """Every volume passing Docker's filters (name, label, dangling, driver:
    rootless/engine/filters.py)."""
    from rootless.engine import filters as flt

    with catalog.session() as conn:
        vols = store.list_all(conn)
        return flt.volumes(vols, filters or {}, lambda name: bool(store.users(conn, name)))


def remove(names: list[str], force: bool = False) -> list[str]:
    """Remove each volume; with `force`, a missing one is not an error. Returns the removed."""
    from rootless.errors import NotFound

    removed = []
    with catalog.session() as conn:
        for name in names:
            try:
                store.remove(conn, name, force=force)
            except NotFound:
                if not force:
                    raise
                continue
            _remove_leftovers(name)
            removed.append(name)
            _event("destroy", Volume(name, 0))
    return removed


def prune(all_volumes: bool = False, filters: dict[str, list[str]] | None = None) -> list[str]:
    """Remove volumes no container uses: anonymous ones, or every one with `all_volumes`
    (Docker 23+ prunes only anonymous volumes unless --all); `filters`: label and label!
    (Docker has no `until` for volumes)."""
    from rootless.engine.filters import prune_predicate

    keep = prune_predicate(filters or {}, until=False)
    removed = []
    with catalog.session() as conn:
        for vol in store.list_all(conn):
            if (all_volumes or vol.anonymous) and not store.users(conn, vol.name) \
                    and keep(vol.labels, vol.created):
                store.remove(conn, vol.name)
                _remove_leftovers(vol.name)
                removed.append(vol.name)
                _event("destroy", vol)
    return removed


def _remove_leftovers(name: str) -> None:
    """Files a container wrote as a subordinate uid cannot be removed by the user outside
    the user namespace: remove what store.remove left from inside it."""
    from rootless.store.volumes import volumes_dir

    path = volumes_dir() / name
    if path.exists():
        from rootless.runtime import userns

        userns.rmtree(str(path))


def export(name: str, out_fd: int) -> None:
    """Write the volume's content as a tar stream to `out_fd`. Runs as root of the user
    namespace, so files that subordinate ids own are read, and the tar records the owners
    as the container sees them (0 for the user, 1000 for subordinate uid 1000). The volume
    is read by directory fd, never through a symlink (a container may be swapping its
    directories meanwhile): a symlink is exported as the symlink it is."""
    import tarfile

    from rootless.errors import RlError
    from rootless.image import layertar
    from rootless.linux import safepath
    from rootless.runtime import userns

    vol = get_volume(name)

    def child() -> int:
        root_fd = os.open(vol.mountpoint, safepath.DIR_FLAGS)
        try:
            with os.fdopen(out_fd, "wb", closefd=False) as f, \
                    tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for entry in safepath.listdir_sorted(root_fd):
                    layertar.write_tree(tar, root_fd, entry, entry)
        finally:
            os.close(root_fd)
        return 0

    try:
        code, error = userns.run_in_userns(child), ""
    except userns.ChildFailed as exc:
        code, error = 125, f": {exc.message}"
    if code != 0:
        raise RlError(f"exporting volume {name} failed{error}")


def import_(name: str, tar_path: str) -> None:
    """Unpack a tar (a file, or "-" for stdin) into the volume, created if missing, keeping
    owners and modes (as root of the user namespace). The store's fd-based unpacker does
    the work (rootless/store/unpack.py): members that would land outside the volume
    (absolute, `..`, through a symlink, even one a running container plants meanwhile) and
    devices are refused; an existing symlink a member replaces is removed, not followed."""
    from rootless.errors import InvalidArgument, RlError
    from rootless.runtime import userns
    from rootless.store import unpack

    if tar_path != "-" and not os.path.isfile(tar_path):
        raise InvalidArgument(f"cannot read {tar_path}: no such file")
    with catalog.session() as conn:
        existed = store.find(conn, name) is not None
    vol = ensure(name)
    root = str(vol.mountpoint)

    def child() -> int:
        src = open(tar_path, "rb") if tar_path != "-" else os.fdopen(0, "rb", closefd=False)
        with src:
            unpack.unpack_tar(src, root, real_owners=True, tar_mode="r|*")
        return 0

    try:
        code = userns.run_in_userns(child)
    except (OSError, userns.ChildFailed) as exc:  # the child's error, said here once
        code, error = 125, exc
    else:
        error = None
    if code != 0:
        if not existed:  # a failed import leaves no volume behind that it made
            remove([name], force=True)
        raise RlError(f"importing into volume {name} failed" + (f": {error}" if error else ""),
                      "see the error above")


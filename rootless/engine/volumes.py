"""Volume verbs: create, list, inspect, remove, prune.

The CLI, compose and the API call these; they return `Volume` objects from
rootless/store/volumes.py and raise RlError subclasses for the user's mistakes.
"""

from __future__ import annotations

from rootless.store import catalog
from rootless.store import volumes as store
from rootless.store.volumes import Volume


def create(name: str | None = None, labels: dict[str, str] | None = None) -> Volume:
    """Create a named volume; without a name, an anonymous one with a random 64-hex name."""
    anonymous = name is None
    if name is None:
        import secrets

        name = secrets.token_hex(32)
    with catalog.session() as conn:
        return store.create(conn, name, labels, anonymous=anonymous)


def ensure(name: str) -> Volume:
    """The volume `name`, created if it does not exist (what `-v name:/path` does)."""
    with catalog.session() as conn:
        return store.create(conn, name, exist_ok=True)


def inspect(name: str) -> Volume:
    with catalog.session() as conn:
        return store.get(conn, name)


def list_volumes(filters: dict[str, str] | None = None) -> list[Volume]:
    with catalog.session() as conn:
        vols = store.list_all(conn)
        filters = filters or {}
        if "dangling" in filters:
            want = filters["dangling"].lower() in ("1", "true")
            vols = [v for v in vols if (not store.users(conn, v.name)) == want]
    if "name" in filters:
        vols = [v for v in vols if filters["name"] in v.name]
    if "label" in filters:
        key, _, value = filters["label"].partition("=")
        vols = [v for v in vols if key in v.labels and (not value or v.labels[key] == value)]
    return vols


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
            removed.append(name)
    return removed


def prune(all_volumes: bool = False) -> list[str]:
    """Remove volumes no container uses: anonymous ones, or every one with `all_volumes`
    (Docker 23+ prunes only anonymous volumes unless --all)."""
    removed = []
    with catalog.session() as conn:
        for vol in store.list_all(conn):
            if (all_volumes or vol.anonymous) and not store.users(conn, vol.name):
                store.remove(conn, vol.name)
                removed.append(vol.name)
    return removed

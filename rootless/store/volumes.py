"""Named volumes on disk and in the catalog.

A volume is a row in the `volumes` table and a directory `<data_dir>/volumes/<name>/_data`
(the same layout as Docker's local driver). The directory is created before the row is
committed and removed after the row is deleted, so the catalog never names a volume whose
directory is missing; a crash between the two leaves at most an orphan directory, which
`prune` removes.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from rootless.errors import Conflict, InvalidArgument, NotFound
from rootless.store import catalog, paths

catalog.register_schema("volumes", (
    """CREATE TABLE IF NOT EXISTS volumes (
        name TEXT PRIMARY KEY,
        created REAL NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        options TEXT NOT NULL DEFAULT '{}',
        anonymous INTEGER NOT NULL DEFAULT 0
    )""",
    # Which container uses which volume: `container` is the container's name (what
    # `rl volume rm` shows), filled at container create and emptied at its removal.
    """CREATE TABLE IF NOT EXISTS container_volumes (
        container TEXT NOT NULL,
        container_id TEXT NOT NULL,
        volume TEXT NOT NULL,
        anonymous INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (container_id, volume)
    )""",
))

# Docker's rule for local volume names.
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


@dataclass
class Volume:
    name: str
    created: float
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False

    @property
    def mountpoint(self) -> Path:
        return volumes_dir() / self.name / "_data"

    def as_docker(self) -> dict:
        """The shape `docker volume inspect` prints."""
        return {
            "Name": self.name,
            "Driver": "local",
            "Mountpoint": str(self.mountpoint),
            "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
            "Labels": self.labels,
            "Options": self.options,
            "Scope": "local",
            "Anonymous": self.anonymous,
        }


def volumes_dir() -> Path:
    return paths.data_dir() / "volumes"


def validate_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise InvalidArgument(
            f"invalid volume name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, "
            "at least two characters",
            "to mount a host directory, give an absolute path: -v /host/dir:/container/dir")


def _row(row: sqlite3.Row) -> Volume:
    return Volume(row["name"], row["created"], json.loads(row["labels"]),
                  json.loads(row["options"]), bool(row["anonymous"]))


def get(conn: sqlite3.Connection, name: str) -> Volume:
    row = conn.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no such volume: {name}", "rl volume ls lists the volumes")
    return _row(row)


def find(conn: sqlite3.Connection, name: str) -> Volume | None:
    row = conn.execute("SELECT * FROM volumes WHERE name = ?", (name,)).fetchone()
    return _row(row) if row else None


def list_all(conn: sqlite3.Connection) -> list[Volume]:
    return [_row(r) for r in conn.execute("SELECT * FROM volumes ORDER BY name")]


def create(conn: sqlite3.Connection, name: str, labels: dict[str, str] | None = None,
           anonymous: bool = False, exist_ok: bool = False) -> Volume:
    validate_name(name)
    vol = Volume(name, time.time(), dict(labels or {}), {}, anonymous)
    with catalog.transaction(conn):
        existing = find(conn, name)
        if existing:
            if exist_ok:
                return existing
            raise Conflict(f"volume {name} already exists", "choose another name")
        vol.mountpoint.mkdir(parents=True, exist_ok=True)
        # Like Docker's local driver: the data dir is writable by container root (the user).
        os.chmod(vol.mountpoint, 0o755)
        conn.execute(
            "INSERT INTO volumes (name, created, labels, options, anonymous) VALUES (?,?,?,?,?)",
            (name, vol.created, json.dumps(vol.labels), json.dumps(vol.options), int(anonymous)))
    return vol


def users(conn: sqlite3.Connection, name: str) -> list[str]:
    """Names (or ids) of the containers whose mounts use volume `name`."""
    has = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'container_volumes'").fetchone()
    if not has:
        return []
    return [r[0] for r in conn.execute(
        "SELECT container FROM container_volumes WHERE volume = ? ORDER BY container", (name,))]


def remove(conn: sqlite3.Connection, name: str, force: bool = False) -> None:
    with catalog.transaction(conn):
        vol = get(conn, name)
        using = users(conn, name)
        if using:
            raise Conflict(f"volume {name} is in use by container(s) {', '.join(using)}",
                           "remove the container(s) first (rl rm), then the volume")
        conn.execute("DELETE FROM volumes WHERE name = ?", (name,))
    remove_dir(vol.mountpoint.parent)


def remove_dir(path: Path) -> None:
    """Delete a volume directory even when the container left read-only dirs inside: by
    directory fd (rootless/linux/safepath.py), so a symlink the container planted is
    removed, never followed by a chmod."""
    from rootless.linux import safepath

    safepath.rmtree(str(path))

"""The image tables of the catalog: images, their names, their layers.

- images: one row per image, keyed by its id (the config digest), holding the manifest and
  config bytes exactly as pulled (so push/save can reproduce the digests).
- image_names: normalised names (`docker.io/library/busybox:latest`, or `repo@sha256:...`
  for an image pulled by digest); a name belongs to one image at a time.
- image_layers: the ordered layers of each image (position 0 = bottom).
- layers: one row per unpacked layer directory (`layers/<diff_id hex>`), with the blob we
  hold for it (compressed, as downloaded).

An image and all its rows are written in one transaction: the image appears whole or not.
"""

from __future__ import annotations

import sqlite3
import time

from rootless.store import catalog

catalog.register_schema("images", (
    """CREATE TABLE IF NOT EXISTS layers (
        diff_id TEXT PRIMARY KEY,
        blob_digest TEXT,
        media_type TEXT,
        blob_size INTEGER,
        size INTEGER NOT NULL,
        added REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS images (
        id TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL,
        manifest_type TEXT NOT NULL,
        manifest BLOB NOT NULL,
        config BLOB NOT NULL,
        size INTEGER NOT NULL,
        created TEXT,
        added REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS image_names (
        name TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        added REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        diff_id TEXT NOT NULL REFERENCES layers(diff_id),
        PRIMARY KEY (image_id, position))""",
    "CREATE INDEX IF NOT EXISTS image_names_by_image ON image_names(image_id)",
    "CREATE INDEX IF NOT EXISTS image_layers_by_layer ON image_layers(diff_id)",
))


def add_layer(conn: sqlite3.Connection, diff_id: str, blob_digest: str | None,
              media_type: str | None, blob_size: int | None, size: int) -> None:
    conn.execute(
        "INSERT INTO layers(diff_id, blob_digest, media_type, blob_size, size, added) "
        "VALUES (?,?,?,?,?,?) ON CONFLICT(diff_id) DO NOTHING",
        (diff_id, blob_digest, media_type, blob_size, size, time.time()))


def layer_row(conn: sqlite3.Connection, diff_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM layers WHERE diff_id=?", (diff_id,)).fetchone()


def add_image(conn: sqlite3.Connection, image_id: str, manifest_digest: str,
              manifest_type: str, manifest: bytes, config: bytes, size: int,
              created: str | None, diff_ids: list[str], names: list[str]) -> None:
    """Insert (or refresh) an image, its layers and names; call inside a transaction."""
    conn.execute(
        "INSERT INTO images(id, manifest_digest, manifest_type, manifest, config, size, "
        "created, added) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
        "manifest_digest=excluded.manifest_digest, manifest_type=excluded.manifest_type, "
        "manifest=excluded.manifest",
        (image_id, manifest_digest, manifest_type, manifest, config, size, created,
         time.time()))
    conn.execute("DELETE FROM image_layers WHERE image_id=?", (image_id,))
    conn.executemany("INSERT INTO image_layers(image_id, position, diff_id) VALUES (?,?,?)",
                     [(image_id, i, d) for i, d in enumerate(diff_ids)])
    for name in names:
        set_name(conn, name, image_id)


def set_name(conn: sqlite3.Connection, name: str, image_id: str) -> None:
    conn.execute("INSERT INTO image_names(name, image_id, added) VALUES (?,?,?) "
                 "ON CONFLICT(name) DO UPDATE SET image_id=excluded.image_id, "
                 "added=excluded.added", (name, image_id, time.time()))


def names_of(conn: sqlite3.Connection, image_id: str) -> list[str]:
    rows = conn.execute("SELECT name FROM image_names WHERE image_id=? ORDER BY added, name",
                        (image_id,))
    return [r["name"] for r in rows]


def layers_of(conn: sqlite3.Connection, image_id: str) -> list[str]:
    rows = conn.execute("SELECT diff_id FROM image_layers WHERE image_id=? ORDER BY position",
                        (image_id,))
    return [r["diff_id"] for r in rows]


def all_names_and_layers(conn: sqlite3.Connection) -> tuple[dict, dict]:
    """Every image's names and layers in two queries (a listing of 100 images made 200),
    each list in the order names_of/layers_of give."""
    names: dict[str, list[str]] = {}
    for r in conn.execute("SELECT image_id, name FROM image_names ORDER BY added, name"):
        names.setdefault(r["image_id"], []).append(r["name"])
    layers: dict[str, list[str]] = {}
    for r in conn.execute("SELECT image_id, diff_id FROM image_layers ORDER BY position"):
        layers.setdefault(r["image_id"], []).append(r["diff_id"])
    return names, layers


def images_in_use(conn: sqlite3.Connection) -> set[str]:
    """Image ids referenced by containers (read through the containers table's owner)."""
    from rootless.store import containerdb

    return containerdb.image_ids_in_use(conn)


def unused_layers(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT diff_id FROM layers WHERE diff_id NOT IN "
                        "(SELECT diff_id FROM image_layers)")
    return [r["diff_id"] for r in rows]

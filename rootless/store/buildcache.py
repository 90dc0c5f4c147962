"""The build cache's rows in the catalog: which image a build step (by its cache key) made,
and the image it started from; and what the last download of each ADD URL answered
(ETag, Last-Modified, content digest), for the next build's conditional request. Kept
in the store, below the engine, because more than the builder reads it (`rl images`
hides the images cached steps were built on, as Docker does), and a table must be
declared by a module every reader imports: the catalog adds an earlier rl's missing
columns only to the tables declared when it opens."""

from __future__ import annotations

import sqlite3
import time

from rootless.store import catalog

catalog.register_schema("build_cache", (
    """CREATE TABLE IF NOT EXISTS build_cache (
        key TEXT PRIMARY KEY,
        image_id TEXT NOT NULL,
        parent_id TEXT,
        added REAL NOT NULL)""",
))

catalog.register_schema("build_remote", (
    """CREATE TABLE IF NOT EXISTS build_remote (
        url TEXT PRIMARY KEY,
        etag TEXT,
        last_modified TEXT,
        digest TEXT NOT NULL,
        checked REAL NOT NULL)""",
))


def get(key: str) -> str | None:
    """The image a step with this cache key made, if that image is still stored."""
    conn = catalog.connect()
    try:
        row = conn.execute("SELECT build_cache.image_id FROM build_cache JOIN images ON "
                           "images.id = build_cache.image_id WHERE key=?", (key,)).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def put(key: str, image_id: str, parent_id: str | None) -> None:
    """Record a step; parent_id (the image the step started from) lets `rl images` hide
    intermediate images as Docker does."""
    conn = catalog.connect()
    try:
        with catalog.transaction(conn):
            conn.execute("INSERT INTO build_cache(key, image_id, parent_id, added) "
                         "VALUES (?,?,?,?) ON CONFLICT(key) DO UPDATE SET "
                         "image_id=excluded.image_id, parent_id=excluded.parent_id, "
                         "added=excluded.added", (key, image_id, parent_id, time.time()))
    finally:
        conn.close()


def parents(conn: sqlite3.Connection) -> set[str]:
    """Ids of images that a cached build step was built on."""
    return {row[0] for row in conn.execute(
        "SELECT parent_id FROM build_cache WHERE parent_id IS NOT NULL")}


def forget(everything: bool, before: float | None = None) -> int:
    """Delete the rows of steps whose image is gone; every row with `everything`; with
    `before`, only rows added before that time."""
    where = "1" if everything else "image_id NOT IN (SELECT id FROM images)"
    args: tuple = ()
    if before is not None:
        where += " AND added < ?"
        args = (before,)
    conn = catalog.connect()
    try:
        with catalog.transaction(conn):
            return conn.execute(f"DELETE FROM build_cache WHERE {where}", args).rowcount
    finally:
        conn.close()


def remote_get(url: str) -> tuple[str | None, str | None, str] | None:
    """(ETag, Last-Modified, content digest) of the last download of an ADD URL."""
    conn = catalog.connect()
    try:
        row = conn.execute("SELECT etag, last_modified, digest FROM build_remote WHERE url=?",
                           (url,)).fetchone()
        return (row[0], row[1], row[2]) if row else None
    finally:
        conn.close()


def remote_put(url: str, etag: str | None, last_modified: str | None, digest: str) -> None:
    conn = catalog.connect()
    try:
        with catalog.transaction(conn):
            conn.execute("INSERT INTO build_remote(url, etag, last_modified, digest, checked) "
                         "VALUES (?,?,?,?,?) ON CONFLICT(url) DO UPDATE SET "
                         "etag=excluded.etag, last_modified=excluded.last_modified, "
                         "digest=excluded.digest, checked=excluded.checked",
                         (url, etag, last_modified, digest, time.time()))
    finally:
        conn.close()

"""The sqlite catalog: one database per user, in WAL mode, for every kind of object.

Each component that keeps rows here (images, containers, volumes, networks) declares its
tables with `register_schema(name, statements)` at import time; `connect()` creates what is
missing. A change of several rows happens in one `transaction()`, so a kill -9 at any
moment leaves either the old state or the new one, never a half-written object.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from rootless.store import paths

_SCHEMAS: dict[str, tuple[str, ...]] = {}


def register_schema(name: str, statements: tuple[str, ...]) -> None:
    """Declare `CREATE TABLE IF NOT EXISTS ...` statements for a component."""
    _SCHEMAS[name] = statements


def catalog_path(root: Path | None = None) -> Path:
    return (root or paths.data_dir()) / "catalog.db"


def connect(root: Path | None = None) -> sqlite3.Connection:
    """Open (creating if needed) the catalog; rows come back as sqlite3.Row."""
    path = catalog_path(root)
    paths.ensure_store(path.parent)
    paths.private_file(path)  # before sqlite makes it 0644; its -wal/-shm follow its mode
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so that two rl processes
    # writing at once queue on the lock instead of failing with "database is locked".
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    _ensure_schemas(conn)
    return conn


def _digest(statements: tuple[str, ...]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(statements).encode()).hexdigest()[:16]


def _ensure_schemas(conn: sqlite3.Connection) -> None:
    """Create the registered tables that are missing. Which component's statements were
    applied is remembered in `schemas`, so the usual connect is one read, not a write lock."""
    wanted = {name: _digest(sql) for name, sql in _SCHEMAS.items()}
    try:
        done = dict(conn.execute("SELECT name, digest FROM schemas").fetchall())
    except sqlite3.OperationalError:  # a new catalog
        done = {}
    todo = [name for name, digest in wanted.items() if done.get(name) != digest]
    if not todo:
        return
    with transaction(conn):
        conn.execute("CREATE TABLE IF NOT EXISTS schemas (name TEXT PRIMARY KEY, digest TEXT)")
        for name in todo:
            for sql in _SCHEMAS[name]:
                conn.execute(sql)
            conn.execute("INSERT OR REPLACE INTO schemas (name, digest) VALUES (?, ?)",
                         (name, wanted[name]))


@contextlib.contextmanager
def session(root: Path | None = None) -> Iterator[sqlite3.Connection]:
    """A connection that is closed when the block ends."""
    conn = connect(root)
    try:
        yield conn
    finally:
        conn.close()


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")

"""The sqlite catalog: one database per user, in WAL mode, for every kind of object.

Each component that keeps rows here (images, containers, volumes, networks) declares its
tables with `register_schema(name, statements)` at import time; `connect()` creates what is
missing. A change of several rows happens in one `transaction()`, so a kill -9 at any
moment leaves either the old state or the new one, never a half-written object.

Upgrades: a catalog written by an earlier rl opens with a later one. When a component's
statements change, the tables they declare are compared with the tables on disk and the
missing columns are added (ALTER TABLE ... ADD COLUMN with the declared type and default),
so adding a column is all a schema change needs. A change that cannot be made that way
(a new key column, a NOT NULL column without a default) is refused with an error naming it:
such a change needs a migration step written for it. `PRAGMA user_version` holds the
catalog's format (FORMAT); a catalog of a newer format than this rl knows is refused, not
rewritten, so an older rl never damages what a newer one wrote.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from rootless.errors import RlError
from rootless.store import paths

_SCHEMAS: dict[str, tuple[str, ...]] = {}
FORMAT = 1  # PRAGMA user_version of the catalogs this rl writes
_CREATE_TABLE = re.compile(r"\s*CREATE TABLE IF NOT EXISTS (\w+)\s*\(", re.I)


class CatalogError(RlError):
    """The catalog cannot be used by this rl (written by a newer one, or an upgrade that
    needs a migration step)."""


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
    # Two 32-bit checksums, not sha256: hashlib loads OpenSSL (~4 ms), on every command
    # that opens the catalog (`rl ps`). This only tells a changed statement list from the
    # one applied; a catalog that recorded another digest is checked again once.
    import zlib

    data = "\n".join(statements).encode()
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def _ensure_schemas(conn: sqlite3.Connection) -> None:
    """Create the registered tables that are missing, and add the columns an earlier rl's
    tables lack. Which component's statements were applied is remembered in `schemas`, so
    the usual connect is one read, not a write lock."""
    wanted = {name: _digest(sql) for name, sql in _SCHEMAS.items()}
    try:
        done = dict(conn.execute("SELECT name, digest FROM schemas").fetchall())
    except sqlite3.OperationalError:  # a new catalog
        done = {}
    todo = [name for name, digest in wanted.items() if done.get(name) != digest]
    if not todo:
        return
    with transaction(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > FORMAT:
            raise CatalogError(
                f"{_path_of(conn)} was written by a newer rl (catalog format {version}, this "
                f"rl knows {FORMAT}): use that rl, or upgrade this one")
        conn.execute("CREATE TABLE IF NOT EXISTS schemas (name TEXT PRIMARY KEY, digest TEXT)")
        for name in todo:
            for sql in _SCHEMAS[name]:
                conn.execute(sql)
                m = _CREATE_TABLE.match(sql)
                if m:
                    _add_missing_columns(conn, m.group(1), sql)
            conn.execute("INSERT OR REPLACE INTO schemas (name, digest) VALUES (?, ?)",
                         (name, wanted[name]))
        if version < FORMAT:
            conn.execute(f"PRAGMA user_version = {FORMAT}")


def _add_missing_columns(conn: sqlite3.Connection, table: str, create_sql: str) -> None:
    """Give `table` on disk the columns its CREATE statement declares and it lacks. The
    declared shape is read by making the same table, empty, in the connection's temp schema
    (sqlite parses it; no hand parser of column definitions)."""
    have = {row[1] for row in conn.execute(f"PRAGMA main.table_info({table})")}
    probe = f"rl_probe_{table}"
    conn.execute(_CREATE_TABLE.sub(f"CREATE TEMP TABLE {probe} (", create_sql, count=1))
    try:
        declared = conn.execute(f"PRAGMA temp.table_info({probe})").fetchall()
    finally:
        conn.execute(f"DROP TABLE temp.{probe}")
    for _cid, col, ctype, notnull, default, pk in declared:
        if col in have:
            continue
        if pk or (notnull and default is None):
            raise CatalogError(
                f"{_path_of(conn)}: column {table}.{col} cannot be added to a catalog of an "
                "earlier rl (a key, or NOT NULL without a default): this upgrade needs a "
                "migration step in rootless/store/catalog.py")
        definition = f"{col} {ctype}" + (" NOT NULL" if notnull else "") + \
            (f" DEFAULT {default}" if default is not None else "")
        conn.execute(f"ALTER TABLE {table} ADD COLUMN {definition}")


def _path_of(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return row[2] if row else "catalog.db"


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

"""A container's stored record: the catalog table `containers` (its schema), the
`Container` row, and the reads every verb starts with (lookup, the refresh that turns a
row whose monitor is gone into an exited one), the name rules.

A container is a row in the catalog table `containers` plus a directory
`<data_dir>/containers/<id>/` holding config.json (the OCI runtime spec), rootfs.json (the
root filesystem description), the upper and work dirs of the union mount, the files
bind-mounted on /etc/hosts, /etc/hostname, /etc/resolv.conf, and ctr.log.

State: `created`, `running`, `restarting`, `exited`. A running container has a monitor
process; its pid and start time are in the row, so that `rl ps` tells the truth after the
monitor or the machine died (a row says `running` but its monitor is gone: it is shown,
and stored, as exited).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from rootless.errors import InvalidArgument, NotFound
from rootless.linux import procstat
from rootless.store import catalog, paths
from rootless.trace import trace

catalog.register_schema("containers", (
    """CREATE TABLE IF NOT EXISTS containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        image_id TEXT NOT NULL,
        image TEXT NOT NULL,
        command TEXT NOT NULL,
        created REAL NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        options TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL DEFAULT 'created',
        monitor_pid INTEGER,
        monitor_start INTEGER,
        pid INTEGER,
        exit_code INTEGER,
        started REAL,
        finished REAL,
        restart_count INTEGER NOT NULL DEFAULT 0,
        restart_delay REAL NOT NULL DEFAULT 0,
        manual_stop INTEGER NOT NULL DEFAULT 0,
        health TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id)",
    # container_volumes (which container uses which volume) is the volume store's table:
    # rootless/store/volumes.py, filled and emptied by rootless/engine/mounts.py
))

_ADJ = ("brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid",
        "merry", "nimble", "proud", "quiet", "sharp", "tender", "vivid", "witty", "zen")
_NOUN = ("ada", "babbage", "curie", "darwin", "euler", "fermi", "gauss", "hopper", "kepler",
         "lovelace", "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wirth")


@dataclass
class Container:
    id: str
    name: str
    image_id: str
    image: str
    command: list[str]
    created: float
    labels: dict
    options: dict
    state: str
    monitor_pid: int | None
    monitor_start: int | None
    pid: int | None
    exit_code: int | None
    started: float | None
    finished: float | None
    restart_count: int = 0  # restarts by the policy since the last manual start
    restart_delay: float = 0  # the last back-off (rootless/engine/restart.py)
    manual_stop: int = 0  # stopped by the user: the restart policy does not apply
    health: str | None = None  # JSON State.Health (rootless/engine/health.py)

    @property
    def dir(self) -> Path:
        return containers_dir() / self.id

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @classmethod
    def from_row(cls, row) -> Container:
        d = dict(row)
        d["command"] = json.loads(d["command"])
        d["labels"] = json.loads(d["labels"])
        d["options"] = json.loads(d["options"])
        return cls(**d)

    def spec(self) -> dict:
        with open(self.dir / "config.json") as f:
            return json.load(f)

    def status_text(self) -> str:
        """ps's STATUS column, as Docker words it (Up, Exited, Restarting, health)."""
        from rootless.format.docker_shapes import docker_status

        return docker_status(self)


def containers_dir() -> Path:
    return paths.data_dir() / "containers"


@contextlib.contextmanager
def db(conn=None):
    """A catalog connection, closed on exit (not left to the garbage collector: a
    connection object that survives into a forked child and is finalized there would
    checkpoint the WAL through shared memory behind the other processes' backs; seen here
    as an exit code written by the monitor and then lost)."""
    if conn is not None:
        yield conn
        return
    c = catalog.connect()
    try:
        yield c
    finally:
        c.close()


def proc_start(pid: int) -> int | None:
    """The start time of a live process (None when gone or a zombie): with the pid, it
    names the process even after the pid is reused."""
    return procstat.start_time(pid)


def monitor_alive(c: Container) -> bool:
    return (c.monitor_pid is not None and c.monitor_start is not None
            and proc_start(c.monitor_pid) == c.monitor_start)


def refresh(conn, c: Container) -> Container:
    """A row that says running but whose monitor is gone becomes exited (the truth)."""
    if c.state in ("running", "restarting") and not monitor_alive(c):
        with catalog.transaction(conn):
            row = conn.execute("SELECT * FROM containers WHERE id=?", (c.id,)).fetchone()
            if row is None:
                return c
            c = Container.from_row(row)
            if c.state in ("running", "restarting") and not monitor_alive(c):
                trace(f"refresh: monitor {c.monitor_pid} gone ({proc_start(c.monitor_pid)} "
                      f"!= {c.monitor_start})")
                update(conn, c.id, state="exited", finished=time.time(), pid=None)
                c.state, c.finished, c.pid = "exited", time.time(), None
    return c


def every_container() -> list[Container]:
    """Every container, newest first, each refreshed."""
    with db() as conn:
        rows = conn.execute("SELECT * FROM containers ORDER BY created DESC").fetchall()
        return [refresh(conn, Container.from_row(r)) for r in rows]


def lookup(ref: str, conn=None) -> Container:
    with db(conn) as conn:
        return lookup_in(ref, conn)


def lookup_in(ref: str, conn) -> Container:
    rows = conn.execute("SELECT * FROM containers WHERE id=? OR name=?", (ref, ref)).fetchall()
    if not rows and len(ref) >= 3 and all(ch in "0123456789abcdef" for ch in ref):
        rows = conn.execute("SELECT * FROM containers WHERE id LIKE ?", (ref + "%",)).fetchall()
        if len(rows) > 1:
            raise InvalidArgument(f"container id prefix {ref} is ambiguous",
                                  "give more characters of the id")
    if not rows:
        raise NotFound(f"no such container: {ref}")
    return refresh(conn, Container.from_row(rows[0]))


def _pick(words: tuple[str, ...]) -> str:
    return words[int.from_bytes(os.urandom(2), "big") % len(words)]


def new_name(conn) -> str:
    for _ in range(100):
        name = f"{_pick(_ADJ)}_{_pick(_NOUN)}"
        if name_owner(conn, name) is None:
            return name
    return "rl_" + os.urandom(4).hex()


def validate_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
        raise InvalidArgument(f"invalid container name {name!r}",
                              "use letters, digits, '_', '.' and '-'")


def set_options(cid: str, options: dict) -> None:
    """Replace the row's options (`rl network connect/disconnect`)."""
    with db() as conn, catalog.transaction(conn):
        update(conn, cid, options=options)


# -- writes (every change of a row goes through these) -------------------------------------

_COLUMNS = frozenset(Container.__dataclass_fields__)
_JSON = frozenset({"command", "labels", "options"})


def get_in(conn, cid: str) -> Container | None:
    """The row of id `cid` as it is (no refresh), in the caller's transaction."""
    row = conn.execute("SELECT * FROM containers WHERE id=?", (cid,)).fetchone()
    return None if row is None else Container.from_row(row)


def image_ids_in_use(conn) -> set[str]:
    """Image ids that containers are made of (`rl rmi` and the prunes keep them). A
    catalog no container was ever made in may lack the table on this connection."""
    import sqlite3

    try:
        return {r[0] for r in conn.execute("SELECT DISTINCT image_id FROM containers")
                if r[0]}
    except sqlite3.OperationalError:  # no containers table (yet)
        return set()


def name_owner(conn, name: str) -> str | None:
    """The id of the container called `name`, if any."""
    row = conn.execute("SELECT id FROM containers WHERE name=?", (name,)).fetchone()
    return None if row is None else row[0]


def insert(conn, *, cid: str, name: str, image_id: str, image: str, command: list[str],
           created: float, labels: dict, options: dict) -> None:
    conn.execute("INSERT INTO containers (id, name, image_id, image, command, created,"
                 " labels, options) VALUES (?,?,?,?,?,?,?,?)",
                 (cid, name, image_id, image, json.dumps(command), created,
                  json.dumps(labels), json.dumps(options)))


def update(conn, cid: str, *, when_state: str | None = None, **fields) -> bool:
    """Set columns of the row (command, labels, options given as Python values); with
    `when_state`, only if the row is in that state. Whether a row changed."""
    unknown = set(fields) - (_COLUMNS - {"id"})
    if unknown or not fields:
        raise ValueError(f"containers has no column {sorted(unknown)}")
    values = [json.dumps(v) if k in _JSON else v for k, v in fields.items()]
    sql = f"UPDATE containers SET {', '.join(f'{k}=?' for k in fields)} WHERE id=?"
    args = [*values, cid]
    if when_state is not None:
        sql += " AND state=?"
        args.append(when_state)
    return conn.execute(sql, args).rowcount > 0


def delete(conn, cid: str) -> None:
    conn.execute("DELETE FROM containers WHERE id=?", (cid,))

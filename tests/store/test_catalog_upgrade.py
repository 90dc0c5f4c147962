"""A catalog written by an earlier rl opens with this one, and one written by a newer rl is
refused, not rewritten. The fixture is the catalog (as SQL text) that the rl of commit
45c783f^ wrote after `rl import`, `rl build` (two cached steps), `rl volume create` and
`rl create -v`: its build_cache table has no parent_id column, which today's `rl images`
reads."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rootless.store import catalog

FIXTURE = Path(__file__).with_name("catalog-before-parent-id.sql")


def _old_catalog(rl) -> Path:
    db = rl.data_dir / "catalog.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    conn.executescript(FIXTURE.read_text())
    conn.close()
    return db


def test_a_catalog_of_an_earlier_rl_opens_and_gains_the_new_columns(rl):
    db = _old_catalog(rl)
    r = rl("images")
    assert r.returncode == 0, r.stderr
    assert "localhost/built" in r.stdout and "localhost/old" in r.stdout
    assert rl("volume", "ls", "-q", check=True).stdout.split() == ["vol1"]
    assert "c1" in rl("ps", "-a", check=True).stdout
    conn = sqlite3.connect(db)
    cols = [row[1] for row in conn.execute("PRAGMA table_info(build_cache)")]
    assert cols == ["key", "image_id", "added", "parent_id"]
    assert len(conn.execute("SELECT * FROM build_cache").fetchall()) == 2  # rows kept
    assert conn.execute("PRAGMA user_version").fetchone()[0] == catalog.FORMAT


def test_a_catalog_of_a_newer_rl_is_refused_and_left_alone(rl):
    db = _old_catalog(rl)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {catalog.FORMAT + 1}")
    conn.close()
    r = rl("images")
    assert r.returncode == 125
    assert r.stderr.count("\n") == 1 and "written by a newer rl" in r.stderr, r.stderr
    conn = sqlite3.connect(db)
    cols = [row[1] for row in conn.execute("PRAGMA table_info(build_cache)")]
    assert "parent_id" not in cols  # nothing was changed

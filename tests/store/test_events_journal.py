"""The event journal's rotation (rootless/engine/events.py): bounded on disk, read back
whole across a rotation, followed across one without a loss or a repeat."""

from __future__ import annotations

import pytest

from rootless.engine import events


@pytest.fixture
def journal(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    (tmp_path / "rl").mkdir()
    monkeypatch.setattr(events, "MAX_BYTES", 2000)  # about ten events a file
    return tmp_path / "rl" / "events.log"


def emit(n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        events.emit("volume", "create", f"v{i:04d}", {"driver": "local"})


def ids(evs) -> list[int]:
    return [int(e["Actor"]["ID"][1:]) for e in evs]


def test_the_journal_stays_bounded_and_reads_back_the_latest_in_order(journal):
    emit(100)
    older = journal.with_name("events.log.1")
    assert older.exists() and journal.exists()
    assert older.stat().st_size <= 2000 + 300 and journal.stat().st_size <= 2000 + 300
    got = ids(events.read())
    # the newest ones, in order, none twice, through the last: what two files hold
    assert got == list(range(100 - len(got), 100)) and len(got) >= 10


def test_a_follower_goes_across_a_rotation(journal):
    emit(3)
    follow = events.read(follow=True)
    assert ids(next(follow) for _ in range(3)) == [0, 1, 2]
    read_from = journal.stat().st_ino
    emit(12, 3)  # the file passes the limit meanwhile and is renamed to .1
    assert journal.stat().st_ino != read_from  # it did rotate, under the follower
    assert ids(next(follow) for _ in range(12)) == list(range(3, 15))
    follow.close()


def test_since_after_the_rotated_file_skips_it_unread(journal, monkeypatch):
    import time

    emit(16)  # rotates once: .1 holds the first ten or so
    older = journal.with_name("events.log.1")
    assert older.exists()
    time.sleep(0.01)
    since = time.time_ns()
    emit(3, 100)
    read_whole = []
    rest_of = events._rest_of
    monkeypatch.setattr(events, "_rest_of",
                        lambda path, *a: read_whole.append(path.name) or rest_of(path, *a))
    assert ids(events.read(since)) == [100, 101, 102]
    assert "events.log.1" not in read_whole  # its tail said it is all before --since
    # a --since that falls inside the rotated file reads it, from that event on
    first_new = [e["timeNano"] for e in events.read()][5]
    got = ids(events.read(first_new))
    assert "events.log.1" in read_whole
    assert got == ids(events.read())[5:]

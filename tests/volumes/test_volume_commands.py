"""`rl volume` as a user drives it: create, ls, inspect, rm, prune, and the refusals."""

from __future__ import annotations

import json

import pytest


def test_create_list_inspect_remove(rl):
    assert rl("volume", "create", "--label", "team=db", "data", check=True).stdout == "data\n"
    assert rl("volume", "ls", "-q", check=True).stdout == "data\n"
    out = rl("volume", "ls", "--format", "json", check=True).stdout
    assert [json.loads(x)["Name"] for x in out.splitlines()] == ["data"]
    (info,) = json.loads(rl("volume", "inspect", "data", check=True).stdout)
    assert info["Labels"] == {"team": "db"} and info["Driver"] == "local"
    assert info["Mountpoint"] == str(rl.data_dir / "volumes" / "data" / "_data")
    (rl.data_dir / "volumes" / "data" / "_data" / "f").write_text("kept")
    assert rl("volume", "rm", "data", check=True).stdout == "data\n"
    assert rl("volume", "ls", "-q", check=True).stdout == ""
    assert not (rl.data_dir / "volumes" / "data").exists()


def test_create_twice_is_refused(rl):
    rl("volume", "create", "data", check=True)
    r = rl("volume", "create", "data")
    assert r.returncode == 125 and "volume data already exists" in r.stderr


def test_filters(rl):
    rl("volume", "create", "--label", "a=1", "one", check=True)
    rl("volume", "create", "two", check=True)
    assert rl("volume", "ls", "-q", "--filter", "label=a=1", check=True).stdout == "one\n"
    assert rl("volume", "ls", "-q", "-f", "name=tw", check=True).stdout == "two\n"
    r = rl("volume", "ls", "-f", "colour=red")
    assert r.returncode == 125 and "invalid filter 'colour'" in r.stderr


@pytest.mark.parametrize("name", ["a", "a/b", "../x", "x:y", ".hidden", "-dash", "sp ace"])
def test_bad_names_are_refused_and_nothing_is_created(rl, name):
    r = rl("volume", "create", "--", name)
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and "invalid volume name" in r.stderr
    assert rl("volume", "ls", "-q", check=True).stdout == ""


def test_remove_missing(rl):
    r = rl("volume", "rm", "ghost")
    assert r.returncode == 125 and "no such volume: ghost" in r.stderr
    assert rl("volume", "rm", "-f", "ghost").returncode == 0


def test_prune_removes_anonymous_only_unless_all(rl):
    rl("volume", "create", "named", check=True)
    anon = rl("volume", "create", check=True).stdout.strip()
    assert len(anon) == 64
    assert rl("volume", "prune", "-f", check=True).stdout == (
        f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 0B\n")
    assert rl("volume", "ls", "-q", check=True).stdout == "named\n"
    assert rl("volume", "prune", "-f", "--all", check=True).stdout.splitlines()[:2] == [
        "Deleted Volumes:", "named"]
    assert rl("volume", "ls", "-q", check=True).stdout == ""


def test_unsupported_driver_is_refused(rl):
    r = rl("volume", "create", "-d", "nfs", "data")
    assert r.returncode == 125 and "'local'" in r.stderr

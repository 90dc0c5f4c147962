"""Real programs on a fuse_overlay mount: tar, compileall, git, sqlite, rm -rf."""

from __future__ import annotations


def test_tar_compileall_git_sqlite_rm_rf(ns_single):
    r = ns_single("workloads")
    assert r["exec"] == "run from the mount"
    assert r["tar"], "the unpacked tree equals the source"
    assert r["compileall"]
    assert r["import"].endswith("/usr/lib/py/json/decoder.py")
    assert r["git_log"] == ["change", "import"]
    assert r["git_status"] == ""
    assert r["sqlite"] == [[300, 150], "ok"]
    assert r["rm_rf"] == [False, ["bin", "build", "db.sqlite"]]
    assert ".wh.usr" in r["upper_usr"]
    assert r["remounted"] == [False, ["change", "import"]]

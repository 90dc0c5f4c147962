"""`rl --version`, `rl --help` and `rl info` as each kind of user sees them."""

from __future__ import annotations

import json
import os

import pytest

from rootless import __version__
from rootless.runtime import idmap


def test_version(rl):
    r = rl("--version", check=True)
    assert r.stdout.strip() == f"rl version {__version__}"


def test_help_lists_info_and_imports_nothing_heavy(rl):
    r = rl("--help", check=True)
    assert "info" in r.stdout and "Show what this host offers" in r.stdout


def test_bad_flag_is_dockers_wording_exit_125(rl):
    # Docker's (cobra's) two lines, which scripts and users know, not click's guesses
    r = rl("info", "--no-such-flag")
    assert r.returncode == 125
    assert r.stderr == "unknown flag: --no-such-flag\nSee 'rl info --help'.\n"


def test_unknown_command_is_one_line_exit_125(rl):
    r = rl("frobnicate")
    assert r.returncode == 125
    assert len(r.stderr.strip().splitlines()) == 1 and "frobnicate" in r.stderr


@pytest.mark.rootless
def test_info_reports_every_prerequisite_for_the_test_user(rl):
    if os.getuid() == 0:
        pytest.skip("this test is for the unprivileged test user")
    r = rl("info", "--format", "json", check=True)
    info = json.loads(r.stdout)
    # cgroups is not a prerequisite (only resource limits need it): reported, not required
    failed = [c for c in info["checks"] if not c["ok"] and c["name"] != "cgroups"]
    assert failed == [], failed
    ranges = idmap.read_ranges(idmap.SUBUID_FILE)
    assert info["uid_map"].startswith(f"0 {os.getuid()} 1, 1 {ranges[0].start} {ranges[0].count}")
    text = rl("info", check=True).stdout
    assert "[  ok] subuid" in text and "FAIL" not in text
    assert "cgroups:" in text


def test_info_flags_a_runtime_dir_owned_by_someone_else(rl):
    if os.getuid() == 0:
        pytest.skip("root owns everything")
    r = rl("info", "--format", "json", env={"XDG_RUNTIME_DIR": "/var/tmp"}, check=True)
    check = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "runtime dir")
    assert not check["ok"]
    assert "belongs to uid 0" in check["detail"] and f"/tmp/rl-{os.getuid()}" in check["detail"]
    assert "unset XDG_RUNTIME_DIR" in check["fix"]


def test_info_without_subuid_range_names_the_fix(rl_nosub):
    r = rl_nosub("info")
    assert r.returncode == 0, r.stderr
    assert "no range for rlnosub in /etc/subuid" in r.stdout
    assert "fix: sudo usermod --add-subuids 100000-165535 rlnosub" in r.stdout
    data = json.loads(rl_nosub("info", "--format", "json", check=True).stdout)
    uid = data["uid"]
    assert data["uid_map"] == f"0 {uid} 1"
    # XDG_RUNTIME_DIR is unset after sudo: rl falls back to its private /tmp directory.
    assert data["runtime_dir"] == f"/tmp/rl-{uid}"


@pytest.mark.asroot
def test_info_as_root(rl):
    r = rl("info", "--format", "json", check=True)
    info = json.loads(r.stdout)
    assert info["uid"] == 0
    checks = {c["name"]: c["ok"] for c in info["checks"]}
    assert {n: checks.get(n) for n in ("subuid", "subgid", "newuidmap")} == \
        {"subuid": True, "subgid": True, "newuidmap": True}, info["checks"]

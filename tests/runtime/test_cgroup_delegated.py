"""The cgroup of a container on a real kernel: root lays out what systemd's user@.service
does for a user (a cgroup of the v2 tree, chowned to the user, the user's processes in it),
then rl runs as the test user inside it. These machines have a hybrid layout: the v2 tree
(/sys/fs/cgroup/unified) has no controllers, so what runs here is the container's own
cgroup, cgroup.freeze (pause/unpause) and its removal; limits stay refused with the reason.
Root-only (root makes the delegation)."""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

import pytest

from tests.runtime.test_host_problems import USER, store  # noqa: F401 (a fixture)
from tests.support import users

pytestmark = pytest.mark.asroot

UNIFIED = Path("/sys/fs/cgroup/unified")
COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /d/n; sleep 0.05; done"


def _cgroup_of(pid: int) -> str:
    text = Path(f"/proc/{pid}/cgroup").read_text()
    return next(line[3:] for line in text.splitlines() if line.startswith("0::"))


@pytest.fixture
def delegated(store):  # noqa: F811
    """A cgroup of the v2 tree owned by the test user, and an rl whose every command starts
    in it (root moves the shell there, then becomes the user, as a login into
    user@UID.service would place it)."""
    users.need((UNIFIED / "cgroup.procs").exists() and not Path("/sys/fs/cgroup/cgroup.procs")
               .exists(), "this test is for a hybrid cgroup layout (a v2 tree at "
               f"{UNIFIED})")
    entry = pwd.getpwnam(USER)
    top = UNIFIED / f"rl-test-deleg-{os.getpid()}"
    top.mkdir()
    # what systemd's Delegate=yes chowns: the dir and the files a delegatee writes
    for p in (top, top / "cgroup.procs", top / "cgroup.subtree_control", top / "cgroup.threads"):
        os.chown(p, entry.pw_uid, entry.pw_gid)
    script = f'echo $$ > {top}/cgroup.procs; exec runuser -u {USER} -- "$@"'
    rl = users.RlRunner(store.root, prefix=["sh", "-c", script, "sh"], extra_env=store.rl.env)
    try:
        yield rl, top
    finally:
        ids = rl("ps", "-aq", check=True).stdout.split()
        if ids:
            rl("rm", "-f", *ids)
        users.stop_fuse_zygotes(store.root / "run" / "rl")
        deadline = time.monotonic() + 10
        while True:  # the user's processes leave as they exit
            left = [d for d in top.iterdir() if d.is_dir()]
            procs = (top / "cgroup.procs").read_text().split()
            if not left and not procs:
                break
            if time.monotonic() > deadline:  # a leak: out of the way, then fail the test
                for pid in procs:
                    (UNIFIED / "cgroup.procs").write_text(pid)
                pytest.fail(f"left in the delegated cgroup: {left} {procs}")
            time.sleep(0.1)
        top.rmdir()


def test_pause_freezes_and_rm_removes_the_containers_cgroup(delegated, store):  # noqa: F811
    rl, top = delegated
    info = rl("info", check=True).stdout
    assert f"{top} delegated" in info, info
    vol = store.root / "vol"  # the user's
    vol.mkdir()
    entry = pwd.getpwnam(USER)
    os.chown(vol, entry.pw_uid, entry.pw_gid)
    cid = rl("run", "-d", "--network", "none", "-v", f"{vol}:/d", "busybox", "sh", "-c",
             COUNTER, check=True).stdout.strip()
    mine = top / f"rl-{cid[:12]}"
    pid = int(rl("inspect", "-f", "{{.State.Pid}}", cid, check=True).stdout)
    # pid 1 of the container, and so every process of it, is in the container's own cgroup
    assert _cgroup_of(pid) == "/" + str(mine.relative_to(UNIFIED)), _cgroup_of(pid)
    counter = vol / "n"
    deadline = time.monotonic() + 20
    while not (counter.exists() and counter.read_text().strip()):
        assert time.monotonic() < deadline, "the counter never ran"
        time.sleep(0.05)

    rl("pause", cid, check=True)
    assert "frozen 1" in (mine / "cgroup.events").read_text().splitlines()
    state = rl("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", cid, check=True)
    assert state.stdout.split() == ["paused", "true"], state.stdout
    held = counter.read_text()
    time.sleep(0.5)  # ten turns of the loop, were it running
    assert counter.read_text() == held

    rl("unpause", cid, check=True)
    assert "frozen 0" in (mine / "cgroup.events").read_text().splitlines()
    deadline = time.monotonic() + 10
    while counter.read_text() == held:
        assert time.monotonic() < deadline, "the counter did not go on after unpause"
        time.sleep(0.05)
    assert rl("inspect", "-f", "{{.State.Status}}", cid, check=True).stdout.strip() == "running"

    # the limits need controllers, which a hybrid layout keeps on v1: refused, never dropped
    r = rl("run", "--rm", "--network", "none", "--pids-limit", "10", "busybox", "true")
    assert r.returncode == 125 and "hybrid cgroup layout" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr

    rl("rm", "-f", cid, check=True)
    assert not mine.exists()

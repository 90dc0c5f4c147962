"""rl's helpers in a container's user namespace are out of the container's reach.

The sandbox and the fuse server are processes of the host's user namespace (forks of rl,
never exec'd there) that join the container's: with `--pid host` the container sees them,
its root has our kernel uid, and with CAP_SYS_PTRACE (`--cap-add SYS_PTRACE`, a common
flag for debuggers) the kernel's capability rule no longer stops it either. Only their
non-dumpable flag does: /proc/PID/root (the host's file system, for the sandbox), fd/ and
mem stay closed. The container's own processes are the control: those it may open.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.support import users
from tests.support.procs import children as _children
from tests.support.procs import comm as _comm
from tests.support.procs import tree as _tree

pytestmark = pytest.mark.skipif(users.rootfs_backend() != "fuse_overlay",
                                reason="the fuse server helpers are fuse_overlay's")

# prints PID:root / PID:mem for each pid whose /proc/PID/root or mem it could open
PROBE = ("for p in $PIDS; do ls /proc/$p/root/ >/dev/null 2>&1 && echo $p:root; "
         "(exec 3</proc/$p/mem) 2>/dev/null && echo $p:mem; done; true")


def _zygote_servers(rl, children) -> set[int]:
    out = set()
    for pidfile in (rl.root / "run" / "rl").glob("fuse-zygote-*.pid"):
        for z in pidfile.read_text().split():
            out |= set(children.get(int(z), []))
    return out


def _helpers(rl, cid: str) -> tuple[set[int], int]:
    """(rl's processes of the container but the monitor, pid 1's host pid)."""
    doc = json.loads(rl("inspect", cid, check=True).stdout)[0]
    monitor, pid1 = doc["State"]["MonitorPid"], doc["State"]["Pid"]
    children = _children()
    mine = _tree(monitor, children) - _tree(pid1, children) - {monitor}
    # the zygote's children: the fuse server, and the monitor itself when it forked it
    mine = {p for p in mine if _comm(p) != "slirp4netns"} | _zygote_servers(rl, children)
    return mine - {monitor} - _tree(pid1, children), pid1


def _reachable(rl, cid: str, pids) -> set[str]:
    r = rl("exec", "-e", f"PIDS={' '.join(map(str, pids))}", cid, "sh", "-c", PROBE,
           check=True)
    return set(r.stdout.split())


def _wait_started(rl, cid: str) -> None:
    # the lean execs of the start settle (a sandbox folds or becomes the waiter)
    deadline = time.monotonic() + 10
    while rl("exec", cid, "true").returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.5)


@pytest.mark.parametrize("zygote", ["1", "0"], ids=["zygote", "no-zygote"])
def test_helpers_of_a_detached_container_are_not_dumpable(rl, zygote):
    env = {"RL_FUSE_ZYGOTE": zygote}
    if zygote == "1":  # the zygote then, which serves the next -d container
        rl("run", "--rm", "--network", "none", "busybox", "true", check=True, env=env)
    cid = rl("run", "-d", "--pid", "host", "--cap-add", "SYS_PTRACE", "--network", "none",
             "busybox", "sh", "-c", "echo up; exec sleep 300", check=True,
             env=env).stdout.strip()
    _wait_started(rl, cid)
    helpers, pid1 = _helpers(rl, cid)
    kinds = {_comm(p) for p in helpers}
    assert helpers, "no helper process found"
    reached = _reachable(rl, cid, sorted(helpers | {pid1}))
    # the control: the container's own pid 1, which it may open
    assert {f"{pid1}:root", f"{pid1}:mem"} <= reached, reached
    leaked = {x for x in reached if int(x.split(":")[0]) in helpers}
    assert not leaked, f"container root opened rl's helpers {kinds}: {leaked}"
    # the container still works
    assert rl("logs", cid, check=True).stdout == "up\n"
    rl("stop", "-t", "1", cid, check=True, env=env)
    rl("rm", cid, check=True, env=env)


def test_the_sandbox_of_a_foreground_run_is_not_dumpable(rl):
    """`rl run` without -d: the sandbox stays pid 1's parent ($PPID with --pid host)."""
    r = rl("run", "--rm", "--pid", "host", "--cap-add", "SYS_PTRACE", "--network", "none",
           "busybox", "sh", "-c", f"echo $PPID $$; PIDS=\"$PPID $$\"; {PROBE}", check=True)
    first, *got = r.stdout.splitlines()
    sandbox, shell = first.split()
    assert f"{shell}:root" in got, got  # the control: the container's own shell
    assert not [x for x in got if x.startswith(f"{sandbox}:")], got

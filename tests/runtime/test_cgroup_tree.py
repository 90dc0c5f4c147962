"""The per-container cgroup of rootless/engine/cgroups.py, against a temporary directory laid
out as a delegated cgroup v2 tree (plain files stand for the kernel's: cgroup.controllers,
cgroup.subtree_control, cgroup.procs, memory.max, cgroup.freeze, cgroup.events...). What the
kernel does by itself (make a cgroup's files at mkdir, freeze the tasks, refuse with EBUSY)
is played by the test where a test needs it. No cgroup v2 delegation on the test machines:
the real path is not run end to end here."""

from __future__ import annotations

import errno
import os

import pytest

from rootless.engine import cgroups
from rootless.errors import InvalidArgument, RlError

ALL = ["cpu", "cpuset", "io", "memory", "pids"]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A delegated user@1000.service with every controller; returns (report, its dir)."""
    # the kernel makes a cgroup's files; here a write makes the plain file
    monkeypatch.setattr(cgroups, "_WRITE", cgroups._WRITE | os.O_CREAT)
    root = tmp_path / "cgroup"
    top = root / "user.slice" / "user-1000.slice" / "user@1000.service"
    (top / "app.slice").mkdir(parents=True)
    (root / "cgroup.controllers").write_text(" ".join(ALL) + "\n")
    (top / "cgroup.controllers").write_text(" ".join(ALL) + "\n")
    (top / "cgroup.subtree_control").write_text("")
    (top / "cgroup.procs").write_text("")
    rep = cgroups.Report("v2", "/user.slice/user-1000.slice/user@1000.service/app.slice",
                         str(top), list(ALL), root=str(root))
    return rep, top


def limits(*args: str) -> dict:
    given = dict(zip(args[::2], args[1::2], strict=True))
    return cgroups.parse_limits(given)


def test_child_made_controllers_enabled_limits_written_pid_entered(tree):
    rep, top = tree
    lim = limits("--memory", "512m", "--cpus", "1.5", "--cpu-shares", "512",
                 "--cpuset-cpus", "0-1", "--pids-limit", "100")
    assert cgroups.make("0123456789ab", lim, rep) is True
    child = top / "rl-0123456789ab"
    assert child.is_dir()
    assert set((top / "cgroup.subtree_control").read_text().split()) == \
        {"+cpu", "+cpuset", "+memory", "+pids"}
    assert (child / "memory.max").read_text() == str(512 << 20)
    # --memory-swap unset: as much swap as memory (Docker's)
    assert (child / "memory.swap.max").read_text() == str(512 << 20)
    assert (child / "cpu.max").read_text() == "150000 100000"
    # Docker's conversion 1 + ((512 - 2) * 9999) / 262142
    assert (child / "cpu.weight").read_text() == "20"
    assert (child / "cpuset.cpus").read_text() == "0-1"
    assert (child / "pids.max").read_text() == "100"
    assert (child / "cgroup.freeze").read_text() == "0"
    cgroups.enter("0123456789ab", 4242, rep)
    assert (child / "cgroup.procs").read_text() == "4242"


def test_enabled_controllers_are_not_written_again(tree, monkeypatch):
    rep, top = tree
    (top / "cgroup.subtree_control").write_text("cpu memory pids\n")
    cgroups.make("abc", limits("--memory", "64m"), rep)
    assert (top / "cgroup.subtree_control").read_text() == "cpu memory pids\n"


def test_processes_of_the_delegated_dir_move_to_a_leaf_first(tree, monkeypatch):
    """The no-internal-process rule: enabling controllers for the children of a cgroup with
    processes of its own fails (EBUSY) until they are moved into a leaf."""
    rep, top = tree
    (top / "cgroup.procs").write_text("111\n222\n")
    real = cgroups._write_at
    moved = []

    def kernel(dirfd, name, value):
        here = os.readlink(f"/proc/self/fd/{dirfd}")
        if name == "cgroup.subtree_control" and (top / "cgroup.procs").read_text():
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        if name == "cgroup.procs" and here.endswith("/" + cgroups.LEAF):
            moved.append(value)
            left = [p for p in (top / "cgroup.procs").read_text().split() if p != value]
            (top / "cgroup.procs").write_text("".join(p + "\n" for p in left))
        real(dirfd, name, value)

    monkeypatch.setattr(cgroups, "_write_at", kernel)
    cgroups.make("abc", limits("--pids-limit", "10"), rep)
    assert moved == ["111", "222"]
    assert (top / cgroups.LEAF).is_dir()
    assert (top / "cgroup.subtree_control").read_text() == "+pids"
    assert (top / "rl-abc" / "pids.max").read_text() == "10"


@pytest.mark.parametrize("args, files", [
    (("--memory", "1g", "--memory-swap", "3g"),
     {"memory.max": str(1 << 30), "memory.swap.max": str(2 << 30)}),
    (("--memory", "1g", "--memory-swap", "-1"),
     {"memory.max": str(1 << 30), "memory.swap.max": "max"}),
    (("--memory-reservation", "100m",), {"memory.low": str(100 << 20)}),
    (("--cpu-shares", "1024",), {"cpu.weight": "39"}),
    (("--cpu-shares", "2",), {"cpu.weight": "1"}),
    (("--cpu-shares", "262144",), {"cpu.weight": "10000"}),
    (("--cpu-quota", "50000", "--cpu-period", "200000"), {"cpu.max": "50000 200000"}),
    (("--cpu-quota", "-1",), {"cpu.max": "max 100000"}),
    (("--cpus", "0.5",), {"cpu.max": "50000 100000"}),
    (("--pids-limit", "0",), {"pids.max": "max"}),
    (("--pids-limit", "-1",), {"pids.max": "max"}),
    (("--cpuset-mems", "0",), {"cpuset.mems": "0"}),
    (("--blkio-weight", "500",), {"io.weight": "default 4950"}),
])
def test_dockers_conversions(args, files):
    assert cgroups.files_of(limits(*args)) == files


@pytest.mark.parametrize("args, words", [
    (("--memory", "lots"), "invalid value 'lots' for --memory: not a size"),
    (("--memory", "1m"), "the minimum memory limit is 6MB"),
    (("--memory-swap", "1g"), "--memory-swap needs --memory"),
    (("--memory", "1g", "--memory-swap", "512m"), "--memory-swap must be at least --memory"),
    (("--cpus", "0"), "the range of CPUs is from 0.01 to"),
    (("--cpus", "x"), "invalid value 'x' for --cpus: not a number"),
    (("--cpus", "0.5", "--cpu-quota", "50000"), "--cpus cannot be given with --cpu-quota"),
    (("--cpu-shares", "-3"), "shares cannot be negative"),
    (("--cpuset-cpus", "3-1"), "not a list of CPUs"),
    (("--pids-limit", "ten"), "invalid value 'ten' for --pids-limit: not an integer"),
    (("--blkio-weight", "5"), "the range of blkio weight is 10 to 1000"),
])
def test_bad_values_are_refused_in_one_line(args, words):
    with pytest.raises(InvalidArgument) as err:
        limits(*args)
    assert words in err.value.message and "\n" not in err.value.message


def test_inspect_host_config_of_limits():
    hc = cgroups.host_config(limits("--memory", "1g", "--cpus", "1.5", "--pids-limit", "5"))
    assert hc["Memory"] == 1 << 30 and hc["NanoCpus"] == 1_500_000_000
    assert hc["PidsLimit"] == 5 and hc["CpuShares"] == 0 and hc["CpusetCpus"] == ""


def test_update_writes_a_running_containers_cgroup(tree):
    rep, top = tree
    assert cgroups.update("abc", limits("--memory", "64m"), rep) is False  # no cgroup
    cgroups.make("abc", limits("--memory", "64m"), rep)
    assert cgroups.update("abc", limits("--memory", "128m", "--pids-limit", "7"), rep)
    assert (top / "rl-abc" / "memory.max").read_text() == str(128 << 20)
    assert (top / "rl-abc" / "pids.max").read_text() == "7"


def test_update_enables_the_controllers_a_container_started_without(tree):
    rep, top = tree
    cgroups.make("abc", None, rep)
    assert (top / "cgroup.subtree_control").read_text() == ""
    assert cgroups.update("abc", limits("--pids-limit", "9"), rep)
    assert (top / "cgroup.subtree_control").read_text() == "+pids"
    assert (top / "rl-abc" / "pids.max").read_text() == "9"


def test_a_login_sessions_scope_is_named():
    rep = cgroups.Report("v2", "/user.slice/user-1000.slice/session-3.scope", None)
    reason, fix = rep.why_not("memory")
    assert "is a login session's scope" in reason
    assert fix.startswith("run rl inside your user manager's tree: systemd-run --user")


def test_removal(tree, monkeypatch):
    rep, top = tree
    (top / "rl-abc").mkdir()  # the kernel's cgroup dir can be removed with its files
    cgroups.remove("abc", rep)
    assert not (top / "rl-abc").exists()
    cgroups.remove("abc", rep)  # gone already: nothing to do

    def busy(name, dir_fd=None):
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))

    (top / "rl-def").mkdir()
    monkeypatch.setattr(cgroups.os, "rmdir", busy)
    with pytest.raises(RlError) as err:
        cgroups.remove("def", rep, wait=0)
    assert "cannot remove the container's cgroup" in err.value.message
    assert "rl-def" in err.value.message and "Device or resource busy" in err.value.message


def test_freeze_and_thaw_wait_for_cgroup_events(tree):
    rep, top = tree
    cgroups.make("abc", None, rep)
    events = top / "rl-abc" / "cgroup.events"
    events.write_text("populated 1\nfrozen 1\n")
    cgroups.freeze("web", "abc", True, rep)
    assert (top / "rl-abc" / "cgroup.freeze").read_text() == "1"
    # the kernel has not said "frozen 0": unpause waits, then says so
    with pytest.raises(RlError) as err:
        cgroups.freeze("web", "abc", False, rep, timeout=0.2)
    assert "cgroup.events did not say 'frozen 0'" in err.value.message
    assert (top / "rl-abc" / "cgroup.freeze").read_text() == "0"
    events.write_text("populated 1\nfrozen 0\n")
    cgroups.freeze("web", "abc", False, rep)


def test_freeze_without_a_cgroup_of_its_own_is_refused(tree):
    rep, _ = tree
    with pytest.raises(InvalidArgument) as err:
        cgroups.freeze("web", "nocg", True, rep)
    assert err.value.message.startswith("cannot pause container web: no cgroup freezer: "
                                        "it has no cgroup of its own")


@pytest.mark.parametrize("rep, words", [
    (cgroups.Report("v1", "", None), "cgroup v1 only"),
    (cgroups.Report("hybrid", "/", None, unified=[]), "hybrid cgroup layout"),
    (cgroups.Report("v2", "/user.slice/x", None), "is not delegated to you"),
])
def test_no_delegation_refuses_limits_and_makes_nothing(tmp_path, rep, words):
    rep.root = str(tmp_path)
    with pytest.raises(InvalidArgument) as err:
        cgroups.refuse_resource_flags({"--pids-limit": "10"}, rep)
    assert err.value.message.startswith("--pids-limit cannot be honoured: ") and \
        words in err.value.message
    # limits kept from a create on another host layout: the start refuses, never drops them
    with pytest.raises(RlError) as err:
        cgroups.make("abc", limits("--pids-limit", "10"), rep)
    assert words in err.value.message
    assert cgroups.make("abc", None, rep) is False
    cgroups.join("abc", None, 1)  # no limits, no delegation: nothing, no error
    assert os.listdir(tmp_path) == []


def test_missing_controller_refuses_that_flag(tree):
    rep, _ = tree
    rep.controllers = ["memory", "pids"]
    assert cgroups.refuse_resource_flags({"--memory": "1g", "--pids-limit": "5"}, rep) == \
        {"Memory": 1 << 30, "PidsLimit": 5}
    with pytest.raises(InvalidArgument) as err:
        cgroups.refuse_resource_flags({"--memory": "1g", "--cpuset-cpus": "0"}, rep)
    assert err.value.message == ("--cpuset-cpus cannot be honoured: the cpuset controller "
                                 f"is not delegated to your cgroup ({rep.delegated}: "
                                 "memory pids)")
    with pytest.raises(RlError) as err:
        cgroups.make("abc", limits("--cpus", "1"), rep)
    assert "the cpu controller is not delegated" in err.value.message


def test_info_line_when_delegated(tree):
    rep, _ = tree
    assert cgroups.info_line(rep) == (True, f"cgroup v2, {rep.delegated} delegated with "
                                      "cpu cpuset io memory pids", None)


def test_a_pause_shows_until_the_next_start():
    """ps's STATUS and State, inspect's Status and `--filter status=paused` read the time
    of the pause; one from before the last start (stopped while paused) is void."""
    from types import SimpleNamespace

    from rootless.engine import filters
    from rootless.format import docker_shapes

    c = SimpleNamespace(state="running", started=100.0, options={"paused": 150.0},
                        health=None, exit_code=None, finished=None)
    assert docker_shapes.docker_status(c, now=160.0).endswith(" (Paused)")
    assert filters._status(c) == "paused" and docker_shapes.paused(c)
    c.started = 200.0  # restarted since
    assert docker_shapes.docker_status(c, now=260.0) == "Up About a minute"
    assert filters._status(c) == "running" and not docker_shapes.paused(c)


@pytest.mark.parametrize("args, current, expect", [
    # rl update --memory-swap of a container made with --memory: checked against it
    (("--memory-swap", "1g"), {"Memory": 512 << 20}, {"MemorySwap": 1 << 30}),
    (("--memory-swap", "-1"), {"Memory": 512 << 20}, {"MemorySwap": -1}),
    (("--memory-swap", "256m"), {"Memory": 512 << 20},
     "--memory-swap must be at least --memory (it is memory plus swap; --memory is"),
    (("--memory-swap", "1g"), {}, "--memory-swap needs --memory"),
    # --memory alone: at most the swap limit the container has, as Docker's update
    (("--memory", "2g"), {"Memory": 512 << 20, "MemorySwap": 1 << 30},
     "--memory must be at most the container's --memory-swap"),
    (("--memory", "768m"), {"Memory": 512 << 20, "MemorySwap": 1 << 30},
     {"Memory": 768 << 20}),
    (("--memory", "2g"), {"Memory": 512 << 20, "MemorySwap": -1}, {"Memory": 2 << 30}),
    (("--memory", "2g", "--memory-swap", "3g"), {"Memory": 512 << 20, "MemorySwap": 1 << 30},
     {"Memory": 2 << 30, "MemorySwap": 3 << 30}),
])
def test_update_checks_memory_swap_against_the_containers_limits(tree, args, current,
                                                                   expect):
    rep, _ = tree
    given = dict(zip(args[::2], args[1::2], strict=True))
    if isinstance(expect, str):
        with pytest.raises(InvalidArgument) as err:
            cgroups.refuse_resource_flags(given, rep, current=current)
        assert expect in err.value.message and "\n" not in err.value.message
    else:
        assert cgroups.refuse_resource_flags(given, rep, current=current) == expect

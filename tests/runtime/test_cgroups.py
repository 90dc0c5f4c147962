"""Resource flags and cgroups: what rootless/engine/cgroups.py finds (on a cgroupfs laid out
in a temporary directory), and the refusal of every resource flag on this host, with the
reason found here, as the test user."""

from __future__ import annotations

import os

import pytest

from rootless.engine import cgroups


def layout(tmp_path, kind, *, own=True, controllers="cpu memory pids"):
    root = tmp_path / "cgroup"
    root.mkdir()
    if kind == "v2":
        (root / "cgroup.controllers").write_text("cpu cpuset io memory pids\n")
        user = root / "user.slice" / "user-1000.slice" / "user@1000.service"
        app = user / "app.slice" / "rl.scope"
        app.mkdir(parents=True)
        (user / "cgroup.controllers").write_text(controllers + "\n")
        self_cg = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/rl.scope\n"
        uid = os.getuid() if own else os.getuid() + 1
        f = tmp_path / "self_cgroup"
        f.write_text(self_cg)
        # the user's manager and below are the user's, the rest root's (as systemd does)
        return cgroups.probe(str(root), str(f), uid=uid, owner_of=lambda p: os.getuid()
                             if "user@1000.service" in p else 0)
    elif kind == "hybrid":
        for c in ("memory", "cpu", "pids"):
            (root / c).mkdir()
        (root / "unified").mkdir()
        (root / "unified" / "cgroup.controllers").write_text("\n")
        self_cg = "4:memory:/\n0::/\n"
        uid = os.getuid()
    else:
        (root / "memory").mkdir()
        self_cg = "4:memory:/\n"
        uid = os.getuid()
    f = tmp_path / "self_cgroup"
    f.write_text(self_cg)
    return cgroups.probe(str(root), str(f), uid=uid)


def test_hybrid_layout_is_found_and_explained(tmp_path):
    rep = layout(tmp_path, "hybrid")
    assert rep.layout == "hybrid" and rep.delegated is None
    reason, fix = rep.why_not("memory")
    assert "hybrid cgroup layout: the memory controller is on cgroup v1" in reason
    assert "has no controllers" in reason
    assert "systemd.unified_cgroup_hierarchy=1" in fix and "Delegate=" in fix


def test_hybrid_with_a_delegated_v2_cgroup_gives_freeze_not_limits(tmp_path):
    """systemd delegates the user's cgroup of the v2 tree on a hybrid host too: usable for
    a container's own cgroup (and cgroup.freeze), while every limit stays refused."""
    root = tmp_path / "cgroup"
    (root / "memory").mkdir(parents=True)
    mine = root / "unified" / "user.slice" / "user-1000.slice" / "user@1000.service"
    mine.mkdir(parents=True)
    (root / "unified" / "cgroup.controllers").write_text("\n")
    (mine / "cgroup.controllers").write_text("\n")
    f = tmp_path / "self_cgroup"
    f.write_text("4:memory:/user.slice\n0::/user.slice/user-1000.slice/user@1000.service\n")
    ours = str(mine)
    rep = cgroups.probe(str(root), str(f), uid=1000,
                        owner_of=lambda p: 1000 if p.startswith(ours) else 0)
    assert rep.layout == "hybrid" and rep.delegated == ours and rep.usable
    assert "hybrid cgroup layout: the memory controller is on cgroup v1" in \
        rep.why_not("memory")[0]
    ok, detail, _ = cgroups.info_line(rep)
    assert not ok and f"hybrid layout, {ours} delegated with no controllers" in detail


def test_v1_only(tmp_path):
    rep = layout(tmp_path, "v1")
    assert rep.layout == "v1"
    assert "cgroup v1 only" in rep.why_not("pids")[0]


def test_v2_delegated_subtree_and_missing_controller(tmp_path):
    rep = layout(tmp_path, "v2", controllers="memory pids")
    assert rep.layout == "v2"
    assert rep.delegated == str(tmp_path / "cgroup/user.slice/user-1000.slice/user@1000.service")
    assert rep.controllers == ["memory", "pids"]
    assert "the cpu controller is not delegated" in rep.why_not("cpu")[0]
    ok, detail, fix = cgroups.info_line(rep)
    assert not ok  # cpu, cpuset, io missing
    assert "delegated with memory pids (no cpu cpuset io" in detail and "Delegate=" in fix


def test_v2_not_owned_is_not_delegated(tmp_path):
    rep = layout(tmp_path, "v2", own=False)
    assert rep.delegated is None
    reason, fix = rep.why_not("memory")
    assert "is not delegated to you" in reason and "loginctl enable-linger" in fix


def test_v2_controller_not_delegated_names_it():
    rep = cgroups.Report("v2", "/user.slice/x", "/sys/fs/cgroup/user.slice/x",
                         ["memory", "pids"])
    reason, fix = rep.why_not("cpu")
    assert reason == ("the cpu controller is not delegated to your cgroup "
                      "(/sys/fs/cgroup/user.slice/x: memory pids)")
    assert "Delegate=cpu cpuset io memory pids" in fix
    assert rep.why_not("memory") == ("", "")  # usable


@pytest.mark.parametrize("flag, value, controller", [
    ("--memory", "1g", "memory"), ("--memory-swap", "2g", "memory"),
    ("--cpus", "1.5", "cpu"), ("--cpu-shares", "512", "cpu"),
    ("--cpuset-cpus", "0", "cpuset"), ("--pids-limit", "100", "pids"),
])
def test_resource_flags_are_refused_with_this_hosts_reason(rl, flag, value, controller):
    reason, fix = cgroups.probe().why_not(controller)
    r = rl("run", flag, value, "busybox", "true")
    assert r.returncode == 125
    assert r.stderr == f"rl: error: {flag} cannot be honoured: {reason} ({fix})\n"
    assert rl("ps", "-aq", check=True).stdout == ""


def test_device_cgroup_rule_is_refused(rl):
    r = rl("run", "--device-cgroup-rule", "c 1:3 rwm", "busybox", "true")
    assert r.returncode == 125
    assert "--device-cgroup-rule needs the devices controller" in r.stderr


@pytest.mark.parametrize("kind, words", [
    ("hybrid", "the freezer controller is not on the cgroup v2 tree"),
    ("v1", "cgroup v1 only"),
    ("v2", "it has no cgroup of its own (rl could not make one under"),
])
def test_pause_refusal_names_the_layout(tmp_path, kind, words):
    rep = layout(tmp_path, kind)
    with pytest.raises(cgroups.InvalidArgument) as err:
        cgroups.refuse_freeze("web", "pause", rep)
    assert err.value.message.startswith("cannot pause container web: no cgroup freezer: ")
    assert words in err.value.message
    assert "SIGSTOP of every process is not a freeze" in err.value.message

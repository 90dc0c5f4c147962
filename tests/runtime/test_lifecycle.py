"""Detached containers and the lifecycle commands, as the unprivileged test user."""

from __future__ import annotations

import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.runtime.conftest import user_processes_mentioning

LOOP = 'trap "echo bye; exit 3" TERM; echo started; while true; do sleep 0.1; done'


def detached(rl, *args, name=None):
    extra = ["--name", name] if name else []
    r = rl("run", "-d", "--network", "none", *extra, *args, check=True)
    return r.stdout.strip()


def wait_for_log(rl, cid, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = rl("logs", cid).stdout
        if text in out:
            return out
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in the log of {cid}")


def ps_json(rl, *flags):
    """`rl ps --format json`: one object a line, Docker's fields, all strings."""
    out = rl("ps", "--format", "json", *flags, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_detached_logs_stop_rm_leave_nothing(rl):
    cid = detached(rl, "busybox", "sh", "-c", "echo to-err >&2; " + LOOP, name="web")
    assert len(cid) == 64
    wait_for_log(rl, "web", "started")
    rows = ps_json(rl)
    assert [r["Names"] for r in rows] == ["web"]
    assert rows[0]["Status"].startswith("Up")
    # seen (the monitor and the fuse server; the sandbox exited once pid 1 ran), so
    # "none left" below means it
    assert len(user_processes_mentioning(str(rl.root))) >= 2
    r = rl("logs", "web", check=True)
    assert r.stdout == "started\n" and r.stderr == "to-err\n"
    r = rl("logs", "-t", "web", check=True)
    assert r.stdout.split(" ", 1)[0].endswith("Z") and r.stdout.endswith(" started\n")
    t0 = time.monotonic()
    rl("stop", "web", check=True)
    assert time.monotonic() - t0 < 5  # the trap ended it, no 10 s timeout
    rows = ps_json(rl, "-a")
    assert rows[0]["State"] == "exited"
    assert rows[0]["Status"].startswith("Exited (3)")
    assert rl("ps", "-q", check=True).stdout == ""
    assert rl("logs", "web").stdout == "started\nbye\n"
    assert rl("wait", "web").stdout.strip() == "3"
    rl("rm", "web", check=True)
    assert rl("ps", "-aq", check=True).stdout == ""
    assert not list((rl.data_dir / "containers").iterdir())
    assert user_processes_mentioning(str(rl.root)) == []


def test_stop_timeout_then_kill_and_kill_signal(rl):
    detached(rl, "busybox", "sleep", "300", name="stubborn")
    t0 = time.monotonic()
    rl("stop", "-t", "1", "stubborn", check=True)  # pid 1 ignores SIGTERM: killed after 1 s
    assert 0.9 < time.monotonic() - t0 < 8
    assert rl("wait", "stubborn").stdout.strip() == "137"
    detached(rl, "busybox", "sh", "-c", 'trap "exit 9" USR1; while true; do sleep 0.1; done',
             name="k")
    rl("kill", "-s", "USR1", "k", check=True)
    assert rl("wait", "k").stdout.strip() == "9"
    r = rl("kill", "-s", "NOSUCHSIG", "k")
    assert r.returncode == 125 and "NOSUCHSIG" in r.stderr


def test_rm_running_needs_force_and_leaves_nothing(rl):
    detached(rl, "busybox", "sleep", "300", name="busy")
    r = rl("rm", "busy")
    assert r.returncode == 125 and "rm -f" in r.stderr
    row = ps_json(rl)[0]
    assert row["State"] == "running"
    pid = json.loads(rl("inspect", "busy", check=True).stdout)[0]["State"]["Pid"]
    os.kill(pid, 0)  # still there
    assert len(user_processes_mentioning(str(rl.root))) >= 2  # seen, so "none left" means it
    rl("rm", "-f", "busy", check=True)
    assert rl("ps", "-aq", check=True).stdout == ""
    assert user_processes_mentioning(str(rl.root)) == []


def test_exec_sees_container_files_and_processes(rl):
    detached(rl, "busybox", "sh", "-c", "echo data > /shared; exec sleep 300", name="box")
    deadline = time.monotonic() + 10
    while rl("exec", "box", "cat", "/shared").stdout != "data\n":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    r = rl("exec", "box", "ps", check=True)
    assert "sleep 300" in r.stdout
    pids = [line.split()[0] for line in r.stdout.splitlines()[1:]]
    assert "1" in pids
    r = rl("exec", "-u", "1000", "-w", "/tmp", "-e", "FOO=bar", "box", "sh", "-c",
           "id -u; pwd; echo $FOO; hostname", check=True)
    lines = r.stdout.split()
    assert lines[:3] == ["1000", "/tmp", "bar"]
    assert rl("exec", "box", "sh", "-c", "exit 5").returncode == 5
    r = rl("exec", "box", "nosuchcmd")
    assert r.returncode == 127 and "nosuchcmd" in r.stderr
    r = rl("top", "box", check=True)
    assert "sleep 300" in r.stdout


def test_exec_into_stopped_container_is_an_error(rl):
    rl("create", "--name", "idle", "--network", "none", "busybox", "true", check=True)
    r = rl("exec", "idle", "true")
    assert r.returncode == 125 and "not running" in r.stderr


def test_create_start_attach_restart_inspect(rl):
    cid = rl("create", "--name", "c1", "--network", "none", "-l", "team=a", "busybox", "sh",
             "-c", "echo run-$$; cat /proc/self/uid_map | head -1", check=True).stdout.strip()
    rows = ps_json(rl, "-a")
    assert rows[0]["State"] == "created" and rows[0]["Labels"] == "team=a"
    r = rl("start", "-a", "c1", check=True)
    assert r.stdout.startswith("run-1\n")
    doc = json.loads(rl("inspect", "c1", check=True).stdout)[0]
    assert doc["Id"] == cid and doc["State"]["Status"] == "exited"
    spec = doc["OCISpec"]
    assert spec["ociVersion"].startswith("1.")
    assert spec["process"]["args"][:2] == ["sh", "-c"]
    assert {"type": "pid"} in spec["linux"]["namespaces"]
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    rl("restart", "c1", check=True)
    rl("wait", "c1", check=True)
    assert rl("logs", "c1").stdout.count("run-1") == 2
    assert rl("inspect", "--format", "{{.Name}}", "c1").stdout.strip() == "c1"


def test_cp_both_ways_and_symlinks_stay_inside(rl, tmp_path):
    detached(rl, "busybox", "sh", "-c",
             "mkdir /d; echo in > /d/f; ln -s / /d/up; ln -s /etc/passwd /d/pw; exec sleep 300",
             name="cpbox")
    deadline = time.monotonic() + 10
    while rl("exec", "cpbox", "test", "-L", "/d/pw").returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    out = tmp_path / "out"
    out.mkdir()
    rl("cp", "cpbox:/d", str(out), check=True)
    assert (out / "d" / "f").read_text() == "in\n"
    assert os.readlink(out / "d" / "up") == "/"  # copied as a link, not followed
    # into the container through its symlink /d/up -> /: lands in the container's root
    src = tmp_path / "hostfile"
    src.write_text("from host\n")
    rl("cp", str(src), "cpbox:/d/up/landed", check=True)
    assert rl("exec", "cpbox", "cat", "/landed").stdout == "from host\n"
    assert not os.path.exists("/landed")
    # out of the container through a symlink to /etc/passwd: the container's, not the host's
    rl("cp", "cpbox:/d/pw", str(tmp_path / "pw"), check=True)
    assert os.path.islink(tmp_path / "pw")
    r = rl("cp", "cpbox:/nonexistent", str(tmp_path / "x"))
    assert r.returncode != 0 and "/nonexistent" in r.stderr, r.stderr
    assert not (tmp_path / "x").exists()


def test_container_prune_keeps_running(rl):
    rl("run", "--name", "done1", "--network", "none", "busybox", "true", check=True)
    detached(rl, "busybox", "sleep", "300", name="alive")
    r = rl("container", "prune", "-f", check=True)
    assert r.stdout.splitlines()[0] == "Deleted Containers:"
    assert len(r.stdout.splitlines()[1]) == 64 and r.stdout.splitlines()[2] == ""
    assert [row["Names"] for row in ps_json(rl, "-a")] == ["alive"]


def test_ps_tells_the_truth_after_the_monitor_died(rl):
    detached(rl, "busybox", "sleep", "300", name="orphan")
    doc = json.loads(rl("inspect", "orphan", check=True).stdout)[0]
    # the check below must be able to see the container's processes, or it proves nothing
    seen = user_processes_mentioning(str(rl.root))
    assert any(line.startswith(f"{doc['State']['MonitorPid']}:") for line in seen), seen
    assert len(seen) >= 2, seen  # the monitor, the fuse server
    os.kill(doc["State"]["MonitorPid"], 9)
    deadline = time.monotonic() + 10
    while ps_json(rl, "-a")[0]["State"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # the sandbox, pid 1 and the fuse server died with it (PDEATHSIG)
    deadline = time.monotonic() + 10
    while user_processes_mentioning(str(rl.root)):
        assert time.monotonic() < deadline, user_processes_mentioning(str(rl.root))
        time.sleep(0.1)
    rl("rm", "orphan", check=True)


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    return int(raw[raw.rindex(")") + 2:].split()[1])


def test_a_detached_container_keeps_no_sandbox_process(rl):
    """Issue 18: once a detached container runs, its sandbox has exited and pid 1 is the
    monitor's own child (one Python process less per container); the exit code is still
    recorded, and the end leaves nothing running (the fuse server included)."""
    detached(rl, "busybox", "sh", "-c", LOOP, name="folded")
    wait_for_log(rl, "folded", "started")
    state = json.loads(rl("inspect", "folded", check=True).stdout)[0]["State"]
    monitor, pid1 = state["MonitorPid"], state["Pid"]
    assert _ppid(pid1) == monitor
    others = [line for line in user_processes_mentioning(str(rl.root))
              if _ppid(int(line.split(":")[0])) == monitor and int(line.split(":")[0]) != pid1]
    assert others == []  # --network none: no slirp4netns; and no sandbox
    rl("stop", "folded", check=True)
    assert ps_json(rl, "-a")[0]["Status"].startswith("Exited (3)")
    assert "bye" in rl("logs", "folded").stdout
    rl("rm", "folded", check=True)
    assert user_processes_mentioning(str(rl.root)) == []


def test_ten_containers_at_once(rl):
    def one(i):
        return rl("run", "--rm", "--network", "none", "busybox", "sh", "-c", f"echo n{i}",
                  timeout=120)

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(10)))
    for i, r in enumerate(results):
        assert r.returncode == 0, r.stderr
        assert r.stdout == f"n{i}\n"
    assert rl("ps", "-aq", check=True).stdout == ""
    assert user_processes_mentioning(str(rl.root)) == []


def test_ten_detached_containers_at_once(rl):
    """Ten `rl run -d` of one image at the same moment: ten distinct running containers,
    each with its own rootfs, all removed at once with nothing left."""
    def one(i):
        return rl("run", "-d", "--network", "none", "--name", f"c{i}", "busybox", "sh", "-c",
                  f"echo {i} > /mine; exec sleep 300", timeout=120)

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(10)))
    for r in results:
        assert r.returncode == 0, r.stderr
    assert len({r.stdout.strip() for r in results}) == 10
    rows = ps_json(rl)
    assert sorted(row["Names"] for row in rows) == sorted(f"c{i}" for i in range(10))
    assert {row["State"] for row in rows} == {"running"}
    for i in range(10):  # each container wrote into its own upper dir only
        deadline = time.monotonic() + 10
        while (out := rl("exec", f"c{i}", "cat", "/mine").stdout) != f"{i}\n":
            assert time.monotonic() < deadline, out
            time.sleep(0.1)
    with ThreadPoolExecutor(10) as pool:
        removed = list(pool.map(lambda i: rl("rm", "-f", f"c{i}", timeout=120), range(10)))
    assert all(r.returncode == 0 for r in removed), [r.stderr for r in removed]
    assert rl("ps", "-aq", check=True).stdout == ""
    assert not list((rl.data_dir / "containers").iterdir())
    assert user_processes_mentioning(str(rl.root)) == []


def test_no_mounts_leak_to_the_host(rl):
    before = open("/proc/self/mountinfo").read()
    detached(rl, "busybox", "sleep", "300", name="m")
    during = open("/proc/self/mountinfo").read()
    rl("rm", "-f", "m", check=True)
    after = open("/proc/self/mountinfo").read()
    assert str(rl.root) not in during  # the rootfs lives in the container's mount namespace
    assert before.count("\n") == after.count("\n")


@pytest.mark.parametrize("cmd", [["sh", "-c", "exit 0"]])
def test_detached_rm_flag_removes_itself(rl, cmd):
    detached(rl, "--rm", "busybox", *cmd)
    deadline = time.monotonic() + 10
    while rl("ps", "-aq", check=True).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_sigterm_to_rl_run_is_forwarded(rl):
    proc = subprocess.Popen(rl.argv("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                                    'trap "exit 7" TERM; echo ready; '
                                    "while true; do sleep 0.1; done"),
                            env=rl.env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.terminate()
        assert proc.wait(10) == 7
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_logs_follow_and_tail(rl):
    detached(rl, "busybox", "sh", "-c",
             "for i in 1 2 3 4 5; do echo line$i; done; "
             "while [ ! -e /go ]; do sleep 0.05; done; echo late; printf partial",
             name="chatty")
    wait_for_log(rl, "chatty", "line5")
    assert rl("logs", "--tail", "2", "chatty").stdout == "line4\nline5\n"
    follow = subprocess.Popen(rl.argv("logs", "-f", "chatty"), env=rl.env,
                              stdout=subprocess.PIPE, text=True)
    try:
        # following, from the first line
        head = [follow.stdout.readline() for _ in range(5)]
        rl("exec", "chatty", "touch", "/go", check=True)
        # ends once the container exited, with what came while it followed
        rest = follow.stdout.read()
        assert follow.wait(30) == 0
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    r = subprocess.CompletedProcess([], 0, "".join(head) + rest)
    assert r.stdout == "line1\nline2\nline3\nline4\nline5\nlate\npartial"
    assert rl("logs", "--tail", "1", "chatty").stdout == "partial"


def test_detached_with_tty_logs_through_the_pty(rl):
    detached(rl, "-t", "busybox", "sh", "-c", "tty; echo done", name="ttybox")
    rl("wait", "ttybox", check=True)
    out = rl("logs", "ttybox").stdout
    assert "/dev/pts/0" in out and "done" in out


def test_cp_with_a_stopped_container(rl, tmp_path):
    rl("run", "--name", "stopped", "--network", "none", "busybox", "sh", "-c",
       "echo kept > /kept; ln -sfn / /up", check=True)
    rl("cp", "stopped:/kept", str(tmp_path / "kept"), check=True)
    assert (tmp_path / "kept").read_text() == "kept\n"
    src = tmp_path / "in"
    src.write_text("put\n")
    rl("cp", str(src), "stopped:/up/put", check=True)
    assert not os.path.exists("/put")
    r = rl("start", "-a", "stopped", check=True)  # runs its command again
    assert r.returncode == 0
    rl("cp", "stopped:/put", str(tmp_path / "back"), check=True)
    assert (tmp_path / "back").read_text() == "put\n"


def test_rm_removes_files_owned_by_subordinate_ids(rl):
    rl("run", "--name", "owner", "--network", "none", "-u", "1000", "busybox", "sh", "-c",
       "mkdir /tmp/d && echo x > /tmp/d/f && chmod 700 /tmp/d", check=True)
    rl("rm", "owner", check=True)
    assert not list((rl.data_dir / "containers").iterdir())


@pytest.mark.parametrize("how", ["foreground", "detached"])
def test_stop_of_an_rm_container_succeeds(rl, how):
    """Docker's stop of an --rm container succeeds (it is removed at its exit); rl's said
    "no such container", racing the removal."""
    argv = rl.argv("run", "--rm", "--name", "gone", "--network", "none", "busybox", "sh",
                   "-c", "echo up; sleep 300")
    if how == "detached":
        argv.insert(argv.index("--rm"), "-d")
    proc = subprocess.Popen(argv, env=rl.env, stdout=subprocess.PIPE, text=True)
    try:
        if how == "foreground":
            assert proc.stdout.readline() == "up\n"
        else:
            assert proc.wait(60) == 0
        r = rl("stop", "-t", "1", "gone")
        assert r.returncode == 0 and r.stdout == "gone\n", r.stderr
        assert rl("ps", "-aq", check=True).stdout == ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

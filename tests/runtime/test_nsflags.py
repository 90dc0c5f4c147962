"""`--pid`, `--ipc`, `--uts` (Docker's namespace modes, rootless), as the test user."""

from __future__ import annotations

import json
import socket

import pytest

from tests.runtime.test_runflags import refused, run_out


def _wait_running(rl, name):
    r = rl("exec", name, "true")
    assert r.returncode == 0, r.stderr


def test_pid_container_sees_the_other_containers_processes(rl):
    rl("run", "-d", "--name", "donor", "busybox", "sleep", "6543", check=True)
    _wait_running(rl, "donor")
    out = run_out(rl, "--pid", "container:donor", "busybox", "ps", "-o", "pid,args")
    lines = out.splitlines()
    assert any(line.split(None, 1)[0] == "1" and "sleep 6543" in line
               for line in lines[1:]), out
    rl("create", "--name", "joiner", "--pid", "container:donor", "busybox", "true",
       check=True)
    info = json.loads(rl("inspect", "joiner", check=True).stdout)[0]
    donor_id = json.loads(rl("inspect", "donor", check=True).stdout)[0]["Id"]
    assert info["HostConfig"]["PidMode"] == f"container:{donor_id}"


def test_pid_host_sees_the_hosts_processes(rl):
    out = run_out(rl, "--pid", "host", "busybox", "sh", "-c",
                  "cat /proc/1/comm; ls /proc | grep -c '^[0-9]'")
    first, count = out.split()
    assert first != "sh"  # the host's init, not the container's command
    assert int(count) > 5
    # exec into it still works: the host's pid namespace is not re-entered
    rl("run", "-d", "--name", "hostpid", "--pid", "host", "busybox", "sleep", "600",
       check=True)
    r = rl("exec", "hostpid", "cat", "/proc/self/status")
    assert r.returncode == 0, r.stderr


def test_uts_host_has_the_hosts_hostname(rl):
    assert run_out(rl, "--uts", "host", "busybox", "hostname").strip() == socket.gethostname()
    assert run_out(rl, "busybox", "hostname").strip() != socket.gethostname()


def test_ipc_shareable_and_container_share_sysv_and_shm(rl):
    rl("run", "-d", "--name", "ipcd", "--ipc", "shareable", "busybox", "sh", "-c",
       "echo secret > /dev/shm/marker; sleep 600", check=True)
    _wait_running(rl, "ipcd")
    mine = rl("exec", "ipcd", "readlink", "/proc/self/ns/ipc", check=True).stdout.strip()
    out = run_out(rl, "--ipc", "container:ipcd", "busybox", "sh", "-c",
                  "readlink /proc/self/ns/ipc; cat /dev/shm/marker")
    assert out.splitlines() == [mine, "secret"]
    # a private one (Docker's default) cannot be joined
    rl("run", "-d", "--name", "ipcp", "busybox", "sleep", "600", check=True)
    refused(rl, ["--ipc", "container:ipcp"], "non-shareable IPC")


def test_ipc_host_and_none(rl):
    host_ns = __import__("os").readlink("/proc/self/ns/ipc")
    assert run_out(rl, "--ipc", "host", "busybox", "readlink",
                   "/proc/self/ns/ipc").strip() == host_ns
    out = run_out(rl, "--ipc", "none", "busybox", "sh", "-c",
                  "grep -c ' /dev/shm ' /proc/self/mounts || true")
    assert out.strip() == "0"


@pytest.mark.parametrize("args, message", [
    (["--pid", "private"], "invalid --pid 'private'"),
    (["--pid", "container:"], "invalid --pid 'container:'"),
    (["--pid", "container:nosuch"], "no such container: nosuch"),
    (["--ipc", "bogus"], "invalid --ipc 'bogus'"),
    (["--uts", "container:x"], "invalid --uts 'container:x'"),
    (["--uts", "host", "--hostname", "h"], "conflicting options: --hostname and --uts host"),
    (["--ipc", "host", "--sysctl", "kernel.shmmax=1"], "--sysctl kernel.shmmax cannot be set"),
])
def test_bad_namespace_values_are_refused(rl, args, message):
    refused(rl, args, message)


def test_pid_host_is_refused_where_it_would_reach_an_execd_helper(rl):
    """A process exec'd in a container's user namespace (a lean waiter, fuse-overlayfs)
    is reachable from a --pid host container sharing that namespace: those are refused."""
    rl("run", "-d", "--name", "plain", "busybox", "sleep", "600", check=True)
    refused(rl, ["--pid", "host", "--network", "container:plain"],
            "--pid host cannot be combined with joining another container's namespaces")
    rl("run", "-d", "--name", "seer", "--pid", "host", "busybox", "sleep", "600", check=True)
    refused(rl, ["--network", "container:seer"], "runs with --pid host: its namespaces cannot")
    refused(rl, ["--pid", "host"], "--pid host needs the fuse_overlay root filesystem",
            env={"RL_ROOTFS_BACKEND": "fuse-overlayfs"})
    rl("rm", "-f", "plain", "seer", check=True)


def test_joining_a_stopped_container_is_refused_at_start(rl):
    rl("create", "--name", "stopped", "busybox", "true", check=True)
    r = rl("run", "--rm", "--pid", "container:stopped", "busybox", "true")
    assert r.returncode == 125
    assert "stopped: it is not running" in r.stderr

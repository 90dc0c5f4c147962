"""Flags of the other container verbs: `cp -a/-L/-`, `exec --privileged`, `pause`/`unpause`
(refused here with the host's reason), and the engine's wait conditions (the API's
next-exit and removed), as the test user."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile


def _running(rl, name):
    rl("run", "-d", "--name", name, "busybox", "sleep", "600", check=True)
    rl("exec", name, "true", check=True)


def test_cp_archive_keeps_ids_and_default_is_root(rl, tmp_path):
    _running(rl, "cpa")
    f = tmp_path / "owned"
    f.write_text("x\n")
    me = f"{os.getuid()} {os.getgid()}"
    rl("cp", str(f), "cpa:/tmp/plain", check=True)
    rl("cp", "-a", str(f), "cpa:/tmp/kept", check=True)
    out = rl("exec", "cpa", "stat", "-c", "%u %g", "/tmp/plain", "/tmp/kept",
             check=True).stdout.splitlines()
    assert out == ["0 0", me]


def test_cp_follow_link_on_the_host_side(rl, tmp_path):
    _running(rl, "cpl")
    (tmp_path / "real").write_text("content\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    rl("cp", str(tmp_path / "link"), "cpl:/tmp/", check=True)
    rl("cp", "-L", str(tmp_path / "link"), "cpl:/tmp/followed", check=True)
    out = rl("exec", "cpl", "sh", "-c",
             "test -L /tmp/link && echo link; cat /tmp/followed; test -L /tmp/followed "
             "|| echo file", check=True).stdout.splitlines()
    assert out == ["link", "content", "file"]
    # -L out of the container follows the link inside the container's own tree
    rl("exec", "cpl", "sh", "-c", "echo inside > /tmp/t; ln -s /tmp/t /tmp/l", check=True)
    rl("cp", "-L", "cpl:/tmp/l", str(tmp_path / "got"), check=True)
    assert (tmp_path / "got").read_text() == "inside\n" and not (tmp_path / "got").is_symlink()


def test_cp_errors_in_the_container_are_one_line(rl, tmp_path):
    """What the child in the container finds wrong is the error, said once: running
    (the child joins it) or stopped (its root mounted for the copy), out, into, and '-'."""
    _running(rl, "cpe")
    rl("create", "--name", "cpstopped", "--network", "none", "busybox", "true", check=True)
    (tmp_path / "f").write_text("x\n")
    cases = [
        (["cpe:/missing", str(tmp_path)], "/missing: No such file or directory"),
        (["cpstopped:/missing", str(tmp_path)], "/missing: No such file or directory"),
        (["cpe:/missing", "-"], "/missing: No such file or directory"),
        ([str(tmp_path / "f"), "cpe:/nodir/sub/f"], "/nodir/sub does not exist"),
        ([str(tmp_path / "f"), "cpstopped:/nodir/sub/f"], "/nodir/sub does not exist"),
    ]
    for args, said in cases:
        r = rl("cp", *args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) == 1 and said in lines[0], (args, r.stderr)
    assert not (tmp_path / "missing").exists()


def test_cp_tar_streams_on_stdin_and_stdout(rl):
    _running(rl, "cps")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"from a tar\n"
        info = tarfile.TarInfo("dir/file")
        info.size, info.uid, info.gid = len(data), 1234, 4321
        tar.addfile(info, io.BytesIO(data))
    r = rl("cp", "-", "cps:/tmp", input=buf.getvalue(), text=False)
    assert r.returncode == 0, r.stderr
    r = rl("cp", "-a", "-", "cps:/var", input=buf.getvalue(), text=False)
    assert r.returncode == 0, r.stderr
    out = rl("exec", "cps", "stat", "-c", "%u %g", "/tmp/dir/file", "/var/dir/file",
             check=True).stdout.splitlines()
    assert out == ["0 0", "1234 4321"]
    r = rl("cp", "cps:/tmp/dir", "-", text=False)
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        assert tar.extractfile("dir/file").read() == b"from a tar\n"
    r = rl("cp", "-", "cps:/tmp/dir/file", input=buf.getvalue(), text=False)
    assert r.returncode != 0 and b"is not a directory" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_exec_privileged_has_every_capability(rl):
    _running(rl, "xp")
    plain = rl("exec", "xp", "grep", "CapEff", "/proc/self/status", check=True).stdout
    priv = rl("exec", "--privileged", "xp", "grep", "CapEff", "/proc/self/status",
              check=True).stdout
    assert int(priv.split()[1], 16) > int(plain.split()[1], 16)
    assert int(priv.split()[1], 16) & (1 << 21)  # CAP_SYS_ADMIN (of the user namespace)


def test_exec_env_file(rl, tmp_path):
    _running(rl, "xe")
    (tmp_path / "env").write_text("# a comment\nGREETING=hello\n")
    out = rl("exec", "--env-file", str(tmp_path / "env"), "xe", "sh", "-c", "echo $GREETING",
             check=True).stdout
    assert out.strip() == "hello"
    r = rl("exec", "--env-file", str(tmp_path / "nosuch"), "xe", "true")
    assert r.returncode == 125 and len(r.stderr.strip().splitlines()) == 1


def test_pause_is_refused_with_the_hosts_reason(rl):
    _running(rl, "pz")
    for verb in ("pause", "unpause"):
        r = rl(verb, "pz")
        assert r.returncode == 125, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert f"cannot {verb} container pz: no cgroup freezer" in r.stderr
        assert "SIGSTOP of every process is not a freeze" in r.stderr
    # the container was left running as it was
    assert rl("inspect", "-f", "{{.State.Status}}", "pz", check=True).stdout.strip() == \
        "running"


def _engine_wait(rl, ref, condition):
    """The engine's wait with a condition, as the API service calls it; it prints
    "looked" once the wait has looked at the container the first time."""
    code = f"""
from rootless.engine import containers
lookup, first = containers.lookup, []
def looked(ref):
    c = lookup(ref)
    if not first:
        first.append(1)
        print("looked", flush=True)
    return c
containers.lookup = looked
print(containers.wait({ref!r}, {condition!r}))
"""
    p = subprocess.Popen([sys.executable, "-c", code], env=dict(rl.env),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "looked\n", p.communicate()
    return p


def test_wait_conditions_next_exit_and_removed(rl):
    rl("run", "--name", "we", "busybox", "sh", "-c", "exit 3", check=False)
    # next-exit: the exit after the call, not the one before it
    p = _engine_wait(rl, "we", "next-exit")
    rl("start", "we", check=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.strip() == "3"
    p = _engine_wait(rl, "we", "removed")
    rl("rm", "we", check=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.strip() == "3"


def test_wait_removed_of_a_container_that_never_ran_is_0(rl):
    """Docker answers 0 (its ExitCode); the wait polled for a die event and answered -1."""
    rl("create", "--name", "never", "busybox", "true", check=True)
    p = _engine_wait(rl, "never", "removed")
    rl("rm", "never", check=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.strip() == "0"


def test_wait_next_exit_sees_an_exit_a_restart_follows_at_once(rl):
    _running(rl, "wr")
    p = _engine_wait(rl, "wr", "next-exit")
    assert p.poll() is None  # running: no exit yet
    rl("restart", "-t", "0", "wr", check=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out.strip() == "137"
    assert rl("inspect", "-f", "{{.State.Status}}", "wr", check=True).stdout.strip() == \
        "running"

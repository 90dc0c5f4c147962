"""Bad input: one clear line, exit 125, and nothing left behind."""

from __future__ import annotations

import json

import pytest

from tests.runtime.conftest import user_processes_mentioning


def ps_rows(rl, *flags) -> list[dict]:
    """`rl ps -a --format json`: one object a line, as Docker prints."""
    out = rl("ps", "-a", "--format", "json", *flags, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def assert_clean(rl):
    assert rl("ps", "-aq", check=True).stdout == ""
    cdir = rl.data_dir / "containers"
    assert not cdir.exists() or not [p for p in cdir.iterdir()]
    assert user_processes_mentioning(str(rl.root)) == []


def one_error_line(r, *words):
    assert r.returncode == 125, (r.returncode, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("args", [["run", "--rm"], ["run", "-d"], ["create"]])
def test_unknown_image(rl, args):
    r = rl(*args, "no-such-image:1")
    assert r.returncode == 125
    errors = [line for line in r.stderr.splitlines() if line.startswith("rl: error:")]
    assert len(errors) == 1 and "no-such-image" in errors[0]  # after the pull's progress
    assert_clean(rl)


@pytest.mark.parametrize("args,word", [
    (["--network", "bogus"], "bogus"),
    (["--cap-add", "NOT_A_CAP"], "NOT_A_CAP"),
    (["--ulimit", "nofile=abc"], "nofile=abc"),
    (["--userns", "weird"], "weird"),
    (["-v", "/definitely/not/here:/x"], "/definitely/not/here"),
    (["--memory", "1g"], "cgroup"),
    (["--cpus", "2"], "cgroup"),
    (["-w", "relative/dir"], "relative/dir"),
    (["--pull", "bogus"], "bogus"),
    (["-p", "99999:80"], "99999"),
    (["--env-file", "/missing/env"], "/missing/env"),
    (["--tmpfs", "relative"], "relative"),
    (["--mount", "type=bogus,target=/x"], "bogus"),
    (["--name", "bad/name"], "bad/name"),
    (["--network", "container:nope"], "nope"),
    (["--network", "nosuchnet"], "nosuchnet"),
])
def test_bad_flag_values(rl, args, word):
    one_error_line(rl("run", "--rm", *args, "busybox", "true"), word)
    assert_clean(rl)


def test_unknown_flag(rl):
    # Docker's two lines (tests/runtime/test_system_cli.py checks more of them)
    r = rl("run", "--no-such-flag", "busybox", "true")
    assert r.returncode == 125
    assert r.stderr == "unknown flag: --no-such-flag\nSee 'rl run --help'.\n"
    assert_clean(rl)


def test_name_in_use_keeps_the_first(rl):
    rl("create", "--name", "dup", "--network", "none", "busybox", "echo", "first", check=True)
    for cmd in ("run", "create"):
        one_error_line(rl(cmd, "--name", "dup", "--network", "none", "busybox", "true"),
                       "dup", "already in use", "--name")
    one_error_line(rl("run", "-d", "--name", "dup", "busybox", "true"), "dup", "already in use")
    assert rl("ps", "-aq", check=True).stdout.count("\n") == 1
    assert user_processes_mentioning(str(rl.root)) == []
    assert rl("start", "-a", "dup").stdout == "first\n"
    assert len(list((rl.data_dir / "containers").iterdir())) == 1


# Docker's codes, not 125: the container was made and its command could not start. The
# message is still one line naming the command; with --rm nothing stays, without it the
# container stays, exited with that code, as Docker keeps it.
@pytest.mark.parametrize("command,code,words", [
    ("no-such-command", 127, ["no-such-command", "not found in $PATH"]),
    ("/no/such/file", 127, ["/no/such/file", "no such file"]),
    ("/etc/passwd", 126, ["/etc/passwd", "permission denied"]),
    ("/tmp", 126, ["/tmp", "permission denied"]),
])
def test_command_not_found_or_not_executable(rl, command, code, words):
    r = rl("run", "--rm", "--network", "none", "busybox", command)
    assert r.returncode == code, r.stderr
    assert r.stdout == ""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rl: error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert_clean(rl)
    r = rl("run", "--name", "kept", "--network", "none", "busybox", command)
    assert r.returncode == code
    rows = ps_rows(rl)
    assert [(row["Names"], row["State"], row["Status"].split(")")[0]) for row in rows] == [
        ("kept", "exited", f"Exited ({code}")]
    assert user_processes_mentioning(str(rl.root)) == []
    rl("rm", "kept", check=True)
    assert_clean(rl)


@pytest.mark.parametrize("value,words", [
    ("kernel", ["RL_ROOTFS_BACKEND=kernel", ".wh.", "owners", "fuse-overlayfs"]),
    ("bogus", ["'bogus'", "fuse_overlay, fuse-overlayfs"]),
])
def test_unusable_rootfs_backend_is_refused(rl, value, words):
    # The kernel's overlayfs mounts here, but shows rl's layers wrongly (deleted files,
    # .wh. markers, every file root's): refused, not half-served. See rootless/runtime/rootfs.py.
    env = {"RL_ROOTFS_BACKEND": value}
    for args in (["run", "--rm"], ["run", "-d"], ["create"]):
        one_error_line(rl(*args, "--network", "none", "busybox", "true", env=env), *words)
        assert_clean(rl)
    rl("create", "--name", "made", "--network", "none", "busybox", "true", check=True)
    for args in (["start"], ["start", "-a"]):
        one_error_line(rl(*args, "made", env=env), *words)
    rows = ps_rows(rl)
    assert [row["State"] for row in rows] == ["created"]
    assert user_processes_mentioning(str(rl.root)) == []


@pytest.mark.parametrize("user,words", [
    ("nobody-here", ["user nobody-here", "/etc/passwd", "numeric uid"]),
    ("user:nogroup", ["group nogroup", "/etc/group", "numeric gid"]),
])
def test_user_absent_from_image(rl, user, words):
    for args in (["--rm"], ["-d"], []):
        one_error_line(rl("run", *args, "--network", "none", "-u", user, "busybox", "true"),
                       *words)
        assert_clean(rl)
    # rl exec -u into a running container: the same line, and the container keeps running
    rl("run", "-d", "--name", "up", "--network", "none", "busybox", "sleep", "300", check=True)
    one_error_line(rl("exec", "-u", user, "up", "true"), *words)
    # and a relative -w (Docker refuses it too)
    one_error_line(rl("exec", "-w", "relative", "up", "true"), "relative", "absolute")
    assert [line.split()[-1] for line in rl("ps").stdout.splitlines()[1:]] == ["up"]


def test_unknown_container(rl):
    for cmd in (["stop", "nope"], ["rm", "nope"], ["logs", "nope"], ["exec", "nope", "true"],
                ["inspect", "nope"], ["kill", "nope"], ["start", "nope"]):
        one_error_line(rl(*cmd), "nope")


@pytest.mark.rootless
def test_newuidmap_failure_has_its_own_message_and_fix():
    import subprocess

    from rootless.errors import RlError
    from rootless.runtime import userns

    maps = userns.plan(warn=False)
    if not maps.subordinate:
        pytest.skip("the test user has no subordinate range")
    # a process that has not unshared a user namespace: newuidmap must refuse it
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(RlError) as info:
            userns.write(proc.pid, maps)
        text = str(info.value)
        assert text.startswith("newuidmap failed:") or text.startswith("newgidmap failed:")
        assert "setuid root" in text and "/etc/subuid" in text
    finally:
        proc.kill()
        proc.wait()


def test_fuse_device_problem_names_cause_and_fix(tmp_path, monkeypatch):
    # The message rl gives when /dev/fuse cannot be used (end to end, as root, in
    # test_host_problems.py); here on stand-in paths, so it runs in every pass.
    import os

    from rootless.runtime import rootfs

    if os.getuid() == 0:
        pytest.skip("root may open any file")
    dev = tmp_path / "fuse"
    dev.write_bytes(b"")
    dev.chmod(0o600)
    monkeypatch.setattr(rootfs, "FUSE_DEVICE", str(dev))
    assert rootfs.fuse_device_problem() is None
    dev.chmod(0o000)
    text = str(rootfs.fuse_device_problem())
    assert f"{dev} (mode 0000) cannot be opened by you" in text
    assert f"chmod 0666 {dev}" in text
    dev.unlink()
    text = str(rootfs.fuse_device_problem())
    assert "does not exist" in text and "modprobe fuse" in text


@pytest.mark.parametrize("mode", [["-d"], []], ids=["detached", "foreground"])
def test_name_in_use_race(rl, mode):
    # Five runs asking for one name at the same moment: one wins, the others say so and
    # leave nothing (their early-forked fuse servers and sandboxes, bundles and rows).
    from concurrent.futures import ThreadPoolExecutor

    def one(_):
        return rl("run", *mode, "--name", "same", "--network", "none", "busybox", "sleep", "1",
                  timeout=120)

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(one, range(5)))
    won = [r for r in results if r.returncode == 0]
    assert len(won) == 1, [r.stderr for r in results]
    for r in results:
        if r.returncode != 0:
            one_error_line(r, "same", "already in use")
    rows = ps_rows(rl, "--no-trunc")
    assert [row["Names"] for row in rows] == ["same"]
    assert [p.name for p in (rl.data_dir / "containers").iterdir()] == [rows[0]["ID"]]
    rl("rm", "-f", "same", check=True)
    assert_clean(rl)


@pytest.mark.rootless
def test_userns_child_failure_is_raised_not_printed(capfd):
    """An exception in run_in_userns' child comes back as ChildFailed with its message
    and exit code; nothing is written to the caller's stderr (the front end says it)."""
    from rootless.errors import RlError
    from rootless.runtime import userns

    def fails() -> int:
        raise RlError("the child's own words", exit_code=3)

    with pytest.raises(userns.ChildFailed) as info:
        userns.run_in_userns(fails, mount_ns=False)
    assert info.value.message == "the child's own words" and info.value.exit_code == 3
    assert userns.run_in_userns(lambda: 7, mount_ns=False) == 7
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")

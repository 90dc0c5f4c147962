"""RUN --mount specs and the --secret/--ssh flags, parsed as BuildKit and buildx do."""

from __future__ import annotations

import pytest

from rootless.build import runmounts
from rootless.errors import InvalidArgument


def test_defaults_per_type():
    m = runmounts.parse("type=cache,target=/root/.cache/pip")
    assert (m.id, m.sharing, m.mode, m.readonly) == ("/root/.cache/pip", "shared", 0o755, False)
    m = runmounts.parse("type=secret,id=tok")
    assert (m.target, m.mode, m.required, m.readonly) == ("/run/secrets/tok", 0o400, False, True)
    m = runmounts.parse("type=secret,id=tok,env=TOK")  # env only: no file
    assert m.target is None and m.env == "TOK"
    m = runmounts.parse("target=/src")  # type defaults to bind, read-only
    assert (m.type, m.readonly) == ("bind", True)
    assert runmounts.parse("target=/src,rw").readonly is False
    m = runmounts.parse("type=ssh")
    assert (m.id, m.target) == ("default", "/run/buildkit/ssh_agent.0")
    m = runmounts.parse("type=cache,id=x,target=/c,sharing=locked,uid=1000,gid=10,mode=0700,"
                        "from=build,source=/out")
    assert (m.sharing, m.uid, m.gid, m.mode, m.from_, m.source) == \
        ("locked", 1000, 10, 0o700, "build", "/out")
    assert runmounts.parse("type=tmpfs,target=/t,size=1m").size == 1 << 20
    assert runmounts.parse("type=secret,target=/etc/key").id == "key"


@pytest.mark.parametrize("spec, needle", [
    ("type=nosuch,target=/x", "unknown mount type 'nosuch'"),
    ("type=cache", "target= is required"),
    ("type=cache,target=/x,sharing=sometimes", "sharing="),
    ("type=cache,target=/x,mode=999", "octal"),
    ("type=cache,target=/x,uid=-1", "not"),
    ("type=bind,target=/x,id=a", "unexpected key 'id'"),
    ("type=secret", "needs id="),
    ("type=tmpfs,target=/", "can't be '/'"),
    ("type=bind,target=/a/../b", "'..'"),
])
def test_bad_specs(spec, needle):
    with pytest.raises(InvalidArgument) as e:
        runmounts.parse(spec)
    assert needle in e.value.message


def test_secret_flag(tmp_path, monkeypatch):
    f = tmp_path / "tok"
    f.write_bytes(b"abc")
    assert runmounts.parse_secret(f"id=t,src={f}") == ("t", b"abc")
    assert runmounts.parse_secret(f"id=t,source={f}") == ("t", b"abc")
    monkeypatch.setenv("MYTOK", "fromenv")
    assert runmounts.parse_secret("id=t,env=MYTOK") == ("t", b"fromenv")
    assert runmounts.parse_secret("id=MYTOK") == ("MYTOK", b"fromenv")  # buildx: env first
    monkeypatch.chdir(tmp_path)
    assert runmounts.parse_secret("id=tok") == ("tok", b"abc")  # then the file
    for bad, needle in [("id=t,src=/nonexistent", "cannot read"), ("src", "KEY=VALUE"),
                        ("id=t,env=NOPE_NOT_SET", "not set"), ("id=t,color=red", "color")]:
        with pytest.raises(InvalidArgument) as e:
            runmounts.parse_secret(bad)
        assert needle in e.value.message


def test_ssh_flag(tmp_path, monkeypatch):
    import socket

    path = tmp_path / "agent.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    try:
        monkeypatch.setenv("SSH_AUTH_SOCK", str(path))
        assert runmounts.parse_ssh("default") == ("default", str(path))
        assert runmounts.parse_ssh(f"git={path}") == ("git", str(path))
        (tmp_path / "key").write_text("not a socket")
        with pytest.raises(InvalidArgument):
            runmounts.parse_ssh(f"git={tmp_path / 'key'}")
        monkeypatch.delenv("SSH_AUTH_SOCK")
        with pytest.raises(InvalidArgument):
            runmounts.parse_ssh("default")
    finally:
        s.close()


def test_foreign_arch_needs_a_binfmt_emulator(tmp_path, monkeypatch):
    from rootless.build import instructions as ins
    from rootless.engine import buildmounts
    from rootless.errors import RlError
    from rootless.image import manifest as mf

    host = mf.host_platform()[1]
    foreign = "s390x" if host != "s390x" else "arm64"
    qemu = {"s390x": "qemu-s390x", "arm64": "qemu-aarch64"}[foreign]
    run = ins.Run(line=2, end_line=2, source="RUN true", command=("true",), shell_form=True)
    buildmounts.check_runnable({"architecture": host}, run)  # the host's: fine
    binfmt = tmp_path / "binfmt_misc"
    binfmt.mkdir()
    (binfmt / "status").write_text("enabled\n")
    assert buildmounts.emulator_for(foreign, str(binfmt)) is None
    (binfmt / qemu).write_text(f"enabled\ninterpreter /usr/bin/{qemu}\nflags: F\n")
    assert buildmounts.emulator_for(foreign, str(binfmt)) == f"/usr/bin/{qemu}"
    (binfmt / qemu).write_text(f"disabled\ninterpreter /usr/bin/{qemu}\n")
    assert buildmounts.emulator_for(foreign, str(binfmt)) is None
    # without an emulator on this host: refused with the reason and the fix
    monkeypatch.setattr(buildmounts, "emulator_for", lambda arch: None)
    with pytest.raises(RlError) as e:
        buildmounts.check_runnable({"architecture": foreign}, run)
    assert "Dockerfile:2: RUN on linux/" in e.value.message and "binfmt_misc" in \
        e.value.message and "qemu-user-static" in e.value.fix
    monkeypatch.setattr(buildmounts, "emulator_for", lambda arch: "/usr/bin/qemu")
    buildmounts.check_runnable({"architecture": foreign}, run)

"""What another local user of a shared machine can reach of rl's: nothing.

rltest runs rl; `rlnosub` (reached through sudo, tests/support/users.py) is the other user.
Each test puts rl's directories where rlnosub could reach them if their modes let it (a
world-traversable directory in /tmp, as a home directory often is) or uses the very
fallback path a user without XDG_RUNTIME_DIR gets (/tmp/rl-<uid>), then tries as rlnosub.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.runtime.conftest import REGISTRIES_CONF, Runner
from tests.support import images, users

SECRET = "SECRET=hunter2-do-not-share"


@pytest.fixture
def shared(request):
    """An rl of rltest whose XDG dirs sit in a 0755 directory of /tmp (as under a 0755 home):
    only the modes rl gives its own directories keep rlnosub out."""
    users.need(users.nosub_available(), f"user {users.NOSUB_USER} not reachable through sudo")
    base = Path(tempfile.mkdtemp(prefix="rl-users-", dir="/tmp"))
    os.chmod(base, 0o755)
    for sub in ("data", "config", "run"):
        (base / sub).mkdir(mode=0o755)
        os.chmod(base / sub, 0o755)  # as ~/.local/share and a traversable runtime parent
    runner = Runner(base, extra_env={"RL_ROOTFS_BACKEND": users.rootfs_backend(),
                                         "RL_FUSE_ZYGOTE": "1"})
    registry = request.getfixturevalue("registry")
    (runner.config_dir).mkdir(parents=True, exist_ok=True)
    (runner.config_dir / "registries.conf").write_text(REGISTRIES_CONF.format(host=registry.host))
    yield runner
    try:
        runner.cleanup()
    finally:
        subprocess.run([users.rl_executable(), "unshare", "rm", "-rf", str(base)],
                       env=runner.env, capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def as_nosub(*args: str) -> subprocess.CompletedProcess:
    return users.run_as_nosub(list(args), cwd="/", timeout=30)


def import_busybox(rl, tmp_path: Path) -> None:
    """`rl import` first: on the old code the store it made was 0755 and the catalog 0644."""
    tar = tmp_path / "busybox.tar"
    tar.write_bytes(images.busybox_layer().tar)
    rl("import", str(tar), "busybox", check=True)


def test_another_user_cannot_read_the_store(shared, tmp_path):
    rl = shared
    import_busybox(rl, tmp_path)
    rl("pull", "-q", "busybox", check=True)
    cid = rl("run", "-d", "--network", "none", "-e", SECRET, "busybox", "sleep", "60",
             check=True).stdout.strip()
    store = rl.data_dir
    config = store / "containers" / cid / "config.json"
    assert SECRET in config.read_text()  # the secret is there, for its owner
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(store / "catalog.db").st_mode) == 0o600
    for attempt in (["cat", str(config)], ["ls", str(store)], ["cat", str(store / "catalog.db")],
                    ["ls", str(store / "containers" / cid)]):
        r = as_nosub(*attempt)
        assert r.returncode != 0 and "hunter2" not in r.stdout, (attempt, r.stdout)
        assert "Permission denied" in r.stderr, (attempt, r.stderr)


def test_a_looser_existing_store_is_tightened(shared, tmp_path):
    rl = shared
    import_busybox(rl, tmp_path)
    os.chmod(rl.data_dir, 0o755)
    os.chmod(rl.data_dir / "catalog.db", 0o644)
    rl("images", check=True)
    assert stat.S_IMODE(os.stat(rl.data_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(rl.data_dir / "catalog.db").st_mode) == 0o600


FAKE_ZYGOTE = r"""
import os, socket, sys, time
d, name = sys.argv[1], sys.argv[2]
path = os.path.join(d, name)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o777)
s.listen(8)
s.settimeout(0.1)
open(os.path.join(d, "ready"), "w").close()
deadline = time.monotonic() + 90
while time.monotonic() < deadline and not os.path.exists(os.path.join(d, "stop")):
    try:
        c, _ = s.accept()
    except socket.timeout:
        continue
    with open(os.path.join(d, "connections"), "a") as f:
        f.write("connected\n")
    c.close()
"""


@pytest.mark.parametrize("kind", ["dir", "symlink"])
def test_a_runtime_dir_planted_by_another_user_is_refused(shared, kind):
    """rlnosub makes $TMPDIR/rl-<rltest's uid> (a 0777 directory of its own, or a symlink
    to one) before rltest ever ran rl there, with a fake fuse server zygote listening in
    it. rltest's `rl info` flags it; `rl run` (XDG_RUNTIME_DIR unset, as after sudo)
    refuses with one line naming the directory and the fix, and uses nothing of it: no
    connection, no new file. TMPDIR is a sticky world-writable directory of the test, as
    /tmp is, so that the test does not depend on (or disturb) the real /tmp/rl-<uid>."""
    from rootless.runtime import zygote

    rl = shared
    rl("pull", "-q", "busybox", check=True)
    tmp = rl.root / "tmp"
    tmp.mkdir()
    os.chmod(tmp, 0o1777)
    planted = tmp / f"rl-{os.getuid()}"
    theirs = Path(as_nosub("mktemp", "-d", "/tmp/rl-users-theirs.XXXXXX").stdout.strip())
    as_nosub("chmod", "0755", str(theirs)).check_returncode()
    target = theirs / "rt" if kind == "symlink" else planted
    as_nosub("mkdir", "-m", "0777", str(target)).check_returncode()
    as_nosub("chmod", "0777", str(target)).check_returncode()  # whatever its umask
    if kind == "symlink":
        as_nosub("ln", "-s", str(target), str(planted)).check_returncode()
    name = f"fuse-zygote-{zygote._key()}.sock"
    fake = subprocess.Popen(["sudo", "-n", "-u", users.NOSUB_USER, "-H", "/usr/bin/python3",
                             "-c", FAKE_ZYGOTE, str(target), name], cwd="/",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (target / "ready").exists():
            assert fake.poll() is None and time.monotonic() < deadline, "fake zygote failed"
            time.sleep(0.05)
        before = sorted(os.listdir(target))
        env = dict(rl.env, TMPDIR=str(tmp))
        env.pop("XDG_RUNTIME_DIR")
        info = json.loads(subprocess.run([users.rl_executable(), "info", "--format", "json"],
                                         env=env, capture_output=True, text=True, timeout=60,
                                         check=True).stdout)
        check = next(c for c in info["checks"] if c["name"] == "runtime dir")
        assert not check["ok"] and str(planted) in check["detail"], check
        r = subprocess.run([users.rl_executable(), "run", "--rm", "--network", "none",
                            "busybox", "true"], env=env, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 125, (r.returncode, r.stdout, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("rl: error: "), r.stderr
        assert str(planted) in lines[0] and "XDG_RUNTIME_DIR" in lines[0]
        assert sorted(os.listdir(target)) == before  # no connection, nothing made there
        assert rl("ps", "-aq", check=True).stdout == ""
    finally:
        as_nosub("touch", str(target / "stop"))
        try:
            fake.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        as_nosub("rm", "-rf", str(planted), str(theirs))


CONNECT = r"""
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
r, w = os.pipe()
spec = {"lowerdirs": [], "upperdir": "/nonexistent", "workdir": "/nonexistent",
        "mountpoint": "/nonexistent", "backend": "fuse_overlay", "ns_pid": os.getpid()}
answer = b""
try:
    socket.send_fds(s, [json.dumps(spec).encode()], [w])
    while chunk := s.recv(64):
        answer += chunk
except (BrokenPipeError, ConnectionResetError):  # closed before or unread: refused
    pass
os.close(w)
print(json.dumps({"answer": answer.decode(errors="replace"),
                  "userns": os.readlink("/proc/self/ns/user")}))
"""


def _zygote_socket(rl) -> Path:
    rl("run", "--rm", "--network", "none", "busybox", "true", check=True)  # then it spawns
    deadline = time.monotonic() + 20
    while True:
        found = list((rl.root / "run" / "rl").glob("fuse-zygote-*.sock"))
        if found:
            return found[0]
        assert time.monotonic() < deadline, "no fuse server zygote appeared"
        time.sleep(0.1)


def test_nobody_but_the_user_talks_to_the_zygote(shared):
    """Another user cannot even connect (the runtime dir is 0700); a process of the user's
    own uid in another user namespace (`rl unshare`, as a container's root would be) is
    refused by the zygote's peer check; the user's own process is served."""
    if users.rootfs_backend() != "fuse_overlay":
        pytest.skip("the zygote serves fuse_overlay only")
    rl = shared
    rl("pull", "-q", "busybox", check=True)
    sock = _zygote_socket(rl)
    r = as_nosub("/usr/bin/python3", "-c", CONNECT, str(sock))
    assert r.returncode != 0 and "PermissionError" in r.stderr, r.stderr

    r = rl("unshare", sys.executable, "-c", CONNECT, str(sock), check=True)
    inside = json.loads(r.stdout)
    assert inside["userns"] != os.readlink("/proc/self/ns/user")  # another namespace indeed
    assert inside["answer"] == "", "the zygote served a peer in another user namespace"

    # The same request from the user's own namespace is served (the peer check passes it;
    # the server then fails on the made-up spec, which is no concern here).
    out = subprocess.run([sys.executable, "-c", CONNECT, str(sock)], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    assert json.loads(out)["answer"].startswith("k")


def test_table_output_escapes_a_containers_escape_sequences(shared):
    rl = shared
    rl("pull", "-q", "busybox", check=True)
    evil = ': "\x1b]0;pwned\x07"; sleep 60; true'  # early: `rl ps` cuts at 20
    cid = rl("run", "-d", "--network", "none", "busybox", "sh", "-c", evil,
             check=True).stdout.strip()
    for args in (["top", cid], ["ps"], ["ps", "--no-trunc"]):
        r = rl(*args, text=False, check=True)
        assert b"\x1b" not in r.stdout and b"\x07" not in r.stdout, (args, r.stdout)
        if args[0] == "top" or "--no-trunc" in args:
            assert b"\\x1b]0;pwned\\x07" in r.stdout, (args, r.stdout)


def test_logs_stay_the_containers_raw_bytes(shared):
    """`rl logs` is the container's own output, as `docker logs`: passed through as is."""
    rl = shared
    rl("pull", "-q", "busybox", check=True)
    cid = rl("run", "-d", "--network", "none", "busybox", "printf", "a\\033[1mb",
             check=True).stdout.strip()
    rl("wait", cid, check=True)
    assert rl("logs", cid, text=False, check=True).stdout == b"a\x1b[1mb"


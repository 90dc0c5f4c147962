"""A host missing what rl needs, as the unprivileged test user sees it: a /dev/fuse that
user cannot open, no newuidmap, a newuidmap without its setuid bit, fuse-overlayfs chosen
but absent. Root-only (the problems are made by root).

Each problem is made for one `rl` command only: root starts it in a private mount
namespace where a node is bind-mounted over /dev/fuse or a helper program, then becomes the test
user. The kernel checks that node exactly as it would a chmod'ed /dev/fuse, but the host is
never changed: the other tests and users of this machine keep a working /dev/fuse, and a
killed test has nothing to restore. Each test first shows that the problem is real (the
test user cannot open the device, cannot map ids), then that rl says so in one line
naming the cause and the fix, exits 125, and leaves nothing: no container, no directory,
no process, no mount.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.runtime.conftest import REGISTRIES_CONF, user_processes_mentioning
from tests.support import users

pytestmark = pytest.mark.asroot

USER = os.environ.get("RL_TEST_USER", "rltest")

# Runs as root in the new mount namespace: $1 is an empty directory, the rest the command.
PRIVATE_NS = 'mount -t tmpfs -o mode=0755 rl-test-node "$1"; {setup}; shift; exec "$@"'
FUSE_0600 = 'mknod -m 0600 "$1/fuse" c 10 229; mount --bind "$1/fuse" /dev/fuse'
NOT_EXECUTABLE = ': > "$1/helper"; chmod 0644 "$1/helper"; mount --bind "$1/helper" {path}'
NOT_SETUID = 'cp {path} "$1/helper"; chmod 0755 "$1/helper"; mount --bind "$1/helper" {path}'


class Store:
    """rl as USER with storage of its own, and the same rl with a host problem."""

    def __init__(self, root: Path, home: str) -> None:
        self.root = root
        self.scratch = Path(tempfile.mkdtemp(prefix="rl-node.", dir="/tmp"))  # root's
        env = {"HOME": home, "USER": USER,
               "PATH": f"{Path(users.rl_executable()).parent}:/usr/bin:/bin:/usr/sbin:/sbin"}
        self.rl = users.RlRunner(root, prefix=["runuser", "-u", USER, "--"], extra_env=env)

    def broken(self, setup: str) -> users.RlRunner:
        script = PRIVATE_NS.format(setup=setup)
        prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-euc", script, "sh",
                  str(self.scratch), "runuser", "-u", USER, "--"]
        return users.RlRunner(self.root, prefix=prefix, extra_env=self.rl.env)

    def state(self) -> tuple[str, list[str]]:
        """What a failed command must not change: `rl ps -a` and the containers' dirs."""
        ps = self.rl("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}} {{.Names}}",
                     check=True).stdout
        cdir = self.rl.data_dir / "containers"
        return ps, sorted(p.name for p in cdir.iterdir()) if cdir.exists() else []

    def assert_nothing_left(self, before) -> None:
        assert self.state() == before
        assert user_processes_mentioning(str(self.root)) == []
        with open("/proc/self/mountinfo") as f:
            assert str(self.root) not in f.read()


@pytest.fixture
def store(registry):
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        users.need(False, f"no user {USER} (RL_TEST_USER) to run rl as")
    users.need(shutil.which("unshare") is not None and shutil.which("runuser") is not None,
               "unshare and runuser (util-linux) are needed")
    root = Path(tempfile.mkdtemp(prefix="rl-asroot.", dir="/tmp"))
    s = Store(root, entry.pw_dir)
    try:
        for sub in ("data", "config/rl", "run"):
            (root / sub).mkdir(parents=True)
        os.chmod(root / "run", 0o700)
        (root / "config" / "rl" / "registries.conf").write_text(
            REGISTRIES_CONF.format(host=registry.host))
        for path in [root, *root.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        s.rl("pull", "-q", "busybox", check=True)
        yield s
    finally:
        ids = s.rl("ps", "-aq", check=True).stdout.split()
        if ids:
            s.rl("rm", "-f", *ids)
        users.stop_fuse_zygotes(root / "run" / "rl")
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(s.scratch, ignore_errors=True)


def one_error_line(r, *words) -> None:
    assert r.returncode == 125, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rl: error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("args,env", [
    (["run", "--rm", "--network", "none", "busybox", "true"], {}),
    (["run", "--network", "none", "busybox", "true"], {"RL_FUSE_ZYGOTE": "1"}),
    (["run", "-d", "--network", "none", "busybox", "sleep", "300"], {}),
    (["create", "--network", "none", "busybox", "true"], {}),
    (["run", "--rm", "--network", "none", "busybox", "true"],
     {"RL_ROOTFS_BACKEND": "fuse-overlayfs"}),
], ids=["run-rm", "run-zygote", "run-d", "create", "fuse-overlayfs"])
def test_no_dev_fuse_access(store, args, env):
    nofuse = store.broken(FUSE_0600)
    # the problem is real, and made by this test: the test user cannot open the device
    # there, and can on the host
    r = subprocess.run([*nofuse.prefix, "sh", "-c", "exec 3<>/dev/fuse"], capture_output=True,
                       text=True)
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
    assert subprocess.run(["runuser", "-u", USER, "--", "sh", "-c", "exec 3<>/dev/fuse"]
                          ).returncode == 0
    before = store.state()
    one_error_line(nofuse(*args, env=env), "/dev/fuse", "0600", "chmod 0666 /dev/fuse")
    store.assert_nothing_left(before)
    # and with the device usable again, the same command works
    r = store.rl(*args, env=env)
    assert r.returncode == 0, r.stderr


def test_no_dev_fuse_access_at_start(store):
    cid = store.rl("create", "--network", "none", "busybox", "echo", "hi",
                   check=True).stdout.strip()
    nofuse = store.broken(FUSE_0600)
    before = store.state()
    for args in (["start", cid], ["start", "-a", cid]):
        one_error_line(nofuse(*args), "/dev/fuse", "chmod 0666 /dev/fuse")
        store.assert_nothing_left(before)
    assert before[0].split()[1] == "created"
    assert store.rl("start", "-a", cid, check=True).stdout == "hi\n"


@pytest.mark.parametrize("program,setup,env,words", [
    ("newuidmap", NOT_EXECUTABLE, {}, ["newuidmap is not installed", "apt-get install uidmap"]),
    ("newuidmap", NOT_SETUID, {}, ["newuidmap failed", "setuid root", "/etc/subuid"]),
    ("fuse-overlayfs", NOT_EXECUTABLE, {"RL_ROOTFS_BACKEND": "fuse-overlayfs"},
     ["fuse-overlayfs is not installed", "apt-get install fuse-overlayfs"]),
], ids=["no-newuidmap", "newuidmap-not-setuid", "no-fuse-overlayfs"])
def test_missing_or_broken_helper(store, program, setup, env, words):
    helper = shutil.which(program)
    users.need(helper is not None, f"{program} is not installed")
    broken = store.broken(setup.format(path=os.path.realpath(helper)))
    # the problem is real, and made by this test: true there, false on the host
    proof = (f"! test -x {helper}" if setup == NOT_EXECUTABLE
             else f"test -x {helper} && ! test -u {helper}")
    user = ["runuser", "-u", USER, "--"]
    assert subprocess.run([*broken.prefix, "sh", "-c", proof]).returncode == 0
    assert subprocess.run([*user, "sh", "-c", proof]).returncode != 0
    before = store.state()
    for args in (["run", "--rm", "--network", "none", "busybox", "true"],
                 ["run", "-d", "--network", "none", "busybox", "sleep", "300"]):
        one_error_line(broken(*args, env=env), *words)
        store.assert_nothing_left(before)
    assert store.rl("run", "--rm", "--network", "none", "busybox", "true", env=env,
                    check=True).returncode == 0


def test_info_reports_dev_fuse(store):
    def fuse_check(runner):
        info = json.loads(runner("info", "--format", "json", check=True).stdout)
        return next(c for c in info["checks"] if c["name"] == "fuse")

    assert fuse_check(store.rl)["ok"]
    check = fuse_check(store.broken(FUSE_0600))
    assert not check["ok"] and "0600" in check["detail"], check
    assert "chmod 0666 /dev/fuse" in check["fix"]

"""`fuse-overlay` refuses bad input with one clear line and exit status 1 (no mount
attempted); `import fuse_overlay` stays cheap."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

FUSE_OVERLAY = os.path.join(os.path.dirname(sys.executable), "fuse-overlay")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FUSE_OVERLAY, *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def dirs(tmp_path):
    for d in ("l1", "l2", "u", "w", "m"):
        (tmp_path / d).mkdir()
    return tmp_path


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1, r.stderr
    assert r.stderr.count("Traceback") == 0
    return lines[0]


def test_missing_lowerdir(dirs):
    line = one_error_line(run("-o", f"upperdir={dirs}/u,workdir={dirs}/w", str(dirs / "m")))
    assert "no lowerdir" in line


def test_unknown_option_is_rejected(dirs):
    line = one_error_line(run("-o", f"lowerdir={dirs}/l1,frobnicate=1", str(dirs / "m")))
    assert "unknown mount option 'frobnicate=1'" in line


def test_ignored_option_warns(dirs):
    r = run("-o", f"lowerdir={dirs}/l1,fast_ino,threaded=1", str(dirs / "nomount"))
    assert "warning: option 'fast_ino'" in r.stderr
    assert "warning: option 'threaded'" in r.stderr
    assert "mountpoint" in one_error_line(r)


def test_workdir_on_another_filesystem(dirs):
    if os.stat("/dev/shm").st_dev == os.stat(dirs).st_dev:
        pytest.skip("/dev/shm is on the same filesystem as the test dir")
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        line = one_error_line(run("-o", f"lowerdir={dirs}/l1,upperdir={dirs}/u,workdir={other}",
                                  str(dirs / "m")))
    assert "not on the same filesystem" in line


def test_unreadable_layer(dirs):
    os.chmod(dirs / "l2", 0)
    try:
        line = one_error_line(run("-o", f"lowerdir={dirs}/l1:{dirs}/l2", str(dirs / "m")))
    finally:
        os.chmod(dirs / "l2", 0o755)
    assert f"lower layer {dirs}/l2 is not readable" in line


def test_missing_layer_and_mountpoint(dirs):
    line = one_error_line(run("-o", f"lowerdir={dirs}/nope", str(dirs / "m")))
    assert f"lower layer {dirs}/nope: No such file or directory" in line
    line = one_error_line(run("-o", f"lowerdir={dirs}/l1", str(dirs / "nomount")))
    assert "mountpoint" in line and "does not exist" in line


def test_upperdir_needs_workdir(dirs):
    line = one_error_line(run("-o", f"lowerdir={dirs}/l1,upperdir={dirs}/u", str(dirs / "m")))
    assert "needs workdir" in line


def test_import_is_cheap():
    code = ("import sys, fuse_overlay, fuse_overlay.server, fuse_overlay.metadata;"
            "print(sorted(m for m in ('trio', 'pyfuse3') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


def test_server_preload_leaves_out_what_serving_does_not_use():
    """What a process that forks servers (rl's zygote) holds: pyfuse3 and the file system,
    not importlib.metadata (pyfuse3 asks it only for its version) nor dataclasses: both
    were ~4 MiB of the zygote and pages every server touched."""
    code = ("import sys, fuse_overlay.server as s; p = s.preload();"
            "print(sorted(m for m in ('importlib.metadata', 'dataclasses', 'inspect', 'trio')"
            " if m in sys.modules), p.__name__, p.__version__)")
    r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                       check=True)
    assert r.stdout.split() == ["[]", "pyfuse3", "unknown"]
    # and later imports get the real module
    code = ("import fuse_overlay.server as s; s.preload(); import importlib.metadata as m;"
            "print(m.version('pyfuse3'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip()[:1].isdigit()


def test_warm_up_serves_scratch_layers_and_leaves_nothing(tmp_path):
    """The zygote's warm-up (fuse_overlay/warm.py) runs the handlers without a mount: it
    leaves no descriptor, no directory, and pyfuse3's reply functions as they were."""
    code = f"""
import os, sys
import fuse_overlay.server as s
pyfuse3 = s.preload()
from fuse_overlay import warm
before = sorted(os.listdir("/proc/self/fd"))
replies = pyfuse3.readdir_reply, pyfuse3.notify_store
warm.warm_up({str(tmp_path / "scratch")!r}, rounds=3)
print(sorted(os.listdir("/proc/self/fd")) == before,
      (pyfuse3.readdir_reply, pyfuse3.notify_store) == replies,
      os.path.exists({str(tmp_path / "scratch")!r}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True", "False"]


def test_plain_user_mount_through_fusermount3(dirs):
    """Outside a user namespace libfuse mounts through the setuid fusermount3 (without
    allow_other, which /etc/fuse.conf does not allow here); the daemon mode returns once
    the mount is live and fusermount3 -u ends it."""
    if os.geteuid() == 0:
        pytest.skip("a plain user's mount")
    (dirs / "l1" / "f").write_text("hi")
    r = run("-o", f"lowerdir={dirs}/l1,upperdir={dirs}/u,workdir={dirs}/w", str(dirs / "m"))
    assert r.returncode == 0, r.stderr
    try:
        assert (dirs / "m" / "f").read_text() == "hi"
        with open(dirs / "m" / "f", "a") as f:
            f.write("+")
        assert os.stat(dirs / "m" / "f").st_uid == os.getuid()
        assert (dirs / "u" / "f").read_text() == "hi+"
    finally:
        subprocess.run(["fusermount3", "-u", str(dirs / "m")], check=True, timeout=30)

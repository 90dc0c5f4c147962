"""Fixtures for the build and ship tests: an `rl` runner with its own store whose
containers are removed after each test (also on failure), and a helper that pulls a test
image from the fixture registry into it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support import users
from tests.support.podman import end_pause_processes


@pytest.fixture
def rl(tmp_path):
    runner = users.make_runner(tmp_path / "rl")
    runner.env["RL_ROOTFS_BACKEND"] = users.rootfs_backend()
    yield runner
    ids = runner("ps", "-aq", timeout=30, check=True).stdout.split()
    if ids:
        runner("rm", "-f", *ids, timeout=60)
    users.stop_fuse_zygotes(runner.root / "run" / "rl")


@pytest.fixture
def pulled(rl, registry):
    """pulled("busybox:latest") -> the qualified name, pulled into rl's store."""
    def pull(name: str) -> str:
        ref = registry.ref(name)
        rl("pull", "-q", ref, check=True)
        return ref
    return pull


def _podman(tmp_path):
    users.need(shutil.which("podman") is not None, "podman is not installed")
    root = tmp_path / "podman"
    for d in ("storage", "run", "conf"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "run").chmod(0o700)
    conf = root / "conf" / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{root}/storage"\n'
                    f'runroot = "{root}/run"\n')
    env = {"HOME": str(root), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
           "XDG_RUNTIME_DIR": str(root / "run"), "CONTAINERS_STORAGE_CONF": str(conf),
           "XDG_CONFIG_HOME": str(root / "conf"), "LANG": "C.UTF-8"}

    def podman(*args, check=True, **kw):
        proc = subprocess.run(["podman", "--runtime", "runc", "--cgroup-manager",
                               "cgroupfs", "--events-backend", "none", *args],
                              env=env, capture_output=True, text=True, timeout=120, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {args} failed: {proc.stderr}")
        return proc

    return podman, root


@pytest.fixture
def podman(tmp_path):
    podman, root = _podman(tmp_path)
    yield podman
    podman("system", "reset", "-f", check=False)
    # files of subordinate ids left in the storage, removed from podman's namespace;
    # that starts the pause process again: end it last, then remove the rest
    podman("unshare", "rm", "-rf", str(root / "storage"), check=False)
    end_pause_processes(root / "run")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ctx(tmp_path, pulled):
    base = pulled("busybox:latest")
    d = tmp_path / "ctx"
    d.mkdir()
    (d / "hello.txt").write_text("hi\n")
    (d / "sub").mkdir()
    (d / "sub" / "a.txt").write_text("a\n")
    (d / ".dockerignore").write_text("ignored.txt\n")
    (d / "ignored.txt").write_text("no\n")

    def write(text: str) -> str:
        (d / "Dockerfile").write_text(text.replace("BASE", base))
        return str(d)
    write.dir = d
    write.base = base
    return write

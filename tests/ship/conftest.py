"""Fixtures for the build and ship tests: an `rl` runner with its own store whose
containers are removed after each test (also on failure), and a helper that pulls a test
image from the fixture registry into it."""

from __future__ import annotations

import importlib.util

import pytest

from tests.support import users


def rootfs_backend() -> str:
    try:
        found = importlib.util.find_spec("fuse_overlay.server") is not None
    except ModuleNotFoundError:
        found = False
    return "fuse_overlay" if found else "fuse-overlayfs"


def stop_zygotes(root) -> None:
    import os
    import signal

    for pidfile in root.glob("run/rl/fuse-zygote-*.pid"):
        for pid in pidfile.read_text().split():
            try:
                os.kill(int(pid), signal.SIGTERM)
            except (OSError, ValueError):
                pass


@pytest.fixture
def rl(tmp_path):
    runner = users.make_runner(tmp_path / "rl")
    runner.env["RL_ROOTFS_BACKEND"] = rootfs_backend()
    yield runner
    ids = runner("ps", "-aq", timeout=30).stdout.split()
    if ids:
        runner("rm", "-f", *ids, timeout=60)
    stop_zygotes(runner.root)


@pytest.fixture
def pulled(rl, registry):
    """pulled("busybox:latest") -> the qualified name, pulled into rl's store."""
    def pull(name: str) -> str:
        ref = registry.ref(name)
        rl("pull", "-q", ref, check=True)
        return ref
    return pull

"""Fixtures every test may use: a real registry with test images pushed to it (plain and
in token-auth mode), and `rl` runners for the test users."""

from __future__ import annotations

import os

import pytest

from tests.support import images, users
from tests.support.registry import REGISTRY_BIN, Registry


def pytest_collection_modifyitems(config, items):
    is_root = os.getuid() == 0
    for item in items:
        if "asroot" in item.keywords and not is_root:
            item.add_marker(pytest.mark.skip(reason="root-only test (runs in the root pass)"))


@pytest.fixture(scope="session")
def test_images() -> dict:
    """The images the suite uses, by name; the same objects the registries hold."""
    busybox = images.build_busybox()
    layered = images.build_layered()
    return {
        "busybox:latest": busybox,
        "busybox:oci": busybox.as_oci(),
        "layered:latest": layered,
        "layered:oci": layered.as_oci(),
        "multiarch:latest": images.build_multiarch(),
    }


def _start(tmp_path_factory, test_images, token: bool) -> Registry:
    users.need(os.path.exists(REGISTRY_BIN), "docker-registry is not installed")
    reg = Registry.start(tmp_path_factory.mktemp("registry-token" if token else "registry"),
                         token=token)
    for name, image in test_images.items():
        repo, tag = name.split(":")
        reg.push_image(repo, tag, image)
    return reg


@pytest.fixture(scope="session")
def registry(tmp_path_factory, test_images):
    """A plain (anonymous, http) registry on 127.0.0.1 holding every test image."""
    reg = _start(tmp_path_factory, test_images, token=False)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory, test_images):
    """The same images behind the Docker Hub style bearer-token challenge."""
    reg = _start(tmp_path_factory, test_images, token=True)
    yield reg
    reg.stop()


@pytest.fixture
def rl(tmp_path):
    """Run rl as the current user with storage of its own."""
    return users.make_runner(tmp_path / "rl")


@pytest.fixture
def rl_nosub():
    """Run rl as `rlnosub`, a user with no subuid/subgid range."""
    users.need(users.nosub_available(),
               f"user {users.NOSUB_USER} not reachable through sudo (run the test command as root)")
    runner = users.make_nosub_runner()
    yield runner
    users.cleanup_nosub_runner(runner)

"""Concurrent pulls share one copy of each layer; kill -9 of a pull at several points leaves
a store that `rl images` reads consistently and that the next pull completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.image.conftest import unique_image, unique_layer
from tests.image.fakes import ThrottlingProxy
from tests.support.images import sha256
from tests.support.users import rl_executable


@pytest.fixture
def proxy(registry):
    p = ThrottlingProxy(registry.host, rate=1_000_000)
    yield p
    p.stop()


def spawn(rl, *args) -> subprocess.Popen:
    return subprocess.Popen([rl_executable(), *args], env=rl.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def check_consistent(rl) -> list[dict]:
    """Every listed image has all its layer directories; nothing half-made is visible."""
    out = rl("images", "--format", "json", "--no-trunc", check=True).stdout
    images = [json.loads(x) for x in out.splitlines()]
    for image in images:
        info = json.loads(rl("image", "inspect", image["ID"], check=True).stdout)[0]
        for layer in info["Layers"]:
            assert os.path.isdir(layer["Path"]), layer
    return images


def test_two_pulls_at_once(rl, registry, proxy):
    procs = [spawn(rl, "pull", "-q", f"{proxy.host}/layered"),
             spawn(rl, "pull", "-q", f"{proxy.host}/busybox"),
             spawn(rl, "pull", "-q", f"{proxy.host}/layered")]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    images = check_consistent(rl)
    assert len(images) == 2
    layer_dirs = os.listdir(rl.data_dir / "layers")
    assert len(layer_dirs) == 3  # busybox's layer once, shared, + layered's two
    assert os.listdir(rl.data_dir / "tmp") == []


def _wait_for(proc: subprocess.Popen, condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    return False


def _listing(path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


POINTS = {
    "early": lambda root: True,
    "downloading": lambda root: any(n.endswith("-blob") for n in _listing(root / "tmp")),
    "one layer unpacked": lambda root: len(_listing(root / "layers")) >= 1,
    "two layers unpacked": lambda root: len(_listing(root / "layers")) >= 2,
}


@pytest.mark.parametrize("point", list(POINTS))
def test_kill_9_during_pull(rl, registry, proxy, point):
    image = unique_image(unique_layer(100_000, "a"), unique_layer(400_000, "b"),
                         unique_layer(900_000, "c"))
    repo = "killme-" + point.replace(" ", "-")
    registry.push_image(repo, "latest", image)
    proc = spawn(rl, "pull", "-q", f"{proxy.host}/{repo}")
    try:
        reached = _wait_for(proc, lambda: POINTS[point](rl.data_dir))
        assert reached, f"the pull never reached {point!r}: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert check_consistent(rl) == []  # killed before its commit: no image visible

    out = rl("pull", registry.ref(repo), check=True)
    images = check_consistent(rl)
    assert [i["ID"] for i in images] == [sha256(image.config_bytes)]
    if point.endswith("unpacked"):
        assert "already present" in out.stderr  # what the killed pull finished is reused
        assert "0 already present" not in out.stderr
    assert sorted(_listing(rl.data_dir / "layers")) == sorted(
        layer.diff_id[7:] for layer in image.layers)
    assert _listing(rl.data_dir / "tmp") == []
    for layer in image.layers:
        assert (rl.data_dir / "blobs" / "sha256" / layer.digest[7:]).is_file()


def test_ctrl_c_stops_quickly_and_cleans_up(rl, registry, proxy):
    image = unique_image(unique_layer(4_000_000, "a"), unique_layer(4_000_000, "b"))
    registry.push_image("interrupted", "latest", image)
    proc = spawn(rl, "pull", "-q", f"{proxy.host}/interrupted")
    try:
        assert _wait_for(proc, lambda: POINTS["downloading"](rl.data_dir))
        time.sleep(0.2)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        assert time.monotonic() - started < 2.5  # not after finishing 4 MB at 1 MB/s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert _listing(rl.data_dir / "tmp") == [] and _listing(rl.data_dir / "layers") == []
    assert check_consistent(rl) == []

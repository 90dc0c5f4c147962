"""Fixtures for the container runtime tests: an `rl` runner whose image store holds the
test images (through tests/runtime/standin.py until the image store is merged), and
cleanup that removes every container a test made, also when the test failed.

Root filesystem backend: the default is fuse_overlay; until fuse_overlay.server exists on
this branch the tests use the fuse-overlayfs backend (same options, same ownership xattr).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime import standin
from tests.support import images, users

HERE = Path(__file__).resolve().parent
WRAPPER = HERE / "rl_standin.py"


class Runner(users.RlRunner):
    """users.RlRunner, running rl through the stand-in wrapper."""

    def __call__(self, *args, check=False, input=None, timeout=60, env=None, text=True):
        full_env = dict(self.env, **(env or {}))
        full_env = {k: v for k, v in full_env.items() if v is not None}
        exe = [sys.executable, str(WRAPPER)]
        cmd = [*exe, *args]
        if self.prefix:
            cmd = [*self.prefix, "env", *(f"{k}={v}" for k, v in full_env.items()), *exe,
                   *args]
        proc = subprocess.run(cmd, env=full_env, input=input, capture_output=True,
                              timeout=timeout, text=text)
        if check and proc.returncode != 0:
            raise AssertionError(f"rl {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def argv(self, *args) -> list[str]:
        """The command line (for pexpect or Popen) with the environment set by the caller."""
        return [sys.executable, str(WRAPPER), *args]

    def cleanup(self) -> None:
        r = self("ps", "-aq", timeout=30, check=True)
        ids = r.stdout.split()
        if ids:
            self("rm", "-f", *ids, timeout=60)
        users.stop_fuse_zygotes(self.root / "run" / "rl")


@pytest.fixture(scope="session")
def layer_store(tmp_path_factory):
    """The test images unpacked once per session (shared read-only by every runner)."""
    root = tmp_path_factory.mktemp("standin-images")
    data = root / "data"
    standin.install(data, "busybox:latest", images.build_busybox())
    standin.install(data, "layered:latest", images.build_layered())
    return json.loads((data / standin.INDEX).read_text())


def real_image_store() -> bool:
    """Is the image store (rootless.engine.images) part of this tree?"""
    try:
        return importlib.util.find_spec("rootless.engine.images") is not None
    except ModuleNotFoundError:
        return False


class RealRunner(Runner):
    """The `rl` console script itself, with the images pulled from the test registry."""

    def __call__(self, *args, check=False, input=None, timeout=60, env=None, text=True):
        return users.RlRunner.__call__(self, *args, check=check, input=input,
                                       timeout=timeout, env=env, text=text)

    def argv(self, *args) -> list[str]:
        return [users.rl_executable(), *args]


REGISTRIES_CONF = """
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "docker.io/library"
location = "{host}"
"""


@pytest.fixture
def rl(request, tmp_path):
    root = tmp_path / "rl"
    for sub in ("data", "config", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "run", 0o700)
    # the default start path, with the warm zygote (stopped by cleanup)
    extra = {"RL_ROOTFS_BACKEND": users.rootfs_backend(), "RL_FUSE_ZYGOTE": "1"}
    if real_image_store():
        registry = request.getfixturevalue("registry")
        runner = RealRunner(root, extra_env=extra)
        runner.config_dir.mkdir(parents=True, exist_ok=True)
        (runner.config_dir / "registries.conf").write_text(
            REGISTRIES_CONF.format(host=registry.host))
        runner("pull", "-q", "busybox", check=True)
        runner("pull", "-q", "layered", check=True)
    else:  # before the image store was merged: tests/runtime/standin.py
        layer_store = request.getfixturevalue("layer_store")
        runner = Runner(root, extra_env=extra)
        runner.data_dir.mkdir(parents=True, exist_ok=True)
        (runner.data_dir / standin.INDEX).write_text(json.dumps(layer_store))
    yield runner
    runner.cleanup()


INSTALL_AS_NOSUB = """
import sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from tests.runtime import standin
from tests.support import images
standin.install(Path({data!r}), "busybox:latest", images.build_busybox())
"""


@pytest.fixture
def rl_nosub(layer_store):
    users.need(users.nosub_available(),
               f"user {users.NOSUB_USER} not reachable through sudo")
    base = users.make_nosub_runner()
    runner = Runner(base.root, prefix=base.prefix,
                    extra_env={"HOME": f"/home/{users.NOSUB_USER}", "XDG_RUNTIME_DIR": None,
                               "RL_ROOTFS_BACKEND": users.rootfs_backend(), "RL_FUSE_ZYGOTE": "1"})
    runner.env.pop("XDG_RUNTIME_DIR", None)
    data = str(runner.data_dir)
    script = INSTALL_AS_NOSUB.format(repo=str(HERE.parents[1]), data=data)
    users.run_as_nosub([sys.executable, "-c", script], check=True, cwd="/")
    yield runner
    try:
        runner.cleanup()
        for pid in users.run_as_nosub(["sh", "-c", "cat /tmp/rl-$(id -u)/fuse-zygote-*.pid"
                                       ]).stdout.split():
            users.run_as_nosub(["kill", pid])
    finally:
        users.cleanup_nosub_runner(runner)


def _zygote_pids(root: Path) -> set[str]:
    """The warm fuse server of the rl whose directories are under `root`: it outlives the
    containers by design (rootless/runtime/zygote.py), so it is not a leftover."""
    pids: set[str] = set()
    try:
        for pidfile in (root / "run" / "rl").glob("fuse-zygote-*.pid"):
            pids.update(pidfile.read_text().split())
    except OSError:
        pass
    return pids


def user_processes_mentioning(text: str) -> list[str]:
    """Processes whose command line or environment mentions `text` (a runner's root: every
    process rl starts inherits XDG_DATA_HOME under it, also those whose command line names
    nothing of it, like the fuse server forked from `rl run`), except that root's warm fuse
    server. Only processes this user may read are seen; as root, all."""
    out = []
    needle = text.encode()
    skip = _zygote_pids(Path(text))
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid in skip or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if needle in cmd or needle in environ:
            shown = cmd.replace(b"\0", b" ").decode(errors="replace")
            out.append(f"{pid}: {shown}")
    return out

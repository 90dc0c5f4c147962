"""Run `rl` as the test users: the current one (with subuid ranges, under the root-prepared
test command) and `rlnosub`, a user without any range, reached through sudo.

Each runner gives `rl` its own XDG directories, so a test never sees another's store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

NOSUB_USER = "rlnosub"


def strict() -> bool:
    """Under the root-prepared test command every prerequisite is installed: a missing one
    is a failure of the harness, not a reason to skip."""
    return os.environ.get("RL_TESTS_STRICT") == "1"


def need(condition: bool, reason: str) -> None:
    import pytest

    if not condition:
        if strict():
            pytest.fail(f"prerequisite missing under the prepared test command: {reason}")
        pytest.skip(reason)


def rl_executable() -> str:
    """The `rl` console script of the interpreter running the tests."""
    candidate = Path(sys.executable).with_name("rl")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("rl")
    if not found:
        raise RuntimeError("rl is not installed in this environment (pip install -e .)")
    return found


class RlRunner:
    """`runner("pull", ref)` runs rl with isolated storage and returns CompletedProcess."""

    def __init__(self, root: Path, prefix: list[str] | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.root = root
        self.prefix = prefix or []
        self.env = {
            "HOME": os.environ.get("HOME", str(root)),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "XDG_DATA_HOME": str(root / "data"),
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_RUNTIME_DIR": str(root / "run"),
            # No warm fuse server zygote (rootless/runtime/zygote.py): it would outlive
            # the test by its idle timeout. tests/runtime turns it on and stops it.
            "RL_FUSE_ZYGOTE": "0",
        }
        self.env.update(extra_env or {})

    @property
    def data_dir(self) -> Path:
        return Path(self.env["XDG_DATA_HOME"]) / "rl"

    @property
    def config_dir(self) -> Path:
        return Path(self.env["XDG_CONFIG_HOME"]) / "rl"

    def __call__(self, *args: str, check: bool = False, input: str | bytes | None = None,
                 timeout: float = 120, env: dict[str, str] | None = None,
                 text: bool = True) -> subprocess.CompletedProcess:
        full_env = dict(self.env, **(env or {}))
        full_env = {k: v for k, v in full_env.items() if v is not None}
        cmd = [*self.prefix, rl_executable(), *args]
        if self.prefix:  # sudo: pass the environment through `env`
            cmd = [*self.prefix, "env", *(f"{k}={v}" for k, v in full_env.items()),
                   rl_executable(), *args]
        proc = subprocess.run(cmd, env=full_env, input=input, capture_output=True,
                              timeout=timeout, text=text)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"rl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc


def make_runner(root: Path) -> RlRunner:
    for sub in ("data", "config", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "run", 0o700)
    return RlRunner(root)


def nosub_available() -> bool:
    if shutil.which("sudo") is None:
        return False
    r = subprocess.run(["sudo", "-n", "-u", NOSUB_USER, "true"], capture_output=True)
    return r.returncode == 0


def run_as_nosub(args: list[str], **kw) -> subprocess.CompletedProcess:
    """Run a command as the user without subuid ranges."""
    return subprocess.run(["sudo", "-n", "-u", NOSUB_USER, "-H", *args], capture_output=True,
                          text=True, **kw)


def make_nosub_runner() -> RlRunner:
    """A runner for rlnosub, with XDG dirs in a fresh directory that user owns.
    XDG_RUNTIME_DIR is left unset, as after `sudo -u`: rl must fall back to /tmp/rl-<uid>."""
    root = run_as_nosub(["mktemp", "-d", "/tmp/rl-nosub.XXXXXX"], check=True).stdout.strip()
    runner = RlRunner(Path(root), prefix=["sudo", "-n", "-u", NOSUB_USER, "-H"],
                      extra_env={"HOME": f"/home/{NOSUB_USER}", "XDG_RUNTIME_DIR": None})
    runner.env.pop("XDG_RUNTIME_DIR", None)
    return runner


def cleanup_nosub_runner(runner: RlRunner) -> None:
    run_as_nosub(["rm", "-rf", str(runner.root)])


def rootfs_backend() -> str:
    """The rootfs backend the container tests use: rl's own fuse_overlay when installed."""
    import importlib.util

    try:
        found = importlib.util.find_spec("fuse_overlay.server") is not None
    except ModuleNotFoundError:
        found = False
    return "fuse_overlay" if found else "fuse-overlayfs"


def stop_fuse_zygotes(rl_runtime_dir: Path) -> None:
    """The warm fuse server rl leaves for the next run (rootless/runtime/zygote.py) would
    outlive a test or benchmark by its idle timeout: stop the ones of `rl_runtime_dir`
    (the `<XDG_RUNTIME_DIR>/rl` of that rl)."""
    import signal

    try:
        pidfiles = list(Path(rl_runtime_dir).glob("fuse-zygote-*.pid"))
    except OSError:  # another user's runtime dir (the rlnosub runner): not ours to stop
        return
    for pidfile in pidfiles:
        for pid in pidfile.read_text().split():
            try:
                os.kill(int(pid), signal.SIGTERM)
            except (OSError, ValueError):
                pass

"""The code stays ruff-clean, and `rl`'s light commands import nothing heavy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("httpx", "rich", "trio", "pyfuse3", "pyroute2", "yaml", "jsonschema", "zstandard")


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (pip install -e .[lint])")
    r = subprocess.run([ruff, "check", "--no-cache", "rootless", "fuse_overlay", "tests",
                        "contrib", "noxfile.py"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def imported_modules(*args: str, env: dict[str, str] | None = None) -> set[str]:
    """Top-level modules that `rl ARGS` imports, read from -X importtime."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "rootless", *args],
                       capture_output=True, text=True, cwd="/", env=env)
    names = set()
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("info", "--format", "json"),
                                  ("volume", "ls", "-q"), ("ps",), ("ps", "-a", "--format",
                                                                     "{{.Names}}"),
                                  ("ps", "--format", "json", "-f", "status=exited")])
def test_light_commands_import_nothing_heavy(args, rl):
    mods = imported_modules(*args, env=rl.env)
    assert "click" in mods  # the measurement itself works
    assert not mods & set(HEAVY), sorted(mods & set(HEAVY))


def test_early_fork_knows_every_valued_run_flag():
    """runtime/early.py finds -d before click is imported, so it keeps its own list of the
    flags of `rl run` that take a value: it must be the one the click command declares."""
    import click

    from rootless.cli.containers import run
    from rootless.runtime import early

    valued = set()
    for p in run.params:
        if isinstance(p, click.Option) and not p.is_flag and not p.count:
            valued.update(p.opts + p.secondary_opts)
    assert valued == early._VALUED


@pytest.mark.parametrize(("args", "early"), [
    (["busybox", "true"], True),
    (["-d", "busybox"], False),
    (["-dit", "busybox"], False),
    (["-p", "8080:80", "-d", "busybox"], False),
    (["-e", "d=1", "busybox"], True),  # the value of -e, not a -d
    (["-ed=1", "busybox"], True),
    (["--name", "-d", "busybox"], True),  # a (strange) name
    (["--mount", "type=tmpfs,target=/d", "-d", "busybox"], False),
    (["busybox", "-d"], True),  # the command's argument
])
def test_early_fork_detects_detach(args, early, monkeypatch):
    from rootless.runtime import early as early_mod

    monkeypatch.delenv(early_mod.BACKEND_ENV, raising=False)
    assert early_mod._wants_early(args) is early

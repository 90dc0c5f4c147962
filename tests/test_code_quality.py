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

"""The README's main job stays true: the demo pulls, builds and runs real containers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.rootless
def test_demo_runs_end_to_end(rl):
    r = subprocess.run([sys.executable, "-m", "contrib.demo"], cwd=ROOT, env=rl.env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "hello from a rootless container" in r.stdout
    assert "demo: done" in r.stdout
    # The demo cleans up after itself: no container, volume or built image is left.
    assert rl("ps", "-aq", check=True).stdout == ""
    assert rl("volume", "ls", "-q", check=True).stdout == ""

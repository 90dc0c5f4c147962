"""The long syntax's mount options through `rl compose up`, as docker compose carries them
out: `volume: {nocopy: true}` (the volume is not filled from the image) and
`bind: {create_host_path: false}` (a missing host path is an error, nothing made)."""

from __future__ import annotations

import textwrap

import pytest

NOCOPY = """\
name: mnt
services:
  copied:
    image: voltest
    command: ["true"]
    volumes:
      - type: volume
        source: full
        target: /www
  kept:
    image: voltest
    command: ["true"]
    volumes:
      - type: volume
        source: empty
        target: /www
        volume: {nocopy: true}
volumes:
  full: {}
  empty: {}
"""

NO_CREATE = """\
name: nocreate
services:
  b:
    image: busybox
    command: ["true"]
    volumes:
      - type: bind
        source: ./missing
        target: /m
        bind: {create_host_path: false}
"""


@pytest.fixture
def project(rlc, tmp_path):
    made = []

    def compose(text: str):
        d = tmp_path / f"p{len(made)}"
        d.mkdir()
        (d / "compose.yaml").write_text(textwrap.dedent(text))

        def run(*args, check=False, timeout=180):
            return rlc("compose", "-f", str(d / "compose.yaml"), *args, check=check,
                       timeout=timeout)

        made.append(run)
        run.dir = d
        return run

    try:
        yield compose
    finally:
        for run in made:
            run("down", "-v", timeout=120)


def _listing(rlc, volume: str) -> list[str]:
    return rlc("run", "--rm", "--network", "none", "-v", f"{volume}:/v", "busybox",
               "ls", "-A", "/v", check=True).stdout.split()


def test_nocopy_leaves_the_volume_empty(project, rlc):
    up = project(NOCOPY)
    up("up", "-d", check=True)
    rlc("wait", "mnt-copied-1", "mnt-kept-1", check=True)
    states = rlc("ps", "-a", "--format", "{{.Names}} {{.Status}}").stdout
    assert _listing(rlc, "mnt_full") == ["index.html"], states  # filled from the image
    assert _listing(rlc, "mnt_empty") == [], states  # nocopy: not filled


def test_create_host_path_false_refuses_a_missing_path(project, rlc):
    up = project(NO_CREATE)
    r = up("up", "-d")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"bind source path {up.dir / 'missing'} does not exist" in lines[0]
    assert "services.b.volumes[0]" in lines[0]
    assert not (up.dir / "missing").exists()  # nothing made: no path, container, network
    assert rlc("ps", "-aq", check=True).stdout == ""
    assert rlc("network", "ls", "-q", check=True).stdout == ""
    # once the path is there, the same file comes up
    (up.dir / "missing").mkdir()
    (up.dir / "missing" / "f").write_text("host\n")
    up("up", "-d", check=True)
    assert rlc("wait", "nocreate-b-1", check=True).stdout.strip() == "0"

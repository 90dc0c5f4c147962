"""A hostile image used as a build source (`COPY --from=IMAGE`, `RUN --mount=from=IMAGE`)
must not make the host read the user's files into the build. The store keeps each layer
unpacked on its own; the build reads the union of those directories on the host side. An
image whose lower layer has `a -> /home/USER/secrets` (a symlink) and whose upper layer has
directories `a/b/` over it shows `a/b/` as a directory: a reader that joins the path
`a/b` onto the lower layer's directory follows that symlink onto the host."""

from __future__ import annotations

import pytest

from tests.ship import conftest as ship
from tests.support import images
from tests.support.images import Image, TarBuilder, _config

# the build tests' fixtures (tests/ship/conftest.py), as fixtures of this module
rl, pulled, ctx = ship.rl, ship.pulled, ship.ctx

SECRET = "the-users-private-key"


@pytest.fixture
def canary(tmp_path):
    d = tmp_path / "home-canary"
    (d / "sub").mkdir(parents=True)
    (d / "id_rsa").write_text(SECRET)
    (d / "sub" / "deeper").write_text(SECRET)
    d.chmod(0o755)
    return d


@pytest.fixture
def hostile(registry, canary):
    """hostile:latest: busybox, then `evil -> CANARY`, then real dirs `evil/sub/` above it:
    a reader of `evil/sub` that joins it onto the lower layer lands in CANARY/sub."""
    low = TarBuilder().symlink("evil", str(canary)).layer()
    high = (TarBuilder().dir("evil").dir("evil/sub")
            .file("evil/sub/marker", b"from the image\n").layer())
    registry.push_image("hostile", "latest",
                        Image([images.busybox_layer(), low, high], _config(cmd=["sh"])))
    return registry.ref("hostile:latest")


@pytest.mark.parametrize("step", [
    "COPY --from=HOSTILE /evil /got",
    "RUN --mount=type=bind,from=HOSTILE,source=/evil,target=/src cp -a /src /got",
])
def test_a_hostile_build_source_does_not_read_the_users_files(rl, ctx, hostile, canary, step):
    before = sorted(p.name for p in canary.rglob("*"))
    path = ctx("FROM BASE\n" + step.replace("HOSTILE", hostile) + "\n")
    r = rl("build", "-t", "got:1", path)
    assert r.returncode == 0, r.stderr
    out = rl("run", "--rm", "--network", "none", "got:1", "sh", "-c",
             "ls -aR /got; cat /got/sub/* 2>/dev/null", check=True).stdout
    assert "from the image" in out  # the image's own file came
    assert SECRET not in out and "id_rsa" not in out and "deeper" not in out
    saved = rl("save", "got:1", text=False, check=True).stdout
    assert SECRET.encode() not in saved
    assert sorted(p.name for p in canary.rglob("*")) == before

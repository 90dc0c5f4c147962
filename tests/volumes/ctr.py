"""Real containers for the volume and network tests: `rl` (the real command, the real
image store) with busybox and a test image pulled from the session's `registry` fixture
(short names through registries.conf, as tests/runtime does);
every container and volume a test made is removed afterwards, also when it failed.

Test modules use it with `from tests.volumes.ctr import ctr_images, rlc  # noqa: F401`.
"""

from __future__ import annotations

import pytest

from tests.runtime.conftest import REGISTRIES_CONF
from tests.support import images, users
from tests.support.images import Image, TarBuilder, _config


def build_voltest() -> Image:
    """busybox + /srv/data (uid 1000, 0750) holding a 0640 file of uid 1000 and a root
    file; VOLUME /vol, /srv/data; EXPOSE 80/tcp and 8081/tcp; runs httpd on 80."""
    extra = (TarBuilder()
             .dir("srv", 0o755)
             .dir("srv/data", 0o750, 1000, 1000)
             .file("srv/data/owned.txt", b"from the image\n", 0o640, 1000, 1000)
             .file("srv/data/root.txt", b"root file\n", 0o600)
             .dir("srv/data/sub", 0o700, 1000, 1000)
             .file("srv/data/sub/deep.txt", b"deep\n", 0o644, 1000, 1000)
             .dir("www").file("www/index.html", b"hello from rl\n")
             .layer())
    cfg = _config(cmd=["httpd", "-f", "-p", "80", "-h", "/www"],
                  Volumes={"/vol": {}}, ExposedPorts={"80/tcp": {}, "8081/tcp": {}})
    return Image([images.busybox_layer(), extra], cfg)


@pytest.fixture(scope="session")
def ctr_images(registry):
    """The registry, with voltest pushed next to the suite's images."""
    registry.push_image("voltest", "latest", build_voltest())
    return registry


class Ctr(users.RlRunner):
    busybox: str
    voltest: str

    def cleanup(self) -> None:
        ids = self("ps", "-aq", timeout=30, check=True).stdout.split()
        if ids:
            self("rm", "-f", "-v", *ids, timeout=60)
        vols = self("volume", "ls", "-q", timeout=30).stdout.split()
        if vols:
            self("volume", "rm", "-f", *vols, timeout=60)
        users.stop_fuse_zygotes(self.root / "run" / "rl")


@pytest.fixture
def rlc(tmp_path, ctr_images):
    root = tmp_path / "rl"
    users.make_runner(root)
    # the warm zygote on, as for users (detached monitors are its forks): cleanup stops it
    runner = Ctr(root, extra_env={"RL_ROOTFS_BACKEND": users.rootfs_backend(),
                                  "RL_FUSE_ZYGOTE": "1"})
    # as tests/runtime does: short names resolve to the test registry
    runner.config_dir.mkdir(parents=True, exist_ok=True)
    (runner.config_dir / "registries.conf").write_text(
        REGISTRIES_CONF.format(host=ctr_images.host))
    try:
        for name in ("busybox", "voltest"):
            runner("pull", "-q", name, check=True)
            setattr(runner, name, name)
        yield runner
    finally:
        runner.cleanup()

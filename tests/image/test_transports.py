"""copy(src, dst) between two transports other than a registry: the store as a source,
into another user's store (what save/load and push will build on)."""

from __future__ import annotations

import json

import pytest

from rootless.errors import NotFound
from rootless.image.copy import copy
from rootless.image.store_transport import StoreDestination, StoreSource
from tests.support import users
from tests.support.images import sha256


def test_store_to_store_copy(rl, registry, test_images, tmp_path):
    image = test_images["layered:latest"]
    rl("pull", "-q", registry.ref("layered"), check=True)
    other = users.make_runner(tmp_path / "other")
    image_id = sha256(image.config_bytes)

    src = StoreSource(image_id, rl.data_dir)
    dst = StoreDestination(other.data_dir)
    try:
        result = copy(src, dst, names=["example.org/copied:1"])
    finally:
        dst.close()
        src.close()
    assert result.image_id == image_id and result.downloaded == 3
    info = json.loads(other("image", "inspect", "example.org/copied:1", check=True).stdout)[0]
    assert info["Id"] == image_id and info["Digest"] == image.digest
    assert info["RootFS"]["Layers"] == [layer.diff_id for layer in image.layers]
    top = other.data_dir / "layers" / image.layers[2].diff_id[7:]
    assert (top / "home/user/secret").read_text() == "secret\n"

    with pytest.raises(NotFound):
        StoreSource("sha256:" + "0" * 64, rl.data_dir)

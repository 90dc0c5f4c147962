"""tag, rmi, image prune, and the pull policies of ensure_image, through the rl command."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

from rootless.store import catalog, containerdb
from tests.image.conftest import store_state, unique_image, unique_layer
from tests.image.test_pull import one_line_error
from tests.support.images import sha256


def image_ids(rl) -> list[str]:
    out = rl("images", "--format", "json", "--no-trunc", check=True).stdout
    return list(dict.fromkeys(json.loads(x)["ID"] for x in out.splitlines()))


def add_container(rl, image_id: str) -> None:
    """What create() writes: a container's record (through its owner, containerdb)."""
    conn = catalog.connect(rl.data_dir)
    with catalog.transaction(conn):
        containerdb.insert(conn, cid="c1" * 32, name="c1", image_id=image_id, image="x",
                           command=["true"], created=0.0, labels={}, options={})
    conn.close()


def test_tag_and_rmi(rl, registry):
    base = unique_layer(10_000)
    a, b = unique_image(base, unique_layer()), unique_image(base, unique_layer())
    registry.push_image("rmi-a", "latest", a)
    registry.push_image("rmi-b", "latest", b)
    rl("pull", "-q", registry.ref("rmi-a"), check=True)
    rl("pull", "-q", registry.ref("rmi-b"), check=True)
    a_id = sha256(a.config_bytes)
    rl("tag", registry.ref("rmi-a"), "mine:v1", check=True)
    info = json.loads(rl("image", "inspect", "mine:v1", check=True).stdout)[0]
    assert info["Id"] == a_id
    assert "docker.io/library/mine:v1" in info["RepoTags"]
    assert "docker.io/library/mine" in rl("images", check=True).stdout

    # by id with two names: refused, store unchanged
    before = store_state(rl)
    assert "several names" in one_line_error(rl("rmi", a_id[7:19]))
    assert store_state(rl) == before
    # by one name: only untagged
    out = rl("rmi", "mine:v1", check=True).stdout
    assert out.strip() == "Untagged: docker.io/library/mine:v1"
    assert a_id in image_ids(rl)
    # the last name: deleted with its own layer, the shared base stays
    out = rl("rmi", registry.ref("rmi-a"), check=True).stdout
    assert f"Deleted: {a_id}" in out
    layers = set((rl.data_dir / "layers").iterdir())
    names = {p.name for p in layers}
    assert a.layers[1].diff_id[7:] not in names
    assert base.diff_id[7:] in names and b.layers[1].diff_id[7:] in names
    blobs = {p.name for p in (rl.data_dir / "blobs" / "sha256").iterdir()}
    assert a.layers[1].digest[7:] not in blobs and base.digest[7:] in blobs
    # unknown name: error, nothing changes; with -f ignored
    before = store_state(rl)
    assert "not found" in one_line_error(rl("rmi", "nosuch"))
    assert "not found" in one_line_error(rl("rmi", registry.ref("rmi-b"), "nosuch"))
    assert store_state(rl) == before
    rl("image", "rm", "-f", "nosuch", check=True)
    assert store_state(rl) == before


def test_rmi_refuses_image_in_use(rl, registry):
    image = unique_image()
    registry.push_image("inuse", "latest", image)
    rl("pull", "-q", registry.ref("inuse"), check=True)
    image_id = sha256(image.config_bytes)
    add_container(rl, image_id)
    before = store_state(rl)
    assert "in use by a container" in one_line_error(rl("rmi", registry.ref("inuse")))
    assert store_state(rl) == before
    # -f: untagged, but the image and its layers stay for the container
    rl("rmi", "-f", registry.ref("inuse"), check=True)
    assert image_id in image_ids(rl)
    rl("image", "prune", "-a", "-f", check=True)
    assert image_id in image_ids(rl)
    assert (rl.data_dir / "layers" / image.layers[0].diff_id[7:]).is_dir()
    # once the container is gone, prune removes it and its layers
    conn = sqlite3.connect(rl.data_dir / "catalog.db")
    conn.execute("DELETE FROM containers")
    conn.commit()
    conn.close()
    out = rl("image", "prune", "-f", check=True).stdout
    assert f"Deleted Images:\ndeleted: {image_id}\n" in out
    assert image_ids(rl) == []
    assert not (rl.data_dir / "layers" / image.layers[0].diff_id[7:]).exists()


def test_prune_all(rl, registry):
    rl("pull", "-q", registry.ref("busybox"), check=True)
    rl("pull", "-q", registry.ref("layered"), check=True)
    assert len(image_ids(rl)) == 2
    rl("image", "prune", "-a", "-f", check=True)
    assert image_ids(rl) == []
    state = store_state(rl)
    assert state["layers"] == [] and state["blobs/sha256"] == [] and state["layers"] == []


def test_ensure_image_policies(rl, registry):
    ref = registry.ref("busybox")
    code = (
        "import sys\nfrom rootless.engine import images\nfrom rootless.errors import RlError\n"
        "ref, policy = sys.argv[1], sys.argv[2]\n"
        "try:\n    r = images.ensure_image(ref, pull=policy)\n"
        "    print('ok', r.id, len(r.layer_dirs), all(d.is_dir() for d in r.layer_dirs),"
        " r.config['config']['Cmd'])\n"
        "except RlError as e:\n    print('error', type(e).__name__, e)\n")

    def ensure(policy: str) -> str:
        return subprocess.run([sys.executable, "-c", code, ref, policy], env=rl.env,
                              capture_output=True, text=True, check=True).stdout.strip()

    assert ensure("never").startswith("error NotFound")
    assert ensure("bogus").startswith("error InvalidArgument")
    first = ensure("missing")
    assert first.startswith("ok sha256:") and first.endswith("1 True ['sh']")
    assert ensure("never") == first
    assert ensure("always") == first

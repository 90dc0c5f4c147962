"""The fixtures themselves work: the registries answer, the images pulled back through the
registry's own API match their digests, and the token flow is a real challenge."""

from __future__ import annotations

import gzip
import hashlib
import json
import re

import httpx

from tests.support import images

ACCEPT = ", ".join([images.OCI_INDEX, images.OCI_MANIFEST, images.DOCKER_MANIFEST,
                    images.DOCKER_LIST])


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_registry_answers_v2(registry):
    r = httpx.get(f"{registry.url}/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


def _check_image(client: httpx.Client, repo: str, ref: str, expect_type: str) -> dict:
    r = client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == expect_type
    assert r.headers["Docker-Content-Digest"] == _sha(r.content)
    manifest = json.loads(r.content)
    cfg_blob = client.get(f"/v2/{repo}/blobs/{manifest['config']['digest']}").content
    assert _sha(cfg_blob) == manifest["config"]["digest"]
    config = json.loads(cfg_blob)
    diff_ids = []
    for layer in manifest["layers"]:
        blob = client.get(f"/v2/{repo}/blobs/{layer['digest']}").content
        assert _sha(blob) == layer["digest"] and len(blob) == layer["size"]
        diff_ids.append(_sha(gzip.decompress(blob)))
    assert diff_ids == config["rootfs"]["diff_ids"]
    return config


def test_images_pull_back_with_matching_digests(registry):
    with httpx.Client(base_url=registry.url) as c:
        _check_image(c, "busybox", "latest", images.DOCKER_MANIFEST)
        _check_image(c, "busybox", "oci", images.OCI_MANIFEST)
        cfg = _check_image(c, "layered", "latest", images.DOCKER_MANIFEST)
        assert len(cfg["rootfs"]["diff_ids"]) == 3
        _check_image(c, "layered", "oci", images.OCI_MANIFEST)


def test_schema2_and_oci_forms_share_layers(registry, test_images):
    docker, oci = test_images["busybox:latest"], test_images["busybox:oci"]
    assert docker.digest != oci.digest
    assert [x.digest for x in docker.layers] == [x.digest for x in oci.layers]


def test_index_offers_two_platforms(registry):
    with httpx.Client(base_url=registry.url) as c:
        r = c.get("/v2/multiarch/manifests/latest", headers={"Accept": ACCEPT})
        assert r.headers["Content-Type"] == images.OCI_INDEX
        index = r.json()
        platforms = {(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]}
        assert platforms == {("linux", "amd64"), ("linux", "arm64")}
        for m in index["manifests"]:
            config = _check_image(c, "multiarch", m["digest"], images.OCI_MANIFEST)
            assert config["architecture"] == m["platform"]["architecture"]


def test_layered_image_has_whiteouts_and_owned_file(test_images):
    import io
    import tarfile

    top = test_images["layered:latest"].layers[2]
    with tarfile.open(fileobj=io.BytesIO(top.tar)) as t:
        members = {m.name: m for m in t.getmembers()}
    assert "data/.wh.gone.txt" in members and "olddir/.wh..wh..opq" in members
    secret = members["home/user/secret"]
    assert (secret.uid, secret.gid, secret.mode) == (1000, 1000, 0o640)


def test_token_registry_challenges_and_accepts_a_token(token_registry):
    r = httpx.get(f"{token_registry.url}/v2/busybox/manifests/latest",
                  headers={"Accept": ACCEPT})
    assert r.status_code == 401
    challenge = r.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    assert params["realm"] == token_registry.token_server.realm
    assert params["service"] == "rl-test-registry"
    assert params["scope"] == "repository:busybox:pull"
    token = httpx.get(params["realm"], params={"service": params["service"],
                                               "scope": params["scope"]}).json()["token"]
    r = httpx.get(f"{token_registry.url}/v2/busybox/manifests/latest",
                  headers={"Accept": ACCEPT, "Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert token_registry.token_server.requests[-1]["query"]["scope"] == ["repository:busybox:pull"]

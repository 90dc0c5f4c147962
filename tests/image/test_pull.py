"""rl pull / images / image inspect against real registries (and a fake one for what a real
registry never does)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from fuse_overlay.metadata import Override, read_override
from tests.image.conftest import (
    blob_file,
    store_state,
    unique_image,
    unique_layer,
    write_registries_conf,
)
from tests.support.images import DOCKER_MANIFEST, sha256


def one_line_error(proc) -> str:
    assert proc.returncode == 125, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines()
             if not line.startswith(("Trying to pull", "Pulled "))]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rl: error: ")
    return lines[0]


def test_pull_then_list_and_inspect(rl, registry, test_images):
    ref = registry.ref("busybox:latest")
    image = test_images["busybox:latest"]
    proc = rl("pull", ref, check=True)
    image_id = sha256(image.config_bytes)
    assert proc.stdout.strip() == image_id.partition(":")[2]

    table = rl("images", check=True).stdout.splitlines()
    assert table[0].split()[:3] == ["REPOSITORY", "TAG", "IMAGE"]
    assert table[1].split()[:3] == [f"{registry.host}/busybox", "latest", image_id[7:19]]
    assert rl("images", "-q", check=True).stdout.split() == [image_id[7:19]]
    assert image.digest in rl("images", "--digests", check=True).stdout
    listed = [json.loads(x) for x in rl("images", "--format", "json", "--no-trunc",
                                           check=True).stdout.splitlines()]
    assert [(x["ID"], f'{x["Repository"]}:{x["Tag"]}') for x in listed] == [(image_id, ref)]
    assert rl("image", "ls", "-q", check=True).stdout.split() == [image_id[7:19]]

    info = json.loads(rl("image", "inspect", ref, check=True).stdout)[0]
    assert info["Id"] == image_id
    assert info["Digest"] == image.digest
    assert info["RepoDigests"] == [f"{registry.host}/busybox@{image.digest}"]
    assert info["RootFS"]["Layers"] == [layer.diff_id for layer in image.layers]
    assert info["Config"]["Cmd"] == ["sh"]
    assert info["Layers"][0]["Digest"] == image.layers[0].digest
    layer_dir = rl.data_dir / "layers" / image.layers[0].diff_id.partition(":")[2]
    assert info["Layers"][0]["Path"] == str(layer_dir)
    # the unpacked layer, as the user stores it
    assert (layer_dir / "bin/busybox").stat().st_size > 100_000
    assert read_override(str(layer_dir / "root")) == Override(0, 0, 0o700)
    assert read_override(str(layer_dir / "tmp")) == Override(0, 0, 0o1777)
    assert os.lstat(layer_dir / "bin/sh").st_ino == os.lstat(layer_dir / "bin/busybox").st_ino
    # by id prefix too
    assert json.loads(rl("image", "inspect", image_id[7:17], check=True).stdout)[0]["Id"] \
        == image_id


def test_layered_oci_image_keeps_whiteouts_and_owners(rl, registry, test_images):
    rl("pull", "-q", registry.ref("layered:oci"), check=True)
    image = test_images["layered:oci"]
    dirs = [rl.data_dir / "layers" / layer.diff_id.partition(":")[2] for layer in image.layers]
    assert (dirs[2] / "data/.wh.gone.txt").exists()
    assert (dirs[2] / "olddir/.wh..wh..opq").exists()
    assert read_override(str(dirs[2] / "home/user/secret")) == Override(1000, 1000, 0o640)
    assert stat.S_IMODE(os.lstat(dirs[2] / "home/user/secret").st_mode) == 0o640
    assert (dirs[1] / "data/gone.txt").read_text() == "gone\n"


def test_short_name_resolves_through_registries_conf(rl, registry, test_images):
    write_registries_conf(rl, f"""
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "docker.io/library"
location = "{registry.host}"
""")
    proc = rl("pull", "busybox", check=True)
    assert "docker.io/library/busybox:latest" in proc.stderr
    listed = [json.loads(x) for x in rl("images", "--format", "json",
                                           check=True).stdout.splitlines()]
    # Docker shows Docker Hub's official images by their short name
    assert [(x["Repository"], x["Tag"]) for x in listed] == [("busybox", "latest")]
    # local lookups of the short name and of Docker's long forms find it
    for name in ("busybox", "busybox:latest", "docker.io/library/busybox",
                 "index.docker.io/library/busybox:latest"):
        info = json.loads(rl("image", "inspect", name, check=True).stdout)[0]
        assert info["Id"] == sha256(test_images["busybox:latest"].config_bytes)


def test_rl_registries_conf_env_overrides(rl, registry, tmp_path):
    conf = tmp_path / "other.conf"
    conf.write_text(f'unqualified-search-registries = ["{registry.host}"]\n')
    rl("pull", "-q", "layered", check=True, env={"RL_REGISTRIES_CONF": str(conf)})
    assert f"{registry.host}/layered" in rl("images", check=True).stdout


def test_mirror_is_tried_first_then_location(rl, registry, fake_registry):
    write_registries_conf(rl, f"""
[[registry]]
prefix = "example.invalid/team"
location = "{registry.host}"
[[registry.mirror]]
location = "{fake_registry.host}"
""")
    rl("pull", "-q", "example.invalid/team/busybox", check=True)
    # the (empty) mirror was asked first, with the rewritten path
    assert fake_registry.requests[0][1] == "/v2/busybox/manifests/latest"
    assert "example.invalid/team/busybox" in rl("images", check=True).stdout


def test_platform_selection(rl, registry):
    rl("pull", "-q", registry.ref("multiarch:latest"), check=True)
    info = json.loads(rl("image", "inspect", registry.ref("multiarch"), check=True).stdout)[0]
    assert info["Architecture"] == "amd64"
    rl("pull", "-q", "--platform", "linux/arm64", registry.ref("multiarch:latest"), check=True)
    info = json.loads(rl("image", "inspect", registry.ref("multiarch"), check=True).stdout)[0]
    assert info["Architecture"] == "arm64" and info["Variant"] == "v8"
    top = rl.data_dir / "layers" / info["RootFS"]["Layers"][-1].partition(":")[2]
    assert (top / "etc/platform").read_text() == "arm64\n"


def test_no_matching_platform_lists_offered(rl, registry):
    line = one_line_error(rl("pull", "--platform", "linux/s390x",
                             registry.ref("multiarch:latest")))
    assert "linux/s390x" in line and "linux/amd64" in line and "linux/arm64/v8" in line
    assert store_state(rl).get("images", []) == []


def test_token_registry_bearer_flow(rl, token_registry):
    seen = len(token_registry.token_server.requests)
    rl("pull", "-q", token_registry.ref("busybox:latest"), check=True)
    new = token_registry.token_server.requests[seen:]
    assert new, "no token was requested"
    assert new[0]["query"]["scope"] == ["repository:busybox:pull"]
    assert new[0]["query"]["service"] == [token_registry.service]
    assert new[0]["authorization"] is None  # anonymous


def test_second_pull_downloads_nothing_and_shared_base_only_new_layers(rl, registry):
    base = unique_layer(200_000)
    first = unique_image(base, unique_layer())
    second = unique_image(base, unique_layer())
    registry.push_image("shared-a", "latest", first)
    registry.push_image("shared-b", "latest", second)
    rl("pull", "-q", registry.ref("shared-a"), check=True)
    # Remove first's blobs from the registry: pulls that still download them fail.
    for digest in [layer.digest for layer in first.layers]:
        blob_file(registry, digest).unlink()
    proc = rl("pull", registry.ref("shared-a"), check=True)
    assert "0 of 2 layers downloaded, 2 already present" in proc.stderr
    proc = rl("pull", registry.ref("shared-b"), check=True)
    assert "1 of 2 layers downloaded, 1 already present" in proc.stderr
    layer_dirs = os.listdir(rl.data_dir / "layers")
    assert sorted(layer_dirs) == sorted({layer.diff_id[7:] for layer in
                                         first.layers + second.layers})


def test_import_cost_of_images(rl):
    code = ("import sys; from rootless.cli.main import main\n"
            "try:\n    main(['images'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('httpx', 'rich', 'isal', 'zstandard') "
            "if m in sys.modules))")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], env=rl.env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


# -- bad input: one line, exit 125, store unchanged --

@pytest.fixture
def seeded(rl, registry):
    """A store holding busybox, and its state, to check failures change nothing."""
    rl("pull", "-q", registry.ref("busybox:latest"), check=True)
    return store_state(rl)


def test_unknown_tag(rl, registry, seeded):
    line = one_line_error(rl("pull", registry.ref("busybox:nosuchtag")))
    assert "busybox:nosuchtag" in line and registry.host in line and "not found" in line
    line = one_line_error(rl("pull", registry.ref("nosuchimage")))
    assert "nosuchimage" in line
    assert store_state(rl) == seeded


def test_invalid_references(rl, seeded):
    for bad in ("Busybox", "busybox:", "a//b", "busybox@sha256:123", "http://x/y", ""):
        line = one_line_error(rl("pull", bad))
        assert "invalid reference" in line
    assert store_state(rl) == seeded


def test_registry_unreachable(rl, seeded):
    line = one_line_error(rl("pull", "127.0.0.1:1/busybox"))
    assert "cannot reach registry 127.0.0.1:1" in line
    assert store_state(rl) == seeded


def test_401_and_403(rl, fake_registry, seeded):
    fake_registry.routes["/v2/locked/manifests/latest"] = (401, {}, b"")
    fake_registry.routes["/v2/denied/manifests/latest"] = (403, {}, b"")
    line = one_line_error(rl("pull", f"{fake_registry.host}/locked"))
    assert "authentication required" in line and "rl login" in line
    line = one_line_error(rl("pull", f"{fake_registry.host}/denied"))
    assert "access denied" in line
    assert store_state(rl) == seeded


def test_tampered_blob(rl, registry, seeded):
    image = unique_image(unique_layer(50_000))
    registry.push_image("tampered", "latest", image)
    path = blob_file(registry, image.layers[0].digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    line = one_line_error(rl("pull", registry.ref("tampered")))
    assert "digest mismatch" in line
    assert store_state(rl) == seeded


def test_truncated_blob(rl, registry, seeded):
    image = unique_image(unique_layer(50_000))
    registry.push_image("truncated", "latest", image)
    path = blob_file(registry, image.layers[0].digest)
    path.write_bytes(path.read_bytes()[:20_000])
    line = one_line_error(rl("pull", registry.ref("truncated")))
    assert "truncated" in line
    assert store_state(rl) == seeded


def serve(fake, repo: str, image, tag: str = "latest") -> None:
    """Put an image on the fake registry."""
    fake.routes[f"/v2/{repo}/manifests/{tag}"] = (
        200, {"Content-Type": image.manifest_type}, image.manifest_bytes)
    cfg = image.config_bytes
    fake.routes[f"/v2/{repo}/blobs/{sha256(cfg)}"] = (200, {}, cfg)
    for layer in image.layers:
        fake.routes[f"/v2/{repo}/blobs/{layer.digest}"] = (200, {}, layer.blob)


def test_malformed_and_unsupported_manifests(rl, fake_registry, seeded):
    fake_registry.routes["/v2/broken/manifests/latest"] = (
        200, {"Content-Type": DOCKER_MANIFEST}, b'{"schemaVersion": 2, "layers": [')
    fake_registry.routes["/v2/old/manifests/latest"] = (
        200, {"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"},
        b'{"schemaVersion": 1, "name": "old"}')
    fake_registry.routes["/v2/artifact/manifests/latest"] = (
        200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + "a" * 64, "size": 2},
            "layers": [{"mediaType": "application/x-helm-chart", "digest": "sha256:" + "b" * 64,
                        "size": 3}]}).encode())
    assert "malformed manifest JSON" in one_line_error(
        rl("pull", f"{fake_registry.host}/broken"))
    assert "schema 1" in one_line_error(rl("pull", f"{fake_registry.host}/old"))
    assert "unsupported layer media type" in one_line_error(
        rl("pull", f"{fake_registry.host}/artifact"))
    fake_registry.routes["/v2/huge/manifests/latest"] = (
        200, {"Content-Type": DOCKER_MANIFEST}, b"{" + b" " * (5 << 20) + b"}")
    assert "larger than" in one_line_error(rl("pull", f"{fake_registry.host}/huge"))
    assert store_state(rl) == seeded
    # every manifest request asked explicitly for schema 2 / OCI
    for _method, path, headers in fake_registry.requests:
        if "/manifests/" in path:
            accept = headers.get("Accept", "")
            assert DOCKER_MANIFEST in accept and "application/vnd.oci.image.index.v1+json" \
                in accept


def test_manifest_digest_mismatch(rl, fake_registry, seeded):
    image = unique_image()
    serve(fake_registry, "lying", image)
    wrong = "sha256:" + "0" * 64
    status, headers, body = fake_registry.routes["/v2/lying/manifests/latest"]
    fake_registry.routes["/v2/lying/manifests/latest"] = (
        status, {**headers, "Docker-Content-Digest": wrong}, body)
    assert "manifest digest mismatch" in one_line_error(rl("pull", f"{fake_registry.host}/lying"))
    # pinned by digest: the bytes must hash to it
    fake_registry.routes[f"/v2/pinned/manifests/{wrong}"] = (status, headers, body)
    assert "manifest digest mismatch" in one_line_error(
        rl("pull", f"{fake_registry.host}/pinned@{wrong}"))
    assert store_state(rl) == seeded


def test_retries_on_5xx_but_not_on_4xx(rl, fake_registry):
    image = unique_image()
    serve(fake_registry, "flaky", image)
    fake_registry.fail_first["/v2/flaky/manifests/latest"] = 2
    fake_registry.fail_first[f"/v2/flaky/blobs/{image.layers[0].digest}"] = 1
    rl("pull", "-q", f"{fake_registry.host}/flaky", check=True)
    paths = [p for _m, p, _h in fake_registry.requests]
    assert paths.count("/v2/flaky/manifests/latest") == 3
    assert paths.count(f"/v2/flaky/blobs/{image.layers[0].digest}") == 2
    before = len(fake_registry.requests)
    one_line_error(rl("pull", f"{fake_registry.host}/flaky:missing"))
    assert len(fake_registry.requests) - before == 1


def test_hostile_layer_refused_through_pull(rl, registry, seeded):
    from tests.image.tarmaker import RawTar
    from tests.support.images import Image, Layer, _config

    evil = Layer(RawTar().symlink("x", "../../..").file("x/etc/evil", b"pwned").bytes())
    registry.push_image("hostile", "latest", Image([evil], _config()))
    line = one_line_error(rl("pull", registry.ref("hostile")))
    assert "outside the layer" in line
    assert store_state(rl) == seeded


def test_hostile_layer_times_pull_fine_as_the_epoch(rl, registry):
    """PAX mtimes no file can hold (the old code printed an OverflowError traceback)."""
    from tests.image.tarmaker import RawTar
    from tests.support.images import Image, Layer, _config

    tar = (RawTar().dir("t", pax={"mtime": "-1e18"}).file("t/future", b"f", pax={"mtime": "1e19"})
           .file("t/past", b"p", pax={"mtime": "-1e18"}).bytes())
    registry.push_image("hostile-times", "latest", Image([Layer(tar)], _config()))
    r = rl("pull", "-q", registry.ref("hostile-times"))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    layer = rl.data_dir / "layers" / sha256(tar)[7:]
    for name in ("t", "t/future", "t/past"):
        assert os.lstat(layer / name).st_mtime_ns == 0, name


def test_disk_full(rl, registry, tmp_path):
    """ENOSPC: a 600 kB tmpfs as the store, in a user+mount namespace of our own."""
    import shutil
    import subprocess

    from tests.support.users import rl_executable

    if shutil.which("unshare") is None:
        pytest.skip("unshare missing")
    small = tmp_path / "small"
    small.mkdir()
    script = (f'mount -t tmpfs -o size=600k tmpfs "{small}" || exit 99\n'
              f'"{rl_executable()}" pull -q {registry.ref("busybox:latest")}\n'
              'echo "rc=$?"\n'
              f'"{rl_executable()}" images -q; echo "images-done"\n'
              f'ls -A "{small}/rl/tmp" "{small}/rl/layers" 2>/dev/null | grep -v : | '
              'grep . || echo "no-leftovers"\n')
    env = dict(rl.env, XDG_DATA_HOME=str(small))
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                           script], env=env, capture_output=True, text=True, timeout=120)
    if "rc=" not in proc.stdout:
        pytest.fail(f"could not run the ENOSPC scenario: {proc.stdout} {proc.stderr}")
    assert "rc=125" in proc.stdout
    errors = [x for x in proc.stderr.splitlines() if x.startswith("rl: error")]
    assert len(errors) == 1 and "no space left on device" in errors[0], proc.stderr
    assert proc.stdout.split("rc=125")[1].split()[0] == "images-done"
    assert "no-leftovers" in proc.stdout


def test_pull_into_a_store_on_tmpfs(rl, registry):
    """A store on tmpfs (/dev/shm): the kept blobs are written with O_DIRECT where the
    filesystem takes it, else through the cache (store/blobs.BlobWriter); the pull works
    and the blobs kept are the registry's bytes."""
    import shutil
    import tempfile

    image = unique_image(unique_layer(3 << 20), unique_layer(5000))
    registry.push_image("on-tmpfs", "latest", image)
    base = tempfile.mkdtemp(dir="/dev/shm")
    try:
        env = {"XDG_DATA_HOME": base}
        rl("pull", "-q", registry.ref("on-tmpfs"), check=True, env=env)
        assert rl("images", "-q", check=True, env=env).stdout.strip()
        for layer in image.layers:
            kept = Path(base) / "rl" / "blobs" / "sha256" / layer.digest.partition(":")[2]
            assert kept.read_bytes() == blob_file(registry, layer.digest).read_bytes()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_zstd_multiframe_and_uncompressed_layers(rl, registry):
    """OCI layers compressed with zstd (two frames: the reader must read across them) and
    not compressed at all."""
    import zstandard

    from tests.image.tarmaker import RawTar
    from tests.support.images import OCI_CONFIG, OCI_MANIFEST, _config

    zstd_tar = RawTar().dir("z").file("z/big", b"zstd " * 50_000).bytes()
    half = len(zstd_tar) // 2
    cctx = zstandard.ZstdCompressor()
    zstd_blob = cctx.compress(zstd_tar[:half]) + cctx.compress(zstd_tar[half:])
    plain_tar = RawTar().dir("p").file("p/plain", b"plain\n").bytes()
    cfg = _config()
    cfg["rootfs"] = {"type": "layers", "diff_ids": [sha256(zstd_tar), sha256(plain_tar)]}
    cfg_bytes = json.dumps(cfg).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(cfg_bytes), "size": len(cfg_bytes)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
             "digest": sha256(zstd_blob), "size": len(zstd_blob)},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar",
             "digest": sha256(plain_tar), "size": len(plain_tar)}]}).encode()
    with registry.client() as c:
        for blob in (zstd_blob, plain_tar, cfg_bytes):
            registry.push_blob(c, "compressions", sha256(blob), blob)
        registry.push_manifest(c, "compressions", "latest", OCI_MANIFEST, manifest)
    rl("pull", "-q", registry.ref("compressions"), check=True)
    layers = rl.data_dir / "layers"
    assert (layers / sha256(zstd_tar)[7:] / "z/big").read_bytes() == b"zstd " * 50_000
    assert (layers / sha256(plain_tar)[7:] / "p/plain").read_bytes() == b"plain\n"


def test_pull_by_digest(rl, registry, test_images):
    image = test_images["busybox:latest"]
    pinned = f"{registry.host}/busybox@{image.digest}"
    rl("pull", "-q", pinned, check=True)
    row = rl("images", check=True).stdout.splitlines()[1].split()
    assert row[:2] == [f"{registry.host}/busybox", "<none>"]
    info = json.loads(rl("image", "inspect", pinned, check=True).stdout)[0]
    assert info["RepoDigests"] == [pinned] and info["RepoTags"] == []
    # the tag later: same image, now named; by digest it is still found
    rl("pull", "-q", registry.ref("busybox"), check=True)
    assert json.loads(rl("image", "inspect", f"{registry.host}/busybox@{image.digest}",
                         check=True).stdout)[0]["RepoTags"] == [registry.ref("busybox:latest")]
    # removing its last tag removes the image, digest name and all
    out = rl("rmi", registry.ref("busybox"), check=True).stdout
    assert f"Deleted: {sha256(image.config_bytes)}" in out
    assert rl("images", "-q", check=True).stdout == ""


def test_diff_id_mismatch(rl, registry, seeded):
    """A blob that matches its digest but whose tar is not the one the config names."""
    from tests.support.images import Image

    class WrongDiffIds(Image):
        @property
        def config_bytes(self) -> bytes:
            cfg = dict(self.config)
            cfg["rootfs"] = {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}
            return json.dumps(cfg, sort_keys=True).encode()

    good = unique_image()
    registry.push_image("wrong-diffid", "latest", WrongDiffIds(good.layers, good.config))
    line = one_line_error(rl("pull", registry.ref("wrong-diffid")))
    assert "the image config says sha256:111" in line
    assert store_state(rl) == seeded


def test_progress_on_a_terminal_only(rl, registry, test_images):
    import pexpect

    from tests.support.users import rl_executable

    ref = registry.ref("layered:latest")
    child = pexpect.spawn(rl_executable(), ["pull", ref], env=rl.env, encoding="utf-8",
                          timeout=60)
    output = child.read()
    child.close()
    assert child.exitstatus == 0, output
    for layer in test_images["layered:latest"].layers:
        assert f"blob {layer.digest[7:19]}" in output  # one rich bar per layer
    child = pexpect.spawn(rl_executable(), ["pull", "-q", ref], env=rl.env, encoding="utf-8",
                          timeout=60)
    quiet = child.read()
    child.close()
    assert quiet.split() == [sha256(test_images["layered:latest"].config_bytes)[7:]]
    # not a terminal: no progress lines, one summary
    proc = rl("pull", ref, check=True)
    assert "blob " not in proc.stderr and "Pulled " in proc.stderr


def test_connection_cut_mid_blob_is_retried(rl, fake_registry):
    image = unique_image(unique_layer(300_000))
    serve(fake_registry, "cut", image)
    path = f"/v2/cut/blobs/{image.layers[0].digest}"
    fake_registry.cut_first[path] = 2
    rl("pull", "-q", f"{fake_registry.host}/cut", check=True)
    assert [p for _m, p, _h in fake_registry.requests].count(path) == 3
    assert os.listdir(rl.data_dir / "tmp") == []
    fake_registry.cut_first[path] = 5  # more than the retries: a clear error
    rl("rmi", f"{fake_registry.host}/cut", check=True)
    line = one_line_error(rl("pull", f"{fake_registry.host}/cut"))
    assert "connection lost" in line or "truncated" in line


def test_docker_manifest_list(rl, registry):
    """Docker's manifest list (not only the OCI index) is resolved for the platform."""
    from tests.support.images import DOCKER_LIST, Image, Index, _config

    class DockerList(Index):
        @property
        def manifest_type(self) -> str:
            return DOCKER_LIST

        @property
        def manifest_bytes(self) -> bytes:
            doc = json.loads(super().manifest_bytes)
            doc["mediaType"] = DOCKER_LIST
            return json.dumps(doc).encode()

    amd = Image([unique_layer()], _config("amd64"))
    arm = Image([unique_layer()], dict(_config("arm64"), variant="v8"))
    registry.push_image("dockerlist", "latest", DockerList([arm, amd]))
    rl("pull", "-q", registry.ref("dockerlist"), check=True)
    info = json.loads(rl("image", "inspect", registry.ref("dockerlist"), check=True).stdout)[0]
    assert info["Id"] == sha256(amd.config_bytes) and info["Digest"] == amd.digest


def test_pull_as_user_without_subuid_range(rl_nosub, registry):
    """Pulling needs no id range: the plain user writes the layers, owners go to xattrs."""
    rl_nosub("pull", "-q", registry.ref("layered:latest"), check=True)
    out = rl_nosub("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout
    assert out.splitlines() == [registry.ref("layered:latest")]


def test_short_name_tries_each_search_registry(rl, registry, fake_registry):
    write_registries_conf(
        rl, f'unqualified-search-registries = ["{fake_registry.host}", "{registry.host}"]\n')
    proc = rl("pull", "busybox", check=True)
    assert f"Trying to pull {fake_registry.host}/busybox:latest" in proc.stderr
    assert f"Trying to pull {registry.host}/busybox:latest" in proc.stderr
    info = json.loads(rl("image", "inspect", "busybox", check=True).stdout)[0]
    assert info["RepoTags"] == [registry.ref("busybox:latest")]
    line = one_line_error(rl("pull", "nosuchimage"))
    assert "not found in any of the search registries" in line
    assert fake_registry.host in line and registry.host in line

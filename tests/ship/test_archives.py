"""rl save / rl load (docker-archive, oci-archive), with podman on both sides."""

from __future__ import annotations

import json
import tarfile


def _names(tar_path) -> set[str]:
    with tarfile.open(tar_path) as tf:
        return {m.name for m in tf.getmembers()}


def test_save_docker_archive_layout_and_load_back(rl, pulled, tmp_path):
    ref = pulled("layered:latest")
    out = tmp_path / "img.tar"
    rl("save", "-o", str(out), ref, check=True)
    names = _names(out)
    assert {"manifest.json", "repositories"} <= names
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == [ref]
        assert len(manifest[0]["Layers"]) == 3
        assert manifest[0]["Config"] in names
        for layer in manifest[0]["Layers"]:
            assert layer in names
            with tarfile.open(fileobj=tf.extractfile(layer)) as lt:  # uncompressed tars
                lt.getmembers()
    image_id = rl("image", "inspect", ref, check=True)
    rl("rmi", ref, check=True)
    assert "not found in the local store" in rl("image", "inspect", ref).stderr
    proc = rl("load", "-i", str(out), check=True)
    assert f"Loaded image: {ref}" in proc.stdout
    assert json.loads(rl("image", "inspect", ref, check=True).stdout)[0]["Id"] == \
        json.loads(image_id.stdout)[0]["Id"]
    r = rl("run", "--rm", ref, check=True)  # CMD cat /data/keep.txt; whiteouts kept
    assert r.stdout == "keep\n"
    r = rl("run", "--rm", ref, "sh", "-c", "ls /data; ls /olddir; stat -c '%u:%g %a' "
           "/home/user/secret", check=True)
    assert r.stdout.split() == ["keep.txt", "new", "1000:1000", "640"]


def test_oci_archive_round_trip_keeps_digest(rl, pulled, tmp_path):
    ref = pulled("busybox:oci")
    out = tmp_path / "img.oci.tar"
    rl("save", "--format", "oci-archive", "-o", str(out), ref, check=True)
    names = _names(out)
    assert {"oci-layout", "index.json"} <= names
    with tarfile.open(out) as tf:
        index = json.load(tf.extractfile("index.json"))
    entry = index["manifests"][0]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == ref
    before = json.loads(rl("image", "inspect", ref, check=True).stdout)[0]
    assert entry["digest"] == before["Digest"]  # blobs and manifest as pulled
    rl("rmi", ref, check=True)
    rl("load", "-q", "-i", str(out), check=True)
    after = json.loads(rl("image", "inspect", ref, check=True).stdout)[0]
    assert (after["Id"], after["Digest"]) == (before["Id"], before["Digest"])


def test_save_to_stdout_and_load_from_stdin(rl, pulled, tmp_path):
    ref = pulled("busybox:latest")
    proc = rl("save", ref, text=False, check=True)
    assert len(proc.stdout) > 100_000
    rl("rmi", ref, check=True)
    proc = rl("load", "-q", input=proc.stdout, text=False, check=True)
    assert proc.stdout.decode().strip().startswith("sha256:")
    assert rl("run", "--rm", ref, "echo", "hi", check=True).stdout == "hi\n"


def test_load_rejects_garbage_and_changes_nothing(rl, tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar at all" * 100)
    proc = rl("load", "-i", str(bad))
    assert proc.returncode == 125
    assert "not an image archive" in proc.stderr
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w") as tf:
        info = tarfile.TarInfo("hello")
        tf.addfile(info)
    proc = rl("load", "-i", str(empty))
    assert proc.returncode == 125 and "no manifest.json" in proc.stderr
    assert rl("images", "-q", check=True).stdout.strip() == ""
    proc = rl("save", "-o", str(tmp_path / "x.tar"), "nosuch:image")
    assert proc.returncode == 125 and not (tmp_path / "x.tar").exists()


def test_rl_save_loads_in_podman_and_podman_save_loads_in_rl(rl, pulled, podman, tmp_path):
    ref = pulled("layered:latest")
    ours = tmp_path / "ours.tar"
    rl("save", "-o", str(ours), ref, check=True)
    proc = podman("load", "-i", str(ours))
    assert ref in proc.stdout
    r = podman("run", "--rm", "--network", "none", ref)
    assert r.stdout == "keep\n"
    # podman's docker-archive of an image it holds, loaded by rl and run
    podman("tag", ref, "localhost/frompodman:v1")
    theirs = tmp_path / "theirs.tar"
    podman("save", "-o", str(theirs), "localhost/frompodman:v1")
    proc = rl("load", "-i", str(theirs), check=True)
    assert "localhost/frompodman:v1" in proc.stdout
    r = rl("run", "--rm", "frompodman:v1", "sh", "-c", "cat /data/keep.txt; ls /olddir",
           check=True)
    assert r.stdout.split() == ["keep", "new"]


def test_save_several_images_gzipped_archive_and_missing_blobs(rl, pulled, tmp_path):
    import gzip

    from tests.support import users

    one, two = pulled("busybox:latest"), pulled("layered:latest")
    # a layer whose compressed blob the store lacks (as when it was shared by diff_id
    # from another image) is recompressed from its unpacked directory
    info = json.loads(rl("image", "inspect", one, check=True).stdout)[0]
    (rl.data_dir / "blobs" / "sha256" / info["Layers"][0]["Digest"].partition(":")[2]
     ).unlink()
    out = tmp_path / "two.tar"
    rl("save", "-o", str(out), one, two, check=True)
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
    assert [m["RepoTags"] for m in manifest] == [[one], [two]]
    assert manifest[0]["Layers"][0] == manifest[1]["Layers"][0]  # shared base, stored once
    gz = tmp_path / "two.tar.gz"
    gz.write_bytes(gzip.compress(out.read_bytes(), compresslevel=1))
    fresh = users.make_runner(tmp_path / "fresh")
    fresh.env["RL_ROOTFS_BACKEND"] = rl.env["RL_ROOTFS_BACKEND"]
    proc = fresh("load", "-i", str(gz), check=True)
    assert proc.stdout.splitlines() == [f"Loaded image: {one}", f"Loaded image: {two}"]
    try:
        assert fresh("run", "--rm", two, check=True).stdout == "keep\n"
        assert fresh("run", "--rm", one, "echo", "ok", check=True).stdout == "ok\n"
    finally:
        from tests.support.users import stop_fuse_zygotes

        stop_fuse_zygotes(fresh.root / "run" / "rl")

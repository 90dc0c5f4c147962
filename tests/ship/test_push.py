"""rl push to the fixture registry, rl history, rl import."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile

from tests.support import users


def _skopeo(ref: str) -> dict:
    users.need(shutil.which("skopeo") is not None, "skopeo is not installed")
    proc = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                           f"docker://{ref}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    raw = json.loads(proc.stdout)
    proc = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return {"raw": raw, "info": json.loads(proc.stdout)}


def test_push_keeps_digest_skips_existing_blobs_and_pulls_back(rl, pulled, registry,
                                                                 tmp_path):
    src = pulled("layered:latest")
    before = json.loads(rl("image", "inspect", src, check=True).stdout)[0]
    dest = registry.ref("pushed/layered:v1")
    proc = rl("push", src, dest, check=True)
    # every blob of layered is in the registry's `layered` repository: mounted from there,
    # none uploaded; the manifest is the one pulled
    assert "0 blob(s) uploaded, 3 mounted from another repository" in proc.stderr
    assert proc.stdout.strip() == before["Digest"]
    seen = _skopeo(dest)
    assert seen["raw"]["mediaType"] == before["ManifestMediaType"]
    assert seen["info"]["Digest"] == before["Digest"]
    assert len(seen["info"]["Layers"]) == 3
    # a second push sends nothing: HEAD finds every blob
    proc = rl("push", src, dest, check=True)
    assert "0 blob(s) uploaded, 0 mounted from another repository, 3 already present" \
        in proc.stderr
    # pulled back by a fresh store and run
    other = users.make_runner(tmp_path / "other")
    other.env["RL_ROOTFS_BACKEND"] = rl.env["RL_ROOTFS_BACKEND"]
    other("pull", "-q", dest, check=True)
    assert other("run", "--rm", dest, check=True).stdout == "keep\n"
    other_ids = other("ps", "-aq", check=True).stdout.split()
    assert other_ids == []


def test_push_format_conversion(rl, pulled, registry):
    src = pulled("busybox:latest")  # Docker v2s2
    dest = registry.ref("pushed/busybox:oci")
    rl("push", "--format", "oci", src, dest, check=True)
    seen = _skopeo(dest)
    assert seen["raw"]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert seen["raw"]["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert seen["raw"]["layers"][0]["mediaType"] == \
        "application/vnd.oci.image.layer.v1.tar+gzip"
    rl("rmi", src, check=True)
    rl("pull", "-q", dest, check=True)
    rl("push", "--format", "v2s2", dest, registry.ref("pushed/busybox:v2"), check=True)
    seen = _skopeo(registry.ref("pushed/busybox:v2"))
    assert seen["raw"]["mediaType"] == \
        "application/vnd.docker.distribution.manifest.v2+json"


def test_push_errors_change_nothing(rl, pulled, registry):
    proc = rl("push", "nosuch:image", registry.ref("x/y:z"))
    assert proc.returncode == 125 and "not found" in proc.stderr
    src = pulled("busybox:latest")
    proc = rl("push", src, "127.0.0.1:1/x:y")
    assert proc.returncode == 125 and "127.0.0.1:1" in proc.stderr


def _rootfs_tar(path, gz=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        busybox = tarfile.TarInfo("bin/busybox")
        data = open("/bin/busybox", "rb").read()
        busybox.size, busybox.mode = len(data), 0o755
        d = tarfile.TarInfo("bin")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(d)
        tf.addfile(busybox, io.BytesIO(data))
        sh = tarfile.TarInfo("bin/sh")
        sh.type, sh.linkname = tarfile.SYMTYPE, "busybox"
        tf.addfile(sh)
        f = tarfile.TarInfo("owned")
        f.size, f.uid, f.gid, f.mode = 3, 1234, 99, 0o600
        tf.addfile(f, io.BytesIO(b"me\n"))
    data = buf.getvalue()
    if gz:
        import gzip

        data = gzip.compress(data)
    path.write_bytes(data)


def test_import_and_history(rl, tmp_path):
    tar = tmp_path / "rootfs.tar.gz"
    _rootfs_tar(tar, gz=True)
    proc = rl("import", "-m", "from a tarball", "-c", 'CMD ["/bin/sh", "-c", "cat /owned"]',
              str(tar), "imported:1", check=True)
    image_id = proc.stdout.strip()
    assert len(image_id) == 64
    assert rl("run", "--rm", "imported:1", check=True).stdout == "me\n"
    r = rl("run", "--rm", "imported:1", "/bin/busybox", "stat", "-c", "%u:%g %a", "/owned",
           check=True)
    assert r.stdout.split() == ["1234:99", "600"]
    hist = rl("history", "imported:1", check=True).stdout.splitlines()
    assert hist[0].split()[:2] == ["IMAGE", "CREATED"]
    assert hist[1].startswith(image_id[:12]) and "from a tarball" in hist[1]
    assert len(hist) == 2
    proc = rl("history", "--format", "json", "--no-human", "localhost/imported:1", check=True)
    entries = [json.loads(x) for x in proc.stdout.splitlines()]
    assert entries[0]["CreatedBy"] == "rl import" and int(entries[0]["Size"]) > 0
    # stdin, no name
    proc = rl("import", "-", input=tar.read_bytes(), text=False, check=True)
    assert proc.stdout.decode().strip() == image_id or len(proc.stdout.strip()) == 64
    bad = tmp_path / "bad"
    bad.write_bytes(b"nope" * 1000)
    proc = rl("import", str(bad), "bad:1")
    assert proc.returncode == 125 and "not a tar" in proc.stderr
    assert "not found in the local store" in rl("image", "inspect", "bad:1").stderr


def test_history_of_pulled_image(rl, pulled):
    ref = pulled("layered:latest")
    lines = rl("history", ref, check=True).stdout.splitlines()
    assert len(lines) == 4
    assert [ln.split()[0] for ln in lines[2:]] == ["<missing>", "<missing>"]
    assert "layer 2" in lines[1] and "layer 0" in lines[3]


def test_rl_build_push_runs_in_podman_and_podman_push_runs_in_rl(rl, pulled, registry,
                                                                  podman, tmp_path):
    base = pulled("busybox:latest")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "msg").write_text("from rl\n")
    (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY msg /msg\n"
                                    "RUN echo built >> /msg\nCMD [\"cat\", \"/msg\"]\n")
    rl("build", "-q", "-t", "rlbuilt:1", str(ctx), check=True)
    dest = registry.ref("interop/rlbuilt:1")
    rl("push", "rlbuilt:1", dest, check=True)
    podman("pull", "--tls-verify=false", dest)
    assert podman("run", "--rm", "--network", "none", dest).stdout == "from rl\nbuilt\n"
    # podman's image (imported from a rootfs, committed by podman) through the registry
    tar = tmp_path / "rootfs.tar"
    _rootfs_tar(tar)
    podman("import", "--change", 'CMD ["/bin/sh", "-c", "cat /owned"]', str(tar),
           "localhost/pm:1")
    theirs = registry.ref("interop/pm:1")
    podman("push", "--tls-verify=false", "localhost/pm:1", theirs)
    rl("pull", "-q", theirs, check=True)
    assert rl("run", "--rm", theirs, check=True).stdout == "me\n"


def test_push_through_bearer_token_auth(rl, token_registry, tmp_path):
    src = token_registry.ref("busybox:latest")
    rl("pull", "-q", src, check=True)
    dest = token_registry.ref("tokenpush/busybox:t1")
    proc = rl("push", src, dest, check=True)
    assert proc.stdout.strip().startswith("sha256:")
    other = users.make_runner(tmp_path / "other")
    other("pull", "-q", dest, check=True)
    assert other("images", "-q", check=True).stdout.strip()


def test_chunked_upload(rl, registry, tmp_path):
    tar = tmp_path / "rootfs.tar"
    _rootfs_tar(tar)  # a layer no repository of the registry holds
    rl("import", str(tar), "tochunk:1", check=True)
    dest = registry.ref("chunked/busybox:1")
    proc = rl("push", "tochunk:1", dest, env={"RL_PUSH_CHUNK_SIZE": "100000"}, check=True)
    assert "1 blob(s) uploaded, 0 mounted" in proc.stderr
    seen = _skopeo(dest)
    assert seen["info"]["Digest"] == proc.stdout.strip()
    assert seen["raw"]["layers"][0]["size"] > 300_000  # several chunks

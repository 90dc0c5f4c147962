"""Images made by the tests themselves, from the host's busybox-static, never downloaded.

`build_*` functions return `Image` objects: layer blobs (gzip), config and manifest bytes,
ready for `registry.push_image`. Everything is deterministic (fixed mtimes, gzip mtime 0),
so the same image always has the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

BUSYBOX = "/bin/busybox"
MTIME = 1_700_000_000

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "user:x:1000:1000:user:/home/user:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nuser:x:1000:\nnobody:x:65534:\n"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Layer:
    tar: bytes  # uncompressed

    @property
    def diff_id(self) -> str:
        return sha256(self.tar)

    @property
    def blob(self) -> bytes:
        if not hasattr(self, "_gz"):
            self._gz = gzip.compress(self.tar, compresslevel=6, mtime=0)
        return self._gz

    @property
    def digest(self) -> str:
        return sha256(self.blob)


@dataclass
class Image:
    layers: list[Layer]
    config: dict
    oci: bool = False
    annotations: dict = field(default_factory=dict)

    @property
    def config_bytes(self) -> bytes:
        cfg = dict(self.config)
        cfg["rootfs"] = {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]}
        return json.dumps(cfg, sort_keys=True).encode()

    @property
    def manifest_type(self) -> str:
        return OCI_MANIFEST if self.oci else DOCKER_MANIFEST

    @property
    def manifest_bytes(self) -> bytes:
        layer_type = OCI_LAYER_GZIP if self.oci else DOCKER_LAYER_GZIP
        cfg = self.config_bytes
        manifest = {
            "schemaVersion": 2,
            "mediaType": self.manifest_type,
            "config": {"mediaType": OCI_CONFIG if self.oci else DOCKER_CONFIG,
                       "size": len(cfg), "digest": sha256(cfg)},
            "layers": [{"mediaType": layer_type, "size": len(layer.blob), "digest": layer.digest}
                       for layer in self.layers],
        }
        return json.dumps(manifest, indent=3).encode()

    @property
    def digest(self) -> str:
        return sha256(self.manifest_bytes)

    def as_oci(self) -> Image:
        return Image(self.layers, self.config, oci=True)


@dataclass
class Index:
    """An OCI image index: several images, one per platform."""

    images: list[Image]

    @property
    def manifest_type(self) -> str:
        return OCI_INDEX

    @property
    def manifest_bytes(self) -> bytes:
        entries = []
        for img in self.images:
            platform = {"os": img.config["os"], "architecture": img.config["architecture"]}
            if img.config.get("variant"):
                platform["variant"] = img.config["variant"]
            entries.append({"mediaType": img.manifest_type, "size": len(img.manifest_bytes),
                            "digest": img.digest, "platform": platform})
        return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                           "manifests": entries}, indent=3).encode()

    @property
    def digest(self) -> str:
        return sha256(self.manifest_bytes)


class TarBuilder:
    """Writes tar entries with exact owners, modes and types."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name: str, kind: bytes, mode: int, uid: int, gid: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = MTIME
        return info

    def dir(self, name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> TarBuilder:
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode, uid, gid))
        return self

    def file(self, name: str, data: bytes = b"", mode: int = 0o644, uid: int = 0,
             gid: int = 0) -> TarBuilder:
        info = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))
        return self

    def hardlink(self, name: str, target: str) -> TarBuilder:
        info = self._info(name, tarfile.LNKTYPE, 0o755, 0, 0)
        info.linkname = target
        self.tar.addfile(info)
        return self

    def symlink(self, name: str, target: str) -> TarBuilder:
        info = self._info(name, tarfile.SYMTYPE, 0o777, 0, 0)
        info.linkname = target
        self.tar.addfile(info)
        return self

    def layer(self) -> Layer:
        self.tar.close()
        return Layer(self.buf.getvalue())


def _config(arch: str = "amd64", cmd: list[str] | None = None, **extra) -> dict:
    cfg = {
        "architecture": arch,
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd or ["sh"],
        },
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "rl tests"}],
    }
    cfg["config"].update(extra)
    return cfg


def busybox_layer() -> Layer:
    """/bin/busybox and every applet as a hard link to it, /etc/passwd and group, /tmp."""
    with open(BUSYBOX, "rb") as f:
        binary = f.read()
    applets = subprocess.run([BUSYBOX, "--list-full"], check=True, capture_output=True,
                             text=True).stdout.split()
    t = TarBuilder()
    dirs = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "var"}
    dirs |= {os.path.dirname(a) for a in applets}
    for d in sorted(dirs):
        t.dir(d, 0o700 if d == "root" else 0o755)
    t.dir("tmp", 0o1777)
    t.dir("home/user", 0o755, 1000, 1000)
    t.file("bin/busybox", binary, 0o755)
    for applet in sorted(set(applets)):
        if applet != "bin/busybox":
            t.hardlink(applet, "bin/busybox")
    t.file("etc/passwd", PASSWD.encode())
    t.file("etc/group", GROUP.encode())
    return t.layer()


def build_busybox() -> Image:
    return Image([busybox_layer()], _config())


def build_layered() -> Image:
    """busybox + two layers: a whiteout, an opaque directory, a uid-1000 0640 file."""
    base = busybox_layer()
    second = (TarBuilder()
              .dir("data").file("data/keep.txt", b"keep\n").file("data/gone.txt", b"gone\n")
              .dir("olddir").file("olddir/a", b"a\n").file("olddir/b", b"b\n")
              .layer())
    third = (TarBuilder()
             .dir("data").file("data/.wh.gone.txt")
             .dir("olddir").file("olddir/.wh..wh..opq").file("olddir/new", b"new\n")
             .dir("home/user", 0o755, 1000, 1000)
             .file("home/user/secret", b"secret\n", 0o640, 1000, 1000)
             .layer())
    cfg = _config(cmd=["cat", "/data/keep.txt"], WorkingDir="/data")
    cfg["history"] = [{"created_by": f"layer {i}"} for i in range(3)]
    return Image([base, second, third], cfg)


def build_multiarch() -> Index:
    """An OCI index with linux/amd64 and linux/arm64/v8; each adds /etc/platform."""
    base = busybox_layer()
    images = []
    for arch, variant in (("amd64", None), ("arm64", "v8")):
        marker = TarBuilder().dir("etc").file("etc/platform", f"{arch}\n".encode()).layer()
        cfg = _config(arch, cmd=["cat", "/etc/platform"])
        if variant:
            cfg["variant"] = variant
        images.append(Image([base, marker], cfg, oci=True))
    return Index(images)


def push_static_probe(registry, tmp_dir, source, name: str, cmd: list[str]) -> str:
    """Build the C program `source` with gcc -static, push busybox + it (as
    /usr/local/bin/NAME, the image's command `cmd`) to `registry` as NAME:latest; returns
    NAME. For what busybox cannot do (a UDP server, raw syscalls)."""
    import shutil

    from tests.support import users

    users.need(shutil.which("gcc") is not None, "gcc is not installed (contrib/prepare-host.sh)")
    out = Path(tmp_dir) / name
    res = subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(source)],
                         capture_output=True, text=True)
    users.need(res.returncode == 0, f"gcc -static failed (libc6-dev?): {res.stderr.strip()}")
    layer = (TarBuilder().dir("usr").dir("usr/local").dir("usr/local/bin")
             .file(f"usr/local/bin/{name}", out.read_bytes(), 0o755).layer())
    registry.push_image(name, "latest", Image([busybox_layer(), layer], _config(cmd=cmd)))
    return name

"""Manifests, indexes and configs of Docker schema 2 and OCI, and platform matching.

Only what a pull needs is modelled: descriptors (media type, digest, size), the manifest's
config and layers, an index's per-platform entries. Every parse checks the shape and
raises RlError naming what is wrong, so a malformed document never reaches the store.
"""

from __future__ import annotations

import hashlib
import json
import platform as _platform
from dataclasses import dataclass, field

from rootless.errors import RlError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
# What we ask registries for: without an explicit Accept they answer with schema 1.
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

# layer media type -> compression ("gzip", "zstd", None)
LAYER_TYPES = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar": None,
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": None,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
}
CONFIG_TYPES = (DOCKER_CONFIG, OCI_CONFIG)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: str, what: str) -> str:
    algo, _, hex_part = digest.partition(":")
    if algo != "sha256" or len(hex_part) != 64 or any(c not in "0123456789abcdef"
                                                      for c in hex_part):
        raise RlError(f"{what}: unsupported or malformed digest {digest!r}",
                      "only sha256 digests are supported")
    return digest


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict | None = None
    urls: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: object, what: str) -> Descriptor:
        if not isinstance(raw, dict):
            raise RlError(f"malformed manifest: {what} is not an object")
        media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
        if not isinstance(digest, str) or not isinstance(size, int) or size < 0:
            raise RlError(f"malformed manifest: {what} lacks a digest or size")
        if media_type is not None and not isinstance(media_type, str):
            raise RlError(f"malformed manifest: {what} has a bad mediaType")
        check_digest(digest, f"malformed manifest: {what}")
        plat = raw.get("platform")
        return cls(media_type or "", digest, size, plat if isinstance(plat, dict) else None)

    def to_json(self) -> dict:
        out = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        return out


@dataclass
class Manifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]
    raw: bytes = b""

    def compression(self, layer: Descriptor) -> str | None:
        return LAYER_TYPES[layer.media_type]


@dataclass
class Index:
    media_type: str
    manifests: list[Descriptor] = field(default_factory=list)


def _load_json(data: bytes, what: str) -> dict:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RlError(f"malformed {what} JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RlError(f"malformed {what}: not a JSON object")
    return doc


def sniff_media_type(data: bytes, header_type: str | None) -> str:
    """The manifest's media type: its own `mediaType` field, else the Content-Type."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("mediaType"), str):
        return doc["mediaType"]
    if isinstance(doc, dict) and doc.get("schemaVersion") == 2 and header_type is None:
        return OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if isinstance(doc, dict) and doc.get("schemaVersion") == 1:
        return DOCKER_SCHEMA1[0]
    return (header_type or "").split(";")[0].strip()


def parse(data: bytes, media_type: str) -> Manifest | Index:
    if media_type in DOCKER_SCHEMA1:
        raise RlError("unsupported manifest type: Docker schema 1 (deprecated)",
                      "push the image again with a current Docker or podman")
    if media_type not in MANIFEST_TYPES + INDEX_TYPES:
        raise RlError(f"unsupported manifest media type {media_type!r}")
    doc = _load_json(data, "manifest")
    if doc.get("schemaVersion") != 2:
        raise RlError(f"malformed manifest: schemaVersion {doc.get('schemaVersion')!r}, want 2")
    if media_type in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise RlError("malformed manifest list: no 'manifests' array")
        return Index(media_type, [Descriptor.parse(e, f"manifests[{i}]")
                                  for i, e in enumerate(entries)])
    config = Descriptor.parse(doc.get("config"), "config")
    if config.media_type and config.media_type not in CONFIG_TYPES:
        raise RlError(f"unsupported config media type {config.media_type!r}",
                      "this is not a container image (an artifact?)")
    layers_raw = doc.get("layers")
    if not isinstance(layers_raw, list):
        raise RlError("malformed manifest: no 'layers' array")
    layers = [Descriptor.parse(x, f"layers[{i}]") for i, x in enumerate(layers_raw)]
    for layer in layers:
        if layer.media_type not in LAYER_TYPES:
            raise RlError(f"unsupported layer media type {layer.media_type!r}")
    return Manifest(media_type, config, layers, data)


def parse_config(data: bytes, n_layers: int) -> dict:
    doc = _load_json(data, "image config")
    rootfs = doc.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise RlError("malformed image config: no rootfs.diff_ids")
    if len(diff_ids) != n_layers:
        raise RlError(f"malformed image: manifest has {n_layers} layers, "
                      f"config lists {len(diff_ids)} diff_ids")
    for d in diff_ids:
        check_digest(d, "malformed image config diff_id")
    return doc


# -- platforms --

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
         "armv7l": "arm", "armv6l": "arm", "i386": "386", "i686": "386", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}


def host_platform() -> tuple[str, str, str | None]:
    machine = _platform.machine()
    arch = _ARCH.get(machine, machine)
    variant = {"armv7l": "v7", "armv6l": "v6", "aarch64": "v8", "arm64": "v8"}.get(machine)
    return "linux", arch, variant


def parse_platform(text: str | None) -> tuple[str, str, str | None]:
    if not text:
        return host_platform()
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise RlError(f"invalid platform {text!r}", "use os/arch[/variant], e.g. linux/arm64")
    return parts[0], _ARCH.get(parts[1], parts[1]), parts[2] if len(parts) == 3 else None


def format_platform(p: dict) -> str:
    text = f"{p.get('os', '?')}/{p.get('architecture', '?')}"
    return text + (f"/{p['variant']}" if p.get("variant") else "")


def _default_variant(arch: str) -> str | None:
    return {"arm64": "v8"}.get(arch)


def choose(index: Index, wanted: tuple[str, str, str | None]) -> Descriptor:
    """The index entry for platform `wanted`; RlError listing the offered ones otherwise."""
    os_, arch, variant = wanted
    candidates = []
    for entry in index.manifests:
        p = entry.platform or {}
        if p.get("os") != os_ or _ARCH.get(p.get("architecture", ""), p.get("architecture")) \
                != arch:
            continue
        have = p.get("variant") or _default_variant(arch)
        if variant and have and have != variant and not (variant == _default_variant(arch)
                                                          and not p.get("variant")):
            continue
        if entry.media_type and entry.media_type not in MANIFEST_TYPES:
            continue
        candidates.append(entry)
    if not candidates:
        offered = sorted({format_platform(e.platform) for e in index.manifests if e.platform
                          and e.platform.get("os") != "unknown"})
        want = f"{os_}/{arch}" + (f"/{variant}" if variant else "")
        raise RlError(f"no image for platform {want} in the manifest list",
                      f"offered: {', '.join(offered) or 'none'}; choose one with --platform")
    # Prefer an exact variant match.
    for entry in candidates:
        if (entry.platform or {}).get("variant") == variant:
            return entry
    return candidates[0]

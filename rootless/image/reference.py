"""Image references, parsed and normalised the way Docker does.

`parse("python")` gives `docker.io/library/python:latest`; `host:5000/a/b@sha256:...` keeps its
registry, path and digest; `name:tag@digest` keeps both (the digest is what is pulled).
A name without a registry part is a *short name*: `is_short` is set, and the caller may
resolve it through registries.conf (`unqualified-search-registries`) with `with_domain()`.
The grammar is the one of github.com/distribution/reference, written out here because no
maintained Python package implements it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from rootless.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = ("index.docker.io", "registry-1.docker.io")
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?\Z|\[[0-9a-fA-F:.]+\](?::[0-9]+)?\Z")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}\Z")
_SHA256_HEX = re.compile(r"[a-f0-9]{64}\Z")
_NAME_MAX = 255


@dataclass(frozen=True)
class Reference:
    """A normalised reference: `domain/path[:tag][@digest]`."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None
    is_short: bool = False  # the user gave no registry part

    @property
    def name(self) -> str:
        """The repository with its registry, e.g. `docker.io/library/python`."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def tagged(self) -> str | None:
        """`name:tag`, the form stored as an image name, or None when there is no tag."""
        return f"{self.name}:{self.tag}" if self.tag else None

    @property
    def pinned(self) -> str | None:
        return f"{self.name}@{self.digest}" if self.digest else None

    def with_domain(self, domain: str) -> Reference:
        """This short name resolved against `domain` (docker.io adds `library/`)."""
        path = self.short_path
        if domain == DEFAULT_DOMAIN and "/" not in path:
            path = f"{OFFICIAL_NAMESPACE}/{path}"
        return replace(self, domain=domain, path=path, is_short=False)

    @property
    def short_path(self) -> str:
        """The path as the user gave it (without docker.io's implicit `library/`)."""
        if self.is_short and self.path.startswith(OFFICIAL_NAMESPACE + "/"):
            return self.path[len(OFFICIAL_NAMESPACE) + 1:]
        return self.path

    def familiar(self) -> str:
        """Docker's short display form: `python:3.11` for `docker.io/library/python:3.11`."""
        name = self.name
        if self.domain == DEFAULT_DOMAIN:
            name = self.path
            if name.startswith(OFFICIAL_NAMESPACE + "/"):
                name = name[len(OFFICIAL_NAMESPACE) + 1:]
        return name


def _bad(text: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid reference {text!r}: {why}",
                           "use [registry/]name[:tag][@sha256:digest]")


def is_image_id(text: str) -> bool:
    """A full or abbreviated (>= 3 hex digits) image id, with or without `sha256:`."""
    hex_part = text[len("sha256:"):] if text.startswith("sha256:") else text
    return 3 <= len(hex_part) <= 64 and all(c in "0123456789abcdef" for c in hex_part)


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise `text`; raises InvalidArgument with a one-line reason."""
    if not text or text != text.strip():
        raise _bad(text, "empty or surrounded by spaces")
    if len(text) > 4096:
        raise _bad(text[:40] + "...", "too long")
    if "://" in text:
        raise _bad(text, "a reference has no scheme (drop the 'docker://' or 'https://')")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise _bad(text, f"malformed digest {digest!r}")
        algo, _, hex_part = digest.partition(":")
        if algo != "sha256":
            raise _bad(text, f"unsupported digest algorithm {algo!r} (only sha256)")
        if not _SHA256_HEX.match(hex_part):
            raise _bad(text, "a sha256 digest has 64 lowercase hex digits")
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise _bad(text, f"malformed tag {tag!r}")
    if not rest:
        raise _bad(text, "no repository name")
    domain = None
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()
                or first.startswith("[")):
        if not _DOMAIN.match(first):
            raise _bad(text, f"malformed registry {first!r}")
        domain, path = first, remainder
    else:
        path = rest
    if len(path) > _NAME_MAX:
        raise _bad(text, "repository name longer than 255 characters")
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            if component != component.lower() and _COMPONENT.match(component.lower()):
                raise _bad(text, "repository name must be lowercase")
            raise _bad(text, f"malformed repository name component {component!r}")
    if domain in LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    if domain is None:
        ref = Reference(DEFAULT_DOMAIN, path, tag, digest, is_short=True)
        if "/" not in path:
            ref = replace(ref, path=f"{OFFICIAL_NAMESPACE}/{path}")
        return ref
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    return Reference(domain, path, tag, digest)


def normalize(text: str) -> str:
    """The fully qualified string form, e.g. `docker.io/library/python:latest`."""
    return str(parse(text))

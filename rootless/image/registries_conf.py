"""registries.conf: where short names are searched and where a registry really lives.

The format is version 2 of containers-registries.conf(5) (TOML), the file podman reads:

    unqualified-search-registries = ["docker.io", "quay.io"]

    [[registry]]
    prefix = "docker.io/library"       # which references this entry applies to
    location = "127.0.0.1:5000"        # where they are fetched from instead
    insecure = true                    # plain http / unverified TLS allowed
    blocked = false
      [[registry.mirror]]
      location = "mirror.example:5000"
      insecure = true

rl adds one key of its own to a [[registry]] entry, `auth-realms = ["https://auth.example"]`:
the token services (scheme://host[:port]) other than the registry's own host that may
receive your credentials for it (see rootless/image/registry.py; Docker Hub's
https://auth.docker.io is known without it).

The older V1 format (`[registries.search] registries = [...]`, likewise `insecure` and
`block`) is read too. Files are read in order, each one overriding the one before: /etc/containers/registries.conf,
then ~/.config/rl/registries.conf, then $RL_REGISTRIES_CONF. A later file replaces the search
list when it sets one, and replaces a [[registry]] entry with the same prefix.

A prefix matches a reference whose name equals it or continues it with `/`, `:` or `@`;
`*.example.com` matches any subdomain. The longest matching prefix wins. Loopback hosts
(localhost, 127.0.0.0/8, ::1) are insecure by default, as in podman and Docker.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from rootless.errors import RlError
from rootless.image.reference import DEFAULT_DOMAIN, Reference
from rootless.store import paths

DOCKER_HUB_ENDPOINT = "registry-1.docker.io"  # docker.io's API lives here
SYSTEM_FILE = Path("/etc/containers/registries.conf")


@dataclass(frozen=True)
class Endpoint:
    """One place to fetch from: `host[:port][/path-prefix]`, and whether http is allowed."""

    location: str
    insecure: bool = False

    @property
    def host(self) -> str:
        return self.location.split("/", 1)[0]


@dataclass
class RegistryEntry:
    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: list[Endpoint] = field(default_factory=list)
    mirror_by_digest_only: bool = False
    auth_realms: list[str] = field(default_factory=list)

    def matches(self, name: str) -> int:
        """Length of the match of this prefix against `name` (0: no match)."""
        prefix = self.prefix
        if prefix.startswith("*."):
            host = name.split("/", 1)[0]
            return len(prefix) if host.endswith(prefix[1:]) else 0
        if name == prefix:
            return len(prefix)
        if name.startswith(prefix) and name[len(prefix)] in "/:@":
            return len(prefix)
        return 0


@dataclass
class Source:
    """A concrete place to fetch `ref` from: the endpoint, and the repository path there."""

    endpoint: Endpoint
    repository: str  # path on that registry, e.g. "library/busybox"
    is_mirror: bool = False


@dataclass
class RegistriesConf:
    search: list[str] = field(default_factory=list)
    registries: list[RegistryEntry] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def search_registries(self) -> list[str]:
        """Where a short name is looked for; docker.io when nothing is configured (Docker's
        behaviour, which is what people type short names for)."""
        return self.search or [DEFAULT_DOMAIN]

    def entry_for(self, name: str) -> RegistryEntry | None:
        best, best_len = None, 0
        for entry in self.registries:
            n = entry.matches(name)
            if n > best_len:
                best, best_len = entry, n
        return best

    def sources(self, ref: Reference) -> list[Source]:
        """Where to fetch `ref` from, in order: mirrors first, then the primary location."""
        name = ref.name
        entry = self.entry_for(name)
        if entry is None:
            host = DOCKER_HUB_ENDPOINT if ref.domain == DEFAULT_DOMAIN else ref.domain
            return [Source(Endpoint(host, is_loopback(host)), ref.path)]
        if entry.blocked:
            raise RlError(f"registry for {name} is blocked in registries.conf",
                          f"see {', '.join(str(f) for f in self.files) or 'registries.conf'}")
        rest = name[len(entry.prefix):] if not entry.prefix.startswith("*.") else \
            name[len(name.split("/", 1)[0]):]
        result = []
        if not entry.mirror_by_digest_only or ref.digest:
            for mirror in entry.mirrors:
                result.append(_source(mirror.location + rest, mirror.insecure, True))
        location = entry.location if not entry.prefix.startswith("*.") else name.split("/", 1)[0]
        result.append(_source(location + rest, entry.insecure, False))
        return result


def _source(full: str, insecure: bool, is_mirror: bool) -> Source:
    host, _, repo = full.partition("/")
    return Source(Endpoint(host, insecure or is_loopback(host)), repo, is_mirror)


# Token services that are not on their registry's host but are known to be its own.
KNOWN_REALMS = {DOCKER_HUB_ENDPOINT: ("https://auth.docker.io",)}


def auth_realms(host: str, conf: RegistriesConf | None = None) -> set[str]:
    """The token realm origins (scheme://host[:port]) besides `host` itself that may get
    the credentials of registry `host`: KNOWN_REALMS, and the auth-realms of every
    [[registry]] entry whose location or mirror is that host."""
    conf = conf if conf is not None else load()
    allowed = set(KNOWN_REALMS.get(host, ()))
    for entry in conf.registries:
        hosts = {entry.location.split("/", 1)[0]} | {m.host for m in entry.mirrors}
        if host in hosts:
            allowed.update(entry.auth_realms)
    return allowed


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1, with or without a port."""
    name = host
    if name.startswith("["):
        name = name[1:name.find("]")]
    elif name.count(":") == 1:
        name = name.split(":")[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def config_files() -> list[Path]:
    files = [SYSTEM_FILE, paths.config_dir() / "registries.conf"]
    env = os.environ.get("RL_REGISTRIES_CONF")
    if env:
        files.append(Path(env))
    return files


def _parse_entry(raw: dict, where: Path) -> RegistryEntry:
    location = raw.get("location", "")
    prefix = raw.get("prefix") or location
    if not prefix:
        raise RlError(f"{where}: a [[registry]] entry needs a prefix or a location",
                      "add prefix = \"host/namespace\"")
    if not location and not prefix.startswith("*."):
        location = prefix
    mirrors = [Endpoint(m["location"].rstrip("/"), bool(m.get("insecure", False)))
               for m in raw.get("mirror", []) if isinstance(m, dict) and m.get("location")]
    realms = raw.get("auth-realms", [])
    if not isinstance(realms, list) or not all(isinstance(r, str) for r in realms):
        raise RlError(f"{where}: auth-realms of [[registry]] {prefix} must be a list of "
                      "strings", 'write auth-realms = ["https://auth.example.com"]')
    return RegistryEntry(prefix.rstrip("/"), location.rstrip("/"),
                         bool(raw.get("insecure", False)), bool(raw.get("blocked", False)),
                         mirrors, bool(raw.get("mirror-by-digest-only", False)),
                         [r.rstrip("/") for r in realms])


def load(files: list[Path] | None = None) -> RegistriesConf:
    """Read and merge the files that exist; a malformed file is a one-line RlError."""
    conf = RegistriesConf()
    by_prefix: dict[str, RegistryEntry] = {}
    for path in files if files is not None else config_files():
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise RlError(f"cannot read {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise RlError(f"{path} is not valid TOML: {exc}", "fix or remove the file") from None
        conf.files.append(path)
        search = data.get("unqualified-search-registries")
        if search is not None:
            if not isinstance(search, list) or not all(isinstance(s, str) for s in search):
                raise RlError(f"{path}: unqualified-search-registries must be a list of strings")
            conf.search = list(search)
        v1 = data.get("registries")
        if isinstance(v1, dict):  # the older V1 format, still found in /etc
            _load_v1(v1, path, conf, by_prefix)
        registries = data.get("registry", [])
        if not isinstance(registries, list):
            raise RlError(f"{path}: [[registry]] must be an array of tables")
        for raw in registries:
            if not isinstance(raw, dict):
                raise RlError(f"{path}: [[registry]] must be an array of tables")
            entry = _parse_entry(raw, path)
            by_prefix[entry.prefix] = entry
    conf.registries = list(by_prefix.values())
    return conf


def _load_v1(v1: dict, path: Path, conf: RegistriesConf,
             by_prefix: dict[str, RegistryEntry]) -> None:
    """[registries.search] / [registries.insecure] / [registries.block] `registries = [...]`."""
    def hosts(kind: str) -> list[str]:
        table = v1.get(kind) or {}
        value = table.get("registries", []) if isinstance(table, dict) else []
        if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
            raise RlError(f"{path}: [registries.{kind}] registries must be a list of strings")
        return value

    search = hosts("search")
    if search:
        conf.search = search
    for host in hosts("insecure"):
        entry = by_prefix.setdefault(host, RegistryEntry(host, host))
        entry.insecure = True
    for host in hosts("block"):
        entry = by_prefix.setdefault(host, RegistryEntry(host, host))
        entry.blocked = True

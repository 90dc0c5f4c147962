"""Registry credentials: where `rl login` stores them and where pulls look for them.

The file format is containers-auth.json(5), the one podman, skopeo and Docker share:

    {"auths": {"registry.example:5000": {"auth": base64("user:password")}}}

rl writes `~/.config/rl/auth.json` (`$XDG_CONFIG_HOME/rl/auth.json`, mode 0600), or
`$REGISTRY_AUTH_FILE` when set, as podman does. We chose the config dir over podman's
`$XDG_RUNTIME_DIR/containers/auth.json` because a login should survive a reboot, as it does
with Docker. Lookups read, first match wins: $REGISTRY_AUTH_FILE, ~/.config/rl/auth.json,
$XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json, ~/.docker/config.json.
Credential helpers (`credHelpers`, `credsStore`) are not run: their entries are ignored.
Docker Hub's key is `https://index.docker.io/v1/` in Docker's file; `docker.io` in ours.

A front end may give one call credentials of its own that are never stored: the API's
X-Registry-Auth with an `identitytoken` (an OAuth2 refresh token, which a registry's token
service issued to a client's login: distribution's token-auth spec, oauth.md). `for_call`
holds it in a context variable for the call (the API runs each pull in a worker process
of its own); `identity_token(host)` is what the registry client asks.
"""

from __future__ import annotations

import base64
import contextvars
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from rootless.errors import RlError
from rootless.store import paths

DOCKER_HUB_KEYS = ("docker.io", "index.docker.io", "https://index.docker.io/v1/",
                   "registry-1.docker.io")


def write_file() -> Path:
    env = os.environ.get("REGISTRY_AUTH_FILE")
    return Path(env) if env else paths.config_dir() / "auth.json"


def read_files() -> list[Path]:
    files = [write_file()]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        files.append(Path(runtime) / "containers" / "auth.json")
    files.append(Path.home() / ".config" / "containers" / "auth.json")
    files.append(Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json")
    seen, unique = set(), []
    for f in files:
        if f not in seen:
            seen.add(f)
            unique.append(f)
    return unique


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RlError(f"cannot read credentials file {path}: {exc}",
                      "fix or remove the file") from None
    if not isinstance(data, dict):
        raise RlError(f"credentials file {path} is not a JSON object", "fix or remove the file")
    return data


def _keys_for(host: str) -> tuple[str, ...]:
    if host in DOCKER_HUB_KEYS:
        return DOCKER_HUB_KEYS
    return (host, f"https://{host}", f"http://{host}", f"https://{host}/v1/",
            f"https://{host}/v2/")


def _decode(entry: dict) -> tuple[str, str] | None:
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user, password
    if entry.get("username") and entry.get("password"):
        return entry["username"], entry["password"]
    return None


def lookup(host: str) -> tuple[str, str] | None:
    """(username, password) for `host` (e.g. `127.0.0.1:5000`, `docker.io`), or None."""
    for path in read_files():
        auths = _load(path).get("auths") or {}
        if not isinstance(auths, dict):
            continue
        for key in _keys_for(host):
            entry = auths.get(key)
            if isinstance(entry, dict):
                creds = _decode(entry)
                if creds:
                    return creds
    return None


_CALL: contextvars.ContextVar[tuple[str | None, str] | None] = contextvars.ContextVar(
    "rl_call_identity_token", default=None)


def server_host(address: str) -> str:
    """A client's serveraddress (`https://127.0.0.1:5000/v2/`, `docker.io`, Docker Hub's
    `https://index.docker.io/v1/`) as the host key our lookups use."""
    if address in DOCKER_HUB_KEYS:
        return "docker.io"
    host = address.split("://", 1)[-1].split("/", 1)[0]
    return "docker.io" if host in DOCKER_HUB_KEYS else host


@contextmanager
def for_call(host: str | None, identity_token: str):
    """For the calls made inside: `identity_token` for registry `host` (None: whichever
    registry the call talks to), instead of stored credentials; never written."""
    token = _CALL.set((server_host(host) if host else None, identity_token))
    try:
        yield
    finally:
        _CALL.reset(token)


def identity_token(host: str) -> str | None:
    """The identity token the current call was given for `host`, if any."""
    given = _CALL.get()
    if given is None:
        return None
    for_host, token = given
    if for_host is None or for_host == server_host(host):
        return token
    return None


def _save(path: Path, data: dict) -> None:
    """Write atomically with mode 0600 (temp file in the same directory, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".auth-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with_suppress_unlink(tmp)
        raise


def with_suppress_unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def store(host: str, username: str, password: str) -> Path:
    path = write_file()
    data = _load(path)
    auths = data.setdefault("auths", {})
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    auths["docker.io" if host in DOCKER_HUB_KEYS else host] = {"auth": token}
    _save(path, data)
    return path


def remove(host: str | None) -> bool:
    """Forget the credentials for `host` (all of them when None); True if any were stored."""
    path = write_file()
    data = _load(path)
    auths = data.get("auths") or {}
    if host is None:
        found = bool(auths)
        data["auths"] = {}
    else:
        keys = [k for k in _keys_for(host) if k in auths]
        found = bool(keys)
        for k in keys:
            del auths[k]
    if found:
        _save(path, data)
    return found

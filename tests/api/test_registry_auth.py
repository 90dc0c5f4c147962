"""X-Registry-Auth with an identity token: a Docker client that logged in to a registry
whose token service issues OAuth2 refresh tokens sends one (`identitytoken`) with each
pull; the service pulls with it, for that request only. The registry is Debian's
docker-registry with token auth, trusting a token service made to the spec
(tests/support/tokenauth.py)."""

from __future__ import annotations

import os
import secrets
import subprocess
import time

import httpx
import pytest

from tests.support.images import build_busybox
from tests.support.registry import REGISTRY_BIN, Registry, free_port
from tests.support.tokenauth import TokenService
from tests.support.users import need

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.slow

SERVICE = "rl-test-token-registry"
USER, PASSWORD = "alice", "s3cret-Pw"
REPO = "private/bb"


@pytest.fixture
def token_registry(tmp_path):
    """docker-registry with `auth: token:`, holding private/bb:1 (pushed with a token the
    service signed for it); anonymous callers get no access."""
    need(os.path.exists(REGISTRY_BIN), "docker-registry is not installed")
    work = tmp_path / "registry"
    work.mkdir()
    tokens = TokenService(work, {USER: PASSWORD}, SERVICE)
    port = free_port()
    config = work / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: {secrets.token_hex(8)}\n"
        + tokens.registry_auth_config())
    log = open(work / "registry.log", "wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    reg = Registry(f"127.0.0.1:{port}", proc, work)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{reg.url}/v2/", timeout=1).status_code == 401:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((work / "registry.log").read_text())
            time.sleep(0.05)
        admin = tokens.sign("admin", [f"repository:{REPO}:pull,push"])
        reg.client = lambda: httpx.Client(base_url=reg.url, timeout=30,
                                          headers={"Authorization": f"Bearer {admin}"})
        reg.push_image(REPO, "1", build_busybox())
        reg.tokens = tokens
        yield reg
    finally:
        reg.stop()
        log.close()
        tokens.stop()


def _refresh_token(tokens: TokenService) -> str:
    """What a client's login gets from the token service (oauth.md: offline access)."""
    r = httpx.post(tokens.realm, data={"grant_type": "password", "username": USER,
                                       "password": PASSWORD, "service": SERVICE,
                                       "client_id": "docker", "access_type": "offline"})
    r.raise_for_status()
    return r.json()["refresh_token"]


def _pull(client, ref: str, auth: dict | None) -> list[dict]:
    repo, _, tag = ref.rpartition(":")
    return list(client.api.pull(repo, tag, stream=True, decode=True,
                                auth_config=auth if auth is not None else {}))


def test_pull_with_an_identity_token(service, rl, token_registry):
    reg, tokens = token_registry, token_registry.tokens
    with open(rl.config_dir / "registries.conf", "a") as f:
        # the token service listens on another port of the registry's host
        f.write(f'\n[[registry]]\nlocation = "{reg.host}"\n'
                f'auth-realms = ["http://127.0.0.1:{tokens.port}"]\n')
    client = docker.DockerClient(base_url=service.host, timeout=120)
    ref = reg.ref(f"{REPO}:1")
    try:
        # anonymous: the token service grants nothing, the registry refuses
        lines = _pull(client, ref, None)
        assert "(401)" in lines[-1].get("error", ""), lines
        # an identity token the token service does not know: refused, said so
        lines = _pull(client, ref, {"identitytoken": "not-a-token",
                                    "serveraddress": reg.host})
        errors = [doc["error"] for doc in lines if "error" in doc]
        assert errors and "refused the identity token" in errors[0], lines
        # the token of a login: the service trades it for an access token (POST,
        # grant_type=refresh_token) and pulls
        refresh = _refresh_token(tokens)
        seen = len(tokens.requests)
        lines = _pull(client, ref, {"identitytoken": refresh, "serveraddress": reg.host})
        assert not any("error" in doc for doc in lines), lines
        assert client.images.get(ref).id.startswith("sha256:")
        grants = [r for r in tokens.requests[seen:] if r["method"] == "POST"]
        assert grants, tokens.requests[seen:]
        for g in grants:
            assert g["params"]["grant_type"] == "refresh_token"
            assert g["params"]["refresh_token"] == refresh
            assert g["params"]["scope"] == f"repository:{REPO}:pull"
            assert g["params"]["client_id"] == "rl"
            assert g["authorization"] is None  # no password travels
        # for that request only: nothing stored, a pull without it is anonymous again
        assert not (rl.config_dir / "auth.json").exists()
        client.images.remove(ref)
        lines = _pull(client, ref, None)
        assert "(401)" in lines[-1].get("error", ""), lines
        # a token given for another registry is not sent to this one's token service
        seen = len(tokens.requests)
        lines = _pull(client, ref, {"identitytoken": refresh,
                                    "serveraddress": "other.example:5000"})
        assert "(401)" in lines[-1].get("error", ""), lines
        assert all(r["params"].get("refresh_token") != refresh
                   for r in tokens.requests[seen:])
    finally:
        client.close()

"""rl login / logout against a registry with Basic (htpasswd) auth, and the credential files
pulls read (ours, and ~/.docker/config.json)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import time

import httpx
import pytest

from tests.image.conftest import write_registries_conf
from tests.image.test_pull import one_line_error
from tests.support.images import build_busybox
from tests.support.registry import REGISTRY_BIN, Registry, free_port
from tests.support.users import need

USER, PASSWORD = "alice", "s3cret-Pw"


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory):
    """docker-registry with htpasswd (bcrypt) auth, holding busybox."""
    bcrypt = pytest.importorskip("bcrypt")
    need(os.path.exists(REGISTRY_BIN), "docker-registry is not installed")
    work = tmp_path_factory.mktemp("registry-basic")
    htpasswd = work / "htpasswd"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode()
    htpasswd.write_text(f"{USER}:{hashed}\n")
    port = free_port()
    config = work / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: {secrets.token_hex(8)}\n"
        f"auth:\n  htpasswd:\n    realm: rl-tests\n    path: {htpasswd}\n")
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
        auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        # push with credentials (Registry.client knows only token auth)
        original = reg.client
        reg.client = lambda: httpx.Client(base_url=reg.url, headers={"Authorization": auth},
                                          timeout=30)
        reg.push_image("busybox", "latest", build_busybox())
        reg.client = original
        yield reg
    finally:
        reg.stop()
        log.close()


def test_login_pull_logout(rl, basic_registry):
    ref = basic_registry.ref("busybox")
    line = one_line_error(rl("pull", ref))
    assert "authentication required" in line and f"rl login {basic_registry.host}" in line

    line = one_line_error(rl("login", "-u", USER, "--password-stdin", basic_registry.host,
                             input="wrong\n"))
    assert "login to" in line and "failed" in line
    assert not (rl.config_dir / "auth.json").exists()

    proc = rl("login", "-u", USER, "--password-stdin", basic_registry.host,
              input=PASSWORD + "\n", check=True)
    assert "Login Succeeded" in proc.stdout
    auth_file = rl.config_dir / "auth.json"
    assert oct(auth_file.stat().st_mode & 0o777) == "0o600"
    stored = json.loads(auth_file.read_text())["auths"][basic_registry.host]["auth"]
    assert base64.b64decode(stored).decode() == f"{USER}:{PASSWORD}"

    rl("pull", "-q", ref, check=True)
    rl("rmi", ref, check=True)

    assert "Removed login credentials" in rl("logout", basic_registry.host, check=True).stdout
    assert "authentication required" in one_line_error(rl("pull", ref))
    assert "not logged in" in one_line_error(rl("logout", basic_registry.host))


def test_docker_config_json_is_read(rl, basic_registry, tmp_path):
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (home / ".docker" / "config.json").write_text(
        json.dumps({"auths": {basic_registry.host: {"auth": token}}}))
    rl("pull", "-q", basic_registry.ref("busybox"), check=True, env={"HOME": str(home)})


def test_login_to_token_registry_sends_credentials_to_an_allowed_realm(rl, token_registry):
    """The test token service is on another port of 127.0.0.1: registries.conf says it is
    the registry's own (auth-realms), so the login and the pull send the credentials."""
    write_registries_conf(rl, f'[[registry]]\nlocation = "{token_registry.host}"\n'
                              f'auth-realms = ["http://127.0.0.1:{token_registry.token_server.port}"]\n')
    seen = len(token_registry.token_server.requests)
    rl("login", "-u", USER, "-p", PASSWORD, token_registry.host, check=True)
    rl("pull", "-q", token_registry.ref("busybox"), check=True)
    sent = token_registry.token_server.requests[seen:]
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert sent and all(r["authorization"] == expected for r in sent)


def test_credentials_never_go_to_a_realm_on_another_host(rl, token_registry, tmp_path):
    """A registry's 401 challenge names the token realm; a lying registry names one of its
    choosing (here: another port, another server). Neither `rl login` nor a pull with
    stored credentials sends them there; the error is one line naming the realm."""
    token_server = token_registry.token_server
    seen = len(token_server.requests)
    line = one_line_error(rl("login", "-u", USER, "-p", PASSWORD, token_registry.host))
    assert token_server.realm in line and "auth-realms" in line
    assert not (rl.config_dir / "auth.json").exists()
    # Credentials stored before (by Docker, or while the registry was honest):
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (home / ".docker" / "config.json").write_text(
        json.dumps({"auths": {token_registry.host: {"auth": token}}}))
    line = one_line_error(rl("pull", "-q", token_registry.ref("busybox"),
                             env={"HOME": str(home)}))
    assert token_server.realm in line
    sent = token_server.requests[seen:]
    assert all(r["authorization"] is None for r in sent), sent
    assert all("account" not in r["query"] for r in sent), sent

"""A real distribution registry (Debian's `docker-registry`) on 127.0.0.1, for tests.

`Registry.start(tmpdir)` starts one on a free port with its own storage; `token=True`
turns on the registry's `silly` auth, which answers anonymous requests with a real
`WWW-Authenticate: Bearer realm=...,service=...,scope=...` challenge, and starts a small
token endpoint (`TokenServer`) that hands out tokens, so the Docker Hub flow runs offline.
`push_image` uploads blobs and manifests with the registry's own HTTP API.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx

from tests.support.images import Image, Index, sha256

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TokenServer:
    """Hands out bearer tokens at /token and records each request's query."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.tokens: set[str] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                if url.path != "/token":
                    self.send_error(404)
                    return
                query = {k: v for k, v in parse_qs(url.query).items()}
                outer.requests.append({"query": query,
                                       "authorization": self.headers.get("Authorization")})
                token = secrets.token_hex(16)
                outer.tokens.add(token)
                body = json.dumps({"token": token, "access_token": token,
                                   "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Registry:
    host: str  # "127.0.0.1:PORT"
    proc: subprocess.Popen
    root: Path
    token_server: TokenServer | None = None
    service: str = "rl-test-registry"
    pushed: dict[str, Image | Index] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @classmethod
    def start(cls, workdir: Path, token: bool = False) -> Registry:
        if not os.path.exists(REGISTRY_BIN):
            raise RuntimeError(f"{REGISTRY_BIN} missing: apt-get install docker-registry")
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        token_server = TokenServer() if token else None
        auth = ""
        if token_server:
            auth = (f"auth:\n  silly:\n    realm: {token_server.realm}\n"
                    f"    service: rl-test-registry\n")
        config = workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n  secret: {secrets.token_hex(8)}\n"
            + auth
        )
        log = open(workdir / "registry.log", "wb")
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        reg = cls(f"127.0.0.1:{port}", proc, workdir, token_server)
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"{reg.url}/v2/", timeout=1)
                if r.status_code in (200, 401):
                    return reg
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                reg.stop()
                raise RuntimeError(
                    f"docker-registry did not start: {(workdir / 'registry.log').read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.token_server:
            self.token_server.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- the registry's HTTP API, used to push test images and to check them --

    def client(self) -> httpx.Client:
        headers = {}
        if self.token_server:
            # silly auth accepts any bearer token; take a real one from the endpoint anyway.
            token = httpx.get(f"{self.token_server.realm}?service={self.service}").json()["token"]
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def push_blob(self, c: httpx.Client, repo: str, digest: str, data: bytes) -> None:
        if c.head(f"/v2/{repo}/blobs/{digest}").status_code == 200:
            return
        r = c.post(f"/v2/{repo}/blobs/uploads/")
        r.raise_for_status()
        location = r.headers["Location"]
        sep = "&" if "?" in location else "?"
        r = c.put(f"{location}{sep}digest={digest}", content=data,
                  headers={"Content-Type": "application/octet-stream"})
        r.raise_for_status()

    def push_manifest(self, c: httpx.Client, repo: str, ref: str, media_type: str,
                      data: bytes) -> None:
        r = c.put(f"/v2/{repo}/manifests/{ref}", content=data,
                  headers={"Content-Type": media_type})
        r.raise_for_status()

    def push_image(self, repo: str, tag: str, image: Image | Index) -> str:
        """Push `image` as repo:tag; returns the manifest digest."""
        images = image.images if isinstance(image, Index) else [image]
        with self.client() as c:
            for img in images:
                for layer in img.layers:
                    self.push_blob(c, repo, layer.digest, layer.blob)
                cfg = img.config_bytes
                self.push_blob(c, repo, sha256(cfg), cfg)
                if isinstance(image, Index):
                    self.push_manifest(c, repo, img.digest, img.manifest_type, img.manifest_bytes)
            self.push_manifest(c, repo, tag, image.manifest_type, image.manifest_bytes)
        self.pushed[f"{repo}:{tag}"] = image
        return image.digest

    def ref(self, name: str) -> str:
        """A fully qualified reference to a pushed image, e.g. '127.0.0.1:5000/busybox:latest'."""
        return f"{self.host}/{name}"

"""A token service as distribution's token-auth spec describes it (docs/spec/auth/token.md,
oauth.md, jwt.md), for a docker-registry configured with `auth: token:` to trust.

- GET /token?service=&scope= with Basic credentials (or none: anonymous) answers
  {"token", "access_token", "expires_in", "issued_at"} (token.md);
- POST /token with a form (oauth.md): grant_type=password (username, password; with
  access_type=offline a refresh_token too) or grant_type=refresh_token (refresh_token),
  plus service, scope and client_id; answers {"access_token", "scope", "expires_in",
  "issued_at"} and the refresh token; a bad refresh token or password is a 401;
- the tokens are JWTs signed RS256 (openssl) whose header carries the signing
  certificate (x5c), which the registry verifies against its `rootcertbundle`; their
  claims are iss, sub, aud (the service), exp, nbf, iat, jti and `access`: the scopes
  asked for, granted to a user in full and to anonymous callers for nothing.

Every request is recorded (method, path, form or query, Authorization header) so tests
can see what a client sent.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ISSUER = "rl-test-token-issuer"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    def __init__(self, workdir: Path, users: dict[str, str], service: str) -> None:
        self.users = users
        self.service = service
        self.requests: list[dict] = []
        self.refresh_tokens: dict[str, str] = {}  # token -> user
        self.key = workdir / "token.key"
        self.cert = workdir / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", str(self.key), "-out", str(self.cert), "-days", "2",
                        "-subj", "/CN=rl-test-token-service"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self._x5c = base64.b64encode(der).decode()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                outer._serve(self, "GET", url.path, parse_qs(url.query))

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                n = int(self.headers.get("Content-Length") or 0)
                outer._serve(self, "POST", url.path,
                             parse_qs(self.rfile.read(n).decode()))

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def registry_auth_config(self) -> str:
        """The `auth:` section of a docker-registry config.yml trusting this service."""
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {self.service}\n"
                f"    issuer: {ISSUER}\n    rootcertbundle: {self.cert}\n")

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- tokens --------------------------------------------------------------------------

    def sign(self, subject: str, scopes: list[str]) -> str:
        """A JWT granting `scopes` (`repository:NAME:ACTIONS`) to `subject`."""
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name,
                           "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {"iss": ISSUER, "sub": subject, "aud": self.service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8),
                  "access": access}
        signing_input = f"{_b64(json.dumps(header).encode())}." \
                        f"{_b64(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing_input.encode(), check=True,
                             capture_output=True).stdout
        return f"{signing_input}.{_b64(sig)}"

    def _user_of_basic(self, header: str | None) -> str | None:
        if not header or not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == password else ""

    def _serve(self, h: BaseHTTPRequestHandler, method: str, path: str,
               params: dict[str, list[str]]) -> None:
        one = {k: v[0] for k, v in params.items()}
        self.requests.append({"method": method, "path": path, "params": one,
                              "authorization": h.headers.get("Authorization")})
        if path != "/token":
            return self._answer(h, 404, {"error": "not_found"})
        if one.get("service") != self.service:
            return self._answer(h, 400, {"error": "invalid_request",
                                         "error_description": "unknown service"})
        scopes = [s for v in params.get("scope", []) for s in v.split(" ") if s]
        refresh = None
        if method == "GET":
            user = self._user_of_basic(h.headers.get("Authorization"))
            if user == "":
                return self._answer(h, 401, {"error": "invalid_grant"})
        else:
            grant = one.get("grant_type")
            if not one.get("client_id"):
                return self._answer(h, 400, {"error": "invalid_request",
                                             "error_description": "client_id missing"})
            if grant == "refresh_token":
                user = self.refresh_tokens.get(one.get("refresh_token", ""))
                if user is None:
                    return self._answer(h, 401, {"error": "invalid_grant"})
                refresh = one["refresh_token"]
            elif grant == "password":
                user = one.get("username")
                if self.users.get(user or "") != one.get("password"):
                    return self._answer(h, 401, {"error": "invalid_grant"})
                if one.get("access_type") == "offline":
                    refresh = secrets.token_urlsafe(24)
                    self.refresh_tokens[refresh] = user
            else:
                return self._answer(h, 400, {"error": "unsupported_grant_type"})
        token = self.sign(user or "", scopes if user else [])
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {"access_token": token, "expires_in": 300, "issued_at": now}
        if method == "GET":
            body["token"] = token
        else:
            body["scope"] = " ".join(scopes)
        if refresh:
            body["refresh_token"] = refresh
        return self._answer(h, 200, body)

    def _answer(self, h: BaseHTTPRequestHandler, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

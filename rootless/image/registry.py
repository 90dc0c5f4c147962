"""A client for one registry host speaking the OCI distribution spec (Docker Registry v2).

`RegistryClient(host, insecure=..., credentials=...)` fetches manifests and streams blobs.
Authentication follows the registry's answer: on 401 with `WWW-Authenticate: Bearer
realm=..,service=..,scope=..` it asks the realm for a token (anonymously, or with Basic
credentials when some are stored) and retries; on `Basic` it sends the credentials.
With an `identity_token` (an OAuth2 refresh token a client's login got, which the API
receives in X-Registry-Auth) it asks the realm as Docker does: a POST of the form
grant_type=refresh_token (distribution's token-auth spec, oauth.md), for an access_token.
The credentials go only to a realm on the registry's own host and port (over https, or
http for an insecure registry) or to one registries.conf allows for it (`auth-realms`;
Docker Hub's auth.docker.io is known): a registry that lies in its challenge must not
make us send the user's password to a host of its choosing. Docker and podman send them to
any realm; we refuse, in one line naming the realm and the fix.
Transient failures (connection errors, 5xx, 429) are retried with backoff; other 4xx are not.
An insecure registry is tried over https without certificate checks, then plain http.

httpx is imported inside the class so that `rl images` and `rl run` never load it.
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rootless.errors import NotFound, RlError
from rootless.image import httpx_lite

RETRIES = 3  # attempts in all, for a transient error
CLIENT_ID = "rl"  # the OAuth2 client_id of our refresh_token grants (Docker sends "docker")
BACKOFF = 0.25  # seconds before the 2nd attempt; doubles each time
USER_AGENT = "rl (rootless container engine)"
MAX_MANIFEST = 4 << 20  # as containers/image: manifests are small documents


class TransientError(RlError):
    """A failure worth retrying: connection reset or refused, 5xx, 429."""


class AuthError(RlError):
    """401 or 403 from the registry."""


class RealmRefused(AuthError):
    """The registry named a token service that may not have the user's credentials."""


_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="x",service="y"` -> ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


class StreamReader(io.RawIOBase):
    """A file object over an httpx streaming response body (raw bytes, no decoding)."""

    def __init__(self, response) -> None:
        self._chunks = response.iter_raw(1 << 20)
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        httpx = httpx_lite.load()

        if not self._buf:
            try:
                self._buf = memoryview(next(self._chunks))
            except StopIteration:
                return 0
            except httpx.TransportError as exc:
                raise TransientError(f"connection lost while downloading: {exc}") from None
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class RegistryClient:
    def __init__(self, host: str, *, insecure: bool = False,
                 credentials: tuple[str, str] | None = None,
                 identity_token: str | None = None) -> None:
        httpx = httpx_lite.load()

        self.host = host
        self.insecure = insecure
        self.credentials = credentials
        self.identity_token = identity_token
        self._scheme = "https"
        self._scheme_known = not insecure
        self._tokens: dict[str, str] = {}  # scope -> bearer token
        self._basic = False  # the registry asked for Basic auth
        self._lock = threading.Lock()
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=8)
        self._http = httpx.Client(
            verify=not insecure, follow_redirects=True, limits=limits, trust_env=False,
            timeout=httpx.Timeout(60.0, connect=10.0), headers={"User-Agent": USER_AGENT})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing --

    def _url(self, path: str) -> str:
        return f"{self._scheme}://{self.host}{path}"

    def _send_once(self, method: str, path: str, headers: dict, stream: bool):
        httpx = httpx_lite.load()

        req = self._http.build_request(method, self._url(path), headers=headers)
        try:
            return self._http.send(req, stream=stream)
        except httpx.TransportError as exc:
            if not self._scheme_known and self._scheme == "https":
                # An insecure registry that does not speak TLS: fall back to http.
                self._scheme = "http"
                self._scheme_known = True
                return self._send_once(method, path, headers, stream)
            raise TransientError(f"cannot reach registry {self.host}: {_reason(exc)}",
                                 "check the address and that the registry is running") from None

    def _send(self, method: str, path: str, headers: dict, stream: bool):
        """Send with retries on transient errors; returns the last response."""
        delay = BACKOFF
        for attempt in range(RETRIES):
            last = attempt == RETRIES - 1
            try:
                resp = self._send_once(method, path, headers, stream)
            except TransientError:
                if last:
                    raise
            else:
                if resp.status_code < 500 and resp.status_code != 429:
                    self._scheme_known = True
                    return resp
                if last:
                    return resp
                resp.close()
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _auth_header(self, scope: str) -> dict:
        with self._lock:
            token = self._tokens.get(scope)
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self._basic and self.credentials:
            return {"Authorization": _basic(self.credentials)}
        return {}

    def _fetch_token(self, params: dict[str, str], scope: str) -> None:
        realm = params.get("realm")
        if not realm:
            raise AuthError(f"registry {self.host} sent a Bearer challenge without a realm")
        query = {}
        if params.get("service"):
            query["service"] = params["service"]
        query["scope"] = params.get("scope") or scope
        headers = {}
        if self.credentials and not self.identity_token:
            self._check_realm(realm)
            headers["Authorization"] = _basic(self.credentials)
            query["account"] = self.credentials[0]
        httpx = httpx_lite.load()

        try:
            if self.identity_token:
                self._check_realm(realm)
                form = dict(query, grant_type="refresh_token", client_id=CLIENT_ID,
                            refresh_token=self.identity_token)
                resp = self._http.post(realm, data=form)
            else:
                resp = self._http.get(realm, params=query, headers=headers)
        except httpx.TransportError as exc:
            raise TransientError(f"cannot reach the token service {realm}: {_reason(exc)}"
                                 ) from None
        if resp.status_code in (401, 403) and self.identity_token:
            raise AuthError(f"{self.host}: the token service refused the identity token "
                            f"({resp.status_code})", "log in again with the client that "
                            "got it (docker login), or pull with a username and password")
        if resp.status_code in (401, 403):
            raise AuthError(f"{self.host}: authentication failed at the token service "
                            f"({resp.status_code})", "check your credentials with rl login")
        if resp.status_code != 200:
            raise RlError(f"token service {realm} answered {resp.status_code}")
        try:
            body = resp.json()
            token = body.get("token") or body.get("access_token")
        except ValueError:
            token = None
        if not isinstance(token, str) or not token:
            raise AuthError(f"token service {realm} returned no token")
        with self._lock:
            self._tokens[scope] = token

    def _check_realm(self, realm: str) -> None:
        """AuthError unless `realm` may receive our credentials (see the module doc)."""
        from urllib.parse import urlsplit

        from rootless.image import registries_conf

        def origin(scheme: str, netloc: str) -> tuple[str, str, int]:
            u = urlsplit(f"{scheme}://{netloc}")
            try:
                port = u.port
            except ValueError:
                port = -1
            return scheme, (u.hostname or "").lower(), port or (443 if scheme == "https"
                                                                  else 80)

        try:
            u = urlsplit(realm)
            scheme, netloc = u.scheme.lower(), u.netloc.rpartition("@")[2]
        except ValueError:
            scheme, netloc = "", ""
        if scheme in ("https", "http") and netloc:
            theirs = origin(scheme, netloc)
            ours = origin(self._scheme, self.host)
            if theirs[1:] == ours[1:] and (scheme == "https" or self.insecure):
                return
            allowed = {origin(*a.split("://", 1)) for a in
                       registries_conf.auth_realms(self.host) if "://" in a}
            if theirs in allowed:
                return
        raise RealmRefused(
            f"registry {self.host} asks for your credentials at the token service {realm}, "
            "which is not on its host: not sending them there",
            f"if that is the registry's own token service, add auth-realms = "
            f"[\"{scheme or 'https'}://{netloc}\"] to its [[registry]] entry in "
            "registries.conf")

    def request(self, method: str, path: str, *, scope: str, headers: dict | None = None,
                stream: bool = False):
        """Send, answering one auth challenge; returns the response (the caller closes it)."""
        base = dict(headers or {})
        resp = self._send(method, path, {**base, **self._auth_header(scope)}, stream)
        if resp.status_code != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        resp.close()
        kind, params = parse_challenge(challenge)
        if kind == "bearer":
            self._fetch_token(params, scope)
        elif kind == "basic" and self.credentials and not self._basic:
            self._basic = True
        else:
            return resp
        return self._send(method, path, {**base, **self._auth_header(scope)}, stream)

    def _error(self, resp, what: str, repo: str):
        code = resp.status_code
        if code == 401 and self._tokens and not self.credentials:
            # Docker Hub answers so for a repository that does not exist, too.
            return AuthError(f"{what}: access denied by {self.host} (401): the repository "
                             "does not exist or needs a login",
                             f"check the name, or log in with: rl login {self.host}")
        if code == 401:
            return AuthError(f"{what}: authentication required by {self.host} (401)",
                             f"log in with: rl login {self.host}")
        if code == 403:
            return AuthError(f"{what}: access denied by {self.host} (403)",
                             "check that your account may pull this repository")
        if code == 404:
            return NotFound(f"{what}: not found in registry {self.host}",
                            "check the name and tag")
        if code >= 500 or code == 429:
            return TransientError(f"{what}: registry {self.host} answered {code}")
        return RlError(f"{what}: registry {self.host} answered {code}")

    # -- the API --

    def ping(self) -> None:
        """Check that the registry answers and that our credentials (if any) are accepted."""
        resp = self.request("GET", "/v2/", scope="")
        try:
            if resp.status_code != 200:
                raise self._error(resp, f"login to {self.host}", "")
        finally:
            resp.close()

    def get_manifest(self, repo: str, reference: str, accept: str) -> tuple[bytes, str | None,
                                                                            str | None]:
        """(body, Content-Type, Docker-Content-Digest) of a manifest by tag or digest."""
        httpx = httpx_lite.load()

        resp = self.request("GET", f"/v2/{repo}/manifests/{reference}",
                            scope=f"repository:{repo}:pull", headers={"Accept": accept},
                            stream=True)
        sep = "@" if reference.startswith("sha256:") else ":"
        what = f"manifest {self.host}/{repo}{sep}{reference}"
        try:
            if resp.status_code != 200:
                raise self._error(resp, what, repo)
            chunks, size = [], 0
            try:
                for chunk in resp.iter_raw():
                    size += len(chunk)
                    if size > MAX_MANIFEST:
                        raise RlError(f"{what} is larger than {MAX_MANIFEST} bytes",
                                      "this is not an image manifest")
                    chunks.append(chunk)
            except httpx.TransportError as exc:
                raise TransientError(f"{what}: connection lost: {_reason(exc)}") from None
            body = b"".join(chunks)
        finally:
            resp.close()
        return body, resp.headers.get("Content-Type"), resp.headers.get("Docker-Content-Digest")

    @contextmanager
    def open_blob(self, repo: str, digest: str) -> Iterator[tuple[io.RawIOBase, int | None]]:
        """A reader of the blob's bytes as stored (compressed) and its Content-Length."""
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}",
                            scope=f"repository:{repo}:pull", stream=True)
        try:
            if resp.status_code != 200:
                raise self._error(resp, f"blob {digest[:19]} of {self.host}/{repo}", repo)
            length = resp.headers.get("Content-Length")
            yield StreamReader(resp), int(length) if length and length.isdigit() else None
        finally:
            resp.close()


def _basic(credentials: tuple[str, str]) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    return text.splitlines()[0][:200]

"""The registry transport's destination side (`rl push`): an ImageDestination writing to a
registry through rootless/image/registry.py's client (its auth, retries and http fallback).

- `reuse_layer`: HEAD /v2/<repo>/blobs/<digest>; a blob the registry holds is not sent.
  Else, when the image came from other repositories of the same registry (`mount_from`),
  a cross-repository mount (POST ?mount=&from=) links the blob without sending it.
- `put_layer`: the stream is spooled (memory, then a temp file), checked against the
  descriptor and the diff_id, then sent as one monolithic upload (POST for a session, PUT
  with ?digest=), or, above CHUNK_SIZE (RL_PUSH_CHUNK_SIZE), in PATCH chunks closed by
  an empty PUT. The registry checks the digest again.
- `put_config` uploads the config the same way; `commit` PUTs the manifest under each tag.
Nothing is visible under a tag before commit; blobs uploaded before a failure stay (a
registry garbage-collects unreferenced blobs), as with every registry client.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from urllib.parse import urlencode, urlsplit

from rootless.errors import RlError
from rootless.image import auth
from rootless.image.local_transport import receive
from rootless.image.reference import Reference
from rootless.image.registries_conf import RegistriesConf
from rootless.image.registry import RegistryClient
from rootless.image.types import ImageDestination, LayerResult


def chunk_size() -> int:
    value = os.environ.get("RL_PUSH_CHUNK_SIZE", "")
    return int(value) if value.isdigit() and int(value) > 0 else 64 << 20


class RegistryDestination(ImageDestination):
    def __init__(self, ref: Reference, conf: RegistriesConf,
                 mount_from: list[str] | None = None) -> None:
        self.ref = ref
        source = conf.sources(ref)[-1]  # the location itself, never a mirror
        self.repo = source.repository
        self.host = source.endpoint.host
        self.client = RegistryClient(self.host, insecure=source.endpoint.insecure,
                                     credentials=auth.lookup(self.host),
                                     identity_token=auth.identity_token(self.host))
        self.scope = f"repository:{self.repo}:pull,push"
        self.manifest: tuple[bytes, str, str] | None = None
        self.pushed = 0
        self.mounted = 0
        self.mount_from = [r for r in (mount_from or []) if r != self.repo]

    def _has(self, digest: str) -> bool:
        resp = self.client.request("HEAD", f"/v2/{self.repo}/blobs/{digest}", scope=self.scope)
        resp.close()
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self.client._error(resp, f"blob {digest[:19]} of {self.host}/{self.repo}",
                                 self.repo)

    def reuse_layer(self, descriptor, diff_id):
        if self._has(descriptor.digest):
            return LayerResult(diff_id, descriptor.size, True)
        for repo in self.mount_from:
            if self._mount(descriptor.digest, repo):
                self.mounted += 1
                return LayerResult(diff_id, descriptor.size, True)
        return None

    def _mount(self, digest: str, repo: str) -> bool:
        query = urlencode({"mount": digest, "from": repo})
        resp = self.client.request("POST", f"/v2/{self.repo}/blobs/uploads/?{query}",
                                   scope=f"{self.scope} repository:{repo}:pull",
                                   headers={"Content-Length": "0"})
        resp.close()
        if resp.status_code == 201:
            return True
        if resp.status_code == 202 and resp.headers.get("Location"):
            # the registry opened an upload session instead: close it
            with contextlib.suppress(Exception):
                parts = urlsplit(resp.headers["Location"])
                self.client.request("DELETE", parts.path + (f"?{parts.query}" if parts.query
                                                            else ""), scope=self.scope).close()
        return False

    def _upload(self, path: str, digest: str, size: int) -> None:
        what = f"upload of {digest[:19]} to {self.host}/{self.repo}"
        resp = self.client.request("POST", f"/v2/{self.repo}/blobs/uploads/",
                                   scope=self.scope, headers={"Content-Length": "0"})
        resp.close()
        if resp.status_code != 202:
            raise self.client._error(resp, what, self.repo)
        location = resp.headers.get("Location", "")
        limit = chunk_size()
        with open(path, "rb") as f:
            if size > limit:
                start = 0
                while data := f.read(limit):
                    location = self._patch(location, data, start, what)
                    start += len(data)
                body = b""
            else:
                body = f.read()
        parts = urlsplit(location)
        path_q = parts.path + "?" + (parts.query + "&" if parts.query else "") + urlencode(
            {"digest": digest})
        resp = self._send_body("PUT", path_q, body)
        resp.close()
        if resp.status_code not in (201, 204):
            raise self.client._error(resp, what, self.repo)

    def _patch(self, location: str, data: bytes, start: int, what: str) -> str:
        parts = urlsplit(location)
        path_q = parts.path + (f"?{parts.query}" if parts.query else "")
        resp = self._send_body("PATCH", path_q, data, {
            "Content-Range": f"{start}-{start + len(data) - 1}"})
        resp.close()
        if resp.status_code != 202:
            raise self.client._error(resp, what, self.repo)
        return resp.headers.get("Location", location)

    def _send_body(self, method: str, path: str, body: bytes, extra: dict | None = None):
        # The client's request() sends no body: build this one by hand, with the same auth.
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Length": str(len(body)), **(extra or {}),
                   **self.client._auth_header(self.scope)}
        req = self.client._http.build_request(method, self.client._url(path),
                                              headers=headers, content=body)
        return self.client._http.send(req)

    def put_layer(self, reader, descriptor, diff_id, progress):
        fd, tmp = tempfile.mkstemp(prefix="rl-push-")
        os.close(fd)
        try:
            size = receive(reader, descriptor, diff_id, blob_path=tmp, progress=progress)
            self._upload(tmp, descriptor.digest, descriptor.size)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        self.pushed += 1
        return LayerResult(diff_id, size, False)

    def put_config(self, data, descriptor):
        if self._has(descriptor.digest):
            return
        fd, tmp = tempfile.mkstemp(prefix="rl-push-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self._upload(tmp, descriptor.digest, len(data))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def put_manifest(self, data, media_type, digest):
        self.manifest = (data, media_type, digest)

    def commit(self, names):
        assert self.manifest is not None
        data, media_type, digest = self.manifest
        tag = self.ref.digest or self.ref.tag or "latest"
        path = f"/v2/{self.repo}/manifests/{tag}"
        headers = {"Content-Type": media_type, "Content-Length": str(len(data)),
                   **self.client._auth_header(self.scope)}
        req = self.client._http.build_request("PUT", self.client._url(path), headers=headers,
                                              content=data)
        resp = self.client._http.send(req)
        resp.close()
        if resp.status_code not in (200, 201):
            raise self.client._error(resp, f"manifest {self.host}/{self.repo}:{tag}",
                                     self.repo)
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RlError(f"the registry stored the manifest as {got}, not {digest}")
        return digest

    def close(self):
        self.client.close()

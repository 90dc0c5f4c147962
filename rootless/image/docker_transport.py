"""The registry transport (`docker://`): an ImageSource reading from a registry.

`RegistrySource(ref, conf)` fetches from the places registries.conf names for `ref`:
its mirrors first, then its (possibly rewritten) location. The manifest decides the
endpoint: once one answered, blobs come from that same endpoint.
"""

from __future__ import annotations

from contextlib import contextmanager

from rootless.errors import NotFound, RlError
from rootless.image import auth
from rootless.image import manifest as mf
from rootless.image.reference import Reference
from rootless.image.registries_conf import RegistriesConf, Source
from rootless.image.registry import RegistryClient, TransientError
from rootless.image.types import ImageSource


class RegistrySource(ImageSource):
    def __init__(self, ref: Reference, conf: RegistriesConf) -> None:
        self.ref = ref
        self.name = str(ref)
        self.sources: list[Source] = conf.sources(ref)
        self._clients: dict[str, RegistryClient] = {}
        self._chosen: Source | None = None

    @property
    def registry(self) -> str:
        """The host that served (or will serve) the image, for messages."""
        return (self._chosen or self.sources[-1]).endpoint.host

    def _client(self, source: Source) -> RegistryClient:
        host = source.endpoint.host
        if host not in self._clients:
            self._clients[host] = RegistryClient(
                host, insecure=source.endpoint.insecure, credentials=auth.lookup(host),
                identity_token=auth.identity_token(host))
        return self._clients[host]

    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]:
        reference = instance_digest or self.ref.digest or self.ref.tag or "latest"
        candidates = [self._chosen] if self._chosen else self.sources
        error: RlError | None = None
        for source in candidates:
            client = self._client(source)
            try:
                body, content_type, header_digest = client.get_manifest(
                    source.repository, reference, mf.ACCEPT)
            except (NotFound, TransientError, RlError) as exc:
                error = exc
                continue
            self._chosen = source
            self._verify(body, instance_digest or self.ref.digest, header_digest)
            return body, mf.sniff_media_type(body, content_type)
        assert error is not None
        raise error

    def _verify(self, body: bytes, pinned: str | None, header_digest: str | None) -> None:
        computed = mf.sha256_digest(body)
        if pinned and pinned != computed:
            raise RlError(f"manifest digest mismatch for {self.name}: expected {pinned}, "
                          f"got {computed}", "the registry served corrupted or tampered content")
        if header_digest and header_digest.startswith("sha256:") and header_digest != computed:
            raise RlError(f"manifest digest mismatch for {self.name}: registry says "
                          f"{header_digest}, content is {computed}",
                          "the registry served corrupted or tampered content")

    @contextmanager
    def get_blob(self, descriptor: mf.Descriptor):
        source = self._chosen or self.sources[-1]
        with self._client(source).open_blob(source.repository, descriptor.digest) as blob:
            yield blob

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

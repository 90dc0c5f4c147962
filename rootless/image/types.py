"""The two sides of every image transfer: ImageSource and ImageDestination.

Modelled on containers/image (the Go library under podman and skopeo): each place an image
can live (a registry, the local store, later an OCI layout or a docker-archive tar) has a
source and/or a destination, and pull, push, save and load are all `copy.copy(src, dst)`.
The contracts below are what `copy` relies on; a new transport must keep them.
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO

from rootless.image.manifest import Descriptor


class ImageSource(abc.ABC):
    """Reads one image (or one index and its images) from somewhere.

    - `get_manifest(instance_digest=None)` returns `(bytes, media_type)`: the manifest or
      index exactly as stored. With `instance_digest` it returns that entry of the index.
      A source verifies what it can check itself (the bytes against a digest in the
      reference or `instance_digest`, and against a digest the transport reports, such as
      Docker-Content-Digest) and raises RlError on a mismatch.
    - `get_blob(descriptor)` is a context manager yielding `(reader, size_or_None)`: the
      blob's bytes as stored (still compressed). The source does not verify the bytes: the
      consumer hashes the stream against `descriptor.digest` as it reads. Leaving the
      context closes the reader, also when the consumer stopped early.
    - `get_blob` may be called from several threads at once.
    - Errors are RlError subclasses; `rootless.image.registry.TransientError` marks one
      worth retrying (the caller decides whether to retry).
    - `close()` releases connections; the caller calls it exactly once, last.
    """

    name: str  # what the user would recognise, for messages

    @abc.abstractmethod
    def get_manifest(self, instance_digest: str | None = None) -> tuple[bytes, str]: ...

    @abc.abstractmethod
    def get_blob(self, descriptor: Descriptor) -> AbstractContextManager[
            tuple[BinaryIO, int | None]]: ...

    def close(self) -> None:  # noqa: B027 - optional for sources without resources
        pass


@dataclass
class LayerResult:
    diff_id: str
    size: int  # uncompressed content size as stored by the destination
    reused: bool  # nothing was transferred: the destination already had it


class ImageDestination(abc.ABC):
    """Writes one image somewhere. The order of calls is fixed:

    0. `reuse_config(descriptor)`, optional: the config bytes when already held.
    1. `reuse_layer(descriptor, diff_id)` for each layer, in order: returns a LayerResult when the
       destination already holds that layer (nothing needs to be read), else None.
    2. `put_layer(reader, descriptor, diff_id, progress)` for each layer not reused, possibly
       from several threads at once. It consumes the whole stream, verifies it against
       `descriptor.digest` and `descriptor.size`, and its uncompressed content against
       `diff_id`. On any failure (bad digest, truncated stream, hostile tar, ENOSPC, a
       cancelled transfer) nothing is visible under that digest or diff_id, the partial data
       is deleted and the exception propagates. A layer that was verified may stay in the
       destination's cache even if the image is never committed.
    3. `put_config(data, descriptor)` then `put_manifest(data, media_type, digest)`: the
       verified bytes; still invisible to readers of the destination.
    4. `commit(names)`: makes the image visible under `names`, atomically: after a crash at
       any moment before commit returns, the image is absent or complete.
    5. `close()`, exactly once, last, whether or not commit was called; it discards
       whatever uncommitted work remains.
    """

    def reuse_config(self, descriptor: Descriptor) -> bytes | None:
        """The config bytes if the destination already holds this image (no need to read
        it from the source), else None."""
        return None

    @abc.abstractmethod
    def reuse_layer(self, descriptor: Descriptor, diff_id: str) -> LayerResult | None: ...

    @abc.abstractmethod
    def put_layer(self, reader: BinaryIO, descriptor: Descriptor, diff_id: str,
                  progress) -> LayerResult: ...

    @abc.abstractmethod
    def put_config(self, data: bytes, descriptor: Descriptor) -> None: ...

    @abc.abstractmethod
    def put_manifest(self, data: bytes, media_type: str, digest: str) -> None: ...

    @abc.abstractmethod
    def commit(self, names: list[str]) -> str:
        """Returns the image id."""

    def close(self) -> None:  # noqa: B027
        pass

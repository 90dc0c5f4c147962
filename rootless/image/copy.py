"""copy(src, dst): the one routine behind pull (and later push, save, load, build output).

Reads the manifest (choosing the platform's entry of an index), the config, then every layer
the destination does not already hold, in parallel threads, each streamed from the source
straight into the destination, which verifies it. Then the config, the manifest, and the
commit that makes the image visible. See rootless/image/types.py for the contracts.
"""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from rootless.errors import RlError
from rootless.image import manifest as mf
from rootless.image.registry import BACKOFF, RETRIES, TransientError
from rootless.image.streams import Cancelled
from rootless.image.types import ImageDestination, ImageSource, LayerResult

MAX_PARALLEL = 4
MAX_CONFIG = 8 << 20


class NullProgress:
    """The progress protocol; this one shows nothing."""

    def layer_start(self, descriptor: mf.Descriptor) -> None: ...

    def layer_advance(self, descriptor: mf.Descriptor, n: int) -> None: ...

    def layer_done(self, descriptor: mf.Descriptor, status: str) -> None: ...


@dataclass
class CopyResult:
    image_id: str
    manifest_digest: str
    list_digest: str | None
    layers: list[LayerResult]
    downloaded: int  # layers transferred (not reused)


class _CancellableReader(io.RawIOBase):
    def __init__(self, raw, cancel: threading.Event) -> None:
        self.raw, self.cancel = raw, cancel

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.cancel.is_set():
            raise Cancelled("cancelled because another layer failed")
        return self.raw.read(n)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def read_verified(src: ImageSource, desc: mf.Descriptor, what: str,
                  limit: int = MAX_CONFIG) -> bytes:
    """A small blob (config) read whole and checked against its descriptor."""
    if desc.size > limit:
        raise RlError(f"{what} is {desc.size} bytes, more than the {limit} allowed")
    with src.get_blob(desc) as (reader, _):
        data = b""
        while len(data) <= desc.size:
            chunk = reader.read(desc.size + 1 - len(data))
            if not chunk:
                break
            data += chunk
    if len(data) != desc.size or mf.sha256_digest(data) != desc.digest:
        got = mf.sha256_digest(data)
        if len(data) < desc.size:
            raise RlError(f"{what} {desc.digest[:19]} is truncated: got {len(data)} of "
                          f"{desc.size} bytes")
        raise RlError(f"{what} digest mismatch: expected {desc.digest}, got {got}",
                      "the registry served corrupted or tampered content")
    return data


def resolve_manifest(src: ImageSource, platform: str | None) -> tuple[
        bytes, mf.Manifest, str | None]:
    """(manifest bytes, parsed manifest, index digest if it came from an index)."""
    data, media_type = src.get_manifest()
    doc = mf.parse(data, media_type)
    list_digest = None
    if isinstance(doc, mf.Index):
        entry = mf.choose(doc, mf.parse_platform(platform))
        list_digest = mf.sha256_digest(data)
        data, media_type = src.get_manifest(entry.digest)
        doc = mf.parse(data, media_type)
        if isinstance(doc, mf.Index):
            raise RlError("unsupported: a manifest list inside a manifest list")
    return data, doc, list_digest


def _check_platform(config: dict, platform: str | None) -> None:
    if not platform:
        return
    os_, arch, variant = mf.parse_platform(platform)
    have_arch = mf._ARCH.get(config.get("architecture", ""), config.get("architecture"))
    if config.get("os") != os_ or have_arch != arch or (
            variant and config.get("variant") and config.get("variant") != variant):
        have = mf.format_platform(config)
        raise RlError(f"the image is for {have}, not {platform}",
                      f"offered: {have}; drop --platform or choose another image")


def copy(src: ImageSource, dst: ImageDestination, *, names: list[str],
         platform: str | None = None, progress=None) -> CopyResult:
    progress = progress or NullProgress()
    data, doc, list_digest = resolve_manifest(src, platform)
    manifest_digest = mf.sha256_digest(data)
    config_bytes = dst.reuse_config(doc.config)
    if config_bytes is None:
        config_bytes = read_verified(src, doc.config, "image config")
    config = mf.parse_config(config_bytes, len(doc.layers))
    _check_platform(config, platform if list_digest is None else None)
    diff_ids = config["rootfs"]["diff_ids"]

    results: list[LayerResult | None] = [None] * len(doc.layers)
    todo = []
    for i, (desc, diff_id) in enumerate(zip(doc.layers, diff_ids, strict=True)):
        reused = dst.reuse_layer(desc, diff_id)
        if reused is not None:
            results[i] = reused
            progress.layer_done(desc, "exists")
        else:
            todo.append(i)

    cancel = threading.Event()

    def transfer(i: int) -> LayerResult:
        desc, diff_id = doc.layers[i], diff_ids[i]
        delay = BACKOFF
        for attempt in range(RETRIES):
            progress.layer_start(desc)
            try:
                with src.get_blob(desc) as (reader, _length):
                    result = dst.put_layer(
                        _CancellableReader(reader, cancel), desc, diff_id,
                        lambda n, d=desc: progress.layer_advance(d, n))
                progress.layer_done(desc, "exists" if result.reused else "done")
                return result
            except TransientError:
                if attempt == RETRIES - 1 or cancel.is_set():
                    raise
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    if todo:
        first_error: BaseException | None = None
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(todo)),
                                thread_name_prefix="rl-layer") as pool:
            futures = {pool.submit(transfer, i): i for i in todo}
            try:
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        results[i] = fut.result()
                    except Exception as exc:
                        cancel.set()
                        if first_error is None or isinstance(first_error, Cancelled):
                            first_error = exc
            except BaseException:
                # Ctrl-C while waiting: make the workers stop at their next read (they
                # delete their partial work) instead of finishing their layers.
                cancel.set()
                raise
        if first_error is not None:
            raise first_error

    dst.put_config(config_bytes, doc.config)
    dst.put_manifest(data, doc.media_type, manifest_digest)
    image_id = dst.commit(names)
    return CopyResult(image_id, manifest_digest, list_digest,
                      [r for r in results if r is not None], len(todo))

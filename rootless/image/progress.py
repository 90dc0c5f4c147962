"""Progress of a pull, push, load or build as events the caller receives.

The engine never chooses how progress is shown, nor looks at a terminal: the caller of a
verb passes `progress`, a callable that gets one `Event` at a time (the CLI a rich or
plain renderer, rootless/cli/progress.py; the API service one that writes Docker's JSON
progress messages; a test `list.append`), or None for no progress. Layer events come from
the copy's worker threads (rootless/image/copy.py): the callable must be safe to call
from several threads (list.append is).

Kinds of events:
- "message": a line of status ("Trying to pull ...", "Pulled ...", a build step's line)
- "layer-start", "layer-advance" (`current` bytes so far of `total`), "layer-done"
  (`status` "done" or "exists"): one blob of a copy, named by its `digest`
- "begin", "end": around one copy (a renderer may hold a live display between them)
- "step": a build's step line ("STEP 2/5: RUN make", "--> Using cache ...")
- "output": bytes a build's RUN step wrote (`data`) on `stream` (stdout or stderr)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from rootless.image.copy import NullProgress
from rootless.image.manifest import Descriptor


@dataclass(frozen=True)
class Event:
    kind: str
    text: str = ""
    digest: str = ""
    current: int = 0
    total: int = 0
    status: str = ""
    data: bytes = b""
    stream: str = ""  # "output": "stdout" or "stderr"

    @property
    def short_id(self) -> str:
        """The blob's id as Docker shows it (12 hex digits)."""
        return self.digest.partition(":")[2][:12]


Progress = Callable[[Event], None]


class Sink(NullProgress):
    """The copy's progress protocol (rootless/image/copy.py NullProgress), turned into
    Events for `emit`, plus `message` for the verbs' status lines."""

    def __init__(self, emit: Progress | None) -> None:
        self.emit = emit
        self._done: dict[str, int] = {}
        self._lock = threading.Lock()

    def message(self, text: str) -> None:
        if self.emit is not None:
            self.emit(Event("message", text=text))

    def __enter__(self) -> Sink:
        if self.emit is not None:
            self.emit(Event("begin"))
        return self

    def __exit__(self, *exc) -> None:
        if self.emit is not None:
            self.emit(Event("end"))

    def output(self, data: bytes) -> None:
        if self.emit is not None and data:
            self.emit(Event("output", data=data))

    def layer_start(self, descriptor: Descriptor) -> None:
        with self._lock:
            self._done[descriptor.digest] = 0
        if self.emit is not None:
            self.emit(Event("layer-start", digest=descriptor.digest, total=descriptor.size))

    def layer_advance(self, descriptor: Descriptor, n: int) -> None:
        with self._lock:
            current = self._done[descriptor.digest] = self._done.get(descriptor.digest, 0) + n
        if self.emit is not None:
            self.emit(Event("layer-advance", digest=descriptor.digest, current=current,
                            total=descriptor.size))

    def layer_done(self, descriptor: Descriptor, status: str) -> None:
        if self.emit is not None:
            self.emit(Event("layer-done", digest=descriptor.digest, current=descriptor.size,
                            total=descriptor.size, status=status))


def sink(progress: Progress | Sink | None) -> Sink:
    """What a verb works with, whatever its caller passed (a Sink passes through)."""
    return progress if isinstance(progress, Sink) else Sink(progress)

"""Per-layer progress of a copy, on stderr: a rich display on a terminal, nothing when
stderr is not a terminal or when quiet. rich is imported only when a terminal shows it."""

from __future__ import annotations

import sys
import threading

from rootless.image.copy import NullProgress
from rootless.image.manifest import Descriptor


def _short(desc: Descriptor) -> str:
    return desc.digest.partition(":")[2][:12]


class RichProgress(NullProgress):
    """A bar per layer (bytes downloaded of the layer's size)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), console=Console(stderr=True), transient=False)
        self._tasks: dict[str, int] = {}
        self._lock = threading.Lock()

    def _task(self, desc: Descriptor) -> int:
        with self._lock:
            if desc.digest not in self._tasks:
                self._tasks[desc.digest] = self._progress.add_task(
                    f"blob {_short(desc)}", total=desc.size)
            return self._tasks[desc.digest]

    def layer_start(self, descriptor: Descriptor) -> None:
        self._progress.reset(self._task(descriptor), total=descriptor.size)

    def layer_advance(self, descriptor: Descriptor, n: int) -> None:
        self._progress.advance(self._task(descriptor), n)

    def layer_done(self, descriptor: Descriptor, status: str) -> None:
        task = self._task(descriptor)
        label = "exists" if status == "exists" else "done"
        self._progress.update(task, completed=descriptor.size,
                              description=f"blob {_short(descriptor)} {label}")

    def __enter__(self):
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()


class _Quiet(NullProgress):
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def for_terminal(quiet: bool):
    """A rich display when stderr is a terminal, else nothing (logs stay clean); the
    caller prints one summary line when not quiet."""
    if not quiet and sys.stderr.isatty():
        return RichProgress()
    return _Quiet()

"""How the CLI shows the engine's progress events (rootless/image/progress.py): on a
terminal a rich display (a bar per layer), else the status lines alone (logs stay clean),
nothing with -q. The CLI picks; the engine only emits. rich is imported only when a
terminal shows it."""

from __future__ import annotations

import sys
import threading


class Plain:
    """Status lines on stderr; layers are not shown."""

    def __call__(self, event) -> None:
        if event.kind == "message":
            print(event.text, file=sys.stderr, flush=True)


class Rich:
    """A bar per layer (bytes of the layer's size), live between a copy's `begin` and
    `end` events; status lines above it. rich is imported at the first copy: `rl run` of
    a local image never pays for it."""

    def __init__(self) -> None:
        self._progress = None
        self._tasks: dict[str, int] = {}
        self._lock = threading.Lock()

    def _start(self) -> None:
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
        self._tasks = {}
        self._progress.start()

    def _task(self, event) -> int:
        if event.digest not in self._tasks:
            self._tasks[event.digest] = self._progress.add_task(
                f"blob {event.short_id}", total=event.total)
        return self._tasks[event.digest]

    def __call__(self, event) -> None:
        with self._lock:
            if event.kind == "begin":
                self._start()
            elif event.kind == "end":
                if self._progress is not None:
                    self._progress.stop()
                    self._progress = None
            elif event.kind == "message":
                print(event.text, file=sys.stderr, flush=True)
            elif self._progress is None:
                return
            elif event.kind == "layer-start":
                self._progress.reset(self._task(event), total=event.total)
            elif event.kind == "layer-advance":
                self._progress.update(self._task(event), completed=event.current)
            elif event.kind == "layer-done":
                label = "exists" if event.status == "exists" else "done"
                self._progress.update(self._task(event), completed=event.total,
                                      description=f"blob {event.short_id} {label}")


def for_terminal(quiet: bool):
    """The renderer for this process's stderr: None with -q, rich on a terminal, else
    the plain status lines."""
    if quiet:
        return None
    if sys.stderr.isatty():
        return Rich()
    return Plain()


class BuildPrinter:
    """`rl build`'s output: the steps and RUN's output on stdout (or all on stderr while
    stdout carries an archive, `-o -`), RUN's stderr on stderr, pulls as `pulls` shows
    them."""

    def __init__(self, pulls, *, to_stderr: bool = False) -> None:
        self.pulls = pulls
        self.out = sys.stderr if to_stderr else sys.stdout

    def __call__(self, event) -> None:
        if event.kind == "step":
            print(event.text, file=self.out, flush=True)
        elif event.kind == "output":
            f = sys.stderr if event.stream == "stderr" else self.out
            f.flush()
            f.buffer.write(event.data)
            f.buffer.flush()
        elif self.pulls is not None:
            self.pulls(event)


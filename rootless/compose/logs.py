"""The services' output as docker compose shows it: each line prefixed with the container's
name padded to the longest, `name  | line`, the prefix coloured per container (cyan,
yellow, green, magenta, blue, red, then their bright forms) when the output is a terminal.

Followed containers are read by one thread each (the engine's logs() is a blocking
iterator); lines are printed by the caller's thread only, so they never interleave.
"""

from __future__ import annotations

import queue
import sys
import threading

COLOURS = ["36", "33", "32", "35", "34", "31", "96", "93", "92", "95", "94", "91"]
_END = object()


class Printer:
    def __init__(self, names: list[str], *, colour: bool, timestamps: bool = False,
                 prefixed: bool = True, out=None) -> None:
        self.prefixed = prefixed
        self.width = max((len(n) for n in names), default=0)
        self.colour = colour
        self.timestamps = timestamps
        self.out = out or sys.stdout.buffer
        self.index: dict[str, int] = {}
        self.partial: dict[str, bytes] = {}

    def prefix(self, name: str) -> bytes:
        if not self.prefixed:
            return b""
        if name not in self.index:
            self.index[name] = len(self.index)
        text = f"{name:<{self.width}}  | "
        if self.colour:
            code = COLOURS[self.index[name] % len(COLOURS)]
            text = f"\x1b[{code}m{text}\x1b[0m"
        return text.encode()

    def write(self, name: str, ts: str, data: bytes) -> None:
        data = self.partial.pop(name, b"") + data
        lines = data.split(b"\n")
        if lines[-1]:
            self.partial[name] = lines[-1]
        for line in lines[:-1]:
            stamp = f"{ts} ".encode() if self.timestamps else b""
            self.out.write(self.prefix(name) + stamp + line + b"\n")
        self.out.flush()

    def flush(self, name: str) -> None:
        rest = self.partial.pop(name, b"")
        if rest:
            self.write(name, "", rest + b"\n")

    def note(self, text: str) -> None:
        self.out.write(text.encode() + b"\n")
        self.out.flush()


def show(conts: list, *, follow: bool, tail: int | None, timestamps: bool,
         colour: bool, prefixed: bool = True, on_exit=None,
         stop: threading.Event | None = None) -> None:
    """Print the logs of `conts` (engine Container records). With `follow`, until every
    container has stopped (or `stop` is set); `on_exit(container)` is called, on this
    thread, as each one's log ends."""
    from rootless.engine import containers as ctr
    from rootless.errors import NotFound

    printer = Printer([c.name for c in conts], colour=colour, timestamps=timestamps,
                      prefixed=prefixed)
    if not follow:
        for c in conts:
            for ts, _stream, data in ctr.logs(c.id, tail=tail):
                printer.write(c.name, ts, data)
            printer.flush(c.name)
        return
    q: queue.Queue = queue.Queue(maxsize=1024)

    def read(c) -> None:
        try:
            _started(c.id)
            for ts, _stream, data in ctr.logs(c.id, follow=True, tail=tail):
                q.put((c, ts, data))
                if stop is not None and stop.is_set():
                    break
        except NotFound:  # a container removed meanwhile: its log simply ends
            pass
        except Exception as exc:  # said, never a silent end of a service's output
            print(f"rl compose: cannot read the log of {c.name}: {exc!r}", file=sys.stderr)
        finally:
            q.put((c, None, _END))

    for c in conts:
        threading.Thread(target=read, args=(c,), daemon=True).start()
    live = len(conts)
    while live:
        try:
            c, ts, data = q.get(timeout=0.2)
        except queue.Empty:
            if stop is not None and stop.is_set():
                return
            continue
        if data is _END:
            live -= 1
            printer.flush(c.name)
            if on_exit is not None:
                on_exit(c, printer)
            continue
        printer.write(c.name, ts, data)


def _started(cid: str, patience: float = 10.0) -> None:
    """Wait (a little) for a container just started to be recorded as running: following
    the log of one still `created` would end at once."""
    import time

    from rootless.engine import containers as ctr

    deadline = time.monotonic() + patience
    while ctr.lookup(cid).state == "created" and time.monotonic() < deadline:
        time.sleep(0.05)

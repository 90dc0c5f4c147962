"""Import httpx without the parts a synchronous client never uses.

`import httpx` also imports trio (through httpcore's async locks, ~90 ms here) when trio is
installed, as it is for fuse_overlay, and httpx's own command line tool (rich, pygments).
Together that is about half of a `rl pull` of an image already present. Both are hidden
from the import with a None entry in sys.modules, which Python's import system treats as
ImportError, a case both libraries handle (trio=None; no `httpx` CLI). The entries are
removed again at once, so later imports of trio (the fuse server) are unaffected.
"""

from __future__ import annotations

import sys

_SKIP = ("trio", "httpx._main")


def load():
    module = sys.modules.get("httpx")
    if module is not None:
        return module
    hidden = [name for name in _SKIP if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import httpx
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return httpx

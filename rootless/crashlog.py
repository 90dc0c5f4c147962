"""Where the tracebacks of rl's own failures go: `<data dir>/rl.log`, never a user's terminal.

An unexpected exception (a bug of rl, or a case it does not know) is shown to the user as
one line, `rl: error: internal error: <Type>: <message> (details in <log>)`, exit 125; the
traceback is appended here, in the store's 0700 directory, to a file made 0600. Processes
rl forks that have no terminal of their own (the monitor of `rl run -d`, the fuse server
zygote, a sandbox that failed) append theirs here too. RL_DEBUG (any non-empty value)
prints the traceback on stderr as well. When the file passes MAX_BYTES it becomes
`rl.log.1` (the one before is dropped), so it never grows without bound.

Imports only os at load time: the monitor's and the zygote's lean interpreters use it.
"""

from __future__ import annotations

import os

NAME = "rl.log"
MAX_BYTES = 1 << 20
DEBUG_ENV = "RL_DEBUG"


def path() -> str:
    from rootless.store import paths

    return os.path.join(paths.data_dir(), NAME)


def record(exc: BaseException, where: str) -> str | None:
    """Append `exc`'s traceback, headed by `where` (e.g. "rl pull"), to the log; its path,
    or None when it could not be written (a full or read-only disk must not hide the
    original error behind a second one)."""
    import time
    import traceback

    try:
        from rootless.store import paths

        root = paths.ensure_store()
        target = os.path.join(root, NAME)
        try:
            if os.stat(target).st_size > MAX_BYTES:
                os.replace(target, target + ".1")
        except FileNotFoundError:
            pass
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "a") as f:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            f.write(f"--- {stamp} pid {os.getpid()} {where}\n")
            traceback.print_exception(exc, file=f)
        return target
    except Exception:
        return None


def summary(exc: BaseException) -> str:
    """`Type: first line of the message`, short enough for one line of error."""
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    if len(msg) > 300:
        msg = msg[:300] + "..."
    name = type(exc).__name__
    return f"{name}: {msg}" if msg else name


def debug() -> bool:
    return bool(os.environ.get(DEBUG_ENV))

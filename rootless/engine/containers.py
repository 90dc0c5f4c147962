"""Containers as verbs: create, run, start, attach, stop, kill, restart, rm, ps, logs, wait,
inspect, exec, top, cp, prune, unshare. Every front end calls these, by this module's
names; the code lives along its seams:

- the stored record (the `containers` table, `Container`, lookup, the writes):
  rootless/store/containerdb.py
- create and the bundle: rootless/engine/create.py
- stop, kill, wait, restart, update, rm, prune, rename: rootless/engine/lifecycle.py
- ps (its row model, PsRow), logs, inspect, top: rootless/engine/ctrinfo.py
- cp (copy_from, copy_to): rootless/engine/ctrcopy.py
- start, run, attach, resize and the monitor (foreground, detached, lean):
  rootless/engine/running.py
- exec and unshare: rootless/engine/execs.py; the caller's streams: rootless/engine/streams.py

Every name is looked up in its module on first use (PEP 562): `rl ps` imports what ps
needs, not create's or run's modules.

A running container has a monitor process (the `rl run` process itself in the
foreground, a detached double-forked one otherwise); its pid and start time are in the
row (rootless/store/containerdb.py).
"""

from __future__ import annotations

_WHERE = {
    **dict.fromkeys(("create",), "rootless.engine.create"),
    **dict.fromkeys(("copy_from", "copy_to"), "rootless.engine.ctrcopy"),
    **dict.fromkeys(("_ago", "container_doc", "inspect", "list_containers", "logs", "top",
                     "upper_size", "PsRow", "ps_rows"), "rootless.engine.ctrinfo"),
    **dict.fromkeys(("STOP_TIMEOUT", "kill", "parse_signal", "pause", "prune", "remove",
                     "rename", "restart", "stop", "update", "wait"),
                    "rootless.engine.lifecycle"),
    **dict.fromkeys(("run", "start", "attach", "resize", "RunResult", "finish_detached",
                     "relaunch", "monitor_process"), "rootless.engine.running"),
    **dict.fromkeys(("exec_", "exec_resize", "ExecHandle", "unshare"),
                    "rootless.engine.execs"),
    "Streams": "rootless.engine.streams",
    "RunOptions": "rootless.engine.spec",
    **dict.fromkeys(("Container", "containers_dir", "lookup"),
                    "rootless.store.containerdb"),
}

__all__ = sorted(_WHERE)  # resolved by __getattr__


def __getattr__(name: str):
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value  # the next lookup is a plain one
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))

"""Containers as verbs: create, run, start, stop, kill, restart, rm, ps, logs, wait,
inspect, exec, top, cp, prune, unshare. Every front end calls these, by this module's
names; the code lives along its seams:

- the stored record (the `containers` table, `Container`, lookup): rootless/store/containerdb.py
- create and the bundle: rootless/engine/create.py
- stop, kill, wait, restart, update, rm, prune, rename: rootless/engine/lifecycle.py
- ps, logs, inspect, top: rootless/engine/ctrinfo.py
- cp: rootless/engine/ctrcopy.py
- start, run, attach, resize, the monitor (foreground, detached, lean):
  rootless/engine/running.py; the streams: rootless/engine/streams.py
- exec, unshare: rootless/engine/execs.py

A running container has a monitor process (the `rl run` process itself in the
foreground, a detached double-forked one otherwise); its pid and start time are in the
row (rootless/store/containerdb.py).
"""

from __future__ import annotations

from rootless.engine.create import create
from rootless.engine.ctrcopy import copy_from, copy_to
from rootless.engine.ctrinfo import (
    _ago,
    container_doc,
    inspect,
    list_containers,
    logs,
    top,
    upper_size,
)
from rootless.engine.lifecycle import (
    STOP_TIMEOUT,
    kill,
    parse_signal,
    prune,
    remove,
    rename,
    restart,
    stop,
    update,
    wait,
)
from rootless.engine.spec import RunOptions
from rootless.store.containerdb import Container, containers_dir, lookup

# The facade: every verb of a container by the name front ends use (the code of most is
# in the modules above; the names with _ are for this module's own code, and _ago for the
# CLI's ps).
# (run, start, attach, resize, exec_, ...: in _MOVED below, resolved on first use)
__all__ = [
    "STOP_TIMEOUT", "Container", "RunOptions", "_ago", "container_doc", "containers_dir",
    "copy_from", "copy_to", "create", "inspect", "kill", "list_containers", "logs", "lookup",
    "parse_signal", "prune", "remove", "rename", "restart", "stop", "top", "update",
    "upper_size", "wait",
]


# -- start, run, attach, exec: their own modules, importable from here --------------------
# (looked up on first use, PEP 562: those modules import the ones above at their top)
_MOVED = {
    **dict.fromkeys(("run", "start", "attach", "resize", "RunResult", "finish_detached",
                     "relaunch", "monitor_process"), "running"),
    **dict.fromkeys(("exec_", "exec_resize", "ExecHandle", "unshare"), "execs"),
    "Streams": "streams",
}


def __getattr__(name: str):
    mod = _MOVED.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"rootless.engine.{mod}"), name)

"""Containers as verbs: create, run, start, stop, kill, restart, rm, ps, logs, wait,
inspect, exec, top, cp, prune, unshare. Every front end calls these, by this module's
names; the code lives along its seams:

- the stored record (the `containers` table, `Container`, lookup): rootless/store/containerdb.py
- create and the bundle: rootless/engine/create.py
- stop, kill, wait, restart, update, rm, prune, rename: rootless/engine/lifecycle.py
- ps, logs, inspect, top: rootless/engine/ctrinfo.py
- cp: rootless/engine/ctrcopy.py
- start, run, attach, resize and the monitor (foreground, detached, lean):
  rootless/engine/running.py
- exec and unshare: rootless/engine/execs.py; the caller's streams: rootless/engine/streams.py

A running container has a monitor process (the `rl run` process itself in the
foreground, a detached double-forked one otherwise); its pid and start time are in the
row (rootless/store/containerdb.py).
"""

from __future__ import annotations

from rootless.engine.create import (
    _extra_options,
    _healthcheck_of,
    _single_mapping,
    _write_seccomp,
    create,
)
from rootless.engine.create import check_unsupported as _check_unsupported
from rootless.engine.create import check_workdir as _check_workdir
from rootless.engine.ctrcopy import _split_cp, cp
from rootless.engine.ctrinfo import (
    _ago,
    _devices_of,
    _health_of,
    _iso,
    _logs,
    _mounts_of,
    _network_settings,
    _security_opt,
    _shm_size,
    container_doc,
    inspect,
    list_containers,
    logs,
    top,
    upper_size,
)
from rootless.engine.ctrinfo import maps_of as _maps_of
from rootless.engine.ctrinfo import running_container as _running
from rootless.engine.lifecycle import (
    STOP_TIMEOUT,
    _end_restarting,
    _rmtree,
    _wait_exit,
    kill,
    parse_signal,
    pause,
    prune,
    remove,
    rename,
    restart,
    stop,
    update,
    wait,
)
from rootless.engine.lifecycle import remove_files as _remove_files
from rootless.engine.lifecycle import set_manual_stop as _set_manual_stop
from rootless.engine.lifecycle import stop_signal_of as _stop_signal
from rootless.engine.lifecycle import stop_timeout_of as _stop_timeout
from rootless.engine.spec import RunOptions
from rootless.store.containerdb import Container, containers_dir, lookup
from rootless.store.containerdb import db as _db
from rootless.store.containerdb import lookup_in as _lookup
from rootless.store.containerdb import monitor_alive as _monitor_alive
from rootless.store.containerdb import new_name as _new_name
from rootless.store.containerdb import proc_start as _proc_start
from rootless.store.containerdb import refresh as _refresh
from rootless.store.containerdb import validate_name as _validate_name

# The facade: every verb by the name front ends use, and the private names other modules
# of rl still reach here (to move to the modules' public names).
__all__ = [
    "STOP_TIMEOUT", "Container", "RunOptions", "_ago", "_check_unsupported", "_check_workdir",
    "_db", "_devices_of", "_end_restarting", "_extra_options", "_health_of", "_healthcheck_of",
    "_iso", "_logs", "_lookup", "_maps_of", "_monitor_alive", "_mounts_of",
    "_network_settings", "_new_name", "_proc_start", "_refresh", "_remove_files", "_rmtree",
    "_running", "_security_opt", "_set_manual_stop", "_shm_size", "_single_mapping",
    "_split_cp", "_stop_signal", "_stop_timeout", "_validate_name", "_wait_exit",
    "_write_seccomp", "container_doc", "containers_dir", "cp", "create", "inspect",
    "kill", "list_containers", "logs", "lookup", "parse_signal", "pause", "prune", "remove",
    "rename", "restart", "stop", "top", "update", "upper_size",
    "wait",
]


# -- start, run, attach, exec: their own modules, importable from here --------------------
# (looked up on first use, PEP 562: `rl ps` and the like need none of them)
_MOVED = {
    **dict.fromkeys(("run", "start", "attach", "resize", "RunResult", "finish_detached",
                     "relaunch", "_drive", "_launch", "_start_detached", "_become_lean",
                     "_continue_detached", "_warm_up", "_forget_unstarted", "_set_running",
                     "_set_exited", "_monitor_log", "_health_timer_args",
                     "_detach_from_caller", "monitor_process"), "running"),
    **dict.fromkeys(("exec_", "exec_resize", "ExecHandle", "unshare"), "execs"),
    "Streams": "streams",
}


def __getattr__(name: str):
    mod = _MOVED.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"rootless.engine.{mod}"), name)

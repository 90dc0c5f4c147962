"""A container's lifecycle after its start: signals (kill), stop, wait, restart, update
of the restart policy, rm, prune, rename. The start and the monitor:
rootless/engine/containers.py; the record: rootless/store/containerdb.py."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from rootless.engine import events
from rootless.errors import Conflict, InvalidArgument, NotFound, RlError
from rootless.store import catalog, containerdb, paths
from rootless.store.containerdb import (
    Container,
    db,
    lookup,
    lookup_in,
    monitor_alive,
    validate_name,
)

STOP_TIMEOUT = 10


def update(ref: str, *, restart: str | None = None, resources: dict | None = None) -> Container:
    """`rl update`: the restart policy (a running container's monitor reads it when the
    container exits, so it applies at once); resource limits (refused as at create where
    the host has no cgroup for them) are kept, and written to a running container's
    cgroup (engine/cgroups.py)."""
    from rootless.engine import cgroups
    from rootless.engine import restart as restart_mod

    c = lookup(ref)
    if resources:
        with db() as conn, catalog.transaction(conn):
            now = containerdb.get_in(conn, c.id)
            if now is None:
                raise NotFound(f"no such container: {ref}")
            # checked against the limits stored now, in the transaction: two updates at
            # once cannot store a --memory above the --memory-swap the other one set
            options = now.options
            current = options.get("limits") or {}
            limits = cgroups.refuse_resource_flags(resources, current=current)
            if limits:
                options["limits"] = {**current, **limits}
                # the cgroup first (it has none when the container does not run: False):
                # a value it refuses rolls the row back, so a refused update is not
                # stored (files it wrote before the refused one stay written)
                cgroups.update(c.short_id, options["limits"])
                containerdb.update(conn, c.id, options=options)
        c = lookup(c.id)
    if restart is None:
        return c
    policy = restart_mod.parse(restart)
    if policy and c.options.get("rm"):
        raise InvalidArgument(f"container {c.name} was made with --rm: it cannot get a "
                              "restart policy", "make it again without --rm")
    with db() as conn, catalog.transaction(conn):
        now = containerdb.get_in(conn, c.id)
        if now is None:
            raise NotFound(f"no such container: {ref}")
        options = now.options
        options.pop("restart", None)
        if policy:
            options["restart"] = policy
        containerdb.update(conn, c.id, options=options)
    return lookup(c.id)


def set_manual_stop(c: Container, stopped: bool = True) -> None:
    """Docker's HasBeenManuallyStopped: set by a stop (the restart policy then does not
    restart it), cleared, with the restart count, by a start."""
    with db() as conn, catalog.transaction(conn):
        if stopped:
            containerdb.update(conn, c.id, manual_stop=1)
        else:
            containerdb.update(conn, c.id, manual_stop=0, restart_count=0, restart_delay=0)


def _end_restarting(c: Container, timeout: float) -> Container:
    """A container backing off before a restart: its monitor waits for SIGTERM
    (rootless/engine/restart.py), sees the manual stop and exits."""
    if monitor_alive(c):
        try:
            os.kill(c.monitor_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    _wait_exit(c, timeout)
    return lookup(c.id)


def parse_signal(text: str | int) -> int:
    if isinstance(text, int) or str(text).isdigit():
        n = int(text)
        if 0 < n < 65:
            return n
        raise InvalidArgument(f"invalid signal {text}")
    name = str(text).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"invalid signal {text!r}", "use a name like TERM or a number") from None


def kill(ref: str, sig: str | int = "KILL") -> Container:
    from rootless.runtime import join

    signum = parse_signal(sig)
    c = lookup(ref)
    if c.state != "running" or c.pid is None:
        raise Conflict(f"container {c.name} is not running")
    if signum in (signal.SIGKILL, stop_signal_of(c)):  # Docker's ExitOnNext: no restart
        set_manual_stop(c)
    try:
        join.kill(c.pid, signum)
    except ProcessLookupError:
        pass
    return c


def _wait_exit(c: Container, timeout: float | None) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while monitor_alive(c):
        if deadline is not None and time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return True


def stop(ref: str, timeout: int | None = None, sig: str | None = None) -> Container:
    """The stop signal (`sig`, else the image's STOPSIGNAL, else TERM), then SIGKILL after
    `timeout` seconds (default 10; 0: at once)."""
    stopsig = parse_signal(sig) if sig else None  # a bad signal fails before anything
    c = lookup(ref)
    if c.state in ("running", "restarting"):
        set_manual_stop(c)
    if c.state == "restarting":
        return _end_restarting(c, 10)
    if c.state != "running":
        return c
    if stopsig is None:
        stopsig = stop_signal_of(c)
    t = stop_timeout_of(c) if timeout is None else timeout
    from rootless.runtime import join

    if t != 0:  # -1 (--stop-timeout -1): wait as long as it takes
        try:
            join.kill(c.pid, stopsig)
        except (ProcessLookupError, PermissionError):
            pass
        if _wait_exit(c, None if t < 0 else t):
            return _after_stop(c)
    try:
        join.kill(c.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _wait_exit(c, 10)
    return _after_stop(c)


def _after_stop(c: Container) -> Container:
    """The stopped container's record; an --rm one is removed at its exit, which is the
    stop succeeding (as Docker's), not "no such container"."""
    try:
        return lookup(c.id)
    except NotFound:
        if not c.options.get("rm"):
            raise
        c.state = "exited"
        return c


def stop_signal_of(c: Container) -> int:
    """--stop-signal, else the image's STOPSIGNAL, else SIGTERM."""
    try:
        cfg_sig = c.spec().get("annotations", {}).get("io.rl.stop-signal")
        if cfg_sig:
            return parse_signal(cfg_sig)
    except (OSError, RlError):
        pass
    return signal.SIGTERM


def stop_timeout_of(c: Container) -> int:
    """--stop-timeout, else 10 seconds."""
    t = c.options.get("stop_timeout")
    return STOP_TIMEOUT if t is None else int(t)


def wait(ref: str, condition: str = "not-running", *, gone=None,
         timeout: float | None = None) -> int | None:
    """Docker's wait (`rl wait`, the API's conditions): engine/waitcond.py."""
    from rootless.engine import waitcond

    return waitcond.wait(ref, condition, gone=gone, timeout=timeout)


def pause(ref: str, *, unpause: bool = False) -> Container:
    """`rl pause`/`unpause`: through the container's cgroup.freeze where cgroup v2 is
    delegated; refused with this host's reason elsewhere (engine/cgroups.py). The record
    keeps when it was paused: a pause older than the last start is void."""
    from rootless.engine import cgroups

    c = lookup(ref)
    if c.state != "running":
        raise Conflict(f"container {c.name} is not running")
    rep = cgroups.probe()
    if not rep.usable:  # no freezer on this host: said first, whatever the state
        cgroups.refuse_freeze(c.name, "unpause" if unpause else "pause", rep)
    if is_paused(c) != unpause:
        raise Conflict(f"container {c.name} is " + ("not paused" if unpause
                                                      else "already paused"))
    cgroups.freeze(c.name, c.short_id, not unpause, rep)
    with db() as conn, catalog.transaction(conn):
        now = containerdb.get_in(conn, c.id)
        if now is not None:
            options = now.options
            options.pop("paused", None)
            if not unpause:
                options["paused"] = time.time()
            containerdb.update(conn, c.id, options=options)
    events.container("unpause" if unpause else "pause", c)
    return lookup(c.id)


def is_paused(c: Container) -> bool:
    """Paused since its last start (inspect's State.Paused, ps's "(Paused)")."""
    from rootless.format.docker_shapes import paused

    return paused(c)


def restart(ref: str, timeout: int | None = None, sig: str | None = None) -> Container:
    from rootless.engine.running import start

    c = stop(ref, timeout, sig)
    start(c.id)
    return lookup(c.id)


def remove_files(c: Container, *, volumes: bool = False) -> None:
    """Forget and delete the container; `volumes`: its anonymous volumes too (rm -v, --rm)."""
    from rootless.engine import mounts

    with db() as conn, catalog.transaction(conn):
        containerdb.delete(conn, c.id)
    events.container("destroy", c)
    mounts.release(c.id, remove_anonymous=volumes)
    from rootless.engine import netwire

    netwire.forget(c.id, c.options)
    _rmtree(c.dir)
    sock = paths.runtime_dir() / f"slirp-{c.short_id}.sock"
    try:
        sock.unlink()
    except OSError:
        pass
    from rootless.engine import cgroups

    cgroups.remove(c.short_id)  # its processes are gone: stopped above (a no-op without one)


def _rmtree(path: Path) -> None:
    """Remove a container dir; files the container created as another uid sit in the
    upper dir owned by subordinate ids, which the user can only remove from inside the
    user namespace."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        from rootless.runtime import userns

        userns.rmtree(str(path))


def remove(ref: str, *, force: bool = False, volumes: bool = False) -> Container:
    c = lookup(ref)
    if c.state in ("running", "restarting"):
        if not force:
            raise Conflict(f"container {c.name} is running",
                           "stop it first (rl stop) or use rl rm -f")
        c = stop(c.id, timeout=0)
    remove_files(c, volumes=volumes)
    return c


def prune(filters: dict[str, list[str]] | None = None) -> list[str]:
    """Remove every container that is not running and passes the prune filters (label,
    label!, until: rootless/engine/filters.py); returns their ids."""
    from rootless.engine.filters import prune_predicate

    keep = prune_predicate(filters or {})
    removed = []
    from rootless.engine.ctrinfo import list_containers

    for c in list_containers(all_=True):
        if c.state not in ("running", "restarting") and keep(c.labels, c.created):
            remove_files(c)
            removed.append(c.id)
    return removed


def rename(ref: str, new_name: str) -> Container:
    """Give a container another name (any state, as Docker): its row, the name its volumes
    list it under and its endpoints on user-defined networks (the name other containers
    resolve it by once it starts again)."""
    validate_name(new_name)
    with db() as conn, catalog.transaction(conn):
        c = lookup_in(ref, conn)
        if c.name == new_name:
            raise InvalidArgument(f"renaming a container with the same name as its current "
                                  f"name: {new_name}", "give another name")
        taken = containerdb.name_owner(conn, new_name)
        if taken:
            raise Conflict(f"the container name {new_name} is already in use by container "
                           f"{taken[:12]}", "remove that container or choose another name")
        containerdb.update(conn, c.id, name=new_name)
        for table, col in (("container_volumes", "container"), ("network_endpoints", "name")):
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                            (table,)).fetchone():
                conn.execute(f"UPDATE {table} SET {col}=? WHERE container_id=?",
                             (new_name, c.id))
    old, c.name = c.name, new_name
    # its peers on user networks list it by name in their /etc/hosts (and it itself)
    from rootless.engine import netwire

    try:
        netwire.rewrite_hosts(c.id)
    except (OSError, RlError):  # the name is changed; a peer's file will follow at its start
        pass
    events.container("rename", c, oldName=old)
    return c

"""Containers as verbs: create, run, start, stop, kill, restart, rm, ps, logs, wait,
inspect, exec, top, cp, prune, unshare. Every front end calls these.

A container is a row in the catalog table `containers` plus a directory
`<data_dir>/containers/<id>/` holding config.json (the OCI runtime spec), rootfs.json (the
root filesystem description), the upper and work dirs of the union mount, the files
bind-mounted on /etc/hosts, /etc/hostname, /etc/resolv.conf, and ctr.log.

State: `created`, `running`, `exited`. A running container has a monitor process (the
`rl run` process itself in the foreground, a detached double-forked one otherwise); its pid
and start time are in the row, so that `rl ps` tells the truth after the monitor or the
machine died (a row says `running` but its monitor is gone: it is shown, and stored, as
exited).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from rootless.engine import events
from rootless.engine.spec import RunOptions
from rootless.errors import Conflict, InvalidArgument, NotFound, RlError
from rootless.store import catalog, paths

catalog.register_schema("containers", (
    """CREATE TABLE IF NOT EXISTS containers (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        image_id TEXT NOT NULL,
        image TEXT NOT NULL,
        command TEXT NOT NULL,
        created REAL NOT NULL,
        labels TEXT NOT NULL DEFAULT '{}',
        options TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL DEFAULT 'created',
        monitor_pid INTEGER,
        monitor_start INTEGER,
        pid INTEGER,
        exit_code INTEGER,
        started REAL,
        finished REAL,
        restart_count INTEGER NOT NULL DEFAULT 0,
        restart_delay REAL NOT NULL DEFAULT 0,
        manual_stop INTEGER NOT NULL DEFAULT 0,
        health TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id)",
    # container_volumes (which container uses which volume) is the volume store's table:
    # rootless/store/volumes.py, filled and emptied by rootless/engine/mounts.py
))

STOP_TIMEOUT = 10
_ADJ = ("brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid",
        "merry", "nimble", "proud", "quiet", "sharp", "tender", "vivid", "witty", "zen")
_NOUN = ("ada", "babbage", "curie", "darwin", "euler", "fermi", "gauss", "hopper", "kepler",
         "lovelace", "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wirth")


@dataclass
class Container:
    id: str
    name: str
    image_id: str
    image: str
    command: list[str]
    created: float
    labels: dict
    options: dict
    state: str
    monitor_pid: int | None
    monitor_start: int | None
    pid: int | None
    exit_code: int | None
    started: float | None
    finished: float | None
    restart_count: int = 0  # restarts by the policy since the last manual start
    restart_delay: float = 0  # the last back-off (rootless/engine/restart.py)
    manual_stop: int = 0  # stopped by the user: the restart policy does not apply
    health: str | None = None  # JSON State.Health (rootless/engine/health.py)

    @property
    def dir(self) -> Path:
        return containers_dir() / self.id

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @classmethod
    def from_row(cls, row) -> Container:
        d = dict(row)
        d["command"] = json.loads(d["command"])
        d["labels"] = json.loads(d["labels"])
        d["options"] = json.loads(d["options"])
        return cls(**d)

    def spec(self) -> dict:
        with open(self.dir / "config.json") as f:
            return json.load(f)

    def status_text(self) -> str:
        """ps's STATUS column, as Docker words it (Up, Exited, Restarting, health)."""
        from rootless.format.docker_shapes import docker_status

        return docker_status(self)


def _ago(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return "Less than a minute" if s >= 1 else "Less than a second"
    if s < 3600:
        return f"{s // 60} minute{'s' if s >= 120 else ''}"
    if s < 86400:
        return f"{s // 3600} hour{'s' if s >= 7200 else ''}"
    return f"{s // 86400} day{'s' if s >= 172800 else ''}"


def containers_dir() -> Path:
    return paths.data_dir() / "containers"


@contextlib.contextmanager
def _db(conn=None):
    """A catalog connection, closed on exit (not left to the garbage collector: a
    connection object that survives into a forked child and is finalized there would
    checkpoint the WAL through shared memory behind the other processes' backs; seen here
    as an exit code written by the monitor and then lost)."""
    if conn is not None:
        yield conn
        return
    c = catalog.connect()
    try:
        yield c
    finally:
        c.close()


def _proc_start(pid: int) -> int | None:
    """The start time of a live process (None when gone or a zombie): with the pid, it
    names the process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
        fields = raw[raw.rindex(b")") + 2:].split()
        if fields[0] in (b"Z", b"X"):
            return None
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _monitor_alive(c: Container) -> bool:
    return (c.monitor_pid is not None and c.monitor_start is not None
            and _proc_start(c.monitor_pid) == c.monitor_start)


def _refresh(conn, c: Container) -> Container:
    """A row that says running but whose monitor is gone becomes exited (the truth)."""
    if c.state in ("running", "restarting") and not _monitor_alive(c):
        with catalog.transaction(conn):
            row = conn.execute("SELECT * FROM containers WHERE id=?", (c.id,)).fetchone()
            if row is None:
                return c
            c = Container.from_row(row)
            if c.state in ("running", "restarting") and not _monitor_alive(c):
                from rootless.runtime.sandbox import trace

                trace(f"refresh: monitor {c.monitor_pid} gone ({_proc_start(c.monitor_pid)} "
                      f"!= {c.monitor_start})")
                conn.execute("UPDATE containers SET state='exited', finished=?, pid=NULL "
                             "WHERE id=?", (time.time(), c.id))
                c.state, c.finished, c.pid = "exited", time.time(), None
    return c


def lookup(ref: str, conn=None) -> Container:
    with _db(conn) as conn:
        return _lookup(ref, conn)


def _lookup(ref: str, conn) -> Container:
    rows = conn.execute("SELECT * FROM containers WHERE id=? OR name=?", (ref, ref)).fetchall()
    if not rows and len(ref) >= 3 and all(ch in "0123456789abcdef" for ch in ref):
        rows = conn.execute("SELECT * FROM containers WHERE id LIKE ?", (ref + "%",)).fetchall()
        if len(rows) > 1:
            raise InvalidArgument(f"container id prefix {ref} is ambiguous",
                                  "give more characters of the id")
    if not rows:
        raise NotFound(f"no such container: {ref}")
    return _refresh(conn, Container.from_row(rows[0]))


def list_containers(all_: bool = False, filters: dict[str, list[str]] | None = None,
                    last: int | None = None) -> list[Container]:
    """Containers, newest first: the running ones, or all (`all_`, or a `status` filter,
    or `last`: the `last` newest of every state, as `docker ps -n`), that pass Docker's
    filters (rootless/engine/filters.py)."""
    with _db() as conn:
        rows = conn.execute("SELECT * FROM containers ORDER BY created DESC").fetchall()
        out = [_refresh(conn, Container.from_row(r)) for r in rows]
    if filters:
        from rootless.engine import filters as flt

        out = flt.containers(out, filters, lookup)
    if last is not None and last >= 0:
        return out[:last]
    if all_ or (filters and "status" in filters):
        return out
    return [c for c in out if c.state in ("running", "restarting")]


def _detach_from_caller() -> None:
    """In a forked child: a new session, a grandchild (the caller reaps the child at
    once), stdio on /dev/null, / as cwd, SIGHUP ignored: a process that outlives `rl`."""
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.chdir("/")
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def upper_size(c: Container) -> int:
    """Bytes of the files the container wrote (its upper dir), for `ps -s` and `system df`.

    The upper dir is the container's to write: walked by directory fd with os.fwalk, which
    never follows a symlink and opens each directory relative to its parent's fd (and
    checks it is the directory it listed); entries this user cannot read (owned by a
    subordinate uid, mode 0700) are not counted."""
    from rootless.linux import safepath

    return safepath.tree_size(c.dir / "upper")


# -- create -------------------------------------------------------------------------------

def _check_unsupported(opts: RunOptions) -> None:
    """What can be refused before anything of the container exists: the host's rootfs
    backend and /dev/fuse, flags this host cannot honour, malformed values."""
    from rootless.runtime import rootfs

    rootfs.checked_backend()  # an unusable backend or /dev/fuse: before anything exists
    from rootless.engine import cgroups

    # never ignored: refused with the reason found on this host (engine/cgroups.py)
    cgroups.refuse_resource_flags({"--memory": opts.memory, "--cpus": opts.cpus,
                                   **opts.resources})
    _check_workdir(opts.workdir)
    from rootless.engine import restart

    _healthcheck_of(opts, {})  # bad --health-* values: before any pull
    from rootless.engine import netflags, procflags

    netflags.check(opts)
    from rootless.engine import runextras

    runextras.check(opts)  # --pid/--ipc/--uts, --log-*, --ip, --volumes-from, --platform
    from rootless.network.modes import parse_network

    kind = parse_network(opts.network).kind
    for item in opts.sysctls:
        procflags.parse_sysctl(item, kind)
    if opts.shm_size is not None:
        procflags.parse_size(opts.shm_size, "--shm-size")
    for d in opts.devices:
        procflags.parse_device(d)
    for g in opts.group_add:
        procflags.parse_group(g)
    procflags.parse_stop_timeout(opts.stop_timeout)
    if opts.stop_signal is not None:
        parse_signal(opts.stop_signal)
    procflags.check_cidfile(opts.cidfile)
    for f in opts.label_files:
        procflags.parse_label_file(f)
    if restart.parse(opts.restart) and opts.rm:
        raise InvalidArgument("--restart and --rm cannot be used together",
                              "drop --rm, or --restart (a removed container cannot restart)")
    from rootless.engine import security

    security.parse(opts.security_opt)  # a bad --security-opt: before any pull
    if opts.userns not in (None, "", "keep-id", "host"):
        raise InvalidArgument(f"unsupported --userns value {opts.userns!r}",
                              "use --userns=keep-id")


def _check_workdir(workdir: str | None) -> None:
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument(f"the working directory {workdir!r} is not an absolute path",
                              "give -w an absolute path inside the container, e.g. -w /app")


def _pick(words: tuple[str, ...]) -> str:
    return words[int.from_bytes(os.urandom(2), "big") % len(words)]


def _new_name(conn) -> str:
    for _ in range(100):
        name = f"{_pick(_ADJ)}_{_pick(_NOUN)}"
        if conn.execute("SELECT 1 FROM containers WHERE name=?", (name,)).fetchone() is None:
            return name
    return "rl_" + os.urandom(4).hex()


def _validate_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
        raise InvalidArgument(f"invalid container name {name!r}",
                              "use letters, digits, '_', '.' and '-'")


def _single_mapping(uid_maps: list[dict]) -> bool:
    return sum(int(m["size"]) for m in uid_maps) <= 1


def create(opts: RunOptions, *, maps=None) -> Container:
    """Resolve the image, write the bundle and the catalog row. Nothing is left behind
    when this raises."""
    from rootless.engine import spec as spec_mod
    from rootless.runtime import rootfs, userns

    _check_unsupported(opts)
    if opts.name is not None:
        _validate_name(opts.name)
    from rootless.engine import images

    image = images.ensure_image(opts.image, pull=opts.pull, quiet=opts.quiet,
                                platform=opts.platform)
    from rootless.engine import mounts, netflags, netwire, nsflags, procflags, runextras

    ns_modes = nsflags.plan(opts, netwire.mode_of(opts.network).kind)

    labels: dict = {}
    for f in opts.label_files:  # then --label over them, as Docker's
        labels.update(procflags.parse_label_file(f))
    labels.update(opts.labels)

    exposed = netflags.exposed(image.config, opts)
    image_config = dict(image.config, config=dict(image.config.get("config") or {},
                                                  ExposedPorts={p: {} for p in exposed}))

    # Checked before anything is made: mounts, network, published ports (allocated here).
    try:
        mount_plan = mounts.plan(volumes=runextras.volumes_from(opts.volumes_from, opts.volumes)
                                 + opts.volumes, mounts=opts.mounts, tmpfs=opts.tmpfs,
                                 image_config=image.config)
        _mode, port_maps = netwire.plan(network=opts.network, publish=opts.publish,
                                        publish_all=opts.publish_all, image_config=image_config,
                                        userns=opts.userns, aliases=opts.network_aliases,
                                        extra_networks=opts.extra_networks)
    except BaseException:
        netwire.abandon(opts.network)
        raise
    if maps is None:
        maps = userns.plan(opts.userns == "keep-id")
    cid = os.urandom(32).hex()
    hostname = opts.hostname or nsflags.default_hostname(ns_modes, cid)
    paths.runtime_dir(create=True)  # refused before anything is made if another user's
    paths.ensure_store()
    base = containers_dir()
    base.mkdir(exist_ok=True)
    tmp = base / f".{cid}.tmp"
    final = base / cid
    uid_maps, gid_maps = maps.to_oci()
    try:
        tmp.mkdir()
        for sub in ("upper", "work", "merged"):
            (tmp / sub).mkdir()
        spec = spec_mod.build(image_config=image.config, opts=opts, hostname=hostname,
                              bundle=str(final), uid_maps=uid_maps, gid_maps=gid_maps,
                              loopback_guard=netwire.loopback_guarded(opts.network, port_maps),
                              ns_modes=ns_modes)
        _write_seccomp(tmp, spec)
        spec["mounts"] += mount_plan.realize()
        etc = netflags.apply(netwire.files(opts.network, hostname), opts)
        for fname, content in etc.items():
            (tmp / fname).write_text(content)
        with open(tmp / "config.json", "w") as f:
            json.dump(spec, f, indent=1)
        rootfs.RootfsSpec(
            lowerdirs=[str(d) for d in reversed(image.layer_dirs)],
            upperdir=str(final / "upper"), workdir=str(final / "work"),
            mountpoint=str(final / "merged"), backend=rootfs.default_backend(),
            log=str(final / "rootfs.log"),
            # With a single id mapping the image's other owners (1000, nobody...) are not
            # mapped; the kernel would refuse even root to write their files. Show them as
            # root, as podman does with ignore_chown_errors; the layers keep the real ids.
            options={"squash_unmapped": True} if _single_mapping(uid_maps) else {},
        ).save(str(tmp / "rootfs.json"))
        options = {"rm": opts.rm, "tty": opts.tty, "interactive": opts.interactive,
                   "network": opts.network, "userns": opts.userns or "",
                   "volumes": opts.volumes, "init": opts.init,
                   "ports": [m.to_dict() for m in port_maps], "aliases": opts.network_aliases,
                   **({"networks": netwire.plan_networks(opts)} if opts.extra_networks else {}),
                   "exposed": exposed,
                   **({"add_hosts": opts.add_hosts} if opts.add_hosts else {})}
        options.update(_extra_options(opts, image.config))
        options.update(runextras.options(opts, ns_modes))
        conn = catalog.connect()
        with contextlib.closing(conn), catalog.transaction(conn):
            name = opts.name or _new_name(conn)
            if conn.execute("SELECT 1 FROM containers WHERE name=?", (name,)).fetchone():
                raise Conflict(f"the container name {name!r} is already in use",
                               "remove that container (rl rm) or choose another --name")
            tmp.rename(final)
            try:
                conn.execute(
                    "INSERT INTO containers (id, name, image_id, image, command, created,"
                    " labels, options) VALUES (?,?,?,?,?,?,?,?)",
                    (cid, name, image.id, opts.image, json.dumps(spec["process"]["args"]),
                     time.time(), json.dumps(labels), json.dumps(options)))
                mounts.record(conn, cid, name, mount_plan)
            except BaseException:
                final.rename(tmp)
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        mount_plan.undo()
        netwire.abandon(opts.network)
        raise
    if opts.cidfile:
        try:
            procflags.write_cidfile(opts.cidfile, cid)
        except BaseException:
            _remove_files(lookup(cid), volumes=True)
            raise
    c = lookup(cid)
    events.container("create", c)
    return c


def _extra_options(opts: RunOptions, image_config: dict) -> dict:
    """What the monitor and the lifecycle verbs need of the flags (restart policy, stop
    timeout, health check), kept in the row's options."""
    from rootless.engine import restart

    out: dict = {}
    policy = restart.parse(opts.restart)
    if policy:
        out["restart"] = policy
    from rootless.engine import procflags

    if opts.stop_timeout is not None:
        out["stop_timeout"] = procflags.parse_stop_timeout(opts.stop_timeout)
    if opts.privileged:
        out["privileged"] = True
    # for inspect's HostConfig (the values themselves are in the spec and the /etc files)
    for key, val in (("dns", opts.dns), ("dns_search", opts.dns_search),
                     ("dns_options", opts.dns_options), ("group_add", opts.group_add),
                     ("devices", opts.devices), ("sysctls", opts.sysctls)):
        if val:
            out[key] = list(val)
    hc = _healthcheck_of(opts, image_config)
    if hc:
        out["healthcheck"] = hc
    return out


def _healthcheck_of(opts: RunOptions, image_config: dict) -> dict | None:
    from rootless.engine import health

    return health.config((image_config.get("config") or {}).get("Healthcheck"),
                         cmd=opts.health_cmd, interval=opts.health_interval,
                         timeout=opts.health_timeout, retries=opts.health_retries,
                         start_period=opts.health_start_period,
                         start_interval=opts.health_start_interval,
                         disabled=opts.no_healthcheck)


def _write_seccomp(bundle: Path, spec: dict) -> None:
    """Compile the spec's linux.seccomp (cached in the runtime dir: a start only reads the
    bytes) and leave it beside config.json for the sandbox and `rl exec`."""
    section = spec["linux"].get("seccomp")
    if not section:
        return
    from rootless.runtime import seccomp

    try:
        bpf = seccomp.program(section, str(paths.runtime_dir(create=True) / "seccomp"))
    except seccomp.SeccompError as exc:
        raise RlError(str(exc), "or run with --security-opt seccomp=unconfined") from None
    (bundle / seccomp.BUNDLE_FILE).write_bytes(bpf)


# -- start and run ------------------------------------------------------------------------

def _launch(c_options: dict, maps, wiring, early=None, lean: bool = False):
    from rootless.engine import netwire, nsflags
    from rootless.runtime import rootfs
    from rootless.runtime.sandbox import Launch

    try:  # --network/--pid/--ipc container:NAME: its pid 1 (which must run);
        # --network NAME: holder
        kinds, joins = nsflags.launch_plan(c_options, netwire.join_pid(c_options.get("network")))
        holder = netwire.holder_for(c_options.get("network"))
    except BaseException:
        if early is not None:
            early.kill()
        raise
    return Launch(maps=maps, backend=rootfs.default_backend(), joins=joins, holder=holder,
                  namespaces=kinds,
                  stdio=wiring.stdio, terminal=wiring.tty, early=early, lean=lean)


def _maps_of(c: Container):
    from rootless.runtime import userns

    linux = c.spec()["linux"]
    return userns.Maps.from_oci(linux["uidMappings"], linux["gidMappings"])


def _set_running(c: Container, pid: int) -> None:
    with _db() as conn, catalog.transaction(conn):
        conn.execute("UPDATE containers SET state='running', monitor_pid=?, monitor_start=?,"
                     " pid=?, started=?, exit_code=NULL, finished=NULL WHERE id=?",
                     (os.getpid(), _proc_start(os.getpid()), pid, time.time(), c.id))
        if c.options.get("healthcheck"):
            from rootless.engine import health

            health.reset(conn, c.id, c.options["healthcheck"])
    events.container("start", c)


def _set_exited(c: Container, code: int | None) -> None:
    from rootless.runtime.sandbox import trace

    trace(f"set exited {code}")
    with _db() as conn, catalog.transaction(conn):
        conn.execute("UPDATE containers SET state='exited', pid=NULL, exit_code=?,"
                     " finished=? WHERE id=?", (code, time.time(), c.id))
    events.container("die", c, exitCode="" if code is None else code)


def _drive(c: Container, launch, wiring, *, attach: bool, log: bool,
           on_started=None, ending: list | None = None) -> int:
    """Start the forked sandbox on c's bundle and monitor it to the end. Returns the exit
    code; raises RlError when the container could not start. With `ending`, a
    slirp4netns that was told to exit is put there for the caller to stop() (reap) after
    its own work, instead of waiting for it here: its exit is slow."""
    from rootless.runtime import join, monitor
    from rootless.runtime.sandbox import trace

    for fd in wiring.close_after_fork:
        os.close(fd)
    slirp: list = []

    def before_go(sandbox_pid: int) -> None:
        from rootless.engine import netwire

        sock = str(paths.runtime_dir(create=True) / f"slirp-{c.short_id}.sock")
        trace("M network")
        s = netwire.start(c.options, sandbox_pid, sock, c)  # slirp4netns/veth + ports
        trace("M network ready")
        if s is not None:
            slirp.append(s)

    forwarder = monitor.Forwarder()
    forwarder.install()
    try:
        launch.start(c.dir, before_go=before_go)
    except RlError as exc:
        forwarder.restore()
        for s in slirp:
            s.stop()
        _set_exited(c, exc.exit_code)
        raise
    _set_running(c, launch.pid)

    def network_end() -> None:  # slirp4netns takes ~16 ms to exit: start it now
        for s in slirp:
            if hasattr(s, "terminate"):
                s.terminate()

    launch.on_exit = network_end
    if on_started is not None:
        on_started()
    if not attach:
        _become_lean(c, launch, wiring, forwarder, slirp)  # returns only if that failed

    def send(sig: int) -> None:
        try:
            join.kill(launch.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    try:
        timer = None
        if c.options.get("healthcheck"):
            from rootless.runtime.healthtimer import HealthTimer

            timer = HealthTimer(c.id, _health_timer_args(c))
        code = monitor.run_loop(launch, wiring, log_path=_log_target(c) if log else None,
                                attach=attach, interactive=bool(c.options.get("interactive")),
                                send_signal=send, forwarder=forwarder, timer=timer)
    finally:
        forwarder.restore()
        for s in slirp:
            if ending is not None and hasattr(s, "terminate"):
                s.terminate()
                ending.append(s)
            else:
                s.stop()
    if not c.options.get("rm"):  # otherwise the row is about to go
        _set_exited(c, code)
    trace(f"M recorded exit code {code}")
    return code


def _become_lean(c: Container, launch, wiring, forwarder, stoppers: list) -> None:
    """A detached monitor, its container started: exec the lean monitor
    (rootless.runtime.lean), which keeps this pid, the fds and the children, and calls
    finish_detached at the end. The forwarded signals stay blocked across the exec, so
    none is lost nor kills the new interpreter before it has its handlers."""
    import json

    from rootless.runtime import lean, monitor

    net: dict = {}
    for s in stoppers:
        if hasattr(s, "handover"):
            net["slirp"] = s.handover()
        else:
            net["endpoint"] = True
    blocked = set(monitor.FORWARDED)
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        lean.exec_monitor(container_id=c.id, log_path=_log_target(c) or "", launch=launch,
                          wiring=wiring, pid1=launch.pid, pending=list(forwarder.pending),
                          net=json.dumps(net), blocked=blocked, health=_health_timer_args(c))
    except OSError:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)  # go on in this process


def _log_target(c: Container) -> str | None:
    from rootless.engine import runextras

    return runextras.log_target(c.options, str(c.dir / "ctr.log"))


def _health_timer_args(c: Container) -> str:
    hc = c.options.get("healthcheck")
    if not hc:
        return ""
    from rootless.engine import health

    return health.timer_args(hc)


def finish_detached(cid: str, code: int | None, net: str, error: BaseException | None) -> None:
    """The end of a lean monitor (rootless.runtime.lean): what _drive and _start_detached
    do after the container exited."""
    import json

    from rootless.errors import NotFound

    try:
        c = lookup(cid)
    except NotFound:
        return
    state = json.loads(net)
    try:
        if "slirp" in state:
            from rootless.network import slirp

            slirp.Slirp.adopt(state["slirp"]).stop()
        if state.get("endpoint"):
            from rootless.engine import netwire

            netwire.endpoint_of(c).stop()
        if error is None and not c.options.get("rm"):
            _set_exited(c, code)
    except BaseException as exc:
        error = exc
    finally:
        if error is not None:
            _monitor_log(c, error)
        if c.options.get("rm"):
            _remove_files(c, volumes=True)
    if error is None and c.options.get("restart"):
        from rootless.engine import restart

        restart.after_exit(c.id, code)


def relaunch(cid: str) -> int | None:
    """In a detached monitor (rootless/engine/restart.py): start the container again and
    become its lean monitor (so this returns only if that exec failed, with the exit code
    once the container ended). None, and the reason in monitor.log, if it did not start."""
    from rootless.runtime import monitor

    try:
        c = lookup(cid)
    except NotFound:
        return None
    try:
        wiring = monitor.wire(mode="detached", interactive=False,
                              tty=bool(c.options.get("tty")))
        launch = _launch(c.options, _maps_of(c), wiring, lean=True)
        launch.fork()
        return _drive(c, launch, wiring, attach=False, log=True)
    except RlError as exc:
        _monitor_log(c, exc)
        return None


def _continue_detached(c: Container, code: int) -> None:
    """A foreground `rl run`/`rl start -a` whose container exited and whose restart
    policy restarts it: the restarts go on under a detached monitor (as Docker's client
    returns while the daemon restarts the container)."""
    from rootless.engine import restart

    c = lookup(c.id)
    if not restart.wants_restart(c.options.get("restart"), code, c.restart_count,
                                 bool(c.manual_stop)):
        return
    pid = os.fork()
    if pid == 0:
        try:
            _detach_from_caller()
            restart.after_exit(c.id, code)
        except BaseException as exc:
            _monitor_log(c, exc)
        os._exit(0)
    os.waitpid(pid, 0)


def run(opts: RunOptions) -> int | str:
    """`rl run`: the exit code (foreground) or the container id (detached)."""
    from rootless.runtime import early, monitor, userns

    try:
        _check_unsupported(opts)
    except BaseException:
        early.discard()
        raise
    if opts.detach:
        early.discard()
        c = create(opts)
        try:
            _start_detached(c)
        except RlError as exc:
            _forget_unstarted(c, exc)
            raise
        _warm_up()
        return c.id
    maps = userns.plan(opts.userns == "keep-id")
    direct = opts.rm and not opts.tty
    wiring = monitor.wire(mode="direct" if direct else "pipes", interactive=opts.interactive,
                          tty=opts.tty)
    # The fuse server `rl` forked before parsing (rootless.runtime.early), if any.
    from rootless.engine import nsflags

    launch = _launch(nsflags.launch_options(opts), maps, wiring, early=early.take())
    # Fork the sandbox now: its fuse server imports pyfuse3 while we resolve the image
    # and write the bundle.
    launch.fork()
    try:
        c = create(opts, maps=maps)
    except BaseException:
        launch.abort()
        for fd in wiring.close_after_fork:
            os.close(fd)
        raise
    ending: list = []
    try:
        code = _drive(c, launch, wiring, attach=True, log=not direct, ending=ending)
        if not opts.rm:
            _continue_detached(c, code)
        return code
    except RlError as exc:
        if not opts.rm:  # otherwise removed below
            _forget_unstarted(c, exc)
        raise
    finally:
        from rootless.runtime.sandbox import trace

        trace("M driven")
        if opts.rm:
            _remove_files(c, volumes=True)
        for s in ending:
            s.stop()
        trace("M removed")
        _warm_up()


def _forget_unstarted(c: Container, exc: RlError) -> None:
    """`rl run` made `c` and could not start it for a reason of rl or the host (exit 125):
    remove it, so the error leaves nothing behind. A command that is not found or not
    executable (126, 127) keeps its exited container, as Docker does."""
    if exc.exit_code == 125:
        _remove_files(c, volumes=True)


def _warm_up() -> None:
    """After a container ran (so that its start did not pay for it): start the fuse
    server zygote for the next ones, if fuse_overlay serves root filesystems."""
    from rootless.runtime import rootfs

    if rootfs.default_backend() != "fuse_overlay":
        return
    from rootless.runtime import zygote

    try:
        zygote.spawn()
    except OSError:
        pass


def _start_detached(c: Container) -> None:
    """Start `c` under a monitor that outlives this process (setsid, double fork)."""
    from rootless.runtime import monitor

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        pipe = [w]
        try:
            os.close(r)
            _detach_from_caller()
            wiring = monitor.wire(mode="detached", interactive=False,
                                  tty=bool(c.options.get("tty")))
            launch = _launch(c.options, _maps_of(c), wiring, lean=True)

            # pipe[0] is -1 once closed: its number may be reused by then.
            def started() -> None:
                os.write(pipe[0], b"ok")
                os.close(pipe[0])
                pipe[0] = -1

            launch.fork()
            try:
                _drive(c, launch, wiring, attach=False, log=True, on_started=started)
            finally:
                if c.options.get("rm"):
                    _remove_files(c, volumes=True)
        except BaseException as exc:
            code = exc.exit_code if isinstance(exc, RlError) else 125
            text = str(exc)
            if not isinstance(exc, RlError):  # a bug: the traceback to rl.log, not lost
                from rootless import crashlog

                logged = crashlog.record(exc, f"monitor of container {c.short_id}")
                text = f"internal error: {crashlog.summary(exc)}" + \
                    (f" (details in {logged})" if logged else "")
            if pipe[0] >= 0:
                try:
                    os.write(pipe[0], f"E {code} {text}".encode())
                except OSError:
                    pass
            else:  # already started: the CLI is gone, keep the reason
                _monitor_log(c, exc)
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    answer = b""
    while chunk := os.read(r, 4096):
        answer += chunk
    os.close(r)
    if answer == b"ok":
        return
    text = answer.decode(errors="replace")
    if text.startswith("E "):
        code, _, msg = text[2:].partition(" ")
        raise RlError(msg, exit_code=int(code) if code.isdigit() else 125)
    raise RlError("the container's monitor exited before the container started")


def _monitor_log(c: Container, exc: BaseException) -> None:
    import traceback

    try:
        with open(c.dir / "monitor.log", "a") as f:
            traceback.print_exception(exc, file=f)
    except OSError:
        pass


def start(ref: str, *, attach: bool = False) -> int | None:
    c = lookup(ref)
    if c.state in ("running", "restarting"):
        return None
    from rootless.runtime import rootfs

    rootfs.checked_backend()
    _set_manual_stop(c, False)
    if attach:
        from rootless.runtime import monitor

        wiring = monitor.wire(mode="pipes", interactive=bool(c.options.get("interactive")),
                              tty=bool(c.options.get("tty")))
        launch = _launch(c.options, _maps_of(c), wiring)
        launch.fork()
        try:
            code = _drive(c, launch, wiring, attach=True, log=True)
        finally:
            if c.options.get("rm"):
                _remove_files(c, volumes=True)
        _continue_detached(c, code)
        return code
    _start_detached(c)
    return None


def update(ref: str, *, restart: str | None = None, resources: dict | None = None) -> Container:
    """`rl update`: the restart policy (a running container's monitor reads it when the
    container exits, so it applies at once); resource limits are refused as at create."""
    from rootless.engine import cgroups
    from rootless.engine import restart as restart_mod

    cgroups.refuse_resource_flags(resources or {})
    c = lookup(ref)
    if restart is None:
        return c
    policy = restart_mod.parse(restart)
    if policy and c.options.get("rm"):
        raise InvalidArgument(f"container {c.name} was made with --rm: it cannot get a "
                              "restart policy", "make it again without --rm")
    with _db() as conn, catalog.transaction(conn):
        row = conn.execute("SELECT options FROM containers WHERE id=?", (c.id,)).fetchone()
        if row is None:
            raise NotFound(f"no such container: {ref}")
        options = json.loads(row["options"])
        options.pop("restart", None)
        if policy:
            options["restart"] = policy
        conn.execute("UPDATE containers SET options=? WHERE id=?", (json.dumps(options), c.id))
    return lookup(c.id)


def _set_manual_stop(c: Container, stopped: bool = True) -> None:
    """Docker's HasBeenManuallyStopped: set by a stop (the restart policy then does not
    restart it), cleared, with the restart count, by a start."""
    with _db() as conn, catalog.transaction(conn):
        if stopped:
            conn.execute("UPDATE containers SET manual_stop=1 WHERE id=?", (c.id,))
        else:
            conn.execute("UPDATE containers SET manual_stop=0, restart_count=0,"
                         " restart_delay=0 WHERE id=?", (c.id,))


def _end_restarting(c: Container, timeout: float) -> Container:
    """A container backing off before a restart: its monitor waits for SIGTERM
    (rootless/engine/restart.py), sees the manual stop and exits."""
    if _monitor_alive(c):
        try:
            os.kill(c.monitor_pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    _wait_exit(c, timeout)
    return lookup(c.id)


# -- signals, stop, wait ------------------------------------------------------------------

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
    if signum in (signal.SIGKILL, _stop_signal(c)):  # Docker's ExitOnNext: no restart
        _set_manual_stop(c)
    try:
        join.kill(c.pid, signum)
    except ProcessLookupError:
        pass
    return c


def _wait_exit(c: Container, timeout: float | None) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while _monitor_alive(c):
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
        _set_manual_stop(c)
    if c.state == "restarting":
        return _end_restarting(c, 10)
    if c.state != "running":
        return c
    if stopsig is None:
        stopsig = _stop_signal(c)
    t = _stop_timeout(c) if timeout is None else timeout
    from rootless.runtime import join

    if t != 0:  # -1 (--stop-timeout -1): wait as long as it takes
        try:
            join.kill(c.pid, stopsig)
        except (ProcessLookupError, PermissionError):
            pass
        if _wait_exit(c, None if t < 0 else t):
            return lookup(c.id)
    try:
        join.kill(c.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _wait_exit(c, 10)
    return lookup(c.id)


def _stop_signal(c: Container) -> int:
    """--stop-signal, else the image's STOPSIGNAL, else SIGTERM."""
    try:
        cfg_sig = c.spec().get("annotations", {}).get("io.rl.stop-signal")
        if cfg_sig:
            return parse_signal(cfg_sig)
    except (OSError, RlError):
        pass
    return signal.SIGTERM


def _stop_timeout(c: Container) -> int:
    """--stop-timeout, else 10 seconds."""
    t = c.options.get("stop_timeout")
    return STOP_TIMEOUT if t is None else int(t)


def wait(ref: str, condition: str = "not-running") -> int:
    """Until the container is not running (as Docker's: one restarting by its policy
    counts as not running; the exit code is its last one). The API's other conditions,
    next-exit and removed: engine/waitcond.py."""
    if condition != "not-running":
        from rootless.engine import waitcond

        return waitcond.wait(ref, condition)
    c = lookup(ref)
    started = c.started
    delay = 0.005
    while True:
        if c.state != "running" or c.started != started:
            return c.exit_code if c.exit_code is not None else -1
        if c.options.get("restart"):  # the monitor outlives the exit: watch the row
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        else:
            _wait_exit(c, None)
        try:
            c = lookup(c.id)
        except NotFound:
            return -1


def pause(ref: str, *, unpause: bool = False) -> Container:
    """`rl pause`/`unpause`: refused with this host's reason (engine/cgroups.py)."""
    from rootless.engine import cgroups

    c = lookup(ref)
    if c.state != "running":
        raise Conflict(f"container {c.name} is not running")
    cgroups.refuse_freeze(c.name, "unpause" if unpause else "pause")
    return c


def restart(ref: str, timeout: int | None = None, sig: str | None = None) -> Container:
    c = stop(ref, timeout, sig)
    start(c.id)
    return lookup(c.id)


# -- remove -------------------------------------------------------------------------------

def _remove_files(c: Container, *, volumes: bool = False) -> None:
    """Forget and delete the container; `volumes`: its anonymous volumes too (rm -v, --rm)."""
    from rootless.engine import mounts

    with _db() as conn, catalog.transaction(conn):
        conn.execute("DELETE FROM containers WHERE id=?", (c.id,))
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


def _rmtree(path: Path) -> None:
    """Remove a container dir; files the container created as another uid sit in the
    upper dir owned by subordinate ids, which the user can only remove from inside the
    user namespace."""
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
    _remove_files(c, volumes=volumes)
    return c


def prune(filters: dict[str, list[str]] | None = None) -> list[str]:
    """Remove every container that is not running and passes the prune filters (label,
    label!, until: rootless/engine/filters.py); returns their ids."""
    from rootless.engine.filters import prune_predicate

    keep = prune_predicate(filters or {})
    removed = []
    for c in list_containers(all_=True):
        if c.state not in ("running", "restarting") and keep(c.labels, c.created):
            _remove_files(c)
            removed.append(c.id)
    return removed


def rename(ref: str, new_name: str) -> Container:
    """Give a container another name (any state, as Docker): its row, the name its volumes
    list it under and its endpoints on user-defined networks (the name other containers
    resolve it by once it starts again)."""
    _validate_name(new_name)
    with _db() as conn, catalog.transaction(conn):
        c = _lookup(ref, conn)
        if c.name == new_name:
            raise InvalidArgument(f"renaming a container with the same name as its current "
                                  f"name: {new_name}", "give another name")
        taken = conn.execute("SELECT id FROM containers WHERE name=?", (new_name,)).fetchone()
        if taken:
            raise Conflict(f"the container name {new_name} is already in use by container "
                           f"{taken[0][:12]}", "remove that container or choose another name")
        conn.execute("UPDATE containers SET name=? WHERE id=?", (new_name, c.id))
        for table, col in (("container_volumes", "container"), ("network_endpoints", "name")):
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                            (table,)).fetchone():
                conn.execute(f"UPDATE {table} SET {col}=? WHERE container_id=?",
                             (new_name, c.id))
    old, c.name = c.name, new_name
    events.container("rename", c, oldName=old)
    return c


# -- logs, inspect, top -------------------------------------------------------------------

def logs(ref: str, *, follow: bool = False, tail: int | None = None,
         since: float | None = None, until: float | None = None):
    """(timestamp, stream, data) records of the container's output; `since`/`until`
    (Unix times) keep those written in [since, until)."""
    from rootless.runtime import logfile

    c = lookup(ref)
    from rootless.engine import runextras

    runextras.check_readable(c.options)  # --log-driver none
    path = str(c.dir / "ctr.log")
    # the records' timestamps are RFC 3339 in UTC with 9 decimals: they compare as text
    # The times come parsed to the microsecond (datetime) in a float, which cannot hold
    # nanoseconds of today's times: rounded to the microsecond they are what was given,
    # so `--since` of a record's own printed time keeps that record.
    lo = logfile.timestamp(round(since * 1e6) * 1000) if since is not None else None
    hi = logfile.timestamp(round(until * 1e6) * 1000) if until is not None else None

    def window(records):
        for rec in records:
            if hi is not None and rec[0] >= hi:
                return
            if lo is None or rec[0] >= lo:
                yield rec

    if lo is not None or hi is not None:
        return _logs(c, path, window, follow, tail)
    return _logs(c, path, lambda r: r, follow, tail)


def _logs(c: Container, path: str, window, follow: bool, tail: int | None):
    from rootless.runtime import logfile

    recs = window(logfile.records(path))
    if tail is not None:
        from collections import deque

        # tail counts lines, not records: a line may be several partial records.
        lines: deque = deque(maxlen=max(tail, 0) or None)
        cur: list = []
        for rec in recs:
            cur.append(rec)
            if rec[2].endswith(b"\n"):
                lines.append(cur)
                cur = []
        if cur:
            lines.append(cur)
        if tail == 0:
            lines.clear()
        head = [r for line in lines for r in line]
        yield from head
        if not follow:
            return
        skip = sum(1 for _ in window(logfile.records(path)))
    else:
        skip = 0
        if not follow:
            yield from recs
            return

    def running() -> bool:
        try:
            return lookup(c.id).state in ("running", "restarting")  # follows restarts
        except NotFound:
            return False

    follow_recs = logfile.records(path, follow=True, still_running=running)
    for i, rec in enumerate(window(follow_recs)):
        if i >= skip:
            yield rec


def inspect(ref: str) -> dict:
    c = lookup(ref)
    spec = c.spec()
    try:
        from rootless.runtime.rootfs import RootfsSpec

        rootfs = RootfsSpec.load(str(c.dir / "rootfs.json")).__dict__
    except OSError:
        rootfs = {}
    return {
        "Id": c.id,
        "Name": c.name,
        "Created": _iso(c.created),
        "Image": c.image_id,
        "ImageName": c.image,
        "Path": c.command[0] if c.command else "",
        "Args": c.command[1:],
        "State": {
            "Status": c.state,
            "Running": c.state == "running",
            "Restarting": c.state == "restarting",
            "Pid": c.pid or 0,
            "MonitorPid": c.monitor_pid or 0,
            "ExitCode": c.exit_code if c.exit_code is not None else 0,
            "StartedAt": _iso(c.started),
            "FinishedAt": _iso(c.finished),
            **_health_of(c),
        },
        "RestartCount": c.restart_count,
        "Config": {
            "Hostname": spec.get("hostname"),
            "Env": spec["process"]["env"],
            "Cmd": c.command,
            "WorkingDir": spec["process"]["cwd"],
            "User": spec.get("annotations", {}).get("io.rl.user", ""),
            "Labels": c.labels,
            "Tty": spec["process"]["terminal"],
            "StopSignal": spec.get("annotations", {}).get("io.rl.stop-signal", ""),
            **({"StopTimeout": c.options["stop_timeout"]}
               if c.options.get("stop_timeout") is not None else {}),
            **({"Healthcheck": c.options["healthcheck"]}
               if c.options.get("healthcheck") else {}),
            "ExposedPorts": {p: {} for p in c.options.get("exposed") or []},
        },
        "NetworkSettings": _network_settings(c, spec),
        "HostConfig": {"NetworkMode": c.options.get("network"),
                       "AutoRemove": c.options.get("rm"),
                       "RestartPolicy": c.options.get("restart") or
                       {"Name": "no", "MaximumRetryCount": 0},
                       "Privileged": bool(c.options.get("privileged")),
                       "ExtraHosts": c.options.get("add_hosts") or None,
                       "Dns": c.options.get("dns") or [],
                       "DnsSearch": c.options.get("dns_search") or [],
                       "DnsOptions": c.options.get("dns_options") or [],
                       "GroupAdd": c.options.get("group_add") or None,
                       "Devices": _devices_of(c),
                       "Sysctls": dict(x.split("=", 1) for x in c.options.get("sysctls") or []),
                       "ShmSize": _shm_size(spec),
                       "ReadonlyRootfs": spec["root"].get("readonly", False),
                       "UsernsMode": c.options.get("userns", ""),
                       "SecurityOpt": _security_opt(spec),
                       **_more_host_config(c.options)},
        "Mounts": _mounts_of(spec, str(c.dir)),
        "Rootfs": rootfs,
        "LogPath": str(c.dir / "ctr.log"),
        "Bundle": str(c.dir),
        "OCISpec": spec,
    }


def _more_host_config(options: dict) -> dict:
    from rootless.engine import runextras

    return runextras.host_config(options)


def _devices_of(c: Container) -> list[dict]:
    from rootless.engine import procflags

    out = []
    for d in c.options.get("devices") or []:
        parts = d.split(":")
        perms = parts[-1] if len(parts) > 1 and not parts[-1].startswith("/") else "rwm"
        try:
            dest = procflags.parse_device(d)["destination"]
        except InvalidArgument:  # the host's device went away since
            dest = parts[1] if len(parts) > 1 and parts[1].startswith("/") else parts[0]
        out.append({"PathOnHost": parts[0], "PathInContainer": dest,
                    "CgroupPermissions": perms})
    return out


def _shm_size(spec: dict) -> int:
    for m in spec.get("mounts", []):
        if m.get("destination") == "/dev/shm":
            for o in m.get("options", []):
                if o.startswith("size=") and o.endswith("k"):
                    return int(o[5:-1]) * 1024
    return 64 << 20


def _health_of(c: Container) -> dict:
    """State.Health when the container has a health check (Docker omits it otherwise)."""
    if not c.options.get("healthcheck"):
        return {}
    health = json.loads(c.health) if c.health else {"Status": "starting",
                                                     "FailingStreak": 0, "Log": []}
    return {"Health": health}


def _security_opt(spec: dict) -> list[str]:
    """What the container runs with; a container made before rl had seccomp has none."""
    raw = spec.get("annotations", {}).get("io.rl.security-opt")
    if raw:
        return json.loads(raw)
    return ["seccomp=unconfined"] + (["no-new-privileges"]
                                     if spec["process"].get("noNewPrivileges") else [])


def _mounts_of(spec: dict, bundle: str) -> list[dict]:
    from rootless.engine import mounts

    return mounts.inspect_mounts(spec, bundle)


def _network_settings(c: Container, spec: dict) -> dict:
    from rootless.engine import netwire

    return netwire.inspect_settings(c.options, c.options.get("exposed") or [], c.id)


def _iso(t: float | None) -> str:
    if not t:
        return "0001-01-01T00:00:00Z"
    from rootless.runtime.logfile import timestamp

    return timestamp(int(t * 1e9))


def _running(ref: str) -> Container:
    c = lookup(ref)
    if c.state != "running" or not c.pid:
        raise Conflict(f"container {c.name} is not running", "start it first (rl start)")
    return c


def top(ref: str) -> list[dict]:
    from rootless.runtime import join

    c = _running(ref)
    maps = _maps_of(c)
    rows = []
    tick = os.sysconf("SC_CLK_TCK")
    for p in join.processes(c.pid):
        inside = next((i + p["uid"] - o for i, o, n in maps.uid.entries
                       if o <= p["uid"] < o + n), p["uid"])
        secs = p["utime"] // tick
        rows.append({"UID": inside, "PID": int(p["nspid"][-1]), "HOSTPID": p["hostpid"],
                     "TIME": f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}",
                     "CMD": p["args"]})
    return rows


# -- exec ---------------------------------------------------------------------------------

def exec_(ref: str, command: list[str], *, interactive: bool = False, tty: bool = False,
          user: str | None = None, workdir: str | None = None,
          env: list[str] | None = None, env_files: list[str] | None = None,
          privileged: bool = False) -> int:
    from rootless.engine import spec as spec_mod
    from rootless.runtime import join, monitor

    if not command:
        raise InvalidArgument("rl exec needs a command")
    _check_workdir(workdir)
    c = _running(ref)
    spec = c.spec()
    process = dict(spec["process"])
    extra = []
    for f in env_files or []:
        extra += spec_mod.parse_env_file(f)
    extra += env or []
    process["env"] = spec_mod.merge_env(process["env"], extra + (["TERM=xterm"] if tty else []))
    process["args"] = list(command)
    process["terminal"] = tty
    if workdir:
        process["cwd"] = workdir
    from rootless.runtime import seccomp

    try:  # the filter of the container, compiled at its create (runtime/seccomp.py)
        bpf = seccomp.read_bundle(str(c.dir), spec)
    except seccomp.SeccompError as exc:
        raise RlError(str(exc)) from None
    if privileged:  # every capability of the user namespace, no filter (procflags.py)
        from rootless.engine import procflags

        process, bpf = procflags.privileged_exec(process), None
    sock_parent = sock_child = None
    if tty:
        import socket

        sock_parent, sock_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    pid = os.fork()
    if pid == 0:
        if not interactive:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
        if sock_parent is not None:
            sock_parent.close()
        join.exec_child(c.pid, spec, process,
                        tty_sock=sock_child.detach() if sock_child is not None else None,
                        user=user, seccomp_bpf=bpf)
    if sock_child is not None:
        sock_child.close()
    if not tty:
        from rootless.runtime import exitcode

        return exitcode.wait(pid)
    import socket

    _, fds, _, _ = socket.recv_fds(sock_parent, 16, 1)
    sock_parent.close()
    return monitor.run_exec_pty(pid, fds[0] if fds else None, interactive=interactive)


# -- cp -----------------------------------------------------------------------------------

def cp(src: str, dst: str, *, archive: bool = False, follow_link: bool = False,
       stdin: int | None = None, stdout: int | None = None) -> None:
    """`rl cp`: `-a` (archive) keeps the uid/gid of what is copied in, `-L` follows a
    symlink at the source; `-` as src or dst is a tar stream on the fd `stdin`/`stdout`."""
    from rootless.runtime import copying

    s_ctr, s_path = (None, "-") if src == "-" else _split_cp(src)
    d_ctr, d_path = (None, "-") if dst == "-" else _split_cp(dst)
    if (s_ctr is None) == (d_ctr is None):
        raise InvalidArgument("rl cp copies between a container and the host",
                              "write one side as CONTAINER:PATH")
    c = lookup(s_ctr if s_ctr is not None else d_ctr)
    if c.state == "running" and c.pid:
        target = c.pid  # join it: its mounts (volumes) are seen as it sees them
    else:
        from rootless.runtime.rootfs import RootfsSpec

        target = RootfsSpec.load(str(c.dir / "rootfs.json"))
    if s_ctr is not None:
        copying.copy_out(target, s_path, None if dst == "-" else d_path, follow=follow_link,
                         out_fd=stdout if dst == "-" else None)
    else:
        copying.copy_in(target, None if src == "-" else s_path, d_path, archive=archive,
                        follow=follow_link, in_fd=stdin if src == "-" else None)


def _split_cp(arg: str) -> tuple[str | None, str]:
    if ":" in arg and not arg.startswith(("/", ".")):
        name, _, path = arg.partition(":")
        return name, path or "/"
    return None, arg


# -- unshare ------------------------------------------------------------------------------

def unshare(command: list[str]) -> int:
    from rootless.runtime import userns

    return userns.unshare(command)

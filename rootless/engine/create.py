"""Create a container: check the options, resolve the image, write the bundle (config.json,
rootfs.json, the /etc files, the compiled seccomp filter) and the catalog row. Nothing is
left behind when it fails. The record itself: rootless/store/containerdb.py."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from rootless.engine import events
from rootless.engine.lifecycle import parse_signal, remove_files
from rootless.engine.spec import RunOptions
from rootless.errors import Conflict, InvalidArgument, RlError
from rootless.store import catalog, containerdb, paths
from rootless.store.containerdb import Container, containers_dir, lookup, new_name, validate_name


def check_unsupported(opts: RunOptions) -> None:
    """What can be refused before anything of the container exists: the host's rootfs
    backend and /dev/fuse, flags this host cannot honour, malformed values."""
    from rootless.runtime import rootfs

    rootfs.checked_backend()  # an unusable backend or /dev/fuse: before anything exists
    from rootless.engine import cgroups

    # never ignored: refused with the reason found on this host (engine/cgroups.py)
    cgroups.limits_of(opts)
    check_workdir(opts.workdir)
    from rootless.engine import restart

    _healthcheck_of(opts, {})  # bad --health-* values: before any pull
    from rootless.engine import netflags, procflags

    netflags.check(opts)
    from rootless.engine import runextras

    runextras.check(opts)  # --pid/--ipc/--uts, --log-*, --ip, --volumes-from, --platform
    from rootless.network.modes import parse_network

    kind = parse_network(opts.network).kind
    for key, value in opts.sysctls.items():
        procflags.check_sysctl(key, value, kind)
    if opts.shm_size is not None:
        procflags.parse_size(opts.shm_size, "--shm-size")
    for d in opts.devices:
        procflags.device_mount(d)
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


def check_workdir(workdir: str | None) -> None:
    if workdir and not workdir.startswith("/"):
        raise InvalidArgument(f"the working directory {workdir!r} is not an absolute path",
                              "give -w an absolute path inside the container, e.g. -w /app")


def _single_mapping(uid_maps: list[dict]) -> bool:
    return sum(int(m["size"]) for m in uid_maps) <= 1


def create(opts: RunOptions, *, maps=None, warn=None) -> Container:
    """Resolve the image, write the bundle and the catalog row. Nothing is left behind
    when this raises. `warn(text)`: the caller's sink for what the user should be told
    (Docker's Warnings of a create; the engine never prints them), called as they arise."""
    from rootless.engine import spec as spec_mod
    from rootless.runtime import rootfs, userns

    check_unsupported(opts)
    if opts.name is not None:
        validate_name(opts.name)
    from rootless.engine import images

    image = images.ensure_image(opts.image, pull=opts.pull, progress=opts.progress,
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
        mount_plan = mounts.plan(mounts=runextras.volumes_from(opts.volumes_from, opts.mounts)
                                 + opts.mounts, image_config=image.config)
        _mode, port_maps = netwire.plan(network=opts.network, publish=opts.publish,
                                        publish_all=opts.publish_all, image_config=image_config,
                                        userns=opts.userns, aliases=opts.network_aliases,
                                        extra_networks=opts.extra_networks)
    except BaseException:
        netwire.abandon(opts.network)
        raise
    if maps is None:
        maps = userns.plan(opts.userns == "keep-id")
    if maps.warning and warn is not None:
        warn(maps.warning)
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
                   "init": opts.init,
                   "ports": [m.to_dict() for m in port_maps], "aliases": opts.network_aliases,
                   **({"networks": netwire.plan_networks(opts)} if opts.extra_networks else {}),
                   "exposed": exposed,
                   **({"add_hosts": opts.add_hosts} if opts.add_hosts else {})}
        options.update(_extra_options(opts, image.config))
        from rootless.engine import cgroups

        limits = cgroups.limits_of(opts)  # cgroup limits (HostConfig keys), engine/cgroups.py
        if limits:
            options["limits"] = limits
        options.update(runextras.options(opts, ns_modes))
        conn = catalog.connect()
        with contextlib.closing(conn), catalog.transaction(conn):
            name = opts.name or new_name(conn)
            if containerdb.name_owner(conn, name):
                raise Conflict(f"the container name {name!r} is already in use",
                               "remove that container (rl rm) or choose another --name")
            tmp.rename(final)
            try:
                containerdb.insert(conn, cid=cid, name=name, image_id=image.id,
                                   image=opts.image, command=spec["process"]["args"],
                                   created=time.time(), labels=labels, options=options)
                mounts.record(conn, cid, name, mount_plan)
            except BaseException:
                final.rename(tmp)
                raise
    except BaseException:
        import shutil  # (not at the top: `rl ps` does not need it)

        shutil.rmtree(tmp, ignore_errors=True)
        mount_plan.undo()
        netwire.abandon(opts.network)
        raise
    if opts.cidfile:
        try:
            procflags.write_cidfile(opts.cidfile, cid)
        except BaseException:
            remove_files(lookup(cid), volumes=True)
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
    # (devices and sysctls kept as HOST:CONTAINER:PERMS and NAME=VALUE, as rows always had)
    for key, val in (("dns", opts.dns), ("dns_search", opts.dns_search),
                     ("dns_options", opts.dns_options), ("group_add", opts.group_add),
                     ("devices", [d.text() for d in opts.devices]),
                     ("sysctls", [f"{k}={v}" for k, v in opts.sysctls.items()])):
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
                         disabled=opts.no_healthcheck, test=opts.health_test)


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

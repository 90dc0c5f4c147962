"""Docker's CLI syntax of `rl run`/`rl create` flags -> the engine's typed records, for the
CLI (and any front end that takes the same text, as `rl compose run -p`). Parsing lives in
one place: the parsers are the engine's (mountspec, network/ports, spec), and their errors
are one line (InvalidArgument: exit 125 on the CLI, before anything is made).

    mounts(volumes, mounts, tmpfs) -> [Mount]     -v, --mount, --tmpfs, in that order
    publish(specs) -> [PortRequest]               -p (one request per container port)
    ulimits(specs) -> [Ulimit]                    --ulimit
    devices(specs) -> [Device]                    --device
    sysctls(specs) -> {name: value}               --sysctl (a later NAME wins)
"""

from __future__ import annotations

from collections.abc import Iterable


def mounts(volumes: Iterable[str] = (), mounts: Iterable[str] = (),
           tmpfs: Iterable[str] = ()) -> list:
    volumes, mounts, tmpfs = list(volumes), list(mounts), list(tmpfs)
    if not (volumes or mounts or tmpfs):  # the usual `rl run`: nothing imported before
        return []  # the sandbox is forked (the store's catalog, sqlite3)
    from rootless.engine import mountspec

    return ([mountspec.parse_volume(v) for v in volumes]
            + [mountspec.parse_mount(m) for m in mounts]
            + [mountspec.parse_tmpfs(t) for t in tmpfs])


def publish(specs: Iterable[str]) -> list:
    specs = list(specs)
    if not specs:  # the usual `rl run`: no import of the ports module (socket)
        return []
    from rootless.network import ports

    return [r for spec in specs for r in ports.parse_publish(spec)]


def ulimits(specs: Iterable[str]) -> list:
    specs = list(specs)
    if not specs:
        return []
    from rootless.engine.spec import parse_ulimit

    return [parse_ulimit(u) for u in specs]


def devices(specs: Iterable[str]) -> list:
    specs = list(specs)
    if not specs:
        return []
    from rootless.engine.procflags import parse_device

    return [parse_device(d) for d in specs]


def sysctls(specs: Iterable[str]) -> dict[str, str]:
    specs = list(specs)
    if not specs:
        return {}
    from rootless.engine.procflags import parse_sysctl

    return dict(parse_sysctl(s) for s in specs)

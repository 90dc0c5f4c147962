"""`rl run`/`rl create` flags kept out of cli/containers.py's long list: namespaces,
addresses, --volumes-from, --platform, logging. Parsing only (the engine checks them:
rootless/engine/nsflags.py and runextras.py)."""

from __future__ import annotations

import click

OPTIONS = [
    click.option("--pid", metavar="MODE",
                 help="host: the host's pid namespace (its /proc bound); container:NAME: "
                      "NAME's (and its user namespace)."),
    click.option("--ipc", metavar="MODE",
                 help="private (default), shareable, none, host, or container:NAME "
                      "(a shareable one: its IPC namespace and /dev/shm)."),
    click.option("--uts", metavar="MODE", help="host: the host's hostname."),
    click.option("--ip", metavar="ADDRESS",
                 help="IPv4 address on the user-defined network given with --network."),
    click.option("--ip6", metavar="ADDRESS", help="Refused: rl's networks are IPv4 only."),
    click.option("--mac-address", metavar="MAC",
                 help="MAC address of eth0 (user-defined networks) or tap0 (slirp4netns)."),
    click.option("--volumes-from", multiple=True, metavar="CONTAINER[:ro|rw]",
                 help="Mount the volumes and bind mounts of another container."),
    click.option("--platform", metavar="OS/ARCH[/VARIANT]",
                 help="Pull this platform's image; a foreign arch needs a binfmt_misc "
                      "emulator (qemu-user-static), else it is refused."),
    click.option("--log-driver", metavar="DRIVER",
                 help="json-file (default; written as k8s-file, as podman), k8s-file or "
                      "none; other drivers are refused."),
    click.option("--log-opt", multiple=True, metavar="KEY=VALUE",
                 help="max-size=SIZE (rotate at it) and max-file=N (files kept)."),
]


def add_options(f):
    for o in reversed(OPTIONS):
        f = o(f)
    return f


def fill(opts, kw: dict):
    """Put these flags' values into RunOptions `opts`; returns it."""
    opts.pid, opts.ipc, opts.uts = kw["pid"], kw["ipc"], kw["uts"]
    opts.ip, opts.ip6, opts.mac_address = kw["ip"], kw["ip6"], kw["mac_address"]
    opts.volumes_from = list(kw["volumes_from"])
    opts.platform = kw["platform"]
    opts.log_driver, opts.log_opts = kw["log_driver"], list(kw["log_opt"])
    return opts

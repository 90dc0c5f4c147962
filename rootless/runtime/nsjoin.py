"""`--network/--pid/--ipc container:NAME` and `--network NAME`: user namespaces joined or
nested.

`--network container:NAME`: a new container in the network namespace of another (and
`--pid`/`--ipc container:NAME` alike: its pid or IPC namespace).

Rootless, the other container's network namespace belongs to its user namespace, and only
a process with CAP_SYS_ADMIN there may join it: the owner (the user) gets that by joining
that user namespace first. So the sandbox joins both (the other container's pid 1 is in
them) and makes only a mount namespace of its own; the monitor writes no id maps (the joined
namespace has them, the same default maps as every container of the user).
"""

from __future__ import annotations

import os

from rootless.linux import syscalls as sc

_KINDS = (("net", sc.CLONE_NEWNET), ("ipc", sc.CLONE_NEWIPC))


def join(joins: dict[str, int]) -> int | None:
    """In the single-threaded sandbox: setns into the user namespace of the containers in
    `joins` ({"net"|"pid"|"ipc": host pid}; the engine checked they share one), then
    into their net and IPC namespaces, then a new mount namespace. The pid namespace
    applies to children only: its fd is returned, for setns just before pid 1 is forked."""
    first = next(iter(joins.values()))
    user = os.open(f"/proc/{first}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    fds = [(os.open(f"/proc/{joins[k]}/ns/{k}", os.O_RDONLY | os.O_CLOEXEC), flag)
           for k, flag in _KINDS if k in joins]
    pidfd = (os.open(f"/proc/{joins['pid']}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
             if "pid" in joins else None)
    try:
        sc.setns(user, sc.CLONE_NEWUSER)
        for fd, flag in fds:
            sc.setns(fd, flag)
    finally:
        os.close(user)
        for fd, _ in fds:
            os.close(fd)
    sc.unshare(sc.CLONE_NEWNS)
    return pidfd


def nest_under(pid: int) -> None:
    """`--network NAME`: the container's user namespace made as a child of pid's (the
    network holder's), so that the holder may move a veth into its net namespace."""
    fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(fd, sc.CLONE_NEWUSER)
    finally:
        os.close(fd)
    sc.unshare(sc.CLONE_NEWUSER | sc.CLONE_NEWNS)

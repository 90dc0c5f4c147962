"""`--network container:NAME` and `--network NAME`: user namespaces joined or nested.

`--network container:NAME`: a new container in the network namespace of another.

Rootless, the other container's network namespace belongs to its user namespace, and only
a process with CAP_SYS_ADMIN there may join it: the owner (the user) gets that by joining
that user namespace first. So the sandbox joins both (the other container's pid 1 is in
them) and makes only a mount namespace of its own; the monitor writes no id maps (the joined
namespace has them, the same default maps as every container of the user).
"""

from __future__ import annotations

import os

from rootless.linux import syscalls as sc


def join_user_and_net(pid: int) -> None:
    """In the single-threaded sandbox: setns into pid's user, then net namespace, then a
    new mount namespace (the rest, pid, uts and ipc, are made later as usual)."""
    fds = [(os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), flag)
           for name, flag in (("user", sc.CLONE_NEWUSER), ("net", sc.CLONE_NEWNET))]
    try:
        for fd, flag in fds:
            sc.setns(fd, flag)
    finally:
        for fd, _ in fds:
            os.close(fd)
    sc.unshare(sc.CLONE_NEWNS)


def nest_under(pid: int) -> None:
    """`--network NAME`: the container's user namespace made as a child of pid's (the
    network holder's), so that the holder may move a veth into its net namespace."""
    fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(fd, sc.CLONE_NEWUSER)
    finally:
        os.close(fd)
    sc.unshare(sc.CLONE_NEWUSER | sc.CLONE_NEWNS)

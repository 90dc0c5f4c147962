"""An idle detached container costs no CPU: none of rl's processes wakes on a timer.

With a hundred containers on a shared machine, a once-a-second wake-up per process is a
hundred wake-ups a second. Counted here: the voluntary context switches of every thread of
the monitor, the sandbox, the fuse server and the warm fuse server zygote over 5 seconds of
a container that only sleeps. slirp4netns is not rl's (libslirp keeps a timer of its own,
podman's wakes the same) and is left out.
"""

from __future__ import annotations

import json
import os
import socket
import time

from tests.support import users
from tests.support.procs import children as _children
from tests.support.procs import comm as _comm
from tests.support.procs import tree as _tree


def _switches(pid: int) -> int | None:
    """Voluntary context switches of all of `pid`'s threads, None once it is gone."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
    except OSError:
        return None
    return total


def test_an_idle_detached_container_never_wakes_rl(rl):
    _assert_idle(rl)


def test_the_port_proxy_of_an_idle_container_never_wakes(rl):
    """port_handler=proxy: the monitor, which serves the ports (its select watches the
    proxy's epoll fd), still sleeps without a timeout, also after serving a connection."""
    ports = []
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    _assert_idle(rl, "--network", "slirp4netns:port_handler=proxy",
                 "-p", f"127.0.0.1:{ports[0]}:80", "-p", f"127.0.0.1:{ports[1]}:53/udp",
                 poke=ports[0])


def _listens(pid: int, port: int) -> bool:
    """Whether `pid` holds the socket listening on 127.0.0.1:port (/proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        inodes = {line.split()[9] for line in f.readlines()[1:]
                  if line.split()[1] == f"0100007F:{port:04X}" and line.split()[3] == "0A"}
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}
    except OSError:
        return False
    return any(f"socket:[{i}]" in links for i in inodes)


def _assert_idle(rl, *run_args: str, poke: int | None = None) -> None:
    rl("run", "--rm", "--network", "none", "busybox", "true", check=True)  # the zygote then
    zygotes: set[int] = set()
    deadline = time.monotonic() + 20
    fuse = users.rootfs_backend() == "fuse_overlay"
    while fuse and not zygotes:
        for pidfile in (rl.root / "run" / "rl").glob("fuse-zygote-*.pid"):
            zygotes |= {int(p) for p in pidfile.read_text().split()
                        if os.path.exists(f"/proc/{p}")}
        assert zygotes or time.monotonic() < deadline, "no fuse server zygote started"
        time.sleep(0.1)
    cid = rl("run", "-d", *run_args, "busybox", "sleep", "300", check=True).stdout.strip()
    if poke is not None:  # a connection through the published port (nothing answers it)
        with socket.create_connection(("127.0.0.1", poke), timeout=5) as s:
            s.settimeout(5)
            assert s.recv(10) == b""
    doc = json.loads(rl("inspect", cid, check=True).stdout)[0]
    children = _children()
    watched = _tree(doc["State"]["MonitorPid"], children) - _tree(doc["State"]["Pid"], children)
    watched = {p for p in watched if _comm(p) != "slirp4netns"}
    served = {p for z in zygotes for p in children.get(z, [])}
    if fuse:
        # the container's server is the zygote's child (it serves -d containers too)
        assert served, "the zygote forked no fuse server for the detached container"
    watched |= zygotes | served
    if poke is not None:  # the process serving the port is one of the watched
        assert any(_listens(p, poke) for p in watched), "no watched process holds the port"
    # let the start settle (the lean execs, slirp4netns's set-up): until a quiet second
    counts = {p: _switches(p) for p in watched}
    for _ in range(20):
        time.sleep(1)
        now = {p: _switches(p) for p in watched}
        if now == counts:
            break
        counts = now
    time.sleep(5)
    woke = {f"{p} ({_comm(p)})": _switches(p) - n for p, n in counts.items()
            if _switches(p) is not None and n is not None and _switches(p) != n}
    assert not woke, f"idle processes woke up in 5 s (pid: switches): {woke}"
    assert rl("inspect", "-f", "{{.State.Running}}", cid, check=True).stdout.strip() == "true"

"""The fuse server zygote's children hold nothing of the zygote (rootless/runtime/zygote.py).

A child the zygote forks for a connection waits there for its request. If it kept the
zygote's lock, listener and inotify watch while it waited, a zygote started meanwhile (the
old one killed) would find the lock taken and give up, and the child's copy of the listener
would keep a socket nobody serves.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.support import procs, users

pytestmark = pytest.mark.skipif(users.rootfs_backend() != "fuse_overlay",
                                reason="the zygote serves the fuse_overlay backend only")


def _zygotes(rl) -> set[int]:
    out = set()
    for pidfile in (rl.root / "run" / "rl").glob("fuse-zygote-*.pid"):
        out |= {int(p) for p in pidfile.read_text().split() if procs.alive(int(p))}
    return out


def _wait_zygote(rl, old: set[int] = frozenset()) -> tuple[int, str]:
    """(pid, socket path) of a zygote not in `old`, once it listens."""
    deadline = time.monotonic() + 20
    while not ((new := _zygotes(rl) - old)
               and (socks := list((rl.root / "run" / "rl").glob("fuse-zygote-*.sock")))):
        assert time.monotonic() < deadline, "no fuse server zygote started"
        time.sleep(0.1)
    return new.pop(), str(socks[0])


def _children(pid: int) -> set[int]:
    return {p for p in procs.children().get(pid, []) if procs.alive(p)}


def _fd_links(pid: int) -> dict[str, str]:
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[fd] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def _of_the_zygote(zygote: int, child: int) -> set[str]:
    """What `child` holds of the zygote's own files: its sockets, pipes, inotify, lock."""
    theirs = {link for link in _fd_links(zygote).values() if link != "/dev/null"}
    return {link for link in _fd_links(child).values() if link in theirs} | \
        {link for link in _fd_links(child).values()
         if link == "anon_inode:inotify" or link.endswith(".lock")}


def test_a_zygote_child_drops_the_zygotes_fds_and_a_new_zygote_serves(rl):
    rl("run", "--rm", "--network", "none", "busybox", "true", check=True)  # the zygote then
    zygote, sock_path = _wait_zygote(rl)
    # a connection that never sends its request: the child the zygote forks for it waits
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        before = _children(zygote)
        conn.connect(sock_path)
        deadline = time.monotonic() + 10
        while not (pending := _children(zygote) - before):
            assert time.monotonic() < deadline, "the zygote forked no child for a connection"
            time.sleep(0.05)
        (child,) = pending
        # it drops them first thing (a moment after the fork): the old code never did
        while _of_the_zygote(zygote, child):
            assert time.monotonic() < deadline, \
                f"the waiting child holds the zygote's {_of_the_zygote(zygote, child)}"
            time.sleep(0.05)
        # the old zygote killed while its child waits: the next one starts and serves
        os.kill(zygote, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while procs.alive(zygote):
            assert time.monotonic() < deadline, "the zygote did not stop"
            time.sleep(0.05)
        cid = rl("run", "-d", "--network", "none", "busybox", "sleep", "300",
                 check=True).stdout.strip()
        new, _ = _wait_zygote(rl, {zygote})
        deadline = time.monotonic() + 10
        # (a server that got its request is not dumpable: its fds are not ours to list)
        while not _children(new):
            assert time.monotonic() < deadline, "the new zygote serves no container"
            time.sleep(0.05)
        r = rl("exec", cid, "cat", "/etc/passwd", check=True)
        assert "root" in r.stdout
        rl("rm", "-f", cid, check=True)
    finally:
        conn.close()
    deadline = time.monotonic() + 10
    while procs.alive(child):  # the connection's end ends the waiting child
        assert time.monotonic() < deadline, "the waiting child outlived its connection"
        time.sleep(0.05)



def test_the_zygote_warms_up_once_and_keeps_nothing_of_it(rl, tmp_path):
    """At its first quiet moment the zygote runs its children's work on stand-ins
    (rootless/runtime/warmup.py: FUSE requests on scratch layers, a monitor loop on a
    child that writes and exits): afterwards it holds only its own fds, has no child, and
    its scratch directories are gone; detached containers still run and log."""
    trace = tmp_path / "trace"
    rl("run", "--rm", "--network", "none", "busybox", "true", check=True,
       env={"RL_TRACE": str(trace)})
    zygote, _sock = _wait_zygote(rl)
    deadline = time.monotonic() + 20
    while f" {zygote} Z warmed up" not in (trace.read_text() if trace.exists() else ""):
        assert time.monotonic() < deadline, "the zygote did not warm up"
        time.sleep(0.1)
    assert not _children(zygote)
    # its own: the listener, its wakeup pipe, the inotify watch, the lock, /dev/null
    links = list(_fd_links(zygote).values())
    assert sum(link.startswith("socket:") for link in links) == 1, links
    assert sum(link.startswith("pipe:") for link in links) == 2, links
    assert [link for link in links if link.startswith("anon_inode:")] == \
        ["anon_inode:inotify"], links
    assert not [link for link in links if ".warm." in link], links
    assert not [p.name for p in (rl.root / "run" / "rl").iterdir() if ".warm." in p.name]
    cid = rl("run", "-d", "busybox", "sh", "-c", "echo out; echo err >&2; sleep 300",
             check=True).stdout.strip()
    try:
        deadline = time.monotonic() + 20
        while sorted(rl("logs", cid, check=True).stdout.split() +
                     rl("logs", cid, check=True).stderr.split()) != ["err", "out"]:
            assert time.monotonic() < deadline, "the detached container's output"
            time.sleep(0.1)
    finally:
        rl("rm", "-f", cid, check=True)


def test_the_warm_up_ends_whatever_the_environment(tmp_path):
    """The zygote takes the environment of the `rl` that started it; the warm-up's
    request is its own (a request carrying a 240 KB environment filled the socket
    buffer of a send this same thread had to read: the zygote hung for good)."""
    scratch = tmp_path / "scratch"
    code = ("from rootless.runtime import early, warmup; early.import_server(); "
            f"warmup.warm_up({str(scratch)!r}); print('done')")
    r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, BIG1="x" * 120_000, BIG2="y" * 120_000),
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "done", r.stderr
    assert not scratch.exists() and not (tmp_path / "scratch.fuse").exists()

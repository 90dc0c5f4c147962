"""Run the server's request handlers on a scratch overlay, without a mount, in a process
that forks servers (rl's zygote) before it forks them.

Why: CPython 3.11 writes into a function's code object while the function is new to it
(a call counter for its first calls, then the bytecode rewritten with inline caches, then
each instruction's counter until it is specialised), and it builds caches lazily (a type's
attribute-cache tag, interned names, module-level memo dicts). In a forked server every such
write copies a page the server shared with its parent. Done once in the parent, the
servers find the code quickened and the caches made, and share those pages instead of each
writing its own copy (measured in docs/design.md section 4).

Nothing here talks to the kernel's FUSE: the two pyfuse3 calls that need a session
(readdir_reply, notify_store) are replaced while the handlers run, and everything made is
closed and removed before returning.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

ROUNDS = 64  # beyond CPython's quickening delay and its specialisation counters


class _Ctx:
    """The caller of a request: ourselves, as the container's root is to a server that
    runs as root in the container's user namespace (so new files need no ownership
    record: fs.Overlay._new_owner's common case)."""

    def __init__(self) -> None:
        self.uid, self.gid = os.geteuid(), os.getegid()
        self.pid = 0
        self.umask = 0o022


def _run(coro):
    """Drive one handler coroutine (they never suspend: fs.py's handlers are synchronous)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    finally:
        coro.close()
    raise RuntimeError("a handler suspended")


def _layers(top: str) -> tuple[list[str], str, str, str]:
    lower = os.path.join(top, "lower")
    for d in ("bin", "etc", "usr/lib"):
        os.makedirs(os.path.join(lower, d), exist_ok=True)
    with open(os.path.join(lower, "bin", "busybox"), "wb") as f:
        f.write(b"\x7fELF" + bytes(200_000))  # bigger than what is stored at open
    with open(os.path.join(lower, "etc", "passwd"), "wb") as f:
        f.write(b"root:x:0:0:root:/root:/bin/sh\n")
    os.symlink("busybox", os.path.join(lower, "bin", "sh"))
    upper, work, mnt = (os.path.join(top, n) for n in ("upper", "work", "mnt"))
    for d in (upper, work, mnt):
        os.mkdir(d)
    return [lower], upper, work, mnt


def warm_up(top: str, rounds: int = ROUNDS) -> None:
    """Make scratch layers in the new directory `top` (removed at the end) and serve the
    requests a container's start and run send, `rounds` times."""
    import pyfuse3

    from . import fs, server

    os.mkdir(top, 0o700)
    saved = pyfuse3.readdir_reply, pyfuse3.notify_store
    # module attributes, replaced for the warm-up only: this process serves nothing
    pyfuse3.readdir_reply = lambda token, name, attr, next_id: True
    pyfuse3.notify_store = lambda ino, off, data: None
    ops = None
    try:
        lowers, upper, work, mnt = _layers(top)
        for _ in range(rounds):
            opts = server.options_for(lowers, upper, work, mnt, {"writeback": "1"})
            server.fuse_mount_options(opts)
        ops = fs.Overlay(opts.lowerdirs, opts.upperdir, opts.workdir, writeback=True)
        ctx = _Ctx()
        root = pyfuse3.ROOT_INODE
        for i in range(rounds):
            _round(ops, ctx, root, i)
    finally:
        pyfuse3.readdir_reply, pyfuse3.notify_store = saved
        if ops is not None:
            ops.close()
        shutil.rmtree(top, ignore_errors=True)


def _round(ops, ctx, root: int, i: int) -> None:
    from pyfuse3 import FUSEError

    def attempt(coro):
        try:
            return _run(coro)
        except FUSEError:
            return None

    bindir = _run(ops.lookup(root, b"bin", ctx))
    _run(ops.getattr(bindir.st_ino, ctx))
    exe = _run(ops.lookup(bindir.st_ino, b"busybox", ctx))
    link = _run(ops.lookup(bindir.st_ino, b"sh", ctx))
    _run(ops.readlink(link.st_ino, ctx))
    attempt(ops.lookup(root, b"missing", ctx))
    attempt(ops.getxattr(exe.st_ino, b"security.capability", ctx))
    attempt(ops.listxattr(exe.st_ino, ctx))
    fi = _run(ops.open(exe.st_ino, os.O_RDONLY, ctx))
    _run(ops.read(fi.fh, 0, 4096))
    _run(ops.read(fi.fh, 65536, 131072))
    _run(ops.release(fi.fh))
    etc = _run(ops.lookup(root, b"etc", ctx))
    passwd = _run(ops.lookup(etc.st_ino, b"passwd", ctx))
    fi = _run(ops.open(passwd.st_ino, os.O_RDONLY, ctx))
    _run(ops.read(fi.fh, 0, 4096))
    _run(ops.release(fi.fh))
    for ino in (root, bindir.st_ino):
        fh = _run(ops.opendir(ino, ctx))
        _run(ops.readdir(fh, 0, None))
        _run(ops.releasedir(fh))
    _run(ops.statfs(ctx))
    # what a running container writes: a new file, a directory, a copy-up, removals
    name = b"new%d" % i
    fi, entry = _run(ops.create(root, name, stat.S_IFREG | 0o644,
                                os.O_WRONLY | os.O_CREAT, ctx))
    _run(ops.write(fi.fh, 0, b"data"))
    _run(ops.release(fi.fh))
    _run(ops.getattr(entry.st_ino, ctx))
    d = _run(ops.mkdir(etc.st_ino, b"d%d" % i, stat.S_IFDIR | 0o755, ctx))
    _run(ops.rename(root, name, d.st_ino, b"moved", 0, ctx))
    _run(ops.unlink(d.st_ino, b"moved", ctx))
    _run(ops.rmdir(etc.st_ino, b"d%d" % i, ctx))
    fi = _run(ops.open(passwd.st_ino, os.O_WRONLY | os.O_APPEND, ctx))  # copy-up
    _run(ops.write(fi.fh, 0, b"x"))
    _run(ops.release(fi.fh))
    try:
        _run(ops.lookup(root, b"new%d" % i, ctx))
    except FUSEError as e:
        if e.errno != errno.ENOENT:
            raise
    _run(ops.forget([(exe.st_ino, 1), (link.st_ino, 1), (entry.st_ino, 1),
                     (d.st_ino, 1)]))

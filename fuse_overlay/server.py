"""Mount an overlay and serve it until it is unmounted or the process gets SIGTERM/SIGINT.

This is the library entry point the container runtime calls (in a freshly forked process,
inside the container's user namespace, where the caller is root); pyfuse3 and trio are
imported here, not at package import, so `import fuse_overlay` stays cheap.

Once the mount is live (and the caller's on_ready has run) the server confines itself
(fs.Overlay.confine: a chroot into an empty directory next to its workdir, when it may
chroot) and returns to its old root only to unmount at the end.
"""

from __future__ import annotations

import os
import signal

from . import options as mount_options

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def fuse_mount_options(opts: mount_options.MountOptions) -> set[str]:
    """The options handed to the kernel (through libfuse)."""
    out = {f"fsname={opts.fsname}", "subtype=fuse-overlay", "default_permissions"}
    # allow_other lets every process of the mounting user namespace use the mount (a
    # container run with -u 1000). Root of a user namespace mounts with mount(2) directly,
    # where the kernel allows it; a plain user goes through fusermount3, which refuses it
    # unless /etc/fuse.conf says user_allow_other: there it is only given when asked for.
    if os.geteuid() == 0:
        out.add("allow_other")
    out |= opts.flags & mount_options.PASSED
    if opts.upperdir is None:
        out.add("ro")
    return out


def run(lowerdirs: list[str], upperdir: str | None, workdir: str | None, mountpoint: str, *,
        ready_fd: int | None = None, options: dict | None = None, on_ready=None,
        stop_signals=STOP_SIGNALS) -> None:
    """Mount lowerdirs (top-most first) under upperdir at mountpoint and serve until
    unmounted or one of `stop_signals` comes (then unmount; a signal the caller has set to
    SIG_IGN stays ignored; with none, no poll(2) per request: see loop.py). Writes b"1" to ready_fd and closes it once
    the mount is live. Read-only when upperdir is None. Raises MountError for bad input.

    options: other mount options by name, e.g. {"nodev": True, "writeback": "1",
    "realchown": True}, as the `-o` of the command line would give them. `on_ready` is
    called once the mount is live, after ready_fd got its byte."""
    opts = options_for(lowerdirs, upperdir, workdir, mountpoint, options)
    serve(opts, mountpoint, ready_fd, on_ready=on_ready, stop_signals=stop_signals)


def options_for(lowerdirs: list[str], upperdir: str | None, workdir: str | None,
                mountpoint: str, options: dict | None) -> mount_options.MountOptions:
    """run()'s arguments as checked mount options; MountError for bad input."""
    values: dict = {"lowerdir": ":".join(lowerdirs)}
    flags: set[str] = set()
    for key, value in (options or {}).items():
        if key in mount_options.VALUED:
            values[key] = str(value)
        elif key in mount_options.PASSED or key in mount_options.OWN_FLAGS:
            if value:
                flags.add(key)
        elif key not in mount_options.IGNORED:
            raise mount_options.MountError(f"unknown mount option {key!r}")
    values["upperdir"] = upperdir or ""
    values["workdir"] = workdir or ""
    opts = mount_options.check(mount_options.from_dict(values, flags), mountpoint)
    if not lowerdirs:
        raise mount_options.MountError("no lowerdir given")
    return opts


def preload():
    """Import what serving needs (pyfuse3 without trio, see loop.import_pyfuse3, and the
    file system); returns pyfuse3. For a process that forks servers."""
    from . import loop

    pyfuse3 = loop.import_pyfuse3()
    from . import fs  # noqa: F401

    return pyfuse3


def serve(opts: mount_options.MountOptions, mountpoint: str, ready_fd: int | None,
          on_ready=None, stop_signals=STOP_SIGNALS) -> None:
    """Mount with checked options and serve (the part after validation). `on_ready` is
    called once the mount is live, after ready_fd got its byte."""
    pyfuse3 = preload()
    from .fs import Overlay

    os.umask(0)  # modes of new files come from the kernel, which has applied the caller's
    ops = Overlay(opts.lowerdirs, opts.upperdir, opts.workdir, writeback=opts.writeback,
                  realchown="realchown" in opts.flags,
                  squash_unmapped="squash_unmapped" in opts.flags)
    try:
        pyfuse3.init(ops, os.path.abspath(mountpoint), fuse_mount_options(opts))
    except RuntimeError as e:
        raise mount_options.MountError(f"cannot mount at {mountpoint}: {e}") from None

    def ready() -> None:
        if ready_fd is not None:
            try:
                os.write(ready_fd, b"1")
            finally:
                os.close(ready_fd)
        if on_ready is not None:
            on_ready()
        # Defence in depth: from here on the server works only through the descriptors it
        # holds (layers, workdir, /dev/fuse); a path string would resolve in an empty root.
        ops.confine()

    try:
        if opts.loop == "trio":
            _serve_trio(pyfuse3, ready, stop_signals)
        else:
            from . import loop

            async def main():
                ready()
                await pyfuse3.main(min_tasks=1, max_tasks=1)
            loop.run(pyfuse3, main, stop_signals)
    finally:
        ops.unconfine()  # the unmount goes by path
        pyfuse3.close(unmount=True)


def _serve_trio(pyfuse3, ready, stop_signals) -> None:
    import trio

    pyfuse3.trio = trio  # pyfuse3 may have been imported without it (loop.import_pyfuse3)
    wanted = [s for s in stop_signals
              if signal.getsignal(s) is not signal.SIG_IGN]  # ignored stays ignored

    async def signals():
        if not wanted:
            return
        with trio.open_signal_receiver(*wanted) as sigs:
            async for _ in sigs:
                pyfuse3.terminate()
                return

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(signals)
            ready()
            # Every handler is synchronous (local syscalls): one worker task is enough.
            await pyfuse3.main(min_tasks=1, max_tasks=1)
            nursery.cancel_scope.cancel()

    trio.run(main)


def abort(mountpoint: str) -> bool:
    """Abort the FUSE connection of `mountpoint` (for a server that hangs): every waiting
    and future request fails with ENOTCONN at once, then the mount is detached (lazy
    unmount). The mounting user owns /sys/fs/fuse/connections/N/abort, where N is the
    minor device number of the mount. Returns False when there was nothing to abort."""
    import ctypes
    import ctypes.util

    try:
        dev = os.stat(mountpoint).st_dev  # the root's attributes: cached by the kernel
    except OSError:  # ENOTCONN: the server is gone, the kernel aborted the connection
        dev = None
    done = False
    if dev is not None:
        try:
            with open(f"/sys/fs/fuse/connections/{os.minor(dev)}/abort", "w") as f:
                f.write("1")
            done = True
        except OSError:
            pass
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
    MNT_DETACH = 2
    if libc.umount2(os.fsencode(mountpoint), MNT_DETACH) == 0:
        done = True
    return done

"""`fuse-overlay [-f] [-d] -o lowerdir=L1:L2,upperdir=U,workdir=W[,...] MOUNTPOINT`

The command line of fuse-overlayfs. Without -f it daemonises: the parent exits 0 only once
the mount is live (the child reports through a pipe), or 1 with the child's error.
"""

from __future__ import annotations

import logging
import os
import sys

from . import __version__
from . import options as mount_options

USAGE = ("usage: fuse-overlay [-f] [-d] -o lowerdir=TOP:...:BOTTOM[,upperdir=U,workdir=W]"
         "[,OPTIONS] MOUNTPOINT")


def _fail(msg: str) -> int:
    print(f"fuse-overlay: error: {msg}", file=sys.stderr)
    return 1


def parse_argv(argv: list[str]):
    foreground = debug = False
    opt_strings: list[str] = []
    positional: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in ("-f", "--foreground"):
            foreground = True
        elif arg in ("-d", "--debug"):
            foreground = debug = True
        elif arg == "-o":
            value = next(it, None)
            if value is None:
                raise mount_options.MountError("-o needs a value")
            opt_strings.append(value)
        elif arg.startswith("-o"):
            opt_strings.append(arg[2:])
        elif arg in ("-h", "--help"):
            print(USAGE)
            raise SystemExit(0)
        elif arg in ("-V", "--version"):
            print(f"fuse-overlay {__version__}")
            raise SystemExit(0)
        elif arg.startswith("-") and arg != "-":
            raise mount_options.MountError(f"unknown argument {arg!r} ({USAGE})")
        else:
            positional.append(arg)
    if len(positional) != 1:
        raise mount_options.MountError(f"need exactly one MOUNTPOINT ({USAGE})")
    if not opt_strings:
        raise mount_options.MountError("no lowerdir= given (lowerdir=TOP:...:BOTTOM is required)")
    return foreground, debug, mount_options.parse(opt_strings), positional[0]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        foreground, debug, opts, mountpoint = parse_argv(argv)
        for w in opts.warnings:
            print(f"fuse-overlay: warning: {w}", file=sys.stderr)
        mount_options.check(opts, mountpoint)
        mountpoint = os.path.abspath(mountpoint)
    except mount_options.MountError as e:
        return _fail(str(e))
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="fuse-overlay: %(levelname)s: %(message)s")
    from . import server

    if foreground:
        try:
            server.serve(opts, mountpoint, opts.ready_fd)
        except mount_options.MountError as e:
            return _fail(str(e))
        except OSError as e:
            return _fail(f"{e.filename or mountpoint}: {e.strerror}")
        return 0
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        with os.fdopen(r, "rb") as f:
            ok = f.read(1) == b"1"
        if not ok:
            os.waitpid(pid, 0)
            return 1
        return 0
    # the daemon: stderr stays until the mount is live, so errors reach the caller
    os.close(r)
    os.setsid()
    os.chdir("/")  # hold no directory busy (all paths are absolute by now)

    def ready() -> None:
        os.write(w, b"1")
        os.close(w)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)

    code = 0
    try:
        server.serve(opts, mountpoint, opts.ready_fd, on_ready=ready)
    except mount_options.MountError as e:
        code = _fail(str(e))
    except Exception as e:
        code = _fail(f"{type(e).__name__}: {e}")
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())

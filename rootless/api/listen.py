"""Where the service listens: the user's socket (default), a unix path, an explicit
loopback TCP port, or the sockets systemd passed (LISTEN_FDS)."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from rootless.errors import InvalidArgument, RlError

SD_LISTEN_FDS_START = 3


def default_socket() -> Path:
    from rootless.store import paths

    return paths.runtime_dir_path() / "rl.sock"


def default_uri() -> str:
    return f"unix://{default_socket()}"


def systemd_sockets() -> list[socket.socket]:
    """The sockets of socket activation, when they are meant for this process."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        n = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    for k in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(k, None)
    out = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + n):
        os.set_inheritable(fd, False)
        out.append(socket.socket(fileno=fd))
    return out


def _unix(path: Path, *, default: bool) -> socket.socket:
    if default:
        from rootless.store import paths

        paths.runtime_dir(create=True)  # made 0700 and checked: ours, nobody else's
    else:
        parent = path.parent
        st = os.stat(parent)
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            raise RlError(f"{parent} may be written by other users: a socket there could be "
                          "replaced", "choose a directory of yours (0700), e.g. "
                          f"{default_socket().parent}")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise RlError(f"{path} exists and is not a socket", "remove it or pick another path")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            os.unlink(path)  # a socket nobody listens on: left by a service that died
        else:
            raise RlError(f"another service is listening on {path}",
                          "stop it first, or give another URI")
        finally:
            probe.close()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket is 0600 from its first moment
    try:
        s.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    s.listen(128)
    return s


def open_listener(uri: str | None) -> tuple[list[socket.socket], bool, str | None, str, str | None]:
    """(sockets, is_unix, path to remove at exit, the URI shown, a warning line)."""
    activated = systemd_sockets()
    if activated:
        unix = all(s.family == socket.AF_UNIX for s in activated)
        return activated, unix, None, "systemd socket activation", None
    if uri is None:
        path = default_socket()
        return [_unix(path, default=True)], True, str(path), f"unix://{path}", None
    if uri.startswith("unix://"):
        path = Path(uri[len("unix://"):])
        if not path.is_absolute():
            raise InvalidArgument(f"{uri}: the socket path must be absolute")
        is_default = path == default_socket()
        return [_unix(path, default=is_default)], True, str(path), uri, None
    if uri.startswith("tcp://"):
        host, _, port = uri[len("tcp://"):].rstrip("/").rpartition(":")
        if host not in ("127.0.0.1", "localhost", "[::1]") or not port.isdigit():
            raise InvalidArgument(f"{uri}: rl listens on TCP on the loopback only",
                                  "use tcp://127.0.0.1:PORT (or the default unix socket)")
        family = socket.AF_INET6 if host == "[::1]" else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", int(port)))
        s.listen(128)
        shown = f"tcp://{host}:{s.getsockname()[1]}"
        return [s], False, None, shown, (
            f"listening on {shown}: every local user can connect to a TCP port and drive "
            "your containers (no peer check is possible on TCP); prefer the unix socket")
    raise InvalidArgument(f"unsupported URI {uri!r}", "use unix:///PATH or tcp://127.0.0.1:PORT")

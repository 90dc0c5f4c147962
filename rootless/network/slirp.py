"""One slirp4netns process giving a network namespace the outside world, and its port forwards.

`start(pid, api_socket=...)` runs

    slirp4netns --configure --mtu=65520 --disable-host-loopback --enable-sandbox
                --enable-seccomp --api-socket SOCK --ready-fd R --exit-fd E PID tap0

and returns once slirp4netns says (on --ready-fd) that tap0 is up with 10.0.2.100/24, a
default route via 10.0.2.2 and DNS on 10.0.2.3. Port forwards are JSON requests on the API
socket (`add_hostfwd`, `remove_hostfwd`, `list_hostfwd`): one request per connection, under
4096 bytes, the write side shut down after it, and a reply holding "error" is a failure.

Lifetime (who stops slirp4netns): the process that called `start()` — the container's
monitor — calls `Slirp.stop()` when the container ends. If that process dies without doing
so (kill -9), slirp4netns still exits: it gets the read end of a pipe as --exit-fd and the
write end stays only in the caller (O_CLOEXEC, never inherited), so the kernel closing it
on the caller's death makes slirp4netns exit. This is slirp4netns's own form of
PR_SET_PDEATHSIG and, unlike PDEATHSIG, does not depend on which thread forked it.
Create the Slirp after forking the container's processes, so none of them holds the pipe.

Hand-written: slirp4netns has no Python client library; the API is five lines of JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from rootless.errors import Conflict, RlError

PACKAGE = "slirp4netns"  # the Debian/Ubuntu/Fedora package that ships the binary
DEFAULT_CIDR = "10.0.2.0/24"
READY_TIMEOUT = 10.0
API_TIMEOUT = 5.0
_MAX_REQUEST = 4096
_SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1


def binary() -> str:
    """Path of slirp4netns, or a one-line RlError naming the package to install."""
    found = shutil.which("slirp4netns")
    if not found:
        raise RlError("slirp4netns is not installed; rootless containers need it for networking",
                      f"install the '{PACKAGE}' package, e.g. apt-get install {PACKAGE}, "
                      "or use --network none")
    return found


@dataclass
class HostFwd:
    """One forward as slirp4netns lists it."""

    id: int
    proto: str
    host_addr: str
    host_port: int
    guest_addr: str
    guest_port: int


class Api:
    """The API socket of a slirp4netns started elsewhere (e.g. the network holder's):
    `Api(path).add_hostfwd(...)`. `Slirp` is this plus the process."""

    def __init__(self, api_socket: Path | str) -> None:
        self.api_socket = Path(api_socket)

    def _last_log_line(self) -> str:
        return ""

    def _request(self, execute: str, arguments: dict | None = None) -> dict:
        request = {"execute": execute}
        if arguments is not None:
            request["arguments"] = arguments
        data = json.dumps(request).encode()
        if len(data) >= _MAX_REQUEST:
            raise RlError(f"slirp4netns request too long ({len(data)} bytes)")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(API_TIMEOUT)
            try:
                sock.connect(str(self.api_socket))
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                chunks = []
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except OSError as exc:
                raise RlError(f"slirp4netns API socket {self.api_socket}: {exc.strerror or exc}",
                              self._last_log_line() or "is slirp4netns still running?") from exc
        try:
            reply = json.loads(b"".join(chunks) or b"{}")
        except ValueError as exc:
            raise RlError(f"slirp4netns sent a reply that is not JSON to {execute}") from exc
        if "error" in reply:
            err = reply["error"]
            desc = err.get("desc", err) if isinstance(err, dict) else err
            raise _ApiError(str(desc))
        # slirp4netns 1.2 answers add/remove with {"return": {...}} but list_hostfwd with
        # {"entries": [...]} at the top level; accept both shapes.
        return reply.get("return", reply)

    def add_hostfwd(self, proto: str, host_addr: str, host_port: int, guest_port: int,
                    guest_addr: str | None = None) -> int:
        """Forward host_addr:host_port (on the host) to guest_port in the namespace.

        Returns slirp4netns's id for the forward. A port someone else holds raises a
        Conflict naming it."""
        args: dict = {"proto": proto, "host_addr": host_addr or "0.0.0.0",
                      "host_port": int(host_port), "guest_port": int(guest_port)}
        if guest_addr:
            args["guest_addr"] = guest_addr
        try:
            return int(self._request("add_hostfwd", args)["id"])
        except _ApiError as exc:
            from rootless.network import ports

            where = f"{host_addr or '0.0.0.0'}:{host_port}/{proto}"
            # slirp4netns 1.2 says only "slirp_add_hostfwd failed"; newer ones (and
            # rootlessport) say "bind: address already in use". Look at the port ourselves.
            if "in use" in exc.desc or ports.port_in_use(proto, host_addr, host_port):
                raise Conflict(f"host port {where} is already in use",
                               "choose another host port, or stop what listens on it") from exc
            raise RlError(f"slirp4netns could not forward {where}: {exc.desc}") from exc

    def remove_hostfwd(self, fwd_id: int) -> None:
        try:
            self._request("remove_hostfwd", {"id": int(fwd_id)})
        except _ApiError as exc:
            raise RlError(f"slirp4netns could not remove forward {fwd_id}: {exc.desc}") from exc

    def list_hostfwd(self) -> list[HostFwd]:
        try:
            entries = self._request("list_hostfwd").get("entries", [])
        except _ApiError as exc:
            raise RlError(f"slirp4netns could not list forwards: {exc.desc}") from exc
        return [HostFwd(id=e["id"], proto=e["proto"], host_addr=e["host_addr"],
                        host_port=e["host_port"], guest_addr=e["guest_addr"],
                        guest_port=e["guest_port"]) for e in entries]


@dataclass
class Slirp(Api):
    """A running slirp4netns attached to the network namespace of `pid`."""

    process: subprocess.Popen
    pid: int
    api_socket: Path
    log_path: Path
    cidr: str
    allow_host_loopback: bool
    mtu: int
    _exit_w: int | None = field(default=None, repr=False)


    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        """Ask slirp4netns to exit, without waiting: its exit takes ~16 ms here (the
        kernel tearing down its namespaces), which a caller overlaps with other work
        before stop() reaps it."""
        if self._exit_w is not None:
            os.close(self._exit_w)
            self._exit_w = None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 2.0) -> None:
        """End slirp4netns (closing its exit fd, then SIGTERM, then SIGKILL), reap it and
        remove its socket and log. Every forward's listening socket is closed by then.
        Safe to call twice."""
        self.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for path in (self.api_socket, self.log_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def handover(self) -> dict:
        """What `adopt` needs in a process that this one exec'd into (the lean monitor of
        rootless.runtime.lean): the exit fd must survive the exec."""
        try:  # for a monitor that is not its parent (rootless/runtime/monitorfork.py)
            pidfd = os.pidfd_open(self.process.pid)
        except OSError:
            pidfd = None
        return {"process": self.process.pid, "pidfd": pidfd, "pid": self.pid,
                "api_socket": str(self.api_socket),
                "log_path": str(self.log_path), "cidr": self.cidr,
                "allow_host_loopback": self.allow_host_loopback, "mtu": self.mtu,
                "exit_w": self._exit_w}

    @classmethod
    def adopt(cls, state: dict) -> Slirp:
        return cls(process=_Adopted(state["process"], state.get("pidfd")), pid=state["pid"],
                   api_socket=Path(state["api_socket"]), log_path=Path(state["log_path"]),
                   cidr=state["cidr"], allow_host_loopback=state["allow_host_loopback"],
                   mtu=state["mtu"], _exit_w=state["exit_w"])

    def __enter__(self) -> Slirp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _last_log_line(self) -> str:
        return _last_line(self.log_path)


class _Adopted:
    """What Slirp.stop needs of a Popen, for a slirp4netns this process started before it
    exec'd (so without its Popen object): it is still our child; or one that another
    process started and handed over with a pidfd (its end is seen there, its exit
    status is its parent's: 0 here)."""

    def __init__(self, pid: int, pidfd: int | None = None) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            if self.pidfd is not None:
                self._poll_pidfd()
            else:
                try:
                    done, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    done, status = self.pid, 0
                if done:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def _poll_pidfd(self) -> None:
        # never by pid: not our child, its pid may be a child of ours by now
        try:
            info = os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED | os.WNOHANG)
            if info is None:
                return  # our child, running
            code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        except ChildProcessError:  # not our child: ended when its pidfd is readable
            if not select.select([self.pidfd], [], [], 0)[0]:
                return
            code = 0
        self.returncode = code
        os.close(self.pidfd)
        self.pidfd = None

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.005)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            if self.pidfd is not None:  # not our child: its pid may be another's by now
                signal.pidfd_send_signal(self.pidfd, sig)
            else:
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _ApiError(Exception):
    def __init__(self, desc: str) -> None:
        super().__init__(desc)
        self.desc = desc


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    # slirp4netns prints progress ("sent tapfd=5 for tap0"), seccomp warnings and, from
    # its parent, "child failed(1)" after the child's real error: skip the generic lines.
    lines = [ln for ln in lines if ln and not ln.startswith("WARNING: Support for seccomp")]
    useful = [ln for ln in lines if not ln.startswith("child failed(")]
    return (useful or lines or [""])[-1]


def command(pid: int, *, api_socket: Path, allow_host_loopback: bool = False,
            mtu: int = 65520, cidr: str | None = None, ready_fd: int | None = None,
            exit_fd: int | None = None, tap: str = "tap0", mac: str | None = None) -> list[str]:
    """The slirp4netns command line (without the fds when they are None)."""
    cmd = [binary(), "--configure", f"--mtu={mtu}"]
    if not allow_host_loopback:
        cmd.append("--disable-host-loopback")
    cmd += ["--enable-sandbox", "--enable-seccomp", "--api-socket", str(api_socket)]
    if cidr:
        cmd.append(f"--cidr={cidr}")
    if mac:  # --mac-address
        cmd.append(f"--macaddress={mac}")
    if ready_fd is not None:
        cmd.append(f"--ready-fd={ready_fd}")
    if exit_fd is not None:
        cmd.append(f"--exit-fd={exit_fd}")
    cmd += [str(pid), tap]
    return cmd


def start(pid: int, *, api_socket: Path, allow_host_loopback: bool = False, mtu: int = 65520,
          cidr: str | None = None, timeout: float = READY_TIMEOUT,
          log_path: Path | None = None, mac: str | None = None) -> Slirp:
    """Start slirp4netns for the network namespace of `pid` and wait until tap0 is up.

    `pid` must already be in its final user and network namespaces (slirp4netns joins
    both). stderr goes to `log_path` (default: the socket path + ".log") so a chatty
    slirp4netns never blocks on a full pipe. Raises RlError with slirp4netns's last
    stderr line if it exits or does not get ready within `timeout` seconds."""
    api_socket = Path(api_socket)
    if len(os.fsencode(api_socket)) > _SUN_PATH_MAX:
        raise RlError(f"slirp4netns API socket path is too long for a unix socket: {api_socket}",
                      "use a shorter XDG_RUNTIME_DIR")
    if mtu < 68 or mtu > 65521:
        raise RlError(f"invalid MTU {mtu}: slirp4netns accepts 68 to 65521")
    log_path = Path(log_path) if log_path else api_socket.with_name(api_socket.name + ".log")
    api_socket.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileNotFoundError):
        api_socket.unlink()  # a stale socket of an earlier run makes slirp4netns fail

    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    try:
        cmd = command(pid, api_socket=api_socket, allow_host_loopback=allow_host_loopback,
                      mtu=mtu, cidr=cidr, ready_fd=ready_w, exit_fd=exit_r, mac=mac)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    pass_fds=(ready_w, exit_r), start_new_session=True)
    except BaseException:
        for fd in (ready_r, ready_w, exit_r, exit_w):
            os.close(fd)
        raise
    os.close(ready_w)
    os.close(exit_r)
    slirp = Slirp(process=proc, pid=pid, api_socket=api_socket, log_path=log_path,
                  cidr=cidr or DEFAULT_CIDR, allow_host_loopback=allow_host_loopback, mtu=mtu,
                  _exit_w=exit_w)
    try:
        _wait_ready(slirp, ready_r, timeout)
    except BaseException:
        slirp.stop(timeout=0.5)
        raise
    finally:
        os.close(ready_r)
    return slirp


def _wait_ready(slirp: Slirp, ready_r: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RlError(f"slirp4netns did not get ready within {timeout:g}s",
                          slirp._last_log_line() or f"see {slirp.log_path}")
        readable, _, _ = select.select([ready_r], [], [], min(left, 0.2))
        if readable:
            data = os.read(ready_r, 1)
            if data == b"1":
                return
            # EOF without "1": slirp4netns exited (its ready pipe closed with it).
            slirp.process.wait()
            break
        if slirp.process.poll() is not None:
            break
    line = slirp._last_log_line() or f"exit status {slirp.process.returncode}"
    raise RlError(f"slirp4netns failed: {line}")

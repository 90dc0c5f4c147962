"""Starting one container: the monitor's side and the sandbox process.

    monitor (caller)                       sandbox S (forked)
    ----------------                       ------------------
    Launch.fork() ------------ fork ------> unshare(user, mount)          "U" ->
    newuidmap/newgidmap (userns.write)      <- "M"   root in the namespace now
                                            fork the fuse server early (pyfuse3 import)
                                            unshare(net, uts, ipc)        "N" ->
    Launch.start(bundle) ------------------> "B <bundle>"
    (starts slirp4netns for S's netns)      mount the rootfs (fuse server ready)
                                 "G" -----> unshare(pid); fork pid 1 (pid1.run)
                                            "P <pid>", then "S" (exec done) or "E code msg"
    Launch.wait() <------------------------ "X <wait status>" when pid 1 exits; unmount;
                                            stop the server; exit

Detached (`lean`), after "S" the sandbox says "W" (it execs the lean waiter and goes on as
above) or, when it forked pid 1 with CLONE_PARENT, "F <server pid>" and exits: pid 1 is
the monitor's child then, and the monitor waits on pidfds of pid 1 and of the fuse server
instead of the status pipe (`_fold`; why and when: docs/design.md, section 4).

The first start of a detached container forks the sandbox from a monitor the zygote
forked (rootless/runtime/monitorfork.py), the caller keeping the monitor's side above.

Debugging: RL_TRACE=FILE appends timestamped steps of every process of a start (where the
time goes); the traceback of a sandbox that failed unexpectedly goes to rl.log
(rootless/crashlog.py).

Every process below the monitor has PR_SET_PDEATHSIG=SIGKILL: if the monitor dies, the
sandbox dies, and with it pid 1 (so the whole pid namespace) and the fuse server; nothing
is left mounted or running. Fork happens before any thread exists anywhere in this chain.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from pathlib import Path

from rootless.errors import RlError
from rootless.linux import syscalls as sc
from rootless.runtime import exitcode, userns
from rootless.runtime import lean as lean_mod
from rootless.runtime import rootfs as rootfs_mod
from rootless.trace import trace

NS_FLAGS = {"network": sc.CLONE_NEWNET, "uts": sc.CLONE_NEWUTS, "ipc": sc.CLONE_NEWIPC}


class _Lines:
    """Line reader on a pipe fd (the protocol is a handful of short lines)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def read(self) -> str | None:
        while b"\n" not in self.buf:
            chunk = os.read(self.fd, 4096)
            if not chunk:
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line.decode(errors="replace")
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")


def _send(fd: int, line: str) -> None:
    os.write(fd, (line.replace("\n", " ") + "\n").encode(errors="replace"))


class Launch:
    """One container start. `fork()` early (it overlaps the fuse server's start-up with the
    caller's work), then `start(bundle)`, then `wait()` for the exit status."""

    def __init__(self, *, maps: userns.Maps, backend: str, namespaces: set[str],
                 stdio: tuple[int, int, int], terminal: bool = False, early=None,
                 joins: dict[str, int] | None = None, holder=None,
                 lean: bool = False, own_monitor: bool = False) -> None:
        self.maps = maps
        # Detached, first start: the zygote forks the container's monitor, which forks the
        # sandbox; this process hands the container over to it once it runs
        # (rootless/runtime/monitorfork.py). `monitor`: that monitor, once asked.
        self.own_monitor = own_monitor and lean
        self.monitor = None
        # Detached: once pid 1 runs, the sandbox execs a lean waiter (rootless.runtime.lean).
        self.lean = lean
        # --network NAME: the user namespace is made under the network holder's
        # (rootless/network/holder.py), which writes its maps.
        self.holder = holder
        # --network/--pid/--ipc container:NAME: {"net"|"pid"|"ipc": host pid of that
        # container's pid 1}; its user namespace and those are joined instead of made
        # (rootless/runtime/nsjoin.py).
        self.joins = dict(joins or {})
        # A fuse_overlay server forked before us (rootless.runtime.early.Prestarted).
        self.early = early if backend == "fuse_overlay" else None
        if early is not None and self.early is None:
            early.kill()
        self.backend = backend
        self.namespaces = namespaces
        self.stdio = stdio
        self.terminal = terminal
        self.sandbox_pid: int | None = None
        self.pid: int | None = None  # the container's pid 1, as the host sees it
        self.pty_master: int | None = None
        self.exit_status: int | None = None
        self._ctl_w = -1
        self._status: _Lines | None = None
        self._pty_sock = None
        # Once the sandbox folded (detached: it exits, pid 1 is our child): pidfds of pid 1
        # and of the fuse server
        self.exit_fd: int | None = None
        self.server_fd: int | None = None
        # Called once pid 1 exited (the monitor ends slirp4netns then: its exit is slow
        # and overlaps the sandbox's unmount that way).
        self.on_exit = None

    # -- monitor side -----------------------------------------------------------------------
    def fork(self) -> None:
        trace("M fork")
        ctl_r, ctl_w = os.pipe()
        status_r, status_w = os.pipe()
        pty_child = None
        if self.terminal:
            import socket

            self._pty_sock, pty_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        # The warm fuse server zygote serves only a peer in the user's own namespace, which
        # the sandbox soon leaves: connect now, the sandbox sends its request on it.
        zygote_conn = None
        if self.early is None and self.backend == "fuse_overlay":
            from rootless.runtime import zygote

            # detached: start the zygote if none runs (the latency matters less than
            # the memory of a server of our own for as long as the container runs)
            zygote_conn = zygote.connect_or_spawn() if self.lean else zygote.connect()
        sys.stdout.flush()
        sys.stderr.flush()
        # Objects made so far are never collected: the garbage collector then leaves their
        # pages alone in the sandbox, which keeps sharing them with us (copy-on-write).
        gc.freeze()
        nest_pid = self.holder.pid if self.holder is not None else None
        if self.own_monitor and zygote_conn is not None:
            # the zygote forks this container's monitor, which forks the sandbox
            # (rootless/runtime/monitorfork.py): H's fds and the sandbox's arguments
            self.monitor = self._zygote_monitor(ctl_r, status_w, pty_child, zygote_conn,
                                                nest_pid)
        pid = self.monitor.sandbox_pid if self.monitor is not None else os.fork()
        if pid == 0:
            gc.disable()
            os.close(ctl_w)
            os.close(status_r)
            if self._pty_sock is not None:
                self._pty_sock.close()
            child(ctl_r, status_w, self.stdio, self.backend, self.namespaces,
                  pty_child.detach() if pty_child is not None else None,
                  self.early.ready_r if self.early is not None else None,
                  self.joins, nest_pid, self.lean,
                  zygote_conn.fileno() if zygote_conn is not None else None)
        os.close(ctl_r)
        os.close(status_w)
        if pty_child is not None:
            pty_child.close()
        if zygote_conn is not None:
            zygote_conn.close()
        if self.early is not None:
            os.close(self.early.ready_r)  # the sandbox waits on it
            self.early.ready_r = -1
        self.sandbox_pid = pid
        self._ctl_w = ctl_w
        self._status = _Lines(status_r)
        trace("M forked")
        line = self._status.read()
        if line != "U":
            self._fail(line)
        try:
            if self.holder is not None:
                self.holder.write_id_maps(pid)
            elif not self.joins:  # a joined user namespace has its maps
                userns.write(pid, self.maps)
        except OSError as exc:
            self.abort()
            raise RlError(f"cannot write the id maps of the container: {exc}",
                          "check `rl info`") from None
        except BaseException:
            self.abort()
            raise
        trace("M maps written")
        _send(ctl_w, "M")

    def _zygote_monitor(self, ctl_r: int, status_w: int, pty_child, zygote_conn,
                        nest_pid: int | None):
        from rootless.runtime import monitorfork, zygote

        conn = zygote.connect()
        if conn is None:
            return None
        if not monitorfork.same_cgroup(conn):
            conn.close()
            return None
        return monitorfork.request(
            conn, {"backend": self.backend, "namespaces": sorted(self.namespaces),
                   "joins": self.joins, "nest_pid": nest_pid},
            {"ctl_r": ctl_r, "status_w": status_w, "in": self.stdio[0], "out": self.stdio[1],
             "err": self.stdio[2], "pty": pty_child.fileno() if pty_child is not None else None,
             "zygote": zygote_conn.fileno()})

    @property
    def monitor_pid(self) -> int:
        """The pid of the container's monitor: the zygote's child, or this process."""
        return self.monitor.monitor_pid if self.monitor is not None else os.getpid()

    def start(self, bundle: Path, *, before_go=None) -> None:
        """Send the bundle; return once the container's command runs (or raise)."""
        assert self._status is not None
        if self.early is not None:
            from dataclasses import asdict

            from rootless.runtime.rootfs import RootfsSpec

            spec = asdict(RootfsSpec.load(str(Path(bundle) / "rootfs.json")))
            self.early.send(spec, ns_pid=self.sandbox_pid)
        trace("M bundle")
        _send(self._ctl_w, f"B {bundle}")
        line = self._status.read()
        if line != "N":
            self._fail(line)
        if before_go is not None:
            try:
                before_go(self.sandbox_pid)
            except BaseException:
                self.abort()
                raise
        trace("M go")
        _send(self._ctl_w, "G")
        line = self._status.read()
        if not line or not line.startswith("P "):
            self._fail(line)
        self.pid = int(line[2:])
        if self._pty_sock is not None:
            import socket

            _, fds, _, _ = socket.recv_fds(self._pty_sock, 16, 1)
            self._pty_sock.close()
            self._pty_sock = None
            if fds:
                self.pty_master = fds[0]
        line = self._status.read()
        if line != "S":
            self._fail(line)
        if self.lean:
            line = self._status.read()
            if line and line.startswith("F "):
                self._fold(int(line[2:]))
            elif line != "W":
                self._fail(line)

    def _fold(self, server_pid: int) -> None:
        """The sandbox made pid 1 our child (CLONE_PARENT) and exits: pid 1's exit is ours
        to wait for (its pidfd stands for the status pipe), and the fuse server's, which
        ends with the container, too (a pidfd: its pid may be reused once it is gone)."""
        trace("M folded")
        # The sandbox is reaped at the end (reap; the lean monitor's wait): its exit, which
        # tears its mount namespace down, is not waited for on the way to "started".
        assert self._status is not None and self.pid is not None
        os.close(self._status.fd)
        self._status = None
        self.exit_fd = os.pidfd_open(self.pid)
        self.server_fd = None
        if server_pid:
            try:
                self.server_fd = os.pidfd_open(server_pid)
            except OSError:
                pass  # gone already

    def _fail(self, line: str | None) -> None:
        self.abort()
        if line and line.startswith("E "):
            code, _, msg = line[2:].partition(" ")
            raise RlError(msg, exit_code=int(code) if code.isdigit() else 125)
        if line and line.startswith("X "):
            raise RlError("the container exited during set-up")
        raise RlError("the container's sandbox exited during set-up"
                      + (f": {line}" if line else ""))

    @property
    def status_fd(self) -> int:
        """Readable when pid 1 exited: the sandbox's status pipe, or once folded, pid 1's
        pidfd."""
        if self.exit_fd is not None:
            return self.exit_fd
        assert self._status is not None
        return self._status.fd

    def read_exit(self) -> int | None:
        """Read the sandbox's last line: the wait status of pid 1 (None if it died)."""
        if self.exit_fd is not None:  # folded: pid 1 is our child
            self.exit_status = lean_mod.wait_child(self.pid)
            trace("M exit status")
            if self.on_exit is not None:
                self.on_exit()
            return self.exit_status
        assert self._status is not None
        while True:
            line = self._status.read()
            if line is None:
                return None
            if line.startswith("X "):
                trace("M exit status")
                self.exit_status = int(line[2:])
                if self.on_exit is not None:
                    self.on_exit()
                return self.exit_status

    def wait(self) -> int:
        """Docker's exit code: the command's own, or 128+N when killed by signal N."""
        status = self.exit_status if self.exit_status is not None else self.read_exit()
        self.reap()
        if status is None:
            return 137
        return exitcode.from_status(status)

    def reap(self) -> None:
        trace("M reap")
        if self.exit_fd is not None:
            if self.exit_status is None:
                lean_mod.wait_child(self.pid)
            os.close(self.exit_fd)
            self.exit_fd = None
            if self.server_fd is not None:
                lean_mod.server_gone(self.server_fd)
                self.server_fd = None
        elif self.lean and self.pid is not None and self.exit_status is None:
            # A start that failed after the sandbox forked pid 1 as our child (folding):
            # pid 1 reported its error and exits; reap it. (Not our child otherwise.)
            try:
                if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                    os.kill(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
            except OSError:
                pass
        if self.early is not None:
            self.early.close_params()
        if self.monitor is not None:  # not handed over: it kills the sandbox and exits
            self.monitor.close()
            self.sandbox_pid = None
        if self.sandbox_pid is not None:
            try:
                os.waitpid(self.sandbox_pid, 0)
            except ChildProcessError:
                pass
            self.sandbox_pid = None
        if self.early is not None:
            self.early.reap()  # it exits once the sandbox unmounted the rootfs
            self.early = None
        if self._ctl_w >= 0:
            os.close(self._ctl_w)
            self._ctl_w = -1

    def abort(self) -> None:
        """Tear down a sandbox that will not be started (or failed)."""
        if self.sandbox_pid is not None:
            try:
                os.kill(self.sandbox_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.early is not None:
            self.early.kill()
        self.reap()


# -- the sandbox process -------------------------------------------------------------------

def child(ctl_r: int, status_w: int, *args) -> None:
    """The sandbox's body in a forked child (of the monitor, or of a monitor the zygote
    forked: rootless/runtime/monitorfork.py); its failure goes to the status pipe.
    Never returns."""
    try:
        _sandbox(ctl_r, status_w, *args)
    except BaseException as exc:
        try:
            if not isinstance(exc, (RlError, SystemExit)):
                from rootless import crashlog

                crashlog.record(exc, "sandbox")
            _send(status_w, f"E 125 sandbox: {exc}")
        finally:
            os._exit(125)
    os._exit(0)


def _become_root() -> None:
    try:  # root inside (keep-id maps our own uid to itself; root is then a subuid)
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError:
        pass


def _close_all_but(keep: set[int]) -> None:
    """Release every fd not in `keep`: the sandbox must not hold the monitor's pipes (a
    detached start waits for EOF on one) nor anything else of the caller."""
    sc.neutralize_fds(keep)


def _sandbox(ctl_r: int, status_w: int, stdio: tuple[int, int, int], backend: str,
             namespaces: set[str], pty_sock: int | None, early_ready: int | None,
             joins: dict[str, int] | None = None, nest_pid: int | None = None,
             lean: bool = False, zygote_conn: int | None = None) -> None:
    # Our own process group: the terminal's Ctrl-C goes to the monitor, which forwards it.
    os.setpgid(0, 0)
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGPIPE stays ignored (Python's default): a dead peer is an EPIPE we report.
    # The container's stdio sits on 0, 1, 2 for pid 1 to inherit.
    for i, fd in enumerate(stdio):
        if fd != i:
            os.dup2(fd, i)
    keep = {0, 1, 2, ctl_r, status_w}
    keep |= {fd for fd in (pty_sock, early_ready, zygote_conn) if fd is not None}
    _close_all_but(keep)
    ctl = _Lines(ctl_r)
    trace("S start")
    pidns_fd = None
    try:
        if joins:
            from rootless.runtime import nsjoin

            pidns_fd = nsjoin.join(joins)
        elif nest_pid is not None:
            from rootless.runtime import nsjoin

            nsjoin.nest_under(nest_pid)
        else:
            sc.unshare(sc.CLONE_NEWUSER | sc.CLONE_NEWNS)
    except OSError as exc:
        _send(status_w, f"E 125 cannot create a user namespace: {exc.strerror} (run `rl info`: "
                        "user namespaces may be disabled by sysctl or AppArmor on this host)")
        os._exit(125)
    _send(status_w, "U")
    if ctl.read() != "M":
        os._exit(0)
    # The sandbox stays dumpable until "G": the monitor writes its /proc/PID/uid_map
    # without a helper when there is no subordinate range, slirp4netns and the port proxy
    # open its /proc/PID/ns/*, and a fuse server joins it by them (newuidmap, too, wants
    # to own our /proc/PID).
    if backend != "fuse_overlay":
        _become_root()  # fuse-overlayfs is exec'd: as root in the namespace it keeps its caps
    trace("S maps ok")
    server = rootfs_mod.Server(backend, early_ready, zygote_conn)
    from rootless.runtime import pid1

    server.prestart()
    flags = 0
    for kind, flag in NS_FLAGS.items():
        if kind in namespaces:
            flags |= flag
    if flags:
        sc.unshare(flags)
    if "network" in namespaces:
        sc.loopback_up()
    line = ctl.read()
    if not line or not line.startswith("B "):
        os._exit(0)
    bundle = line[2:]
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)
    rfs = rootfs_mod.RootfsSpec.load(os.path.join(bundle, "rootfs.json"))
    from rootless.runtime import seccomp

    try:
        seccomp_bpf = seccomp.read_bundle(bundle, spec)
    except seccomp.SeccompError as exc:
        _send(status_w, f"E 125 {exc}")
        os._exit(125)
    trace("S bundle read")
    _send(status_w, "N")
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    try:
        server.mount(rfs)
    except (rootfs_mod.RootfsError, OSError) as exc:
        server.stop(rfs)
        # The engine checked /dev/fuse before starting; it may have changed since.
        problem = rootfs_mod.fuse_device_problem()
        _send(status_w, f"E 125 root filesystem: {problem or exc}")
        os._exit(125)
    trace("S mounted")
    if backend == "fuse_overlay":
        # Only now: a fuse server forked before us or by the zygote had to open our
        # /proc/PID/ns/* (and the zygote checks our uid): a change to a subordinate uid
        # (--userns=keep-id) would have forbidden both.
        _become_root()
    if ctl.read() != "G":
        server.stop(rfs)
        os._exit(0)
    # Everything that joins us by /proc/PID/ns has (the monitor's before_go ran). From
    # now a container's root that sees us (`--pid host`: it has our kernel uid) cannot
    # open our /proc/PID/root, fd/ or mem; pid 1 inherits it and keeps it until its exec.
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    # Does the container see us (--pid host, or a container's pid namespace that is ours)?
    # A joined user namespace counts as seen: another container shares it.
    seen = "pid" not in namespaces or bool(joins)
    if pidns_fd is not None:  # --pid container:NAME: pid 1 is forked into that one
        seen = os.fstat(pidns_fd).st_ino == os.stat("/proc/self/ns/pid").st_ino
        sc.setns(pidns_fd, sc.CLONE_NEWPID)
        os.close(pidns_fd)
    elif "pid" in namespaces:
        sc.unshare(sc.CLONE_NEWPID)
    if joins and "ipc" in joins:  # pid 1 binds that container's /dev/shm (pid1.py)
        spec.setdefault("annotations", {})["io.rl.ipc-donor"] = str(joins["ipc"])
    exec_r, exec_w = os.pipe()
    # Detached, with a server that is not our child (so not killed when we exit): pid 1
    # becomes the monitor's child, and we exit once it runs (one process less per
    # running container). Not when the server still shares our mount namespace (it had
    # not left it yet: it would keep the rootfs mounted, and itself running, after us).
    fold = lean and server.pid is None and server.left_us()
    pid = sc.fork_sibling() if fold else os.fork()
    if pid == 0:
        from rootless.runtime import pid1

        os.close(exec_r)
        os.close(status_w)
        os.close(ctl_r)
        pid1.run(spec, rfs.mountpoint, exec_w, pty_sock, seccomp_bpf)
    os.close(exec_w)
    if pty_sock is not None:
        os.close(pty_sock)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    trace("S forked P")
    _send(status_w, f"P {pid}")
    report = b""
    while chunk := os.read(exec_r, 4096):
        report += chunk
    os.close(exec_r)
    _send(status_w, report.decode(errors="replace") if report else "S")
    if fold and not report:
        # pid 1 is the monitor's now; our mount namespace (the rootfs mounted in it) ends
        # with us, pid 1's keeps the mount, so the server ends with the container.
        trace("S folded")
        _send(status_w, f"F {server.peer_pid or 0}")
        os._exit(0)
    if fold:  # it failed and exited: the monitor reaps it
        server.stop(rfs)
        os._exit(0)
    if lean and not report:
        _send(status_w, "W")  # not folded: we wait for pid 1 (the monitor reads it)
    # The lean waiter would be exec'd in the container's user namespace: the kernel then
    # lets a container process with CAP_SYS_PTRACE there open its /proc/PID/root (the
    # host's files, as our mount namespace shows them), dumpable or not. So a container
    # that sees us keeps us as we are (a fork of rl, exec'd in the host's namespace, not
    # dumpable since "G"); the others get the lean waiter.
    if lean and not report and not seen:
        try:
            lean_mod.exec_waiter(pid, status_w, backend, rfs.mountpoint, server.pid,
                                 server.peer_pid)
        except OSError:
            pass  # the exec failed: wait as we are
    while True:
        try:
            done, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        if done == pid:
            break
    trace("S P exited")
    _send(status_w, f"X {status}")
    server.stop(rfs)

"""A detached container's monitor forked from the warm zygote instead of exec'd fresh.

Why: with 20 containers running, a monitor that is a fresh `python -I -S` costs ~2.9 MiB
of private memory each (an interpreter's own heap), of the ~7 MiB a container cost; a
fork of the zygote, which has the monitor's modules imported and frozen (gc.freeze),
shares those pages and dirties ~1 MiB. The monitor must be pid 1's parent (only a parent
gets its wait status), and pid 1 is forked by the sandbox with CLONE_PARENT, so the
sandbox must be the monitor's child: the zygote's child M forks the sandbox S, and the
`rl run -d` process H (a fork of the CLI, with the engine) drives S's set-up as before
through the pipes it made, then hands what the monitor loop needs to M and exits.

    H (engine)                         zygote child M                 S (sandbox)
    request(): JSON + fds  ----------> setsid, env/umask of H
                                       fork ------------------------> sandbox._sandbox
                           <---------- b"k<S pid>"                    ("U", "N", "P"... to H)
    ids maps, bundle, slirp4netns, go (H <-> S, as for a sandbox H forked itself)
                                                                      pid 1 (CLONE_PARENT:
                                                                      M's child); S exits
    hand_over(args, fds)   ----------> its fds at H's numbers,
    exit                               rootless.runtime.lean.monitor_main(args)

If H gives up before the handover (an error, or H killed), M sees the connection's end,
kills S and exits; pid 1, if forked, dies with it (PR_SET_PDEATHSIG). slirp4netns stays
H's child and is reparented when H exits: M keeps its exit fd and a pidfd to wait on.
The environment, umask and resource limits are H's (the zygote may have been started by
another `rl` with others): the sandbox (so the container) gets all three, M H's umask, and
H's environment for its health checks and, once the container ended, for the engine's
work then. Used for the first
start of a detached container only (a restart relaunches in the monitor itself), and
only from a zygote in our own cgroup (same_cgroup).
"""

from __future__ import annotations

import json
import os
import signal
import socket

_FDS_PER_MESSAGE = 250
# Names of the fds a request carries, in order (those that are None are left out).
_SANDBOX_FDS = ("ctl_r", "status_w", "in", "out", "err", "pty", "zygote")


class Handle:
    """H's side: the connection to M, S's pid and M's pid."""

    def __init__(self, conn: socket.socket, sandbox_pid: int, monitor_pid: int) -> None:
        self.conn = conn
        self.sandbox_pid = sandbox_pid
        self.monitor_pid = monitor_pid

    def hand_over(self, args: list[str], fds: list[int]) -> None:
        """Give M the lean monitor's arguments and fds (their numbers here are in the
        arguments: M puts them at the same numbers)."""
        data = json.dumps({"args": args, "fds": fds}).encode()
        # at most SCM_MAX_FD (253) fds a message: a proxied port range has one each; the
        # JSON goes with the first, a space (JSON whitespace) with each further one
        try:
            for i in range(0, max(len(fds), 1), _FDS_PER_MESSAGE):
                socket.send_fds(self.conn, [data if i == 0 else b" "],
                                fds[i:i + _FDS_PER_MESSAGE])
            self.conn.shutdown(socket.SHUT_WR)
            answer = _line(self.conn)
        finally:
            self.conn.close()
        if answer != "ok":  # M is gone, and pid 1 with it (its PDEATHSIG)
            raise OSError(f"the monitor did not take the container over ({answer or 'gone'})")

    def close(self) -> None:
        """Before the handover: M kills the sandbox and exits; wait for that."""
        if self.conn.fileno() < 0:
            return
        try:
            self.conn.shutdown(socket.SHUT_WR)
            while self.conn.recv(4096):
                pass
        except OSError:
            pass
        self.conn.close()


def same_cgroup(conn: socket.socket) -> bool:
    """Is the zygote at the other end of `conn` in our cgroup? The sandbox it would fork
    starts there, and the container's cgroup (rootless/engine/cgroups.py) is made in our
    delegated subtree: a zygote started from another session's scope could not have its
    child moved there (the common ancestor is root's). Otherwise: the sandbox is ours."""
    import struct

    try:
        cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid = struct.unpack("3i", cred)[0]
        with open("/proc/self/cgroup", "rb") as mine, open(f"/proc/{pid}/cgroup", "rb") as theirs:
            return mine.read() == theirs.read()
    except OSError:
        return False


def request(conn: socket.socket, sandbox: dict, fds: dict[str, int | None]) -> Handle | None:
    """Ask the zygote (a connect()ed socket) for a monitor that forks the sandbox with
    `sandbox` (the keyword arguments of rootless.runtime.sandbox._sandbox that are not
    fds) and `fds`; None if it did not answer (the caller forks the sandbox itself)."""
    names = [n for n in _SANDBOX_FDS if fds.get(n) is not None]
    msg = {"monitor": {"sandbox": sandbox, "fds": names, "env": dict(os.environ),
                       "context": _context()}}
    try:  # one line (the zygote reads up to the newline: a long one arrives in parts)
        socket.send_fds(conn, [json.dumps(msg).encode() + b"\n"], [fds[n] for n in names])
        answer = _line(conn)
    except OSError:
        conn.close()
        return None
    parts = answer.split()
    if len(parts) != 3 or parts[0] != "k" or not (parts[1] + parts[2]).isdigit():
        from rootless.trace import trace

        trace(f"M no monitor from the zygote: {answer[:200]!r}")
        conn.close()
        return None
    return Handle(conn, int(parts[1]), int(parts[2]))


def _line(conn: socket.socket) -> str:
    """A short answer line (without its newline); "" at the connection's end."""
    answer = b""
    while not answer.endswith(b"\n"):
        chunk = conn.recv(256)
        if not chunk:
            return ""
        answer += chunk
    return answer[:-1].decode(errors="replace")


# What a process of ours inherits from its parent and the container gets from the `rl`
# that starts it: the monitor takes it on (or refuses when it cannot: the caller then
# forks the sandbox itself), so that a zygote started by another `rl` changes nothing.
_STATUS_KEYS = ("NoNewPrivs", "Seccomp", "Groups", "CapBnd", "CapAmb", "CapInh")


def _context() -> dict:
    import resource

    umask = os.umask(0)
    os.umask(umask)
    limits = {}
    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            try:
                limits[name] = resource.getrlimit(getattr(resource, name))
            except (OSError, ValueError):
                pass
    with open("/proc/self/oom_score_adj") as f:
        oom = f.read().strip()
    return {"umask": umask, "rlimits": limits, "nice": os.getpriority(os.PRIO_PROCESS, 0),
            "affinity": sorted(os.sched_getaffinity(0)), "oom_score_adj": oom,
            "status": _status()}


def _status() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in _STATUS_KEYS:
                out[key] = value.strip()
    return out


def _take_context(ctx: dict) -> str | None:
    """Make ours the caller's context; the reason when we cannot."""
    import resource

    if _status() != ctx["status"]:
        return "its credentials or no_new_privs/seccomp differ from the caller's"
    os.umask(ctx["umask"])
    try:
        for name, (soft, hard) in ctx["rlimits"].items():
            res = getattr(resource, name)
            if resource.getrlimit(res) != (soft, hard):
                resource.setrlimit(res, (soft, hard))
        if os.getpriority(os.PRIO_PROCESS, 0) != ctx["nice"]:
            os.setpriority(os.PRIO_PROCESS, 0, ctx["nice"])
        if sorted(os.sched_getaffinity(0)) != ctx["affinity"]:
            os.sched_setaffinity(0, ctx["affinity"])
        with open("/proc/self/oom_score_adj", "r+") as f:
            if f.read().strip() != ctx["oom_score_adj"]:
                f.seek(0)
                f.write(ctx["oom_score_adj"])
    except (OSError, ValueError, AttributeError) as exc:
        return f"cannot take the caller's limits: {exc}"
    return None


# -- M, in the zygote's forked child -----------------------------------------------------

def serve(conn: socket.socket, req: dict, fds: list[int]) -> None:
    """Become a container's monitor: fork its sandbox, answer, wait for the handover,
    run the lean monitor. Never returns."""
    try:
        _serve(conn, req, fds)
    except BaseException as exc:  # a bug: our stderr is /dev/null, the traceback to rl.log
        from rootless import crashlog

        crashlog.record(exc, "monitor forked by the zygote")
    os._exit(1)


def _serve(conn: socket.socket, req: dict, fds: list[int]) -> None:
    from rootless.linux import syscalls as sc
    from rootless.runtime import monitor

    os.setsid()  # as H's own monitor had: its own session, no terminal
    # Until the monitor loop has its handlers, the signals it forwards wait (rl stop may
    # signal us as soon as H recorded our pid); lean.monitor_main unblocks them.
    signal.pthread_sigmask(signal.SIG_BLOCK, monitor.FORWARDED)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # H's environment goes to the sandbox now, and to us only once the container ended,
    # for the engine's work then (its store paths; rootless.runtime.lean.monitor_main):
    # replacing os.environ here cost ~0.8 MiB of private memory for as long as the
    # container runs (measured).
    refused = _take_context(req["context"])
    if refused is not None:
        conn.sendall(f"n {refused}\n".encode())
        os._exit(0)
    try:  # `ps`/`top` name it (its command line is the zygote's)
        with open("/proc/self/comm", "w") as f:
            f.write("rl-monitor")
    except OSError:
        pass
    mine = dict(zip(req["fds"], fds, strict=True))
    sc.neutralize_fds({0, 1, 2, conn.fileno(), *fds})
    me = os.getpid()
    pid = os.fork()
    if pid == 0:
        _sandbox_child(req, mine, me)
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(f"k {pid} {os.getpid()}\n".encode())
        data, got = _receive(conn)
    except OSError:
        data, got = b"", []
    try:
        handover = json.loads(data) if data else None
    except ValueError:
        handover = None
    if handover is None:  # H gave up (or died): nothing of this start may stay
        _end_children()
        os._exit(0)
    import fcntl

    # our answer goes on a copy above every number H's fds take here
    answer = fcntl.fcntl(conn.fileno(), fcntl.F_DUPFD_CLOEXEC, max([*handover["fds"], 2]) + 1)
    conn.close()
    try:
        _place(got, handover["fds"])
    except OSError as exc:
        _end_children()
        os.write(answer, f"n {exc}\n".encode())
        raise
    os.write(answer, b"ok\n")
    os.close(answer)
    from rootless.runtime import lean

    lean.monitor_main(handover["args"], env=req["env"])
    os._exit(0)


def _end_children() -> None:
    """Kill and reap our children: the sandbox and, once it forked it, pid 1 (whose
    PDEATHSIG would come too, but not if it is still before setting it)."""
    import time

    kids: set[int] = set()
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                kids |= {int(p) for p in f.read().split()}
    except OSError:
        pass
    for pid in kids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    while kids and time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        kids.discard(done)




def _sandbox_child(req: dict, fds: dict[str, int], monitor: int) -> None:
    from rootless.linux import syscalls as sc

    try:
        # first: a sandbox whose monitor died before it answered must not run on (the
        # caller then forks another on the same pipes)
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != monitor:
            os._exit(0)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])  # pid 1 inherits the mask
        os.environ.clear()
        os.environ.update(req["env"])
        from rootless.trace import trace

        trace("S forked by the zygote's monitor")
        s = req["sandbox"]
        from rootless.runtime import sandbox

        sandbox.child(fds["ctl_r"], fds["status_w"], (fds["in"], fds["out"], fds["err"]),
                      s["backend"], set(s["namespaces"]), fds.get("pty"), None,
                      {k: int(v) for k, v in (s.get("joins") or {}).items()},
                      s.get("nest_pid"), True, fds.get("zygote"))
    finally:
        os._exit(125)


def _receive(conn: socket.socket) -> tuple[bytes, list[int]]:
    """The handover: messages with the fds, then H closes its end."""
    data, got = b"", []
    while True:
        chunk, fds, _, _ = socket.recv_fds(conn, 1 << 16, _FDS_PER_MESSAGE)
        got += fds
        if not chunk and not fds:
            return data, got
        data += chunk


def _place(got: list[int], wanted: list[int]) -> None:
    """Put the received fds at the numbers H had them under (the monitor's arguments
    name them so): first out of the way of every wanted number, then into place."""
    import fcntl

    top = max([*wanted, 2]) + 1
    moved = []
    for fd in got:
        moved.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, top))
        os.close(fd)
    for fd, number in zip(moved, wanted, strict=True):
        os.dup2(fd, number, inheritable=False)
        os.close(fd)

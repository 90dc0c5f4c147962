"""Acting on a running container from a fresh process: signals, `rl exec`, entering its
namespaces (for `rl cp`), listing its processes.

setns(2) into a user namespace needs a single-threaded process: everything here forks from
the CLI process, which never started a thread. A process that joins the container is made
non-dumpable until it execs, so nothing in the container can open /proc/PID/exe of the
host's Python (the CVE-2019-5736 class).
"""

from __future__ import annotations

import os
import signal
from typing import NoReturn

from rootless.linux import procstat
from rootless.linux import syscalls as sc

# Joining order: the user namespace first (it grants the rights for the others); the
# pid namespace applies to children; the mount namespace last (it changes root and cwd).
NS_ORDER = (("user", sc.CLONE_NEWUSER), ("ipc", sc.CLONE_NEWIPC), ("uts", sc.CLONE_NEWUTS),
            ("net", sc.CLONE_NEWNET), ("pid", sc.CLONE_NEWPID), ("mnt", sc.CLONE_NEWNS))


def kill(pid: int, sig: int) -> None:
    """Signal a container process. When it runs as a subordinate id the user cannot signal
    it from outside: a child joins the container's user namespace (where the user has
    CAP_KILL) and sends it from there. Raises ProcessLookupError when it is gone."""
    try:
        os.kill(pid, sig)
        return
    except PermissionError:
        pass
    fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        try:
            sc.setns(fd, sc.CLONE_NEWUSER)
            os.kill(pid, sig)
            os._exit(0)
        except ProcessLookupError:
            os._exit(3)
        except BaseException:
            os._exit(1)
    os.close(fd)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    if code == 3:
        raise ProcessLookupError(pid)
    if code != 0:
        raise PermissionError(f"cannot signal process {pid}")


def open_namespaces(pid: int, kinds=None) -> list[tuple[int, int]]:
    """The container's namespaces, less those it shares with us (--pid/--ipc/--uts/
    --network host): setns into one of the host's is EPERM from a user namespace, and we
    are in it already."""
    out = []
    for name, flag in NS_ORDER:
        if kinds is not None and name not in kinds:
            continue
        fd = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        if name != "user":
            try:
                mine, theirs = os.stat(f"/proc/self/ns/{name}"), os.fstat(fd)
                if (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
                    os.close(fd)
                    continue
            except OSError:
                pass
        out.append((fd, flag))
    return out


def enter(nsfds: list[tuple[int, int]]) -> None:
    """setns into each (fd, type), in order; closes the fds. The caller must be a
    single-threaded child process."""
    for fd, flag in nsfds:
        if flag == sc.CLONE_NEWUSER:
            # Joining our own user namespace again is EINVAL: skip when already there.
            try:
                sc.setns(fd, flag)
            except OSError as exc:
                if exc.errno != 22:
                    raise
        else:
            sc.setns(fd, flag)
        os.close(fd)


def exec_child(pid: int, spec: dict, process: dict, *, tty_sock: int | None,
               user: str | None, seccomp_bpf: bytes | None = None,
               control: int | None = None) -> NoReturn:
    """Run in a forked child: join the container of `pid`, fork into its pid namespace,
    become the user (with the container's session keyring rule and seccomp filter) and
    exec process["args"]. Exits with the command's exit code. `control` (a socket to the
    caller, `rl exec -it`): the caller may detach (keep_after_detach)."""
    import fcntl
    import socket

    from rootless.runtime import pid1

    try:
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        nsfds = open_namespaces(pid)
        enter(nsfds)
        exec_r, exec_w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(exec_r)
            try:
                sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
                os.setsid()
                slave = None
                if tty_sock is not None:
                    master, slave = _open_pty()
                    s = socket.socket(fileno=tty_sock)
                    socket.send_fds(s, [b"m"], [master])
                    s.close()
                    os.close(master)
                full = dict(spec, process=process)
                ann = dict(spec.get("annotations", {}))
                if user is not None:
                    ann["io.rl.user"] = user
                full["annotations"] = ann
                proc = pid1.prepare_process(full)
                if slave is not None:
                    for fd in (0, 1, 2):
                        os.dup2(slave, fd)
                    os.close(slave)
                    fcntl.ioctl(0, pid1.TIOCSCTTY, 0)
                pid1.become(proc, setgroups_allowed=pid1.setgroups_allowed(),
                            seccomp_bpf=seccomp_bpf)
                if exec_w > 3:
                    sc.close_range(3, exec_w - 1)
                sc.close_range(exec_w + 1)
                pid1._exec(proc["args"], proc.get("env", []))
            except pid1.Fail as exc:
                os.write(exec_w, f"{exc.code} {exc}".encode())
                os._exit(exc.code)
            except BaseException as exc:
                os.write(exec_w, f"125 {exc}".encode())
                os._exit(125)
        os.close(exec_w)
        if tty_sock is not None:
            os.close(tty_sock)
        report = b""
        while chunk := os.read(exec_r, 4096):
            report += chunk
        if report:
            code, _, msg = report.decode(errors="replace").partition(" ")
            os.write(2, f"rl: error: {msg}\n".encode())
            os.waitpid(child, 0)
            os._exit(int(code) if code.isdigit() else 125)
        if control is not None:
            keep_after_detach(child, control)
        _, status = os.waitpid(child, 0)
        os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
    except BaseException as exc:
        try:
            os.write(2, f"rl: error: cannot enter the container: {exc}\n".encode())
        finally:
            os._exit(125)


def keep_after_detach(child: int, control: int) -> None:
    """In the joining process of `rl exec -it`, while the command runs: if the caller
    detaches (the detach keys), it sends b"d" with the pty master on `control`; from then
    this process keeps the command alive in the caller's place, as Docker's daemon does: no
    death signal tied to the caller any more, out of its session, off its terminal, the
    master held (its close would hang the command up) and drained (a full pty would block
    the command; Docker drops a detached exec's output too). Returns when the command
    exits (the caller then reaps it as before)."""
    import select
    import socket

    pidfd = os.pidfd_open(child)
    sock = socket.socket(fileno=control)
    try:
        ready, _, _ = select.select([pidfd, sock], [], [])
        if pidfd in ready:
            return
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 16, 1)
        except OSError:
            msg, fds = b"", []
        if msg != b"d" or not fds:  # the caller ended without detaching (or died: the
            for fd in fds:          # death signal ends us too)
                os.close(fd)
            return
        master = fds[0]
        sc.prctl(sc.PR_SET_PDEATHSIG, 0)
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        sock.sendall(b"k")
        sock.close()
        try:
            while pidfd not in select.select([pidfd, master], [], [])[0]:
                try:
                    if not os.read(master, 65536):
                        break
                except OSError:  # EIO: no process holds the pty any more
                    break
        finally:
            os.close(master)
    finally:
        sock.close()
        os.close(pidfd)


def _open_pty() -> tuple[int, int]:
    import fcntl
    import struct

    from rootless.runtime.pid1 import TIOCGPTPEER, TIOCSPTLCK

    master = os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    return master, slave


def processes(pid: int) -> list[dict]:
    """The processes of the container whose pid 1 is `pid` (host view): pid 1 and its
    descendants, plus processes that `rl exec` put in its pid namespace."""
    try:
        target_ns = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        target_ns = None
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = procstat.read(entry)
        if stat is None:
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = f.read()
        except OSError:
            continue
        comm, fields = stat
        info = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        procs[int(entry)] = {"hostpid": int(entry), "ppid": int(fields[1]), "comm": comm,
                             "nspid": info.get("NSpid", entry).split(),
                             "uid": int(info.get("Uid", "0").split()[0]),
                             "utime": int(fields[11]) + int(fields[12]),
                             "starttime": int(fields[19]), "tty": int(fields[4])}
    members = {pid} if pid in procs else set()
    changed = True
    while changed:
        changed = False
        for p, info in procs.items():
            if p not in members and info["ppid"] in members:
                members.add(p)
                changed = True
    if target_ns:
        for p in procs:
            if p not in members and len(procs[p]["nspid"]) > 1:
                try:
                    if os.readlink(f"/proc/{p}/ns/pid") == target_ns:
                        members.add(p)
                except OSError:
                    pass
    out = []
    for p in sorted(members):
        info = procs[p]
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                args = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            args = ""
        info["args"] = args or f"[{info['comm']}]"
        out.append(info)
    return out

"""Creating the container's user namespace: which id maps, and writing them.

With subordinate ranges the maps are written by the setuid helpers `newuidmap` and
`newgidmap` (shadow-utils), which check /etc/subuid and /etc/subgid; the parent writes them
for a child that has just called unshare(CLONE_NEWUSER). Without a range the parent writes
the single mapping `0 -> uid` itself (the kernel allows one's own id), after writing "deny"
to the child's /proc/PID/setgroups as the kernel requires.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from rootless.errors import RlError
from rootless.runtime import exitcode, idmap


@dataclass(frozen=True)
class Maps:
    uid: idmap.IdMap
    gid: idmap.IdMap
    # True when the maps come from /etc/subuid + /etc/subgid and need newuidmap/newgidmap.
    subordinate: bool
    # What the caller should tell the user (None: nothing): plan() never prints
    warning: str | None = None

    def to_oci(self) -> tuple[list[dict], list[dict]]:
        def conv(m: idmap.IdMap) -> list[dict]:
            return [{"containerID": i, "hostID": o, "size": c} for i, o, c in m.entries]
        return conv(self.uid), conv(self.gid)

    @classmethod
    def from_oci(cls, uid_maps: list[dict], gid_maps: list[dict]) -> Maps:
        def conv(lst: list[dict]) -> idmap.IdMap:
            return idmap.IdMap(tuple((e["containerID"], e["hostID"], e["size"]) for e in lst))
        u, g = conv(uid_maps), conv(gid_maps)
        return cls(u, g, subordinate=u.size > 1 or g.size > 1)


NO_RANGE_FIX = ("ask root to run `usermod --add-subuids 100000-165535 --add-subgids "
                "100000-165535 {user}` for the full range of ids")


def plan(keep_id: bool = False, *, warn: bool = True) -> Maps:
    """The maps for a new container of the calling user. With no subordinate range only a
    single id can be mapped: the maps then carry a `warning` for the front end to show."""
    uid, gid = os.getuid(), os.getgid()
    uranges = idmap.read_ranges(idmap.SUBUID_FILE, uid)
    granges = idmap.read_ranges(idmap.SUBGID_FILE, uid)
    if uranges and granges:
        build = idmap.keep_id_map if keep_id else idmap.default_map
        return Maps(build(uid, uranges), build(gid, granges), subordinate=True)
    warning = None
    if warn:
        user = idmap.user_name(uid)
        warning = (f"no subordinate id range for {user} in /etc/subuid or /etc/subgid: "
                   f"only one id is mapped in containers ({NO_RANGE_FIX.format(user=user)})")
    inside_u = uid if keep_id else 0
    inside_g = gid if keep_id else 0
    return Maps(idmap.IdMap(((inside_u, uid, 1),)), idmap.IdMap(((inside_g, gid, 1),)),
                subordinate=False, warning=warning)


def _helper(name: str) -> str:
    path = None
    for d in ["/usr/bin", "/bin", "/usr/sbin", "/sbin", *os.environ.get("PATH", "").split(":")]:
        if d and os.access(os.path.join(d, name), os.X_OK):
            path = os.path.join(d, name)
            break
    if path is None:
        raise RlError(f"{name} is not installed; it is needed to map the subordinate ids",
                      "ask root to install the uidmap package: apt-get install uidmap")
    return path


def write(pid: int, maps: Maps) -> None:
    """Write the uid and gid maps of the user namespace of `pid` (which has unshared it)."""
    if not maps.subordinate:
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
        with open(f"/proc/{pid}/uid_map", "w") as f:
            f.write(maps.uid.proc_format())
        with open(f"/proc/{pid}/gid_map", "w") as f:
            f.write(maps.gid.proc_format())
        return
    # Both helpers at once: each is a setuid exec of a few milliseconds. posix_spawn, not
    # subprocess: this is on the path of every start and subprocess costs an import.
    procs = []
    for name, m in (("newuidmap", maps.uid), ("newgidmap", maps.gid)):
        r, w = os.pipe()
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)]
        try:
            child = os.posix_spawn(_helper(name), [name, str(pid), *m.newidmap_args()],
                                   os.environ, file_actions=actions)
        finally:
            os.close(w)
        procs.append((name, child, r))
    failures = []
    for name, child, r in procs:
        out = b""
        while chunk := os.read(r, 4096):
            out += chunk
        os.close(r)
        _, status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            text = out.decode(errors="replace").strip()
            failures.append((name, text.splitlines()[-1] if text else f"exit status {status}"))
    if failures:
        name, text = failures[0]
        raise RlError(
            f"{name} failed: {text}",
            f"check that {name} is setuid root (ls -l $(command -v {name})) and that "
            "/etc/subuid and /etc/subgid grant you a range")


class ChildFailed(RlError):
    """fn() of run_in_userns raised: its message (and exit code, 125 unless it was an
    RlError that named one), for the caller to report. Nothing here prints."""


def run_in_userns(fn, maps: Maps | None = None, *, mount_ns: bool = True) -> int:
    """Fork a child into a new user (and mount) namespace with the user's maps, where it is
    root with every id of the range; run fn() there; return its exit code (fn's return
    value). An exception in fn() is raised here as ChildFailed with its message (sent back
    on a close-on-exec pipe, so an fn that execs leaves it empty). `rl unshare`, and
    removing files that subordinate ids own, use this."""
    from rootless.linux import syscalls as sc

    maps = maps or plan(warn=False)
    r, w = os.pipe()
    r2, w2 = os.pipe()
    er, ew = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        code = 125
        try:
            os.close(r)
            os.close(w2)
            os.close(er)
            sc.unshare(sc.CLONE_NEWUSER | (sc.CLONE_NEWNS if mount_ns else 0))
            os.write(w, b"U")
            os.close(w)
            if os.read(r2, 1) != b"M":
                os._exit(125)
            try:
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            except OSError:
                pass
            code = fn()
        except BaseException as exc:
            try:
                rc = exc.exit_code if isinstance(exc, RlError) else 125
                os.write(ew, f"{rc}\n{exc}".encode(errors="replace")[:65536])
            finally:
                os._exit(125)
        os._exit(code if isinstance(code, int) else 0)
    os.close(w)
    os.close(r2)
    os.close(ew)
    try:
        if os.read(r, 1) != b"U":
            raise RlError("could not create a user namespace",
                          "check `rl info`: user namespaces may be disabled on this host")
        write(pid, maps)
        os.write(w2, b"M")
    except BaseException:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(er)
        raise
    finally:
        os.close(r)
        os.close(w2)
    try:
        code = exitcode.wait(pid)
        # the child wrote its report before it exited; a process fn forked may still hold
        # the pipe open, so read what is there instead of waiting for the end
        os.set_blocking(er, False)
        try:
            report = os.read(er, 65536)
        except BlockingIOError:
            report = b""
    finally:
        os.close(er)
    if report:
        rc, _, message = report.decode(errors="replace").partition("\n")
        raise ChildFailed(message, exit_code=int(rc) if rc.isdigit() else 125)
    return code


def unshare(command: list[str]) -> int:
    """`rl unshare`: a command (default: $SHELL) as root of rl's user namespace, as podman
    unshare does; the user's storage can then be inspected with the container's owners."""
    import signal

    cmd = command or [os.environ.get("SHELL") or "/bin/sh"]
    env = dict(os.environ, RL_USERNS_CONFIGURED="1")

    def child() -> int:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            os.execvpe(cmd[0], cmd, env)
        except FileNotFoundError:
            raise RlError(f"{cmd[0]}: command not found", exit_code=127) from None
        except PermissionError:
            raise RlError(f"{cmd[0]}: permission denied", exit_code=126) from None
        return 125

    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return run_in_userns(child)
    finally:
        signal.signal(signal.SIGINT, old)


def rmtree(path: str) -> None:
    """Remove a tree that subordinate ids may own (from inside the user namespace)."""
    from rootless.linux import safepath

    def child() -> int:
        safepath.rmtree(path)  # by fd: a tree a container wrote
        return 0

    run_in_userns(child)

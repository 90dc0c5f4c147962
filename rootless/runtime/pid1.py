"""Pid 1 of a container: from a child forked by the sandbox to the image's command.

One readable sequence, in the manner of bubblewrap: namespaces, hostname, the spec's mounts
on the new root (/proc before the old root goes), devices, masked and read-only paths,
the terminal, pivot_root, the process's user, limits, capabilities, no_new_privs, fds, exec.

Paths inside the root filesystem are opened with openat2(RESOLVE_IN_ROOT) and mounted
through /proc/self/fd/N, so a symlink in the image can never redirect a mount to the host.
Masks are made with the host's /dev/null opened here and checked (a character device 1:3)
or with a fresh read-only tmpfs, never with a path the container could have replaced.

Any failure is written as one line `E <exit code> <message>` to `exec_w` (close-on-exec:
a successful exec closes it, so EOF there means the command started).
"""

from __future__ import annotations

import errno
import fcntl
import os
import resource
import signal
import stat
import struct
from typing import NoReturn

from rootless.linux import syscalls as sc
from rootless.runtime import caps, seccomp

_FLAGS = {
    "ro": sc.MS_RDONLY, "nosuid": sc.MS_NOSUID, "nodev": sc.MS_NODEV, "noexec": sc.MS_NOEXEC,
    "strictatime": sc.MS_STRICTATIME, "noatime": sc.MS_NOATIME, "bind": sc.MS_BIND,
    "rbind": sc.MS_BIND | sc.MS_REC, "sync": 16, "mand": 64, "dirsync": 128,  # MS_*
    "nodiratime": 2048,
}
_IGNORED = {"rw", "private", "rprivate", "slave", "rslave", "shared", "rshared", "exec",
            "suid", "dev", "relatime", "z", "Z", "rl-copyup", "atime", "diratime",
            "nostrictatime", "norelatime", "async", "nomand"}
TIOCSCTTY = 0x540E
TIOCGPTPEER = 0x5441
TIOCSPTLCK = 0x40045431
# statvfs f_flag bits -> mount flags that must be kept on a remount in a user namespace
_LOCKED = ((1, sc.MS_RDONLY), (2, sc.MS_NOSUID), (4, sc.MS_NODEV), (8, sc.MS_NOEXEC),
           (1024, sc.MS_NOATIME), (2048, 2048), (4096, 1 << 21))

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
             ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
             ("ptmx", "pts/ptmx"), ("core", "/proc/kcore"))


class Fail(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _fdpath(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _open_in(rootfd: int, path: str, flags: int = os.O_PATH) -> int:
    return sc.openat2(rootfd, path.lstrip("/") or ".", flags,
                      sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS)


def _ensure(rootfd: int, path: str, is_dir: bool) -> int:
    """Open `path` inside the root (O_PATH), creating it and its parents if missing."""
    try:
        return _open_in(rootfd, path)
    except FileNotFoundError:
        pass
    parts = [p for p in path.strip("/").split("/") if p]
    cur = os.dup(rootfd)
    try:
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            prefix = "/".join(parts[: i + 1])
            try:
                nxt = _open_in(rootfd, prefix)
            except FileNotFoundError:
                if last and not is_dir:
                    os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW
                                     | os.O_CLOEXEC, 0o644, dir_fd=cur))
                else:
                    os.mkdir(name, 0o755, dir_fd=cur)
                nxt = _open_in(rootfd, prefix)
            os.close(cur)
            cur = nxt
        return os.dup(cur)
    finally:
        os.close(cur)


def _locked_flags(path: str) -> int:
    f = os.statvfs(path).f_flag
    return sum(ms for st, ms in _LOCKED if f & st)


def _remount_ro(path: str) -> None:
    sc.mount(None, path, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | _locked_flags(path))


def _parse_options(options: list[str]) -> tuple[int, str]:
    flags, data = 0, []
    for opt in options:
        if opt in _FLAGS:
            flags |= _FLAGS[opt]
        elif opt not in _IGNORED:
            data.append(opt)
    return flags, ",".join(data)


def _checked_devnull() -> int:
    fd = os.open("/dev/null", os.O_PATH | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        raise Fail(125, "/dev/null of the host is not the null device")
    return fd


def _populate_dev(rootfd: int) -> None:
    devfd = _open_in(rootfd, "/dev", os.O_PATH | os.O_DIRECTORY)
    try:
        for name in DEVICES:
            src = os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC)
            try:
                if not stat.S_ISCHR(os.fstat(src).st_mode):
                    continue
                os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC,
                                 0o666, dir_fd=devfd))
                dst = sc.openat2(devfd, name, os.O_PATH, sc.RESOLVE_BENEATH
                                 | sc.RESOLVE_NO_SYMLINKS)
                sc.mount(_fdpath(src), _fdpath(dst), None, sc.MS_BIND)
                os.close(dst)
            finally:
                os.close(src)
        for name, target in DEV_LINKS:
            os.symlink(target, name, dir_fd=devfd)
    finally:
        os.close(devfd)


def _mount_one(rootfd: int, m: dict, netns: bool) -> None:
    dest, mtype = m["destination"], m.get("type", "bind")
    flags, data = _parse_options(m.get("options", []))
    if mtype == "bind" or flags & sc.MS_BIND:
        if "rl-copyup" in m.get("options", ()):  # a volume: the image's files first
            from rootless.runtime import volcopy

            volcopy.copy_up(rootfd, dest, m["source"])
        src = os.open(m["source"], os.O_PATH | os.O_CLOEXEC)
        try:
            is_dir = stat.S_ISDIR(os.fstat(src).st_mode)
            dst = _ensure(rootfd, dest, is_dir)
            try:
                sc.mount(_fdpath(src), _fdpath(dst), None,
                         sc.MS_BIND | (flags & sc.MS_REC))
            finally:
                os.close(dst)
        finally:
            os.close(src)
        if flags & sc.MS_RDONLY:
            fd = _open_in(rootfd, dest)
            try:
                _remount_ro(_fdpath(fd))
            finally:
                os.close(fd)
        return
    dst = _ensure(rootfd, dest, True)
    try:
        if mtype == "sysfs" and not netns:
            # Without a network namespace of our own the kernel refuses a new sysfs:
            # bind the host's, read-only.
            sc.mount("/sys", _fdpath(dst), None, sc.MS_BIND | sc.MS_REC)
        else:
            sc.mount(m.get("source", mtype), _fdpath(dst), mtype,
                     flags & ~sc.MS_RDONLY if mtype == "sysfs" else flags, data or None)
    finally:
        os.close(dst)
    if mtype == "sysfs" and flags & sc.MS_RDONLY:
        fd = _open_in(rootfd, dest)
        try:
            if netns:
                _remount_ro(_fdpath(fd))
            else:
                # the host's /sys with its submounts (cgroup, fuse connections, debugfs,
                # securityfs...): every one of them read-only, not only the top
                sc.make_tree_readonly(fd)
        finally:
            os.close(fd)
    if dest == "/dev" and mtype == "tmpfs":
        _populate_dev(rootfd)


def _mask(rootfd: int, paths: list[str], devnull: int) -> None:
    for path in paths:
        try:
            fd = _open_in(rootfd, path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                sc.mount("tmpfs", _fdpath(fd), "tmpfs", sc.MS_RDONLY, "size=0,nr_inodes=1")
            else:
                sc.mount(_fdpath(devnull), _fdpath(fd), None, sc.MS_BIND)
        finally:
            os.close(fd)


def _readonly(rootfd: int, paths: list[str]) -> None:
    for path in paths:
        try:
            fd = _open_in(rootfd, path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            sc.mount(_fdpath(fd), _fdpath(fd), None, sc.MS_BIND | sc.MS_REC)
        finally:
            os.close(fd)
        fd = _open_in(rootfd, path)
        try:
            _remount_ro(_fdpath(fd))
        finally:
            os.close(fd)


DONOR_SHM = "rl-ipc-donor-shm"  # a spec mount's source: the /dev/shm of --ipc container:


def _donor_shm(spec: dict) -> int | None:
    """--ipc container:NAME: a copy of NAME's /dev/shm mount (POSIX shared memory lives
    there). A bind from another mount namespace is refused, so for a moment we enter NAME's
    (we are root of its user namespace), find /dev/shm in NAME's root without leaving it
    (RESOLVE_IN_ROOT: a symlink that container planted resolves inside it), clone that
    mount (open_tree) and come back; the clone is attached on our /dev/shm."""
    donor = spec.get("annotations", {}).get("io.rl.ipc-donor")
    if not donor or not any(m.get("source") == DONOR_SHM for m in spec.get("mounts", [])):
        return None
    fds = []
    try:
        own = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        fds.append(own)
        theirs = os.open(f"/proc/{int(donor)}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        fds.append(theirs)
        root = os.open(f"/proc/{int(donor)}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        fds.append(root)
        sc.setns(theirs, sc.CLONE_NEWNS)
        try:
            shm = _open_in(root, "/dev/shm", os.O_PATH | os.O_DIRECTORY)
            fds.append(shm)
            return sc.open_tree_clone(shm)
        finally:
            sc.setns(own, sc.CLONE_NEWNS)
    except OSError as exc:
        raise Fail(125, f"cannot reach the /dev/shm of the --ipc container: "
                        f"{exc.strerror}") from None
    finally:
        for fd in fds:
            os.close(fd)


def _set_sysctls(rootfd: int, sysctls: dict) -> None:
    """--sysctl: the engine let only namespaced ones through (engine/procflags.py); they
    are written in the container's own /proc (its ipc and net namespaces)."""
    for key, value in sysctls.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            fd = _open_in(rootfd, path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise Fail(125, f"cannot set sysctl {key}={value}: {exc.strerror}") from None


def _open_pty(rootfd: int) -> tuple[int, int]:
    """A pty from the container's own devpts instance: (master, slave)."""
    master = _open_in(rootfd, "/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    return master, slave


# -- the process --------------------------------------------------------------------------

def _read_db(path: str) -> list[list[str]]:
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip()
                    and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(spec_user: str) -> tuple[int, int, list[int], str]:
    """`user[:group]` (names or numbers) -> uid, gid, supplementary gids, home; names come
    from the container's /etc/passwd and /etc/group (we are inside it now)."""
    user, _, group = spec_user.partition(":")
    user = user or "0"
    passwd = _read_db("/etc/passwd")
    entry = next((e for e in passwd if len(e) >= 7 and (e[0] == user or e[2] == user)), None)
    if entry is None:
        if not user.isdigit():
            raise Fail(125, f"unable to find user {user}: no matching entries in the image's "
                            "/etc/passwd (give a user it has, or a numeric uid)")
        uid, gid, home, name = int(user), 0, "/", None
    else:
        uid, gid, home, name = int(entry[2]), int(entry[3]), entry[5] or "/", entry[0]
    groups = _read_db("/etc/group")
    if group:
        g = next((e for e in groups if len(e) >= 3 and (e[0] == group or e[2] == group)), None)
        if g is None:
            if not group.isdigit():
                raise Fail(125, f"unable to find group {group}: no matching entries in the "
                                "image's /etc/group (give a group it has, or a numeric gid)")
            gid = int(group)
        else:
            gid = int(g[2])
    extra = []
    if name is not None:
        for e in groups:
            if len(e) >= 4 and name in e[3].split(",") and e[2].isdigit():
                extra.append(int(e[2]))
    return uid, gid, sorted(set(extra) - {gid}), home


def _find_exec(cmd: str, env: list[str]) -> list[str]:
    if "/" in cmd:
        return [cmd]
    path = next((e[5:] for e in env if e.startswith("PATH=")),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return [os.path.join(d or ".", cmd) for d in path.split(":")]


def _exec(args: list[str], env: list[str]) -> NoReturn:
    if not args:
        raise Fail(125, "no command specified")
    denied = noexec = None
    for candidate in _find_exec(args[0], env):
        try:
            os.execve(candidate, args, dict(e.split("=", 1) for e in env if "=" in e))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except PermissionError:
            denied = candidate
        except OSError as exc:
            if exc.errno == errno.ENOEXEC:
                noexec = candidate
            else:
                raise Fail(126, f"{candidate}: {exc.strerror}") from None
    if noexec:
        raise Fail(126, f"{noexec}: exec format error")
    if denied:
        raise Fail(126, f"{denied}: permission denied")
    if "/" in args[0]:
        raise Fail(127, f"{args[0]}: no such file or directory")
    raise Fail(127, f"{args[0]}: executable file not found in $PATH")


def become(process: dict, *, setgroups_allowed: bool, seccomp_bpf: bytes | None = None) -> None:
    """Session keyring, user, groups, rlimits, capabilities, no_new_privs, seccomp: what
    `rl run` and `rl exec` share. The caller execs right after.

    Runs after pivot_root or setns: no import may happen here (the host's Python library is
    out of reach), hence the module-level imports."""
    # A keyring of the container's own: the inherited session keyring is the user's login
    # session (Kerberos tickets, ...). Before the filter, which denies keyctl.
    try:
        sc.join_new_session_keyring()
    except OSError as exc:
        raise Fail(125, f"cannot give the container a session keyring of its own: "
                        f"{exc.strerror} (the user's key quota, kernel.keys.maxkeys, may be "
                        "used up)") from None
    nnp = process.get("noNewPrivileges", True)
    user = process.get("user", {})
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    extra = list(user.get("additionalGids", []))
    for rl in process.get("rlimits", []):
        name = rl["type"].removeprefix("RLIMIT_")
        res = getattr(resource, f"RLIMIT_{name}", None)
        if res is None:
            raise Fail(125, f"unknown ulimit {rl['type']}")
        try:
            resource.setrlimit(res, (rl["soft"], rl["hard"]))
        except (ValueError, OSError) as exc:
            raise Fail(125, f"cannot set ulimit {name.lower()}={rl['soft']}:{rl['hard']}: "
                            f"{exc} (a user can only lower the hard limit)") from None
    keep = {caps.NUMBERS[c] for c in process.get("capabilities", {}).get("bounding", [])}
    for n in range(caps.last_cap() + 1):
        if n not in keep:
            sc.prctl(sc.PR_CAPBSET_DROP, n)
    try:
        sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:
        pass
    if seccomp_bpf and not nnp:
        # Without no_new_privs the kernel takes a filter only from a holder of
        # CAP_SYS_ADMIN (in this user namespace): load it while we are still root here.
        _load_seccomp(seccomp_bpf)
    if setgroups_allowed:
        os.setgroups(extra)
    try:
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise Fail(125, f"cannot switch to uid {uid} gid {gid}: {exc.strerror} (the id is "
                        "not mapped in the container's user namespace)") from None
    if nnp:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        if seccomp_bpf:
            _load_seccomp(seccomp_bpf)


def _load_seccomp(bpf: bytes) -> None:
    try:
        seccomp.load(bpf)
    except OSError as exc:
        raise Fail(125, f"cannot load the seccomp filter: {exc.strerror}") from None


def setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "allow"
    except OSError:
        return False


def prepare_process(spec: dict) -> dict:
    """Resolve the user by name (inside the container) and HOME, and make the cwd."""
    process = dict(spec["process"])
    name = spec.get("annotations", {}).get("io.rl.user")
    user = dict(process.get("user", {}))
    home = None
    if name:
        uid, gid, extra, home = resolve_user(name)
        user.update(uid=uid, gid=gid, additionalGids=extra)
    elif "uid" in user:
        entry = next((e for e in _read_db("/etc/passwd")
                      if len(e) >= 7 and e[2] == str(user["uid"])), None)
        home = entry[5] if entry else "/"
    added = spec.get("annotations", {}).get("io.rl.group-add")
    if added:  # --group-add: names from the container's /etc/group, or numbers
        groups = _read_db("/etc/group")
        extra = list(user.get("additionalGids", []))
        for g in added.split(","):
            e = next((e for e in groups if len(e) >= 3 and e[0] == g), None)
            if e is not None and e[2].isdigit():
                extra.append(int(e[2]))
            elif g.isdigit():
                extra.append(int(g))
            else:
                raise Fail(125, f"unable to find group {g}: no matching entries in the "
                                "image's /etc/group (give a group it has, or a number)")
        user["additionalGids"] = sorted(set(extra))
    process["user"] = user
    env = list(process.get("env", []))
    if home and not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")
    process["env"] = env
    cwd = process.get("cwd") or "/"
    try:
        os.makedirs(cwd, exist_ok=True)
        os.chdir(cwd)
    except OSError as exc:
        raise Fail(125, f"cannot use working directory {cwd}: {exc.strerror}") from None
    return process


def run(spec: dict, rootfs: str, exec_w: int, pty_sock: int | None,
        seccomp_bpf: bytes | None = None) -> NoReturn:
    """Become the container's pid 1. Never returns. `seccomp_bpf`: the compiled
    linux.seccomp of the spec (runtime/seccomp.py), loaded just before the exec."""
    try:
        _run(spec, rootfs, exec_w, pty_sock, seccomp_bpf)
    except Fail as exc:
        _report(exec_w, exc.code, str(exc))
    except OSError as exc:
        _report(exec_w, 125, f"container set-up: {exc}")
    except BaseException as exc:
        _report(exec_w, 125, f"container set-up: {exc!r}")
    os._exit(125)


def _report(fd: int, code: int, message: str) -> NoReturn:
    try:
        os.write(fd, f"E {code} {message}".encode(errors="replace"))
    finally:
        os._exit(code)


def _run(spec: dict, rootfs: str, exec_w: int, pty_sock: int | None,
         seccomp_bpf: bytes | None) -> NoReturn:
    from rootless.trace import trace

    trace("P start")
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
    # Until exec, nobody (not even the container's root) may open /proc/1/exe etc.: it is
    # the host's Python.
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE,
                signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTTOU,
                signal.SIGTTIN, signal.SIGTSTP):
        signal.signal(sig, signal.SIG_DFL)
    os.setsid()
    linux = spec.get("linux", {})
    kinds = {ns["type"] for ns in linux.get("namespaces", [])}
    # The sandbox made the net, uts and ipc namespaces (slirp4netns needed the net one
    # before we existed); ours is the mount namespace where pivot_root happens.
    netns = "network" in kinds
    sc.unshare(sc.CLONE_NEWNS)
    if "uts" in kinds and spec.get("hostname"):
        sc.sethostname(spec["hostname"])

    rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    devnull = _checked_devnull()
    donor_shm = _donor_shm(spec)
    for m in spec.get("mounts", []):
        if m.get("source") == DONOR_SHM and donor_shm is not None:
            dst = _ensure(rootfd, m["destination"], True)
            try:
                sc.move_mount(donor_shm, dst)
            finally:
                os.close(dst)
            continue
        try:
            _mount_one(rootfd, m, netns)
        except OSError as exc:
            raise Fail(125, f"mounting {m.get('source', m.get('type'))} on "
                            f"{m['destination']}: {exc.strerror}") from None
    _set_sysctls(rootfd, linux.get("sysctl") or {})  # before /proc/sys is read-only
    _mask(rootfd, linux.get("maskedPaths", []), devnull)
    _readonly(rootfd, linux.get("readonlyPaths", []))
    os.close(devnull)
    if donor_shm is not None:
        os.close(donor_shm)

    slave = None
    if spec["process"].get("terminal") and pty_sock is not None:
        import socket

        master, slave = _open_pty(rootfd)
        sock = socket.socket(fileno=pty_sock)
        socket.send_fds(sock, [b"m"], [master])
        sock.close()
        os.close(master)

    if spec.get("root", {}).get("readonly"):
        _remount_ro(rootfs)

    from rootless.trace import trace

    trace("P mounts done")
    os.fchdir(rootfd)
    os.close(rootfd)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    os.chdir("/")

    process = prepare_process(spec)
    if slave is not None:
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        os.close(slave)
        fcntl.ioctl(0, TIOCSCTTY, 0)
    become(process, setgroups_allowed=setgroups_allowed(), seccomp_bpf=seccomp_bpf)
    # Nothing of the host beyond stdio: close every other fd but the report pipe, which
    # is close-on-exec.
    if exec_w > 3:
        sc.close_range(3, exec_w - 1)
    sc.close_range(exec_w + 1)
    _exec(process["args"], process.get("env", []))

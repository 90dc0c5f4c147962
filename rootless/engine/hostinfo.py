"""`rl info`: what this host offers a rootless user, and the fix for each missing piece.

Each check returns a `Check`: a name, whether it passed, what was found and, when it did
not pass, the one-line fix. The checks cover the problems rootless users hit most often:
no or small subuid range, newuidmap without setuid, user namespaces disabled by sysctl or
AppArmor, /dev/fuse unusable, an XDG_RUNTIME_DIR inherited from another user, NFS storage.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import asdict, dataclass

from rootless import __version__
from rootless.errors import RlError
from rootless.runtime import idmap
from rootless.store import paths

NFS_TYPES = {"nfs", "nfs4"}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    # A warning still lets containers run (in a degraded way); a failure does not.
    severity: str = "error"


@dataclass
class HostInfo:
    version: str
    user: str
    uid: int
    gid: int
    kernel: str
    storage: str
    storage_fs: str
    runtime_dir: str
    uid_map: str
    gid_map: str
    checks: list[Check]

    def as_dict(self) -> dict:
        return asdict(self)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _id_range_check(kind: str, path: str, user: str, uid: int) -> Check:
    if uid == 0:
        return Check(f"sub{kind}", True, "running as root: the full id range is available")
    ranges = idmap.read_ranges(path, uid)
    total = sum(r.count for r in ranges)
    flag = "--add-subuids" if kind == "uid" else "--add-subgids"
    fix = f"sudo usermod {flag} 100000-165535 {user}"
    if not ranges:
        return Check(
            f"sub{kind}", False,
            f"no range for {user} in {path}: containers get a single id mapping "
            f"(only root inside; chown to other ids is recorded, not real)",
            fix, "warning",
        )
    detail = ", ".join(f"{r.start}-{r.start + r.count - 1}" for r in ranges)
    if total < idmap.RECOMMENDED_RANGE:
        return Check(f"sub{kind}", False,
                     f"{path}: {detail} has {total} ids, images expect {idmap.RECOMMENDED_RANGE}",
                     fix, "warning")
    return Check(f"sub{kind}", True, f"{path}: {detail} ({total} ids)")


def _newidmap_check(tool: str, uid: int) -> Check:
    path = shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/bin:/usr/sbin")
    if not path:
        return Check(tool, False, f"{tool} not found", "sudo apt-get install uidmap")
    if uid == 0:
        return Check(tool, True, path)
    st = os.stat(path)
    has_caps = False
    try:
        has_caps = bool(os.getxattr(path, "security.capability"))
    except OSError:
        pass
    if not (st.st_mode & stat.S_ISUID and st.st_uid == 0) and not has_caps:
        return Check(tool, False, f"{path} has neither the setuid bit nor file capabilities",
                     f"sudo chmod u+s {path}")
    return Check(tool, True, path + (" (setuid)" if st.st_mode & stat.S_ISUID else " (file caps)"))


def _userns_probe() -> str | None:
    """Try to create a user namespace in a child; return the error or None."""
    from rootless.linux import syscalls

    pid = os.fork()
    if pid == 0:
        try:
            syscalls.unshare(syscalls.CLONE_NEWUSER)
            os._exit(0)
        except OSError as exc:
            os._exit(min(exc.errno or 1, 255))
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return None if code == 0 else os.strerror(code)


def _userns_check() -> Check:
    clone = _read_int("/proc/sys/kernel/unprivileged_userns_clone")
    if clone == 0:
        return Check("user namespaces", False, "kernel.unprivileged_userns_clone=0",
                     "sudo sysctl -w kernel.unprivileged_userns_clone=1")
    max_ns = _read_int("/proc/sys/user/max_user_namespaces")
    if max_ns == 0:
        return Check("user namespaces", False, "user.max_user_namespaces=0",
                     "sudo sysctl -w user.max_user_namespaces=28633")
    apparmor = _read_int("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    if apparmor == 1 and os.getuid() != 0:
        return Check("user namespaces", False,
                     "AppArmor restricts unprivileged user namespaces "
                     "(kernel.apparmor_restrict_unprivileged_userns=1)",
                     "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, "
                     "or add an AppArmor profile allowing userns for rl")
    err = _userns_probe()
    if err:
        return Check("user namespaces", False, f"unshare(CLONE_NEWUSER) failed: {err}",
                     "enable unprivileged user namespaces in the kernel configuration")
    return Check("user namespaces", True, f"usable (max_user_namespaces={max_ns})")


def _device_check(name: str, path: str, fix_pkg: str) -> Check:
    if not os.path.exists(path):
        return Check(name, False, f"{path} does not exist",
                     f"sudo modprobe {os.path.basename(path)} (package {fix_pkg})")
    # Inside the user namespace, container root is this user: the device's mode must let
    # this user (not just root) open it.
    st = os.stat(path)
    if os.getuid() != 0 and not os.access(path, os.R_OK | os.W_OK):
        return Check(name, False, f"{path} is mode {stat.S_IMODE(st.st_mode):04o}, not usable by you",
                     f"sudo chmod 0666 {path}")
    return Check(name, True, f"{path} mode {stat.S_IMODE(st.st_mode):04o}")


def _init_check() -> Check:
    from rootless.engine.spec import INIT_BINARIES

    found = next((p for p in INIT_BINARIES if os.access(p, os.X_OK)), None)
    if found is None:
        return Check("init", False, "neither catatonit nor tini found: `rl run --init` fails",
                     "sudo apt-get install catatonit", "warning")
    return Check("init", True, found)


def _tool_check(name: str, package: str) -> Check:
    path = shutil.which(name)
    if not path:
        return Check(name, False, f"{name} not found", f"sudo apt-get install {package}")
    return Check(name, True, path)


def _runtime_dir_check() -> Check:
    problem = paths.xdg_runtime_dir_problem()
    where = paths.runtime_dir_path()
    try:
        paths.check_runtime_dir(where)
    except RlError as exc:
        return Check("runtime dir", False, exc.message, exc.fix)
    if problem:
        return Check("runtime dir", False, f"{problem}; using {where} instead",
                     "log in as this user (su -l, machinectl shell) or unset XDG_RUNTIME_DIR",
                     "warning")
    return Check("runtime dir", True, str(where))


def _cgroups_check() -> Check:
    from rootless.engine import cgroups

    ok, detail, fix = cgroups.info_line()
    return Check("cgroups", ok, detail, fix, "warning")


def _storage_check(storage: str, fstype: str) -> Check:
    if fstype in NFS_TYPES:
        return Check("storage", False,
                     f"{storage} is on {fstype}: NFS lacks the xattrs and id handling rl needs",
                     "set XDG_DATA_HOME to a local disk (for example /var/tmp/$USER)")
    return Check("storage", True, f"{storage} ({fstype})")


def host_info() -> HostInfo:
    uid, gid = os.getuid(), os.getgid()
    user = idmap.user_name(uid)
    storage = paths.data_dir()
    _, fstype = paths.filesystem_of(storage)
    uid_ranges = idmap.read_ranges(idmap.SUBUID_FILE, uid) if uid else []
    gid_ranges = idmap.read_ranges(idmap.SUBGID_FILE, uid) if uid else []
    if uid == 0:
        uid_map = gid_map = "0 0 4294967295 (root: the host's ids)"
    else:
        uid_map = idmap.default_map(uid, uid_ranges).proc_format().strip().replace("\n", ", ")
        gid_map = idmap.default_map(gid, gid_ranges).proc_format().strip().replace("\n", ", ")
    checks = [
        _userns_check(),
        _id_range_check("uid", idmap.SUBUID_FILE, user, uid),
        _id_range_check("gid", idmap.SUBGID_FILE, user, uid),
        _newidmap_check("newuidmap", uid),
        _newidmap_check("newgidmap", uid),
        _device_check("fuse", "/dev/fuse", "fuse3"),
        _device_check("tun", "/dev/net/tun", "the kernel's tun module"),
        _tool_check("slirp4netns", "slirp4netns"),
        _init_check(),
        _runtime_dir_check(),
        _storage_check(str(storage), fstype),
        _cgroups_check(),
    ]
    return HostInfo(
        version=__version__, user=user, uid=uid, gid=gid, kernel=os.uname().release,
        storage=str(storage), storage_fs=fstype, runtime_dir=str(paths.runtime_dir_path()),
        uid_map=uid_map, gid_map=gid_map, checks=checks,
    )

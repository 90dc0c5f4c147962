"""Cgroups for rootless containers: what the host lets the user do (probe: layout v1/hybrid/v2,
the delegated subtree found from /proc/self/cgroup, its controllers), the resource flags
(`--memory`, `--cpus`, `--pids-limit`...) turned into cgroup v2 files with Docker's
conversions, a cgroup per container, and pause/unpause through cgroup.freeze.

Limits need cgroup v2 with a subtree delegated to the user (systemd's user@UID.service:
the top-most ancestor of our cgroup still owned by us, with the controller in its
cgroup.controllers). There, each container gets <delegated>/rl-<short id>: the controllers
it needs are enabled in the delegated dir's cgroup.subtree_control (a cgroup with processes
of its own cannot have controllers for its children, so such processes are first moved to
a leaf child, rl-leaf), the limit files are written, and the monitor writes the sandbox's
pid to its cgroup.procs before pid 1 is forked, so that every process of the container
inherits it. Elsewhere (cgroup v1 or hybrid, no delegation, a controller not delegated)
every resource flag is refused with the reason found here and the fix: a limit is never
dropped in silence.

cgroupfs is not writable by a container, but the host side still goes by directory fd
(openat with O_NOFOLLOW under the delegated dir), as everywhere else. Everything is found
under `root` so that the tests can lay out a cgroupfs in a temporary directory
(tests/runtime/test_cgroups.py, tests/runtime/test_cgroup_tree.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from rootless.errors import InvalidArgument, RlError

ROOT = "/sys/fs/cgroup"
# flag -> the cgroup v2 controller it needs
FLAGS = {
    "--memory": "memory", "--memory-swap": "memory", "--memory-reservation": "memory",
    "--cpus": "cpu", "--cpu-shares": "cpu", "--cpu-quota": "cpu", "--cpu-period": "cpu",
    "--cpuset-cpus": "cpuset", "--cpuset-mems": "cpuset", "--pids-limit": "pids",
    "--blkio-weight": "io",
}
WANTED = ("cpu", "cpuset", "io", "memory", "pids")
DELEGATE_FIX = ("delegate it: /etc/systemd/system/user@.service.d/delegate.conf with "
                "[Service] Delegate=cpu cpuset io memory pids, then systemctl "
                "daemon-reload and log in again")
V2_FIX = ("boot with cgroup v2 (kernel command line systemd.unified_cgroup_hierarchy=1) and "
          + DELEGATE_FIX)


@dataclass
class Report:
    layout: str  # "v2", "hybrid", "v1"
    cgroup: str  # the user's own cgroup (v2 path), "" if unknown
    delegated: str | None  # the delegated subtree (a directory under root), or None
    controllers: list[str] = field(default_factory=list)  # delegated ones
    reason: str = ""  # why no controller is usable, when none is
    unified: list[str] = field(default_factory=list)  # hybrid: the v2 tree's controllers
    root: str = ROOT

    def why_not(self, controller: str) -> tuple[str, str]:
        """(reason, fix) for a flag that needs `controller`."""
        if self.layout == "v1":
            return (f"this host has cgroup v1 only (no cgroup v2 tree at {self.root}); v1 "
                    "controllers cannot be delegated to a user", V2_FIX)
        if self.layout == "hybrid" and controller not in self.controllers:
            where = ("on cgroup v1" if os.path.isdir(os.path.join(self.root, controller))
                     else "not on the cgroup v2 tree")
            return (f"this host has a hybrid cgroup layout: the {controller} controller is "
                    f"{where} and the cgroup v2 tree ({self.root}/unified) has "
                    f"{' '.join(self.unified) or 'no controllers'}; v1 controllers cannot "
                    "be delegated to a user", V2_FIX)
        if self.delegated is None and "/session-" in self.cgroup:
            return (f"your cgroup ({self.cgroup}) is a login session's scope, which "
                    "systemd keeps as root's: nothing below it is delegated to you",
                    "run rl inside your user manager's tree: systemd-run --user --scope "
                    "rl run ... (needs user@UID.service), and " + DELEGATE_FIX)
        if self.delegated is None:
            return (f"your cgroup ({self.cgroup or 'unknown'}) is not delegated to you "
                    "(no systemd user manager owns it)",
                    "log in through systemd-logind (or: loginctl enable-linger $USER) so "
                    "that user@UID.service runs, and " + DELEGATE_FIX)
        if controller not in self.controllers:
            return (f"the {controller} controller is not delegated to your cgroup "
                    f"({self.delegated}: {' '.join(self.controllers) or 'none'})",
                    DELEGATE_FIX)
        return "", ""  # usable

    @property
    def usable(self) -> bool:
        """A cgroup of its own can be made for a container (cgroup.freeze needs no
        controller)."""
        return self.layout != "v1" and self.delegated is not None


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def probe(root: str = ROOT, self_cgroup: str = "/proc/self/cgroup",
          uid: int | None = None, owner_of=None) -> Report:
    """`owner_of(path)`: the uid owning a cgroup directory (os.stat's; the tests give
    theirs, since they cannot chown)."""
    uid = os.getuid() if uid is None else uid
    owner_of = owner_of or (lambda p: os.stat(p).st_uid)
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        layout = "v2"
    elif os.path.exists(os.path.join(root, "unified", "cgroup.controllers")):
        layout = "hybrid"
    else:
        layout = "v1"
    text = _read(self_cgroup) or ""
    path = next((line[3:] for line in text.splitlines() if line.startswith("0::")), "")
    rep = Report(layout, path, None, root=root)
    if layout == "hybrid":
        rep.unified = (_read(os.path.join(root, "unified", "cgroup.controllers")) or "").split()
    if layout == "v1" or not path:
        rep.reason = rep.why_not("memory")[0]
        return rep
    # the delegated subtree: the top-most ancestor of our cgroup still owned by us. On a
    # hybrid host the 0:: line names a cgroup of the v2 tree mounted at root/unified;
    # systemd delegates it as on v2, but without controllers (they are all on v1): it
    # gives a container a cgroup of its own and cgroup.freeze, and no limit.
    tree = root if layout == "v2" else os.path.join(root, "unified")
    here = os.path.join(tree, path.strip("/"))
    top = None
    while os.path.normpath(here) != os.path.normpath(tree):
        try:
            if owner_of(here) != uid:
                break
        except OSError:
            break
        top = here
        here = os.path.dirname(here)
    if top is not None:
        rep.delegated = top
        rep.controllers = sorted((_read(os.path.join(top, "cgroup.controllers")) or "").split())
    return rep


def refuse_resource_flags(given: dict[str, object], rep: Report | None = None,
                          current: dict | None = None) -> dict:
    """Refuse the first resource flag given (value not None) that this host cannot honour,
    with the host's reason; check the values (`current`: the limits a container has, for
    `rl update`). Returns the limits as Docker's HostConfig keys ({} when no flag is
    given)."""
    flags = [f for f, v in given.items() if v is not None and v != () and v != []]
    if not flags:
        return {}
    for flag in flags:
        if flag == "--device-cgroup-rule":
            raise InvalidArgument("--device-cgroup-rule needs the devices controller (an "
                                  "eBPF program on cgroup v2), which a rootless user cannot "
                                  "use", "give the device itself with --device HOST[:CONTAINER]")
    rep = rep or probe()
    for flag in flags:
        reason, fix = rep.why_not(FLAGS[flag])
        if reason:
            raise InvalidArgument(f"{flag} cannot be honoured: {reason}", fix)
    return parse_limits({f: given[f] for f in flags}, current)


def limits_of(opts) -> dict:
    """A RunOptions' limits (HostConfig keys), refused where this host has no cgroup."""
    return refuse_resource_flags({"--memory": opts.memory, "--cpus": opts.cpus,
                                  **opts.resources})


# -- Docker's values ---------------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
          "p": 1 << 50}
HOST_CONFIG = {"Memory": 0, "MemorySwap": 0, "MemoryReservation": 0, "NanoCpus": 0,
               "CpuShares": 0, "CpuQuota": 0, "CpuPeriod": 0, "CpusetCpus": "",
               "CpusetMems": "", "PidsLimit": None, "BlkioWeight": 0}


def _bad(flag: str, value: object, why: str, fix: str) -> InvalidArgument:
    return InvalidArgument(f"invalid value {value!r} for {flag}: {why}", fix)


def parse_bytes(value: str, flag: str) -> int:
    """Docker's RAMInBytes: 512m, 1g, 1.5G, 100kb (binary units)."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpP]?)[iI]?[bB]?", str(value).strip())
    if not m:
        raise _bad(flag, value, "not a size", "give bytes or a size with a unit: 512m, 1g")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _int(value: object, flag: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise _bad(flag, value, "not an integer", "give a whole number") from None


def _cpuset(value: object, flag: str) -> str:
    import re

    text = str(value).strip()
    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", text) or any(
            int(a) > int(b) for a, _, b in (r.partition("-") for r in text.split(","))
            if b):
        raise _bad(flag, value, "not a list of CPUs or nodes", "give e.g. 0-2,4")
    return text


def parse_limits(given: dict[str, object], current: dict | None = None) -> dict:
    """The flags' values as Docker's HostConfig keys, checked as Docker checks them; for
    `rl update`, against the limits the container has (`current`): a --memory-swap alone
    is checked against its --memory, a --memory alone against its --memory-swap."""
    out: dict = {}
    for flag, value in given.items():
        if flag == "--memory":
            out["Memory"] = parse_bytes(value, flag)
            if out["Memory"] < 6 << 20:
                raise _bad(flag, value, "the minimum memory limit is 6MB", "give 6m or more")
        elif flag == "--memory-swap":
            out["MemorySwap"] = -1 if str(value).strip() == "-1" else parse_bytes(value, flag)
        elif flag == "--memory-reservation":
            out["MemoryReservation"] = parse_bytes(value, flag)
        elif flag == "--cpus":
            try:
                cpus = float(str(value))
            except ValueError:
                raise _bad(flag, value, "not a number", "give e.g. 1.5") from None
            ncpu = os.cpu_count() or 1
            if not 0.01 <= cpus <= ncpu:
                raise _bad(flag, value, f"the range of CPUs is from 0.01 to {ncpu}.00, as "
                           f"there are only {ncpu} CPUs available", f"give 0.01 to {ncpu}")
            out["NanoCpus"] = round(cpus * 1e9)
        elif flag == "--cpu-shares":
            out["CpuShares"] = _int(value, flag)
            if out["CpuShares"] < 0:
                raise _bad(flag, value, "shares cannot be negative", "give 2 to 262144")
        elif flag == "--cpu-quota":
            out["CpuQuota"] = _int(value, flag)
            if 0 < out["CpuQuota"] < 1000:
                raise _bad(flag, value, "CPU quota must be at least 1000 (1ms)",
                           "give 1000 or more, or -1 for none")
        elif flag == "--cpu-period":
            out["CpuPeriod"] = _int(value, flag)
            if out["CpuPeriod"] and not 1000 <= out["CpuPeriod"] <= 1000000:
                raise _bad(flag, value, "CPU period must be 1000 to 1000000 (1ms to 1s)",
                           "give e.g. 100000")
        elif flag == "--cpuset-cpus":
            out["CpusetCpus"] = _cpuset(value, flag)
        elif flag == "--cpuset-mems":
            out["CpusetMems"] = _cpuset(value, flag)
        elif flag == "--pids-limit":
            out["PidsLimit"] = _int(value, flag)
        elif flag == "--blkio-weight":
            out["BlkioWeight"] = _int(value, flag)
            if out["BlkioWeight"] and not 10 <= out["BlkioWeight"] <= 1000:
                raise _bad(flag, value, "the range of blkio weight is 10 to 1000",
                           "give 10 to 1000")
    if out.get("NanoCpus") and (out.get("CpuQuota") or out.get("CpuPeriod")):
        raise InvalidArgument("--cpus cannot be given with --cpu-quota or --cpu-period "
                              "(Docker's \"conflicting options\")", "give one or the other")
    current = current or {}
    memory = out.get("Memory") or current.get("Memory") or 0
    swap = out.get("MemorySwap")
    if swap is not None:
        if not memory:
            raise InvalidArgument("--memory-swap needs --memory (the swap limit is memory "
                                  "plus swap)", "give --memory too")
        if swap != -1 and swap < memory:
            raise InvalidArgument("--memory-swap must be at least --memory (it is memory "
                                  f"plus swap; --memory is {memory})",
                                  "give a larger --memory-swap, or -1")
    elif out.get("Memory") and (current.get("MemorySwap") or 0) > 0 and \
            out["Memory"] > current["MemorySwap"]:
        # Docker's update: "Memory limit should be smaller than already set memoryswap
        # limit, update the memoryswap at the same time"
        raise InvalidArgument(f"--memory must be at most the container's --memory-swap "
                              f"({current['MemorySwap']})",
                              "give --memory-swap too (a larger one, or -1)")
    return out


def files_of(limits: dict) -> dict[str, str]:
    """cgroup v2 files and their contents for Docker's HostConfig limits, converted as
    Docker (runc) does on cgroup v2."""
    files: dict[str, str] = {}
    memory = limits.get("Memory") or 0
    if memory:
        files["memory.max"] = str(memory)
        swap = limits.get("MemorySwap") or 0
        # --memory-swap is memory plus swap; unset: as much swap as memory (Docker's)
        files["memory.swap.max"] = ("max" if swap == -1 else
                                    str(swap - memory) if swap else str(memory))
    if limits.get("MemoryReservation"):
        files["memory.low"] = str(limits["MemoryReservation"])
    period = limits.get("CpuPeriod") or 100000
    if limits.get("NanoCpus"):
        files["cpu.max"] = f"{limits['NanoCpus'] * 100000 // 10**9} 100000"
    elif limits.get("CpuQuota") or limits.get("CpuPeriod"):
        quota = limits.get("CpuQuota") or 0
        files["cpu.max"] = f"{quota if quota > 0 else 'max'} {period}"
    shares = limits.get("CpuShares") or 0
    if shares:
        shares = min(max(shares, 2), 262144)  # the kernel's range for cpu.shares
        files["cpu.weight"] = str(1 + ((shares - 2) * 9999) // 262142)
    if limits.get("CpusetCpus"):
        files["cpuset.cpus"] = limits["CpusetCpus"]
    if limits.get("CpusetMems"):
        files["cpuset.mems"] = limits["CpusetMems"]
    pids = limits.get("PidsLimit")
    if pids is not None:
        files["pids.max"] = str(pids) if pids > 0 else "max"  # 0 or -1: unlimited
    if limits.get("BlkioWeight"):
        files["io.weight"] = f"default {1 + (limits['BlkioWeight'] - 10) * 9999 // 990}"
    return files


def host_config(limits: dict | None) -> dict:
    """inspect's HostConfig limit keys (Docker's zero values for those not given)."""
    return {**HOST_CONFIG, **(limits or {})}


# -- the container's cgroup --------------------------------------------------------------

LEAF = "rl-leaf"  # where the delegated dir's own processes go (no internal processes)


def name_of(short_id: str) -> str:
    return f"rl-{short_id}"


def _open_dir(dirfd: int | None, path: str) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, dir_fd=dirfd) if dirfd is not None else os.open(path, flags)


def _open_top(rep: Report) -> int:
    """The delegated dir (OSError when it cannot be opened)."""
    assert rep.delegated is not None
    return _open_dir(None, rep.delegated)


def _open_own(top: int, short_id: str, *, create: bool = False) -> int:
    """The container's cgroup rl-<short id> under the delegated dir `top` (made first with
    `create`; a restart reuses it): the one way every verb opens it."""
    if create:
        try:
            os.mkdir(name_of(short_id), 0o755, dir_fd=top)
        except FileExistsError:
            pass
    return _open_dir(top, name_of(short_id))


def _read_at(dirfd: int, name: str) -> str:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        return os.read(fd, 65536).decode()
    finally:
        os.close(fd)


# as `echo VALUE > FILE` opens it, but without O_CREAT: the kernel makes a cgroup's files,
# and a missing one (memory.swap.max without swap accounting) must say ENOENT (the tests'
# fake tree of plain files adds O_CREAT)
_WRITE = os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC


def _write_at(dirfd: int, name: str, value: str) -> None:
    # each write is one whole value
    fd = os.open(name, _WRITE, 0o644, dir_fd=dirfd)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _enable(top: int, controllers: set[str]) -> None:
    """Enable `controllers` for the delegated dir's children. The kernel refuses (EBUSY)
    while the dir has processes of its own (the no-internal-process rule): those are moved
    into a leaf child first, as podman does for its own process."""
    have = set(_read_at(top, "cgroup.subtree_control").split())
    missing = sorted(controllers - have)
    if not missing:
        return
    line = " ".join("+" + c for c in missing)
    try:
        _write_at(top, "cgroup.subtree_control", line)
        return
    except OSError as exc:
        import errno

        if exc.errno != errno.EBUSY:
            raise
    try:
        os.mkdir(LEAF, 0o755, dir_fd=top)
    except FileExistsError:
        pass
    leaf = _open_dir(top, LEAF)
    try:
        for pid in _read_at(top, "cgroup.procs").split():
            try:
                _write_at(leaf, "cgroup.procs", pid)
            except ProcessLookupError:
                pass  # gone meanwhile
    finally:
        os.close(leaf)
    _write_at(top, "cgroup.subtree_control", line)


def _failed(what: str, exc: OSError, where: str) -> RlError:
    return RlError(f"cannot {what} ({where}): {exc.strerror or exc}",
                   "check `rl info` (cgroups) and the delegated cgroup's permissions")


def make(short_id: str, limits: dict | None, rep: Report | None = None) -> bool:
    """Make (or reuse, on a restart) the container's cgroup and write its limits. Returns
    False where this host has none to give and the container asks for no limit; raises
    where it asks for one (never dropped in silence)."""
    rep = rep or probe()
    files = files_of(limits or {})
    if not rep.usable:
        if files:
            reason, fix = rep.why_not(_controller(next(iter(files))))
            raise RlError(f"the container has cgroup limits but {reason}", fix)
        return False
    needed = {_controller(f) for f in files}
    missing = sorted(needed - set(rep.controllers))
    if missing:
        reason, fix = rep.why_not(missing[0])
        raise RlError(f"the container has cgroup limits but {reason}", fix)
    name = name_of(short_id)
    try:
        top = _open_top(rep)
    except OSError as exc:
        raise _failed("open the delegated cgroup", exc, rep.delegated) from None
    try:
        try:
            _enable(top, needed)
        except OSError as exc:
            raise _failed("enable " + " ".join(sorted(needed)), exc,
                          f"{rep.delegated}/cgroup.subtree_control") from None
        try:
            fd = _open_own(top, short_id, create=True)
        except OSError as exc:
            raise _failed("make the container's cgroup", exc, f"{rep.delegated}/{name}") \
                from None
        try:
            _write_at(fd, "cgroup.freeze", "0")  # a restart after a stop while paused
            for f, value in files.items():
                try:
                    _write_at(fd, f, value)
                except OSError as exc:
                    raise _failed(f"write {value} to {f}", exc, f"{rep.delegated}/{name}") \
                        from None
        finally:
            os.close(fd)
    finally:
        os.close(top)
    return True


def _controller(filename: str) -> str:
    return filename.split(".", 1)[0]


def enter(short_id: str, pid: int, rep: Report | None = None) -> None:
    """Put `pid` (the sandbox, before it forks pid 1) into the container's cgroup."""
    rep = rep or probe()
    try:
        top = _open_top(rep)
        try:
            fd = _open_own(top, short_id)
        finally:
            os.close(top)
        try:
            _write_at(fd, "cgroup.procs", str(pid))
        finally:
            os.close(fd)
    except OSError as exc:
        raise _failed("move the container into its cgroup", exc,
                      f"{rep.delegated}/{name_of(short_id)}") from None


def join(short_id: str, limits: dict | None, pid: int) -> None:
    """At the start, before pid 1 is forked: the container's cgroup, its limits, and the
    sandbox `pid` in it (every process of the container descends from it). A container
    without limits gets one where the host has delegation (for pause), as a best effort."""
    rep = probe()
    if not limits and not rep.usable:
        return
    try:
        if make(short_id, limits, rep):
            enter(short_id, pid, rep)
    except RlError:
        if limits:
            raise
        # no limit asked for: a container without a cgroup of its own still runs (pause
        # then says it has none)


def _opened(short_id: str, rep: Report) -> int | None:
    """The container's cgroup, None when it has none (or no delegation)."""
    if not rep.usable:
        return None
    try:
        top = _open_top(rep)
    except OSError:
        return None
    try:
        return _open_own(top, short_id)
    except OSError:
        return None
    finally:
        os.close(top)


def update(short_id: str, limits: dict, rep: Report | None = None) -> bool:
    """`rl update` of a running container: write the new limits into its cgroup. False
    when it has no cgroup (not running, or started without one)."""
    rep = rep or probe()
    if not rep.usable:
        return False
    files = files_of(limits)
    try:
        top = _open_top(rep)
    except OSError:
        return False
    try:
        try:
            fd = _open_own(top, short_id)
        except OSError:
            return False
        try:
            # a container started without limits has a cgroup without their controllers
            try:
                _enable(top, {_controller(f) for f in files})
            except OSError as exc:
                raise _failed("enable the controllers", exc,
                              f"{rep.delegated}/cgroup.subtree_control") from None
            for f, value in files.items():
                try:
                    _write_at(fd, f, value)
                except OSError as exc:
                    raise _failed(f"write {value} to {f}", exc,
                                  f"{rep.delegated}/{name_of(short_id)}") from None
        finally:
            os.close(fd)
    finally:
        os.close(top)
    return True


def remove(short_id: str, rep: Report | None = None, *, wait: float = 2.0) -> None:
    """rm: remove the container's cgroup once its processes are gone (they leave it as
    they exit; EBUSY meanwhile)."""
    import errno
    import time

    rep = rep or probe()
    if not rep.usable:
        return
    try:
        top = _open_top(rep)
    except OSError:
        return
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                os.rmdir(name_of(short_id), dir_fd=top)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise _failed("remove the container's cgroup", exc,
                                  f"{rep.delegated}/{name_of(short_id)}") from None
                time.sleep(0.05)
    finally:
        os.close(top)


# -- rl info -----------------------------------------------------------------------------

def info_line(rep: Report | None = None) -> tuple[bool, str, str | None]:
    """`rl info`'s cgroups check: (ok, detail, fix)."""
    rep = rep or probe()
    if rep.usable:
        missing = [c for c in WANTED if c not in rep.controllers]
        kind = "cgroup v2" if rep.layout == "v2" else "the cgroup v2 tree of a hybrid layout"
        detail = (f"{kind}, {rep.delegated} delegated with "
                  f"{' '.join(rep.controllers) or 'no controllers'}"
                  + (f" (no {' '.join(missing)}: the flags needing them are refused)"
                     if missing else ""))
        return not missing, detail, (DELEGATE_FIX if missing else None)
    reason, fix = rep.why_not("memory")
    return False, f"no controller delegated: {reason}", fix


# -- pause / unpause ---------------------------------------------------------------------

FREEZE_FAKE = ("a SIGSTOP of every process is not a freeze (the processes see it, a "
               "parent is told of it, new ones escape it), so rl does not fake one")


def refuse_freeze(name: str, verb: str, rep: Report | None = None) -> None:
    """`rl pause`/`unpause` where there is no cgroup.freeze to use (cgroup v1 or hybrid,
    whose freezer no user gets, or no delegation): refused with this host's reason."""
    rep = rep or probe()
    if rep.usable:
        reason = (f"it has no cgroup of its own (rl could not make one under "
                  f"{rep.delegated} when it started)")
        fix = "check `rl info` (cgroups), then restart the container"
    else:
        reason, fix = rep.why_not("freezer")
    raise InvalidArgument(f"cannot {verb} container {name}: no cgroup freezer: {reason}; "
                          f"{FREEZE_FAKE}", fix)


def freeze(name: str, short_id: str, frozen: bool, rep: Report | None = None,
           timeout: float = 10.0) -> None:
    """Write cgroup.freeze (1 or 0) and wait until cgroup.events says `frozen 1` (or 0):
    the kernel freezes the tasks one by one, and the write returns before that."""
    import select
    import time

    rep = rep or probe()
    verb = "pause" if frozen else "unpause"
    fd = _opened(short_id, rep)
    if fd is None:
        refuse_freeze(name, verb, rep)
    assert fd is not None
    want = f"frozen {int(frozen)}"
    try:
        try:
            _write_at(fd, "cgroup.freeze", str(int(frozen)))
        except OSError as exc:
            raise _failed(f"{verb} container {name}", exc,
                          f"{rep.delegated}/{name_of(short_id)}/cgroup.freeze") from None
        events = os.open("cgroup.events", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=fd)
        try:
            # cgroup.events signals a change with POLLPRI (a plain file is always ready)
            poller = select.poll()
            poller.register(events, select.POLLPRI)
            deadline = time.monotonic() + timeout
            while True:
                text = os.pread(events, 4096, 0).decode()
                if want in text.splitlines():
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RlError(f"cannot {verb} container {name}: cgroup.events did not "
                                  f"say {want!r} within {timeout:g}s",
                                  "retry; a process stuck in the kernel (D state) delays "
                                  "a freeze")
                poller.poll(min(left, 0.1) * 1000)
        finally:
            os.close(events)
    finally:
        os.close(fd)

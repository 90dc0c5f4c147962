"""What this host lets a rootless user do with cgroups, found on the host, for the resource
flags (`--memory`, `--cpus`, `--pids-limit`...) and `rl info`.

Limits need cgroup v2 with a subtree delegated to the user (systemd's user@UID.service:
found from /proc/self/cgroup, owned by the user, with the controller in its
cgroup.controllers). rl does not create per-container cgroups yet, so every resource flag
is refused, with the reason found here (cgroup v1 or hybrid, no delegation, a controller
not delegated, or rl's own missing support) and the fix: a limit is never dropped in
silence. Everything is read from files under `root` so that the tests can lay out a
cgroupfs in a temporary directory (tests/runtime/test_cgroups.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from rootless.errors import InvalidArgument

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
        if self.layout == "hybrid":
            where = ("on cgroup v1" if os.path.isdir(os.path.join(self.root, controller))
                     else "not on the cgroup v2 tree")
            return (f"this host has a hybrid cgroup layout: the {controller} controller is "
                    f"{where} and the cgroup v2 tree ({self.root}/unified) has "
                    f"{' '.join(self.unified) or 'no controllers'}; v1 controllers cannot "
                    "be delegated to a user", V2_FIX)
        if self.delegated is None:
            return (f"your cgroup ({self.cgroup or 'unknown'}) is not delegated to you "
                    "(no systemd user manager owns it)",
                    "log in through systemd-logind (or: loginctl enable-linger $USER) so "
                    "that user@UID.service runs, and " + DELEGATE_FIX)
        if controller not in self.controllers:
            return (f"the {controller} controller is not delegated to your cgroup "
                    f"({self.delegated}: {' '.join(self.controllers) or 'none'})",
                    DELEGATE_FIX)
        return (f"the {controller} controller is delegated to you, but rl does not create "
                "per-container cgroups yet", "use --ulimit where it fits (nproc, as, ...)")


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
    if layout != "v2" or not path:
        rep.reason = rep.why_not("memory")[0]
        return rep
    # the delegated subtree: the top-most ancestor of our cgroup still owned by us
    here = os.path.join(root, path.strip("/"))
    top = None
    while os.path.normpath(here) != os.path.normpath(root):
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


def refuse_resource_flags(given: dict[str, object]) -> None:
    """Refuse the first resource flag given (value not None), with the host's reason."""
    flags = [f for f, v in given.items() if v is not None and v != () and v != []]
    if not flags:
        return
    flag = flags[0]
    if flag == "--device-cgroup-rule":
        raise InvalidArgument("--device-cgroup-rule needs the devices controller (an eBPF "
                              "program on cgroup v2), which a rootless user cannot use",
                              "give the device itself with --device HOST[:CONTAINER]")
    reason, fix = probe().why_not(FLAGS[flag])
    raise InvalidArgument(f"{flag} cannot be honoured: {reason}", fix)


def info_line(rep: Report | None = None) -> tuple[bool, str, str | None]:
    """`rl info`'s cgroups check: (ok, detail, fix)."""
    rep = rep or probe()
    if rep.layout == "v2" and rep.delegated:
        missing = [c for c in WANTED if c not in rep.controllers]
        detail = (f"cgroup v2, {rep.delegated} delegated with "
                  f"{' '.join(rep.controllers) or 'no controllers'}; rl applies no limits yet")
        return False, detail, (DELEGATE_FIX if missing else None)
    reason, fix = rep.why_not("memory")
    return False, f"no controller delegated: {reason}", fix


FREEZE_FAKE = ("a SIGSTOP of every process is not a freeze (the processes see it, a "
               "parent is told of it, new ones escape it), so rl does not fake one")


def refuse_freeze(name: str, verb: str, rep: Report | None = None) -> None:
    """`rl pause`/`unpause`: a freeze needs a cgroup of the container's own (cgroup.freeze
    on v2, the freezer on v1, which no user gets): refused with this host's reason."""
    rep = rep or probe()
    if rep.layout == "v2" and rep.delegated:
        reason = (f"cgroup v2 is delegated to you ({rep.delegated}), but rl does not "
                  "create per-container cgroups yet, so there is no cgroup.freeze to use")
        fix = "stop the container instead (rl stop), or kill -STOP its processes yourself"
    else:
        reason, fix = rep.why_not("freezer")
    raise InvalidArgument(f"cannot {verb} container {name}: no cgroup freezer: {reason}; "
                          f"{FREEZE_FAKE}", fix)

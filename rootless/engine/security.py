"""`--security-opt` and the container's seccomp profile.

The default profile is data another project keeps: containers-common's seccomp.json (the
one podman uses; Debian 12 ships it in golang-github-containers-common, later releases in
containers-common). It is read at `rl create`/`rl run`, never copied into this tree, and
turned into the OCI spec's `linux.seccomp` section the way Docker and podman do: a rule
applies only when the container's capabilities include every cap of its `includes.caps`
and none of its `excludes.caps`, when the machine's architecture is in `includes.arches`
and not in `excludes.arches`, and when the kernel is at least `includes.minKernel` (and
below `excludes.minKernel`). The runtime compiles that section (rootless/runtime/seccomp.py).

Where podman's profile is wider than Docker's default one, rl narrows it to Docker's
(`DOCKER_PARITY` below, rules of rl's own written in the same schema): podman allows
namespaces, mounts, keyctl and pivot_root to every container and leaves it to the kernel's
capability checks, which is not enough for a rootless engine: a container's root has
every capability in a *new* user namespace it makes, so `unshare -U` would open the
kernel's namespaced-root surface (mounts, nftables, ...) to every container. These are
applied to the default profile only; a profile given with `seccomp=FILE` is used as it is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from rootless.errors import InvalidArgument

DEFAULT_PROFILE = "/usr/share/containers/seccomp.json"
PROFILE_PACKAGE = "golang-github-containers-common"  # Debian 12; containers-common later

# Docker's default profile gates these on a capability, or denies them; podman's allows
# them to everyone. For each name here every rule of the loaded profile is dropped and
# these apply instead.
_SYS_ADMIN_ONLY = ["fsconfig", "fsmount", "fsopen", "fspick", "mount", "mount_setattr",
                   "move_mount", "open_tree", "setns", "umount", "umount2", "unshare"]
_NS_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
DOCKER_PARITY: list[dict] = [
    {"names": [*_SYS_ADMIN_ONLY, "clone", "clone3", "syslog"], "action": "SCMP_ACT_ALLOW",
     "includes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": _SYS_ADMIN_ONLY, "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
     "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    # clone without a namespace flag only (s390 swaps the first two arguments)
    {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 0, "value": _NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
     "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}},
    {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
     "args": [{"index": 1, "value": _NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
     "includes": {"arches": ["s390", "s390x"]}, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    # clone3's flags are in memory, out of a filter's reach: ENOSYS makes libc use clone
    {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
     "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
    {"names": ["syslog"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYSLOG"]}},
    {"names": ["syslog"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
     "excludes": {"caps": ["CAP_SYS_ADMIN", "CAP_SYSLOG"]}},
    {"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_BOOT"]}},
    {"names": ["reboot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
     "excludes": {"caps": ["CAP_SYS_BOOT"]}},
    {"names": ["get_mempolicy", "mbind", "set_mempolicy"], "action": "SCMP_ACT_ALLOW",
     "includes": {"caps": ["CAP_SYS_NICE"]}},
    {"names": ["get_mempolicy", "mbind", "set_mempolicy"], "action": "SCMP_ACT_ERRNO",
     "errnoRet": 1, "excludes": {"caps": ["CAP_SYS_NICE"]}},
    {"names": ["pidfd_getfd"], "action": "SCMP_ACT_ALLOW",
     "includes": {"caps": ["CAP_SYS_PTRACE"]}},
    {"names": ["pidfd_getfd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
     "excludes": {"caps": ["CAP_SYS_PTRACE"]}},
    # the kernel keyrings are not namespaced; pivot_root is for runtimes, not containers
    {"names": ["add_key", "keyctl", "request_key", "pivot_root"], "action": "SCMP_ACT_ERRNO",
     "errnoRet": 1},
]

# Go's names of architectures (what profiles' includes.arches use), from uname -m
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
           "i686": "x86", "i386": "x86", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64", "mips64": "mips64", "mips64el": "mips64le"}
_SCMP_NATIVE = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64",
                "armv7l": "SCMP_ARCH_ARM", "armv6l": "SCMP_ARCH_ARM", "i686": "SCMP_ARCH_X86",
                "i386": "SCMP_ARCH_X86", "ppc64le": "SCMP_ARCH_PPC64LE",
                "s390x": "SCMP_ARCH_S390X", "riscv64": "SCMP_ARCH_RISCV64"}
_ERRNO_NAMES = {"EPERM": 1, "ENOENT": 2, "EACCES": 13, "EINVAL": 22, "ENOSYS": 38}


@dataclass
class SecurityOptions:
    seccomp: str = "default"  # "default", "unconfined" or a profile's path
    no_new_privileges: bool = True
    label_disable: bool = False
    apparmor: str | None = None

    def as_list(self) -> list[str]:
        """Docker's HostConfig.SecurityOpt: what was asked, as the canonical strings."""
        out = [f"seccomp={self.seccomp}"]
        if self.no_new_privileges:
            out.append("no-new-privileges")
        if self.label_disable:
            out.append("label=disable")
        if self.apparmor:
            out.append(f"apparmor={self.apparmor}")
        return out


def parse(values: list[str]) -> SecurityOptions:
    """--security-opt values, podman's forms (`key=value`, or Docker's `key:value`).
    Raises InvalidArgument naming the bad option."""
    out = SecurityOptions()
    for raw in values:
        key, sep, value = raw.partition("=")
        if not sep and ":" in raw:
            key, sep, value = raw.partition(":")
        key = key.strip()
        if key == "no-new-privileges":
            if not sep or value == "true":
                out.no_new_privileges = True
            elif value == "false":
                out.no_new_privileges = False
            else:
                raise InvalidArgument(f"invalid --security-opt {raw!r}",
                                      "use no-new-privileges, no-new-privileges=true or =false")
        elif key == "seccomp" and sep and value:
            if value == "unconfined":
                out.seccomp = value
            else:
                path = os.path.abspath(value)
                _read_profile(path, f"--security-opt seccomp={value}")
                out.seccomp = path
        elif key == "label" and sep:
            if value != "disable":
                raise InvalidArgument(f"--security-opt {raw}: SELinux labels are not supported "
                                      "on this host", "only label=disable is accepted")
            out.label_disable = True
        elif key == "apparmor" and sep:
            # as podman on a host without AppArmor: unconfined is what every container is
            if value != "unconfined":
                raise InvalidArgument(f"--security-opt {raw}: AppArmor profiles are not "
                                      "supported", "only apparmor=unconfined is accepted")
            out.apparmor = value
        else:
            raise InvalidArgument(f"unknown --security-opt {raw!r}",
                                  "use seccomp=unconfined|PROFILE.json, no-new-privileges"
                                  "[=true|false], label=disable or apparmor=unconfined")
    return out


def _read_profile(path: str, what: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        if path == DEFAULT_PROFILE:
            raise InvalidArgument(
                f"the default seccomp profile {path} is missing",
                f"apt-get install {PROFILE_PACKAGE} (containers-common on newer Debian), "
                "or run with --security-opt seccomp=unconfined") from None
        raise InvalidArgument(f"{what}: no such file") from None
    except OSError as exc:
        raise InvalidArgument(f"{what}: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidArgument(f"{what}: {path} is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("syscalls", []), list):
        raise InvalidArgument(f"{what}: {path} is not a seccomp profile",
                              "give a file in Docker's seccomp.json format")
    return data


def _kernel() -> tuple[int, ...]:
    return _version(os.uname().release)


def _version(text: str) -> tuple[int, ...]:
    """'6.18.0-1-amd64' -> (6, 18, 0); '4.8' -> (4, 8)."""
    import re

    m = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", text.strip())
    return tuple(int(g) for g in m.groups() if g is not None) if m else ()


def _applies(rule: dict, caps: set[str], goarch: str, kernel: tuple[int, ...]) -> bool:
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if inc.get("caps") and not all(c in caps for c in inc["caps"]):
        return False
    if exc.get("caps") and any(c in caps for c in exc["caps"]):
        return False
    if inc.get("arches") and goarch not in inc["arches"]:
        return False
    if exc.get("arches") and goarch in exc["arches"]:
        return False
    if inc.get("minKernel") and kernel < _version(inc["minKernel"]):
        return False
    return not (exc.get("minKernel") and kernel >= _version(exc["minKernel"]))


def _errno_of(rule: dict, number_key: str, name_key: str) -> int | None:
    if rule.get(number_key) is not None:
        return int(rule[number_key])
    if rule.get(name_key):
        return _ERRNO_NAMES.get(rule[name_key], 1)
    return None


def to_oci(profile: dict, caps: list[str], *, machine: str | None = None,
           kernel: tuple[int, ...] | None = None) -> dict:
    """A Docker/podman seccomp profile -> the OCI spec's linux.seccomp for a container with
    these (effective) capabilities on this machine."""
    machine = machine or os.uname().machine
    goarch = _GOARCH.get(machine, machine)
    kernel = _kernel() if kernel is None else kernel
    capset = set(caps)
    native = _SCMP_NATIVE.get(machine)
    arches: list[str] = []
    for entry in profile.get("archMap") or []:
        if entry.get("architecture") == native:
            arches = [native, *(entry.get("subArchitectures") or [])]
            break
    else:
        arches = list(profile.get("architectures") or ([native] if native else []))
    rules = []
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, capset, goarch, kernel):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        if not names:
            continue
        out = {"names": names, "action": rule.get("action", "SCMP_ACT_ALLOW")}
        err = _errno_of(rule, "errnoRet", "errno")
        if err is not None and out["action"] in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
            out["errnoRet"] = err
        args = [{"index": int(a["index"]), "value": int(a.get("value", 0)),
                 "valueTwo": int(a.get("valueTwo", 0)), "op": a["op"]}
                for a in rule.get("args") or []]
        if args:
            out["args"] = args
        rules.append(out)
    section = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ERRNO"),
               "architectures": arches, "syscalls": rules}
    err = _errno_of(profile, "defaultErrnoRet", "defaultErrno")
    if err is not None:
        section["defaultErrnoRet"] = err
    return section


def with_docker_parity(profile: dict) -> dict:
    """podman's profile narrowed to Docker's default where it is wider (DOCKER_PARITY)."""
    override = {n for rule in DOCKER_PARITY for n in rule["names"]}
    rules = []
    for rule in profile.get("syscalls") or []:
        names = [n for n in rule.get("names") or [] if n not in override]
        if names:
            rules.append(dict(rule, names=names))
    return dict(profile, syscalls=rules + DOCKER_PARITY)


def seccomp_section(opts: SecurityOptions, caps: list[str]) -> dict | None:
    """linux.seccomp for the spec, or None when unconfined."""
    if opts.seccomp == "unconfined":
        return None
    if opts.seccomp == "default":
        profile = with_docker_parity(_read_profile(DEFAULT_PROFILE, "default seccomp profile"))
    else:
        profile = _read_profile(opts.seccomp, f"--security-opt seccomp={opts.seccomp}")
    return to_oci(profile, caps)

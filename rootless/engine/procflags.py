"""`rl run` flags about the container's process and its /dev: --stop-signal,
--stop-timeout, --cidfile, --group-add, --label-file, --shm-size, --sysctl, --privileged
and --device (Docker's, with podman's rootless meaning where root's cannot apply).

Parsing and refusal here, before anything exists; rootless/engine/spec.py puts the
values in the OCI spec, and rootless/runtime/pid1.py applies the sysctls and groups.
RunOptions holds sysctls as a mapping and devices as `Device` records: parse_sysctl and
parse_device read Docker's CLI syntax (for the CLI), check_sysctl and device_mount judge
what any front end gave.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from rootless.errors import InvalidArgument

# The sysctls a container may set (Docker's and podman's namespaced set): the IPC
# namespace's, and the network namespace's when the container has one of its own.
IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
               "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def parse_sysctl(text: str) -> tuple[str, str]:
    """One `--sysctl NAME=VALUE` (Docker's syntax) -> (name, value); check_sysctl judges it."""
    key, sep, value = text.partition("=")
    key = key.strip().replace("/", ".")
    if not sep or not key or not value:
        raise InvalidArgument(f"invalid --sysctl {text!r}", "use --sysctl NAME=VALUE")
    return key, value


def check_sysctl(key: str, value: str, network_kind: str) -> tuple[str, str]:
    """A sysctl a container may set: namespaced, and of a namespace it owns."""
    key = str(key).strip().replace("/", ".")
    value = str(value)
    if not key or not value:
        raise InvalidArgument(f"invalid --sysctl {key}={value!r}", "use --sysctl NAME=VALUE")
    if key in IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return key, value
    if key.startswith("net."):
        if network_kind in ("host", "container"):
            raise InvalidArgument(f"--sysctl {key} cannot be set with --network "
                                  f"{network_kind}",
                                  "the network namespace is not the container's own")
        return key, value
    raise InvalidArgument(f"--sysctl {key} is not namespaced: a container cannot set it",
                          "only net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* "
                          "are per container")


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?", re.I)


def parse_size(text: str, flag: str) -> int:
    """Docker's RAMInBytes: 64m, 1g, 512k, 1048576, 1.5GB -> bytes."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise InvalidArgument(f"invalid {flag} {text!r}", "give a size like 64m, 1g or 512k")
    n = float(m.group(1)) * 1024 ** "bkmgt".index((m.group(2) or "b").lower())
    if n < 1:
        raise InvalidArgument(f"invalid {flag} {text!r}: must be greater than 0",
                              "give a size like 64m")
    return int(n)


def parse_stop_timeout(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        t = int(text)
    except ValueError:
        t = -2
    if t < -1:
        raise InvalidArgument(f"invalid --stop-timeout {text!r}",
                              "give seconds (0: kill at once, -1: no timeout)")
    return t


@dataclass(frozen=True)
class Device:
    """A host device node given to a container (--device, HostConfig.Devices, compose's
    devices): bound at `container` (default: the host's path), opened with `permissions`
    (r, w; m is meaningless rootless)."""

    host: str
    container: str = ""
    permissions: str = "rwm"

    def text(self) -> str:
        """HOST:CONTAINER:PERMS, as the row keeps it for inspect's HostConfig.Devices."""
        return f"{self.host}:{self.container or self.host}:{self.permissions}"


def parse_device(text: str) -> Device:
    """`--device HOST[:CONTAINER][:PERMS]` (Docker's syntax) -> a Device; device_mount
    checks it."""
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise InvalidArgument(f"invalid --device {text!r}",
                              "use --device HOST[:CONTAINER][:PERMS], e.g. /dev/fuse")
    host = parts[0]
    dest, perms = host, "rwm"
    if len(parts) == 2:
        if parts[1].startswith("/"):
            dest = parts[1]
        else:
            perms = parts[1]
    elif len(parts) == 3:
        dest, perms = parts[1], parts[2]
    if not perms or set(perms) - set("rwm"):
        raise InvalidArgument(f"invalid device permissions {perms!r} in --device {text!r}",
                              "use a combination of r, w and m")
    if not host.startswith("/") or not dest.startswith("/"):
        raise InvalidArgument(f"invalid --device {text!r}: paths must be absolute")
    return Device(host, dest, perms)


def device_mount(d: Device) -> dict:
    """The spec's bind mount of the host's device node, which the user must be able to
    open with its permissions. InvalidArgument when it cannot be given."""
    host, dest, perms = d.host, d.container or d.host, d.permissions or "rwm"
    if set(perms) - set("rwm"):
        raise InvalidArgument(f"invalid device permissions {perms!r} in --device "
                              f"{d.text()!r}", "use a combination of r, w and m")
    if not host.startswith("/") or not dest.startswith("/"):
        raise InvalidArgument(f"invalid --device {d.text()!r}: paths must be absolute")
    try:
        st = os.stat(host)
    except OSError as exc:
        raise InvalidArgument(f"cannot use device {host}: {exc.strerror}",
                              "give a device node that exists on this host") from None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise InvalidArgument(f"{host} is not a device node", "give a file under /dev")
    mode = (os.R_OK if "r" in perms else 0) | (os.W_OK if "w" in perms else 0)
    if mode and not os.access(host, mode):
        raise InvalidArgument(f"you cannot open {host} with permissions {perms!r}",
                              "a rootless container gets only the devices its user can "
                              "open: change the device's group or mode, or drop w")
    return {"destination": dest, "type": "bind", "source": host,
            "options": ["bind", "nosuid", "noexec"] + ([] if "w" in perms else ["ro"])}


def privileged_exec(process: dict) -> dict:
    """`rl exec --privileged`: as Docker's, the process gets every capability (of the
    container's user namespace: no host root) and no seccomp filter; the container's
    masked paths stay masked (they are its mounts)."""
    from rootless.runtime import caps

    every = list(caps.NUMBERS)
    return dict(process, capabilities={k: every for k in ("bounding", "effective",
                                                          "permitted")})


def parse_group(text: str) -> str:
    if not text or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?", text):
        raise InvalidArgument(f"invalid --group-add {text!r}",
                              "give a group name of the image or a number")
    return text


def parse_label_file(path: str) -> dict[str, str]:
    """Docker's --label-file: KEY=VALUE lines (KEY alone: empty); # comments and blank
    lines skipped."""
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"cannot read label file {path}: {exc.strerror}") from None
    out = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label {line!r} in {path}", "use KEY=VALUE lines")
        out[key] = value
    return out


def check_cidfile(path: str | None) -> None:
    if path and os.path.lexists(path):
        raise InvalidArgument(f"container ID file found: {path}",
                              "make sure the other container is not running, or delete it")


def write_cidfile(path: str, cid: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise InvalidArgument(f"cannot write the container ID file {path}: "
                              f"{exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(cid)

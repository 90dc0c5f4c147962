"""Capability names and Docker's default set, as numbers for prctl(PR_CAPBSET_DROP)."""

from __future__ import annotations

NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
    "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]
NUMBERS = {f"CAP_{n}": i for i, n in enumerate(NAMES)}

# moby/oci/caps/defaults.go
DOCKER_DEFAULT = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]


def normalize(name: str) -> str:
    """'net_admin', 'NET_ADMIN', 'CAP_NET_ADMIN' -> 'CAP_NET_ADMIN'; 'all' -> 'ALL'.
    Raises ValueError for an unknown name."""
    n = name.strip().upper()
    if n == "ALL":
        return n
    if not n.startswith("CAP_"):
        n = "CAP_" + n
    if n not in NUMBERS:
        raise ValueError(name)
    return n


def compute(add: list[str], drop: list[str]) -> list[str]:
    """Docker's rule: start from the default set, drop, then add; ALL in either applies
    first."""
    add_n = [normalize(c) for c in add]
    drop_n = [normalize(c) for c in drop]
    result = list(DOCKER_DEFAULT)
    if "ALL" in drop_n:
        result = []
    result = [c for c in result if c not in drop_n]
    if "ALL" in add_n:
        result = list(NUMBERS)
    for c in add_n:
        if c != "ALL" and c not in result:
            result.append(c)
    return sorted(result, key=NUMBERS.__getitem__)


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(NAMES) - 1

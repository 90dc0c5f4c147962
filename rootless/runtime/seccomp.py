"""The container's seccomp filter: an OCI `linux.seccomp` section compiled to a BPF program
by libseccomp, cached, and loaded just before the container's command is exec'd.

Compiling (libseccomp through ctypes: a rule per syscall name, ~400 of them) costs tens of
milliseconds; a start must not pay that. So the program is cached in the user's runtime
dir under a hash of the section and the machine, and a start only reads those bytes and
hands them to prctl(PR_SET_SECCOMP), which needs no libseccomp at all. The runtime dir is
0700 and the user's own (store/paths.py); no container can reach it.

Hand-written ctypes, not a binding from PyPI: the one there (pyseccomp) has not been
released since 2021, and rl needs eight calls of libseccomp's stable C API, and only on a
cache miss.

`program()` runs before pivot_root (or before `rl exec` enters the container's mount
namespace): afterwards the host's files, libseccomp and the cache, are out of reach.
`load()` then needs nothing but the bytes.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os

from rootless.linux import syscalls as sc

# Bumped when the way a section becomes a program changes: old cache entries are then
# simply not found.
_FORMAT = "2"

_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000,
}
_OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
        "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
_NR_SCMP_ERROR = -1

_SCMP_FLTATR_CTL_OPTIMIZE = 8
# A binary tree of syscall numbers instead of libseccomp's default list: the kernel takes
# the program in about half the time (it emulates it for every syscall number when it
# loads it, to cache what is always allowed), and each syscall walks fewer instructions.
_OPTIMIZE = True

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class SeccompError(Exception):
    """A section that cannot become a filter, or a filter the kernel refused."""


def action_of(name: str, errno_ret: int | None, default_errno: int = errno.EPERM) -> int:
    if name not in _ACTIONS:
        raise SeccompError(f"unsupported seccomp action {name!r}")
    act = _ACTIONS[name]
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        act |= (default_errno if errno_ret is None else errno_ret) & 0xFFFF
    return act


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _libseccomp():
    try:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError:
        raise SeccompError("libseccomp is not installed (apt-get install libseccomp2), or "
                           "run with --security-opt seccomp=unconfined") from None
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.restype = None
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_native.argtypes = []
    lib.seccomp_arch_native.restype = ctypes.c_uint32
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_add.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_rule_add_array.restype = ctypes.c_int
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_attr_set.restype = ctypes.c_int
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_export_bpf.restype = ctypes.c_int
    return lib


def compile_bpf(section: dict) -> bytes:
    """The BPF program (struct sock_filter[], as bytes) for an OCI linux.seccomp section.
    Names libseccomp does not know (newer than it) are skipped, as runc does: they get the
    default action."""
    lib = _libseccomp()
    default = action_of(section.get("defaultAction", "SCMP_ACT_ALLOW"),
                        section.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise SeccompError("seccomp_init failed")
    try:
        if _OPTIMIZE:
            lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_OPTIMIZE, 2)  # libseccomp >= 2.5
        native = lib.seccomp_arch_native()
        for arch in section.get("architectures") or []:
            token = lib.seccomp_arch_resolve_name(arch.removeprefix("SCMP_ARCH_").lower()
                                                  .encode())
            if token == 0:
                continue  # an architecture this libseccomp does not know
            if token != native:
                rc = lib.seccomp_arch_add(ctx, token)
                if rc < 0 and rc != -errno.EEXIST:
                    raise SeccompError(f"seccomp: cannot add architecture {arch}: "
                                       f"{os.strerror(-rc)}")
        for rule in section.get("syscalls") or []:
            act = action_of(rule.get("action", ""), rule.get("errnoRet"))
            args = rule.get("args") or []
            cmps = (_ArgCmp * max(len(args), 1))()
            for i, a in enumerate(args):
                if a.get("op") not in _OPS:
                    raise SeccompError(f"unsupported seccomp operator {a.get('op')!r}")
                cmps[i] = _ArgCmp(int(a["index"]), _OPS[a["op"]], int(a.get("value", 0)),
                                  int(a.get("valueTwo", 0)))
            for name in rule.get("names") or []:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == _NR_SCMP_ERROR:
                    continue
                if act == default and not args:
                    continue  # libseccomp refuses a rule that repeats the default action
                rc = lib.seccomp_rule_add_array(ctx, act, nr, len(args), cmps)
                if rc < 0:
                    raise SeccompError(f"seccomp: cannot add the rule for {name}: "
                                       f"{os.strerror(-rc)}")
        r, w = os.pipe()
        try:
            rc = lib.seccomp_export_bpf(ctx, w)
            os.close(w)
            w = -1
            if rc < 0:
                raise SeccompError(f"seccomp: cannot export the filter: {os.strerror(-rc)}")
            chunks = []
            while chunk := os.read(r, 65536):
                chunks.append(chunk)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        return b"".join(chunks)
    finally:
        lib.seccomp_release(ctx)


def cache_key(section: dict) -> str:
    import hashlib

    raw = json.dumps(section, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{_FORMAT}\0{os.uname().machine}\0{raw}".encode()).hexdigest()


BUNDLE_FILE = "seccomp.bpf"


def read_bundle(bundle: str, spec: dict) -> bytes | None:
    """The compiled filter the engine left beside config.json (None when the spec has no
    linux.seccomp). Raises SeccompError when the spec asks for one and it is missing."""
    if not (spec.get("linux") or {}).get("seccomp"):
        return None
    try:
        with open(os.path.join(bundle, BUNDLE_FILE), "rb") as f:
            data = f.read()
    except OSError as exc:
        raise SeccompError(f"the container's seccomp filter is missing: {exc.strerror} "
                           "(re-create the container)") from None
    if not data or len(data) % 8:
        raise SeccompError("the container's seccomp filter is damaged (re-create the "
                           "container)")
    return data


def program(section: dict | None, cache_dir: str | None) -> bytes | None:
    """The program for `section` (None when there is none: unconfined), from the cache in
    `cache_dir` or compiled and stored there (temp file, then rename)."""
    if not section:
        return None
    if cache_dir is None:
        return compile_bpf(section)
    path = os.path.join(cache_dir, f"{cache_key(section)}.bpf")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        fd = -1
    if fd >= 0:
        try:
            st = os.fstat(fd)
            data = os.read(fd, st.st_size + 1)
        finally:
            os.close(fd)
        if st.st_uid == os.geteuid() and data and len(data) % 8 == 0:
            return data
    data = compile_bpf(section)
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except OSError:
        pass  # a cache we cannot write only costs time
    return data


def load(bpf: bytes) -> None:
    """Install the program on this thread (and what it execs): needs no_new_privs, or
    CAP_SYS_ADMIN in the current user namespace."""
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _SockFprog(len(bpf) // 8, ctypes.addressof(buf))
    sc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog))

"""What a `RUN --mount` needs on the host, made before the step's container starts and
undone after it (rootless/build/runmounts.py parses the specs).

- cache: a directory kept between builds under the store, `<store>/build-cache-mounts/
  <hash of the id>[-N]/data`, bind-mounted read-write. The store dir is 0700; `data` is
  made by us (mode/uid/gid of the mount applied through its fd when it is new, seeded from
  `from=` then) and from then on is written by build containers: the host never walks it by
  path (prune removes it fd by fd, inside the user namespace for files of subordinate
  ids). `sharing`: shared (a shared flock), locked (an exclusive one, waited for),
  private (an exclusive one; when taken, the next instance `-1`, `-2`...). `rl builder
  prune` removes the instances no build holds.
- bind: a copy of the source (the context, honouring .dockerignore, or a stage's or an
  image's files) in a temporary dir, bound read-only unless `rw` (writes are discarded
  with the copy). A copy rather than the source itself: an image's files live in
  several layer dirs, and a context dir must not be written.
- secret: the secret's bytes in a 0700 temporary dir, bound read-only as a file; or only
  in the step's environment (`env=`). Never in the layer: the mount point the runtime
  made for it is removed from the upper dir before the layer is taken (remove_stubs).
- ssh: the agent's socket bound at the target, SSH_AUTH_SOCK set to it.
- tmpfs: a tmpfs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from rootless.errors import RlError


def cache_root():
    from rootless.store import paths

    root = paths.ensure_store() / "build-cache-mounts"
    with contextlib.suppress(FileExistsError):
        os.mkdir(root, 0o700)
    return root


@dataclass
class Prepared:
    mounts: list = field(default_factory=list)  # mountspec.Mount records for RunOptions
    env: dict[str, str] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)  # mount points (stubs to remove)
    _fds: list[int] = field(default_factory=list)
    _tmp: list[str] = field(default_factory=list)

    def close(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)  # drops the flock
        self._fds.clear()
        for d in self._tmp:
            # a `rw` bind's copy is a tree the step wrote: removed fd by fd, and what
            # subordinate ids own from inside the user namespace
            from rootless.linux import safepath

            safepath.rmtree(d)
            if os.path.lexists(d):
                from rootless.runtime import userns

                with contextlib.suppress(RlError, OSError):
                    userns.rmtree(d)
        self._tmp.clear()


def _bind(source: str, target: str, readonly: bool = False):
    """A bind mount of the step's container (rootless/engine/mountspec.py's record)."""
    from rootless.engine.mountspec import Mount

    return Mount("bind", target, source, readonly=bool(readonly))


def _tmpdir(prep: Prepared, what: str) -> str:
    from rootless.store.layers import TempArea

    path = str(TempArea().path(what))
    os.mkdir(path, 0o700)
    prep._tmp.append(path)
    return path


def _chown_fd(fd: int, uid: int | None, gid: int | None) -> None:
    """fchown to ids of the container (0 is us; others are subordinate ids: only the user
    namespace's root may give them)."""
    if not uid and not gid:
        return
    from rootless.runtime import userns

    def child() -> int:
        os.fchown(fd, uid or 0, gid or 0)
        return 0

    try:
        code = userns.run_in_userns(child, mount_ns=False)
    except userns.ChildFailed:
        code = 125
    if code != 0:
        raise RlError(f"could not give the mount to uid {uid or 0} gid {gid or 0}",
                      "check the subordinate id ranges (/etc/subuid, /etc/subgid)")


def _abs_target(target: str, workdir: str) -> str:
    import posixpath

    return posixpath.normpath(posixpath.join(workdir or "/", target))


def prepare(mounts, *, workdir: str, secrets: dict[str, bytes], ssh: dict[str, str],
            source_of, inst) -> Prepared:
    """Everything `mounts` (RunMount list) need. `source_of(mount)` copies what a bind or
    cache mount's from/source selects into a given directory (the builder knows stages
    and the context). Raises the step's error for a missing required secret."""
    prep = Prepared()
    try:
        for n, m in enumerate(mounts):
            target = _abs_target(m.target, workdir) if m.target else None
            if m.type == "tmpfs":
                from rootless.engine.mountspec import Mount

                prep.mounts.append(Mount("tmpfs", target, tmpfs_options=[f"size={m.size}"]
                                         if m.size else []))
            elif m.type == "cache":
                data = _cache_dir(prep, m, source_of, n)
                prep.mounts.append(_bind(data, target, m.readonly))
            elif m.type == "bind":
                where = _tmpdir(prep, "bind")
                src = source_of(m, n, where)
                prep.mounts.append(_bind(src, target, m.readonly))
            elif m.type == "secret":
                if m.id not in secrets:
                    if m.required:
                        raise inst.error(f"secret {m.id!r} is required but was not given",
                                         f"pass --secret id={m.id},src=FILE (or env=VAR)")
                    continue
                if m.env:
                    prep.env[m.env] = secrets[m.id].decode(errors="replace")
                if target:
                    d = _tmpdir(prep, "secret")
                    fd = os.open(os.path.join(d, "secret"), os.O_WRONLY | os.O_CREAT
                                 | os.O_EXCL | os.O_CLOEXEC, 0o600)
                    try:
                        os.write(fd, secrets[m.id])
                        os.fchmod(fd, m.mode)
                        _chown_fd(fd, m.uid, m.gid)
                    finally:
                        os.close(fd)
                    prep.mounts.append(_bind(os.path.join(d, "secret"), target, True))
            elif m.type == "ssh":
                sock = ssh.get(m.id)
                if sock is None:
                    if m.required:
                        raise inst.error(f"ssh agent {m.id!r} is required but was not given",
                                         f"pass --ssh {m.id}" + ("" if m.id == "default"
                                                                  else "=SOCKET"))
                    continue
                prep.mounts.append(_bind(sock, target))
                prep.env.setdefault("SSH_AUTH_SOCK", target)
            if target:
                prep.targets.append(target)
        return prep
    except BaseException:
        prep.close()
        raise


def script_file(prep: Prepared, name: str, text: str) -> str:
    """A heredoc's text as an executable file in a temporary dir of `prep`."""
    path = os.path.join(_tmpdir(prep, "heredoc"), "script")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o755)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def _cache_dir(prep: Prepared, m, source_of, n: int) -> str:
    root = cache_root()
    base = hashlib.sha256(m.id.encode()).hexdigest()[:32]
    rootfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i in range(64):
            name = base if i == 0 else f"{base}-{i}"
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=rootfd)
            from rootless.linux import safepath

            dfd = safepath.open_dir(rootfd, name)  # ours: the store is 0700
            lock = os.open("lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            how = fcntl.LOCK_SH if m.sharing == "shared" else fcntl.LOCK_EX
            try:
                fcntl.flock(lock, how | (fcntl.LOCK_NB if m.sharing == "private" else 0))
            except BlockingIOError:
                os.close(lock)
                os.close(dfd)
                continue
            prep._fds.append(lock)
            # one byte a use: its size is the usage count and its mtime the last use
            # (`rl system df -v`, `rl builder prune --filter until=`)
            os.lseek(lock, 0, os.SEEK_END)
            os.write(lock, b".")
            try:
                try:
                    os.mkdir("data", 0o700, dir_fd=dfd)
                    fresh = True
                except FileExistsError:
                    fresh = False
                if fresh:
                    # Made now, by us, and not yet seen by a container: apply the mount's
                    # mode and owner through the fd, then seed it.
                    fd = safepath.open_dir(dfd, "data")
                    try:
                        if m.from_ is not None:
                            source_of(m, n, str(root / name / "data"))
                        os.fchmod(fd, m.mode)
                        _chown_fd(fd, m.uid, m.gid)
                    finally:
                        os.close(fd)
                return str(root / name / "data")
            finally:
                os.close(dfd)
        raise RlError(f"cache mount {m.id!r}: 64 private instances are in use")
    finally:
        os.close(rootfd)


def remove_stubs(upper: str, targets: list[str], in_base) -> None:
    """Remove the mount points the runtime made in the container's upper dir for this
    step's mounts (empty files and dirs, and their parents it made), as BuildKit does: a
    secret's mount point must not appear in the layer. `in_base(path)` says whether the
    base image has the path (then it stays). The upper dir is the container's: opened by
    fd below `upper`, no symlink followed."""
    from rootless.linux import safepath

    try:
        ufd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        for target in sorted(set(targets), key=lambda t: -t.count("/")):
            path = target.strip("/")
            while path and not in_base("/" + path):
                parent, _, name = path.rpartition("/")
                try:
                    pfd = safepath.open_beneath(ufd, parent or ".",
                                                os.O_RDONLY | os.O_DIRECTORY)
                except OSError:
                    break
                try:
                    st = safepath.lstat_at(pfd, name)
                    if st is None:
                        pass
                    elif stat.S_ISDIR(st.st_mode):
                        try:
                            os.rmdir(name, dir_fd=pfd)  # only when empty
                        except OSError:
                            break
                    elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                        os.unlink(name, dir_fd=pfd)
                    else:
                        break
                finally:
                    os.close(pfd)
                path = parent
    finally:
        os.close(ufd)


def _instances(lock_flags: int):
    """(root fd, name, lock fd, whether a build holds it) for each cache-mount instance;
    one that no build holds is locked by us while the caller looks at it. Every fd is
    closed when the caller moves on."""
    from rootless.linux import safepath

    rootfd = os.open(cache_root(), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in sorted(os.listdir(rootfd)):
            try:
                dfd = safepath.open_dir(rootfd, name)
            except OSError:
                continue
            try:
                try:
                    lock = os.open("lock", lock_flags | os.O_CLOEXEC, 0o600, dir_fd=dfd)
                except OSError:
                    continue
                try:
                    try:
                        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        busy = False
                    except BlockingIOError:
                        busy = True
                    yield rootfd, name, lock, busy
                finally:
                    os.close(lock)
            finally:
                os.close(dfd)
    finally:
        os.close(rootfd)


def prune(before: float | None = None,
          chosen: Callable[[float], bool] | None = None) -> tuple[list[str], int]:
    """Remove every cache-mount instance no build holds (and, with `before`, none used
    since that time; with `chosen`, only those it accepts by their last use); returns the
    instances removed and the bytes freed."""
    from rootless.linux import safepath
    from rootless.runtime import userns

    root = cache_root()
    freed = 0
    removed: list[str] = []
    for rootfd, name, lock, busy in _instances(os.O_RDWR | os.O_CREAT):
        last = os.fstat(lock).st_mtime
        if busy or (before is not None and last >= before) or \
                (chosen is not None and not chosen(last)):
            continue  # a build uses it, or used it since `before`
        freed += size(root / name / "data")
        safepath.rmtree_at(rootfd, name)
        if safepath.lstat_at(rootfd, name) is not None:  # subordinate ids' files
            userns.rmtree(str(root / name))
        removed.append(name)
    return removed, freed


class CacheMount(NamedTuple):
    """A cache-mount instance as `rl system df` shows it."""
    name: str
    size: int  # bytes of its files
    last_used: float
    busy: bool  # a build holds it now
    uses: int
    created: float


def usage() -> list[CacheMount]:
    """Each cache-mount instance, for `rl system df`."""
    root = cache_root()
    out = []
    for rootfd, name, lock, busy in _instances(os.O_RDONLY):
        st = os.fstat(lock)
        # the instance's dir changed last when its lock and data were made
        made = os.stat(name, dir_fd=rootfd, follow_symlinks=False).st_mtime
        out.append(CacheMount(name, size(root / name / "data"), st.st_mtime, busy,
                              st.st_size, made))
    return out


def size(path) -> int:
    """Bytes of the regular files below `path`, read by fd (a container wrote the tree)."""
    from rootless.linux import safepath

    total = 0

    def walk(fd: int) -> None:
        nonlocal total
        for name, st in safepath.entries(fd):
            if stat.S_ISREG(st.st_mode):
                total += st.st_blocks * 512
            elif stat.S_ISDIR(st.st_mode):
                try:
                    sub = safepath.open_dir(fd, name)
                except OSError:
                    continue
                try:
                    walk(sub)
                finally:
                    os.close(sub)

    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        walk(fd)
    finally:
        os.close(fd)
    return total


# OCI architecture -> the names binfmt_misc entries for its emulator usually have
# (qemu-user-static, qemu-user-binfmt, binfmt-support, tonistiigi/binfmt)
_QEMU = {"arm64": ["aarch64"], "arm": ["arm"], "amd64": ["x86_64"], "386": ["i386"],
         "ppc64le": ["ppc64le"], "s390x": ["s390x"], "riscv64": ["riscv64"],
         "mips64le": ["mips64el"], "loong64": ["loongarch64"]}


def emulator_for(arch: str, binfmt: str = "/proc/sys/fs/binfmt_misc") -> str | None:
    """The enabled binfmt_misc interpreter that runs `arch` binaries here, or None. The
    kernel runs a foreign binary through it (as podman relies on it too)."""
    try:
        with open(os.path.join(binfmt, "status")) as f:
            if f.read().strip() != "enabled":
                return None
    except OSError:
        return None
    for name in _QEMU.get(arch, [arch]):
        for entry in (f"qemu-{name}", name):
            try:
                with open(os.path.join(binfmt, entry)) as f:
                    lines = f.read().splitlines()
            except OSError:
                continue
            if lines and lines[0] == "enabled":
                for line in lines:
                    if line.startswith("interpreter "):
                        return line.split(" ", 1)[1]
    return None


def check_runnable(image_config: dict, inst) -> None:
    """Refuse a RUN step of an image of a foreign architecture this host cannot run
    (no binfmt_misc emulator), with the reason, instead of an "exec format error"."""
    from rootless.image import manifest as mf

    _os, host_arch, _v = mf.host_platform()
    arch = image_config.get("architecture") or host_arch
    if arch == host_arch or (host_arch == "amd64" and arch == "386"):
        return
    if emulator_for(arch) is None:
        raise inst.error(f"RUN on linux/{arch}: this host is linux/{host_arch} and has no "
                         f"emulator for {arch} registered in binfmt_misc",
                         "install qemu-user-static (or qemu-user-binfmt), or build for "
                         f"linux/{host_arch}")


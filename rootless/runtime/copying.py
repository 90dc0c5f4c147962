"""`rl cp`: files between a running container and the host, safe against symlinks.

The container side is read or written by a child that has joined the container's user and
mount namespaces: its root is the container's root, so every symlink, absolute or `..`,
resolves inside the container, as it would for a process of the container. The two sides
talk through a tar stream on a pipe. The host side never trusts that stream: members with
absolute paths or `..`, links leaving the destination, device nodes, and writes through a
symlink are refused (Python 3.11.2 lacks tarfile's extraction filters, hence this code).
And the host side never trusts its own tree either when a container can write it (a
bind-mounted directory): it reads and writes by directory fd (rootless/linux/safepath.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tarfile

from rootless.errors import InvalidArgument, NotFound, RlError
from rootless.runtime import join


class ContainerChild:
    """A child running a function in the container (child_in_container). What it finds
    wrong there comes back on a pipe of its own and is the one error `wait` raises: its
    stderr stays quiet, so no second, generic line follows the child's own."""

    def __init__(self, pid: int, said_r: int) -> None:
        self.pid = pid
        self._said_r = said_r

    def wait(self, what: str) -> None:
        """Wait for the child; when it failed, raise the error it said (the RlError kind
        its function raised, e.g. NotFound), else `what` with its words, else `what`."""
        code = wait_child(self.pid)
        # it wrote (one write, before it exited) or not: never wait for more, a server
        # it forked may still hold the pipe's other end
        os.set_blocking(self._said_r, False)
        try:
            said = os.read(self._said_r, _SAID_MAX).decode(errors="replace")
        except BlockingIOError:
            said = ""
        finally:
            os.close(self._said_r)
        if code == 0:
            return
        kind, _, message = said.partition("\n")
        if kind in _KINDS and message:
            raise _KINDS[kind](message)
        raise RlError(f"{what}: {message}" if message else what)


_SAID_MAX = 4096  # one write up to PIPE_BUF is atomic
_KINDS = {cls.__name__: cls for cls in (RlError, InvalidArgument, NotFound)}


def _say(said_w: int, exc: BaseException) -> None:
    """In the child: `exc` as the one error its parent raises (ContainerChild.wait)."""
    if isinstance(exc, RlError) and type(exc).__name__ in _KINDS:
        kind, message = type(exc).__name__, str(exc)
    else:
        kind, message = "", str(exc) or type(exc).__name__
    data = f"{kind}\n{message}".encode(errors="replace")[:_SAID_MAX]
    try:
        os.write(said_w, data)
    except OSError:
        pass


def child_in_container(target, fn) -> ContainerChild:
    """Fork a child that runs fn() with the container's root as its root: joining the
    running container (target: its pid 1) or, for a stopped one (target: a RootfsSpec),
    mounting its root filesystem in a user and mount namespace of its own. fn returns an
    exit code or raises (an RlError subclass for what the user should read); the caller
    waits with `.wait(what)`, which raises what the child said."""
    said_r, said_w = os.pipe()
    try:
        if not isinstance(target, int):
            pid = _child_in_rootfs(target, fn, said_w)
        else:
            pid = _child_in_ns(target, fn, said_w)
    except BaseException:
        os.close(said_r)
        raise
    finally:
        os.close(said_w)
    return ContainerChild(pid, said_r)


def _child_in_ns(pid: int, fn, said_w: int) -> int:
    nsfds = join.open_namespaces(pid, kinds={"user", "mnt"})
    child = os.fork()
    if child == 0:
        code = 1
        try:
            from rootless.linux import syscalls as sc

            sc.prctl(sc.PR_SET_DUMPABLE, 0)
            # No name lookups inside the container: getpwuid() would load NSS modules
            # from the container's filesystem into this process.
            tarfile.pwd = tarfile.grp = None
            join.enter(nsfds)
            code = fn()
        except BaseException as exc:
            try:
                _say(said_w, exc)
            finally:
                os._exit(1)
        os._exit(code or 0)
    for fd, _ in nsfds:
        os.close(fd)
    return child


def _child_in_rootfs(rfs, fn, said_w: int) -> int:
    from rootless.runtime import userns

    child = os.fork()
    if child == 0:
        code = 1
        try:
            def inner() -> int:
                from rootless.linux import syscalls as sc
                from rootless.runtime import rootfs

                sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
                server = rootfs.Server(rfs.backend)
                server.prestart(fork=True)
                server.mount(rfs)
                try:
                    worker = os.fork()
                    if worker == 0:
                        rc = 1
                        try:
                            tarfile.pwd = tarfile.grp = None  # see _child_in_ns
                            os.chroot(rfs.mountpoint)
                            os.chdir("/")
                            rc = fn() or 0
                        except BaseException as exc:
                            _say(said_w, exc)
                        finally:
                            os._exit(rc)
                    _, status = os.waitpid(worker, 0)
                    return os.waitstatus_to_exitcode(status)
                finally:
                    server.stop(rfs)

            try:
                code = userns.run_in_userns(inner)
            except userns.ChildFailed as exc:  # inner() raised: as before, exit 125
                _say(said_w, exc)
                code = 125
        except BaseException as exc:
            try:
                _say(said_w, exc)
            finally:
                os._exit(1)
        os._exit(code)
    return child


def wait_child(child: int) -> int:
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status)


def copy_out(pid, src: str, dest: str | None, *, follow: bool = False,
             out_fd: int | None = None) -> None:
    """`dest` on the host, or with `out_fd` (`rl cp CONTAINER:SRC -`) the tar stream
    itself written there. `follow` (-L): a symlink at SRC is followed, inside the
    container (the producer's root is the container's), as Docker's daemon does."""
    if out_fd is not None:
        with os.fdopen(out_fd, "wb", closefd=False) as out:
            tar_out(pid, src, out, follow=follow)
        return
    r, w = os.pipe()
    child = child_in_container(pid, _tar_producer(src, follow, r, w))
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            try:
                tar = tarfile.open(fileobj=f, mode="r|")
            except tarfile.ReadError:
                tar = None
            if tar is not None:
                with tar:
                    _safe_extract(tar, dest)
    except BaseException:
        with contextlib.suppress(RlError):
            child.wait("")  # reaped; what the host found wrong is the error
        raise
    child.wait(f"copying {src} out of the container failed")


def _target(dest: str, first_name: str) -> tuple[str, str | None]:
    """Docker's rule: into an existing dir keep the name; otherwise take dest's name."""
    if os.path.isdir(dest):
        return dest, None
    parent = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        raise InvalidArgument(f"{parent} does not exist on the host")
    return parent, os.path.basename(os.path.abspath(dest))


def _safe_extract(tar: tarfile.TarFile, dest: str) -> None:
    """Extract the container's tar below `dest`. `dest` is the user's path (resolved as
    given); below it everything is done by directory fd with openat2(RESOLVE_BENEATH |
    RESOLVE_NO_SYMLINKS): `dest` may be a directory a container has mounted and is
    changing right now, so a symlink found in the way is an error, never followed."""
    base_fd = -1
    rename = None
    try:
        for m in tar:
            parts = [p for p in m.name.split("/") if p not in ("", ".")]
            if m.name.startswith("/") or ".." in parts or not parts:
                raise RlError(f"refusing archive member {m.name!r}")
            if base_fd < 0:
                base, rename = _target(dest, parts[0])
                base_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            if rename is not None:
                parts[0] = rename
            pfd = _open_parent(base_fd, parts, dest)
            try:
                _extract_one(tar, m, pfd, parts, base_fd, rename, dest)
            finally:
                os.close(pfd)
    finally:
        if base_fd >= 0:
            os.close(base_fd)


def _open_parent(base_fd: int, parts: list[str], dest: str) -> int:
    from rootless.linux import safepath

    try:
        return safepath.open_beneath(base_fd, "/".join(parts[:-1]),
                                     os.O_RDONLY | os.O_DIRECTORY)
    except (safepath.Escape, FileNotFoundError):
        raise RlError(f"refusing to write through {os.path.join(dest, *parts[:-1])}: not a "
                      "directory (a symbolic link?)") from None


def _extract_one(tar, m, pfd: int, parts: list[str], base_fd: int, rename, dest) -> None:
    from rootless.linux import safepath

    leaf, shown = parts[-1], os.path.join(dest, *parts)
    st = safepath.lstat_at(pfd, leaf)
    if st is not None and not (m.isdir() and stat.S_ISDIR(st.st_mode)):
        if stat.S_ISDIR(st.st_mode):
            raise RlError(f"{shown} is a directory")
        os.unlink(leaf, dir_fd=pfd)  # a symlink there is removed, not written through
    mode = m.mode & 0o777
    if m.isdir():
        try:
            os.mkdir(leaf, 0o700, dir_fd=pfd)
        except FileExistsError:
            pass
        try:
            fd = safepath.open_dir(pfd, leaf)
        except safepath.Escape:
            raise RlError(f"refusing to write through {shown}: not a directory") from None
        try:
            os.fchmod(fd, mode | stat.S_IRWXU)
        finally:
            os.close(fd)
    elif m.isfile():
        src = tar.extractfile(m)
        fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode, dir_fd=pfd)
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    elif m.issym():
        os.symlink(m.linkname, leaf, dir_fd=pfd)
    elif m.islnk():
        lparts = [p for p in m.linkname.split("/") if p not in ("", ".")]
        if m.linkname.startswith("/") or ".." in lparts or not lparts:
            raise RlError(f"refusing hard link {m.name!r} -> {m.linkname!r}")
        if rename is not None:
            lparts[0] = rename
        tfd = _open_parent(base_fd, lparts, dest)
        try:
            tst = safepath.lstat_at(tfd, lparts[-1])
            if tst is None or not stat.S_ISREG(tst.st_mode):
                raise RlError(f"refusing hard link to {m.linkname!r}: not a regular file")
            os.link(lparts[-1], leaf, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)
    # device nodes and fifos from a container are skipped on the host


def copy_in(pid, src: str | None, dest: str, *, archive: bool = False,
            follow: bool = False, in_fd: int | None = None) -> None:
    """Copy the host's `src` (or with `in_fd`, `rl cp - CONTAINER:DIR`, a tar stream read
    there, extracted into the directory `dest`). As Docker's: what is copied in belongs to
    root unless `archive` (-a) keeps the source's uid/gid; `follow` (-L) follows a
    symlink at `src` on the host (the user's own path)."""
    if in_fd is None and not os.path.lexists(src):
        raise InvalidArgument(f"{src} does not exist on the host")
    arcname = None
    if in_fd is None and follow and os.path.islink(src):
        arcname = os.path.basename(os.path.abspath(src))
        src = os.path.realpath(src)
        if not os.path.exists(src):
            raise InvalidArgument(f"{arcname} is a symbolic link to {src}, which does not "
                                  "exist on the host")
    r, w = os.pipe()

    def consume() -> int:
        os.close(w)
        target = dest
        name = arcname or os.path.basename(os.path.abspath(src or "-"))
        if in_fd is not None and not os.path.isdir(target):
            raise InvalidArgument(f"{target} is not a directory in the container (a tar "
                                  "stream is extracted into a directory)")
        if os.path.isdir(target):
            into, rename = target, None
        else:
            into, rename = os.path.dirname(target) or "/", os.path.basename(target)
            if not os.path.isdir(into):
                raise InvalidArgument(f"{into} does not exist in the container")
        with os.fdopen(r, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tar:
            for m in tar:
                if rename is not None:
                    first, _, rest = m.name.partition("/")
                    if first == name:
                        m.name = rename + ("/" + rest if rest else "")
                    if m.islnk():
                        first, _, rest = m.linkname.partition("/")
                        if first == name:
                            m.linkname = rename + ("/" + rest if rest else "")
                if in_fd is not None and not archive:
                    m.uid = m.gid = 0  # Docker's: root's, unless -a
                tar.extract(m, into, set_attrs=True, numeric_owner=True)
        return 0

    child = child_in_container(pid, consume)
    os.close(r)
    err = None
    if in_fd is not None:
        what = "copying the tar stream into the container failed"
        try:
            with os.fdopen(w, "wb") as out:
                while chunk := os.read(in_fd, 1 << 16):
                    out.write(chunk)
        except BrokenPipeError as exc:
            err = exc
        child.wait(what)
        if err is not None:
            raise RlError(what)
        return
    try:
        # src is the user's path; below it we read by fd, never through a symlink: it may
        # be a directory a container has mounted and is changing right now
        from rootless.image import layertar

        parent, base = os.path.split(os.path.abspath(src))
        pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            with os.fdopen(w, "wb") as out, tarfile.open(fileobj=out, mode="w|",
                                                         format=tarfile.PAX_FORMAT) as tar:
                layertar.write_tree(tar, pfd, base, arcname or base,
                                    owner=None if archive else (0, 0))
        finally:
            os.close(pfd)
    except BrokenPipeError as exc:
        err = exc
    except BaseException:
        with contextlib.suppress(RlError):
            child.wait("")  # reaped; what the host found wrong is the error
        raise
    child.wait(f"copying {src} into the container failed")
    if err is not None:
        raise RlError(f"copying {src} into the container failed")


# -- the Docker API's archive endpoints: tar streams, not host paths --------------------------
# Both sides of these are in the container (its root is the child's root, as for `rl cp`),
# so a symlink in the container resolves inside it; the host only moves bytes.

def stat_in(target, path: str) -> dict | None:
    """lstat of `path` in the container, Docker's container-path-stat shape (name, size,
    mode as Go's os.FileMode bits, mtime, linkTarget), or None when it does not exist."""
    import json

    r, w = os.pipe()

    def probe() -> int:
        os.close(r)
        try:
            st = os.lstat(path)
        except OSError:
            os.write(w, b"null")
            return 0
        link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
        doc = {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size,
               "mode": _go_mode(st.st_mode), "mtime": st.st_mtime, "linkTarget": link}
        os.write(w, json.dumps(doc).encode())
        return 0

    child = child_in_container(target, probe)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    child.wait(f"cannot look at {path} in the container")
    doc = json.loads(data or b"null")
    if doc is not None:
        from datetime import UTC, datetime

        doc["mtime"] = datetime.fromtimestamp(doc["mtime"], UTC).isoformat()
    return doc


def _go_mode(mode: int) -> int:
    """st_mode as Go's os.FileMode (type bits high, permissions low), as Docker sends."""
    bits = mode & 0o777
    kinds = {stat.S_IFDIR: 1 << 31, stat.S_IFLNK: 1 << 27, stat.S_IFIFO: 1 << 25,
             stat.S_IFSOCK: 1 << 24, stat.S_IFCHR: (1 << 26) | (1 << 21),
             stat.S_IFBLK: 1 << 26}
    bits |= kinds.get(stat.S_IFMT(mode), 0)
    if mode & stat.S_ISUID:
        bits |= 1 << 23
    if mode & stat.S_ISGID:
        bits |= 1 << 22
    if mode & stat.S_ISVTX:
        bits |= 1 << 20
    return bits


def _tar_producer(src: str, follow: bool, r: int, w: int):
    """In the container (its root is the child's root): a tar of `src`, named by its base
    name as `docker cp` does, written to the pipe `w`; with `follow`, a symlink at `src`
    is followed there (it resolves inside the container)."""
    def produce() -> int:
        os.close(r)
        path = src
        try:
            os.lstat(src)
            if follow:
                path = os.path.realpath(src)  # our root is the container's: it stays there
                os.lstat(path)
        except OSError as exc:
            kind = NotFound if exc.errno == errno.ENOENT else InvalidArgument
            raise kind(f"{src}: {exc.strerror} in the container") from None
        with os.fdopen(w, "wb") as pipe, tarfile.open(fileobj=pipe, mode="w|",
                                                      format=tarfile.PAX_FORMAT) as tar:
            tar.add(path, arcname=os.path.basename(src.rstrip("/")) or ".")
        return 0

    return produce


def tar_out(target, path: str, out, *, follow: bool = False) -> None:
    """A tar of `path` in the container (named by its base name, as `docker cp`) written
    to `out` (a binary file object the caller owns and closes)."""
    r, w = os.pipe()
    child = child_in_container(target, _tar_producer(path, follow, r, w))
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            while chunk := f.read(1 << 20):
                out.write(chunk)
    except BaseException:
        with contextlib.suppress(RlError):
            child.wait("")  # reaped; what went wrong here is the error
        raise
    child.wait(f"copying {path} out of the container failed")


def untar_in(target, dest: str, tar_path: str) -> None:
    """Extract the tar file `tar_path` (on the host, the caller's) into the directory
    `dest` of the container. The extraction runs in the container: names with `..` and
    symlinks in the tar resolve below the container's root, never on the host."""
    fd = os.open(tar_path, os.O_RDONLY | os.O_CLOEXEC)

    def consume() -> int:
        if not os.path.isdir(dest):
            raise InvalidArgument(f"{dest}: not a directory in the container")
        with os.fdopen(fd, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for m in tar:
                tar.extract(m, dest, set_attrs=True, numeric_owner=True)
        return 0

    try:
        child = child_in_container(target, consume)
    finally:
        os.close(fd)
    child.wait(f"copying into {dest} in the container failed")


def extract_untrusted(tar_path: str, dest: str) -> None:
    """Extract a tar (maybe compressed) someone sent (a build context of the API) into
    the existing directory `dest`, with `rl cp`'s checks: no absolute names or `..`, no
    writes through symlinks, no device nodes."""
    with tarfile.open(tar_path, mode="r|*") as tar:
        _safe_extract(tar, dest)

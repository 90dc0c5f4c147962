"""Unpack one layer tar into a directory, as a plain user, safely against hostile tars.

Every path is resolved component by component from a directory file descriptor with
O_NOFOLLOW (openat-style), never by string checks on joined paths, so no entry can reach
outside the layer directory, whatever its name, its link target or the symlinks unpacked
before it:
- names are cleaned lexically (`a/./b`, `//x`); an absolute name is relative to the layer
  root (OCI, Docker); a `..` that would climb above the root is an escape: the layer is
  refused, as Docker refuses it;
- a symlink met while resolving a parent directory is followed *inside* the layer root (as
  Docker's chrooted unpacking does): an absolute target restarts at the root, `..` above
  the root is an escape, more than 40 links is an error;
- symlink entries are stored verbatim and never followed by us; hardlink targets are
  resolved the same way, inside the root, and must exist;
- duplicate entries replace what is there (a directory over a directory keeps it).

What the disk cannot hold as a plain user is recorded per fuse_overlay/metadata.py: the
xattr user.containers.override_stat ("uid:gid:mode[:type]") on every entry except symlinks
(Linux refuses user xattrs on symlinks). Device nodes and fifos become empty regular files
whose type is in the xattr. setuid/setgid/sticky and world-writable bits live only in the
xattr: the host file gets `(mode & 0755) | 0600` and directories 0755, so the user can always
read the store and delete it. Whiteouts stay `.wh.NAME` / `.wh..wh..opq` entries. The image's
own xattrs: `user.*` as they are, others (security.capability, ...) under
`user.containers.override_<name>`, the prefix fuse-overlayfs uses for the same purpose.

The tar stream is parsed by store/tarstream.py (ustar, PAX, GNU long names, as Go's
archive/tar reads them; see there why not tarfile); the extraction is ours because
tarfile's extraction filters are string based and drop setuid bits that images need.
"""

from __future__ import annotations

import base64
import errno
import os
import shutil
import stat
from dataclasses import dataclass

from fuse_overlay.metadata import (
    OPAQUE_MARKER,
    OVERRIDE_XATTR,
    WHITEOUT_PREFIX,
    Override,
)
from rootless.errors import RlError
from rootless.store.blobs import write_all
from rootless.store.tarstream import Entry, TarFormatError, TarReader, open_stream

XATTR_OVERRIDE_PREFIX = "user.containers.override_"
MAX_SYMLINKS = 40
COPY_CHUNK = 1 << 20
MAX_TIME_NS = 2**63 - 1  # the last instant Go's time (and so Docker) can apply to a file
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnpackError(RlError):
    """The layer tar is malformed or tries to reach outside its directory."""


def disk_file_mode(mode: int) -> int:
    return (mode & 0o755) | 0o600


DISK_DIR_MODE = 0o755


def clean(name: str) -> list[str]:
    """Lexical clean of a tar name into components; raises on an escape via `..`."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnpackError(f"entry {name!r} points outside the layer")
            parts.pop()
            continue
        parts.append(part)
    return parts


@dataclass
class UnpackStats:
    entries: int = 0
    bytes: int = 0  # regular file content


class _Unpacker:
    """Unpacks into a store layer: owners, modes and types in the override xattr."""

    # a symlink met in a parent is followed inside the root (a layer's `lib -> usr/lib`)
    follow_links = True

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.cache_key: tuple[str, ...] | None = None
        self.cache_fd = -1
        self.dirs: list[tuple[list[str], int]] = []  # (components, mtime ns) set at the end
        self.dir_infos: dict[tuple[str, ...], _DirMeta] = {}  # _RealUnpacker's
        self.stats = UnpackStats()
        self._buf: bytearray | None = None  # for files larger than COPY_CHUNK

    # -- resolution inside the root --

    def _drop_cache(self) -> None:
        if self.cache_fd >= 0:
            os.close(self.cache_fd)
        self.cache_key, self.cache_fd = None, -1

    def resolve_dir(self, comps: list[str], create: bool = True) -> int:
        """An fd (the caller must not close it) of the directory at `comps` inside the root,
        following symlinks inside the root; missing directories are made when `create`."""
        key = tuple(comps)
        if key == self.cache_key:
            return self.cache_fd
        fds = [os.dup(self.root_fd)]
        todo = list(comps)
        links = 0
        try:
            while todo:
                part = todo.pop(0)
                if part in ("", "."):
                    continue
                if part == "..":
                    if len(fds) == 1:
                        raise UnpackError(f"path {'/'.join(comps)!r} leads outside the layer")
                    os.close(fds.pop())
                    continue
                cur = fds[-1]
                try:
                    fd = os.open(part, _DIR_FLAGS, dir_fd=cur)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, DISK_DIR_MODE, dir_fd=cur)
                    fd = os.open(part, _DIR_FLAGS, dir_fd=cur)
                    self._implicit_dir(fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    st = os.stat(part, dir_fd=cur, follow_symlinks=False)
                    if not stat.S_ISLNK(st.st_mode):
                        raise UnpackError(f"path {'/'.join(comps)!r}: {part!r} is not a "
                                          "directory") from None
                    if not self.follow_links:
                        raise UnpackError(f"path {'/'.join(comps)!r}: {part!r} is a "
                                          "symbolic link; refusing to write through it"
                                          ) from None
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise UnpackError(f"path {'/'.join(comps)!r}: too many levels of "
                                          "symbolic links") from None
                    target = os.readlink(part, dir_fd=cur)
                    if target.startswith("/"):
                        for extra in fds[1:]:
                            os.close(extra)
                        del fds[1:]
                    todo = target.split("/") + todo
                    continue
                fds.append(fd)
            result = fds.pop()
        finally:
            for fd in fds:
                os.close(fd)
        self._drop_cache()
        self.cache_key, self.cache_fd = key, result
        return result

    def _remove_existing(self, parent: int, leaf: str, keep_dir: bool) -> bool:
        """Remove `leaf` if present; True when an existing directory was kept."""
        try:
            st = os.stat(leaf, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        # `parent` is the cached directory itself, not one below `leaf`: removing `leaf`
        # leaves the cache valid.
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(leaf, dir_fd=parent)
        else:
            os.unlink(leaf, dir_fd=parent)
        return False

    # -- metadata --

    _encoded: dict[tuple[int, int, int], bytes] = {}  # a layer repeats a few owners+modes

    def _override(self, info: Entry, ftype: int | None = None, rdev: int = 0) -> bytes:
        if ftype is None:
            key = (info.uid, info.gid, info.mode & 0o7777)
            raw = self._encoded.get(key)
            if raw is None:
                raw = Override(*key).encode()
                if len(self._encoded) < 4096:
                    self._encoded[key] = raw
            return raw
        return Override(info.uid, info.gid, info.mode & 0o7777, ftype, rdev).encode()

    @staticmethod
    def _xattrs(info: Entry) -> list[tuple[str, bytes]]:
        out = []
        for key, value in info.pax_headers.items():  # raw bytes values (tarstream)
            if key.startswith("SCHILY.xattr."):
                name = key[len("SCHILY.xattr."):]
                raw = value
            elif key.startswith("LIBARCHIVE.xattr."):
                name = key[len("LIBARCHIVE.xattr."):]
                try:
                    raw = base64.b64decode(value + b"=" * (-len(value) % 4))
                except ValueError:
                    continue
            else:
                continue
            if name == OVERRIDE_XATTR or name.startswith(XATTR_OVERRIDE_PREFIX):
                continue  # ours to write; an image must not forge them
            if not name.startswith("user."):
                name = XATTR_OVERRIDE_PREFIX + name
            out.append((name, raw))
        return out

    def _finish(self, fd: int, info: Entry, override: bytes) -> None:
        for name, value in self._xattrs(info):
            os.setxattr(fd, name, value)
        os.setxattr(fd, OVERRIDE_XATTR, override)

    @staticmethod
    def _mtime_ns(info: Entry) -> int:
        """The entry's time in ns, as Docker applies it (moby's system.Chtimes): a time
        before the epoch or after 2**63-1 ns (the year 2262), or not a number at all (a
        PAX mtime of nan, inf, 1e19, -1e18), becomes the epoch. os.utime would otherwise
        raise OverflowError for some of these and the kernel silently cut others."""
        mtime = info.mtime
        try:
            ns = (mtime * 1_000_000_000 if isinstance(mtime, int)
                  else int(float(mtime) * 1_000_000_000))
        except (TypeError, ValueError, OverflowError):
            return 0
        return ns if 0 <= ns <= MAX_TIME_NS else 0

    # -- entries --

    def entry(self, tar: TarReader, info: Entry) -> None:
        comps = clean(info.name)
        self.stats.entries += 1
        if not comps:  # the layer root itself ("./")
            if info.isdir():
                self._dir_meta(self.root_fd, info)
                self.dirs.append(([], self._mtime_ns(info)))
                self._remember_dir((), info)
            return
        leaf = comps[-1]
        if leaf.startswith(WHITEOUT_PREFIX) and leaf != OPAQUE_MARKER:
            hidden = leaf[len(WHITEOUT_PREFIX):]
            if hidden in ("", ".", ".."):
                raise UnpackError(f"entry {info.name!r} is a whiteout of an invalid name")
        parent = self.resolve_dir(comps[:-1])
        ns = self._mtime_ns(info)
        if info.isdir():
            kept = self._remove_existing(parent, leaf, keep_dir=True)
            if not kept:
                os.mkdir(leaf, DISK_DIR_MODE, dir_fd=parent)
            fd = os.open(leaf, _DIR_FLAGS, dir_fd=parent)
            try:
                self._dir_meta(fd, info)
            finally:
                os.close(fd)
            self.dirs.append((comps, ns))
            self._remember_dir(tuple(comps), info)
            return
        if info.islnk():
            self._hardlink(parent, leaf, info)
            return
        if info.isreg():  # the most common entry: no stat(2) first (see _new_file)
            self._regular(tar, parent, leaf, info, ns)
            return
        self._remove_existing(parent, leaf, keep_dir=False)
        if info.issym():
            os.symlink(info.linkname, leaf, dir_fd=parent)
            self._link_meta(parent, leaf, info)
            os.utime(leaf, ns=(ns, ns), dir_fd=parent, follow_symlinks=False)
            return
        if info.ischr() or info.isblk() or info.isfifo():
            self._special(parent, leaf, info, ns)
            return
        raise UnpackError(f"entry {info.name!r} has unsupported tar type {info.typechar!r}")

    # -- what the store records (the override xattr) and what a volume gets (the real
    #    owners and modes, _RealUnpacker) --

    def _dir_meta(self, fd: int, info: Entry) -> None:
        os.chmod(fd, DISK_DIR_MODE)
        self._finish(fd, info, self._override(info))

    def _file_meta(self, fd: int, info: Entry) -> None:
        os.fchmod(fd, disk_file_mode(info.mode))
        self._finish(fd, info, self._override(info))

    def _link_meta(self, parent: int, leaf: str, info: Entry) -> None:
        pass  # Linux refuses user xattrs on symlinks; fuse_overlay shows them as root's

    def _dir_final(self, fd: int, comps: list[str]) -> None:
        pass

    def _remember_dir(self, comps: tuple, info: Entry) -> None:
        """What _dir_final needs of a directory's entry (nothing here: the store keeps a
        directory's metadata in its override xattr at once)."""

    @staticmethod
    def _implicit_dir(fd: int) -> None:
        """A parent directory the tar does not list, made on the way."""
        os.setxattr(fd, OVERRIDE_XATTR, Override(0, 0, 0o755).encode())

    def _special(self, parent: int, leaf: str, info: Entry, ns: int) -> None:
        if info.isfifo():
            ftype, rdev = stat.S_IFIFO, 0
        else:
            ftype = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
            rdev = os.makedev(info.devmajor, info.devminor)
        fd = self._create(parent, leaf)
        try:
            self._finish(fd, info, self._override(info, ftype, rdev))
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    @staticmethod
    def _create(parent: int, leaf: str) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(leaf, flags, 0o600, dir_fd=parent)

    # the creating process's umask (unpack_tar reads it): when it takes no bit of a file's
    # disk mode, the mode given to open(2) is the file's and no fchmod(2) follows
    umask = 0o777

    def _new_file_mode(self, info: Entry) -> int:
        return disk_file_mode(info.mode)

    def _new_file(self, parent: int, leaf: str, info: Entry) -> int:
        """Create the regular file of `info`, replacing what its name holds: one open(2)
        when the name is free (an exclusive create, so nothing is followed either)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        mode = self._new_file_mode(info)
        try:
            return os.open(leaf, flags, mode, dir_fd=parent)
        except FileExistsError:
            self._remove_existing(parent, leaf, keep_dir=False)
            return os.open(leaf, flags, mode, dir_fd=parent)

    def _regular_meta(self, fd: int, info: Entry) -> None:
        mode = disk_file_mode(info.mode)
        if mode & self.umask:
            os.fchmod(fd, mode)
        self._finish(fd, info, self._override(info))

    def _regular(self, tar: TarReader, parent: int, leaf: str, info: Entry,
                 ns: int) -> None:
        fd = self._new_file(parent, leaf, info)
        try:
            size = info.size
            if info.sparse is not None:
                self._sparse_data(tar, fd, info)
            elif 0 < size <= COPY_CHUNK:  # most files: one read, one write
                write_all(fd, tar.read_data(size))
            elif size:
                if self._buf is None:
                    self._buf = bytearray(COPY_CHUNK)
                view = memoryview(self._buf)
                while n := tar.readinto_data(view):
                    write_all(fd, view[:n])
            self.stats.bytes += size
            self._regular_meta(fd, info)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)

    def _sparse_data(self, tar: TarReader, fd: int, info: Entry) -> None:
        """A sparse file's segments where they belong; the holes stay holes (a hostile
        size costs no disk, and one past what the filesystem holds is EFBIG)."""
        if self._buf is None:
            self._buf = bytearray(COPY_CHUNK)
        view = memoryview(self._buf)
        for offset, length in info.sparse:
            while length > 0:
                n = tar.readinto_data(view[:min(length, COPY_CHUNK)])
                if not n:
                    raise UnpackError(f"entry {info.name!r}: the tar ends inside the file")
                done = 0
                while done < n:
                    done += os.pwrite(fd, view[done:n], offset + done)
                offset += n
                length -= n
        os.ftruncate(fd, info.size)

    def _hardlink(self, parent: int, leaf: str, info: Entry) -> None:
        target = clean(info.linkname)
        if not target:
            raise UnpackError(f"hardlink {info.name!r} has no target")
        # Resolve the target first: replacing `leaf` may drop the cached parent fd.
        tparent = os.dup(self.resolve_dir(target[:-1], create=False))
        try:
            try:
                st = os.stat(target[-1], dir_fd=tparent, follow_symlinks=False)
            except FileNotFoundError:
                raise UnpackError(f"hardlink {info.name!r}: target {info.linkname!r} is not "
                                  "in the layer") from None
            if stat.S_ISDIR(st.st_mode):
                raise UnpackError(f"hardlink {info.name!r}: target {info.linkname!r} is a "
                                  "directory")
            parent = self.resolve_dir(clean(info.name)[:-1])
            try:
                existing = os.stat(leaf, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                existing = None
            if existing is not None and (existing.st_dev, existing.st_ino) == (st.st_dev,
                                                                               st.st_ino):
                return  # already that very file
            if existing is not None:
                self._remove_existing(parent, leaf, keep_dir=False)
                parent = self.resolve_dir(clean(info.name)[:-1])
            os.link(target[-1], leaf, src_dir_fd=tparent, dst_dir_fd=parent,
                    follow_symlinks=False)
        finally:
            os.close(tparent)

    def finish_dirs(self) -> None:
        """Directory times last: creating entries inside them changes them."""
        self._drop_cache()
        for comps, ns in reversed(self.dirs):
            try:
                fd = self.resolve_dir(comps, create=False) if comps else self.root_fd
                self._dir_final(fd, comps)
                os.utime(fd, ns=(ns, ns))
            except (OSError, UnpackError):
                continue
        self._drop_cache()

    def close(self) -> None:
        self._drop_cache()


class _DirMeta:
    __slots__ = ("gid", "mode", "uid")

    def __init__(self, uid: int, gid: int, mode: int) -> None:
        self.uid, self.gid, self.mode = uid, gid, mode


class _RealUnpacker(_Unpacker):
    """Unpacks into a volume, as root of the user namespace: the tar's numeric owners and
    full modes on the files themselves, fifos as fifos, device nodes refused, and no
    symlink followed in a parent (a container may have planted it there)."""

    follow_links = False

    @staticmethod
    def _implicit_dir(fd: int) -> None:
        pass  # root's (the user's), 0755 as made

    def _dir_meta(self, fd: int, info: Entry) -> None:
        pass  # owner and mode at the end: a 0555 directory must still take entries

    def _remember_dir(self, comps: tuple, info: Entry) -> None:
        # the owner and mode only: a whole Entry holds its PAX headers (up to 1 MiB each),
        # and a hostile layer of many directories would keep them all
        self.dir_infos[comps] = _DirMeta(info.uid, info.gid, info.mode)

    def _dir_final(self, fd: int, comps: list[str]) -> None:
        info = self.dir_infos.get(tuple(comps))
        if info is not None:
            self._file_meta(fd, info)

    def _new_file_mode(self, info: Entry) -> int:
        return 0o600  # the tar's mode comes after the chown

    def _regular_meta(self, fd: int, info: Entry) -> None:
        self._file_meta(fd, info)

    def _file_meta(self, fd: int, info: Entry) -> None:
        try:
            os.fchown(fd, info.uid, info.gid)
        except OSError as exc:  # an id outside the maps: keep root's
            if exc.errno != errno.EINVAL:
                raise
        os.fchmod(fd, info.mode & 0o7777)  # after chown, which clears setuid bits

    def _link_meta(self, parent: int, leaf: str, info: Entry) -> None:
        try:
            os.chown(leaf, info.uid, info.gid, dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise

    def _special(self, parent: int, leaf: str, info: Entry, ns: int) -> None:
        if not info.isfifo():
            raise UnpackError(f"entry {info.name!r}: device nodes are not allowed here")
        os.mkfifo(leaf, 0o600, dir_fd=parent)
        fd = os.open(leaf, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent)
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                raise UnpackError(f"entry {info.name!r} changed while it was unpacked")
            self._file_meta(fd, info)
            os.utime(fd, ns=(ns, ns))
        finally:
            os.close(fd)


def _umask() -> int:
    """This process's umask, read without changing it (os.umask would, for every thread);
    all bits when it cannot be read."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777


def unpack_tar(fileobj, root: str | os.PathLike, *, real_owners: bool = False,
               tar_mode: str = "r|") -> UnpackStats:
    """Unpack the tar stream `fileobj` into the existing, empty directory `root`.

    With `real_owners` (a volume, unpacked as root of the user namespace into a tree a
    container may be changing meanwhile) the tar's owners and modes go on the files, and a
    symlink in a parent is refused instead of followed inside the root; `root` need not be
    empty. `tar_mode` "r|*" reads a compressed stream too (gzip, bzip2, xz, zstd).

    Reads the stream only up to the tar's end-of-archive marker; the caller drains the rest
    (and checks digests). Raises UnpackError (an RlError) for a malformed or hostile tar and
    OSError for host trouble (ENOSPC, ...); either way `root` is left half-filled and the
    caller deletes it.
    """
    root_fd = os.open(root, _DIR_FLAGS)
    unpacker = (_RealUnpacker if real_owners else _Unpacker)(root_fd)
    unpacker.umask = _umask()
    try:
        if not real_owners:
            os.chmod(root_fd, DISK_DIR_MODE)
            os.setxattr(root_fd, OVERRIDE_XATTR, Override(0, 0, 0o755).encode())
        tar = TarReader(open_stream(fileobj, compressed=tar_mode == "r|*"))
        try:
            for info in tar:
                try:
                    unpacker.entry(tar, info)
                except UnpackError:
                    raise
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
                        raise
                    raise UnpackError(f"entry {info.name[:200]!r}: {exc.strerror or exc}"
                                      ) from None
                except (ValueError, OverflowError) as exc:
                    # a NUL byte in a name, the tar ending inside, an id or device number
                    # too large for its syscall
                    raise UnpackError(f"entry {info.name[:200]!r}: {exc}") from None
        except TarFormatError as exc:
            raise UnpackError(f"malformed tar: {exc}") from None
        unpacker.finish_dirs()
    finally:
        unpacker.close()
        os.close(root_fd)
    return unpacker.stats

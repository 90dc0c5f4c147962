"""The overlay itself: pyfuse3 Operations merging read-only lower layers under one upper dir.

Model. Every inode the kernel knows is a Node: its (parent, name), the layer its real file
is in (`layer`, 0 = upper when there is one), and for directories `dirlayers`, the layers
(top-down) whose directory of that path is merged in: the merge stops at an opaque directory,
a whiteout, or a non-directory. Renaming a directory moves every node below it at once.

Files are found by descriptor, never by a path string. The server holds a descriptor of
each layer's root and of the workdir, and reaches a directory node's directory in a layer by
openat(O_PATH | O_DIRECTORY | O_NOFOLLOW) of one name at a time from its parent's; those
descriptors are kept in a bounded LRU per (node, layer) (an fd names the inode, so it follows
a rename of the directory, and a symlink the container planted anywhere is never crossed).
A file is then acted on as (its directory's fd, its name) with the *at calls and no
following of the final name: fstatat, openat(O_NOFOLLOW), renameat(2), unlinkat, linkat,
readlinkat, fchownat/utimensat(AT_SYMLINK_NOFOLLOW), and getxattrat & co. (fdops.py). Names
come from the kernel one component at a time; "." and ".." are never looked up on disk.

A node whose last name was removed (`gone`), or that sits under a removed directory, is never
re-resolved by name: it is served from a descriptor already open for it (an open file's:
fstat, fchmod, ftruncate, fsetxattr, or a reopen through the server's own /proc/self/fd
entry) or refused with ENOENT. A gone file of a lower layer is not copied up (a write to it,
fchmod, fsetxattr: ENOENT); kernel overlayfs would copy it up into its workdir as an orphan.

Setuid and setgid bits of non-directories live only in the override xattr (metadata.py):
the file on the host never carries them (chmod, create, mknod and copy-up all strip them),
so the upper dir holds no setuid file of the user's. Directories keep setgid and sticky on
disk: they grant nothing, and a setgid directory gives new files its group as expected.

Lookups go top-down through the parent's dirlayers. Whiteouts and opaque directories are
read in both forms (see metadata.py) and written in the `.wh.` form. Copy-up goes through the
workdir and rename (copyup.py). Hard links are one node: every lower alias maps to the node
by its on-disk (dev, ino), and a copy-up of a file with more links re-creates the links the
node is known by in the upper dir.

Inode numbers: derived from the (dev, ino) of the file's first incarnation (lower file, or
upper file when created here), so they are stable across the kernel forgetting a node; after
copy-up the node keeps the number it had, and the copy records it (metadata.py) so it stays
after a remount too.

Every handler here is synchronous (syscalls on local disks); they are wrapped into the
coroutines pyfuse3 awaits, and run one at a time (loop.py, or trio with loop=trio), so no
locking is needed. Everything is imported at module import: the server may be confined to
an empty root (confine(), called by server.py) and then can load nothing by path.

Caching (the speed): the kernel may keep entries, attributes, negative lookups and page cache
for a long time, because every change of the tree comes through this mount (layers must not
be changed behind its back, as for kernel overlayfs).
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import resource
import shutil
import stat
from collections import OrderedDict
from typing import ClassVar

import pyfuse3
from pyfuse3 import EntryAttributes, FileInfo, FUSEError

from . import copyup, fdops, metadata

log = logging.getLogger("fuse_overlay")

TIMEOUT = 86400.0  # entry, attribute and negative-lookup cache lifetime (seconds)
WH = metadata.WHITEOUT_PREFIX.encode()
OPQ = metadata.OPAQUE_MARKER.encode()
WORK = b"fuse-overlay.work"
EMPTY = b"fuse-overlay.root"  # the confined server's root: an empty dir in the workdir
_FALLBACK_INO = 1 << 62
_AHEAD = 8 << 20
_REFUSED = (errno.EPERM, errno.EACCES, errno.EOPNOTSUPP)
_STORE_MAX = 64 << 10  # lower files up to this size go to the page cache at open
_ODIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_OMETA = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | _NOFOLLOW  # for f* calls on a file
_SUGID = stat.S_ISUID | stat.S_ISGID
_GONE = errno.ENOENT
_BIG_UNLINK = 16 << 20  # an upper file this large is unlinked off the request path
_OVX = os.fsencode(metadata.OVERRIDE_XATTR)
_OV_DECODED: dict[bytes, metadata.Override] = {}  # a few distinct values for a whole image


def _disk_perms(perms: int, isdir: bool) -> int:
    """The permission bits a file gets on the host: no setuid/setgid on non-directories."""
    return perms if isdir else perms & ~_SUGID


def _lstat(dfd: int, name: bytes):
    return os.stat(name, dir_fd=dfd, follow_symlinks=False) if name else os.stat(dfd)


def _exists(dfd: int, name: bytes) -> bool:
    try:
        os.stat(name, dir_fd=dfd, follow_symlinks=False)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False


def _openat(dfd: int, name: bytes, flags: int, mode: int = 0o777) -> int:
    """open(2) of dfd/name (name b"": the directory dfd itself), never following a symlink."""
    return os.open(name or b".", flags | _NOFOLLOW, mode, dir_fd=dfd)


def _check_component(name: bytes) -> None:
    if not name or b"/" in name or name in (b".", b".."):
        raise FUSEError(errno.EINVAL)


class Node:
    __slots__ = ("dirlayers", "extra", "gone", "handles", "ino", "keys", "layer", "lookups",
                 "name", "parent")

    def __init__(self, ino, parent, name, layer, dirlayers):
        self.ino = ino
        self.parent = parent
        self.name = name
        self.layer = layer
        self.dirlayers = dirlayers  # tuple of layer indexes, or None for a non-directory
        self.lookups = 0
        self.keys = ()  # _key() of every real file this node has been (a tuple: small)
        self.extra = None  # other (parent, name) of a hard-linked file
        self.gone = False  # every name removed (may still be open)
        self.handles = 0


class FileHandle:
    __slots__ = ("ahead", "cached", "fd", "layer", "node")

    def __init__(self, fd, node, layer, cached=None):
        self.fd = fd
        self.node = node
        self.layer = layer  # the layer of the file fd is open on
        self.ahead = 0  # how far the underlying file has been asked to read ahead
        self.cached = cached  # the _FdCache key when fd belongs to the cache


class _FdCache:
    """Read-only descriptors of lower-layer files, kept across open/close: reopening a file
    (a build reading headers, an interpreter importing modules) costs no open(2)/close(2).
    Lower files never change, so a descriptor stays right as long as the node reads from
    that layer; the key holds the layer, so a copied-up node gets a new descriptor."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.fds: OrderedDict = OrderedDict()  # (ino, layer) -> [fd, users]

    def get(self, key, dfd: int, name: bytes, flags: int) -> int:
        ent = self.fds.get(key)
        if ent is not None:
            self.fds.move_to_end(key)
            ent[1] += 1
            return ent[0]
        fd = _openat(dfd, name, flags)
        self.fds[key] = [fd, 1]
        excess = len(self.fds) - self.size
        if excess > 0:  # close the least recently used that no open file is using
            for k in list(itertools.islice(self.fds, excess + 16)):
                ofd, users = self.fds[k]
                if not users:
                    os.close(ofd)
                    del self.fds[k]
                    excess -= 1
                    if not excess:
                        break
        return fd

    def put(self, key) -> None:
        ent = self.fds.get(key)
        if ent is not None:
            ent[1] -= 1

    def drop(self, ino: int) -> None:
        for key in [k for k in self.fds if k[0] == ino]:
            fd, users = self.fds[key]
            if not users:
                os.close(fd)
                del self.fds[key]


class _DirFds:
    """O_PATH descriptors of directory nodes per layer, (node, layer) -> fd, least recently
    used first. An evicted descriptor is closed when the current request is done (a handler
    may still hold it)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.fds: OrderedDict = OrderedDict()
        self.closing: list[int] = []

    def put(self, key, fd: int) -> None:
        self.fds[key] = fd
        while len(self.fds) > self.size:
            self.closing.append(self.fds.popitem(last=False)[1])

    def drop(self, node: Node, nlayers: int) -> None:
        for li in range(nlayers):
            fd = self.fds.pop((node, li), None)
            if fd is not None:
                self.closing.append(fd)

    def flush(self) -> None:
        for fd in self.closing:
            os.close(fd)
        self.closing.clear()


class DirHandle:
    __slots__ = ("entries", "node")

    def __init__(self, node):
        self.node = node
        self.entries = None


def _errors(fn, dirfds: _DirFds):
    """Run a synchronous handler as the coroutine pyfuse3 awaits; OSError -> FUSEError."""
    @functools.wraps(fn)
    async def wrapper(*args):
        try:
            return fn(*args)
        except FUSEError:
            raise
        except OSError as e:
            raise FUSEError(e.errno or errno.EIO) from None
        except Exception:
            log.exception("internal error in %s", fn.__name__)
            raise FUSEError(errno.EIO) from None
        finally:
            if dirfds.closing:
                dirfds.flush()
    return wrapper


def _unmapped_test():
    """For the squash_unmapped option: a function (uid, gid) -> (uid, gid) that shows ids
    this user namespace does not map as 0. Without it such files show as 65534 and the
    kernel refuses every write to them, even by root of the namespace."""
    def ranges(path):
        with open(path) as f:
            return [(int(a), int(c)) for a, _b, c in (line.split() for line in f)]

    uids, gids = ranges("/proc/self/uid_map"), ranges("/proc/self/gid_map")

    def mapped(i, rs):
        return any(a <= i < a + c for a, c in rs)

    def squash(uid, gid):
        return (uid if mapped(uid, uids) else 0), (gid if mapped(gid, gids) else 0)
    return squash


def _fd_budget() -> tuple[int, int]:
    """Sizes of the two descriptor caches within RLIMIT_NOFILE (raised to its hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            new = 1 << 20 if hard == resource.RLIM_INFINITY else hard
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (OSError, ValueError):
            pass
    budget = max(64, soft - 256)  # room for open files of the container and the rest
    return min(512, budget // 4), min(4096, budget // 2)


class Overlay(pyfuse3.Operations):
    enable_writeback_cache = False
    supports_dot_lookup = True
    _fs_ops: ClassVar[tuple[str, ...]] = (
        "lookup", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir",
        "symlink", "rename", "link", "open", "read", "write", "release", "fsync",
        "opendir", "readdir", "releasedir", "fsyncdir", "statfs", "setxattr", "getxattr",
        "listxattr", "removexattr", "create")

    def __init__(self, lowerdirs: list[str], upperdir: str | None, workdir: str | None, *,
                 writeback: bool = False, realchown: bool = False,
                 squash_unmapped: bool = False) -> None:
        super().__init__()
        files, dirs = _fd_budget()
        self.dfds = _DirFds(dirs)
        for op in self._fs_ops:  # bind the synchronous _op implementations as coroutines
            setattr(self, op, _errors(getattr(self, "_" + op), self.dfds))
        self.enable_writeback_cache = writeback
        self.realchown = realchown
        self.unmapped = _unmapped_test() if squash_unmapped else None
        paths = ([os.fsencode(upperdir)] if upperdir else []) + \
            [os.fsencode(d) for d in lowerdirs]
        # The layers are named by the caller (trusted); from here on only descriptors.
        self.rootfds = [os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for p in paths]
        self.nlayers = len(paths)
        self.upper = 0 if upperdir else None
        self.workfd = self.emptyfd = None
        if upperdir:
            self.workfd = self._clean_work(os.fsencode(workdir))
        # our own descriptors, to reopen a file no name shows any more (see _open)
        self.procfd = os.open("/proc/self/fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._oldroot = None
        self.uid, self.gid = os.geteuid(), os.getegid()
        self.nodes: dict[int, Node] = {}
        self.by_key: dict[int, Node] = {}
        self.origin_ino: dict[tuple[int, int], int] = {}  # copied-up file -> node number
        self.devs: dict[int, int] = {}
        self.fhs: dict[int, object] = {}
        self.fdcache = _FdCache(files)
        self.stored: set[int] = set()  # nodes whose data was pushed to the page cache
        self._link_index: dict[int, dict[int, list[bytes]]] = {}
        self._next_fh = 1
        self._next_ino = _FALLBACK_INO
        self._tmp = 0
        self._unlinks = None  # the queue of _unlink_later, once it is used
        for fd in self.rootfds:  # device indexes (part of inode numbers) in layer order,
            self._key(os.stat(fd))  # not in the order of first access: same every mount
        root_layers = []
        for i, fd in enumerate(self.rootfds):
            root_layers.append(i)
            if i + 1 < self.nlayers and self._opaque(fd, b""):
                break
        root = Node(pyfuse3.ROOT_INODE, None, b"", root_layers[0], tuple(root_layers))
        root.lookups = 1
        root.keys = (self._key(os.stat(self.rootfds[root.layer])),)
        self.nodes[root.ino] = root

    # ---- confinement ---------------------------------------------------------------------

    def confine(self) -> bool:
        """Defence in depth, once mounted: chroot into an empty directory in the workdir, so
        a path string that slipped through resolves to nothing of the user's. Needs
        CAP_SYS_CHROOT (root of the container's user namespace, as rl runs the server); a
        plain user's server stays where it is. Returns whether it is confined."""
        if self.emptyfd is None or self._oldroot is not None:
            return False
        efd = self.emptyfd
        self.emptyfd = None
        old = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fchdir(efd)
            os.chroot(".")
        except OSError as e:
            os.fchdir(cwd)
            os.close(old)
            log.debug("not confined: %s", e)
            return False
        finally:
            os.close(efd)
            os.close(cwd)
        self._oldroot = old  # only to unmount by path at the end (see unconfine)
        return True

    def unconfine(self) -> None:
        """Back to the root the server had, for unmounting by path when it is done."""
        if self._oldroot is not None:
            try:
                os.fchdir(self._oldroot)
                os.chroot(".")
                os.chdir("/")
            except OSError:
                pass
            os.close(self._oldroot)
            self._oldroot = None

    def close(self) -> None:
        """Close every descriptor the overlay holds (layers, workdir, caches, open files),
        for a process that made one without serving it to the end (fuse_overlay.warm)."""
        fds = [*self.rootfds, self.workfd, self.emptyfd, self.procfd, self._oldroot,
               *self.dfds.fds.values(), *self.dfds.closing,
               *(ent[0] for ent in self.fdcache.fds.values()),
               *(h.fd for h in self.fhs.values() if isinstance(h, FileHandle)
                 and h.cached is None)]
        for fd in fds:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.rootfds = []
        self.workfd = self.emptyfd = self._oldroot = None
        self.dfds.fds.clear()
        self.dfds.closing.clear()
        self.fdcache.fds.clear()
        self.fhs.clear()

    # ---- helpers -------------------------------------------------------------------------

    def _clean_work(self, workdir: bytes) -> int:
        """Remove what an interrupted copy-up left in the workdir; its descriptor. Also
        opens the empty directory confine() goes to (self.emptyfd, None if not empty)."""
        parent = os.open(workdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            shutil.rmtree(WORK, dir_fd=parent, ignore_errors=True)
            try:
                os.mkdir(WORK, 0o700, dir_fd=parent)
            except FileExistsError:
                pass
            try:
                os.mkdir(EMPTY, 0o555, dir_fd=parent)
            except FileExistsError:
                pass
            try:
                self.emptyfd = os.open(EMPTY, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW,
                                       dir_fd=parent)
                if os.listdir(self.emptyfd):
                    os.close(self.emptyfd)
                    self.emptyfd = None
            except OSError:
                self.emptyfd = None
            return os.open(WORK, _ODIR, dir_fd=parent)
        finally:
            os.close(parent)

    def _tmpname(self) -> bytes:
        self._tmp += 1
        return b"#%d.%d" % (os.getpid(), self._tmp)

    def _rw(self) -> None:
        if self.upper is None:
            raise FUSEError(errno.EROFS)

    def _dirfd(self, d: Node, layer: int) -> int:
        """The O_PATH descriptor of directory node `d` in `layer`, opened one name at a
        time from the nearest cached ancestor (or the layer's root) without following
        symlinks. ENOENT for a removed directory or one under a removed directory; OSError
        when the layer has no such directory."""
        fds = self.dfds.fds
        fd = fds.get((d, layer))
        down = []  # ancestors to open, nearest the cached one last
        n = d
        while n is not None:  # (a walk of pointers: checks every ancestor, no syscall)
            if n.gone:
                raise FUSEError(_GONE)
            n = n.parent
        if fd is not None:
            fds.move_to_end((d, layer))
            return fd
        n = d
        while n.parent is not None:
            fd = fds.get((n, layer))
            if fd is not None:
                fds.move_to_end((n, layer))
                break
            down.append(n)
            n = n.parent
        else:
            fd = self.rootfds[layer]
        for n in reversed(down):
            fd = os.open(n.name, _ODIR, dir_fd=fd)
            self.dfds.put((n, layer), fd)
        return fd

    def _at(self, node: Node, layer: int | None = None) -> tuple[int, bytes]:
        """(directory fd, name) of `node`'s file in `layer` (default: its own); for the
        root, (the layer root's fd, b"")."""
        if node.gone:
            raise FUSEError(_GONE)
        if layer is None:
            layer = node.layer
        if node.parent is None:
            return self.rootfds[layer], b""
        return self._dirfd(node.parent, layer), node.name

    def _upper_dirfd(self, d: Node) -> int:
        return self._dirfd(d, self.upper)

    def _handle(self, node: Node, fh=None, upper: bool = False) -> FileHandle | None:
        """An open file of `node` (the handle `fh` first); `upper`: only one open on the
        upper layer's file (one that may be changed)."""
        h = self.fhs.get(fh) if fh else None
        cands = [h] if isinstance(h, FileHandle) and h.node is node else []
        cands += [x for x in self.fhs.values() if isinstance(x, FileHandle) and x.node is node]
        for x in cands:
            if not upper or (x.layer == self.upper and self.upper is not None):
                return x
        return None

    def _handle_fd(self, node: Node, fh=None, upper: bool = False) -> int | None:
        h = self._handle(node, fh, upper)
        return None if h is None else h.fd

    def _node(self, ino: int) -> Node:
        try:
            return self.nodes[ino]
        except KeyError:
            raise FUSEError(errno.ESTALE) from None

    def _key(self, st):
        """A file's identity as one int (device index << 48 | inode): smaller in memory
        than a (dev, ino) tuple, and the node number derived from it."""
        dev = self.devs.get(st.st_dev)
        if dev is None:
            dev = self.devs[st.st_dev] = len(self.devs) + 1
        if st.st_ino < (1 << 48) and dev < 4096:
            return (dev << 48) | st.st_ino
        return (st.st_dev, st.st_ino)

    def _alloc_ino(self, key, origin: int | None = None) -> int:
        ino = self.origin_ino.get(key, origin)
        if ino is None:
            ino = key if isinstance(key, int) else 0
        if ino <= pyfuse3.ROOT_INODE or ino in self.nodes:
            ino = self._next_ino
            self._next_ino += 1
        return ino

    def _opaque(self, dfd: int, name: bytes) -> bool:
        """Whether directory dfd/name hides everything of the layers below it."""
        try:
            cfd = os.open(name, _ODIR, dir_fd=dfd) if name else None
        except OSError:
            return False
        try:
            if _exists(dfd if cfd is None else cfd, OPQ):
                return True
        finally:
            if cfd is not None:
                os.close(cfd)
        for x in metadata.OPAQUE_XATTRS:
            try:
                if fdops.getxattr(dfd, name, x) == b"y":
                    return True
            except OSError:
                pass
        return False

    def _resolve(self, d: Node, name: bytes, layers=None):
        """Find `name` in directory node `d`: (layer, lstat, dirlayers-or-None) or None."""
        layers = d.dirlayers if layers is None else layers
        found = None
        dl = []
        last = self.nlayers - 1
        for li in layers:
            try:
                dfd = self._dirfd(d, li)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                    raise
                if _exists(dfd, WH + name):
                    break
                continue
            if metadata.is_whiteout_device(st):
                break
            isdir = stat.S_ISDIR(st.st_mode)
            if found is None:
                found = (li, st)
                if not isdir:
                    break
            elif not isdir:
                break
            dl.append(li)
            if li != last and (self._opaque(dfd, name) or _exists(dfd, WH + name)):
                break  # (a whiteout hides the name below its layer, not in it)
        if found is None:
            return None
        return found[0], found[1], tuple(dl) if dl else None

    def _lower_has(self, d: Node, name: bytes) -> bool:
        """Whether a layer below the upper one shows `name` in directory `d`."""
        layers = [li for li in d.dirlayers if li != self.upper]
        return bool(layers) and self._resolve(d, name, layers) is not None

    def _node_for(self, parent: Node, name: bytes, layer: int, st, dirlayers,
                  fresh: bool = False) -> Node:
        """The node of the real file `st` at parent/name in `layer` (`fresh`: just created
        here, so it carries no recorded number)."""
        key = self._key(st)
        node = self.by_key.get(key)
        if node is not None and not node.gone:
            if dirlayers is None and node.dirlayers is None:
                if node.parent is not parent or node.name != name:
                    self._add_alias(node, parent, name)
                return node
            if dirlayers is not None and node.dirlayers is not None and \
                    node.parent is parent and node.name == name:
                node.dirlayers = dirlayers
                node.layer = layer
                return node
        origin = None
        if layer == self.upper and not fresh and key not in self.origin_ino and \
                (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            # a copy made at an earlier mount shows the number its original showed
            try:
                origin = int(fdops.getxattr(self._dirfd(parent, layer), name,
                                            metadata.ORIGIN_INO_XATTR))
            except (OSError, ValueError):
                pass
        node = Node(self._alloc_ino(key, origin), parent, name, layer, dirlayers)
        node.keys = (key,)
        self.nodes[node.ino] = node
        self.by_key[key] = node
        return node

    def _add_alias(self, node: Node, parent: Node, name: bytes) -> None:
        if node.extra is None:
            node.extra = []
        if (parent, name) not in node.extra:
            node.extra.append((parent, name))

    def _drop_name(self, node: Node, parent: Node, name: bytes) -> None:
        """`parent/name` no longer names `node`."""
        if node.parent is parent and node.name == name:
            if node.extra:
                node.parent, node.name = node.extra.pop()
            else:
                node.gone = True
                if node.dirlayers is not None:
                    self.dfds.drop(node, self.nlayers)
                for key in node.keys:
                    if self.by_key.get(key) is node:
                        del self.by_key[key]
        elif node.extra and (parent, name) in node.extra:
            node.extra.remove((parent, name))

    def _maybe_forget(self, node: Node) -> None:
        if node.lookups <= 0 and node.ino != pyfuse3.ROOT_INODE:
            self.fdcache.drop(node.ino)
            self.stored.discard(node.ino)
            if node.dirlayers is not None:
                self.dfds.drop(node, self.nlayers)
            if self.nodes.get(node.ino) is node:
                del self.nodes[node.ino]
            for key in node.keys:
                if self.by_key.get(key) is node:
                    del self.by_key[key]

    def _live_child(self, d: Node, name: bytes):
        """(node, lstat) for d/name; the node is registered but holds no kernel lookup."""
        r = self._resolve(d, name)
        if r is None:
            raise FUSEError(errno.ENOENT)
        li, st, dl = r
        return self._node_for(d, name, li, st, dl), st

    # -- what a file shows --

    @staticmethod
    def _ov_at(st, dfd: int, name: bytes):
        """The override xattr of dfd/name (whose lstat is `st`), or None."""
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return None  # the only types that may carry user xattrs
        try:
            raw = fdops.getxattr(dfd, name, _OVX)
        except OSError:
            return None
        # Overrides are immutable and an image has few distinct ones ("0:0:0644"...): parse
        # each once (a listing of many files calls this per entry).
        ov = _OV_DECODED.get(raw)
        if ov is None:
            try:
                ov = metadata.Override.decode(raw)
            except ValueError:
                return None
            if len(_OV_DECODED) < 4096:
                _OV_DECODED[raw] = ov
        return ov

    @staticmethod
    def _ov_fd(st, fd: int):
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return None
        return metadata.read_override(fd)

    def _shown(self, st, ov):
        """(uid, gid, mode, rdev) as presented for a real file with override `ov`."""
        uid, gid, mode, rdev = st.st_uid, st.st_gid, st.st_mode, st.st_rdev
        if ov is not None:
            uid, gid = ov.uid, ov.gid
            if self.unmapped is not None:
                uid, gid = self.unmapped(uid, gid)
            mode = (ov.ftype if ov.ftype is not None else stat.S_IFMT(mode)) | ov.mode
            if ov.ftype is not None:
                rdev = ov.rdev
        return uid, gid, mode, rdev

    def _real(self, node: Node):
        """(lstat, override) of `node`'s file: by name, or for a gone node by an open fd."""
        if node.gone:
            fd = self._handle_fd(node)
            if fd is None:
                raise FUSEError(_GONE)
            st = os.fstat(fd)
            return st, self._ov_fd(st, fd)
        dfd, name = self._at(node)
        st = _lstat(dfd, name)
        return st, self._ov_at(st, dfd, name)

    def _entry(self, node: Node, st=None, ov=None) -> EntryAttributes:
        if st is None:
            st, ov = self._real(node)
        e = EntryAttributes()
        e.st_ino = node.ino
        e.generation = 0
        e.entry_timeout = TIMEOUT
        e.attr_timeout = TIMEOUT
        e.st_uid, e.st_gid, e.st_mode, e.st_rdev = self._shown(st, ov)
        e.st_nlink = 1 if node.dirlayers is not None and len(node.dirlayers) > 1 else st.st_nlink
        e.st_size = st.st_size
        e.st_blksize = st.st_blksize
        e.st_blocks = st.st_blocks
        e.st_atime_ns = st.st_atime_ns
        e.st_mtime_ns = st.st_mtime_ns
        e.st_ctime_ns = st.st_ctime_ns
        return e

    def _merged(self, d: Node) -> list[tuple[bytes, int]]:
        """The visible names of directory node `d` with the layer each comes from."""
        seen: set[bytes] = set()
        out = []
        enc = os.fsencode
        for li in d.dirlayers:
            hidden = []
            try:
                fd = os.open(b".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC,
                             dir_fd=self._dirfd(d, li))
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                with os.scandir(fd) as it:
                    for de in it:
                        n = enc(de.name)
                        if n[:4] == WH:
                            if n != OPQ:
                                hidden.append(n[4:])
                            continue
                        if n in seen:
                            continue
                        seen.add(n)
                        if not (de.is_file(follow_symlinks=False) or
                                de.is_dir(follow_symlinks=False) or de.is_symlink()) and \
                                metadata.is_whiteout_device(de.stat(follow_symlinks=False)):
                            continue
                        out.append((n, li))
            finally:
                os.close(fd)
            seen.update(hidden)
        return out

    # -- copy-up --

    def _copy_up_dir(self, d: Node) -> None:
        """Make sure directory node `d` exists in the upper layer."""
        if d.dirlayers[0] == self.upper:
            return
        self._rw()
        self._copy_up_dir(d.parent)
        sdfd, sname = self._at(d, d.dirlayers[0])
        pfd = self._upper_dirfd(d.parent)
        src = _openat(sdfd, sname, os.O_RDONLY | os.O_DIRECTORY)
        try:
            st = os.fstat(src)
            shown = self._shown(st, self._ov_fd(st, src))[:3]
            tmp = self._tmpname()
            os.mkdir(tmp, 0o700, dir_fd=self.workfd)
            try:
                dst = _openat(self.workfd, tmp, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    copyup.finish_fd(src, st, dst, shown, False, self.realchown)
                    metadata.write_origin_ino(dst, d.ino)  # the same number after a remount
                    up = os.fstat(dst)
                finally:
                    os.close(dst)
                os.rename(tmp, d.name, src_dir_fd=self.workfd, dst_dir_fd=pfd)
            except BaseException:
                os.rmdir(tmp, dir_fd=self.workfd)
                raise
        finally:
            os.close(src)
        d.dirlayers = (self.upper, *d.dirlayers)
        d.layer = self.upper
        d.keys = (*d.keys, self._key(up))
        self.by_key[d.keys[-1]] = d

    def _copy_up(self, node: Node) -> None:
        """Make sure non-directory `node` is in the upper layer (with all its known links).
        A node no name shows any more is not copied up (ENOENT): it would have no place."""
        if node.dirlayers is not None:
            self._copy_up_dir(node)
            return
        if node.layer == self.upper:
            return
        self._rw()
        if node.gone:
            raise FUSEError(_GONE)
        self._copy_up_dir(node.parent)
        src_layer = node.layer
        sdfd, sname = self._at(node)
        st = _lstat(sdfd, sname)
        shown = self._shown(st, self._ov_at(st, sdfd, sname))[:3]
        tmp = self._tmpname()
        try:
            up = copyup.copy_node(sdfd, sname, st, self.workfd, tmp, shown, self.realchown,
                                  node.ino)
            os.rename(tmp, node.name, src_dir_fd=self.workfd,
                      dst_dir_fd=self._upper_dirfd(node.parent))
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=self.workfd)
            except OSError:
                pass
            raise
        node.layer = self.upper
        key = self._key(up)
        node.keys = (*node.keys, key)
        self.by_key[key] = node
        self.origin_ino[key] = node.ino
        if st.st_nlink > 1:
            self._copy_up_links(node, src_layer, st)

    def _copy_up_links(self, node: Node, layer: int, st) -> None:
        """Keep a hard-linked lower file one inode: give every other visible name of it in
        its layer (and every name the node is known by) the same upper inode."""
        for rel in self._lower_aliases(layer, st):
            d = self.nodes[pyfuse3.ROOT_INODE]
            made = []
            try:
                for comp in rel.split(b"/"):
                    if d.dirlayers is None:
                        raise FUSEError(errno.ENOTDIR)
                    d, _st = self._live_child(d, comp)
                    made.append(d)
            except (FUSEError, OSError):
                pass  # not visible (whited out, shadowed): nothing to keep
            for n in made:
                if n is not node and n.lookups <= 0 and not n.handles:
                    self._maybe_forget(n)
        sdfd = self._upper_dirfd(node.parent)
        for parent, name in list(node.extra or ()):
            try:
                self._copy_up_dir(parent)
                pfd = self._upper_dirfd(parent)
            except FUSEError:
                continue  # under a removed directory
            if _exists(pfd, name):
                continue
            os.link(node.name, name, src_dir_fd=sdfd, dst_dir_fd=pfd, follow_symlinks=False)
            self._clear_whiteout(parent, name)

    def _lower_aliases(self, layer: int, st) -> list[bytes]:
        """Paths (relative) of the files in `layer` with the inode of `st`: an index of the
        layer's hard-linked files, built once, the first time one is copied up (walked by
        descriptor: os.fwalk follows no symlink)."""
        idx = self._link_index.get(layer)
        if idx is None:
            idx = {}
            for dirpath, _dirs, files, dfd in os.fwalk(b".", dir_fd=self.rootfds[layer]):
                for n in files:
                    try:
                        s = os.stat(n, dir_fd=dfd, follow_symlinks=False)
                    except OSError:
                        continue
                    if s.st_nlink > 1:
                        rel = os.path.normpath(os.path.join(dirpath, n))
                        idx.setdefault(s.st_ino, []).append(rel)
            self._link_index[layer] = idx
        return idx.get(st.st_ino, [])

    def _copy_up_tree(self, d: Node) -> None:
        """Copy a directory and everything visible below it into upper, making it
        independent of the lower layers (for rename of a directory from a lower layer)."""
        self._copy_up_dir(d)
        for name, _li in self._merged(d):
            child, _st = self._live_child(d, name)
            if child.dirlayers is not None:
                self._copy_up_tree(child)
            else:
                self._copy_up(child)
            if child.lookups <= 0:
                self._maybe_forget(child)
        d.dirlayers = (self.upper,)

    # -- the upper dir --

    def _clear_whiteout(self, d: Node, name: bytes) -> bool:
        """Remove a whiteout for `name` from the upper dir of `d`; True if there was one."""
        pfd = self._upper_dirfd(d)
        had = False
        try:
            os.unlink(WH + name, dir_fd=pfd)
            had = True
        except FileNotFoundError:
            pass
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return had
        if metadata.is_whiteout_device(st):
            os.unlink(name, dir_fd=pfd)
            return True
        return had

    def _set_opaque_xattr(self, dfd: int, name: bytes) -> None:
        try:
            fdops.setxattr(dfd, name, metadata.OPAQUE_XATTRS[0], b"y")
        except OSError as e:
            if e.errno not in (*_REFUSED, errno.ENOTSUP):
                raise
            # no user xattrs on this disk: emptied without it (a crash meanwhile may show
            # the lower directory's files at the name)

    def _opaque_marker(self, dfd: int, name: bytes) -> None:
        """Create the `.wh..wh..opq` entry in directory dfd/name."""
        cfd = os.open(name, _ODIR, dir_fd=dfd)
        try:
            os.close(os.open(OPQ, os.O_WRONLY | os.O_CREAT | _NOFOLLOW, 0o600, dir_fd=cfd))
        finally:
            os.close(cfd)

    def _whiteout(self, d: Node, name: bytes) -> None:
        os.close(os.open(WH + name, os.O_WRONLY | os.O_CREAT | _NOFOLLOW, 0o600,
                         dir_fd=self._upper_dirfd(d)))

    def _check_name(self, name: bytes) -> None:
        _check_component(name)
        if name.startswith(WH):
            raise FUSEError(errno.EPERM)  # would read as a whiteout: see metadata.py

    def _new_owner(self, pfd: int, name: bytes, ctx, perms: int | None = None,
                   fd: int | None = None) -> None:
        """Give a new file the creator's ids (xattr when they differ from the disk's), and
        the permission bits `perms` asked for where the disk was given fewer (setuid and
        setgid live in the xattr only)."""
        uid, gid = ctx.uid, ctx.gid
        st = os.fstat(fd) if fd is not None else os.stat(name, dir_fd=pfd,
                                                          follow_symlinks=False)
        is_link = stat.S_ISLNK(st.st_mode)
        if perms is None or is_link:
            perms = stat.S_IMODE(st.st_mode)
        special = perms != stat.S_IMODE(st.st_mode)
        if uid == self.uid and gid == self.gid and not special:
            return
        if gid != st.st_gid and gid != self.gid and os.stat(pfd).st_mode & stat.S_ISGID:
            gid = st.st_gid  # inherited from a setgid directory
        if (uid, gid) == (st.st_uid, st.st_gid) and not special:
            return
        if self.realchown or is_link:
            try:
                if fd is not None:
                    os.fchown(fd, uid, gid)
                else:
                    os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
            except OSError:
                pass
        if not is_link:
            value = metadata.Override(uid, gid, perms).encode()
            if fd is not None:
                os.setxattr(fd, metadata.OVERRIDE_XATTR, value)
            else:
                fdops.setxattr(pfd, name, metadata.OVERRIDE_XATTR, value)

    def _prepare_new(self, d: Node, name: bytes) -> int:
        """Checks before creating `name` in `d`; returns the upper directory's fd."""
        self._rw()
        self._check_name(name)
        self._copy_up_dir(d)
        return self._upper_dirfd(d)

    def _new_node(self, d: Node, name: bytes, fd: int | None = None) -> EntryAttributes:
        if d.dirlayers != (self.upper,):
            # (in a directory with no lower part, any whiteout is moot: nothing to clear)
            self._clear_whiteout(d, name)
        pfd = self._upper_dirfd(d)
        if fd is None:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            ov = self._ov_at(st, pfd, name)
        else:
            st = os.fstat(fd)
            ov = self._ov_fd(st, fd)
        node = self._node_for(d, name, self.upper,
                              st, (self.upper,) if stat.S_ISDIR(st.st_mode) else None,
                              fresh=True)
        node.lookups += 1
        return self._entry(node, st, ov)

    # ---- operations ----------------------------------------------------------------------

    def _lookup(self, parent_ino, name, ctx):
        d = self._node(parent_ino)
        if name == b".":
            node = d
        elif name == b"..":
            node = d.parent or d
        elif name[:4] == WH or b"/" in name or not name:
            node = None
        else:
            r = self._resolve(d, name)
            if r is None:
                node = None
            else:
                li, st, dl = r
                node = self._node_for(d, name, li, st, dl)
                node.lookups += 1
                return self._entry(node, st, self._ov_at(st, self._dirfd(d, li), name))
        if node is None:
            e = EntryAttributes()
            e.st_ino = 0  # a negative entry the kernel caches for entry_timeout
            e.entry_timeout = TIMEOUT
            return e
        node.lookups += 1
        return self._entry(node)

    async def forget(self, inode_list):
        for ino, n in inode_list:
            node = self.nodes.get(ino)
            if node is not None:
                node.lookups -= n
                if node.lookups <= 0 and not node.handles:
                    self._maybe_forget(node)

    def _getattr(self, ino, ctx):
        return self._entry(self._node(ino))

    def _setattr(self, ino, attr, fields, fh, ctx):
        node = self._node(ino)
        self._rw()
        # The file is acted on through a descriptor of it: for a node no name shows any
        # more (ftruncate, fchmod after unlink) one already open on its upper file, never
        # a name; otherwise it is copied up and opened without following a symlink.
        opened = None
        if node.gone:
            fd = self._handle_fd(node, fh, upper=True)
            if fd is None:
                raise FUSEError(_GONE)
            dfd = name = None
        else:
            self._copy_up(node)
            dfd, name = self._at(node)
            fd = None
        st = os.fstat(fd) if fd is not None else _lstat(dfd, name)
        kind = stat.S_IFMT(st.st_mode)
        if fd is None and kind in (stat.S_IFREG, stat.S_IFDIR):
            fd = opened = _openat(dfd, name, _OMETA | (os.O_DIRECTORY if kind == stat.S_IFDIR
                                                         else 0))
        try:
            self._apply_attrs(node, attr, fields, fh, fd, dfd, name, st)
        finally:
            if opened is not None:
                os.close(opened)
        return self._entry(node)

    def _apply_attrs(self, node, attr, fields, fh, fd, dfd, name, st) -> None:
        """setattr on an open `fd` of the file, or (symlinks, fifos, sockets) dfd/name."""
        is_link = stat.S_ISLNK(st.st_mode)
        isdir = stat.S_ISDIR(st.st_mode)
        if fields.update_size:
            h = self.fhs.get(fh) if fh else None
            if isinstance(h, FileHandle) and h.node is node and h.layer == self.upper:
                os.ftruncate(h.fd, attr.st_size)
            else:
                if node.gone:  # reopened for writing through our own descriptor of it
                    wfd = os.open(str(fd), os.O_WRONLY | os.O_CLOEXEC, dir_fd=self.procfd)
                else:
                    wfd = _openat(dfd, name, os.O_WRONLY | os.O_NONBLOCK)
                try:
                    os.ftruncate(wfd, attr.st_size)
                finally:
                    os.close(wfd)
        if fields.update_mode and not is_link:
            perms = stat.S_IMODE(attr.st_mode)
            disk = _disk_perms(perms, isdir)
            ov = self._ov_fd(st, fd) if fd is not None else None
            if ov is not None or disk != perms:
                if ov is None:
                    uid, gid, _m, _r = self._shown(st, None)
                    ov = metadata.Override(uid, gid, perms)
                self._write_ov(fd, dfd, name, metadata.Override(ov.uid, ov.gid, perms,
                                                                ov.ftype, ov.rdev))
            if fd is not None:
                os.fchmod(fd, disk)
            else:  # a fifo or socket (lstat said so; the upper dir changes only through us)
                os.chmod(name, disk, dir_fd=dfd)
        if fields.update_uid or fields.update_gid:
            cur = os.fstat(fd) if fd is not None else _lstat(dfd, name)
            ov = self._ov_fd(cur, fd) if fd is not None else None
            cur_uid, cur_gid, cur_mode, _ = self._shown(cur, ov)
            uid = attr.st_uid if fields.update_uid else cur_uid
            gid = attr.st_gid if fields.update_gid else cur_gid
            if is_link or self.realchown:
                try:
                    if fd is not None:
                        os.fchown(fd, uid, gid)
                    else:
                        os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
                except OSError:
                    pass
            if not is_link:
                self._write_ov(fd, dfd, name, metadata.Override(
                    uid, gid, stat.S_IMODE(cur_mode), ov.ftype if ov else None,
                    ov.rdev if ov else 0))
                if fd is not None and self.realchown:  # chown cleared the disk's bits
                    os.fchmod(fd, _disk_perms(stat.S_IMODE(cur.st_mode), isdir))
        if fields.update_atime or fields.update_mtime:
            cur = os.fstat(fd) if fd is not None else _lstat(dfd, name)
            a = attr.st_atime_ns if fields.update_atime else cur.st_atime_ns
            m = attr.st_mtime_ns if fields.update_mtime else cur.st_mtime_ns
            if fd is not None:
                os.utime(fd, ns=(a, m))
            else:
                os.utime(name, ns=(a, m), dir_fd=dfd, follow_symlinks=False)

    @staticmethod
    def _write_ov(fd, dfd, name, ov) -> None:
        if fd is not None:
            metadata.write_override(fd, ov)
        else:
            fdops.setxattr(dfd, name, metadata.OVERRIDE_XATTR, ov.encode())

    def _readlink(self, ino, ctx):
        dfd, name = self._at(self._node(ino))
        return os.readlink(name, dir_fd=dfd)

    def _mknod(self, parent_ino, name, mode, rdev, ctx):
        d = self._node(parent_ino)
        pfd = self._prepare_new(d, name)
        kind = stat.S_IFMT(mode)
        perms = stat.S_IMODE(mode)
        disk = _disk_perms(perms, False)
        as_type = False
        if kind in (stat.S_IFCHR, stat.S_IFBLK):
            # A real 0/0 device would read as a kernel-form whiteout; other devices cannot
            # be made in a user namespace: both are recorded in the override xattr.
            try:
                if rdev == 0:
                    raise PermissionError
                os.mknod(name, kind | disk, rdev, dir_fd=pfd)
            except PermissionError:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW,
                                 disk, dir_fd=pfd))
                as_type = True
        else:
            os.mknod(name, kind | disk, 0, dir_fd=pfd)
        if as_type:
            fdops.setxattr(pfd, name, metadata.OVERRIDE_XATTR,
                           metadata.Override(ctx.uid, ctx.gid, perms, kind, rdev).encode())
        else:
            self._new_owner(pfd, name, ctx, perms)
        return self._new_node(d, name)

    def _mkdir(self, parent_ino, name, mode, ctx):
        d = self._node(parent_ino)
        pfd = self._prepare_new(d, name)
        if self._lower_has(d, name):
            # Re-created over a lower directory or file: opaque, built in workdir.
            tmp = self._tmpname()
            os.mkdir(tmp, stat.S_IMODE(mode), dir_fd=self.workfd)
            self._opaque_marker(self.workfd, tmp)
            self._new_owner(self.workfd, tmp, ctx)
            try:
                os.rename(tmp, name, src_dir_fd=self.workfd, dst_dir_fd=pfd)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                    raise
                # a kernel-form whiteout (char 0/0) sits at the name
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                if not metadata.is_whiteout_device(st):
                    raise
                os.unlink(name, dir_fd=pfd)
                os.rename(tmp, name, src_dir_fd=self.workfd, dst_dir_fd=pfd)
        else:
            os.mkdir(name, stat.S_IMODE(mode), dir_fd=pfd)
            self._new_owner(pfd, name, ctx)
        return self._new_node(d, name)

    def _unlink(self, parent_ino, name, ctx):
        self._remove(parent_ino, name, False)

    def _rmdir(self, parent_ino, name, ctx):
        self._remove(parent_ino, name, True)

    def _empty_upper_dir(self, dfd: int, name: bytes) -> None:
        """Remove what only marks things hidden (whiteouts, opaque marker) from upper
        directory dfd/name."""
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=dfd)
        try:
            for n in os.listdir(fd):
                os.unlink(n, dir_fd=fd)
        finally:
            os.close(fd)

    def _remove(self, parent_ino, name, isdir):
        d = self._node(parent_ino)
        self._rw()
        _check_component(name)
        node, st = self._live_child(d, name)
        if isdir != stat.S_ISDIR(st.st_mode):
            raise FUSEError(errno.ENOTDIR if isdir else errno.EISDIR)
        if isdir and self._merged(node):
            raise FUSEError(errno.ENOTEMPTY)
        self._copy_up_dir(d)
        # Crash safety: the whiteout first. Until the upper entry is gone it is the one
        # shown (a name in a layer wins over a whiteout in that layer), after that the
        # whiteout hides the lower one: a crash at any point shows the old or the new
        # state, never the lower file again.
        lower = self._lower_has(d, name)
        if lower:
            self._whiteout(d, name)
        if node.layer == self.upper:
            pfd = self._upper_dirfd(d)
            if not isdir and stat.S_ISREG(st.st_mode) and st.st_size >= _BIG_UNLINK:
                self._unlink_later(pfd, name)
            elif not isdir:
                os.unlink(name, dir_fd=pfd)
            elif lower:
                # the upper directory holds whiteouts of the lower one's files: emptied in
                # place, a crash would show those files again; moved whole into the
                # workdir, it leaves at once (leftovers there go at the next mount)
                tmp = self._tmpname()
                os.rename(name, tmp, src_dir_fd=pfd, dst_dir_fd=self.workfd)
                shutil.rmtree(tmp, dir_fd=self.workfd, ignore_errors=True)
            else:
                self._empty_upper_dir(pfd, name)
                os.rmdir(name, dir_fd=pfd)
        self._drop_name(node, d, name)
        if node.lookups <= 0:
            self._maybe_forget(node)

    def _unlink_later(self, pfd: int, name: bytes) -> None:
        """Remove a large upper file at once by renaming it into the workdir; a thread
        unlinks it there, freeing its blocks (tens of ms for a few hundred MiB on ext4)
        while this thread answers the kernel. The thread needs the GIL to start, which
        this one holds while it waits in read(2) of /dev/fuse: it runs at the next
        request. A crash leaves the file in the workdir, which the next mount empties."""
        tmp = self._tmpname()
        os.rename(name, tmp, src_dir_fd=pfd, dst_dir_fd=self.workfd)
        if self._unlinks is None:
            import queue
            import threading

            self._unlinks = queue.SimpleQueue()
            # its own descriptor of the workdir: the server's may be closed at unmount
            # and its number reused while names still wait in the queue
            own = os.dup(self.workfd)
            threading.Thread(target=self._unlinker, args=(self._unlinks, own),
                             name="fuse-overlay-unlink", daemon=True).start()
        self._unlinks.put(tmp)

    @staticmethod
    def _unlinker(names, workfd: int) -> None:
        while True:
            name = names.get()
            try:
                os.unlink(name, dir_fd=workfd)
            except OSError:
                pass  # gone already: the next mount empties the workdir anyway

    def _symlink(self, parent_ino, name, target, ctx):
        d = self._node(parent_ino)
        pfd = self._prepare_new(d, name)
        os.symlink(target, name, dir_fd=pfd)
        self._new_owner(pfd, name, ctx)
        return self._new_node(d, name)

    def _rename(self, old_ino, old_name, new_ino, new_name, flags, ctx):
        self._rw()
        if flags & ~(pyfuse3.RENAME_NOREPLACE | pyfuse3.RENAME_EXCHANGE):
            raise FUSEError(errno.EINVAL)
        _check_component(old_name)
        self._check_name(new_name)
        od, nd = self._node(old_ino), self._node(new_ino)
        src, sst = self._live_child(od, old_name)
        if flags & pyfuse3.RENAME_EXCHANGE:
            self._exchange(od, old_name, src, nd, new_name)
            return
        r = self._resolve(nd, new_name)
        dst = None
        if r is not None:
            if flags & pyfuse3.RENAME_NOREPLACE:
                raise FUSEError(errno.EEXIST)
            dst = self._node_for(nd, new_name, r[0], r[1], r[2])
            if dst is src:
                return
            src_dir = stat.S_ISDIR(sst.st_mode)
            dst_dir = stat.S_ISDIR(r[1].st_mode)
            if src_dir and not dst_dir:
                raise FUSEError(errno.ENOTDIR)
            if dst_dir and not src_dir:
                raise FUSEError(errno.EISDIR)
            if dst_dir and self._merged(dst):
                raise FUSEError(errno.ENOTEMPTY)
        moved_lower_dir = src.dirlayers is not None and src.dirlayers != (self.upper,)
        if src.dirlayers is not None:
            self._copy_up_tree(src)
        else:
            self._copy_up(src)
        self._copy_up_dir(nd)
        ofd = self._upper_dirfd(od)
        nfd = self._upper_dirfd(nd)
        if dst is not None and dst.layer == self.upper and dst.dirlayers is not None:
            if dst.dirlayers != (self.upper,):
                # opaque (xattr: no entry, so the rename can still replace it) before its
                # whiteouts go, so a crash meanwhile shows it empty, as it is
                self._set_opaque_xattr(nfd, new_name)
            self._empty_upper_dir(nfd, new_name)
        try:
            st = os.stat(new_name, dir_fd=nfd, follow_symlinks=False)
            if metadata.is_whiteout_device(st):
                os.unlink(new_name, dir_fd=nfd)
        except FileNotFoundError:
            pass
        if moved_lower_dir or (src.dirlayers is not None and self._lower_has(nd, new_name)):
            self._opaque_marker(ofd, old_name)
        if self._lower_has(od, old_name):
            self._whiteout(od, old_name)  # first: see _remove
        os.rename(old_name, new_name, src_dir_fd=ofd, dst_dir_fd=nfd)
        try:
            os.unlink(WH + new_name, dir_fd=nfd)
        except FileNotFoundError:
            pass
        if dst is not None:
            self._drop_name(dst, nd, new_name)
            if dst.lookups <= 0:
                self._maybe_forget(dst)
        if src.parent is od and src.name == old_name:
            src.parent, src.name = nd, new_name
        else:
            self._drop_name(src, od, old_name)
            self._add_alias(src, nd, new_name)
        if src.lookups <= 0:
            self._maybe_forget(src)

    def _exchange(self, od: Node, old_name: bytes, src: Node, nd: Node, new_name: bytes):
        """renameat2(RENAME_EXCHANGE): both names stay, so no whiteouts; each side is made
        upper-only (a directory with lower parts is copied up whole) and a directory gets
        the opaque marker where a lower layer has its new name."""
        dst, _st = self._live_child(nd, new_name)
        if dst is src:
            return
        for node in (src, dst):
            if node.dirlayers is not None:
                self._copy_up_tree(node)
            else:
                self._copy_up(node)
        self._copy_up_dir(od)
        self._copy_up_dir(nd)
        ofd = self._upper_dirfd(od)
        nfd = self._upper_dirfd(nd)
        for node, (dfd, name), (parent, pname) in ((src, (ofd, old_name), (nd, new_name)),
                                                   (dst, (nfd, new_name), (od, old_name))):
            if node.dirlayers is not None and self._lower_has(parent, pname):
                self._opaque_marker(dfd, name)
        fdops.renameat2(ofd, old_name, nfd, new_name, fdops.RENAME_EXCHANGE)
        for node, (p_from, n_from), (p_to, n_to) in ((src, (od, old_name), (nd, new_name)),
                                                     (dst, (nd, new_name), (od, old_name))):
            if node.parent is p_from and node.name == n_from:
                node.parent, node.name = p_to, n_to
            else:
                self._drop_name(node, p_from, n_from)
                self._add_alias(node, p_to, n_to)
        for node in (src, dst):
            if node.lookups <= 0 and not node.handles:
                self._maybe_forget(node)

    def _link(self, ino, new_parent_ino, new_name, ctx):
        node = self._node(ino)
        d = self._node(new_parent_ino)
        pfd = self._prepare_new(d, new_name)
        self._copy_up(node)  # (refuses a node no name shows: ENOENT)
        sdfd, sname = self._at(node)
        os.link(sname, new_name, src_dir_fd=sdfd, dst_dir_fd=pfd, follow_symlinks=False)
        self._add_alias(node, d, new_name)
        self._clear_whiteout(d, new_name)
        node.lookups += 1
        return self._entry(node)

    def _open_flags(self, flags: int) -> int:
        flags &= ~(os.O_CREAT | os.O_EXCL | os.O_NOCTTY)
        if self.enable_writeback_cache:
            # the kernel may read pages of a write-only file and handles O_APPEND itself
            if flags & os.O_ACCMODE == os.O_WRONLY:
                flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
            flags &= ~os.O_APPEND
        return flags | os.O_CLOEXEC

    def _add_fh(self, h) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self.fhs[fh] = h
        return fh

    def _open(self, ino, flags, ctx):
        node = self._node(ino)
        cached = None
        writing = flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC
        if node.gone:
            # (open of /proc/PID/fd/N of a file no name shows): the inode itself, reopened
            # through our own descriptor of it; a lower file only for reading
            if writing:
                self._rw()
            h = self._handle(node, upper=bool(writing))
            if h is None:
                raise FUSEError(_GONE)
            layer = h.layer
            fd = os.open(str(h.fd), self._open_flags(flags) & ~os.O_NOFOLLOW,
                         dir_fd=self.procfd)
        elif writing:
            self._rw()
            self._copy_up(node)
            layer = node.layer
            dfd, name = self._at(node)
            fd = _openat(dfd, name, self._open_flags(flags))
        elif node.layer != self.upper and not flags & (os.O_DIRECT | os.O_PATH):
            layer = node.layer
            cached = (node.ino, node.layer)
            dfd, name = self._at(node)
            fd = self.fdcache.get(cached, dfd, name, os.O_RDONLY)
            if node.ino not in self.stored:
                self._store_small(node, fd)
        else:
            layer = node.layer
            dfd, name = self._at(node)
            fd = _openat(dfd, name, self._open_flags(flags))
        node.handles += 1
        # keep_cache: pages stay valid across opens, every write goes through this mount.
        return FileInfo(fh=self._add_fh(FileHandle(fd, node, layer, cached)), keep_cache=True)

    def _store_small(self, node: Node, fd: int) -> None:
        """Put a small lower file into the kernel's page cache while it opens it, so its
        reads need no READ round trip (nor the GETATTR the kernel sends after a read to
        refresh atime): a file read whole costs open + release, not four requests."""
        self.stored.add(node.ino)
        # one pread, no fstat: a lower file does not change, so what it gives is the file
        data = os.pread(fd, _STORE_MAX + 1, 0)
        if 0 < len(data) <= _STORE_MAX:
            try:
                pyfuse3.notify_store(node.ino, 0, data)
            except OSError:
                pass

    def _create(self, parent_ino, name, mode, flags, ctx):
        d = self._node(parent_ino)
        pfd = self._prepare_new(d, name)
        perms = stat.S_IMODE(mode)
        fd = os.open(name, self._open_flags(flags) | os.O_CREAT | os.O_NOFOLLOW,
                     _disk_perms(perms, False), dir_fd=pfd)
        try:
            self._new_owner(pfd, name, ctx, perms, fd)
            entry = self._new_node(d, name, fd)
        except BaseException:
            os.close(fd)
            raise
        node = self.nodes[entry.st_ino]
        node.handles += 1
        fh = self._add_fh(FileHandle(fd, node, self.upper))
        return FileInfo(fh=fh, keep_cache=True), entry

    def _read(self, fh, off, size):
        h = self.fhs[fh]
        end = off + size
        if end > h.ahead - _AHEAD // 2 and size >= 65536:
            # Sequential reads: ask the disk for the next window now, so it is read while
            # this single-threaded server answers the kernel (cold reads of big files).
            start = max(end, h.ahead)
            os.posix_fadvise(h.fd, start, _AHEAD, os.POSIX_FADV_WILLNEED)
            h.ahead = start + _AHEAD
        return os.pread(h.fd, size, off)

    def _write(self, fh, off, buf):
        return os.pwrite(self.fhs[fh].fd, buf, off)

    def _release(self, fh):
        h = self.fhs.pop(fh)
        if h.cached is not None:
            self.fdcache.put(h.cached)
        else:
            os.close(h.fd)
        h.node.handles -= 1
        if h.node.lookups <= 0 and not h.node.handles:
            self._maybe_forget(h.node)

    def _fsync(self, fh, datasync):
        fd = self.fhs[fh].fd
        if datasync:
            os.fdatasync(fd)
        else:
            os.fsync(fd)

    def _opendir(self, ino, ctx):
        return self._add_fh(DirHandle(self._node(ino)))

    def _readdir(self, fh, start_id, token):
        h = self.fhs[fh]
        d = h.node
        if h.entries is None or start_id == 0:
            # A snapshot per open directory: offsets stay valid while the directory changes.
            h.entries = [(b".", None), (b"..", None), *self._merged(d)]
        entries = h.entries
        dfds = {}
        for i in range(start_id, len(entries)):
            name, li = entries[i]
            if li is None:  # . and ..: the kernel takes no lookup reference for them
                node = d if name == b"." else (d.parent or d)
                try:
                    attr = self._entry(node)
                except (OSError, FUSEError):
                    continue
                if not pyfuse3.readdir_reply(token, name, attr, i + 1):
                    return
                continue
            try:
                dfd = dfds.get(li)
                if dfd is None:
                    dfd = dfds[li] = self._dirfd(d, li)
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    r = self._resolve(d, name)
                    if r is None:
                        continue
                    li, st, dl = r
                    dfd = self._dirfd(d, li)
                else:
                    dl = None
            except FileNotFoundError:
                continue  # removed since the snapshot
            node = self._node_for(d, name, li, st, dl)
            attr = self._entry(node, st, self._ov_at(st, dfd, name))
            if not pyfuse3.readdir_reply(token, name, attr, i + 1):
                if node.lookups <= 0 and not node.handles:
                    self._maybe_forget(node)
                return
            node.lookups += 1

    def _releasedir(self, fh):
        del self.fhs[fh]

    def _fsyncdir(self, fh, datasync):
        node = self.fhs[fh].node
        if self.upper is not None and node.dirlayers[0] == self.upper:
            fd = os.open(b".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC,
                         dir_fd=self._upper_dirfd(node))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _statfs(self, ctx):
        sv = os.statvfs(self.rootfds[0])
        out = pyfuse3.StatvfsData()
        for f in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                  "f_ffree", "f_favail"):
            setattr(out, f, getattr(sv, f))
        out.f_namemax = sv.f_namemax - (len(WH) if self.upper is not None else 0)
        return out

    # -- xattrs: by (directory fd, name), or a gone node's open descriptor --

    def _xattr_target(self, node: Node, write: bool):
        """(fd, None, None) for a gone node (an open descriptor of it), else (None, dfd,
        name), copied up first when writing."""
        if node.gone:
            fd = self._handle_fd(node, upper=write)
            if fd is None:
                raise FUSEError(_GONE)
            return fd, None, None
        if write:
            self._copy_up(node)
        dfd, name = self._at(node)
        return None, dfd, name

    def _setxattr(self, ino, name, value, ctx):
        if metadata.is_internal_xattr(name):
            raise FUSEError(errno.EPERM)
        node = self._node(ino)
        self._rw()
        fd, dfd, fname = self._xattr_target(node, True)

        def put(n):
            if fd is not None:
                os.setxattr(fd, n, value)
            else:
                fdops.setxattr(dfd, fname, n, value)
        try:
            put(name)
        except OSError as e:
            if name.startswith(b"user.") or e.errno not in _REFUSED:
                raise
            # a name the disk refuses a plain user: keep it where the store keeps them
            put(metadata.stored_xattr_name(name))

    def _getxattr(self, ino, name, ctx):
        if metadata.is_internal_xattr(name):
            raise FUSEError(pyfuse3.ENOATTR)
        fd, dfd, fname = self._xattr_target(self._node(ino), False)

        def get(n):
            return os.getxattr(fd, n) if fd is not None else fdops.getxattr(dfd, fname, n)
        try:
            return get(name)
        except OSError as e:
            if name.startswith(b"user.") or e.errno not in (*_REFUSED, errno.ENODATA):
                raise
            return get(metadata.stored_xattr_name(name))

    def _listxattr(self, ino, ctx):
        fd, dfd, fname = self._xattr_target(self._node(ino), False)
        names = os.listxattr(fd) if fd is not None else fdops.listxattr(dfd, fname)
        out = []
        for n in names:
            shown = metadata.shown_xattr_name(n.encode())
            if shown is not None and shown not in out:
                out.append(shown)
        return out

    def _removexattr(self, ino, name, ctx):
        if metadata.is_internal_xattr(name):
            raise FUSEError(pyfuse3.ENOATTR)
        node = self._node(ino)
        self._rw()
        fd, dfd, fname = self._xattr_target(node, True)

        def rm(n):
            if fd is not None:
                os.removexattr(fd, n)
            else:
                fdops.removexattr(dfd, fname, n)
        try:
            rm(name)
        except OSError as e:
            if name.startswith(b"user.") or e.errno not in (*_REFUSED, errno.ENODATA):
                raise
            rm(metadata.stored_xattr_name(name))

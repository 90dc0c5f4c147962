"""The overlay itself: pyfuse3 Operations merging read-only lower layers under one upper dir.

Model. Every inode the kernel knows is a Node: its (parent, name), the layer its real file
is in (`layer`, 0 = upper when there is one), and for directories `dirlayers`, the layers
(top-down) whose directory of that path is merged in: the merge stops at an opaque directory,
a whiteout, or a non-directory. A node's path is found by walking parents, so renaming a
directory moves every node below it at once.

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
locking is needed.

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
import shutil
import stat
from typing import ClassVar

import pyfuse3
from pyfuse3 import EntryAttributes, FileInfo, FUSEError

from . import copyup, metadata

log = logging.getLogger("fuse_overlay")

TIMEOUT = 86400.0  # entry, attribute and negative-lookup cache lifetime (seconds)
WH = metadata.WHITEOUT_PREFIX.encode()
OPQ = metadata.OPAQUE_MARKER.encode()
_FALLBACK_INO = 1 << 62
_AHEAD = 8 << 20
_REFUSED = (errno.EPERM, errno.EACCES, errno.EOPNOTSUPP)
_STORE_MAX = 64 << 10  # lower files up to this size go to the page cache at open


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
    __slots__ = ("ahead", "cached", "fd", "node")

    def __init__(self, fd, node, cached=None):
        self.fd = fd
        self.node = node
        self.ahead = 0  # how far the underlying file has been asked to read ahead
        self.cached = cached  # the _FdCache key when fd belongs to the cache


class _FdCache:
    """Read-only descriptors of lower-layer files, kept across open/close: reopening a file
    (a build reading headers, an interpreter importing modules) costs no open(2)/close(2).
    Lower files never change, so a descriptor stays right as long as the node reads from
    that layer; the key holds the layer, so a copied-up node gets a new descriptor."""

    def __init__(self, size: int = 512) -> None:
        from collections import OrderedDict

        self.size = size
        self.fds: OrderedDict = OrderedDict()  # (ino, layer) -> [fd, users]

    def get(self, key, path: bytes, flags: int) -> int:
        ent = self.fds.get(key)
        if ent is not None:
            self.fds.move_to_end(key)
            ent[1] += 1
            return ent[0]
        fd = os.open(path, flags)
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


class DirHandle:
    __slots__ = ("entries", "node")

    def __init__(self, node):
        self.node = node
        self.entries = None


def _errors(fn):
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
    return wrapper


def _join(base: bytes, name: bytes) -> bytes:
    return base + b"/" + name if base else name


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


_RENAME_EXCHANGE = 2
_libc = None


def _renameat2(old: bytes, new: bytes, flags: int) -> None:
    """renameat2(2), which os.rename does not offer (hand-written: no library has it)."""
    global _libc
    import ctypes

    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                    ctypes.c_char_p, ctypes.c_uint)
        _libc.renameat2.restype = ctypes.c_int
    at_fdcwd = -100
    if _libc.renameat2(at_fdcwd, old, at_fdcwd, new, flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


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
        for op in self._fs_ops:  # bind the synchronous _op implementations as coroutines
            setattr(self, op, _errors(getattr(self, "_" + op)))
        self.enable_writeback_cache = writeback
        self.realchown = realchown
        self.unmapped = _unmapped_test() if squash_unmapped else None
        self.layers = ([os.fsencode(upperdir)] if upperdir else []) + \
            [os.fsencode(d) for d in lowerdirs]
        self.upper = 0 if upperdir else None
        self.work = None
        if upperdir:
            self.work = os.path.join(os.fsencode(workdir), b"fuse-overlay.work")
            self._clean_work()
        self.uid, self.gid = os.geteuid(), os.getegid()
        self.nodes: dict[int, Node] = {}
        self.by_key: dict[int, Node] = {}
        self.origin_ino: dict[tuple[int, int], int] = {}  # copied-up file -> node number
        self.devs: dict[int, int] = {}
        self.fhs: dict[int, object] = {}
        self.fdcache = _FdCache()
        self.stored: set[int] = set()  # nodes whose data was pushed to the page cache
        self._link_index: dict[int, dict[int, list[bytes]]] = {}
        self._next_fh = 1
        self._next_ino = _FALLBACK_INO
        self._tmp = 0
        for layer in self.layers:  # device indexes (part of inode numbers) in layer order,
            self._key(os.stat(layer))  # not in the order of first access: same every mount
        root_layers = []
        for i, root in enumerate(self.layers):
            root_layers.append(i)
            if i + 1 < len(self.layers) and metadata.is_opaque_dir(root):
                break
        root = Node(pyfuse3.ROOT_INODE, None, b"", root_layers[0], tuple(root_layers))
        root.lookups = 1
        st = os.lstat(self.layers[root.layer])
        root.keys = (self._key(st),)
        self.nodes[root.ino] = root

    # ---- helpers -------------------------------------------------------------------------

    def _clean_work(self) -> None:
        """Remove what an interrupted copy-up left in the workdir."""
        import shutil

        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work, mode=0o700, exist_ok=True)

    def _tmpname(self) -> bytes:
        self._tmp += 1
        return self.work + b"/#%d.%d" % (os.getpid(), self._tmp)

    def _rw(self) -> None:
        if self.upper is None:
            raise FUSEError(errno.EROFS)

    def _rel(self, node: Node) -> bytes:
        parts = []
        while node.parent is not None:
            parts.append(node.name)
            node = node.parent
        if not parts:
            return b""
        parts.reverse()
        return b"/".join(parts)

    def _abs(self, layer: int, rel: bytes) -> bytes:
        return self.layers[layer] + b"/" + rel if rel else self.layers[layer]

    def _path(self, node: Node) -> bytes:
        return self._abs(node.layer, self._rel(node))

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

    def _resolve(self, d: Node, name: bytes, layers=None):
        """Find `name` in directory node `d`: (layer, lstat, dirlayers-or-None) or None."""
        base = self._rel(d)
        rel = _join(base, name)
        layers = d.dirlayers if layers is None else layers
        found = None
        dl = []
        last = len(self.layers) - 1
        for li in layers:
            root = self.layers[li]
            p = root + b"/" + rel
            try:
                st = os.lstat(p)
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                    raise
                if os.path.lexists(root + b"/" + _join(base, WH + name)):
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
            if li != last and (metadata.is_opaque_dir(p) or
                               os.path.lexists(root + b"/" + _join(base, WH + name))):
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
        if layer == self.upper and not fresh and key not in self.origin_ino:
            # a copy made at an earlier mount shows the number its original showed
            origin = metadata.read_origin_ino(self._abs(layer, _join(self._rel(parent), name)))
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
                for key in node.keys:
                    if self.by_key.get(key) is node:
                        del self.by_key[key]
        elif node.extra and (parent, name) in node.extra:
            node.extra.remove((parent, name))

    def _maybe_forget(self, node: Node) -> None:
        if node.lookups <= 0 and node.ino != pyfuse3.ROOT_INODE:
            self.fdcache.drop(node.ino)
            self.stored.discard(node.ino)
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

    def _shown(self, st, path: bytes):
        """(uid, gid, mode, rdev) as presented for a real file."""
        uid, gid, mode, rdev = st.st_uid, st.st_gid, st.st_mode, st.st_rdev
        if not stat.S_ISLNK(mode):
            ov = metadata.read_override(path)
            if ov is not None:
                uid, gid = ov.uid, ov.gid
                if self.unmapped is not None:
                    uid, gid = self.unmapped(uid, gid)
                mode = (ov.ftype if ov.ftype is not None else stat.S_IFMT(mode)) | ov.mode
                if ov.ftype is not None:
                    rdev = ov.rdev
        return uid, gid, mode, rdev

    def _entry(self, node: Node, st=None, path: bytes | None = None) -> EntryAttributes:
        if path is None:
            path = self._path(node)
        if st is None:
            st = self._stat(node, path)
        e = EntryAttributes()
        e.st_ino = node.ino
        e.generation = 0
        e.entry_timeout = TIMEOUT
        e.attr_timeout = TIMEOUT
        e.st_uid, e.st_gid, e.st_mode, e.st_rdev = self._shown(st, path)
        e.st_nlink = 1 if node.dirlayers is not None and len(node.dirlayers) > 1 else st.st_nlink
        e.st_size = st.st_size
        e.st_blksize = st.st_blksize
        e.st_blocks = st.st_blocks
        e.st_atime_ns = st.st_atime_ns
        e.st_mtime_ns = st.st_mtime_ns
        e.st_ctime_ns = st.st_ctime_ns
        return e

    def _stat(self, node: Node, path: bytes):
        if node.gone:
            for h in self.fhs.values():
                if isinstance(h, FileHandle) and h.node is node:
                    return os.fstat(h.fd)
            raise FUSEError(errno.ENOENT)
        return os.lstat(path)

    def _merged(self, d: Node) -> list[tuple[bytes, int]]:
        """The visible names of directory node `d` with the layer each comes from."""
        seen: set[bytes] = set()
        out = []
        base = self._rel(d)
        for li in d.dirlayers:
            hidden = []
            try:
                it = os.scandir(self._abs(li, base))
            except FileNotFoundError:
                continue
            with it:
                for de in it:
                    n = de.name
                    if n[:4] == WH:
                        if n != OPQ:
                            hidden.append(n[4:])
                        continue
                    if n in seen:
                        continue
                    seen.add(n)
                    if not (de.is_file(follow_symlinks=False) or de.is_dir(follow_symlinks=False)
                            or de.is_symlink()) and \
                            metadata.is_whiteout_device(de.stat(follow_symlinks=False)):
                        continue
                    out.append((n, li))
            seen.update(hidden)
        return out

    def _copy_up_dir(self, d: Node) -> None:
        """Make sure directory node `d` exists in the upper layer."""
        if d.dirlayers[0] == self.upper:
            return
        self._rw()
        self._copy_up_dir(d.parent)
        src = self._abs(d.dirlayers[0], self._rel(d))
        st = os.lstat(src)
        shown = self._shown(st, src)[:3]
        tmp = self._tmpname()
        os.mkdir(tmp, 0o700)
        try:
            copyup.finish_copy(src, st, tmp, shown, False, self.realchown)
            metadata.write_origin_ino(tmp, d.ino)  # the same number after a remount
            os.rename(tmp, self._abs(self.upper, self._rel(d)))
        except BaseException:
            os.rmdir(tmp)
            raise
        d.dirlayers = (self.upper, *d.dirlayers)
        d.layer = self.upper
        up = os.lstat(self._abs(self.upper, self._rel(d)))
        d.keys = (*d.keys, self._key(up))
        self.by_key[d.keys[-1]] = d

    def _copy_up(self, node: Node) -> None:
        """Make sure non-directory `node` is in the upper layer (with all its known links)."""
        if node.dirlayers is not None:
            self._copy_up_dir(node)
            return
        if node.layer == self.upper:
            return
        self._rw()
        self._copy_up_dir(node.parent)
        src_layer = node.layer
        src = self._path(node)
        st = os.lstat(src)
        shown = self._shown(st, src)[:3]
        tmp = self._tmpname()
        try:
            as_type = copyup.make_like(src, st, tmp)
            copyup.finish_copy(src, st, tmp, shown, as_type, self.realchown)
            metadata.write_origin_ino(tmp, node.ino)  # the same number after a remount
            dst = self._abs(self.upper, self._rel(node))
            os.rename(tmp, dst)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        node.layer = self.upper
        up = os.lstat(dst)
        key = self._key(up)
        node.keys = (*node.keys, key)
        self.by_key[key] = node
        self.origin_ino[key] = node.ino
        if st.st_nlink > 1:
            self._copy_up_links(node, src_layer, st, dst)

    def _copy_up_links(self, node: Node, layer: int, st, dst: bytes) -> None:
        """Keep a hard-linked lower file one inode: give every other visible name of it in
        its layer (and every name the node is known by) the same upper inode."""
        for rel in self._lower_aliases(layer, st):
            d = self.nodes[pyfuse3.ROOT_INODE]
            made = []
            try:
                for comp in rel.split(b"/"):
                    d, _st = self._live_child(d, comp)
                    made.append(d)
            except (FUSEError, OSError):
                pass  # not visible (whited out, shadowed): nothing to keep
            for n in made:
                if n is not node and n.lookups <= 0 and not n.handles:
                    self._maybe_forget(n)
        for parent, name in list(node.extra or ()):
            self._copy_up_dir(parent)
            other = self._abs(self.upper, _join(self._rel(parent), name))
            if os.path.lexists(other):
                continue
            os.link(dst, other)
            self._clear_whiteout(parent, name)

    def _lower_aliases(self, layer: int, st) -> list[bytes]:
        """Paths (relative) of the files in `layer` with the inode of `st`: an index of the
        layer's hard-linked files, built once, the first time one is copied up."""
        idx = self._link_index.get(layer)
        if idx is None:
            idx = {}
            root = self.layers[layer]
            for dirpath, _dirs, files in os.walk(root):
                for n in files:
                    p = os.path.join(dirpath, n)
                    try:
                        s = os.lstat(p)
                    except OSError:
                        continue
                    if s.st_nlink > 1:
                        idx.setdefault(s.st_ino, []).append(os.path.relpath(p, root))
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

    def _clear_whiteout(self, d: Node, name: bytes) -> bool:
        """Remove a whiteout for `name` from the upper dir of `d`; True if there was one."""
        base = self._abs(self.upper, self._rel(d))
        had = False
        try:
            os.unlink(base + b"/" + WH + name)
            had = True
        except FileNotFoundError:
            pass
        p = base + b"/" + name
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return had
        if metadata.is_whiteout_device(st):
            os.unlink(p)
            return True
        return had

    def _set_opaque_xattr(self, path: bytes) -> None:
        try:
            os.setxattr(path, metadata.OPAQUE_XATTRS[0], b"y", follow_symlinks=False)
        except OSError as e:
            if e.errno not in (*_REFUSED, errno.ENOTSUP):
                raise
            # no user xattrs on this disk: emptied without it (a crash meanwhile may show
            # the lower directory's files at the name)

    def _whiteout(self, d: Node, name: bytes) -> None:
        p = self._abs(self.upper, _join(self._rel(d), WH + name))
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))

    def _check_name(self, name: bytes) -> None:
        if name.startswith(WH):
            raise FUSEError(errno.EPERM)  # would read as a whiteout: see metadata.py

    def _new_owner(self, path: bytes, ctx, fd: int | None = None, is_link=False) -> None:
        """Give a new file the creator's ids (xattr when they differ from the disk's)."""
        uid, gid = ctx.uid, ctx.gid
        if uid == self.uid and gid == self.gid:
            return
        st = os.fstat(fd) if fd is not None else os.lstat(path)
        if gid != st.st_gid and gid != self.gid:
            parent = os.lstat(os.path.dirname(path))
            if parent.st_mode & stat.S_ISGID:
                gid = st.st_gid  # inherited from a setgid directory
        if (uid, gid) == (st.st_uid, st.st_gid):
            return
        if self.realchown or is_link:
            try:
                os.lchown(path, uid, gid)
            except OSError:
                pass
        if not is_link:
            metadata.write_override(path, metadata.Override(uid, gid, stat.S_IMODE(st.st_mode)))

    def _prepare_new(self, d: Node, name: bytes) -> bytes:
        """Checks before creating `name` in `d`; returns its upper path."""
        self._rw()
        self._check_name(name)
        self._copy_up_dir(d)
        return self._abs(self.upper, _join(self._rel(d), name))

    def _new_node(self, d: Node, name: bytes, path: bytes, fd: int | None = None
                  ) -> EntryAttributes:
        if d.dirlayers != (self.upper,):
            # (in a directory with no lower part, any whiteout is moot: nothing to clear)
            self._clear_whiteout(d, name)
        st = os.lstat(path) if fd is None else os.fstat(fd)
        node = self._node_for(d, name, self.upper,
                              st, (self.upper,) if stat.S_ISDIR(st.st_mode) else None,
                              fresh=True)
        node.lookups += 1
        return self._entry(node, st, path)

    # ---- operations ----------------------------------------------------------------------

    def _lookup(self, parent_ino, name, ctx):
        d = self._node(parent_ino)
        if name == b".":
            node = d
        elif name == b"..":
            node = d.parent or d
        elif name[:4] == WH:
            node = None
        else:
            r = self._resolve(d, name)
            if r is None:
                node = None
            else:
                li, st, dl = r
                node = self._node_for(d, name, li, st, dl)
                node.lookups += 1
                return self._entry(node, st, self._abs(li, _join(self._rel(d), name)))
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
        self._copy_up(node)
        # the file, or for an open file whose last name is gone (ftruncate, fchmod after
        # unlink) a descriptor of it
        t = self._path(node)
        if node.gone:
            t = next((h.fd for h in self.fhs.values()
                      if isinstance(h, FileHandle) and h.node is node), None)
            if t is None:
                raise FUSEError(errno.ENOENT)
        by_fd = isinstance(t, int)
        nofollow = {} if by_fd else {"follow_symlinks": False}
        if fields.update_size:
            h = self.fhs.get(fh) if fh else None
            if isinstance(h, FileHandle):
                os.ftruncate(h.fd, attr.st_size)
            else:
                os.truncate(t, attr.st_size)
        is_link = stat.S_ISLNK(os.stat(t, **nofollow).st_mode)
        if fields.update_mode and not is_link:
            perms = stat.S_IMODE(attr.st_mode)
            ov = metadata.read_override(t)
            if ov is not None:
                metadata.write_override(t, metadata.Override(ov.uid, ov.gid, perms,
                                                             ov.ftype, ov.rdev))
            os.chmod(t, perms)
        if fields.update_uid or fields.update_gid:
            cur_uid, cur_gid, cur_mode, _ = self._shown(os.stat(t, **nofollow), t)
            uid = attr.st_uid if fields.update_uid else cur_uid
            gid = attr.st_gid if fields.update_gid else cur_gid
            if is_link or self.realchown:
                try:
                    os.chown(t, uid, gid, **nofollow)
                except OSError:
                    pass
            if not is_link:
                ov = metadata.read_override(t)
                metadata.write_override(t, metadata.Override(
                    uid, gid, stat.S_IMODE(cur_mode), ov.ftype if ov else None,
                    ov.rdev if ov else 0))
        if fields.update_atime or fields.update_mtime:
            cur = os.stat(t, **nofollow)
            a = attr.st_atime_ns if fields.update_atime else cur.st_atime_ns
            m = attr.st_mtime_ns if fields.update_mtime else cur.st_mtime_ns
            os.utime(t, ns=(a, m), **nofollow)
        return self._entry(node)

    def _readlink(self, ino, ctx):
        return os.readlink(self._path(self._node(ino)))

    def _mknod(self, parent_ino, name, mode, rdev, ctx):
        d = self._node(parent_ino)
        path = self._prepare_new(d, name)
        kind = stat.S_IFMT(mode)
        perms = stat.S_IMODE(mode)
        as_type = False
        if kind in (stat.S_IFCHR, stat.S_IFBLK):
            # A real 0/0 device would read as a kernel-form whiteout; other devices cannot
            # be made in a user namespace: both are recorded in the override xattr.
            try:
                if rdev == 0:
                    raise PermissionError
                os.mknod(path, mode, rdev)
            except PermissionError:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                 perms))
                as_type = True
        else:
            os.mknod(path, kind | perms, 0)
        if as_type:
            metadata.write_override(path, metadata.Override(ctx.uid, ctx.gid, perms, kind, rdev))
        else:
            self._new_owner(path, ctx)
        return self._new_node(d, name, path)

    def _mkdir(self, parent_ino, name, mode, ctx):
        d = self._node(parent_ino)
        path = self._prepare_new(d, name)
        if self._lower_has(d, name):
            # Re-created over a lower directory or file: opaque, built in workdir.
            tmp = self._tmpname()
            os.mkdir(tmp, stat.S_IMODE(mode))
            os.close(os.open(tmp + b"/" + OPQ, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
            self._new_owner(tmp, ctx)
            try:
                os.rename(tmp, path)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                    raise
                # a kernel-form whiteout (char 0/0) sits at the name
                st = os.lstat(path)
                if not metadata.is_whiteout_device(st):
                    raise
                os.unlink(path)
                os.rename(tmp, path)
        else:
            os.mkdir(path, stat.S_IMODE(mode))
            self._new_owner(path, ctx)
        return self._new_node(d, name, path)

    def _unlink(self, parent_ino, name, ctx):
        self._remove(parent_ino, name, False)

    def _rmdir(self, parent_ino, name, ctx):
        self._remove(parent_ino, name, True)

    def _empty_upper_dir(self, path: bytes) -> None:
        """Remove what only marks things hidden (whiteouts, opaque marker) from an upper dir."""
        with os.scandir(path) as it:
            for de in it:
                os.unlink(de.path)

    def _remove(self, parent_ino, name, isdir):
        d = self._node(parent_ino)
        self._rw()
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
            path = self._abs(self.upper, _join(self._rel(d), name))
            if not isdir:
                os.unlink(path)
            elif lower:
                # the upper directory holds whiteouts of the lower one's files: emptied in
                # place, a crash would show those files again; moved whole into the
                # workdir, it leaves at once (leftovers there go at the next mount)
                tmp = self._tmpname()
                os.rename(path, tmp)
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                self._empty_upper_dir(path)
                os.rmdir(path)
        self._drop_name(node, d, name)
        if node.lookups <= 0:
            self._maybe_forget(node)

    def _symlink(self, parent_ino, name, target, ctx):
        d = self._node(parent_ino)
        path = self._prepare_new(d, name)
        os.symlink(target, path)
        self._new_owner(path, ctx, is_link=True)
        return self._new_node(d, name, path)

    def _rename(self, old_ino, old_name, new_ino, new_name, flags, ctx):
        self._rw()
        if flags & ~(pyfuse3.RENAME_NOREPLACE | pyfuse3.RENAME_EXCHANGE):
            raise FUSEError(errno.EINVAL)
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
        old_path = self._abs(self.upper, _join(self._rel(od), old_name))
        new_path = self._abs(self.upper, _join(self._rel(nd), new_name))
        if dst is not None and dst.layer == self.upper and dst.dirlayers is not None:
            if dst.dirlayers != (self.upper,):
                # opaque (xattr: no entry, so the rename can still replace it) before its
                # whiteouts go, so a crash meanwhile shows it empty, as it is
                self._set_opaque_xattr(new_path)
            self._empty_upper_dir(new_path)
        try:
            st = os.lstat(new_path)
            if metadata.is_whiteout_device(st):
                os.unlink(new_path)
        except FileNotFoundError:
            pass
        if moved_lower_dir or (src.dirlayers is not None and self._lower_has(nd, new_name)):
            os.close(os.open(old_path + b"/" + OPQ, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
                             0o600))
        if self._lower_has(od, old_name):
            self._whiteout(od, old_name)  # first: see _remove
        os.rename(old_path, new_path)
        try:
            os.unlink(self._abs(self.upper, _join(self._rel(nd), WH + new_name)))
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
        old_path = self._abs(self.upper, _join(self._rel(od), old_name))
        new_path = self._abs(self.upper, _join(self._rel(nd), new_name))
        for node, path, (parent, name) in ((src, old_path, (nd, new_name)),
                                            (dst, new_path, (od, old_name))):
            if node.dirlayers is not None and self._lower_has(parent, name):
                os.close(os.open(path + b"/" + OPQ, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC,
                                 0o600))
        _renameat2(old_path, new_path, _RENAME_EXCHANGE)
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
        path = self._prepare_new(d, new_name)
        self._copy_up(node)
        os.link(self._path(node), path)
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
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            self._rw()
            self._copy_up(node)
            fd = os.open(self._path(node), self._open_flags(flags))
        elif node.layer != self.upper and not flags & (os.O_DIRECT | os.O_PATH):
            cached = (node.ino, node.layer)
            fd = self.fdcache.get(cached, self._path(node), os.O_RDONLY | os.O_CLOEXEC)
            if node.ino not in self.stored:
                self._store_small(node, fd)
        else:
            fd = os.open(self._path(node), self._open_flags(flags))
        node.handles += 1
        # keep_cache: pages stay valid across opens, every write goes through this mount.
        return FileInfo(fh=self._add_fh(FileHandle(fd, node, cached)), keep_cache=True)

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
        path = self._prepare_new(d, name)
        fd = os.open(path, self._open_flags(flags) | os.O_CREAT, stat.S_IMODE(mode))
        try:
            self._new_owner(path, ctx, fd)
            entry = self._new_node(d, name, path, fd)
        except BaseException:
            os.close(fd)
            raise
        node = self.nodes[entry.st_ino]
        node.handles += 1
        return FileInfo(fh=self._add_fh(FileHandle(fd, node)), keep_cache=True), entry

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
        base = self._rel(d)
        entries = h.entries
        for i in range(start_id, len(entries)):
            name, li = entries[i]
            if li is None:  # . and ..: the kernel takes no lookup reference for them
                node = d if name == b"." else (d.parent or d)
                try:
                    attr = self._entry(node)
                except OSError:
                    continue
                if not pyfuse3.readdir_reply(token, name, attr, i + 1):
                    return
                continue
            path = self._abs(li, _join(base, name))
            try:
                st = os.lstat(path)
                if stat.S_ISDIR(st.st_mode):
                    r = self._resolve(d, name)
                    if r is None:
                        continue
                    li, st, dl = r
                    path = self._abs(li, _join(base, name))
                else:
                    dl = None
            except FileNotFoundError:
                continue  # removed since the snapshot
            node = self._node_for(d, name, li, st, dl)
            attr = self._entry(node, st, path)
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
            fd = os.open(self._path(node), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _statfs(self, ctx):
        sv = os.statvfs(self.layers[0])
        out = pyfuse3.StatvfsData()
        for f in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files",
                  "f_ffree", "f_favail"):
            setattr(out, f, getattr(sv, f))
        out.f_namemax = sv.f_namemax - (len(WH) if self.upper is not None else 0)
        return out

    def _setxattr(self, ino, name, value, ctx):
        if metadata.is_internal_xattr(name):
            raise FUSEError(errno.EPERM)
        node = self._node(ino)
        self._rw()
        self._copy_up(node)
        path = self._path(node)
        try:
            os.setxattr(path, name, value, 0, follow_symlinks=False)
        except OSError as e:
            if name.startswith(b"user.") or e.errno not in _REFUSED:
                raise
            # a name the disk refuses a plain user: keep it where the store keeps them
            os.setxattr(path, metadata.stored_xattr_name(name), value, 0,
                        follow_symlinks=False)

    def _getxattr(self, ino, name, ctx):
        if metadata.is_internal_xattr(name):
            raise FUSEError(pyfuse3.ENOATTR)
        path = self._path(self._node(ino))
        try:
            return os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if name.startswith(b"user.") or e.errno not in (*_REFUSED, errno.ENODATA):
                raise
            return os.getxattr(path, metadata.stored_xattr_name(name), follow_symlinks=False)

    def _listxattr(self, ino, ctx):
        out = []
        for n in os.listxattr(self._path(self._node(ino)), follow_symlinks=False):
            shown = metadata.shown_xattr_name(n.encode())
            if shown is not None and shown not in out:
                out.append(shown)
        return out

    def _removexattr(self, ino, name, ctx):
        if metadata.is_internal_xattr(name):
            raise FUSEError(pyfuse3.ENOATTR)
        node = self._node(ino)
        self._rw()
        self._copy_up(node)
        path = self._path(node)
        try:
            os.removexattr(path, name, follow_symlinks=False)
        except OSError as e:
            if name.startswith(b"user.") or e.errno not in (*_REFUSED, errno.ENODATA):
                raise
            os.removexattr(path, metadata.stored_xattr_name(name), follow_symlinks=False)

"""What the fuse_overlay tests do inside the user namespace (run by nsworker.py).

Each public function takes and returns JSON-able values. Layers are built from specs:
a list of [path, kind, arg] with kind file (arg: text), dir, symlink (arg: target), fifo,
hardlink (arg: existing path), whiteout, opaque (arg unused), xattr (arg: [name, value]),
chown (arg: [uid, gid], the real owner), override (arg: the override_stat value).
Whiteouts and opaque dirs are written in the `form` asked: "oci" (`.wh.` names) or "kernel"
(char 0/0 and the user.overlay.opaque xattr) -- the kernel's overlayfs reads only the latter.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

import fuse_overlay
from fuse_overlay import metadata

BASE = os.environ.get("FO_TEST_BASE", "/tmp")
_mounts: list[tuple[str, subprocess.Popen | None]] = []
SKIP_XATTRS = ("user.overlay.", "trusted.overlay.", metadata.OVERRIDE_XATTR, "security.")


def new_dir(prefix: str = "t") -> str:
    d = tempfile.mkdtemp(prefix=prefix, dir=BASE)
    os.chmod(d, 0o755)
    return d


def remove_tree(path: str) -> None:
    cleanup_mounts()
    shutil.rmtree(path, ignore_errors=True)


# ---- layers ------------------------------------------------------------------------------

def build_layer(root: str, spec: list, form: str = "oci") -> None:
    os.makedirs(root, exist_ok=True)
    for path, kind, arg in spec:
        p = os.path.join(root, path)
        parent = os.path.dirname(p)
        os.makedirs(parent, exist_ok=True)
        if kind == "file":
            with open(p, "w") as f:
                f.write(arg)
        elif kind == "bytes":
            with open(p, "wb") as f:
                f.write(bytes.fromhex(arg))
        elif kind == "dir":
            os.makedirs(p, exist_ok=True)
            if arg:
                os.chmod(p, int(arg, 8))
        elif kind == "mode":
            os.chmod(p, int(arg, 8))
        elif kind == "symlink":
            os.symlink(arg, p)
        elif kind == "fifo":
            os.mkfifo(p)
        elif kind == "hardlink":
            os.link(os.path.join(root, arg), p)
        elif kind == "whiteout":
            if form == "oci":
                wh = os.path.join(parent, ".wh." + os.path.basename(p))
                open(wh, "w").close()
            else:
                os.mknod(p, stat.S_IFCHR | 0o600, 0)
        elif kind == "opaque":
            os.makedirs(p, exist_ok=True)
            if form == "oci":
                open(os.path.join(p, ".wh..wh..opq"), "w").close()
            else:
                os.setxattr(p, "user.overlay.opaque", b"y")
        elif kind == "xattr":
            os.setxattr(p, arg[0], arg[1].encode(), follow_symlinks=False)
        elif kind == "chown":
            os.lchown(p, arg[0], arg[1])
        elif kind == "override":
            os.setxattr(p, metadata.OVERRIDE_XATTR, arg.encode())
        else:
            raise ValueError(kind)


def make_layers(layers: list[list], form: str = "oci") -> dict:
    """Lower layers (top-most first) from specs, plus empty upper, work, mountpoint."""
    top = new_dir("ov")
    lowers = []
    for i, spec in enumerate(layers):
        d = os.path.join(top, f"l{i}")
        build_layer(d, spec, form)
        lowers.append(d)
    paths = {"top": top, "lowers": lowers}
    for name in ("upper", "work", "mnt"):
        paths[name] = os.path.join(top, name)
        os.mkdir(paths[name])
    return paths


# ---- mounting ----------------------------------------------------------------------------

def mount_fuse(lowers: list[str], upper: str | None, work: str | None, mnt: str,
               extra: str = "") -> subprocess.Popen:
    r, w = os.pipe()
    opts = "lowerdir=" + ":".join(lowers)
    if upper:
        opts += f",upperdir={upper},workdir={work}"
    opts += f",ready_fd={w}" + ("," + extra if extra else "")
    proc = subprocess.Popen([sys.executable, "-m", "fuse_overlay.cli", "-f", "-o", opts, mnt],
                            pass_fds=(w,), stderr=subprocess.PIPE)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        ok = f.read(1)
    if ok != b"1":
        err = proc.communicate(timeout=10)[1].decode()
        raise RuntimeError(f"fuse-overlay did not mount: {err}")
    _mounts.append((mnt, proc))
    return proc


def mount_kernel(lowers: list[str], upper: str | None, work: str | None, mnt: str) -> None:
    opts = "lowerdir=" + ":".join(lowers)
    if upper:
        opts += f",upperdir={upper},workdir={work}"
    opts += ",userxattr"
    subprocess.run(["mount", "-t", "overlay", "-o", opts, "overlay", mnt], check=True,
                   capture_output=True)
    _mounts.append((mnt, None))


def mount(kind: str, paths: dict, extra: str = "", readonly: bool = False):
    upper = None if readonly else paths["upper"]
    work = None if readonly else paths["work"]
    if kind == "kernel":
        return mount_kernel(paths["lowers"], upper, work, paths["mnt"])
    return mount_fuse(paths["lowers"], upper, work, paths["mnt"], extra)


def umount(mnt: str) -> None:
    for i, (m, proc) in enumerate(_mounts):
        if m == mnt:
            del _mounts[i]
            subprocess.run(["umount", mnt], check=True, capture_output=True)
            if proc is not None:
                proc.wait(timeout=20)
                assert proc.returncode == 0, proc.stderr.read().decode()
            return
    raise KeyError(mnt)


def cleanup_mounts() -> None:
    while _mounts:
        m, proc = _mounts.pop()
        subprocess.run(["umount", "-l", m], capture_output=True)
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ---- looking at trees ----------------------------------------------------------------------

def _xattrs(p: str) -> dict:
    try:
        names = os.listxattr(p, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for n in sorted(names):
        if n.startswith(SKIP_XATTRS):
            continue
        try:
            out[n] = os.getxattr(p, n, follow_symlinks=False).decode("latin-1")
        except OSError as e:
            out[n] = f"<{errno.errorcode.get(e.errno)}>"
    return out


def describe(p: str, st: os.stat_result, ids: bool = True) -> dict:
    m = st.st_mode
    d = {"mode": oct(stat.S_IMODE(m)), "nlink": st.st_nlink}
    if ids:
        d["uid"], d["gid"] = st.st_uid, st.st_gid
    if stat.S_ISREG(m):
        d["type"] = "file"
        d["size"] = st.st_size
        with open(p, "rb") as f:
            d["sha"] = hashlib.sha1(f.read()).hexdigest()[:12]
    elif stat.S_ISDIR(m):
        d["type"] = "dir"
        d["size"] = st.st_size
    elif stat.S_ISLNK(m):
        d["type"] = "symlink"
        d["target"] = os.readlink(p)
        d.pop("mode")
    elif stat.S_ISFIFO(m):
        d["type"] = "fifo"
    elif stat.S_ISSOCK(m):
        d["type"] = "socket"
    else:
        d["type"] = f"dev-{os.major(st.st_rdev)}-{os.minor(st.st_rdev)}"
    if not stat.S_ISLNK(m):
        d["xattrs"] = _xattrs(p)
    return d


def snapshot(root: str, ids: bool = True) -> dict:
    """Everything a user sees below root, by relative path; hard links as groups."""
    out = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            out[rel] = describe(p, st, ids)
            if not stat.S_ISDIR(st.st_mode):
                inodes.setdefault(st.st_ino, []).append(rel)
    groups = sorted(sorted(g) for g in inodes.values() if len(g) > 1)
    return {"tree": out, "links": groups}


def upper_state(upper: str) -> dict:
    """The upper dir with the whiteout and opaque forms normalised: {rel: kind}."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, upper)
            st = os.lstat(p)
            if name == metadata.OPAQUE_MARKER:
                continue
            if name.startswith(".wh."):
                out[os.path.join(os.path.dirname(rel), name[4:])] = "whiteout"
            elif metadata.is_whiteout_device(st):
                out[rel] = "whiteout"
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    out[rel] = "file:" + hashlib.sha1(f.read()).hexdigest()[:12]
            else:
                out[rel] = "other"
    return out


# ---- operations ----------------------------------------------------------------------------

def apply_ops(root: str, ops: list) -> list:
    """Run operations on a mounted tree; each gives "ok", a value, or an errno name."""
    results = []
    for op in ops:
        name, args = op[0], op[1:]
        where = PATH_ARGS.get(name, (0,))
        p = [os.path.join(root, a) if i in where else a for i, a in enumerate(args)]
        try:
            results.append(_op(name, p))
        except OSError as e:
            results.append(errno.errorcode.get(e.errno, str(e.errno)))
    return results


PATH_ARGS = {"rename": (0, 1), "link": (0, 1), "symlink": (1,), "exchange": (0, 1)}


def _op(name: str, p: list):
    if name == "write":
        with open(p[0], "w") as f:
            f.write(p[1])
    elif name == "append":
        with open(p[0], "a") as f:
            f.write(p[1])
    elif name == "read":
        with open(p[0]) as f:
            return f.read()
    elif name == "rw":  # open read-write, write in the middle
        fd = os.open(p[0], os.O_RDWR)
        try:
            os.pwrite(fd, p[1].encode(), 1)
        finally:
            os.close(fd)
    elif name == "truncate":
        os.truncate(p[0], p[1])
    elif name == "mkdir":
        os.mkdir(p[0])
    elif name == "rmdir":
        os.rmdir(p[0])
    elif name == "unlink":
        os.unlink(p[0])
    elif name == "rename":
        try:
            os.rename(p[0], p[1])
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            # what mv does when the kernel's overlayfs refuses to rename a lower directory
            if os.path.isdir(p[1]) and not os.path.islink(p[1]):
                os.rmdir(p[1])
            shutil.copytree(p[0], p[1], symlinks=True)
            shutil.rmtree(p[0])
    elif name == "symlink":
        os.symlink(p[0], p[1])
    elif name == "exchange":  # renameat2(RENAME_EXCHANGE)
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.renameat2(-100, os.fsencode(p[0]), -100, os.fsencode(p[1]), 2) != 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
    elif name == "link":
        os.link(p[0], p[1])
    elif name == "chmod":
        os.chmod(p[0], p[1])
    elif name == "setxattr":
        os.setxattr(p[0], p[1], p[2].encode(), follow_symlinks=False)
    elif name == "removexattr":
        os.removexattr(p[0], p[1], follow_symlinks=False)
    elif name == "utime":
        os.utime(p[0], (p[1], p[1]), follow_symlinks=False)
    elif name == "listdir":
        return sorted(os.listdir(p[0]))
    elif name == "stat":
        st = os.lstat(p[0])
        return [oct(st.st_mode), st.st_nlink, st.st_size]
    else:
        raise ValueError(name)
    return "ok"


def run_ops(kind: str, layers: list, ops: list, form: str = "oci",
            remount: bool = True, extra: str = "") -> dict:
    """Build layers, mount with `kind` (kernel or fuse), apply ops, and report the visible
    tree, the op results, the upper dir, and the tree after a remount."""
    paths = make_layers(layers, "kernel" if kind == "kernel" else form)
    mount(kind, paths, extra)
    try:
        results = apply_ops(paths["mnt"], ops)
        try:
            tree = snapshot(paths["mnt"])
        except OSError as e:
            raise RuntimeError(f"{kind} ({form}): {e}") from e
    finally:
        umount(paths["mnt"])
    out = {"results": results, "tree": tree, "upper": upper_state(paths["upper"])}
    if remount:
        mount(kind, paths, extra)
        try:
            out["remounted"] = snapshot(paths["mnt"])
        finally:
            umount(paths["mnt"])
    shutil.rmtree(paths["top"], ignore_errors=True)
    return out


def oracle(layers: list, ops: list, forms: list | None = None, extra: str = "") -> dict:
    """run_ops on the kernel's overlayfs and on fuse_overlay (each whiteout form)."""
    out = {"kernel": run_ops("kernel", layers, ops)}
    for form in forms or ["oci"]:
        out[f"fuse-{form}"] = run_ops("fuse", layers, ops, form, extra=extra)
    return out


def version() -> str:
    return fuse_overlay.__version__


def wait_gone(pid: int, timeout: float = 10) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False



# ---- semantics beyond the kernel's (or where the kernel cannot be asked) ------------------

def _fuse(layers: list, extra: str = "", form: str = "oci", readonly: bool = False):
    paths = make_layers(layers, form)
    proc = mount("fuse", paths, extra, readonly)
    return paths, proc


def _remount(paths: dict, extra: str = "") -> subprocess.Popen:
    umount(paths["mnt"])
    return mount("fuse", paths, extra)


def _read(p: str) -> str:
    with open(p) as f:
        return f.read()


def lower_hardlinks() -> dict:
    paths, _ = _fuse([[["w/h5", "whiteout", ""]],
                      [["h1", "file", "one"], ["d/h2", "hardlink", "h1"],
                       ["e/deep/h4", "hardlink", "h1"], ["w/h5", "hardlink", "h1"]]])
    m = paths["mnt"]
    out = {"before": [os.stat(f"{m}/h1").st_ino == os.stat(f"{m}/d/h2").st_ino,
                      os.stat(f"{m}/h1").st_nlink]}
    with open(f"{m}/h1", "a") as f:
        f.write("+more")
    out["after_copy_up"] = [_read(f"{m}/d/h2"), os.stat(f"{m}/h1").st_ino ==
                            os.stat(f"{m}/d/h2").st_ino, os.stat(f"{m}/d/h2").st_nlink]
    os.link(f"{m}/h1", f"{m}/h3")
    out["third"] = os.stat(f"{m}/h3").st_nlink
    _remount(paths)
    out["remounted"] = [_read(f"{m}/d/h2"), os.stat(f"{m}/h1").st_ino ==
                        os.stat(f"{m}/d/h2").st_ino, os.stat(f"{m}/h3").st_nlink,
                        _read(f"{m}/e/deep/h4"), os.path.exists(f"{m}/w/h5")]
    umount(m)
    return out


def rename_lower_dir() -> dict:
    paths, _ = _fuse([[["d/x", "file", "x"], ["d/sub/y", "file", "y"]],
                      [["d/z", "file", "z"], ["e/old", "file", "old"]]])
    m = paths["mnt"]
    fd = os.open(f"{m}/d/sub/y", os.O_RDONLY)  # a node the kernel holds across the rename
    os.rename(f"{m}/d", f"{m}/moved")
    out = {"moved": snapshot(m)["tree"], "open_read": os.pread(fd, 10, 0).decode()}
    os.close(fd)
    with open(f"{m}/moved/sub/y", "a") as f:
        f.write("2")
    shutil.rmtree(f"{m}/e")
    os.rename(f"{m}/moved", f"{m}/e")  # onto a name a lower layer has (now deleted)
    out["final"] = snapshot(m)["tree"]
    _remount(paths)
    out["remounted"] = snapshot(m)["tree"]
    # exchange a directory from the lower layers with a new one (the kernel says EXDEV)
    paths2, _ = _fuse([[["d/x", "file", "x"]], [["d/z", "file", "z"], ["n/old", "file", "o"]]])
    m2 = paths2["mnt"]
    os.mkdir(f"{m2}/y")
    open(f"{m2}/y/new", "w").close()
    _op("exchange", [f"{m2}/d", f"{m2}/n"])
    out["exchanged"] = [sorted(os.listdir(f"{m2}/d")), sorted(os.listdir(f"{m2}/n"))]
    _remount(paths2)
    out["exchanged_remounted"] = [sorted(os.listdir(f"{m2}/d")), sorted(os.listdir(f"{m2}/n"))]
    umount(m2)
    umount(m)
    return out


def special_files() -> dict:
    import socket

    paths, _ = _fuse([[["dev/null", "file", ""],
                       ["dev/null", "override", "0:0:0666:char-1-3"]]])
    m = paths["mnt"]
    os.mkfifo(f"{m}/fifo", 0o640)
    s = socket.socket(socket.AF_UNIX)
    s.bind(f"{m}/sock")
    s.close()
    # the kernel lets a user namespace make only 0/0 devices (overlay whiteouts): as a file
    # in a container they are just a character device, shown as such and hiding nothing
    os.mknod(f"{m}/zero", stat.S_IFCHR | 0o666, 0)
    out = {}
    for name in ("fifo", "sock", "zero", "dev/null"):
        st = os.lstat(f"{m}/{name}")
        out[name] = [stat.filemode(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)]
    _remount(paths)
    out["remounted"] = stat.filemode(os.lstat(f"{m}/zero").st_mode)
    umount(m)
    return out


def sparse_and_big() -> dict:
    paths = make_layers([[]])
    lower = paths["lowers"][0]
    with open(f"{lower}/sparse", "wb") as f:
        f.truncate(1 << 30)
        f.seek((1 << 30) - 5)
        f.write(b"tail!")
    mount("fuse", paths)
    m = paths["mnt"]
    out = {}
    with open(f"{m}/big", "wb") as f:  # over 4 GiB
        f.truncate(5 << 30)
        f.seek((4 << 30) + 100)
        f.write(b"beyond4g")
    with open(f"{m}/big", "rb") as f:
        f.seek((4 << 30) + 100)
        out["big"] = [f.read(8).decode(), os.stat(f"{m}/big").st_size]
    out["big_blocks_small"] = os.stat(f"{paths['upper']}/big").st_blocks < 1000
    fd = os.open(f"{m}/sparse", os.O_RDWR)  # copy-up of a 1 GiB sparse file
    os.pwrite(fd, b"X", 0)
    os.close(fd)
    up = os.stat(f"{paths['upper']}/sparse")
    out["sparse_copy"] = [up.st_size, up.st_blocks < 1000, _tail(f"{m}/sparse")]
    umount(m)
    return out


def _tail(p: str) -> str:
    with open(p, "rb") as f:
        f.seek(-5, 2)
        return f.read().decode()


def append_mmap_concurrency() -> dict:
    import mmap
    import threading

    paths, _ = _fuse([[["lower", "file", "0123456789"]]])
    m = paths["mnt"]
    a = os.open(f"{m}/log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    b = os.open(f"{m}/log", os.O_WRONLY | os.O_APPEND)
    for i in range(5):
        os.write(a, b"a%d\n" % i)
        os.write(b, b"b%d\n" % i)
    os.close(a)
    os.close(b)
    out = {"append": _read(f"{m}/log")}
    with open(f"{m}/lower", "r+b") as f:  # shared writable mmap of a lower file
        mm = mmap.mmap(f.fileno(), 0)
        mm[0:3] = b"abc"
        mm.flush()
        mm.close()
    out["mmap"] = _read(f"{m}/lower")

    def writer(name, off, ch):
        fd = os.open(f"{m}/{name}", os.O_WRONLY | os.O_CREAT, 0o644)
        for k in range(200):
            os.pwrite(fd, ch * 100, off + k * 100)
        os.close(fd)

    threads = [threading.Thread(target=writer, args=("same", i * 20000, bytes([65 + i])))
               for i in range(4)]
    threads += [threading.Thread(target=writer, args=(f"own{i}", 0, b"z")) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = open(f"{m}/same", "rb").read()
    out["same"] = [len(data), all(data[i * 20000:(i + 1) * 20000] == bytes([65 + i]) * 20000
                                  for i in range(4))]
    out["own"] = [os.path.getsize(f"{m}/own{i}") for i in range(4)]
    fd = os.open(f"{m}/own0", os.O_RDWR)  # an open file whose name is gone
    os.unlink(f"{m}/own0")
    os.ftruncate(fd, 5)
    os.fchmod(fd, 0o600)
    os.write(fd, b"ab")
    st = os.fstat(fd)
    out["unlinked_open"] = [st.st_size, oct(stat.S_IMODE(st.st_mode)), os.pread(fd, 5, 0).decode()]
    os.close(fd)
    _remount(paths)
    out["remounted"] = [_read(f"{m}/lower"), _read(f"{m}/log").count("\n")]
    umount(m)
    return out


def inodes_and_readdir() -> dict:
    spec = [[f"d/f{i:03d}", "file", str(i)] for i in range(300)]
    paths, _ = _fuse([[*spec, ["a", "file", "a"]]])
    m = paths["mnt"]
    ino = os.stat(f"{m}/a").st_ino
    with open(f"{m}/a", "a") as f:
        f.write("copied up")
    out = {"ino_kept_on_copy_up": os.stat(f"{m}/a").st_ino == ino}
    seen = []
    it = os.scandir(f"{m}/d")
    for _ in range(100):
        seen.append(next(it).name)
    for i in range(150, 300):  # change the directory under the open listing
        os.unlink(f"{m}/d/f{i:03d}")
    for i in range(50):
        open(f"{m}/d/new{i}", "w").close()
    seen += [e.name for e in it]
    it.close()
    out["listing"] = [len(seen), len(set(seen)),
                      sorted(set(seen)) == sorted(f"f{i:03d}" for i in range(300))]
    out["now"] = len(os.listdir(f"{m}/d"))
    inos = {os.stat(f"{m}/d/f{i:03d}").st_ino for i in range(150)}
    out["distinct_inos"] = len(inos)
    _remount(paths)
    out["lower_ino_after_remount"] = os.stat(f"{m}/d/f000").st_ino in inos
    umount(m)
    return out


def inodes_after_remount() -> dict:
    """Inode numbers of lower files, their copies in upper and new files, through copy-up and
    a remount."""
    paths, _ = _fuse([[["f", "file", "f"], ["d/g", "file", "g"], ["e/x", "file", "x"],
                       ["h1", "file", "h"], ["h2", "hardlink", "h1"]]])
    m = paths["mnt"]
    names = ("f", "d", "d/g", "e", "h1", "h2")

    def inos():
        return {n: os.lstat(f"{m}/{n}").st_ino for n in (*names, "new")}
    open(f"{m}/new", "w").close()
    out = {"before": inos()}
    for n in ("f", "d/g", "h1"):
        with open(f"{m}/{n}", "a") as f:
            f.write("+")
    os.chmod(f"{m}/e", 0o700)
    out["copied"] = sorted(n for n in names if os.path.lexists(f"{paths['upper']}/{n}"))
    out["after_copy_up"] = inos()
    _remount(paths)
    out["after_remount"] = inos()
    out["xattrs_shown"] = os.listxattr(f"{m}/f")
    umount(m)
    return out


def xattrs_statfs_readonly() -> dict:
    paths, _ = _fuse([[["f", "file", "f"], ["f", "xattr", ["user.a", "1"]],
                       ["f", "override", "0:0:0644"],
                       ["f", "xattr", ["user.containers.override_security.capability", "cap"]],
                       ["f", "xattr", ["user.containers.override_security.t", "t"]],
                       ["f", "xattr", ["user.containers.override_trusted.t", "t"]]]])
    m = paths["mnt"]
    out = {"list": sorted(os.listxattr(f"{m}/f")), "get": os.getxattr(f"{m}/f", "user.a").decode(),
           "security": os.getxattr(f"{m}/f", "security.t").decode()}
    os.setxattr(f"{m}/f", "security.new", b"n")  # refused on disk to a user namespace
    out["security_new"] = [os.getxattr(f"{m}/f", "security.new").decode(),
                           os.getxattr(f"{paths['upper']}/f",
                                       "user.containers.override_security.new").decode()]
    os.removexattr(f"{m}/f", "security.t")
    os.setxattr(f"{m}/f", "user.b", b"2")
    os.removexattr(f"{m}/f", "user.a")
    out["after"] = sorted(os.listxattr(f"{m}/f"))
    out["hidden"] = _try(lambda: os.getxattr(f"{m}/f", "user.containers.override_security.new"))
    try:
        os.setxattr(f"{m}/f", metadata.OVERRIDE_XATTR, b"1:1:0777")
        out["set_internal"] = "ok"
    except OSError as e:
        out["set_internal"] = errno.errorcode[e.errno]
    try:
        open(f"{m}/.wh.x", "w").close()
        out["create_wh"] = "ok"
    except OSError as e:
        out["create_wh"] = errno.errorcode[e.errno]
    sv = os.statvfs(m)
    out["statfs"] = sv.f_blocks > 0 and sv.f_bsize > 0
    fd = os.open(f"{m}/f", os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    umount(m)
    mount("fuse", paths, readonly=True)
    out["ro_read"] = _read(f"{m}/f")
    res = []
    for fn in (lambda: open(f"{m}/f", "a"), lambda: os.mkdir(f"{m}/x"),
               lambda: os.unlink(f"{m}/f")):
        try:
            fn()
            res.append("ok")
        except OSError as e:
            res.append(errno.errorcode[e.errno])
    out["ro_writes"] = res
    umount(m)
    return out


# ---- ownership -----------------------------------------------------------------------------

def _ids(p: str) -> list:
    st = os.lstat(p)
    return [st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode))]


def _try(fn):
    try:
        r = fn()
        return "ok" if r is None else r
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def _as_user(uid: int, fn) -> object:
    """Run fn() in a child process with uid/gid `uid` (like `-u uid` in a container)."""
    import json as _json

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            res = _json.dumps(fn())
        except BaseException as e:
            res = _json.dumps(f"child failed: {e!r}")
        os.write(w, res.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return _json.loads(data)


def ownership(mapping: str, extra: str = "") -> dict:
    lower = [["plain", "file", "p"], ["ov", "file", "o"], ["ov", "override", "1000:1000:0640"],
             ["ov2", "file", "o"], ["ov2", "override", "1000:1000:0666"],
             ["secret", "file", "s"], ["secret", "mode", "0600"], ["pub", "file", "pub"],
             ["link", "symlink", "plain"], ["dir", "dir", "0755"]]
    if mapping == "full":
        lower += [["real", "file", "r"], ["real", "chown", [1000, 1000]],
                  ["both", "file", "b"], ["both", "chown", [1000, 1000]],
                  ["both", "override", "2000:2000:0600"]]
    paths, _ = _fuse([lower], extra)
    m, up = paths["mnt"], paths["upper"]
    out = {name: _ids(f"{m}/{name}") for name in ("plain", "ov", "link", "secret")}
    if mapping == "full":
        out["real"] = _ids(f"{m}/real")
        out["both"] = _ids(f"{m}/both")
    out["append_ov"] = _try(lambda: open(f"{m}/ov", "a").close())

    def copy_up_ov2():
        with open(f"{m}/ov2", "a") as f:  # copy-up keeps the recorded owner
            f.write("+")
        return [_ids(f"{m}/ov2"), os.getxattr(f"{up}/ov2", metadata.OVERRIDE_XATTR).decode()]
    out["ov_after_copy_up"] = _try(copy_up_ov2)
    os.chmod(f"{m}/plain", 0o600)
    out["chmod"] = _ids(f"{m}/plain")
    out["chown_root"] = _try(lambda: os.chown(f"{m}/plain", 0, 0))
    out["chown_1000"] = _try(lambda: os.chown(f"{m}/plain", 1000, 1000))
    out["plain_after_chown"] = _ids(f"{m}/plain")
    out["plain_xattr"] = _try(lambda: os.getxattr(f"{up}/plain",
                                                  metadata.OVERRIDE_XATTR).decode())
    out["plain_disk_owner"] = [os.lstat(f"{up}/plain").st_uid, os.lstat(f"{up}/plain").st_gid]
    out["chown_link"] = _try(lambda: os.lchown(f"{m}/link", 1000, 1000))
    if mapping == "full":
        os.chown(f"{m}/dir", 1000, 1000)  # a directory user 1000 may write in
        os.chmod(f"{m}/secret", 0o600)
        out["as_1000"] = _as_user(1000, lambda: {
            "list": sorted(os.listdir(m)) != [],
            "secret": _try(lambda: open(f"{m}/secret").read()),
            "pub": _try(lambda: open(f"{m}/pub").read()),
            "write_root_dir": _try(lambda: open(f"{m}/new", "w").close()),
            "create_own": _try(lambda: open(f"{m}/dir/mine", "w").close()),
        })
        out["mine"] = _try(lambda: _ids(f"{m}/dir/mine"))
        out["mine_xattr"] = _try(lambda: os.getxattr(f"{up}/dir/mine",
                                                     metadata.OVERRIDE_XATTR).decode())
        out["mine_disk_owner"] = _try(lambda: os.lstat(f"{up}/dir/mine").st_uid)
    _remount(paths, extra)
    out["remounted"] = {n: _ids(f"{m}/{n}") for n in ("plain", "ov")}
    umount(m)
    return out


# ---- real workloads --------------------------------------------------------------------------

def _stdlib_tree(dst: str, names=("json", "email", "html", "http", "logging")) -> None:
    """Part of Python's standard library as a source tree (no __pycache__)."""
    src = os.path.dirname(os.__file__)
    for n in names:
        shutil.copytree(os.path.join(src, n), os.path.join(dst, n),
                        ignore=shutil.ignore_patterns("__pycache__"))


def _sh(cmd: list, cwd: str, **kw) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r.stdout


def workloads() -> dict:
    paths = make_layers([[]])
    lower = paths["lowers"][0]
    _stdlib_tree(os.path.join(lower, "usr/lib/py"))
    os.makedirs(os.path.join(lower, "bin"))
    shutil.copy2("/bin/echo", os.path.join(lower, "bin/echo"))
    src = new_dir("src")
    _stdlib_tree(src, ("xml", "unittest"))
    tarball = os.path.join(paths["top"], "src.tar")
    _sh(["tar", "-cf", tarball, "-C", src, "."], cwd=src)
    mount("fuse", paths)
    m = paths["mnt"]
    out = {"exec": _sh([f"{m}/bin/echo", "run from the mount"], cwd=m).strip()}
    # unpack a source tarball and compare with the source
    os.mkdir(f"{m}/build")
    _sh(["tar", "-xf", tarball, "-C", f"{m}/build"], cwd=m)
    out["tar"] = snapshot(f"{m}/build", ids=False)["tree"] == snapshot(src, ids=False)["tree"]
    # byte-compile the unpacked tree and the lower one, then import from it
    _sh([sys.executable, "-m", "compileall", "-q", f"{m}/build", f"{m}/usr/lib/py"], cwd=m)
    pycs = [f for _d, _s, fs in os.walk(f"{m}/usr/lib/py") for f in fs if f.endswith(".pyc")]
    out["compileall"] = len(pycs) > 20
    out["import"] = _sh([sys.executable, "-c",
                         "import json.decoder, email.message; print(json.decoder.__file__)"],
                        cwd=m, env={"PYTHONPATH": f"{m}/usr/lib/py",
                                    "PATH": os.environ["PATH"]}).strip()
    # git: init, add, commit, log, fsck
    env = {"PATH": os.environ["PATH"], "HOME": m, "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    repo = f"{m}/build"
    _sh(["git", "init", "-q"], cwd=repo, env=env)
    _sh(["git", "add", "-A"], cwd=repo, env=env)
    _sh(["git", "commit", "-qm", "import"], cwd=repo, env=env)
    with open(f"{repo}/xml/__init__.py", "a") as f:
        f.write("# changed\n")
    _sh(["git", "commit", "-qam", "change"], cwd=repo, env=env)
    out["git_log"] = _sh(["git", "log", "--format=%s"], cwd=repo, env=env).split()
    _sh(["git", "fsck", "--no-progress"], cwd=repo, env=env)
    out["git_status"] = _sh(["git", "status", "--porcelain"], cwd=repo, env=env)
    # sqlite with many transactions
    import sqlite3

    db = sqlite3.connect(f"{m}/db.sqlite")
    db.execute("create table t (i integer primary key, v text)")
    for i in range(300):
        with db:
            db.execute("insert into t (v) values (?)", (f"row {i}",))
    with db:
        db.execute("update t set v = v || '!' where i % 2 = 0")
    db.close()
    db = sqlite3.connect(f"{m}/db.sqlite")
    out["sqlite"] = [db.execute("select count(*), sum(v like '%!') from t").fetchone(),
                     db.execute("pragma integrity_check").fetchone()[0]]
    db.close()
    # rm -rf of a lower-layer tree
    _sh(["rm", "-rf", f"{m}/usr"], cwd=m)
    out["rm_rf"] = [os.path.exists(f"{m}/usr"), sorted(os.listdir(m))]
    out["upper_usr"] = sorted(os.listdir(paths["upper"]))
    _remount(paths)
    out["remounted"] = [os.path.exists(f"{m}/usr"),
                        _sh(["git", "log", "--format=%s"], cwd=repo, env=env).split()]
    umount(m)
    return out


# ---- robustness ------------------------------------------------------------------------------

def _stat_in_child(p: str, timeout: float = 10) -> str:
    r = subprocess.run(["cat", p], capture_output=True, text=True, timeout=timeout)
    return "ok" if r.returncode == 0 else r.stderr.strip().split(": ")[-1]


def kill9() -> dict:
    # b is too big to be put in the page cache at open: reading it needs the server
    paths, proc = _fuse([[["a", "file", "a"], ["b", "file", "b" * 300000], ["c", "file", "c"]]])
    m = paths["mnt"]
    out = {"before": _stat_in_child(f"{m}/a")}
    fd = os.open(f"{m}/b", os.O_RDONLY)
    proc.kill()
    proc.wait()
    t0 = time.monotonic()
    out["after"] = _stat_in_child(f"{m}/c")
    out["open_fd"] = _try(lambda: os.pread(fd, 10, 200000).decode())
    out["close"] = _try(lambda: os.close(fd))
    out["seconds"] = time.monotonic() - t0
    out["umount"] = subprocess.run(["umount", m], capture_output=True).returncode
    for i, (mnt, _p) in enumerate(_mounts):
        if mnt == m:
            del _mounts[i]
    out["listing_after_umount"] = os.listdir(m)
    return out


def hung_server_abort() -> dict:
    from fuse_overlay import server

    paths, proc = _fuse([[["a", "file", "a"], ["b", "file", "b"]]])
    m = paths["mnt"]
    os.stat(m)
    proc.send_signal(19)  # SIGSTOP: the server hangs
    reader = subprocess.Popen(["cat", f"{m}/b"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    out = {"blocked": reader.poll() is None}
    t0 = time.monotonic()
    minor = os.minor(os.stat(m).st_dev)
    out["fusectl"] = os.path.exists(f"/sys/fs/fuse/connections/{minor}/abort")
    out["aborted"] = server.abort(m)  # fusectl abort when mounted, and lazy unmount
    if not out["fusectl"]:
        proc.kill()  # without fusectl: the connection ends when the server's fd closes
    _o, err = reader.communicate(timeout=10)
    out["reader"] = [reader.returncode, err.strip().split(": ")[-1]]
    out["seconds"] = time.monotonic() - t0
    proc.kill()
    proc.wait()
    for i, (mnt, _p) in enumerate(_mounts):
        if mnt == m:
            del _mounts[i]
    out["mounted"] = m in open("/proc/self/mountinfo").read()
    return out


def crash_mid_copy_up() -> dict:
    n = 300
    data = {f"f{i:03d}": (f"{i:03d}" * 20000)[: 30000 + i] for i in range(n)}
    paths, proc = _fuse([[[name, "file", text] for name, text in data.items()]])
    m = paths["mnt"]
    code = (f"import os\nfor i in range({n}):\n"
            f"    fd = os.open('{m}/f%03d' % i, os.O_RDWR)\n    os.close(fd)\n")
    toucher = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    # wait until copy-ups are under way, then kill the server in the middle of them
    end = time.monotonic() + 10
    while time.monotonic() < end and len(os.listdir(paths["upper"])) < n // 10:
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    toucher.wait(timeout=10)
    out = {"copied_before_kill": len(os.listdir(paths["upper"]))}
    bad = [f for f in os.listdir(paths["upper"])
           if _read(os.path.join(paths["upper"], f)) != data[f]]
    out["incomplete_in_upper"] = bad
    out["work_leftovers"] = len(os.listdir(os.path.join(paths["work"], "fuse-overlay.work")))
    subprocess.run(["umount", "-l", m], capture_output=True)
    for i, (mnt, _p) in enumerate(_mounts):
        if mnt == m:
            del _mounts[i]
    mount("fuse", paths)
    out["after_remount_ok"] = all(_read(f"{m}/{f}") == t for f, t in data.items())
    out["work_after_remount"] = os.listdir(os.path.join(paths["work"], "fuse-overlay.work"))
    umount(m)
    return out


def daemon_and_signals() -> dict:
    """The command daemonised (exits once the mount is live), and run() with SIGTERM."""
    paths = make_layers([[["a", "file", "a"]]])
    m = paths["mnt"]
    opts = f"lowerdir={paths['lowers'][0]},upperdir={paths['upper']},workdir={paths['work']}"
    r = subprocess.run(["fuse-overlay", "-o", opts + ",fast_ino", m], capture_output=True,
                       text=True, timeout=30)
    out = {"daemon_rc": r.returncode, "stderr": r.stderr.strip(),
           "live": _read(f"{m}/a")}
    subprocess.run(["fusermount3", "-u", m], check=True, capture_output=True)
    out["unmounted"] = m not in open("/proc/self/mountinfo").read()
    # the library entry point, in a forked process as the runtime calls it
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        try:
            import signal

            from fuse_overlay import server
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # as the runtime does
            server.run(paths["lowers"], paths["upper"], paths["work"], m, ready_fd=wfd)
            os._exit(0)
        except BaseException:
            os._exit(3)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        out["ready"] = f.read().decode()
    out["lib_live"] = _read(f"{m}/a")
    os.kill(pid, 2)  # ignored by the caller: stays ignored
    time.sleep(0.2)
    out["after_sigint"] = _try(lambda: _read(f"{m}/a"))
    os.kill(pid, 15)
    out["lib_exit"] = os.waitpid(pid, 0)[1] >> 8
    out["lib_unmounted"] = m not in open("/proc/self/mountinfo").read()
    return out


# ---- crash points of removals ----------------------------------------------------------------

class _Crash(BaseException):
    """The server "dies" here: this and every later change to the disk fails."""


_DISK_CHANGES = ("unlink", "rmdir", "rename", "replace", "mkdir", "setxattr", "removexattr",
                 "link", "symlink", "mknod", "mkfifo", "truncate", "ftruncate")


def _crash_at(k: int):
    """Make the k-th change to the disk (and all after it) raise _Crash; returns an undo."""
    saved = {n: getattr(os, n) for n in (*_DISK_CHANGES, "open")}
    count = [0]

    def step():
        count[0] += 1
        if count[0] >= k:
            raise _Crash

    def wrap(fn):
        def changed(*a, **kw):
            step()
            return fn(*a, **kw)
        return changed

    for n in _DISK_CHANGES:
        setattr(os, n, wrap(saved[n]))

    def opener(path, flags, *a, **kw):
        if flags & (os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_RDWR):
            step()
        return saved["open"](path, flags, *a, **kw)
    os.open = opener

    def undo():
        for n, fn in saved.items():
            setattr(os, n, fn)
    return undo


class _Ctx:
    uid = gid = pid = umask = 0


def _view(root: str) -> dict:
    """What a user sees: {path: type and content or target}."""
    out = {}
    for rel, d in snapshot(root, ids=False)["tree"].items():
        out[rel] = f"{d['type']}:{d.get('sha') or d.get('target') or ''}"
    return out


def _in_process(paths: dict, op: list) -> None:
    """Do one removal with fuse_overlay's own code, without a mount (so it can "crash")."""
    from fuse_overlay import fs

    ops = fs.Overlay(paths["lowers"], paths["upper"], paths["work"])
    ctx = _Ctx()

    def parent(path: str):
        ino = 1  # pyfuse3.ROOT_INODE
        parts = path.split("/")
        for comp in parts[:-1]:
            ino = ops._lookup(ino, comp.encode(), ctx).st_ino
        return ino, parts[-1].encode()

    if op[0] == "unlink":
        ops._unlink(*parent(op[1]), ctx)
    elif op[0] == "rmdir":
        ops._rmdir(*parent(op[1]), ctx)
    elif op[0] == "rename":
        (p1, n1), (p2, n2) = parent(op[1]), parent(op[2])
        ops._rename(p1, n1, p2, n2, 0, ctx)
    else:
        raise ValueError(op[0])


def crash_points(layers: list, prep: list, op: list) -> dict:
    """Prepare the upper dir through a mount (`prep`, apply_ops operations), then do `op` in
    this process with a crash at its 1st, 2nd, ... change to the disk, and mount each
    crashed state: what the mount shows there, next to the states before and after."""
    paths = make_layers(layers)
    mount("fuse", paths)
    apply_ops(paths["mnt"], prep)
    old = _view(paths["mnt"])
    umount(paths["mnt"])
    template = paths["top"] + ".template"
    shutil.copytree(paths["top"], template, symlinks=True)
    out = {"old": old, "points": []}
    for k in range(1, 60):
        shutil.rmtree(paths["top"])
        shutil.copytree(template, paths["top"], symlinks=True)
        undo = _crash_at(k)
        crashed = True
        try:
            _in_process(paths, op)
            crashed = False
        except _Crash:
            pass
        finally:
            undo()
        mount("fuse", paths)
        view = _view(paths["mnt"])
        umount(paths["mnt"])
        if not crashed:
            out["new"] = view
            break
        out["points"].append(view)
    shutil.rmtree(template)
    return out

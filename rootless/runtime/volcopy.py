"""Copy-up: the image's files at a volume's mount point copied into the volume when the
volume is empty (Docker does this for a new volume), with owners, modes and times.

Runs in pid 1, in the container's user and mount namespaces, before the volume is mounted:
there the image's owners are the ones fuse_overlay presents, and chown to them is allowed.
The image side is reached through an O_PATH fd opened with RESOLVE_IN_ROOT, and the walk
never follows a symlink, so nothing outside the root filesystem is read.

Hand-written: shutil.copytree follows the names, not fds, and loses owners.
"""

from __future__ import annotations

import contextlib
import os
import stat

from rootless.linux import syscalls as sc


def _open_in(rootfd: int, path: str) -> int:
    return sc.openat2(rootfd, path.lstrip("/") or ".", os.O_PATH,
                      sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS)


def _meta(path: str, st: os.stat_result) -> None:
    with contextlib.suppress(OSError):  # an id outside the maps: keep the user's
        os.lchown(path, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(path, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_up(rootfd: int, target: str, volume_dir: str) -> bool:
    """Copy the image's `target` into `volume_dir` if the volume is empty and the target
    is a non-empty directory. Returns whether anything was copied."""
    try:
        if os.listdir(volume_dir):
            return False
        fd = _open_in(rootfd, target)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        src_root = f"/proc/self/fd/{fd}"
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            return False
        top = os.listdir(src_root)
        if not top:
            return False
        for dirpath, dirnames, filenames in os.walk(src_root):
            rel = os.path.relpath(dirpath, src_root)
            dst_dir = volume_dir if rel == "." else os.path.join(volume_dir, rel)
            for name in list(dirnames):
                src, dst = os.path.join(dirpath, name), os.path.join(dst_dir, name)
                st = os.lstat(src)
                if stat.S_ISLNK(st.st_mode):  # os.walk lists a symlink to a dir as a dir
                    if not os.path.lexists(dst):
                        os.symlink(os.readlink(src), dst)
                        _meta(dst, st)
                    dirnames.remove(name)
                    continue
                os.makedirs(dst, 0o700, exist_ok=True)  # exists: another container copies too
            for name in filenames:
                src, dst = os.path.join(dirpath, name), os.path.join(dst_dir, name)
                st = os.lstat(src)
                if os.path.lexists(dst):  # two containers copying into one new volume
                    continue
                if stat.S_ISLNK(st.st_mode):
                    os.symlink(os.readlink(src), dst)
                elif stat.S_ISREG(st.st_mode):
                    with open(src, "rb") as fin, open(dst, "xb") as fout:
                        while chunk := fin.read(1 << 20):
                            fout.write(chunk)
                elif stat.S_ISFIFO(st.st_mode):
                    os.mkfifo(dst)
                else:  # devices and sockets cannot be made rootless; skip them
                    continue
                _meta(dst, st)
        # directories last, deepest first: their modes may forbid writing into them
        for dirpath, _dirnames, _ in sorted(os.walk(src_root), key=lambda w: -len(w[0])):
            rel = os.path.relpath(dirpath, src_root)
            # the top is /proc/self/fd/N, a magic link: its own stat is fstat(fd)
            _meta(volume_dir if rel == "." else os.path.join(volume_dir, rel),
                  os.fstat(fd) if rel == "." else os.lstat(dirpath))
        return True
    finally:
        os.close(fd)

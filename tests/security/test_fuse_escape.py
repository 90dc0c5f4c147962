"""Container-side attacks on fuse_overlay (the default rootfs backend): each runs for real,
as the test user, in a container of `rl run` (or a RUN step of `rl build`), and asserts that
a canary directory of the user outside every container is left as it was: same files, same
contents, same modes, nothing new beside them.

The attacks make the server act on a file by a name after the container swapped a
directory on that name's path for a symlink to the canary: an open file whose directory was
removed (reopened through /proc/self/fd), an open lower-layer file whose directory was
removed or renamed away (fchmod copies it up), a copy-up of a big file racing a swap of its
parent, hard-linked lower files. (Creating in a removed working directory is no door: the
kernel refuses it before the server hears of it.) The setuid test
checks that no file in the container's upper dir on the host carries a real setuid or setgid
bit, while the container sees them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.support import images
from tests.support.images import Image, TarBuilder, _config
from tests.volumes.ctr import ctr_images, rlc  # noqa: F401

BIG = 48 << 20  # a lower file whose copy-up takes a while


def build_fusetest() -> Image:
    """busybox + /d/f, /e/f, /big/huge (48 MiB), /hl/a and /hl/b (one inode), /d/suid."""
    extra = (TarBuilder()
             .dir("d").file("d/f", b"lower d/f\n").file("d/suid", b"#!/bin/sh\n", 0o4755)
             .dir("e").file("e/f", b"lower e/f\n")
             .dir("big").file("big/huge", b"\x5a" * BIG)
             .dir("hl").file("hl/a", b"linked\n").hardlink("hl/b", "hl/a")
             .layer())
    return Image([images.busybox_layer(), extra], _config())


@pytest.fixture(scope="session")
def fusetest_registry(ctr_images):  # noqa: F811
    ctr_images.push_image("fusetest", "latest", build_fusetest())
    return ctr_images


@pytest.fixture
def box(rlc, fusetest_registry):  # noqa: F811
    rlc("pull", "-q", "fusetest", check=True)
    return rlc


@pytest.fixture
def canary(tmp_path):
    """A directory of the user's, outside every container, holding files with the names
    the attacks aim at."""
    d = tmp_path / "home-canary"
    d.mkdir()
    for name in ("notes.txt", "f", "huge", "a", "b", "x"):
        (d / name).write_bytes(b"canary " + name.encode() + b"\n")
        os.chmod(d / name, 0o640)
    return d


def snapshot(d: Path) -> dict:
    out = {}
    for p in sorted(d.iterdir()):
        st = p.lstat()
        out[p.name] = (stat.filemode(st.st_mode), st.st_size,
                       p.read_bytes() if stat.S_ISREG(st.st_mode) else None)
    return out


def attack(box, canary: Path, script: str, timeout: float = 120):
    """Run `script` (@ stands for the canary's path) in a container; assert the canary
    is untouched. Returns the container's output."""
    before = snapshot(canary)
    script = script.replace("@", str(canary))
    proc = box("run", "--rm", "--network", "none", "fusetest", "sh", "-c", script,
               timeout=timeout)
    assert snapshot(canary) == before, f"the canary changed:\n{proc.stdout}{proc.stderr}"
    return proc


def test_reopen_of_a_file_whose_directory_became_a_symlink(box, canary):
    proc = attack(box, canary, (
        "mkdir /a && exec 3<>/a/notes.txt && echo inside >&3 && rm /a/notes.txt && rmdir /a"
        " && ln -s @ /a && echo PWNED > /proc/self/fd/3; chmod 4777 /proc/self/fd/3;"
        " cat /proc/self/fd/3; echo done"))
    assert "done" in proc.stdout


def test_open_lower_file_whose_directory_was_removed_or_renamed(box, canary):
    attack(box, canary, (
        # removed: copy-up of a lower file no name shows any more
        "exec 3</d/f && touch /d/x && rm /d/x && rm -rf /d && ln -s @ /d;"
        " chmod 600 /proc/self/fd/3; echo PWNED >> /proc/self/fd/3;"
        " truncate -s 0 /proc/self/fd/3;"
        # renamed away: the file goes with its directory
        " exec 4</e/f && mv /e /e2 && ln -s @ /e;"
        " chmod 600 /proc/self/fd/4; echo PWNED >> /proc/self/fd/4;"
        " cat /e2/f; true"))


def test_parent_swapped_for_a_symlink_during_a_big_copy_up(box, canary):
    # The server answers one request at a time, so the swaps queue behind the copy-up of
    # the big file: what is checked is that no order of them reaches the canary.
    proc = attack(box, canary, (
        "exec 3</big/huge && touch /big/t && rm /big/t;"
        " ( for i in 1 2 3 4 5 6 7 8; do rm -rf /big; ln -s @ /big; rm /big; mkdir /big;"
        "   done; rm -rf /big; ln -s @ /big ) &"
        " while [ ! -L /big ]; do :; done; chmod 600 /proc/self/fd/3; wait;"
        " chmod 644 /proc/self/fd/3; echo PWNED >> /proc/self/fd/3; echo done"),
        timeout=300)
    assert "done" in proc.stdout


def test_hard_linked_lower_file_then_chmod(box, canary):
    proc = attack(box, canary, (
        "exec 3</hl/b && touch /hl/t && rm /hl/t && rm -rf /hl && ln -s @ /hl"
        " && chmod 4777 /proc/self/fd/3; echo PWNED >> /proc/self/fd/3;"
        " ln /d/f /x && chmod 4755 /x && ls -l /x /d/f"))
    assert proc.stdout.count("-rwsr-xr-x") == 2, proc.stdout + proc.stderr


def test_setuid_bits_live_in_the_xattr_only(box):
    script = ("touch /s && chmod 4755 /s && cp /bin/busybox /x && chmod u+s /x"
              " && touch /g && chmod 2755 /g && mkdir /sg && chmod 2755 /sg"
              " && chmod 4750 /d/suid && echo > /created && chmod 6711 /created"
              " && ls -ld /s /x /g /sg /d/suid /created")
    proc = box("run", "--name", "suid", "--network", "none", "fusetest", "sh", "-c", script,
               check=True)
    shown = {line.split()[-1]: line.split()[0] for line in proc.stdout.splitlines()}
    assert shown == {"/s": "-rwsr-xr-x", "/x": "-rwsr-xr-x", "/g": "-rwxr-sr-x",
                     "/sg": "drwxr-sr-x", "/d/suid": "-rwsr-x---",
                     "/created": "-rws--s--x"}, proc.stdout
    uppers = list((box.data_dir / "containers").glob("*/upper"))
    assert len(uppers) == 1
    found = 0
    for dirpath, _dirs, files in os.walk(uppers[0]):
        for n in files:
            st = os.lstat(os.path.join(dirpath, n))
            found += 1
            assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), \
                f"{dirpath}/{n} is {stat.filemode(st.st_mode)} on the host"
    assert found >= 5


def test_run_step_of_a_build_cannot_escape(box, canary, tmp_path):
    before = snapshot(canary)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM fusetest\n"
        f"RUN mkdir /a && exec 3<>/a/notes.txt && rm /a/notes.txt && rmdir /a"
        f" && ln -s {canary} /a && echo PWNED > /proc/self/fd/3;"
        f" exec 4</d/f && rm -rf /d && ln -s {canary} /d && chmod 600 /proc/self/fd/4; true\n")
    proc = box("build", "-t", "escape:1", str(ctx), timeout=180)
    assert snapshot(canary) == before, f"the canary changed:\n{proc.stdout}{proc.stderr}"
    assert proc.returncode == 0, proc.stderr

"""Host-side walks of trees a container can write (issue 12): real attacks from real
containers of the unprivileged test user against volume copy-in, volume import and export,
`rl cp`, `rl commit` and volume removal.

Each test keeps a canary: a directory of the user's own, outside every container, holding a
secret file. The attacking container plants symlinks to it (the host path, which means
nothing inside the container but everything to a host process that follows it). After the
attack the canary must be unchanged (content, mode, owner, times), nothing new may appear
in it, and for reads its content must not appear in what rl produced.

The races run in a loop inside the attacking container for as long as rl works; each test
repeats its attempt until it hits (the old code) or a time bound passes.
"""

from __future__ import annotations

import gzip
import io
import os
import secrets
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.volumes import ctr

# the real containers of tests/volumes (pulled images, cleanup also on failure); no
# conftest here, so the fixtures are taken into this module
ctr_images, rlc = ctr.ctr_images, ctr.rlc

SECRET_NAME = "secret"


class Canary:
    """A directory of the user's with one secret file, and its state to compare with."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "canary"
        self.dir.mkdir()
        self.token = "CANARY-" + secrets.token_hex(12)
        self.secret = self.dir / SECRET_NAME
        self.secret.write_text(self.token + "\n")
        self.secret.chmod(0o644)
        self.dir.chmod(0o755)
        self.before = self.state()

    def state(self) -> dict:
        out = {}
        for p in [self.dir, *sorted(self.dir.rglob("*"))]:
            st = os.lstat(p)
            data = p.read_bytes() if stat.S_ISREG(st.st_mode) else None
            out[str(p)] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                           st.st_gid, st.st_mtime_ns, data)
        return out

    def intact(self) -> bool:
        return self.state() == self.before

    def check(self) -> None:
        assert self.state() == self.before, "the canary outside every container changed"

    @property
    def content(self) -> bytes:
        return (self.token + "\n").encode()


@pytest.fixture
def canary(tmp_path) -> Canary:
    c = Canary(tmp_path)
    yield c
    # let the test's tmp_path go even if an attack made the canary unreadable
    for p in [c.dir, *c.dir.rglob("*")]:
        if not p.is_symlink():
            try:
                p.chmod(0o700)
            except OSError:
                pass


def ok(rlc, *args, **kw):
    return rlc(*args, check=True, **kw)


def start(rlc, name: str, *args: str) -> None:
    """A detached container running `args`; waits until it runs."""
    ok(rlc, "run", "-d", "--network", "none", "--name", name, *args)


def wait_for(rlc, name: str, test: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while rlc("exec", name, "sh", "-c", test).returncode != 0:
        assert time.monotonic() < deadline, f"container {name}: {test} never became true"
        time.sleep(0.1)


def attempts(seconds: float, most: int):
    """Yield attempt numbers until `most` attempts or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    for i in range(most):
        if time.monotonic() > deadline:
            return
        yield i


# A swap loop in busybox sh: DIR (a directory of the volume or mount) becomes a symlink to
# the canary and back, as fast as the shell goes.
SWAP = ("while :; do mv {d} {d}.real 2>/dev/null && ln -s {target} {d} && "
        "rm {d} && mv {d}.real {d}; done")


def test_volume_copy_in_race_with_a_second_container(rlc, canary):
    """A runs with the volume and turns the copied directory `sub` into a symlink to the
    canary while B's first mount copies the image's /srv/data (which has sub/deep.txt) in."""
    ok(rlc, "volume", "create", "shared")
    start(rlc, "attacker", "-v", "shared:/v", rlc.busybox, "sh", "-c",
          f"while :; do [ -L /v/sub ] || {{ mv /v/sub /v/x.$$ 2>/dev/null && "
          f"ln -s {canary.dir} /v/sub; }}; done")
    for _ in attempts(90, 40):
        # the volume must be empty for the copy-in to run
        ok(rlc, "exec", "attacker", "sh", "-c", "rm -rf /v/* /v/.[!.]*; true")
        rlc("run", "--rm", "--network", "none", "-v", "shared:/srv/data", rlc.voltest, "true")
        if not canary.intact():
            break
    canary.check()


def _planted(rlc, canary: Canary, script: str) -> None:
    ok(rlc, "run", "--rm", "--network", "none", "-v", "vol:/v", rlc.busybox, "sh", "-c",
       script.format(canary=canary.dir, secret=canary.secret))


def _tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_volume_import_does_not_write_through_planted_symlinks(rlc, canary, tmp_path):
    _planted(rlc, canary, "ln -s {secret} /v/flink && ln -s {canary} /v/dlink && "
                          "mkdir /v/real && ln -s {canary} /v/real/inner")
    archive = tmp_path / "in.tar"
    # a file and a directory over the planted links: they replace the links in the volume
    archive.write_bytes(_tar([("flink", "file", b"PWNED\n", 0o600),
                              ("dlink", "dir", b"", 0o700)]))
    r = rlc("volume", "import", "vol", str(archive))
    canary.check()
    assert r.returncode == 0, r.stderr
    r = ok(rlc, "run", "--rm", "-v", "vol:/v", rlc.busybox, "sh", "-c",
           "cat /v/flink; test -d /v/dlink -a ! -L /v/dlink && echo dir")
    assert r.stdout == "PWNED\ndir\n"
    # a member below a planted link: refused (or kept inside the volume), never outside
    archive.write_bytes(_tar([("real/inner/new.txt", "file", b"PWNED\n", 0o644)]))
    rlc("volume", "import", "vol", str(archive))
    canary.check()


def test_volume_export_race_does_not_leak_the_users_files(rlc, canary):
    """A dir of the volume swapped for a symlink to the canary while export reads: the
    export holds the volume's decoy, never the canary's content."""
    decoy = "D" * len(canary.token)
    start(rlc, "attacker", "-v", "vol:/v", rlc.busybox, "sh", "-c",
          f"mkdir /v/d && echo {decoy} > /v/d/{SECRET_NAME} && ln -s {canary.dir} /v/link && "
          + SWAP.format(d="/v/d", target=canary.dir))
    wait_for(rlc, "attacker", "test -L /v/link")
    leaked, exported = False, 0
    for _ in attempts(60, 150):
        r = rlc("volume", "export", "vol", text=False)
        exported += r.returncode == 0
        if canary.token.encode() in r.stdout:
            leaked = True
            break
    canary.check()
    assert exported, "no export got through: the race was not run"
    assert not leaked, "the canary's content is in the volume export"
    # a planted symlink is exported as that symlink
    ok(rlc, "rm", "-f", "attacker")
    r = rlc("volume", "export", "vol", text=False)
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        link = tar.getmember("link")
        assert link.issym() and link.linkname == str(canary.dir)
        assert canary.token.encode() not in r.stdout


def test_cp_into_a_bind_mount_the_container_races(rlc, canary, tmp_path):
    """`rl cp ctr:/src HOSTDIR` where HOSTDIR is bind-mounted into the container, which
    swaps HOSTDIR/src/sub for a symlink to the canary while the host extracts."""
    shared = tmp_path / "shared"
    shared.mkdir()
    files = " ".join(f"/src/sub/f{i:03d}" for i in range(200))
    start(rlc, "attacker", "-v", f"{shared}:/m", rlc.busybox, "sh", "-c",
          f"mkdir -p /src/sub && touch {files} && chmod 777 /src/sub && "
          + SWAP.format(d="/m/src/sub", target=canary.dir))
    wait_for(rlc, "attacker", "test -e /src/sub/f199")
    for _ in attempts(90, 60):
        rlc("cp", "attacker:/src", str(shared))
        if not canary.intact():
            break
        subprocess.run(["rm", "-rf", str(shared / "src"), str(shared / "src.real")])
    canary.check()


def test_cp_from_a_bind_mount_the_container_races(rlc, canary, tmp_path):
    """`rl cp HOSTDIR/d ctr:/got` where HOSTDIR is bind-mounted into the container, which
    swaps HOSTDIR/d for a symlink to the canary while the host reads: the canary's content
    must not reach the container."""
    shared = tmp_path / "shared"
    (shared / "d").mkdir(parents=True)
    (shared / "d" / SECRET_NAME).write_text("D" * len(canary.token) + "\n")
    start(rlc, "attacker", "-v", f"{shared}:/m", rlc.busybox, "sh", "-c",
          SWAP.format(d="/m/d", target=canary.dir))
    leaked, copied, tried = False, 0, 0
    for i in attempts(60, 100):
        tried += 1
        copied += rlc("cp", str(shared / "d"), f"attacker:/got{i}").returncode == 0
        r = rlc("exec", "attacker", "sh", "-c", f"cat /got{i}/{SECRET_NAME} 2>/dev/null")
        if canary.token in r.stdout:
            leaked = True
            break
    print(f"{tried} attempts, {copied} copies")
    canary.check()
    assert not leaked, "the canary's content was copied into the container"
    assert copied, "no copy got through: the race was not run"


def _blob_contents(rlc):
    for p in (rlc.data_dir / "blobs").rglob("*"):
        if p.is_file():
            raw = p.read_bytes()
            yield gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def test_commit_of_a_container_that_swaps_a_directory(rlc, canary):
    decoy = "D" * len(canary.token)
    start(rlc, "swapper", rlc.busybox, "sh", "-c",
          f"mkdir /d && echo {decoy} > /d/{SECRET_NAME} && touch /ready && "
          + SWAP.format(d="/d", target=canary.dir))
    wait_for(rlc, "swapper", "test -e /ready")
    leaked, committed, tried = False, 0, 0
    for i in attempts(90, 60):
        tried += 1
        r = rlc("commit", "swapper", f"localhost/committed:{i}")
        committed += r.returncode == 0
        if any(canary.content in data for data in _blob_contents(rlc)):
            leaked = True
            break
    print(f"{tried} attempts, {committed} commits; last: {r.stderr}")
    canary.check()
    assert not leaked, "the canary's content is in a committed layer"
    assert committed, "no commit got through: the race was not run"


def test_volume_removal_does_not_chmod_through_planted_symlinks(rlc, canary):
    _planted(rlc, canary, "mkdir /v/ro && ln -s {secret} /v/ro/flink && "
                          "ln -s {canary} /v/ro/dlink && chmod 555 /v/ro && "
                          "mkdir /v/locked && ln -s {secret} /v/locked/l && chmod 0 /v/locked")
    r = rlc("volume", "rm", "vol")
    assert r.returncode == 0, r.stderr
    canary.check()
    assert not (rlc.data_dir / "volumes" / "vol").exists()


def _output_context(tmp_path: Path) -> Path:
    """A build context whose image is /etc/f000..f039 and /etc/sub/deep (FROM scratch:
    no RUN, so each build after the first is the output alone)."""
    ctx = tmp_path / "ctx"
    (ctx / "etc" / "sub").mkdir(parents=True)
    for i in range(40):
        (ctx / "etc" / f"f{i:03d}").write_text(f"file {i}\n")
    (ctx / "etc" / "sub" / "deep").write_text("deep\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY etc /etc/\n")
    return ctx


def _output_is_the_image(dest: Path) -> None:
    etc = dest / "etc"
    assert etc.is_dir() and not etc.is_symlink()
    assert (etc / "f039").read_text() == "file 39\n"
    assert (etc / "sub" / "deep").read_text() == "deep\n"


def test_build_output_replaces_planted_symlinks(rlc, canary, tmp_path):
    """`rl build -o DEST` where DEST already holds symlinks to the canary at the names the
    image writes (a directory and a file): they are replaced, never followed."""
    ctx = _output_context(tmp_path)
    dest = tmp_path / "dest"
    (dest / "etc").mkdir(parents=True)
    (dest / "etc" / "f000").symlink_to(canary.secret)
    (dest / "etc" / "sub").symlink_to(canary.dir)
    r = rlc("build", "-q", "-o", f"type=local,dest={dest}", str(ctx))
    assert r.returncode == 0, r.stderr
    canary.check()
    _output_is_the_image(dest)
    assert not (dest / "etc" / "f000").is_symlink()
    assert (dest / "etc" / "f000").read_text() == "file 0\n"
    # the top-level directory itself planted as a symlink
    subprocess.run(["rm", "-rf", str(dest / "etc")], check=True)
    (dest / "etc").symlink_to(canary.dir)
    r = rlc("build", "-q", "-o", str(dest), str(ctx))
    assert r.returncode == 0, r.stderr
    canary.check()
    _output_is_the_image(dest)


def test_build_output_into_a_mount_a_container_races(rlc, canary, tmp_path):
    """`rl build -o type=local,dest=DEST` while a container with `-v DEST:/out` keeps
    swapping /out/etc for a symlink to the canary: nothing of the output lands there."""
    ctx = _output_context(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    start(rlc, "attacker", "-v", f"{dest}:/out", rlc.busybox, "sh", "-c",
          "mkdir -p /out/etc && touch /out/ready && "
          + SWAP.format(d="/out/etc", target=canary.dir))
    wait_for(rlc, "attacker", "test -e /out/ready")
    built, tried, last = 0, 0, None
    for _ in attempts(45, 100):
        tried += 1
        last = rlc("build", "-q", "-o", f"type=local,dest={dest}", str(ctx))
        built += last.returncode == 0
        if not canary.intact():
            break
    print(f"{tried} builds, {built} succeeded; last: {last.stderr}")
    canary.check()
    assert tried > 1
    # a failure is one line naming the destination, never a traceback
    assert last.returncode == 0 or "Traceback" not in last.stderr
    ok(rlc, "rm", "-f", "attacker")
    subprocess.run(["rm", "-rf", str(dest / "etc"), str(dest / "etc.real")])
    ok(rlc, "build", "-q", "-o", f"type=local,dest={dest}", str(ctx))
    _output_is_the_image(dest)

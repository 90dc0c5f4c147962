"""Layer unpacking: metadata recorded as fuse_overlay reads it, and a corpus of hostile tars,
none of which may touch anything outside the layer directory."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from fuse_overlay.metadata import OVERRIDE_XATTR, Override, read_override
from rootless.store.unpack import UnpackError, unpack_tar
from tests.image.tarmaker import RawTar


def snapshot(root) -> dict:
    """Every path under root with type, mode, size, content and xattrs."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            entry = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size]
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    entry.append(f.read())
            if stat.S_ISLNK(st.st_mode):
                entry.append(os.readlink(p))
            else:
                entry.append(sorted(os.listxattr(p)))
            out[os.path.relpath(p, root)] = entry
    return out


@pytest.fixture
def sandbox(tmp_path):
    """tmp/layer (empty, unpacked into) beside tmp/outside (with a victim file)."""
    layer = tmp_path / "layer"
    outside = tmp_path / "outside"
    layer.mkdir()
    outside.mkdir()
    (outside / "victim").write_bytes(b"original\n")
    os.chmod(outside / "victim", 0o644)
    (outside / "sub").mkdir()
    before = snapshot(tmp_path / "outside")

    class Box:
        pass

    box = Box()
    box.layer, box.outside, box.root = layer, outside, tmp_path

    def unpack(data: bytes):
        return unpack_tar(io.BytesIO(data), layer)

    box.unpack = unpack
    yield box
    # Whatever happened inside, nothing outside the layer changed or appeared.
    assert snapshot(tmp_path / "outside") == before
    assert sorted(os.listdir(tmp_path)) == ["layer", "outside"]


def override(path) -> Override:
    ov = read_override(str(path))
    assert ov is not None, f"no {OVERRIDE_XATTR} on {path}"
    return ov


# -- honest layers: metadata as fuse_overlay expects it --

def test_owners_modes_and_times_recorded(sandbox):
    data = (RawTar().dir("etc", mode=0o755).file("etc/shadow", b"s", mode=0o640, uid=0, gid=42)
            .dir("home/user", mode=0o700, uid=1000, gid=1000)
            .file("home/user/f", b"hello", mode=0o600, uid=1000, gid=1000)
            .dir("tmp", mode=0o1777).symlink("bin", "usr/bin").bytes())
    stats = sandbox.unpack(data)
    layer = sandbox.layer
    assert override(layer / "etc/shadow") == Override(0, 42, 0o640)
    assert override(layer / "home/user") == Override(1000, 1000, 0o700)
    assert override(layer / "home/user/f") == Override(1000, 1000, 0o600)
    assert override(layer / "tmp") == Override(0, 0, 0o1777)
    # implicit parent (no entry for "home"): root-owned 0755
    assert override(layer / "home") == Override(0, 0, 0o755)
    assert (layer / "home/user/f").read_bytes() == b"hello"
    assert os.readlink(layer / "bin") == "usr/bin"
    assert os.lstat(layer / "etc/shadow").st_mtime == 1_700_000_000
    assert os.lstat(layer / "tmp").st_mtime == 1_700_000_000
    assert os.lstat(layer / "bin").st_mtime == 1_700_000_000
    assert stats.bytes == 6
    # host disk: directories stay usable by the user, no sticky/world-writable bits
    assert stat.S_IMODE(os.lstat(layer / "tmp").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(layer / "home/user").st_mode) == 0o755


@pytest.mark.parametrize("mtime, expected_ns", [
    ("-1e18", 0), ("1e19", 0), ("-1.5", 0), ("nan", 0), ("inf", 0), ("-inf", 0),
    ("9223372036.854775808", 0),  # one ns past 2**63-1
    ("1.5", 1_500_000_000), ("9223372036", 9_223_372_036_000_000_000),
])
def test_times_outside_what_a_file_can_hold_become_the_epoch(sandbox, mtime, expected_ns):
    """As Docker (moby's Chtimes): a PAX mtime before the epoch, past 2**63-1 ns, or not a
    number is applied as the epoch; the old code raised OverflowError on some (a traceback
    out of `rl pull`)."""
    pax = {"mtime": mtime}
    sandbox.unpack(RawTar().dir("d", pax=pax).file("d/f", b"x", pax=pax)
                   .symlink("d/l", "f", pax=pax).bytes())
    for name in ("d", "d/f", "d/l"):
        assert os.lstat(sandbox.layer / name).st_mtime_ns == expected_ns, name


def test_setuid_and_world_writable_only_in_xattr(sandbox):
    sandbox.unpack(RawTar().file("su", b"x", mode=0o4755).file("sg", b"x", mode=0o2777)
                   .file("ww", b"x", mode=0o666).file("none", b"x", mode=0o000).bytes())
    layer = sandbox.layer
    assert override(layer / "su").mode == 0o4755
    assert override(layer / "sg").mode == 0o2777
    for name, disk in (("su", 0o755), ("sg", 0o755), ("ww", 0o644), ("none", 0o600)):
        assert stat.S_IMODE(os.lstat(layer / name).st_mode) == disk, name


def test_devices_and_fifos_recorded_not_created(sandbox):
    sandbox.unpack(RawTar().dir("dev")
                   .add("dev/null", tarfile.CHRTYPE, mode=0o666, major=1, minor=3)
                   .add("dev/sda", tarfile.BLKTYPE, mode=0o660, gid=6, major=8, minor=0)
                   .add("dev/fifo", tarfile.FIFOTYPE, mode=0o600).bytes())
    layer = sandbox.layer
    for name in ("null", "sda", "fifo"):
        assert stat.S_ISREG(os.lstat(layer / "dev" / name).st_mode)
        assert os.lstat(layer / "dev" / name).st_size == 0
    assert override(layer / "dev/null") == Override(0, 0, 0o666, stat.S_IFCHR,
                                                    os.makedev(1, 3))
    assert override(layer / "dev/sda") == Override(0, 6, 0o660, stat.S_IFBLK, os.makedev(8, 0))
    assert override(layer / "dev/fifo").ftype == stat.S_IFIFO


def test_whiteouts_kept_in_oci_form(sandbox):
    sandbox.unpack(RawTar().dir("a").file("a/.wh.gone").file("a/.wh..wh..opq").bytes())
    assert sorted(os.listdir(sandbox.layer / "a")) == [".wh..wh..opq", ".wh.gone"]
    assert override(sandbox.layer / "a/.wh.gone").uid == 0


def test_hardlinks_share_the_inode(sandbox):
    sandbox.unpack(RawTar().file("bin/busybox", b"bb", mode=0o755)
                   .hardlink("bin/sh", "bin/busybox").hardlink("usr/bin/env", "/bin/busybox")
                   .bytes())
    a = os.lstat(sandbox.layer / "bin/busybox")
    assert os.lstat(sandbox.layer / "bin/sh").st_ino == a.st_ino
    assert os.lstat(sandbox.layer / "usr/bin/env").st_ino == a.st_ino


def test_image_xattrs_kept_and_ours_not_forgeable(sandbox):
    cap = "\x01\x00\x00\x02\x00\x20\x00\x00"
    sandbox.unpack(RawTar().file("ping", b"p", mode=0o755, uid=1000, pax={
        "SCHILY.xattr.security.capability": cap,
        "SCHILY.xattr.user.comment": "hi",
        "SCHILY.xattr.user.containers.override_stat": "0:0:4755",
    }).bytes())
    p = str(sandbox.layer / "ping")
    assert override(p) == Override(1000, 0, 0o755)
    assert os.getxattr(p, "user.comment") == b"hi"
    assert os.getxattr(p, "user.containers.override_security.capability") == cap.encode()


def test_duplicate_entries_last_wins(sandbox):
    sandbox.unpack(RawTar().file("dup", b"one").dir("dup").file("dup/x", b"x")
                   .dir("d").file("d", b"file now").file("f", b"1").file("f", b"2").bytes())
    layer = sandbox.layer
    assert (layer / "dup/x").read_bytes() == b"x"
    assert (layer / "d").read_bytes() == b"file now"
    assert (layer / "f").read_bytes() == b"2"


# -- hostile tars: refused, or contained inside the layer; never outside --

def test_hostile_dotdot_refused(sandbox):
    with pytest.raises(UnpackError, match="outside the layer"):
        sandbox.unpack(RawTar().file("../outside/victim", b"pwned").bytes())


def test_hostile_nested_dotdot_refused(sandbox):
    with pytest.raises(UnpackError, match="outside the layer"):
        sandbox.unpack(RawTar().dir("a").file("a/../../outside/evil", b"pwned").bytes())


def test_hostile_absolute_path_stays_inside(sandbox):
    host_path = str(sandbox.outside / "victim")
    sandbox.unpack(RawTar().file(host_path, b"pwned").file("/etc/evil", b"e").bytes())
    assert (sandbox.layer / host_path.lstrip("/")).read_bytes() == b"pwned"
    assert (sandbox.layer / "etc/evil").read_bytes() == b"e"


def test_hostile_relative_symlink_then_write_through_refused(sandbox):
    with pytest.raises(UnpackError, match="outside the layer"):
        sandbox.unpack(RawTar().symlink("link", "../outside").file("link/victim", b"pwned")
                       .bytes())


def test_hostile_absolute_symlink_then_write_resolves_inside(sandbox):
    sandbox.unpack(RawTar().symlink("abs", str(sandbox.outside)).file("abs/victim", b"pwned")
                   .file("abs/new", b"n").bytes())
    inside = sandbox.layer / str(sandbox.outside).lstrip("/")
    assert (inside / "victim").read_bytes() == b"pwned"
    assert os.readlink(sandbox.layer / "abs") == str(sandbox.outside)


def test_hostile_symlink_to_root_then_dotdot_refused(sandbox):
    with pytest.raises(UnpackError, match="outside the layer"):
        sandbox.unpack(RawTar().symlink("r", "/../..").file("r/outside/victim", b"x").bytes())


def test_hostile_hardlink_outside_refused(sandbox):
    with pytest.raises(UnpackError, match="outside the layer"):
        sandbox.unpack(RawTar().hardlink("hl", "../outside/victim").bytes())


def test_hostile_hardlink_to_host_absolute_path_refused(sandbox):
    with pytest.raises(UnpackError, match=r"not in the layer|No such file"):
        sandbox.unpack(RawTar().hardlink("hl", str(sandbox.outside / "victim")).bytes())


def test_hostile_hardlink_through_symlink_refused(sandbox):
    with pytest.raises(UnpackError):
        sandbox.unpack(RawTar().symlink("s", str(sandbox.outside)).hardlink("hl", "s/victim")
                       .bytes())


def test_hostile_symlink_replaced_by_file_not_written_through(sandbox):
    victim = str(sandbox.outside / "victim")
    sandbox.unpack(RawTar().symlink("x", victim).file("x", b"mine").bytes())
    assert stat.S_ISREG(os.lstat(sandbox.layer / "x").st_mode)
    assert (sandbox.layer / "x").read_bytes() == b"mine"


def test_hostile_symlink_over_directory_then_write(sandbox):
    sandbox.unpack(RawTar().dir("d").symlink("d", str(sandbox.outside)).file("d/victim", b"x")
                   .bytes())
    assert (sandbox.layer / str(sandbox.outside).lstrip("/") / "victim").read_bytes() == b"x"


def test_hostile_symlink_loop_refused(sandbox):
    with pytest.raises(UnpackError, match="symbolic links"):
        sandbox.unpack(RawTar().symlink("l1", "l2").symlink("l2", "l1").file("l1/x").bytes())


def test_hostile_huge_name_refused(sandbox):
    with pytest.raises(UnpackError, match="too long"):
        sandbox.unpack(RawTar().file("a" * 300, b"x").bytes())


def test_deep_path_beyond_path_max_is_fine(sandbox):
    name = "/".join(["d" * 200] * 25) + "/f"  # 5000+ characters, each component legal
    sandbox.unpack(RawTar().file(name, b"deep").bytes())
    fd = os.open(sandbox.layer, os.O_RDONLY)
    try:
        for part in name.split("/")[:-1]:
            nfd = os.open(part, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        assert os.stat("f", dir_fd=fd).st_size == 4
    finally:
        os.close(fd)


def test_hostile_whiteout_escapes_refused(sandbox):
    with pytest.raises(UnpackError, match="outside the layer"):
        sandbox.unpack(RawTar().file("../.wh.victim").bytes())
    with pytest.raises(UnpackError, match="whiteout"):
        sandbox.unpack(RawTar().dir("a").file("a/.wh...").bytes())


def test_hostile_device_node_is_not_a_device(sandbox):
    sandbox.unpack(RawTar().add("kmem", tarfile.CHRTYPE, mode=0o666, major=1, minor=2).bytes())
    st = os.lstat(sandbox.layer / "kmem")
    assert stat.S_ISREG(st.st_mode) and st.st_size == 0


def test_hostile_nul_byte_in_name_refused(sandbox):
    data = RawTar().file("okay", b"x").bytes()
    data = data.replace(b"okay", b"ok\x00y", 1)
    with pytest.raises(UnpackError):
        sandbox.unpack(data)


def test_hostile_truncated_tar_refused(sandbox):
    data = RawTar().file("big", b"x" * 100_000).bytes()
    with pytest.raises(UnpackError):
        sandbox.unpack(data[:50_000])


def test_hostile_hardlink_cycle_to_itself(sandbox):
    with pytest.raises(UnpackError):
        sandbox.unpack(RawTar().hardlink("self", "self").bytes())


# -- the tar formats real writers make, and headers that do not parse --


class _Trickle:
    """A stream that returns at most 700 bytes a read, as a network does."""

    def __init__(self, data: bytes) -> None:
        self.f = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self.f.read(min(n, 700) if n >= 0 else 700)


def _tar(fmt: int, entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind=tarfile.REGTYPE, size: int = 0, **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime, info.mode = kind, size, 1_700_000_000, 0o644
    for k, v in kw.items():
        setattr(info, k, v)
    return info


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names_big_ids_and_a_short_reading_stream(sandbox, fmt):
    """GNU long names and base-256 ids, PAX records, a ustar prefix: the same tree."""
    deep = "/".join([f"dir{i:02d}" for i in range(12)])  # 71 characters of directories
    name = deep + "/" + "n" * 90  # > 100: GNU 'L', PAX path, ustar prefix + name
    uid = 3_000_000 if fmt != tarfile.USTAR_FORMAT else 2_000_000  # > 8**7-1: base-256
    entries = [(_info(name, size=5, uid=uid, gid=7), b"hello"),
               (_info("big", size=3 << 20), bytes(range(256)) * (3 << 12))]
    if fmt != tarfile.USTAR_FORMAT:  # a link target over 100 characters: GNU 'K'
        entries.append((_info("link", tarfile.SYMTYPE, linkname="/" + name), None))
    unpack_tar(_Trickle(_tar(fmt, entries)), sandbox.layer)
    assert (sandbox.layer / name).read_bytes() == b"hello"
    assert (override(sandbox.layer / name).uid, override(sandbox.layer / name).gid) == (uid, 7)
    assert (sandbox.layer / "big").read_bytes() == bytes(range(256)) * (3 << 12)
    assert os.stat(sandbox.layer / name).st_mtime_ns == 1_700_000_000 * 10**9
    if fmt != tarfile.USTAR_FORMAT:
        assert os.readlink(sandbox.layer / "link") == "/" + name


def test_hostile_bad_checksum_refused_not_a_silent_end(sandbox):
    """A corrupted header after the first one is an error (tarfile ended the archive
    there without a word; Go's archive/tar, which Docker uses, refuses it)."""
    data = bytearray(RawTar().file("a", b"x").file("b", b"y").bytes())
    data[1024 + 148:1024 + 156] = b"0000000\0"
    with pytest.raises(UnpackError, match="checksum"):
        sandbox.unpack(bytes(data))


def test_hostile_huge_pax_header_refused(sandbox):
    """A PAX header is read whole: more than 1 MiB (Go's limit) is refused unread."""
    with pytest.raises(UnpackError, match="larger than"):
        sandbox.unpack(RawTar().file("f", b"x", pax={"comment": "c" * (2 << 20)}).bytes())


def test_hostile_malformed_pax_record_refused(sandbox):
    data = RawTar().file("f", b"x", pax={"path": "g"}).bytes()
    data = data.replace(b" path=g\n", b" path-g\n", 1)  # same length, no '='
    with pytest.raises(UnpackError, match="PAX"):
        sandbox.unpack(data)


@pytest.mark.parametrize("fmt", [["--format=gnu"], ["--format=posix", "--sparse-version=0.0"],
                                 ["--format=posix", "--sparse-version=0.1"],
                                 ["--format=posix", "--sparse-version=1.0"]])
def test_sparse_files_as_gnu_tar_writes_them(sandbox, tmp_path_factory, fmt):
    """GNU tar --sparse, each of its formats: same bytes, the holes stay holes."""
    import subprocess

    src = tmp_path_factory.mktemp("sparse-src")
    with open(src / "s", "wb") as f:
        for offset in (0, 5 << 20, 9 << 20):
            f.seek(offset)
            f.write(b"data at %d\n" % offset * 100)
        f.truncate(12 << 20)
    expected = (src / "s").read_bytes()
    data = subprocess.run(["tar", "--sparse", *fmt, "-C", str(src), "-cf", "-", "s"],
                          check=True, capture_output=True).stdout
    unpack_tar(_Trickle(data), sandbox.layer)
    assert (sandbox.layer / "s").read_bytes() == expected
    assert os.stat(sandbox.layer / "s").st_blocks * 512 < 1 << 20


def test_hostile_sparse_maps(sandbox):
    with pytest.raises(UnpackError, match="bad map"):  # overlapping segments
        sandbox.unpack(RawTar().file("t", b"xx", pax={
            "GNU.sparse.map": "0,1,0,1", "GNU.sparse.size": "10"}).bytes())
    with pytest.raises(UnpackError, match="does not match"):  # more data than the map says
        sandbox.unpack(RawTar().file("u", b"xyz", pax={
            "GNU.sparse.map": "0,1", "GNU.sparse.size": "10"}).bytes())
    # a huge file of one byte: a hole, not terabytes of zeros (or refused by the filesystem)
    try:
        sandbox.unpack(RawTar().file("v", b"x", pax={
            "GNU.sparse.map": f"{1 << 40},1", "GNU.sparse.size": str((1 << 40) + 1)}).bytes())
    except UnpackError as exc:
        assert "too large" in str(exc)
    else:
        assert os.stat(sandbox.layer / "v").st_blocks * 512 < 1 << 20


@pytest.mark.parametrize("pax, what", [
    ({"GNU.sparse.map": "0,0", "GNU.sparse.size": str(10 ** 30)}, "out of range"),
    ({"GNU.sparse.map": f"{10 ** 30},0", "GNU.sparse.size": "10"}, "out of range"),
    ({"size": "1" * 5000}, "out of range"),
    ({"uid": "9" * 20}, "out of range"),
])
def test_hostile_numbers_beyond_int64_refused(sandbox, pax, what):
    """Go's archive/tar takes int64s only: a bigger size, offset or id is one clear error
    (it was an OverflowError or Python's 4300-digit ValueError, not an UnpackError)."""
    with pytest.raises(UnpackError, match=what):
        sandbox.unpack(RawTar().file("n", b"", pax=pax).bytes())


@pytest.mark.parametrize("compress", ["gzip", "bz2", "lzma", "zstd", None])
def test_compressed_streams_for_volume_import(tmp_path, compress):
    """`rl volume import` takes a compressed tar as tarfile's "r|*" did."""
    data = RawTar().dir("d").file("d/f", b"content").bytes()
    if compress == "zstd":
        import zstandard

        data = zstandard.ZstdCompressor().compress(data)
    elif compress:
        data = __import__(compress).compress(data)
    unpack_tar(_Trickle(data), tmp_path, tar_mode="r|*")
    assert (tmp_path / "d" / "f").read_bytes() == b"content"


# -- random hostile tars: whatever the entries, nothing outside changes --

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NAMES = ["a", "a/victim", "a/b", "b", "../a", "/a/victim", "a/../../victim"]


def _names():
    """Few names, so links made by one entry are met by the next ones."""
    return st.sampled_from(_NAMES)


def _targets(outside: str):
    return st.sampled_from([outside, outside + "/victim", "../outside", "a", "/", "..",
                            "a/victim", "/../outside"])


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_entries_never_escape(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("fuzz")
    layer, outside = root / "layer", root / "outside"
    layer.mkdir()
    outside.mkdir()
    (outside / "victim").write_bytes(b"original\n")
    before = snapshot(outside)
    names, targets = _names(), _targets(str(outside))
    tar = RawTar()
    for _ in range(data.draw(st.integers(1, 10))):
        kind = data.draw(st.sampled_from(["file", "dir", "symlink", "hardlink", "chr"]))
        name = data.draw(names)
        if kind == "file":
            tar.file(name, b"pwned")
        elif kind == "dir":
            tar.dir(name)
        elif kind == "symlink":
            tar.symlink(name, data.draw(targets))
        elif kind == "hardlink":
            tar.hardlink(name, data.draw(st.one_of(targets, names)))
        else:
            tar.add(name, tarfile.CHRTYPE, major=1, minor=3)
    try:
        unpack_tar(io.BytesIO(tar.bytes()), layer)
    except UnpackError:
        pass
    assert snapshot(outside) == before
    assert sorted(os.listdir(root)) == ["layer", "outside"]


def test_sparse_size_beyond_its_map_is_a_trailing_hole_up_to_a_bound(sandbox):
    """A size past the map's end is a trailing hole (as Go takes it; libarchive writes no
    empty last segment); past 1 TiB it is refused before any file is made."""
    sandbox.unpack(RawTar().file("w", b"x", pax={
        "GNU.sparse.map": "0,1", "GNU.sparse.size": str(4 << 20)}).bytes())
    assert os.stat(sandbox.layer / "w").st_size == 4 << 20
    with pytest.raises(UnpackError, match="too large"):
        sandbox.unpack(RawTar().file("lie", b"x", pax={
            "GNU.sparse.map": "0,1", "GNU.sparse.size": str(1 << 45)}).bytes())
    assert not (sandbox.layer / "lie").exists()
    # the trailing hole written as GNU tar writes it: taken, and a hole
    sandbox.unpack(RawTar().file("h", b"x", pax={
        "GNU.sparse.map": f"0,1,{8 << 20},0", "GNU.sparse.size": str(8 << 20)}).bytes())
    assert os.stat(sandbox.layer / "h").st_size == 8 << 20
    assert os.stat(sandbox.layer / "h").st_blocks * 512 < 1 << 20
    # the size bound, with an honest map
    with pytest.raises(UnpackError, match="too large"):
        sandbox.unpack(RawTar().file("big", b"x", pax={
            "GNU.sparse.map": f"0,1,{1 << 45},0", "GNU.sparse.size": str(1 << 45)}).bytes())
    assert not (sandbox.layer / "big").exists()


def test_an_entry_of_an_unknown_type_has_its_data_skipped():
    """A typeflag ' ' (no type) carries the data its size says, as in Go's archive/tar:
    that data is never read as the next header (it was: ' ' was taken as header-only)."""
    from rootless.store.tarstream import TarReader

    inner = RawTar().file("smuggled", b"").bytes()[:512]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("odd")
        info.type, info.size = b" ", len(inner)
        tar.addfile(info, io.BytesIO(inner))
        tar.addfile(tarfile.TarInfo("after"), io.BytesIO(b""))
    names = [e.name for e in TarReader(io.BytesIO(buf.getvalue()))]
    assert names == ["odd", "after"]

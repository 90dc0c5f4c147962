"""Volumes, bind mounts and tmpfs in real containers (issue 7), as the unprivileged user."""

from __future__ import annotations

import json
import os
import pwd
import stat
import tarfile
import time

import pytest


def subuid_base() -> int:
    me = pwd.getpwuid(os.getuid()).pw_name
    with open("/etc/subuid") as f:
        for line in f:
            name, start, _count = line.strip().split(":")
            if name in (me, str(os.getuid())):
                return int(start)
    pytest.skip("the test user has no subordinate uid range")


def volume_dir(rlc, name: str):
    return rlc.data_dir / "volumes" / name / "_data"


def ok(rlc, *args, **kw):
    return rlc(*args, check=True, **kw)


def test_named_volume_created_on_first_use_outlives_its_container(rlc):
    assert "data" not in ok(rlc, "volume", "ls", "-q").stdout.split()
    ok(rlc, "run", "--name", "writer", "-v", "data:/data", rlc.busybox,
       "sh", "-c", "echo kept > /data/file")
    assert "data" in ok(rlc, "volume", "ls", "-q").stdout.split()
    ok(rlc, "rm", "writer")
    assert "data" in ok(rlc, "volume", "ls", "-q").stdout.split()
    r = ok(rlc, "run", "--rm", "-v", "data:/data", rlc.busybox, "cat", "/data/file")
    assert r.stdout == "kept\n"


def test_readonly_volume_refuses_writes(rlc):
    ok(rlc, "run", "--rm", "-v", "data:/data", rlc.busybox, "sh", "-c", "echo x > /data/f")
    r = rlc("run", "--rm", "-v", "data:/data:ro", rlc.busybox, "sh", "-c",
            "cat /data/f && echo y > /data/f")
    assert r.returncode != 0
    assert r.stdout == "x\n"
    assert "Read-only file system" in r.stderr
    assert (volume_dir(rlc, "data") / "f").read_text() == "x\n"


def test_new_volume_gets_the_image_content_with_owners_and_modes(rlc):
    sub = subuid_base()
    ok(rlc, "run", "--rm", "-v", "fresh:/srv/data", rlc.voltest, "true")
    vd = volume_dir(rlc, "fresh")
    st = os.lstat(vd)
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o750, sub + 999)
    # inside, as the container sees them (the dir is 0750 of a subordinate uid on the host)
    r = ok(rlc, "unshare", "stat", "-c", "%n %u:%g %a", str(vd / "owned.txt"),
           str(vd / "root.txt"))
    assert r.stdout == f"{vd}/owned.txt 1000:1000 640\n{vd}/root.txt 0:0 600\n"
    r = ok(rlc, "run", "--rm", "-v", "fresh:/srv/data", rlc.voltest,
           "sh", "-c", "cat /srv/data/sub/deep.txt; stat -c '%u %a' /srv/data/sub")
    assert r.stdout == "deep\n1000 700\n"


def test_no_copy_into_a_non_empty_volume_nor_with_nocopy(rlc):
    ok(rlc, "run", "--rm", "-v", "mine:/x", rlc.busybox, "sh", "-c", "echo m > /x/marker")
    r = ok(rlc, "run", "--rm", "-v", "mine:/srv/data", rlc.voltest, "ls", "/srv/data")
    assert r.stdout.split() == ["marker"]
    r = ok(rlc, "run", "--rm", "-v", "empty:/srv/data:nocopy", rlc.voltest, "ls", "-A",
           "/srv/data")
    assert r.stdout == ""


def _anonymous(rlc) -> list[str]:
    names = ok(rlc, "volume", "ls", "-q").stdout.split()
    if not names:
        return []
    vols = json.loads(ok(rlc, "volume", "inspect", *names).stdout)
    return sorted(v["Name"] for v in vols if v["Anonymous"])


def test_anonymous_volumes_from_dash_v_and_image_volume_removed_by_rm_v(rlc):
    ok(rlc, "run", "--name", "anon", "-v", "/scratch", rlc.voltest, "sh", "-c",
       "echo a > /scratch/f; echo v > /vol/f")
    anon = _anonymous(rlc)
    assert len(anon) == 2
    mounts = json.loads(ok(rlc, "inspect", "anon").stdout)[0]["Mounts"]
    by_dest = {m["Destination"]: m for m in mounts}
    assert by_dest["/scratch"]["Type"] == by_dest["/vol"]["Type"] == "volume"
    assert sorted(m["Name"] for m in mounts) == anon
    ok(rlc, "rm", "-v", "anon")
    assert _anonymous(rlc) == []
    assert not any((rlc.data_dir / "volumes" / n).exists() for n in anon)


def test_plain_rm_keeps_anonymous_volumes_and_run_rm_removes_them(rlc):
    ok(rlc, "run", "--name", "keep", rlc.voltest, "true")
    ok(rlc, "rm", "keep")
    kept = _anonymous(rlc)
    assert len(kept) == 1
    ok(rlc, "run", "--rm", "-v", "/other", rlc.voltest, "true")
    assert _anonymous(rlc) == kept
    cid = ok(rlc, "run", "--rm", "-d", rlc.voltest, "true").stdout.strip()
    # --rm of a detached container happens when it exits, after `run -d` returned
    # (as in Docker): wait for it before pruning what it no longer uses
    deadline = time.monotonic() + 10
    while cid[:12] in ok(rlc, "ps", "-a", "-q").stdout.split():
        assert time.monotonic() < deadline, "the --rm container was not removed"
        time.sleep(0.05)
    ok(rlc, "volume", "prune", "-f")
    assert _anonymous(rlc) == []


def test_bind_mount_of_a_dir_and_of_a_single_file(rlc, tmp_path):
    d = tmp_path / "host"
    d.mkdir()
    (d / "in.txt").write_text("from host\n")
    single = tmp_path / "motd"
    single.write_text("single file\n")
    r = ok(rlc, "run", "--rm", "-v", f"{d}:/h", "-v", f"{single}:/etc/motd:ro", rlc.busybox,
           "sh", "-c", "cat /h/in.txt /etc/motd; echo out > /h/out.txt; "
           "echo no >> /etc/motd || echo refused")
    assert r.stdout == "from host\nsingle file\nrefused\n"
    assert (d / "out.txt").read_text() == "out\n"
    assert single.read_text() == "single file\n"


@pytest.mark.parametrize("spec, words", [
    ("./dir:/x", "absolute"),
    ("dir/sub:/x", "absolute"),
    ("data:/x/../y", ".."),
    ("data::/x", "empty"),
    ("data:/x:rw:extra", "empty"),
    ("data:relative", "absolute"),
])
def test_bad_volume_specs_are_refused_and_change_nothing(rlc, spec, words):
    r = rlc("run", "--rm", "-v", spec, rlc.busybox, "true")
    assert r.returncode == 125
    assert r.stderr.startswith("rl: error:") and words in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert ok(rlc, "volume", "ls", "-q").stdout == ""
    assert ok(rlc, "ps", "-aq").stdout == ""


def test_tmpfs_is_empty_writable_and_gone_after_the_container(rlc):
    ok(rlc, "create", "--name", "t", "--tmpfs", "/scratch:size=1m,mode=700", rlc.busybox,
       "sh", "-c", "ls -A /scratch; stat -c %a /scratch; grep ' /scratch ' /proc/mounts;"
       " echo x > /scratch/f && echo wrote")
    first = ok(rlc, "start", "-a", "t").stdout.splitlines()
    assert first[0] == "700"
    assert first[1].startswith("tmpfs /scratch tmpfs") and "size=1024k" in first[1]
    assert first[2] == "wrote"
    again = ok(rlc, "start", "-a", "t").stdout.splitlines()
    assert again[0] == "700"  # nothing from the first run: ls printed nothing


def test_mount_flag_for_volume_bind_and_tmpfs(rlc, tmp_path):
    (tmp_path / "b.txt").write_text("b\n")
    r = ok(rlc, "run", "--rm",
           "--mount", "type=volume,source=mv,target=/m",
           "--mount", f"type=bind,source={tmp_path},target=/b,readonly",
           "--mount", "type=tmpfs,target=/t,tmpfs-size=65536",
           rlc.busybox, "sh", "-c",
           "echo v > /m/v; cat /b/b.txt; touch /b/no 2>/dev/null || echo ro;"
           " grep ' /t ' /proc/mounts | cut -d' ' -f3")
    assert r.stdout == "b\nro\ntmpfs\n"
    assert (volume_dir(rlc, "mv") / "v").read_text() == "v\n"
    r = rlc("run", "--rm", "--mount", "type=bind,source=/does/not/exist,target=/x",
            rlc.busybox, "true")
    assert r.returncode == 125 and "/does/not/exist" in r.stderr


def test_host_side_owners_root_is_the_user_1000_is_a_subordinate_uid(rlc, tmp_path):
    sub = subuid_base()
    d = tmp_path / "own"
    d.mkdir()
    os.chmod(d, 0o777)
    ok(rlc, "run", "--rm", "-v", f"{d}:/o", "-v", "vol:/v", rlc.busybox, "sh", "-c",
       "echo r > /o/root; echo r > /v/root; chmod 777 /v")
    ok(rlc, "run", "--rm", "-u", "1000:1000", "-v", f"{d}:/o", "-v", "vol:/v", rlc.busybox,
       "sh", "-c", "echo u > /o/user; echo u > /v/user")
    for base in (d, volume_dir(rlc, "vol")):
        st_root, st_user = os.stat(base / "root"), os.stat(base / "user")
        assert (st_root.st_uid, st_root.st_gid) == (os.getuid(), os.getgid())
        assert (st_user.st_uid, st_user.st_gid) == (sub + 999, sub + 999)


def test_two_containers_write_one_volume_at_once(rlc):
    script = ("i=0; while [ $i -lt 300 ]; do echo $1 $i >> /shared/log; "
              "echo $i > /shared/$1; i=$((i+1)); done")
    ids = [ok(rlc, "run", "-d", "-v", "shared:/shared", rlc.busybox, "sh", "-c", script,
              "sh", who).stdout.strip() for who in ("a", "b")]
    codes = [ok(rlc, "wait", i).stdout.strip() for i in ids]
    states = [json.loads(ok(rlc, "inspect", i).stdout)[0]["State"] for i in ids]
    assert codes == ["0", "0"], (states, [rlc("logs", i).stderr for i in ids])
    lines = (volume_dir(rlc, "shared") / "log").read_text().splitlines()
    assert sorted(lines) == sorted(f"{w} {i}" for w in "ab" for i in range(300))
    assert (volume_dir(rlc, "shared") / "a").read_text() == "299\n"


def test_volume_in_use_is_not_removed_nor_pruned(rlc):
    ok(rlc, "create", "--name", "user1", "-v", "busy:/b", rlc.busybox, "true")
    ok(rlc, "volume", "create", "idle")
    r = rlc("volume", "rm", "busy")
    assert r.returncode == 125 and "user1" in r.stderr
    assert ok(rlc, "volume", "prune", "-a", "-f").stdout.splitlines()[:3] == [
        "Deleted Volumes:", "idle", ""]
    assert ok(rlc, "volume", "ls", "-q").stdout.split() == ["busy"]
    ok(rlc, "rm", "user1")
    ok(rlc, "volume", "rm", "busy")
    assert not (rlc.data_dir / "volumes" / "busy").exists()


def test_volume_export_and_import_keep_subordinate_owners(rlc, tmp_path):
    sub = subuid_base()
    ok(rlc, "run", "--rm", "-v", "src:/d", rlc.busybox, "sh", "-c",
       "echo a > /d/a; mkdir /d/u; echo b > /d/u/b; chmod 600 /d/u/b; chmod 700 /d/u;"
       " chown -R 1000:1000 /d/u")
    archive = tmp_path / "src.tar"
    with open(archive, "wb") as out:
        r = rlc("volume", "export", "src", text=False)
        assert r.returncode == 0, r.stderr
        out.write(r.stdout)
    with tarfile.open(archive) as tar:
        owners = {m.name: (m.uid, stat.S_IMODE(m.mode)) for m in tar.getmembers()}
    assert owners == {"a": (0, 0o644), "u": (1000, 0o700), "u/b": (1000, 0o600)}
    ok(rlc, "volume", "import", "copy", str(archive))
    st = os.stat(volume_dir(rlc, "copy") / "u")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (sub + 999, 0o700)
    r = ok(rlc, "run", "--rm", "-u", "1000", "-v", "copy:/c", rlc.busybox, "cat", "/c/u/b")
    assert r.stdout == "b\n"
    ok(rlc, "volume", "rm", "src", "copy")
    assert not (rlc.data_dir / "volumes" / "copy").exists()


def test_volume_import_refuses_members_outside_the_volume(rlc, tmp_path):
    import io

    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"bad\n"))
    r = rlc("volume", "import", "target", str(archive))
    assert r.returncode != 0 and "../escaped.txt" in r.stderr
    assert not (rlc.data_dir / "volumes" / "target" / "escaped.txt").exists()
    assert not (rlc.data_dir / "volumes" / "escaped.txt").exists()
    assert ok(rlc, "volume", "ls", "-q").stdout == ""  # the volume it made is gone again

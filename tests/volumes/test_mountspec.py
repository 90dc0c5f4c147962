"""The -v / --mount / --tmpfs grammar, with Docker's acceptances and refusals."""

from __future__ import annotations

import pytest

from rootless.engine.mountspec import Mount, checked, parse_mount, parse_tmpfs, parse_volume
from rootless.errors import InvalidArgument


@pytest.mark.parametrize("spec, kind, source, target, ro", [
    ("data:/data", "volume", "data", "/data", False),
    ("data:/data:ro", "volume", "data", "/data", True),
    ("data:/data:rw,z", "volume", "data", "/data", False),
    ("/srv/www:/usr/share/www:ro", "bind", "/srv/www", "/usr/share/www", True),
    ("/srv//www/:/www/", "bind", "/srv/www", "/www", False),
    ("/cache", "volume", None, "/cache", False),
])
def test_volume_specs(spec, kind, source, target, ro):
    m = parse_volume(spec)
    assert (m.type, m.source, m.target, m.readonly) == (kind, source, target, ro)


@pytest.mark.parametrize("spec, words", [
    ("./dir:/x", "neither an absolute host path nor a volume name"),
    ("dir/sub:/x", "neither an absolute host path nor a volume name"),
    ("data:/a/../b", "must not contain '..'"),
    ("/a/../b:/x", "must not contain '..'"),
    ("data:rel", "must be absolute"),
    (":/x", "no empty part"),
    ("data::ro", "no empty part"),
    ("data:/x:", "no empty part"),
    ("a:b:c:d", "no empty part"),
    ("data:/x:bogus", "unknown option 'bogus'"),
    ("/x:/", "can't be '/'"),
])
def test_bad_volume_specs(spec, words):
    with pytest.raises(InvalidArgument) as exc:
        parse_volume(spec)
    assert words in str(exc.value)


def test_mount_flag():
    m = parse_mount("type=bind,source=/tmp,target=/x,readonly")
    assert (m.type, m.source, m.target, m.readonly, m.create_source) == ("bind", "/tmp", "/x",
                                                                          True, False)
    m = parse_mount("type=volume,src=data,dst=/d,volume-nocopy")
    assert (m.source, m.nocopy) == ("data", True)
    m = parse_mount("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1770")
    assert m.tmpfs_options == ["size=1048576", "mode=1770"]  # sizes checked, in bytes
    assert parse_mount("target=/anon").source is None


@pytest.mark.parametrize("spec, words", [
    ("type=bind,target=/x", "source is required"),
    ("type=bind,source=rel,target=/x", "must be an absolute path"),
    ("type=nfs,target=/x", "type 'nfs' is not supported"),
    ("type=volume,source=v", "target is required"),
    ("type=volume,target=/x,colour=red", "unexpected key 'colour'"),
    ("type=bind,source=/a,target=/x,readonly=maybe", "not a boolean"),
    ("type=tmpfs,source=/a,target=/x", "takes no source"),
])
def test_bad_mount_flags(spec, words):
    with pytest.raises(InvalidArgument) as exc:
        parse_mount(spec)
    assert words in str(exc.value)


def test_tmpfs_flag():
    m = parse_tmpfs("/run:size=64m,mode=1777")
    assert (m.target, m.tmpfs_options) == ("/run", ["size=67108864", "mode=1777"])
    with pytest.raises(InvalidArgument):
        parse_tmpfs("run")


# A Mount a front end builds itself (the API from HostConfig.Mounts, compose from its long
# syntax) meets the rules the parsers apply: the engine checks every one (mounts.plan).
@pytest.mark.parametrize("mount, words", [
    (Mount("bind", "/x", "relative/dir"), "must be an absolute path"),
    (Mount("bind", "/x", None), "must be an absolute path"),
    (Mount("volume", "x", "data"), "must be absolute"),
    (Mount("volume", "/", "data"), "can't be '/'"),
    (Mount("volume", "/a/../b", "data"), "must not contain '..'"),
    (Mount("volume", "/x", "no/slashes"), "neither an absolute host path nor a volume name"),
    (Mount("tmpfs", "/x", tmpfs_options=["size=lots"]), "invalid --tmpfs size"),
    (Mount("tmpfs", "/x", "src"), "takes no source"),
    (Mount("nfs", "/x", "server:/share"), "not supported"),
    (Mount("bind", "/x", "/tmp", propagation="sideways"), "bad propagation"),
])
def test_hand_built_mounts_are_checked(mount, words):
    with pytest.raises(InvalidArgument) as info:
        checked(mount)
    assert words in str(info.value)


def test_hand_built_mounts_are_normalized():
    assert checked(Mount("bind", "/x/", "/tmp/a/")).source == "/tmp/a"
    m = checked(Mount("tmpfs", "/run", tmpfs_options=["size=1m", "mode=1770"]))
    assert (m.target, m.tmpfs_options) == ("/run", ["size=1048576", "mode=1770"])
    # what the CLI's parser made passes through unchanged
    assert checked(parse_volume("/tmp:/x:ro")) == parse_volume("/tmp:/x:ro")

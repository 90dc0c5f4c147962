"""Owners and modes shown from the layer metadata, chown/chmod recorded in the upper copy,
and permissions enforced by the kernel (default_permissions) for non-root container users.

Single id mapping (a user without subuids): only uid 0 exists in the namespace, so the
kernel itself refuses chown to another id (EINVAL) before fuse_overlay sees it, and ids from
the xattr that the namespace does not map show as the overflow id 65534; the xattr keeps the
real value in the layer. Full mapping: every id shows and chown works."""

from __future__ import annotations

OVERFLOW = 65534


def test_single_mapping(ns_single):
    r = ns_single("ownership", "single")
    assert r["plain"] == [0, 0, "0o644"]  # the user's own files are root's
    assert r["ov"] == [OVERFLOW, OVERFLOW, "0o640"]  # the xattr wins; 1000 is not mapped
    assert r["link"][:2] == [0, 0]
    # the kernel refuses writes to files of ids the namespace does not map, even by root
    assert r["append_ov"] == "EACCES"
    assert r["ov_after_copy_up"] == "EACCES"
    assert r["chmod"] == [0, 0, "0o600"]
    assert r["chown_root"] == "ok"
    assert r["chown_1000"] == "EINVAL"  # refused by the kernel: 1000 does not exist here
    assert r["plain_after_chown"] == [0, 0, "0o600"]
    assert r["chown_link"] == "EINVAL"
    assert r["remounted"] == {"plain": [0, 0, "0o600"], "ov": [OVERFLOW, OVERFLOW, "0o640"]}


def test_full_mapping(ns_full):
    r = ns_full("ownership", "full")
    assert r["plain"] == [0, 0, "0o644"]
    assert r["ov"] == [1000, 1000, "0o640"]
    assert r["real"][:2] == [1000, 1000]  # no xattr: the on-disk owner
    assert r["both"] == [2000, 2000, "0o600"]  # the xattr wins over the on-disk owner
    assert r["append_ov"] == "ok"
    assert r["ov_after_copy_up"] == [[1000, 1000, "0o666"], "1000:1000:0666"]
    assert r["chown_1000"] == "ok"
    assert r["plain_after_chown"] == [1000, 1000, "0o600"]
    assert r["plain_xattr"] == "1000:1000:0600"
    assert r["plain_disk_owner"] == [0, 0]  # recorded, not done on disk (no realchown)
    assert r["chown_link"] == "ok"
    assert r["as_1000"] == {"list": True, "secret": "EACCES", "pub": "pub",
                            "write_root_dir": "EACCES", "create_own": "ok"}
    assert r["mine"] == [1000, 1000, "0o644"]
    assert r["mine_xattr"] == "1000:1000:0644"
    assert r["remounted"] == {"plain": [1000, 1000, "0o600"], "ov": [1000, 1000, "0o640"]}


def test_full_mapping_realchown(ns_full):
    r = ns_full("ownership", "full", "realchown")
    assert r["plain_after_chown"] == [1000, 1000, "0o600"]
    assert r["plain_xattr"] == "1000:1000:0600"  # still recorded: it stays authoritative
    assert r["plain_disk_owner"] == [1000, 1000]
    assert r["mine_disk_owner"] == 1000


def test_single_mapping_squash_unmapped(ns_single):
    r = ns_single("ownership", "single", "squash_unmapped")
    assert r["ov"] == [0, 0, "0o640"]  # shown as root: usable by the container's root
    assert r["append_ov"] == "ok"
    assert r["ov_after_copy_up"] == [[0, 0, "0o666"], "1000:1000:0666"]  # the layer keeps 1000
    assert r["remounted"]["ov"] == [0, 0, "0o640"]

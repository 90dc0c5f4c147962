"""A killed or hung server never leaves anything stuck; a crash during copy-up leaves the
upper dir consistent; the daemon and library entry points mount and unmount cleanly.

What a container sees when its fuse_overlay server dies: what the kernel has cached
(entries, attributes, pages) may still be served; everything else fails at once with
ENOTCONN ("Transport endpoint is not connected"), also for already open files; nothing
blocks. A hung (not dead) server is cut off by fuse_overlay.server.abort(mountpoint) when
fusectl is mounted at /sys/fs/fuse/connections (not on this machine), else by killing it:
the kernel ends the connection when the server's /dev/fuse descriptor closes."""

from __future__ import annotations

import pytest


def test_kill9_gives_enotconn_and_unmounts(ns_single):
    r = ns_single("kill9")
    assert r["before"] == "ok"
    assert r["after"] == "Transport endpoint is not connected"
    assert r["open_fd"] == "ENOTCONN"
    assert r["close"] in ("ok", "ENOTCONN")  # the flush fails; the descriptor is closed
    assert r["seconds"] < 5
    assert r["umount"] == 0
    assert r["listing_after_umount"] == []


def test_hung_server_is_aborted(ns_single):
    r = ns_single("hung_server_abort")
    assert r["blocked"], "the reader waits for the stopped server"
    assert r["aborted"]
    assert r["reader"][0] != 0
    assert r["seconds"] < 5
    assert not r["mounted"]


def test_crash_during_copy_up_leaves_upper_consistent(ns_single):
    r = ns_single("crash_mid_copy_up")
    assert r["copied_before_kill"] > 0
    assert r["incomplete_in_upper"] == []  # copies are renamed into upper only when whole
    assert r["after_remount_ok"]
    assert r["work_after_remount"] == []  # leftovers of the crash removed at mount


def test_daemon_mode_and_library_run(ns_single):
    r = ns_single("daemon_and_signals")
    assert r["daemon_rc"] == 0
    assert "fast_ino" in r["stderr"] and "ignored" in r["stderr"]
    assert r["live"] == "a"  # live as soon as the command returned
    assert r["unmounted"]
    assert r["ready"] == "1"
    assert r["lib_live"] == "a"
    assert r["after_sigint"] == "a"
    assert r["lib_exit"] == 0
    assert r["lib_unmounted"]


CRASH_CASES = {
    # a copied-up lower file removed: its upper copy goes, a whiteout comes
    "unlink copied-up": ([[["f", "file", "lower"], ["keep", "file", "k"]]],
                         [["write", "f", "upper"]], ["unlink", "f"]),
    # a lower directory emptied through the mount, then removed
    "rmdir emptied lower dir": ([[["d/a", "file", "a"], ["d/b", "file", "b"]]],
                                [["unlink", "d/a"], ["unlink", "d/b"]], ["rmdir", "d"]),
    # a copied-up lower file renamed away: a whiteout at the old name
    "rename away": ([[["f", "file", "lower"]]], [["write", "f", "upper"]],
                    ["rename", "f", "g"]),
    # a lower directory renamed over an emptied lower directory
    "rename dir over dir": ([[["d/x", "file", "x"], ["e/y", "file", "y"]]],
                            [["unlink", "e/y"]], ["rename", "d", "e"]),
}


@pytest.mark.parametrize("case", sorted(CRASH_CASES))
def test_crash_at_any_point_of_a_removal_shows_old_or_new_state(ns_single, case):
    """The server dies at each change to the disk that a removal makes in turn (simulated in
    the namespace by failing that change and every later one); mounted afresh, the tree is
    the one before or the one after the operation, never a removed lower file back."""
    layers, prep, op = CRASH_CASES[case]
    r = ns_single("crash_points", layers, prep, op)
    assert r["old"] != r["new"]
    assert r["points"], "the operation changes the disk at least once"
    for i, view in enumerate(r["points"], 1):
        assert view in (r["old"], r["new"]), f"crash at change {i}: {view}"

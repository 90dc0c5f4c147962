"""safepath's writers into a tree a container can write (ensure_dir_at, create_at,
symlink_at): what holds a name is replaced, never followed; an existing directory is kept
and merged into. The races themselves run from real containers in test_host_walks.py
(`rl build -o` into a mount); here each rule on its own, against a victim outside."""

from __future__ import annotations

import os

import pytest

from rootless.linux import safepath


@pytest.fixture
def tree(tmp_path):
    """(fd of tmp/tree, tmp/victim: a directory outside with a file)."""
    (tmp_path / "tree").mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "secret").write_text("secret\n")
    fd = os.open(tmp_path / "tree", os.O_RDONLY | os.O_DIRECTORY)
    yield fd, victim
    os.close(fd)
    assert sorted(os.listdir(victim)) == ["secret"]
    assert (victim / "secret").read_text() == "secret\n"


def test_a_symlink_where_a_directory_goes_is_replaced(tree, tmp_path):
    fd, victim = tree
    os.symlink(victim, tmp_path / "tree" / "d")
    d = safepath.ensure_dir_at(fd, "d")
    try:
        os.close(safepath.create_at(d, "new"))
    finally:
        os.close(d)
    assert (tmp_path / "tree" / "d").is_dir() and not (tmp_path / "tree" / "d").is_symlink()
    assert (tmp_path / "tree" / "d" / "new").exists()


def test_an_existing_directory_is_kept_even_unreadable(tree, tmp_path):
    fd, _ = tree
    (tmp_path / "tree" / "d").mkdir()
    (tmp_path / "tree" / "d" / "old").write_text("old\n")
    (tmp_path / "tree" / "d").chmod(0o311)
    d = safepath.ensure_dir_at(fd, "d")
    os.close(d)
    assert (tmp_path / "tree" / "d" / "old").read_text() == "old\n"


def test_a_symlink_or_a_tree_where_a_file_goes_is_replaced(tree, tmp_path):
    fd, victim = tree
    os.symlink(victim / "secret", tmp_path / "tree" / "f")
    (tmp_path / "tree" / "g" / "sub").mkdir(parents=True)
    os.symlink(victim, tmp_path / "tree" / "g" / "sub" / "link")
    for name in ("f", "g"):
        out = safepath.create_at(fd, name, 0o640)
        os.write(out, b"mine\n")
        os.close(out)
        assert (tmp_path / "tree" / name).read_text() == "mine\n"
    safepath.symlink_at(fd, "target", "f")
    assert os.readlink(tmp_path / "tree" / "f") == "target"


def test_a_name_planted_again_and_again_is_refused(tree, tmp_path, monkeypatch):
    """A container that puts its symlink back after each removal: refused, not a loop."""
    fd, victim = tree
    os.symlink(victim / "secret", tmp_path / "tree" / "f")
    monkeypatch.setattr(safepath, "rmtree_at", lambda dirfd, name: None)  # "put back"
    with pytest.raises(safepath.Escape, match="could not be replaced"):
        safepath.create_at(fd, "f")
    with pytest.raises(safepath.Escape, match="could not be replaced"):
        safepath.symlink_at(fd, "x", "f")
    os.symlink(victim, tmp_path / "tree" / "d")
    with pytest.raises(safepath.Escape, match="could not be replaced"):
        safepath.ensure_dir_at(fd, "d")

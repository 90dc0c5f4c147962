"""Fixtures for the build tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def make_context(tmp_path):
    """Create files from a {relative path: content} dict; content None makes a directory,
    a ("link", target) tuple a symlink. Returns the context directory."""

    def make(files: dict, root=None):
        root = root or tmp_path / "ctx"
        root.mkdir(parents=True, exist_ok=True)
        for rel, content in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if content is None:
                p.mkdir(exist_ok=True)
            elif isinstance(content, tuple):
                p.symlink_to(content[1])
            else:
                p.write_text(content)
        return root

    return make

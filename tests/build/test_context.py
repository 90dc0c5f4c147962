"""The build context: walking it through .dockerignore, resolving COPY/ADD sources
(wildcards, refusal of paths outside the context) and the content hash the cache uses."""

from __future__ import annotations

import os

import pytest

from rootless.build import dockerfile
from rootless.build.context import BuildContext
from rootless.errors import RlError


def copy_of(text: str, env=None):
    """The expanded COPY/ADD of `FROM a\\n<text>` (on line 2)."""
    inst = dockerfile.parse("FROM a\n" + text).stages[0].instructions[0]
    return inst.expand(env or {})


def paths(ctx: BuildContext, text: str) -> list[list[str]]:
    return [s.paths for s in ctx.resolve_sources(copy_of(text))]


# --------------------------------------------------------------------------- walk

def test_walk_applies_ignore_and_descends_for_exceptions(make_context):
    root = make_context({
        "Dockerfile": "FROM a\n", ".dockerignore": "node_modules\n!node_modules/keep.txt\n*.log\n",
        "app.py": "x", "debug.log": "x", "node_modules/keep.txt": "k", "node_modules/lib/x.js": "x",
        "src/a.py": "a", "src/b.log": "b",
    })
    ctx = BuildContext.open(root)
    assert [e.path for e in ctx.walk()] == [
        ".dockerignore", "Dockerfile", "app.py", "node_modules", "node_modules/keep.txt", "src", "src/a.py",
        "src/b.log"]  # *.log only matches at the root, as in Docker


def test_walk_nested_exception_yields_each_parent_once(make_context):
    root = make_context({".dockerignore": "a\n!a/b/c/keep\n", "a/b/c/keep": "k", "a/b/c/drop": "d",
                         "a/b/other": "o", "a/x": "x"})
    assert [e.path for e in BuildContext.open(root).walk()] == [
        ".dockerignore", "a", "a/b", "a/b/c", "a/b/c/keep"]


def test_walk_does_not_enter_excluded_directories_without_exceptions(make_context, monkeypatch):
    root = make_context({".dockerignore": "big\n", "big/a/b/c.txt": "x", "small.txt": "s"})
    ctx = BuildContext.open(root)
    visited = []
    real = os.listdir

    def spy(p):
        visited.append(os.path.relpath(p, root))
        return real(p)

    monkeypatch.setattr(os, "listdir", spy)
    assert [e.path for e in ctx.walk()] == [".dockerignore", "small.txt"]
    assert visited == ["."]


def test_dockerfile_and_dockerignore_can_be_excluded_but_still_read(make_context):
    root = make_context({"Dockerfile": "FROM a\nCOPY . /app\n", ".dockerignore": "Dockerfile\n.dockerignore\n",
                         "app.py": "x"})
    ctx = BuildContext.open(root, root / "Dockerfile")
    assert [e.path for e in ctx.walk()] == ["app.py"]
    # The build itself still reads the Dockerfile.
    assert dockerfile.parse_file(root / "Dockerfile").stages[0].base == "a"
    with pytest.raises(RlError, match=r"^Dockerfile:2: COPY source Dockerfile is excluded by \.dockerignore"):
        ctx.resolve_sources(copy_of("COPY Dockerfile /x"))


def test_missing_context_dir(tmp_path):
    with pytest.raises(RlError, match="no such directory"):
        BuildContext(tmp_path / "nope")


# --------------------------------------------------------------------------- sources

def test_plain_sources(make_context):
    root = make_context({"a.txt": "a", "dir/b.txt": "b", "dir/sub/c.txt": "c"})
    ctx = BuildContext(root)
    assert paths(ctx, "COPY a.txt dir /dst/") == [["a.txt"], ["dir"]]
    assert paths(ctx, "COPY /a.txt ./dir/../a.txt /dst/") == [["a.txt"], ["a.txt"]]
    assert paths(ctx, "COPY . /dst/") == [[""]]


@pytest.mark.parametrize(("source", "expected"), [
    ("*.txt", ["a.txt", "b.txt"]),
    ("?.txt", ["a.txt", "b.txt"]),
    ("[a].txt", ["a.txt"]),
    ("[^a].txt", ["b.txt"]),
    ("*", [".hidden", "a.txt", "b.txt", "dir", "weird*name"]),  # * matches dotfiles
    ("dir/*.go", ["dir/main.go", "dir/util.go"]),
    ("*/*.go", ["dir/main.go", "dir/util.go"]),
    ("d*/m*", ["dir/main.go"]),
    ("weird\\*name", ["weird*name"]),
])
def test_wildcards(make_context, source, expected):
    root = make_context({"a.txt": "a", "b.txt": "b", ".hidden": "h", "weird*name": "w",
                         "dir/main.go": "m", "dir/util.go": "u", "dir/x.txt": "x"})
    (src,) = BuildContext(root).resolve_sources(copy_of(f"COPY {source} /dst/"))
    assert src.paths == expected
    assert src.wildcard  # (after expansion weird\\*name is weird*name: still a pattern, as in Docker)


def test_wildcard_class_escapes(make_context):
    # Go's filepath.Match: an escaped "-" or "]" in a class is an ordinary character.
    # (The Dockerfile's `\\` reaches the pattern as one backslash.)
    root = make_context({"a.txt": "a", "b.txt": "b", "c.txt": "c", "-.txt": "d", "].txt": "e"})
    ctx = BuildContext(root)
    assert paths(ctx, "COPY [a\\\\-c].txt /dst/") == [["-.txt", "a.txt", "c.txt"]]
    assert paths(ctx, "COPY [a-c].txt /dst/") == [["a.txt", "b.txt", "c.txt"]]
    assert paths(ctx, "COPY [\\\\]a].txt /dst/") == [["].txt", "a.txt"]]


@pytest.mark.parametrize(("written", "pattern"), [("[a", "[a"), ("[a\\\\", "[a\\"), ("a[^", "a[^")])
def test_unclosed_wildcard_class_is_a_bad_pattern(make_context, written, pattern):
    root = make_context({"a": "a"})
    with pytest.raises(RlError) as exc:
        BuildContext(root).resolve_sources(copy_of(f"COPY {written} /dst/"))
    assert exc.value.message == f"Dockerfile:2: COPY source {pattern}: bad pattern"


@pytest.mark.parametrize("source", ["[]a].txt", "[-a].txt", "[a-].txt", "[].txt", "[^]].txt"])
def test_class_go_refuses_is_a_bad_pattern(make_context, source):
    # Go's filepath.Match wants "-" and "]" escaped inside a class, and no empty class
    # (.dockerignore, read as RE2 does, takes these).
    root = make_context({"a.txt": "a", "-.txt": "d", "].txt": "e"})
    with pytest.raises(RlError) as exc:
        BuildContext(root).resolve_sources(copy_of(f"COPY {source} /dst/"))
    assert exc.value.message == f"Dockerfile:2: COPY source {source}: bad pattern"


def test_reversed_class_range_matches_nothing(make_context):
    root = make_context({"a.txt": "a", "b.txt": "b", "ab.txt": "ab"})
    ctx = BuildContext(root)
    with pytest.raises(RlError, match=r"^Dockerfile:2: COPY source \[z-a\]\.txt: no file in the build context"):
        ctx.resolve_sources(copy_of("COPY [z-a].txt /dst/"))
    assert paths(ctx, "COPY [^z-a].txt /dst/") == [["a.txt", "b.txt"]]
    assert paths(ctx, "COPY [z-ab].txt /dst/") == [["b.txt"]]


def test_wildcards_skip_ignored_files(make_context):
    root = make_context({".dockerignore": "secret.txt\n", "a.txt": "a", "secret.txt": "s"})
    assert paths(BuildContext.open(root), "COPY *.txt /dst/") == [["a.txt"]]


def test_substituted_sources(make_context):
    root = make_context({"app/v1/x": "x"})
    copy = copy_of("COPY ${APP:-app}/$V/x /dst/", {"V": "v1"})
    assert [s.paths for s in BuildContext(root).resolve_sources(copy)] == [["app/v1/x"]]


def test_add_urls_are_kept(make_context):
    root = make_context({"a": "a"})
    srcs = BuildContext(root).resolve_sources(copy_of("ADD https://example.com/f.tgz a /dst/"))
    assert srcs[0].url == "https://example.com/f.tgz" and srcs[0].paths == []
    assert srcs[1].paths == ["a"]


def test_symlink_inside_context_is_followed(make_context):
    root = make_context({"real/f.txt": "f", "link": ("link", "real"), "flink": ("link", "real/f.txt")})
    ctx = BuildContext(root)
    assert paths(ctx, "COPY link/f.txt flink /dst/") == [["real/f.txt"], ["real/f.txt"]]


@pytest.mark.parametrize("source", ["../outside.txt", "../ctx/../outside.txt", "a/../../outside.txt",
                                    "..", "abs", "rel", "dir/up/outside.txt"])
def test_sources_outside_the_context_are_refused(make_context, tmp_path, source):
    (tmp_path / "outside.txt").write_text("secret")
    root = make_context({"a/x": "x", "abs": ("link", str(tmp_path / "outside.txt")),
                         "rel": ("link", "../outside.txt"), "dir/up": ("link", "../..")})
    ctx = BuildContext(root)
    with pytest.raises(RlError) as exc:
        ctx.resolve_sources(copy_of(f"COPY {source} /dst/"))
    assert exc.value.message.startswith(f"Dockerfile:2: COPY source {source} is outside the build context")


def test_wildcard_through_escaping_symlink_is_refused(make_context, tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f.txt").write_text("secret")
    root = make_context({"out": ("link", "../outside")})
    with pytest.raises(RlError, match=r"^Dockerfile:2: COPY source out/\*\.txt is outside the build context"):
        BuildContext(root).resolve_sources(copy_of("COPY out/*.txt /dst/"))


def test_missing_and_unmatched_sources(make_context):
    root = make_context({"a": "a"})
    ctx = BuildContext(root, dockerfile_name="build.Dockerfile")
    with pytest.raises(RlError, match=r"^build\.Dockerfile:2: COPY source nope\.txt not found in the build context"):
        ctx.resolve_sources(copy_of("COPY nope.txt /dst/"))
    with pytest.raises(RlError, match=r"^build\.Dockerfile:2: ADD source \*\.zip: no file in the build context matches"):
        ctx.resolve_sources(copy_of("ADD *.zip /dst/"))


# --------------------------------------------------------------------------- hash

def _hash(root, text="COPY . /dst/"):
    ctx = BuildContext.open(root)
    return ctx.content_hash(ctx.resolve_sources(copy_of(text)))


def test_hash_ignores_mtime_but_not_content(make_context):
    root = make_context({"a.txt": "hello", "dir/b.txt": "b"})
    h1 = _hash(root)
    assert h1.startswith("sha256:") and len(h1) == 71
    os.utime(root / "a.txt", (1, 1))
    os.utime(root / "dir", (2, 2))
    assert _hash(root) == h1
    (root / "a.txt").write_text("hellO")
    h2 = _hash(root)
    assert h2 != h1
    (root / "a.txt").write_text("hello")
    assert _hash(root) == h1


def test_hash_sees_mode_names_and_symlinks(make_context):
    root = make_context({"a.txt": "x", "l": ("link", "a.txt")})
    h1 = _hash(root)
    os.chmod(root / "a.txt", 0o755)
    h2 = _hash(root)
    assert h2 != h1
    (root / "l").unlink()
    (root / "l").symlink_to("other")
    h3 = _hash(root)
    assert h3 not in (h1, h2)
    (root / "a.txt").rename(root / "b.txt")
    assert _hash(root) != h3


def test_hash_only_covers_selected_and_kept_files(make_context):
    root = make_context({".dockerignore": "**/*.log\n", "src/a.py": "a", "src/x.log": "1", "other.txt": "o"})
    h1 = _hash(root, "COPY src /dst/")
    (root / "src" / "x.log").write_text("2")   # ignored
    (root / "other.txt").write_text("p")       # not selected
    assert _hash(root, "COPY src /dst/") == h1
    (root / "src" / "new.py").write_text("n")  # a new file in the selected dir
    assert _hash(root, "COPY src /dst/") != h1


def test_hash_is_stable_across_contexts(make_context, tmp_path):
    files = {"a.txt": "a", "d/e/f": "f", "link": ("link", "a.txt")}
    r1 = make_context(files, tmp_path / "one")
    r2 = make_context(files, tmp_path / "two")
    assert _hash(r1) == _hash(r2)


def test_unreadable_directory_is_a_clear_error(make_context):
    root = make_context({"locked/f": "x", "ok": "y"})
    os.chmod(root / "locked", 0)
    try:
        if os.access(root / "locked", os.R_OK):
            pytest.skip("running with CAP_DAC_OVERRIDE: permissions are not enforced")
        with pytest.raises(RlError, match=r"^build context: cannot read locked: Permission denied"):
            list(BuildContext(root).walk())
    finally:
        os.chmod(root / "locked", 0o755)

""".dockerignore rules: pattern syntax (moby/patternmatcher's), the file format, and the
documented examples of exceptions and ordering."""

from __future__ import annotations

import pytest

from rootless.build import dockerignore
from rootless.build.dockerignore import IgnoreRules, go_clean, read_patterns
from rootless.errors import RlError

# (pattern, path, matches) for one pattern on its own path (no parent matching)
PATTERN_CASES = [
    ("**", "file", True),
    ("**", "file/", True),
    ("**/", "file", True),
    ("**", "dir/file", True),
    ("**/", "dir/file", True),
    ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("**/dir", "dir", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("a\\\\", "a\\", True),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("*", "fileutils.go", True),
    ("*.go", "fileutils.go", True),
    ("*.go", "dir/fileutils.go", False),
    ("?.txt", "a.txt", True),
    ("?.txt", "ab.txt", False),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), PATTERN_CASES)
def test_pattern_match(pattern, path, expected):
    (pat,) = IgnoreRules([pattern]).patterns
    assert pat.match(path) is expected


# (patterns, path, excluded) with parent-directory matching and exceptions
RULE_CASES = [
    (["node_modules"], "node_modules", True),
    (["node_modules"], "node_modules/a/b.js", True),
    (["node_modules"], "src/node_modules", False),
    (["**/node_modules"], "src/node_modules/x", True),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["*.md", "!README.md"], "docs/x.md", False),          # * stays at the root
    (["docs", "!docs/keep.txt"], "docs/keep.txt", False),
    (["docs", "!docs/keep.txt"], "docs/other.txt", True),
    (["docs", "!docs/keep.txt"], "docs", True),
    (["docs", "!docs/keep.txt", "docs/keep.txt"], "docs/keep.txt", True),  # last wins
    (["/foo"], "foo", True),
    (["./bar/"], "bar/x", True),
    (["a//b/../c"], "a/c", True),
    (["*", "!src", "src/*.pyc"], "src/x.py", False),
    (["*", "!src", "src/*.pyc"], "src/x.pyc", True),
    (["*", "!src", "src/*.pyc"], "setup.py", True),
    (["!x"], "x", False),
    ([], "anything", False),
]


@pytest.mark.parametrize(("patterns", "path", "expected"), RULE_CASES)
def test_rules(patterns, path, expected):
    assert IgnoreRules(patterns).excluded(path) is expected


def test_documented_examples():
    # The .dockerignore example of the Dockerfile reference.
    rules = IgnoreRules.from_text("# comment\n*/temp*\n*/*/temp*\ntemp?\n")
    assert rules.excluded("somedir/temporary.txt")
    assert rules.excluded("somedir/temp")
    assert rules.excluded("somedir/subdir/temporary.txt")
    assert rules.excluded("tempa") and rules.excluded("tempb")
    assert not rules.excluded("temporary.txt")
    assert not rules.excluded("a/b/c/temp")
    # "No markdown files are included except README files other than README-secret.md"
    rules = IgnoreRules.from_text("*.md\n!README*.md\nREADME-secret.md\n")
    assert not rules.excluded("README.md") and not rules.excluded("README-dev.md")
    assert rules.excluded("README-secret.md") and rules.excluded("other.md")
    # "All of the README files are included. The middle line has no effect."
    rules = IgnoreRules.from_text("*.md\nREADME-secret.md\n!README*.md\n")
    assert not rules.excluded("README-secret.md")


def test_file_format():
    text = "\ufeff# comment\n\n  spaced  \n/abs\n./rel/\n!  /neg\n #not-a-comment\nwin\r\n"
    assert read_patterns(text) == [(3, "spaced"), (4, "abs"), (5, "rel"), (6, "!neg"),
                                   (7, "#not-a-comment"), (8, "win")]


def test_bad_patterns_name_the_line():
    with pytest.raises(RlError, match=r'^\.dockerignore:2: illegal exclusion pattern: "!"'):
        IgnoreRules.from_text("a\n!\n")
    with pytest.raises(RlError, match=r"^\.dockerignore:1: bad pattern"):
        IgnoreRules.from_text("[unclosed\n")


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("[]a]x", "]x", True),     # RE2's reading: "]" first is a member (COPY refuses it)
    ("[]a]x", "ax", True),
    ("[-a]x", "-x", True),
    ("[a-]x", "-x", True),
    ("[a-]x", "bx", False),
    ("[a\\-c]x", "-x", True),   # an escaped "-" is no range
    ("[a\\-c]x", "bx", False),
])
def test_class_reads_as_re2(pattern, path, expected):
    (pat,) = IgnoreRules([pattern]).patterns
    assert pat.match(path) is expected


def test_reversed_class_range_is_a_bad_pattern():
    with pytest.raises(RlError, match=r"^\.dockerignore:1: bad pattern '\[z-a\]'"):
        IgnoreRules.from_text("[z-a]\n")


def test_may_descend_follows_buildkits_walker():
    # Plain exceptions: descend only on the way to them.
    rules = IgnoreRules(["node_modules", "!node_modules/keep/x.txt"])
    assert rules.may_descend("node_modules")
    assert rules.may_descend("node_modules/keep")
    assert not rules.may_descend("node_modules/other")
    assert IgnoreRules(["a", "!a/b/**"]).may_descend("a/b")
    # No exceptions: never.
    assert not IgnoreRules(["node_modules"]).may_descend("node_modules")
    # A wildcard in an exception: everywhere.
    assert IgnoreRules(["a", "!**/x"]).may_descend("a/b/c")
    assert IgnoreRules(["a", "!a/*.txt"]).may_descend("a/other")


@pytest.mark.parametrize(("path", "clean"), [
    ("", "."), ("a/", "a"), ("./a", "a"), ("a//b", "a/b"), ("a/../b", "b"), ("../a", "../a"),
    ("/../a", "/a"), ("//a", "/a"), ("a/b/../../..", ".."), ("/", "/"),
])
def test_go_clean(path, clean):
    assert go_clean(path) == clean


def test_load_prefers_dockerfile_specific_ignore(tmp_path):
    (tmp_path / ".dockerignore").write_text("from-root\n")
    df = tmp_path / "sub" / "app.Dockerfile"
    df.parent.mkdir()
    df.write_text("FROM a\n")
    assert dockerignore.load(tmp_path, df).excluded("from-root")
    (tmp_path / "sub" / "app.Dockerfile.dockerignore").write_text("from-specific\n")
    rules = dockerignore.load(tmp_path, df)
    assert rules.excluded("from-specific") and not rules.excluded("from-root")
    assert rules.source == "app.Dockerfile.dockerignore"
    assert not dockerignore.load(tmp_path / "sub").patterns

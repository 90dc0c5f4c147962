""".dockerignore: which paths of the build context a build may see, by Docker's rules.

The rules are moby/patternmatcher's (with its ignorefile reader), reimplemented here by
hand: no Python library has them (gitignore matchers such as pathspec let a slash-less
pattern match at any depth and treat `!` differently; fnmatch lets `*` cross `/`).

- one pattern per line; a line starting with `#` is a comment; blank lines are skipped;
- surrounding whitespace is trimmed; the pattern is cleaned like Go's filepath.Clean (so
  `./a`, `a/`, `a//b/../c` become `a`, `a`, `a/c`) and one leading `/` is dropped: every
  pattern is relative to the context root;
- `!pattern` is an exception: it re-includes what earlier patterns excluded;
- `*` and `?` never cross a `/`; `**` matches any number of directories (zero included);
  `[...]` is a character class; a backslash escapes the next character;
- a pattern that matches a directory excludes everything below it;
- the last pattern that matches a path (or one of its parent directories) decides.

An excluded directory is still walked into when an exception could match something
below it (`node_modules` then `!node_modules/keep.txt`); `may_descend` answers that with
BuildKit's walker rule, and the walk then also lists the excluded parent directories of
what it re-includes (context.BuildContext.walk).

The Dockerfile and the .dockerignore file follow the same rules as every other file:
BuildKit reads both itself, whatever the patterns say, and excluding them only hides
them from COPY and ADD (this is what Docker documents).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rootless.errors import RlError

IGNORE_FILE = ".dockerignore"


def go_clean(path: str) -> str:
    """Go's path.Clean: the shortest equivalent path ("" -> ".", "a/../b/" -> "b")."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def read_patterns(text: str) -> list[tuple[int, str]]:
    """The patterns of a .dockerignore file with their line numbers, normalized the way
    Docker's reader does it (comments, blank lines, cleaning, leading "/" removed)."""
    out: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if number == 1:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append((number, ("!" if invert else "") + pattern))
    return out


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern. `text` is the cleaned pattern without its `!`."""

    text: str
    exclusion: bool
    line: int
    regex: re.Pattern[str] | None
    suffix: str | None  # "**..." patterns without other wildcards match by suffix

    def match(self, path: str) -> bool:
        if self.suffix is not None:
            if path.endswith(self.suffix):
                return True
            # "**/foo" also matches "foo" itself
            return self.suffix.startswith("/") and path == self.suffix[1:]
        assert self.regex is not None
        return self.regex.match(path) is not None

    @property
    def parts(self) -> list[str]:
        return self.text.split("/")


_REGEX_SPECIAL = set(".+()|{}$")


def char_class(text: str, i: int, *, go_match: bool = False) -> tuple[str, int]:
    """The regex for the character class whose "[" is text[i-1], and the index after its
    "]"; ValueError for a malformed class. Shared with COPY's wildcards (context.py).

    Both readings: a "^" first negates, "lo-hi" is a range, a backslash makes the next
    character an ordinary one (an escaped "-" is no range), a class must close.
    They differ where Go's syntax is strict:
    - go_match=False, RE2's reading (.dockerignore patterns go through Go's regexp):
      a "]" first, or a "-" first or last, is an ordinary character; a reversed
      range ("z-a") is an error.
    - go_match=True, Go's filepath.Match (COPY sources): "-" and "]" must be escaped
      to be members, so "[]a]", "[-a]", "[a-]" and "[]" are errors; a reversed range
      is no error but matches nothing.
    The class is written out, not passed through, so that Python's regex reads it as
    Go does (a "[" inside is an ordinary character, no set operations)."""
    body: list[str] = []
    n = len(text)
    negate = i < n and text[i] == "^"
    if negate:
        i += 1
    first = True
    while True:
        if i >= n:
            raise ValueError("missing closing ]")
        c = text[i]
        if c == "]" and not first:
            break
        if go_match:
            lo, i = _go_class_char(text, i)
            hi = lo
            if i < n and text[i] == "-":
                hi, i = _go_class_char(text, i + 1)
            if lo <= hi:  # a reversed range adds nothing
                body.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
        elif c == "\\" and i + 1 < n:
            body.append(re.escape(text[i + 1]))
            i += 2
        elif c == "-" and not first and i + 1 < n and text[i + 1] != "]":
            body.append("-")
            i += 1
        else:
            body.append(re.escape(c))
            i += 1
        first = False
    if not body:  # only reversed ranges: nothing, or with "^" anything, matches
        return ("(?s:.)" if negate else "(?!)"), i + 1
    return "[" + ("^" if negate else "") + "".join(body) + "]", i + 1


def _go_class_char(text: str, i: int) -> tuple[str, int]:
    """The member character at text[i] of a filepath.Match class (a backslash escapes
    the next one) and the index after it; an unescaped "-" or "]" there is an error."""
    if i >= len(text) or text[i] in "-]":
        raise ValueError("syntax error in pattern")
    if text[i] == "\\":
        i += 1
        if i >= len(text):
            raise ValueError("syntax error in pattern")
    return text[i], i + 1


def _compile(text: str) -> tuple[re.Pattern[str] | None, str | None]:
    """Translate a pattern into a regex, as patternmatcher does."""
    out = ["^"]
    kind = "exact"
    i = 0
    n = len(text)
    first = True
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1  # "**/" is "**"
                if i >= n:
                    out.append(".*")
                    kind = "prefix" if kind == "exact" else "regex"
                else:
                    out.append("(.*/)?")
                    kind = "regex"
                if first:
                    kind = "suffix"
            else:
                out.append("[^/]*")
                kind = "regex"
        elif ch == "?":
            out.append("[^/]")
            kind = "regex"
        elif ch in _REGEX_SPECIAL:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append(re.escape(text[i]))
                i += 1
                kind = "regex"
            else:
                out.append("\\\\")
        elif ch == "[":
            cls, i = char_class(text, i)
            out.append(cls)
            kind = "regex"
        elif ch == "]":
            out.append("\\]")
            kind = "regex"
        else:
            out.append(ch)
        first = False
    if kind == "suffix":
        return None, text[2:]
    out.append("$")
    try:
        return re.compile("".join(out)), None
    except re.error as e:
        raise ValueError(str(e)) from None


class IgnoreRules:
    """Compiled .dockerignore patterns. `excluded(path)` answers for a context-relative
    path ("a/b.txt", "/" separated); `may_descend(dir)` whether a walk must look inside an
    excluded directory because an exception could re-include something there."""

    def __init__(self, patterns: list[tuple[int, str]] | list[str], source: str = IGNORE_FILE):
        self.source = source
        self.patterns: list[Pattern] = []
        for item in patterns:
            line, text = item if isinstance(item, tuple) else (0, item)
            text = text.strip()
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise RlError(f'{source}:{line}: illegal exclusion pattern: "!"',
                                  "write !PATTERN to re-include paths")
                text = text[1:]
            if len(text) > 1 and text.startswith("/"):
                text = text[1:]  # as the file reader does: patterns are context-relative
            try:
                regex, suffix = _compile(text)
            except ValueError as e:
                raise RlError(f"{source}:{line}: bad pattern {text!r}: {e}") from None
            self.patterns.append(Pattern(text, exclusion, line, regex, suffix))
        self.has_exclusions = any(p.exclusion for p in self.patterns)
        self._simple_exceptions = not any(
            p.exclusion and re.search(r"[*?\[\\]", _without_trailing_glob(p.text))
            for p in self.patterns)

    @classmethod
    def from_text(cls, text: str, source: str = IGNORE_FILE) -> IgnoreRules:
        return cls(read_patterns(text), source)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, path: str) -> bool:
        """True when the context-relative `path` is excluded by the rules."""
        if not self.patterns:
            return False
        path = go_clean(path)
        parent = path.rsplit("/", 1)[0] if "/" in path else "."
        parents = parent.split("/") if parent != "." else []
        matched = False
        for pat in self.patterns:
            # An exclusion only matters once something matched, an inclusion only
            # before: the last matching pattern wins.
            if pat.exclusion != matched:
                continue
            hit = pat.match(path)
            if not hit:
                for i in range(len(parents)):
                    if pat.match("/".join(parents[:i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pat.exclusion
        return matched

    def may_descend(self, directory: str) -> bool:
        """Whether a walk must look inside the excluded `directory` because an exception
        could re-include something below it. This is BuildKit's walker rule: when every
        exception is a plain path (a trailing `/*` or `/**` allowed), descend only into
        directories on the way to one; with any wildcard exception, descend everywhere."""
        if not self.has_exclusions:
            return False
        if not self._simple_exceptions:
            return True
        prefix = go_clean(directory) + "/"
        return any((_without_trailing_glob(p.text) + "/").startswith(prefix)
                   for p in self.patterns if p.exclusion)


def _without_trailing_glob(text: str) -> str:
    return text.removesuffix("/**").removesuffix("/*")


def load(context_dir: str | Path, dockerfile: str | Path | None = None) -> IgnoreRules:
    """The ignore rules for a build: `<Dockerfile>.dockerignore` beside the Dockerfile
    when it exists (BuildKit's per-Dockerfile ignore file), else `.dockerignore` at the
    context root, else no rules."""
    candidates = []
    if dockerfile is not None:
        df = Path(dockerfile)
        candidates.append(df.with_name(df.name + IGNORE_FILE))
    candidates.append(Path(context_dir) / IGNORE_FILE)
    for path in candidates:
        try:
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except IsADirectoryError:
            raise RlError(f"{path}: is a directory, not an ignore file") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RlError(f"{path.name}: not valid UTF-8 text") from None
        return IgnoreRules.from_text(text, path.name)
    return IgnoreRules([])

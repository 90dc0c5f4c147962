"""The build context: the directory a build reads COPY and ADD sources from.

- `BuildContext.walk()` lists what the build may see: every path the .dockerignore rules
  keep, descending into excluded directories only where an exception reaches inside.
- `BuildContext.resolve_sources(inst)` turns a COPY/ADD's source list into the context
  paths it names: wildcards with Go's filepath.Match semantics (`*`, `?`, `[a-z]`, `[^a]`,
  backslash escapes; `*` does not cross `/` and does match dotfiles; a malformed pattern,
  such as a class with an unescaped `]` first, is refused as Go refuses it), a leading
  `/` meaning the context root; a source that leaves the context (`../x`, or through a
  symlink pointing outside it) is refused, naming the Dockerfile line.
- `BuildContext.content_hash(sources)` digests what those sources select, for the build
  cache: each entry's path, type, permission bits, file content and symlink target, never
  mtime or owner, so touching a file keeps the cache and editing it does not.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rootless.build import dockerignore
from rootless.build import instructions as ins
from rootless.errors import RlError

# file:// only for a git repository (ADD clones it; a plain file:// URL is no source)
_URL = re.compile(r"^(https?://|git@|git://|file://[^#]*\.git(#|$))", re.IGNORECASE)
_WILDCARD = re.compile(r"[*?\[]")
_MAX_SYMLINKS = 255


@dataclass(frozen=True)
class Entry:
    """One path of the context: `path` relative to the root ("a/b.txt"), its lstat."""

    path: str
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.st.st_mode)


@dataclass
class Source:
    """One COPY/ADD source as written (`spec`, after variable expansion) and what it
    selects: `url` for a remote ADD source, else `paths`, context-relative paths (with
    symlinks in the source path itself resolved, as Docker follows them), in order.
    `wildcard` tells the builder the spec was a pattern (Docker then copies each match
    into the destination directory)."""

    spec: str
    paths: list[str] = field(default_factory=list)
    url: str | None = None
    wildcard: bool = False


_COMPONENT_CACHE: dict[str, re.Pattern[str]] = {}


def _component_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match for one path component, as a regex. Hand-written: fnmatch
    negates classes with `!` (Go uses `^`) and has no backslash escapes."""
    rx = _COMPONENT_CACHE.get(pattern)
    if rx is not None:
        return rx
    out = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i >= n:
                raise ValueError("syntax error in pattern")
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            cls, i = dockerignore.char_class(pattern, i, go_match=True)
            out.append(cls)
        else:
            out.append(re.escape(ch))
    rx = re.compile("".join(out), re.DOTALL)
    _COMPONENT_CACHE[pattern] = rx
    return rx


class BuildContext:
    """A context directory and its ignore rules. `dockerfile_name` is used in errors."""

    def __init__(self, root: str | Path, ignore: dockerignore.IgnoreRules | None = None,
                 dockerfile_name: str = "Dockerfile"):
        self.root = Path(root)
        if not self.root.is_dir():
            raise RlError(f"build context {root}: no such directory",
                          "give the directory holding the files the Dockerfile copies")
        self.root = self.root.resolve()
        self.ignore = ignore if ignore is not None else dockerignore.IgnoreRules([])
        self.dockerfile_name = dockerfile_name
        self._digests: dict[tuple, str] = {}

    @classmethod
    def open(cls, root: str | Path, dockerfile: str | Path | None = None) -> BuildContext:
        """The context at `root` with its .dockerignore (or `<Dockerfile>.dockerignore`)."""
        name = Path(dockerfile).name if dockerfile is not None else "Dockerfile"
        return cls(root, dockerignore.load(root, dockerfile), name)

    # ---------------------------------------------------------------- walking

    def _abs(self, rel: str) -> Path:
        return self.root if rel in ("", ".") else self.root / rel

    def walk(self, top: str = "") -> Iterator[Entry]:
        """Every kept entry under the context-relative directory `top` (not `top` itself),
        depth first in name order. An excluded directory is yielded only when something
        below it is kept (right before that entry), as BuildKit includes the parents of
        re-included files."""
        top = "" if top in ("", ".") else dockerignore.go_clean(top)
        yield from self._walk(top, [])

    def _walk(self, rel: str, pending: list[Entry]) -> Iterator[Entry]:
        # `pending` holds the excluded ancestors not yielded yet.
        try:
            names = sorted(os.listdir(self._abs(rel)))
        except OSError as e:
            raise RlError(f"build context: cannot read {rel or '.'}: {e.strerror}") from None
        for name in names:
            child = f"{rel}/{name}" if rel else name
            try:
                entry = Entry(child, os.lstat(self._abs(child)))
            except FileNotFoundError:
                continue  # removed while we walk
            except OSError as e:
                raise RlError(f"build context: cannot read {child}: {e.strerror}") from None
            excluded = self.ignore.excluded(child)
            if not excluded:
                yield from pending
                pending.clear()
                yield entry
            if not entry.is_dir:
                continue
            if not excluded:
                yield from self._walk(child, pending)
            elif self.ignore.may_descend(child):
                pending.append(entry)
                yield from self._walk(child, pending)
                if pending and pending[-1] is entry:
                    pending.pop()

    # ---------------------------------------------------------------- sources

    def _where(self, inst: ins.Instruction | None) -> str:
        if inst is None:
            return self.dockerfile_name
        return f"{self.dockerfile_name}:{inst.line}"

    def _refuse_escape(self, spec: str, inst: ins.Instruction | None, how: str = "") -> RlError:
        kw = inst.keyword if inst is not None else "COPY"
        return RlError(f"{self._where(inst)}: {kw} source {spec} is outside the build context{how}",
                       f"{kw} can only read files inside the context directory {self.root}")

    def _scoped(self, rel_parts: list[str], spec: str, inst, follow_last: bool = True) -> str | None:
        """Resolve a context-relative path, following symlinks inside the context.
        Returns the resolved relative path, None when it does not exist; refuses a
        symlink that leads outside the context."""
        done: list[str] = []
        todo = list(rel_parts)
        hops = 0
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not done:
                    raise self._refuse_escape(spec, inst, " (through a symlink)")
                done.pop()
                continue
            candidate = "/".join([*done, part])
            try:
                st = os.lstat(self._abs(candidate))
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError as e:
                raise RlError(f"{self._where(inst)}: cannot read {candidate} in the build context: "
                              f"{e.strerror}") from None
            if stat.S_ISLNK(st.st_mode) and (todo or follow_last):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise RlError(f"{self._where(inst)}: too many levels of symbolic links in {spec}")
                target = os.readlink(self._abs(candidate))
                if target.startswith("/"):
                    # An absolute link names a path on the host, not in the context.
                    raise self._refuse_escape(spec, inst, f" (symlink {candidate} -> {target})")
                todo = target.split("/") + todo
                continue
            done.append(part)
        return "/".join(done)

    def resolve_sources(self, inst: ins.Copy | ins.Add) -> list[Source]:
        """The context paths each source of an (expanded) COPY/ADD names, in order.

        Raises RlError naming the Dockerfile line when a source leaves the context, does
        not exist, matches nothing, or is excluded by .dockerignore."""
        out: list[Source] = []
        for spec in inst.sources:
            if isinstance(inst, ins.Add) and _URL.match(spec):
                out.append(Source(spec=spec, url=spec))
                continue
            out.append(self._resolve_one(spec, inst))
        return out

    def _resolve_one(self, spec: str, inst) -> Source:
        # Docker cleans the source relative to the context root ("/a" is "a"); a
        # leading ".." would leave the context: refuse it instead of clamping it.
        cleaned = dockerignore.go_clean(spec)
        if cleaned == ".." or cleaned.startswith("../"):
            raise self._refuse_escape(spec, inst)
        cleaned = cleaned.lstrip("/")
        parts = [] if cleaned in ("", ".") else cleaned.split("/")
        kw = inst.keyword if inst is not None else "COPY"
        if not any(_WILDCARD.search(p) for p in parts):
            resolved = self._scoped(parts, spec, inst)
            if resolved is None:
                raise RlError(f"{self._where(inst)}: {kw} source {spec} not found in the build context",
                              f"the context is {self.root}")
            if resolved and self.ignore.excluded(resolved) and not (
                    os.path.isdir(self._abs(resolved)) and self.ignore.may_descend(resolved)):
                raise RlError(f"{self._where(inst)}: {kw} source {spec} is excluded by "
                              f"{self.ignore.source}", f"remove its pattern from {self.ignore.source}")
            return Source(spec=spec, paths=[resolved])
        matches: list[str] = []
        try:
            self._glob(parts, "", spec, inst, matches)
        except ValueError:
            raise RlError(f"{self._where(inst)}: {kw} source {spec}: bad pattern") from None
        if not matches:
            raise RlError(f"{self._where(inst)}: {kw} source {spec}: no file in the build context "
                          "matches", f"the context is {self.root}")
        return Source(spec=spec, paths=matches, wildcard=True)

    def _glob(self, parts: list[str], base: str, spec: str, inst, out: list[str]) -> None:
        if not parts:
            if base and not self.ignore.excluded(base):
                out.append(base)
            return
        head, rest = parts[0], parts[1:]
        if not _WILDCARD.search(head):
            unescaped = re.sub(r"\\(.)", r"\1", head)
            nxt = self._scoped([*base.split("/"), unescaped] if base else [unescaped], spec, inst,
                               follow_last=bool(rest))
            if nxt is not None:
                self._glob(rest, nxt, spec, inst, out)
            return
        rx = _component_regex(head)
        try:
            names = sorted(os.listdir(self._abs(base)))
        except (NotADirectoryError, FileNotFoundError):
            return
        for name in names:
            if not rx.fullmatch(name):
                continue
            child = f"{base}/{name}" if base else name
            if rest:
                resolved = self._scoped(child.split("/"), spec, inst)
                if resolved is not None and os.path.isdir(self._abs(resolved)):
                    self._glob(rest, resolved, spec, inst, out)
            else:
                self._glob([], child, spec, inst, out)

    # ---------------------------------------------------------------- hashing

    def selected(self, sources: Sequence[Source]) -> list[Entry]:
        """Every entry the sources select: each path itself and, for a directory, the
        kept entries below it; sorted by path, without duplicates."""
        seen: dict[str, Entry] = {}
        for src in sources:
            for path in src.paths:
                st = os.lstat(self._abs(path))
                if path:
                    seen.setdefault(path, Entry(path, st))
                if stat.S_ISDIR(st.st_mode):
                    for e in self.walk(path):
                        seen.setdefault(e.path, e)
        return [seen[k] for k in sorted(seen)]

    def file_digest(self, rel: str, st: os.stat_result) -> str:
        # Remember digests by (inode, size, mtime, ctime) for this context: a cheap way
        # to not re-read unchanged files when several steps hash the same tree.
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._digests.get(key)
        if cached is not None:
            return cached
        h = hashlib.sha256()
        try:
            with open(self._abs(rel), "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        except OSError as e:
            raise RlError(f"build context: cannot read {rel}: {e.strerror}") from None
        digest = h.hexdigest()
        self._digests[key] = digest
        return digest

    def content_hash(self, sources: Sequence[Source]) -> str:
        """"sha256:..." over what `sources` select: path, type, permission bits, file
        content, symlink target (and URL sources as written). Not mtime, not owner."""
        h = hashlib.sha256()
        for src in sources:
            if src.url is not None:
                h.update(f"url\0{src.url}\n".encode())
        for e in self.selected(sources):
            mode = e.st.st_mode
            if stat.S_ISREG(mode):
                kind, extra = "f", self.file_digest(e.path, e.st)
            elif stat.S_ISDIR(mode):
                kind, extra = "d", ""
            elif stat.S_ISLNK(mode):
                kind, extra = "l", os.readlink(self._abs(e.path))
            else:
                kind, extra = "o", f"{stat.S_IFMT(mode):o}"
            h.update(f"{kind}\0{e.path}\0{stat.S_IMODE(mode):o}\0{extra}\n".encode("utf-8", "surrogateescape"))
        return "sha256:" + h.hexdigest()

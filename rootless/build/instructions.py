"""The typed Dockerfile instructions, and the variable substitution each one applies.

Every instruction records where it came from (`line`, `end_line`, the joined `source` text)
and the file's escape character. `expand(env)` returns a copy with `$VAR` references
replaced exactly where Docker replaces them: ADD, COPY, ENV, EXPOSE, LABEL, STOPSIGNAL,
USER, VOLUME, WORKDIR, ARG defaults and RUN's --mount values. RUN's command, CMD,
ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD and MAINTAINER are returned unchanged: a shell (or
nothing) sees their text as written.
FROM is expanded with the global ARGs only, by `dockerfile.resolve`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from rootless.build.shellwords import ExpansionError, Lexer
from rootless.errors import RlError

_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)


def chomp_heredoc(text: str) -> str:
    """`<<-EOF`: leading tabs are removed from every line of the content."""
    return _LEADING_TABS.sub("", text)


@dataclass(frozen=True, kw_only=True)
class Heredoc:
    """A here-document attached to RUN/COPY/ADD. `content` is as read (line endings kept,
    tabs not yet removed when `chomp`); `expand` is False when the delimiter was quoted."""

    name: str
    content: str
    expand: bool = True
    chomp: bool = False
    fd: int | None = None

    @property
    def text(self) -> str:
        """The content with `<<-` tab stripping applied."""
        return chomp_heredoc(self.content) if self.chomp else self.content


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Common part of every instruction."""

    keyword: ClassVar[str] = ""
    line: int
    end_line: int
    source: str
    escape: str = "\\"
    filename: str = "Dockerfile"

    def expand(self, env: Mapping[str, str]) -> Instruction:
        """A copy with variables substituted from `env` (Docker does none for this one).
        A malformed reference raises RlError naming the file and line."""
        return self

    # helpers for subclasses
    def _word(self, word: str, env: Mapping[str, str], lexer: Lexer | None = None) -> str:
        try:
            return (lexer or Lexer(self.escape)).process_word(word, env)
        except ExpansionError as e:
            raise self.error(str(e)) from None

    def _words(self, word: str, env: Mapping[str, str]) -> list[str]:
        try:
            return Lexer(self.escape).process_words(word, env)
        except ExpansionError as e:
            raise self.error(str(e)) from None

    def error(self, message: str, fix: str | None = None) -> RlError:
        """An RlError located at this instruction: "Dockerfile:7: message"."""
        return RlError(f"{self.filename}:{self.line}: {message}", fix)

    @property
    def location(self) -> str:
        return str(self.line) if self.end_line == self.line else f"{self.line}-{self.end_line}"


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    """FROM [--platform=P] image [AS name]; `base` and `platform` are as written."""

    keyword: ClassVar[str] = "FROM"
    base: str
    name: str | None = None
    platform: str | None = None


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    """ARG name[=default] ...; a None default means declared without a value."""

    keyword: ClassVar[str] = "ARG"
    args: tuple[tuple[str, str | None], ...]

    def expand(self, env: Mapping[str, str]) -> Arg:
        out = []
        for key, value in self.args:
            out.append((self._word(key, env), None if value is None else self._word(value, env)))
        return dataclasses.replace(self, args=tuple(out))


@dataclass(frozen=True, kw_only=True)
class _CommandLine(Instruction):
    """RUN/CMD/ENTRYPOINT: `command` is the JSON list (exec form, `shell_form` False) or a
    one-element tuple holding the text to give the shell (shell form)."""

    command: tuple[str, ...]
    shell_form: bool


@dataclass(frozen=True, kw_only=True)
class Run(_CommandLine):
    keyword: ClassVar[str] = "RUN"
    heredocs: tuple[Heredoc, ...] = ()
    mounts: tuple[str, ...] = ()  # --mount values, parsed by the builder
    network: str | None = None
    security: str | None = None

    def expand(self, env: Mapping[str, str]) -> Run:
        # BuildKit expands ARGs and ENVs in --mount values (id=$CACHE_ID, target=$DIR);
        # the command itself is the shell's. CSV quotes stay for the builder's parser.
        if not self.mounts or "$" not in "".join(self.mounts):
            return self
        raw = Lexer(self.escape, skip_quotes=True)
        return dataclasses.replace(self, mounts=tuple(self._word(m, env, raw)
                                                      for m in self.mounts))

    def shell_script(self) -> str:
        """The text to pass to the SHELL for a shell-form RUN, heredocs included, as
        BuildKit does it: `RUN <<EOF` alone runs the heredoc's content as the script;
        otherwise the heredoc bodies are appended so the shell itself reads them."""
        if not self.shell_form:
            raise ValueError("exec-form RUN has no shell script")
        text = self.command[0] if self.command else ""
        if not self.heredocs:
            return text
        from rootless.build.dockerfile import parse_heredoc_word

        if parse_heredoc_word(text) is not None:
            return self.heredocs[0].text
        for doc in self.heredocs:
            text += "\n" + doc.content + doc.name
        return text

    @property
    def shebang_heredoc(self) -> Heredoc | None:
        """`RUN <<EOF` whose content starts with `#!`: BuildKit writes it to a file and
        executes that file instead of feeding it to the shell."""
        from rootless.build.dockerfile import parse_heredoc_word

        if (self.shell_form and self.heredocs and self.command
                and parse_heredoc_word(self.command[0]) is not None
                and self.heredocs[0].text.startswith("#!")):
            return self.heredocs[0]
        return None


@dataclass(frozen=True, kw_only=True)
class Cmd(_CommandLine):
    keyword: ClassVar[str] = "CMD"


@dataclass(frozen=True, kw_only=True)
class Entrypoint(_CommandLine):
    keyword: ClassVar[str] = "ENTRYPOINT"


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


def _expand_pairs(inst: Instruction, pairs, env):
    return tuple((inst._word(k, env), inst._word(v, env)) for k, v in pairs)


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    """ENV k=v ... or legacy ENV k v; values keep their quotes until `expand`."""

    keyword: ClassVar[str] = "ENV"
    pairs: tuple[tuple[str, str], ...]

    def expand(self, env: Mapping[str, str]) -> Env:
        # The whole instruction sees the environment as it was before it: in
        # `ENV abc=bye def=$abc`, def gets the old abc (Docker's documented example).
        return dataclasses.replace(self, pairs=_expand_pairs(self, self.pairs, env))


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[tuple[str, str], ...]

    def expand(self, env: Mapping[str, str]) -> Label:
        return dataclasses.replace(self, pairs=_expand_pairs(self, self.pairs, env))


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    """Deprecated; Docker stores it as the image's author."""

    keyword: ClassVar[str] = "MAINTAINER"
    maintainer: str


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]

    def expand(self, env: Mapping[str, str]) -> Expose:
        # EXPOSE splits each expanded word again: `EXPOSE $PORTS` with PORTS="80 443".
        out: list[str] = []
        for port in self.ports:
            out.extend(self._words(port, env))
        return dataclasses.replace(self, ports=tuple(out))


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    keyword: ClassVar[str] = "USER"
    user: str

    def expand(self, env: Mapping[str, str]) -> User:
        return dataclasses.replace(self, user=self._word(self.user, env))


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    keyword: ClassVar[str] = "WORKDIR"
    path: str

    def expand(self, env: Mapping[str, str]) -> Workdir:
        return dataclasses.replace(self, path=self._word(self.path, env))


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    keyword: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]

    def expand(self, env: Mapping[str, str]) -> Volume:
        return dataclasses.replace(self, paths=tuple(self._word(p, env) for p in self.paths))


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str

    def expand(self, env: Mapping[str, str]) -> StopSignal:
        return dataclasses.replace(self, signal=self._word(self.signal, env))


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    """HEALTHCHECK NONE (`test == ("NONE",)`) or HEALTHCHECK [flags] CMD ...
    (`test` is ("CMD", argv...) for the exec form, ("CMD-SHELL", text) for the shell
    form, as in the image config). Durations are in seconds, None when not given."""

    keyword: ClassVar[str] = "HEALTHCHECK"
    test: tuple[str, ...]
    interval: float | None = None
    timeout: float | None = None
    start_period: float | None = None
    start_interval: float | None = None
    retries: int | None = None


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    """ONBUILD trigger; `expression` is the trigger text stored in the image config."""

    keyword: ClassVar[str] = "ONBUILD"
    expression: str
    trigger: str  # the trigger's keyword, upper case


@dataclass(frozen=True, kw_only=True)
class SourceContent:
    """A COPY/ADD source given inline as a heredoc: becomes a file named `path`."""

    path: str
    data: str
    expand: bool


@dataclass(frozen=True, kw_only=True)
class _Transfer(Instruction):
    """COPY and ADD: `sources` (context-relative paths or patterns, URLs for ADD),
    `contents` (heredoc sources), `dest`, and their flags."""

    sources: tuple[str, ...]
    dest: str
    contents: tuple[SourceContent, ...] = ()
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    excludes: tuple[str, ...] = ()

    def expand(self, env: Mapping[str, str]):
        # Heredoc bodies are expanded only when the delimiter was unquoted, and then
        # without quote processing (quotes in a file's text stay).
        raw = Lexer("\\", skip_quotes=True)
        return dataclasses.replace(
            self,
            sources=tuple(self._word(s, env) for s in self.sources),
            dest=self._word(self.dest, env),
            contents=tuple(dataclasses.replace(c, data=self._word(c.data, env, raw))
                           if c.expand else c for c in self.contents),
            chown=None if self.chown is None else self._word(self.chown, env),
            chmod=None if self.chmod is None else self._word(self.chmod, env),
            excludes=tuple(self._word(e, env) for e in self.excludes),
        )


@dataclass(frozen=True, kw_only=True)
class Copy(_Transfer):
    """COPY; `from_` is the raw --from (stage name, stage index or image), see
    `dockerfile.resolve` for what it refers to."""

    keyword: ClassVar[str] = "COPY"
    from_: str | None = None
    parents: bool = False


@dataclass(frozen=True, kw_only=True)
class Add(_Transfer):
    keyword: ClassVar[str] = "ADD"
    checksum: str | None = None
    keep_git_dir: bool = False
    unpack: bool | None = None  # --unpack: None means Docker's default (local archives unpack)

    def expand(self, env: Mapping[str, str]) -> Add:
        out = super().expand(env)
        if self.checksum is not None:
            out = dataclasses.replace(out, checksum=self._word(self.checksum, env))
        return out


@dataclass(kw_only=True)
class Stage:
    """One build stage: its FROM and the instructions after it, in order."""

    index: int
    from_: From
    instructions: list[Instruction]

    @property
    def name(self) -> str | None:
        return self.from_.name

    @property
    def base(self) -> str:
        return self.from_.base

    @property
    def line(self) -> int:
        return self.from_.line

"""Reading a Dockerfile the way Docker does, into stages of typed instructions.

`parse(text)` follows BuildKit's frontend/dockerfile parser and instructions packages
(the reference for every quirk below; this is a reimplementation, not a copy):

- parser directives (`# syntax=`, `# escape=`, `# check=`) are read only at the very top:
  the first line that is not a directive (a comment, a blank line, an instruction, an
  unknown directive) ends them; each may appear once.
- a line ending in the escape character continues on the next one; comment lines and
  empty lines inside a continuation are skipped (the latter with a warning, like Docker).
- arguments are JSON (exec form) when they parse as a JSON array of strings; otherwise
  they are the shell form (a JSON array holding a non-string is an error, as in Docker).
- RUN, COPY and ADD in shell form read here-documents (`<<EOF`, `<<-EOF`, `<<"EOF"`),
  several per line, from the lines that follow.
- `--flag=value` words after the keyword are instruction flags.

`resolve(dockerfile, build_args, target)` then applies the global ARGs and build args to
each FROM (COPY --from is taken as written, as in BuildKit), finds which stage each FROM
and COPY --from names, checks for cycles and picks
the stages the target needs. Every error is an `RlError` whose message starts with
`FILE:LINE:`.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import json
import platform as _platform
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rootless.build import instructions as ins
from rootless.build.shellwords import ExpansionError, Lexer
from rootless.errors import RlError

INSTRUCTIONS = ("ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM",
                "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL",
                "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")

# Build args Docker accepts without an ARG instruction (they reach RUN's environment).
PREDEFINED_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                             "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy",
                             "ALL_PROXY", "all_proxy"})

_WS = r"[\t\v\f\r ]+"  # Docker's "whitespace" between words (not newline)
_RE_WS = re.compile(_WS)
_GO_SPACE = "[\t\n\f\r ]*"  # RE2's \s
_RE_DIRECTIVE = re.compile(f"([a-zA-Z][a-zA-Z0-9]*){_GO_SPACE}={_GO_SPACE}(.+?){_GO_SPACE}", re.DOTALL)
_RE_HEREDOC = re.compile(f"(\\d*)<<(-?){_GO_SPACE}([^<]*)", re.DOTALL)
_RE_HEREDOC_OPERATOR = re.compile(r"\d*<<-?")
_RE_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*")
_RE_ONBUILD = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)
_DIRECTIVES = ("syntax", "escape", "check")
_KNOWN = frozenset(i.lower() for i in INSTRUCTIONS)


class _Error(Exception):
    """A parse error before it knows the file name: message, line, optional fix."""

    def __init__(self, message: str, line: int, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.fix = fix


class _LineError(Exception):
    """An error raised deep in the parser; the caller adds the line."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix


@dataclass
class Dockerfile:
    """A parsed Dockerfile. `global_args` are the ARGs before the first FROM."""

    filename: str
    stages: list[ins.Stage]
    global_args: list[ins.Arg]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def syntax(self) -> str | None:
        return self.directives.get("syntax")

    def stage(self, name_or_index: str | int) -> ins.Stage | None:
        """The stage with this name (case-insensitive; the last one when several share
        it, as in BuildKit) or index, or None."""
        if isinstance(name_or_index, int) or str(name_or_index).isdigit():
            i = int(name_or_index)
            return self.stages[i] if 0 <= i < len(self.stages) else None
        found = None
        for st in self.stages:
            if st.name is not None and st.name == str(name_or_index).lower():
                found = st
        return found

    def error(self, line: int, message: str, fix: str | None = None) -> RlError:
        return RlError(f"{self.filename}:{line}: {message}", fix)


# --------------------------------------------------------------------------- lines


def _split_lines(text: str) -> list[str]:
    """Lines with their endings kept; only "\\n" ends a line (a "\\r" before it is
    trimmed later), like Go's bufio scanner in the reference."""
    lines = text.split("\n")
    out = [s + "\n" for s in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(s: str) -> bool:
    return s.lstrip().startswith("#")


class _Directives:
    def __init__(self) -> None:
        self.done = False
        self.seen: dict[str, str] = {}
        self.escape = "\\"
        self._set_escape("\\")

    def _set_escape(self, token: str) -> None:
        if token not in ("`", "\\"):
            raise _LineError(f"invalid escape token '{token}' does not match ` or \\")
        self.escape = token
        e = re.escape(token)
        # The escape character as the last non-blank character continues the line,
        # unless it is itself escaped (`\\` at the end is a literal backslash).
        self.continuation = re.compile(f"([^{e}]){e}[ \t]*\\Z|^{e}[ \t]*\\Z")

    def parse_line(self, line: str) -> bool:
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        m = _RE_DIRECTIVE.fullmatch(line[1:].lstrip())
        if not m or m.group(1).lower() not in _DIRECTIVES:
            self.done = True
            return False
        key = m.group(1).lower()
        if key in self.seen:
            raise _LineError(f"only one {key} parser directive can be used")
        self.seen[key] = m.group(2)
        if key == "escape":
            self._set_escape(m.group(2))
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        m = self.continuation.search(line)
        if m:
            return line[:m.start()] + (m.group(1) or ""), False
        return line, True


# --------------------------------------------------------------------------- nodes


@dataclass
class _Node:
    """One instruction as split by the line parser, before typing."""

    cmd: str
    flags: list[str]
    args: list[str]
    json: bool
    original: str
    start: int = 0
    end: int = 0
    pairs: list[tuple[str, str]] | None = None  # ENV/LABEL
    legacy_pairs: bool = False
    sub: _Node | None = None  # ONBUILD's trigger
    heredocs: list[ins.Heredoc] = field(default_factory=list)

    @property
    def lower(self) -> str:
        return self.cmd.lower()

    def dump(self) -> str:
        """BuildKit's parse-tree dump, `(cmd ["--flag"] "arg" ...)`, for comparing the
        line parser with the reference's test files."""
        out = self.lower
        if self.flags:
            out += " [" + " ".join(_go_quote(f) for f in self.flags) + "]"
        if self.sub is not None:
            return f"({out} {self.sub.dump()})"
        if self.pairs is not None:
            for k, v in self.pairs:
                out += f" {_go_quote(k)} {_go_quote(v)} {_go_quote('' if self.legacy_pairs else '=')}"
        elif self.lower not in _KNOWN:
            out += ' ""'  # unknown instructions keep one empty argument node
        for a in self.args:
            out += " " + _go_quote(a)
        return f"({out})"

    def can_contain_heredoc(self) -> bool:
        node = self.sub if self.lower == "onbuild" and self.sub is not None else self
        return node.lower in ("add", "copy", "run") and not node.json


def _go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _split_command(line: str) -> tuple[str, list[str], str]:
    parts = _RE_WS.split(line.strip(), maxsplit=1)
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1])
        return parts[0], flags, rest.strip()
    return parts[0], [], ""


def _scan_words(text: str, escape: str, *, raw: bool) -> Iterator[tuple[int, int, str | None]]:
    """BuildKit's word scanner: each whitespace-separated word of `text` as
    (start, end, word), `text[start:end]` being the word as written. Quotes group
    words ("a b" is one) and the escape character takes the next character literally.

    raw=True (parseWords) keeps quotes and escapes in the word for the lexer to remove
    later, and, like the shell, reads no escape inside single quotes. raw=False
    (extractBuilderFlags) removes them, and escapes inside both kinds of quotes.
    An escape character at the very end is dropped; `word` is None when that leaves
    nothing of the word (no character, no quote)."""
    n = len(text)
    pos = 0
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos == n:
            return
        start = pos
        buf: list[str] = []
        quote = ""
        quoted = False  # a quote makes a word even when it holds nothing ('')
        while pos < n:
            ch = text[pos]
            if not quote and ch.isspace():
                break
            if ch in "'\"" and (not quote or ch == quote):
                quote = "" if quote else ch
                quoted = True
                if raw:
                    buf.append(ch)
            elif ch == escape and not (raw and quote == "'"):
                if pos + 1 == n:
                    pos += 1
                    break
                if raw:
                    buf.append(ch)
                pos += 1
                buf.append(text[pos])
            else:
                buf.append(ch)
            pos += 1
        yield start, pos, "".join(buf) if buf or quoted else None


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """Leading `--name[=value]` words (quotes and backslashes processed), and the rest:
    the flags end at the first word not starting with `--`, or after a lone `--`."""
    flags: list[str] = []
    for start, end, word in _scan_words(line, "\\", raw=False):
        if not line.startswith("--", start):
            return line[start:], flags
        if word == "--":
            return line[end:], flags
        if word is not None:
            flags.append(word)
    return "", flags


def _parse_words(rest: str, escape: str) -> list[str]:
    """Whitespace-separated words, quotes and escapes kept (removed later by the lexer)."""
    return [word for _, _, word in _scan_words(rest, escape, raw=True) if word is not None]


class _NotStringArray(_LineError):
    def __init__(self) -> None:
        super().__init__("when using JSON array syntax, arrays must be comprised of strings only")


def _parse_json(rest: str) -> list[str] | None:
    """The list when `rest` is a JSON array of strings; None when it is not JSON at all
    (shell form); _NotStringArray when it is a JSON array holding something else."""
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None

    def no_constants(name: str):
        raise ValueError(name)  # Go's JSON has no NaN/Infinity

    try:
        value = json.loads(rest, parse_constant=no_constants)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise _NotStringArray()
    return value


def _ws_split(rest: str) -> list[str]:
    return _RE_WS.split(rest) if rest else []


def _node_from_line(line: str, d: _Directives) -> _Node:
    cmd, flags, rest = _split_command(line)
    node = _Node(cmd=cmd, flags=flags, args=[], json=False, original=line)
    kind = cmd.lower()
    if kind in ("add", "copy", "volume"):
        js = _parse_json(rest)
        if js is not None:
            node.args, node.json = js, True
        else:
            node.args = _ws_split(rest)
    elif kind in ("cmd", "entrypoint", "run", "shell"):
        if rest:
            js = _parse_json(rest)
            if js is not None:
                node.args, node.json = js, True
            else:
                node.args = [rest]
    elif kind == "arg":
        node.args = _parse_words(rest, d.escape)
    elif kind in ("env", "label"):
        node.pairs, node.legacy_pairs = _parse_name_val(rest, kind.upper(), d.escape)
    elif kind in ("expose", "from"):
        node.args = _ws_split(rest)
    elif kind == "healthcheck":
        m = re.match(r"(\S*)\s*", rest)
        typ = m.group(1) if m else ""
        if typ:
            node.args = [typ]
            tail = rest[m.end():]
            if tail:
                js = _parse_json(tail)
                if js is not None:
                    node.args += js
                    node.json = True
                else:
                    node.args.append(tail)
    elif kind in ("maintainer", "stopsignal", "user", "workdir"):
        node.args = [rest] if rest else []
    elif kind == "onbuild" and rest:
        node.sub = _node_from_line(rest, d)
        node.args = [node.sub.cmd]
    return node


def _parse_name_val(rest: str, key: str, escape: str) -> tuple[list[tuple[str, str]], bool]:
    # `KEY name value` (legacy, one pair, the value is the rest of the line) when the
    # first word has no "="; otherwise every word must be name=value.
    words = _parse_words(rest, escape)
    if not words:
        return [], False
    if "=" not in words[0]:
        parts = _RE_WS.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _LineError(f"{key} must have two arguments", f"write {key} name=value")
        return [(parts[0], parts[1])], True
    pairs = []
    for w in words:
        if "=" not in w:
            raise _LineError(f"Syntax error - can't find = in {json.dumps(w)}. "
                             "Must be of the form: name=value")
        k, v = w.split("=", 1)
        pairs.append((k, v))
    return pairs, False


def parse_heredoc_word(word: str) -> ins.Heredoc | None:
    """The heredoc a word like `<<EOF`, `<<-"EOF"` or `3<<EOF` introduces, or None.
    The returned Heredoc has no content yet."""
    m = _RE_HEREDOC.fullmatch(word)
    if not m or not m.group(3):
        return None
    rest = m.group(3)
    lexer = Lexer("\\", skip_unset=True)
    try:
        words = lexer.process_words(rest, {})
    except ExpansionError:
        return None
    if len(words) != 1:
        return None
    raw = Lexer("\\", raw_quotes=True, skip_unset=True).process_words(rest, {})
    if len(raw) != 1:
        return None

    def quotes(s: str) -> int:
        return s.count("'") + s.count('"')

    # A quoted part in the delimiter turns expansion of the body off (as in sh).
    return ins.Heredoc(name=words[0], content="", expand=quotes(words[0]) == quotes(raw[0]),
                       chomp=m.group(2) == "-", fd=int(m.group(1)) if m.group(1) else None)


def _heredocs_from_line(line: str) -> list[ins.Heredoc]:
    lexer = Lexer("\\", raw_quotes=True, raw_escapes=True, skip_unset=True)
    try:
        words = lexer.process_words(line, {})
    except ExpansionError:
        return []
    docs = []
    i = 0
    while i < len(words):
        word = words[i]
        # Docker accepts a space between the operator and the delimiter (`<< EOF`,
        # `<<- EOF`); the operator alone decides chomping (`<< -EOF` names "-EOF").
        if _RE_HEREDOC_OPERATOR.fullmatch(word) and i + 1 < len(words):
            word += " " + words[i + 1]
            i += 1
        doc = parse_heredoc_word(word)
        if doc is not None:
            docs.append(doc)
        i += 1
    return docs


def _read_nodes(text: str) -> tuple[list[_Node], _Directives, list[str], int]:
    d = _Directives()
    lines = _split_lines(text)
    nodes: list[_Node] = []
    warnings: list[str] = []
    cur = 0
    i = 0
    n = len(lines)
    while i < n:
        raw = lines[i]
        i += 1
        if cur == 0:
            raw = raw.removeprefix("\ufeff")
        token = _trim_newline(raw).lstrip()
        try:
            d.parse_line(token)
        except _LineError as e:
            raise _Error(e.message, cur + 1, e.fix) from None
        body = "" if _is_comment(token) else token
        cur += 1
        start = cur
        body, eol = d.trim_continuation(body)
        if eol and body == "":
            continue
        parts = [body]
        empty_continuation = False
        while not eol and i < n:
            raw = lines[i]
            i += 1
            token = _trim_newline(raw)
            try:
                d.parse_line(token)
            except _LineError as e:
                raise _Error(e.message, cur + 1, e.fix) from None
            cur += 1
            if _is_comment(token):
                continue
            if not token.strip():
                empty_continuation = True
                continue
            token, eol = d.trim_continuation(token)
            parts.append(token)
        line = "".join(parts)
        if empty_continuation:
            warnings.append(f"line {start}: empty continuation line found in: {line.strip()} "
                            "(empty continuation lines will become errors in a future release)")
        try:
            node = _node_from_line(line, d)
        except _LineError as e:
            raise _Error(e.message, start, e.fix) from None
        if node.can_contain_heredoc() and "<<" in line:
            for doc in _heredocs_from_line(line):
                content: list[str] = []
                terminated = False
                while i < n:
                    raw = lines[i]
                    i += 1
                    cur += 1
                    candidate = _trim_newline(raw)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    content.append(raw)
                if not terminated:
                    raise _Error("unterminated heredoc", start,
                                 f"end the here-document with a line holding only {doc.name}")
                node.heredocs.append(dataclasses.replace(doc, content="".join(content)))
        node.start, node.end = start, cur
        if node.legacy_pairs:
            warnings.append(f"line {start}: legacy key/value format with whitespace separator "
                            f"should be replaced with {node.cmd.upper()} key=value")
        nodes.append(node)
    return nodes, d, warnings, cur


# --------------------------------------------------------------------------- flags

_BOOL, _STRING, _STRINGS = "bool", "string", "strings"


def _parse_flags(node: _Node, spec: Mapping[str, str]) -> dict[str, object]:
    """Docker's BFlags: `--name=value`, `--name` for booleans; unknown or repeated flags
    are errors. Returns name -> value (bool, str, or list for repeatable flags)."""
    out: dict[str, object] = {}
    for arg in node.flags:
        if not arg.startswith("--"):
            raise _LineError(f"Arg should start with -- : {arg}")
        if arg == "--":
            break
        name, eq, value = arg[2:].partition("=")
        if name not in spec:
            known = ", ".join(f"--{k}" for k in spec) or "none"
            raise _LineError(f"unknown flag: --{name}", f"{node.cmd.upper()} accepts: {known}")
        kind = spec[name]
        if name in out and kind != _STRINGS:
            raise _LineError(f"duplicate flag specified: --{name}")
        if kind == _BOOL:
            if eq and value == "":
                raise _LineError(f"missing a value on flag: --{name}")
            low = value.lower()
            if low not in ("", "true", "false"):
                raise _LineError(f"expecting boolean value for flag --{name}, not: {value}")
            out[name] = low != "false"
        elif not eq:
            raise _LineError(f"missing a value on flag: --{name}", f"write --{name}=VALUE")
        elif kind == _STRING:
            out[name] = value
        else:
            out.setdefault(name, []).append(value)  # type: ignore[union-attr]
    return out


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3,
                   "s": 1.0, "m": 60.0, "h": 3600.0}
_RE_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def _parse_duration(flag: str, value: str | None) -> float | None:
    """Go's time.ParseDuration ("1m30s", "500ms", "0"), in seconds; >= 1ms unless 0."""
    if not value:
        return None
    s = value
    sign = 1.0
    if s[:1] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _RE_DURATION_PART.match(s, pos)
        if not m:
            raise _LineError(f'invalid --{flag} duration "{value}"', "use a duration like 30s, 1m30s or 500ms")
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise _LineError(f'invalid --{flag} duration "{value}"')
    total *= sign
    if total == 0:
        return 0.0
    if total < 1e-3:
        raise _LineError(f'Interval "{flag}" cannot be less than 1ms')
    return total


# --------------------------------------------------------------------------- typing


def _exactly_one(node: _Node) -> str:
    if len(node.args) != 1:
        raise _LineError(f"{node.cmd.upper()} requires exactly one argument")
    return node.args[0]


def _at_least_one(node: _Node, what: list | None = None) -> None:
    if not (node.args if what is None else what):
        raise _LineError(f"{node.cmd.upper()} requires at least one argument")


def _instruction(node: _Node, escape: str, filename: str) -> ins.Instruction:
    kind = node.lower
    base = {"line": node.start, "end_line": node.end, "source": node.original.strip(),
            "escape": escape, "filename": filename}
    if kind == "from":
        flags = _parse_flags(node, {"platform": _STRING})
        args = node.args
        name = None
        if len(args) == 3 and args[1].lower() == "as":
            name = args[2].lower()
            if not _RE_STAGE_NAME.fullmatch(name):
                raise _LineError(f'invalid name for build stage: "{args[2]}", name can\'t start '
                                 "with a number or contain symbols")
        elif len(args) != 1:
            raise _LineError("FROM requires either one or three arguments",
                             "write FROM image [AS name]")
        return ins.From(base=args[0], name=name, platform=flags.get("platform") or None, **base)
    if kind == "arg":
        _parse_flags(node, {})
        _at_least_one(node)
        pairs: list[tuple[str, str | None]] = []
        for word in node.args:
            if "=" in word:
                k, v = word.split("=", 1)
                if not k:
                    raise _LineError("ARG names can not be blank")
                pairs.append((k, v))
            else:
                pairs.append((word, None))
        return ins.Arg(args=tuple(pairs), **base)
    if kind in ("env", "label"):
        _parse_flags(node, {})
        if not node.pairs:
            raise _LineError(f"{kind.upper()} requires at least one argument")
        if any(not k for k, _ in node.pairs):
            raise _LineError(f"{kind.upper()} names can not be blank")
        cls = ins.Env if kind == "env" else ins.Label
        return cls(pairs=tuple(node.pairs), **base)
    if kind == "maintainer":
        _parse_flags(node, {})
        return ins.Maintainer(maintainer=_exactly_one(node), **base)
    if kind == "run":
        flags = _parse_flags(node, {"mount": _STRINGS, "network": _STRING,
                                    "security": _STRING, "device": _STRINGS})
        if flags.get("device"):  # refused, not ignored: the step would run without it
            raise _LineError("RUN --device is not supported by rl",
                             "remove --device; rootless builds get no host devices")
        if not node.args and not node.json:
            raise _LineError("RUN requires at least one argument")
        return ins.Run(command=tuple(node.args), shell_form=not node.json,
                       heredocs=tuple(node.heredocs), mounts=tuple(flags.get("mount", [])),
                       network=flags.get("network"), security=flags.get("security"), **base)
    if kind in ("cmd", "entrypoint"):
        _parse_flags(node, {})
        cls = ins.Cmd if kind == "cmd" else ins.Entrypoint
        return cls(command=tuple(node.args), shell_form=not node.json, **base)
    if kind == "shell":
        _parse_flags(node, {})
        if not node.args:
            raise _LineError("SHELL requires at least one argument")
        if not node.json:
            raise _LineError("SHELL requires the arguments to be in JSON form",
                             'write SHELL ["executable", "parameters"]')
        return ins.Shell(shell=tuple(node.args), **base)
    if kind == "workdir":
        _parse_flags(node, {})
        return ins.Workdir(path=_exactly_one(node), **base)
    if kind == "user":
        _parse_flags(node, {})
        return ins.User(user=_exactly_one(node), **base)
    if kind == "stopsignal":
        _parse_flags(node, {})
        return ins.StopSignal(signal=_exactly_one(node), **base)
    if kind == "expose":
        _parse_flags(node, {})
        _at_least_one(node)
        return ins.Expose(ports=tuple(sorted(node.args)), **base)
    if kind == "volume":
        _parse_flags(node, {})
        _at_least_one(node)
        paths = []
        for v in node.args:
            v = v.strip()
            if not v:
                raise _LineError("VOLUME specified can not be an empty string")
            paths.append(v)
        return ins.Volume(paths=tuple(paths), **base)
    if kind == "healthcheck":
        return _healthcheck(node, base)
    if kind == "onbuild":
        _parse_flags(node, {})
        if node.sub is None:
            raise _LineError("ONBUILD requires at least one argument")
        trigger = node.sub.cmd.upper()
        if trigger == "ONBUILD":
            raise _LineError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise _LineError(f"{trigger} isn't allowed as an ONBUILD trigger")
        expression = _RE_ONBUILD.sub("", node.original, count=1)
        for doc in node.heredocs:
            expression += "\n" + doc.content + doc.name
        return ins.Onbuild(expression=expression, trigger=trigger, **base)
    if kind in ("copy", "add"):
        return _transfer(node, base)
    raise _LineError(f"unknown instruction: {node.cmd}", _suggest(node.cmd))


def _suggest(word: str) -> str | None:
    close = difflib.get_close_matches(word.upper(), INSTRUCTIONS, n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else None


def _healthcheck(node: _Node, base: dict) -> ins.Healthcheck:
    if not node.args:
        raise _LineError("HEALTHCHECK requires at least one argument")
    typ = node.args[0].upper()
    args = node.args[1:]
    if typ == "NONE":
        if args:
            raise _LineError("HEALTHCHECK NONE takes no arguments")
        return ins.Healthcheck(test=("NONE",), **base)
    flags = _parse_flags(node, {"interval": _STRING, "timeout": _STRING, "start-period": _STRING,
                                "start-interval": _STRING, "retries": _STRING})
    if typ != "CMD":
        raise _LineError(f'Unknown type "{typ}" in HEALTHCHECK (try CMD)')
    if not args:
        raise _LineError("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *args) if node.json else ("CMD-SHELL", " ".join(args))
    retries = None
    if flags.get("retries"):
        try:
            retries = int(str(flags["retries"]), 10)
        except ValueError:
            raise _LineError(f'invalid --retries value "{flags["retries"]}"') from None
        if retries < 0:
            raise _LineError(f"--retries cannot be negative ({retries})")
    durations = {key.replace("-", "_"): _parse_duration(key, flags.get(key))  # type: ignore[arg-type]
                 for key in ("interval", "timeout", "start-period", "start-interval")}
    return ins.Healthcheck(test=test, retries=retries, **durations, **base)


def _transfer(node: _Node, base: dict) -> ins.Copy | ins.Add:
    kw = node.cmd.upper()
    if len(node.args) < 2:
        raise _LineError(f"{kw} requires at least two arguments, but only one was provided. "
                         "Destination could not be determined", f"write {kw} SOURCE... DEST")
    if kw == "COPY":
        spec = {"chown": _STRING, "from": _STRING, "chmod": _STRING, "link": _BOOL,
                "parents": _BOOL, "exclude": _STRINGS}
    else:
        spec = {"chown": _STRING, "chmod": _STRING, "link": _BOOL, "keep-git-dir": _BOOL,
                "checksum": _STRING, "exclude": _STRINGS, "unpack": _BOOL}
    flags = _parse_flags(node, spec)
    *srcs, dest = node.args
    if parse_heredoc_word(dest) is not None:
        raise _LineError(f"{kw} cannot accept a heredoc as a destination")
    docs = {d.name: d for d in node.heredocs}
    sources: list[str] = []
    contents: list[ins.SourceContent] = []
    for src in srcs:
        doc = parse_heredoc_word(src)
        if doc is None:
            sources.append(src)
            continue
        found = docs.get(doc.name)
        data = found.content if found else ""
        if doc.chomp:
            data = ins.chomp_heredoc(data)
        contents.append(ins.SourceContent(path=doc.name, data=data, expand=doc.expand))
    common = {"sources": tuple(sources), "dest": dest, "contents": tuple(contents),
              "chown": flags.get("chown") or None, "chmod": flags.get("chmod") or None,
              "link": bool(flags.get("link", False)),
              "excludes": tuple(flags.get("exclude", [])), **base}  # type: ignore[arg-type]
    if kw == "COPY":
        return ins.Copy(from_=flags.get("from") or None, parents=bool(flags.get("parents", False)),
                        **common)
    return ins.Add(checksum=flags.get("checksum") or None,
                   keep_git_dir=bool(flags.get("keep-git-dir", False)),
                   unpack=flags.get("unpack"), **common)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- parse


def parse(source: str | bytes, filename: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile text into stages. Raises RlError("FILE:LINE: ...")."""
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as e:
            line = source[:e.start].count(b"\n") + 1
            raise RlError(f"{filename}:{line}: not valid UTF-8 text",
                          "save the Dockerfile as UTF-8") from None
    try:
        nodes, d, warnings, nlines = _read_nodes(source)
    except _Error as e:
        raise RlError(f"{filename}:{e.line}: {e.message}", e.fix) from None
    if not nodes:
        raise RlError(f"{filename}:{max(nlines, 1)}: file with no instructions",
                      "a Dockerfile needs at least a FROM instruction")
    stages: list[ins.Stage] = []
    global_args: list[ins.Arg] = []
    for node in nodes:
        try:
            inst = _instruction(node, d.escape, filename)
        except _LineError as e:
            raise RlError(f"{filename}:{node.start}: {e.message}", e.fix) from None
        warnings.extend(_lint(node, inst))
        if isinstance(inst, ins.From):
            stages.append(ins.Stage(index=len(stages), from_=inst, instructions=[]))
        elif not stages:
            if isinstance(inst, ins.Arg):
                global_args.append(inst)
            else:
                raise RlError(f"{filename}:{node.start}: {inst.keyword} before any FROM: "
                              "no build stage in current context",
                              "begin the Dockerfile with FROM (only ARG may come before it)")
        else:
            stages[-1].instructions.append(inst)
    if not stages:
        raise RlError(f"{filename}:{nodes[-1].start}: no FROM instruction: there is no stage to build",
                      "add FROM image (or FROM scratch)")
    seen: dict[str, int] = {}
    for st in stages:
        if st.name is not None:
            if st.name in seen:
                # BuildKit builds it (a later stage of the same name shadows the earlier
                # one) and only warns.
                warnings.append(f"line {st.line}: duplicate stage name {st.name!r} (also on line "
                                f"{seen[st.name]}), stage names should be unique")
            seen[st.name] = st.line
    syntax = d.seen.get("syntax")
    if syntax and not re.match(r"^(docker\.io/)?docker/dockerfile(-upstream)?(:[\w.-]+)?(@.*)?$", syntax):
        warnings.insert(0, f"line 1: # syntax={syntax} asks for another Dockerfile frontend; "
                        "rl reads the file with its own Dockerfile parser")
    return Dockerfile(filename=filename, stages=stages, global_args=global_args, escape=d.escape,
                      directives=dict(d.seen), warnings=warnings)


def _lint(node: _Node, inst: ins.Instruction) -> list[str]:
    """A few of BuildKit's build checks that need nothing but the text."""
    out = []
    where = f"line {inst.line}"
    if isinstance(inst, ins.Maintainer):
        out.append(f"{where}: MAINTAINER is deprecated, use "
                   "LABEL org.opencontainers.image.authors=... instead")
    elif isinstance(inst, ins.Cmd | ins.Entrypoint) and inst.shell_form and inst.command:
        out.append(f"{where}: JSON arguments recommended for {inst.keyword} to prevent "
                   "unintended behavior related to OS signals")
    elif isinstance(inst, ins.From) and len(node.args) == 3:
        kw, as_ = node.cmd, node.args[1]
        if (kw.isupper() and as_.islower()) or (kw.islower() and as_.isupper()):
            out.append(f"{where}: '{as_}' and '{kw}' keywords' casing do not match")
    return out


def parse_trigger(expression: str, origin: str = "ONBUILD") -> ins.Instruction:
    """An ONBUILD trigger (the `expression` a base image's config keeps) parsed as the
    instruction it is, heredocs included. Errors are named after `origin` (for example
    "ONBUILD of python:3.11")."""
    try:
        nodes, d, _, _ = _read_nodes(expression)
    except _Error as e:
        raise RlError(f"{origin}: {e.message}", e.fix) from None
    if len(nodes) != 1:
        raise RlError(f"{origin}: trigger is not one instruction: {expression!r}")
    node = nodes[0]
    if node.lower in ("onbuild", "from", "maintainer"):
        raise RlError(f"{origin}: {node.cmd.upper()} isn't allowed as an ONBUILD trigger")
    try:
        return _instruction(node, d.escape, origin)
    except _LineError as e:
        raise RlError(f"{origin}: {e.message}", e.fix) from None


def parse_file(path: str | Path, display_name: str | None = None) -> Dockerfile:
    """Read and parse a Dockerfile; errors name it `display_name` (default: its file name)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise RlError(f"{display_name or p}: no such Dockerfile", "give its path with -f") from None
    except IsADirectoryError:
        raise RlError(f"{display_name or p}: is a directory, not a Dockerfile") from None
    return parse(data, display_name or p.name)


# --------------------------------------------------------------------------- resolve


def default_platform_args(os_name: str = "linux", arch: str | None = None,
                          variant: str = "") -> dict[str, str]:
    """The automatic platform ARGs (TARGETPLATFORM, BUILDARCH, ...) for a native build."""
    if arch is None:
        machine = _platform.machine().lower()
        arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
                "armv7l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le",
                "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)
        if machine == "armv7l":
            variant = variant or "v7"
    plat = f"{os_name}/{arch}" + (f"/{variant}" if variant else "")
    out = {}
    for prefix in ("BUILD", "TARGET"):
        out.update({f"{prefix}PLATFORM": plat, f"{prefix}OS": os_name, f"{prefix}ARCH": arch,
                    f"{prefix}VARIANT": variant})
    return out


@dataclass
class ResolvedStage:
    """A stage with its FROM worked out.

    base: the expanded base image name ("scratch" included); base_stage: the index of the
    earlier stage it builds on, if FROM names one; platform: the expanded --platform;
    copy_from: for each COPY --from in `stage.instructions` (by position), the stage index
    (int) or image name (str) it reads from; mount_from: the same for each RUN --mount
    with a from= option, keyed by (position, mount number); deps: stage indexes this one
    needs."""

    stage: ins.Stage
    base: str
    base_stage: int | None
    platform: str | None
    copy_from: dict[int, int | str] = field(default_factory=dict)
    mount_from: dict[tuple[int, int], int | str] = field(default_factory=dict)
    deps: set[int] = field(default_factory=set)

    @property
    def index(self) -> int:
        return self.stage.index

    @property
    def is_scratch(self) -> bool:
        return self.base_stage is None and self.base.lower() == "scratch"


@dataclass
class BuildPlan:
    """What `resolve` decided: every stage, the target, and the order to build the stages
    the target needs (dependencies first). global_args are the ARGs before the first FROM
    with their values (None: declared without a value and not given); unused_build_args
    are --build-arg names no ARG declares (Docker warns about them)."""

    dockerfile: Dockerfile
    stages: list[ResolvedStage]
    target: int
    order: list[int]
    global_args: dict[str, str | None]
    build_args: dict[str, str]
    unused_build_args: list[str]
    platform_args: dict[str, str] = field(default_factory=dict)

    def stage_arg_values(self, arg: ins.Arg, env: Mapping[str, str]) -> list[tuple[str, str | None]]:
        """Values for an ARG inside a stage, by Docker's rule: a --build-arg wins; then the
        ARG's own default (expanded with `env`, the stage's environment so far); then, for
        `ARG NAME` without default, the global ARG of that name, or the automatic platform
        value (TARGETARCH, BUILDPLATFORM, ...). None means unset."""
        out: list[tuple[str, str | None]] = []
        expanded = arg.expand(env)
        for (key, default), (_, raw_default) in zip(expanded.args, arg.args, strict=True):
            if key in self.build_args:
                out.append((key, self.build_args[key]))
            elif raw_default is not None:
                out.append((key, default))
            elif self.global_args.get(key) is not None:
                out.append((key, self.global_args[key]))
            else:
                out.append((key, self.platform_args.get(key)))
        return out


def resolve(df: Dockerfile, build_args: Mapping[str, str] | None = None,
            target: str | None = None, platform_args: Mapping[str, str] | None = None) -> BuildPlan:
    """Apply global ARGs and build args to every FROM, find the stage (or image) each FROM
    and COPY --from names, and pick the stages `target` (a stage name or index; default
    the last stage) needs."""
    build_args = dict(build_args or {})
    platform_args = dict(default_platform_args() if platform_args is None else platform_args)
    lexer = Lexer(df.escape)

    # Global scope: the platform ARGs, then each ARG before FROM in order.
    env: dict[str, str] = dict(platform_args)
    global_args: dict[str, str | None] = {}
    for arg in df.global_args:
        for key, default in arg.args:
            try:
                key = lexer.process_word(key, env)
                value = default if default is None else lexer.process_word(default, env)
            except ExpansionError as e:
                raise df.error(arg.line, str(e)) from None
            if key in build_args:
                value = build_args[key]
            elif value is None and key in platform_args:
                value = platform_args[key]  # `ARG TARGETARCH` keeps the automatic value
            global_args[key] = value
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
    valueless = {k for k, v in global_args.items() if v is None}

    resolved: list[ResolvedStage] = []
    for st in df.stages:
        f = st.from_
        try:
            res = lexer.process(f.base, env)
        except ExpansionError as e:
            raise df.error(f.line, str(e)) from None
        missing = sorted(res.unset_plain & valueless)
        if missing:
            raise df.error(f.line, f"FROM uses ARG {missing[0]}, which has no value",
                           f"give it a default (ARG {missing[0]}=...) or pass --build-arg {missing[0]}=...")
        if res.result == "":
            raise df.error(f.line, f"base name ({f.base}) should not be blank",
                           "the variables in FROM expanded to nothing: set them with ARG or --build-arg")
        base = res.result
        plat = None
        if f.platform:
            try:
                plat = lexer.process_word(f.platform, env)
            except ExpansionError as e:
                raise df.error(f.line, str(e)) from None
        base_stage = None
        for earlier in resolved:
            # BuildKit looks the expanded base up as written among the (lower-case) names
            # of the stages before; the last one of that name wins.
            if earlier.stage.name is not None and earlier.stage.name == base:
                base_stage = earlier.index
        rs = ResolvedStage(stage=st, base=base, base_stage=base_stage, platform=plat)
        if base_stage is not None:
            rs.deps.add(base_stage)
        resolved.append(rs)

    def lookup(ref: str, inst: ins.Instruction) -> int | str:
        # A number is a stage index, a stage name (case-insensitive) a stage, anything
        # else an image, as BuildKit resolves --from.
        if ref.isdigit():
            i = int(ref)
            if i >= len(df.stages):
                raise df.error(inst.line, f"invalid stage index {i} in --from: the Dockerfile "
                               f"has {len(df.stages)} stage(s), numbered from 0",
                               "name an existing stage or use --from=<name>")
            return i
        named = df.stage(ref)
        return named.index if named is not None else ref

    for rs in resolved:
        for pos, inst in enumerate(rs.stage.instructions):
            if isinstance(inst, ins.Copy) and inst.from_ is not None:
                ref = inst.from_
                if "$" in ref:
                    # BuildKit uses --from as written; a variable there can only end as
                    # an invalid image name, so say why now.
                    raise df.error(inst.line, f"COPY --from={ref}: variables are not expanded in --from",
                                   f"name a stage instead: FROM {ref} AS src, then COPY --from=src")
                rs.copy_from[pos] = lookup(ref, inst)
            elif isinstance(inst, ins.Run):
                for n, mount in enumerate(inst.mounts):
                    ref = _mount_option(mount, "from")
                    if ref and "$" not in ref:  # a variable is expanded later, at RUN
                        rs.mount_from[(pos, n)] = lookup(ref, inst)
        rs.deps.update(v for v in (*rs.copy_from.values(), *rs.mount_from.values())
                       if isinstance(v, int))

    _check_cycles(df, resolved)

    if target is None:
        tgt = len(df.stages) - 1
    else:
        st = df.stage(target)
        if st is None:
            names = [s.name for s in df.stages if s.name]
            raise RlError(f"{df.filename}: target stage {target!r} could not be found",
                          f"stages: {', '.join(names)}" if names else "the Dockerfile names no stage (FROM image AS name)")
        tgt = st.index

    order: list[int] = []
    seen: set[int] = set()

    def visit(i: int) -> None:
        if i in seen:
            return
        seen.add(i)
        for dep in sorted(resolved[i].deps):
            visit(dep)
        order.append(i)

    visit(tgt)
    declared = {k for a in df.global_args for k, _ in a.args}
    for st in df.stages:
        for inst in st.instructions:
            if isinstance(inst, ins.Arg):
                declared.update(k for k, _ in inst.args)
    unused = sorted(k for k in build_args if k not in declared and k not in PREDEFINED_ARGS)
    return BuildPlan(dockerfile=df, stages=resolved, target=tgt, order=order,
                     global_args=global_args, build_args=build_args, unused_build_args=unused,
                     platform_args=platform_args)


def _mount_option(mount: str, key: str) -> str | None:
    """The value of `key` in a --mount spec ("type=cache,from=build,target=/x")."""
    for row in csv.reader([mount]):
        for field_ in row:
            k, _, v = field_.partition("=")
            if k.strip().lower() == key:
                return v.strip()
    return None


def _check_cycles(df: Dockerfile, resolved: list[ResolvedStage]) -> None:
    state: dict[int, int] = {}  # 1 visiting, 2 done

    def visit(i: int) -> int | None:
        state[i] = 1
        for dep in sorted(resolved[i].deps):
            if state.get(dep) == 1:
                return dep
            if dep not in state:
                found = visit(dep)
                if found is not None:
                    return found
        state[i] = 2
        return None

    for rs in resolved:
        if rs.index in state:
            continue
        culprit = visit(rs.index)
        if culprit is not None:
            st = resolved[culprit].stage
            line = next((inst.line for pos, inst in enumerate(st.instructions)
                         if resolved[culprit].copy_from.get(pos) is not None
                         and isinstance(resolved[culprit].copy_from.get(pos), int)), st.line)
            label = st.name or f"stage-{st.index}"
            raise df.error(line, f"circular dependency detected on stage: {label}",
                           "COPY --from may only name another stage that does not depend on this one")

"""Docker's shell-word lexer: quote removal, the escape character and `$VAR` substitution.

Dockerfile instructions that take paths or names (COPY, ENV, WORKDIR, ...) are not run by a
shell, yet Docker gives them a small subset of shell word processing: single and double
quotes, the escape character (`\\`, or a backtick after `# escape=``), and parameter
expansion `$V`, `${V}`, `${V:-x}`, `${V-x}`, `${V:+x}`, `${V+x}`, `${V:?x}`, `${V?x}`,
`${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`, `${V/p/r}`, `${V//p/r}`. Its quirks are Docker's
(BuildKit's frontend/dockerfile/shell lexer is the reference), so this is written by hand:
no Python library reproduces them (shlex has no expansion, os.path.expandvars no quoting).

`Lexer.process_word` keeps spaces (one word in, one string out: ENV values, WORKDIR);
`Lexer.process_words` splits the result on unquoted whitespace (EXPOSE, heredoc detection).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_EOF = ""


class ExpansionError(ValueError):
    """A word Docker's lexer refuses (unclosed quote, `${`, bad substitution, `${V?msg}`)."""


@dataclass
class Result:
    """One processed word: the joined `result`, the `words` split on unquoted whitespace,
    the variable names found set (`matched`) and unset (`unmatched`), and `unset_plain`:
    the unset names used as plain `$V`/`${V}` (no default given), which FROM refuses when
    they are ARGs declared without a value."""

    result: str
    words: list[str]
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)
    unset_plain: set[str] = field(default_factory=set)


class _Words:
    """Accumulates characters into whitespace-separated words (ProcessWords' splitting)."""

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        self.word += s
        self.in_word = True

    def get(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class Lexer:
    """Processes words with a given escape character.

    raw_quotes keeps quote characters in the output, raw_escapes keeps escape characters,
    skip_quotes treats quotes as ordinary characters, skip_unset leaves references to unset
    variables as written (the heredoc detection uses these; instructions use none)."""

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_quotes: bool = False, skip_unset: bool = False):
        if escape not in ("\\", "`"):
            raise ValueError(f"invalid escape character {escape!r}")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_quotes = skip_quotes
        self.skip_unset = skip_unset

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        return self.process(word, env).result

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return self.process(word, env).words

    def process(self, word: str, env: Mapping[str, str]) -> Result:
        state = _State(self, word, env)
        try:
            text, words = state.stop_on(_EOF, self.raw_escapes)
        except ExpansionError as e:
            raise ExpansionError(f"failed to process {_go_quote(word)}: {e}") from None
        return Result(text, words, state.matched, state.unmatched, state.unset_plain)


def _printable(s: str) -> str:
    return s.encode("unicode_escape").decode("ascii") if not s.isprintable() else s


def _go_quote(s: str) -> str:
    # Go's %q: quoted, with newlines and control characters escaped (errors stay on one line)
    return json.dumps(s, ensure_ascii=False)


class _State:
    def __init__(self, lexer: Lexer, text: str, env: Mapping[str, str]):
        self.lx = lexer
        self.text = text
        self.pos = 0
        self.env = env
        self.raw_escapes = lexer.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()
        self.unset_plain: set[str] = set()

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos >= len(self.text):
            return _EOF
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        out: list[str] = []
        words = _Words()
        esc = self.lx.escape
        quotes = not self.lx.skip_quotes
        while self.peek() != _EOF:
            ch = self.peek()
            if stop != _EOF and ch == stop:
                self.next()
                return "".join(out), words.get()
            if ch == "$":
                tmp = self.dollar()
                out.append(tmp)
                words.add_string(tmp)
            elif quotes and ch == "'":
                tmp = self.single_quote()
                out.append(tmp)
                words.add_raw_string(tmp)
            elif quotes and ch == '"':
                tmp = self.double_quote()
                out.append(tmp)
                words.add_raw_string(tmp)
            else:
                ch = self.next()
                if ch == esc:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        out.append(ch)
                    ch = self.next()
                    if ch == _EOF:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                out.append(ch)
        if stop != _EOF:
            raise ExpansionError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.get()

    def single_quote(self) -> str:
        # Everything up to the next ' is literal; nothing escapes inside single quotes.
        out = []
        ch = self.next()
        if self.lx.raw_quotes:
            out.append(ch)
        while True:
            ch = self.next()
            if ch == _EOF:
                raise ExpansionError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        # Literal except $ (expanded) and the escape character before " $ or itself.
        out = []
        ch = self.next()
        if self.lx.raw_quotes:
            out.append(ch)
        esc = self.lx.escape
        while True:
            p = self.peek()
            if p == _EOF:
                raise ExpansionError("unexpected end of statement while looking for matching double-quote")
            if p == '"':
                ch = self.next()
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if p == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == esc:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if nxt == _EOF:
                    continue
                if nxt in ('"', "$", esc):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        # A name is letters, digits and _; a leading digit run or one special
        # parameter character ends it at once (as in sh).
        buf = []
        while self.peek() != _EOF:
            ch = self.peek()
            if not buf and ch.isdigit():
                while self.peek() != _EOF and self.peek().isdigit():
                    buf.append(self.next())
                return "".join(buf)
            if not buf and ch in "@*#?-$!0":
                return self.next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            buf.append(self.next())
        return "".join(buf)

    def dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found:
                if self.lx.skip_unset:
                    return "$" + name
                self.unset_plain.add(name)
            return value
        self.next()  # the {
        p = self.peek()
        if p == _EOF:
            raise ExpansionError("syntax error: missing '}'")
        if p in "{}:":
            raise ExpansionError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == _EOF:
            raise ExpansionError("syntax error: missing '}'")
        chs = ch
        null_is_unset = False
        if ch == "}":
            value, found = self.get_env(name)
            if not found:
                if self.lx.skip_unset:
                    return "${" + name + "}"
                self.unset_plain.add(name)
            return value
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            chs += ch
            if ch not in "+-?#%" or ch == _EOF:
                raise ExpansionError(f"unsupported modifier ({_printable(chs)}) in substitution")
        if ch != _EOF and ch in "+-?#%":
            word, _ = self._modifier_word(ch in "#%")
            value, found = self.get_env(name)
            if self.lx.skip_unset and not found:
                return "${" + name + chs + word + "}"
            empty = not found or (null_is_unset and value == "")
            if ch == "-":
                return word if empty else value
            if ch == "+":
                return "" if empty else word
            if ch == "?":
                if not found:
                    raise ExpansionError(f"{name}: {_printable(word or 'is not allowed to be unset')}")
                if null_is_unset and value == "":
                    raise ExpansionError(f"{name}: {_printable(word or 'is not allowed to be empty')}")
                return value
            greedy = bool(word) and word[0] == ch
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        if ch == "/":
            replace_all = self.peek() == "/"
            if replace_all:
                self.next()
            try:
                pattern, _ = self.stop_on("/", True)
            except ExpansionError:
                if self.peek() == _EOF:
                    raise ExpansionError("syntax error: missing '/' in ${}") from None
                raise
            try:
                replacement, _ = self.stop_on("}", True)
            except ExpansionError:
                if self.peek() == _EOF:
                    raise ExpansionError("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.lx.skip_unset and not found:
                return "${" + name + "/" + pattern + "/" + replacement + "}"
            rx = _pattern_regex(pattern, greedy=True, anchored=False)
            if replace_all:
                return rx.sub(lambda _m: replacement, value)
            return rx.sub(lambda _m: replacement, value, count=1)
        raise ExpansionError(f"unsupported modifier ({_printable(chs)}) in substitution")

    def _modifier_word(self, raw_escapes: bool) -> tuple[str, list[str]]:
        try:
            return self.stop_on("}", raw_escapes)
        except ExpansionError:
            if self.peek() == _EOF:
                raise ExpansionError("syntax error: missing '}'") from None
            raise


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell wildcard pattern (`*`, `?`, backslash escapes; no brackets) as a regex."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/"):
                continue
            i += 1
            if nxt not in ("*", "?", "\\"):
                raise ExpansionError(f"invalid pattern ({_printable(pattern)}) in substitution: "
                                     f"invalid escape '\\{_printable(nxt)}'")
            out.append(re.escape(nxt))
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[m.end():] if m else value


def _reverse_pattern(pattern: str) -> str:
    # Reverse, keeping each backslash escape in front of the character it escapes.
    tokens = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i:i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # A regex finds leftmost matches only: reverse both to find the rightmost suffix.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]

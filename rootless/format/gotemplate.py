"""Go's text/template, as `docker ... --format` and `podman ... --format` use it.

Hand-written: no Python library implements Go templates (jinja2, string.Template and
chevron have other syntaxes and other printing rules), and scripts written for Docker need
Go's exact output: `true` not `True`, `<no value>` for a missing key, maps printed as
`map[k:v ...]` sorted by key, slices as `[a b]`, numbers as Go's fmt prints them.

What is implemented (Go 1.22 text/template semantics unless said otherwise):
- text and actions, `{{- ` / ` -}}` whitespace trimming, comments `{{/* ... */}}`;
- fields and chains on `.`, on variables and on parenthesized pipelines (`.A.B`,
  `$x.A`, `(index .M "k").A`), method-style fields with arguments (`.Label "k"`) on
  document classes that define them (docker_shapes);
- pipelines (`a | f b`), parenthesized pipelines, variables (`$x := ...`, `$x = ...`, `$`);
- `if`/`else if`/`else`, `with`/`else with`/`else`, `range` (slices, maps in key order,
  integers; `$i, $v :=`; `else`; `break`/`continue`);
- Go's functions: and, or (short-circuit), not, len, index, slice, print, printf,
  println, eq, ne, lt, le, gt, ge, html, js, urlquery;
- Docker's functions: json, join, split, lower, upper, title, truncate, pad.
Not implemented: define/template/block (named templates, which `--format` never needs).

Values are Python data as json.loads makes it (dict, list, str, int, float, bool, None),
plus dict subclasses with methods (docker_shapes). Deviation from Go, on purpose: an int
and a float compare by value (Go refuses to compare int with float64; JSON documents give
float64 where Docker's typed structs give int, so a strict rule would break `eq .X 0`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ["MISSING", "Template", "TemplateError", "go_sprintf", "go_str"]


class TemplateError(Exception):
    """A template that does not parse, or fails while executing (Go's messages)."""


class _Missing:
    """Go's invalid reflect.Value: a map key that is not there. Prints as <no value>."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()

_FRESH_LIST: Any = object()  # a record field's default: a new empty list each time


def _record(cls):
    """The parse tree's and lexer's records: an __init__ over the annotated fields, in
    order, with the class attributes as defaults. Not @dataclass: its decorator costs
    about half a millisecond a class at import, paid by every `rl ps --format`."""
    # (not inspect.get_annotations: `inspect` is a heavy import; the names are enough)
    names = list(cls.__dict__.get("__annotations__", {}))  # noqa: RUF063
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}

    def __init__(self, *args, **kwargs) -> None:
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}: too many arguments")
        for name, value in zip(names, args, strict=False):
            setattr(self, name, value)
        for name in names[len(args):]:
            if name in kwargs:
                value = kwargs.pop(name)
            elif name in defaults:
                value = defaults[name]
                value = [] if value is _FRESH_LIST else value
            else:
                raise TypeError(f"{cls.__name__}: missing {name}")
            setattr(self, name, value)
        if kwargs:
            raise TypeError(f"{cls.__name__}: unknown {sorted(kwargs)[0]}")

    def __repr__(self) -> str:
        return f"{cls.__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in names)})"

    cls.__init__ = __init__
    cls.__repr__ = __repr__
    return cls
_NOARG = object()  # "no piped value" for a command


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# -- printing values as Go's fmt %v does ------------------------------------------------

def _go_float(x: float) -> str:
    """%v of a float64: the shortest digits that read back the same, in exponent form
    below 1e-4 and from 1e21 on (fmt's rule for %v): "1e+21", "1e-05", "+Inf", "NaN"."""
    from decimal import Decimal

    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1, x) < 0 else "0"
    d = Decimal(repr(x)).normalize()
    sign, digits, dexp = d.as_tuple()
    ds = "".join(map(str, digits))
    e10 = len(ds) - 1 + dexp
    if -4 <= e10 < 21:
        return format(d, "f")
    m = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    return f"{'-' if sign else ''}{m}e{'+' if e10 >= 0 else '-'}{abs(e10):02d}"


def go_str(v: Any) -> str:
    """fmt.Sprint(v) for template values (the %v verb)."""
    if v is MISSING:
        return "<no value>"
    if v is None:
        return "<nil>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, dict):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v[k])}" for k in _sorted_keys(v)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    return str(v)


def _sorted_keys(d: dict) -> list:
    try:
        return sorted(d)
    except TypeError:
        return sorted(d, key=str)


def _printable(v: Any) -> str:
    """What an action prints: a missing value or a nil interface prints <no value>."""
    if v is MISSING or v is None:
        return "<no value>"
    return go_str(v)


def _go_type(v: Any) -> str:
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return getattr(type(v), "go_type", "map[string]interface {}")
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    return type(v).__name__


def truth(v: Any) -> bool:
    """Go's template truth: false, 0, nil and empty strings, slices and maps are false."""
    if v is MISSING or v is None:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


# -- printf -------------------------------------------------------------------------------

_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?([a-zA-Z%])")


def go_quote(s: str) -> str:
    """strconv.Quote: Go's double-quoted string with Go's escapes."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def _pad(s: str, width: int | None, flags: str, zero_ok: bool = False) -> str:
    if width is None or len(s) >= width:
        return s
    if "-" in flags:
        return s + " " * (width - len(s))
    if "0" in flags and zero_ok:
        sign = s[0] if s[:1] in "+- " and s[:1] else ""
        body = s[len(sign):]
        return sign + "0" * (width - len(s)) + body
    return " " * (width - len(s)) + s


def _fmt_one(verb: str, flags: str, width: int | None, prec: int | None, v: Any) -> str:
    bad = f"%!{verb}({_go_type(v)}={go_str(v)})" if v is not None and v is not MISSING \
        else f"%!{verb}(<nil>)"
    if isinstance(v, (list, tuple)) and verb not in "vT":
        return "[" + " ".join(_fmt_one(verb, flags, width, prec, x) for x in v) + "]"
    if verb == "T":
        return _pad(_go_type(v), width, flags)
    if verb == "v":
        if isinstance(v, float) and prec is not None:
            return _pad(_fmt_float(v, "g", flags, prec), width, flags, True)
        if isinstance(v, int) and not isinstance(v, bool):
            return _fmt_one("d", flags, width, prec, v)
        if isinstance(v, float):
            s = _go_float(v)
            if "+" in flags and not s.startswith("-"):
                s = "+" + s
            return _pad(s, width, flags, True)
        return _pad(go_str(v) if v is not MISSING else "<nil>", width, flags)
    if verb in "sq":
        if isinstance(v, str):
            s = v if prec is None else v[:prec]
            if verb == "q":
                s = f"`{s}`" if "#" in flags and "`" not in s and s.isprintable() \
                    else go_quote(s)
            return _pad(s, width, flags)
        if verb == "q" and isinstance(v, int) and not isinstance(v, bool):
            return _pad("'" + go_quote(chr(v))[1:-1].replace("'", "\\'") + "'", width, flags)
        if verb == "s" and isinstance(v, dict):
            return _pad(go_str(v), width, flags)
        return bad
    if verb == "t":
        return _pad(go_str(v), width, flags) if isinstance(v, bool) else bad
    if verb in "dboxXcU":
        if isinstance(v, str) and verb in "xX":
            s = v.encode().hex()
            return _pad(s.upper() if verb == "X" else s, width, flags)
        if not isinstance(v, int) or isinstance(v, bool):
            return bad
        if verb == "c":
            return _pad(chr(v), width, flags)
        if verb == "U":
            return _pad(f"U+{v:04X}", width, flags)
        base = {"d": "d", "b": "b", "o": "o", "x": "x", "X": "X"}[verb]
        s = format(abs(v), base)
        if prec is not None:
            s = s.zfill(prec)
        if "#" in flags and verb in "xXo":
            s = {"x": "0x", "X": "0X", "o": "0"}[verb] + s
        s = ("-" if v < 0 else "+" if "+" in flags else " " if " " in flags else "") + s
        return _pad(s, width, flags, prec is None)
    if verb in "eEfFgG":
        if isinstance(v, int) and not isinstance(v, bool):
            return bad
        if not isinstance(v, float):
            return bad
        return _pad(_fmt_float(v, verb, flags, prec), width, flags, True)
    return f"%!{verb}({_go_type(v)}={go_str(v)})"


def _fmt_float(v: float, verb: str, flags: str, prec: int | None) -> str:
    if math.isinf(v) or math.isnan(v):
        s = _go_float(v)
    elif verb in "gG" and prec is None:
        s = _go_float(v)
        if verb == "G":
            s = s.upper()
    else:
        p = 6 if prec is None else prec
        s = format(v, f".{p}{verb}")  # Go's exponent has two digits at least, as here
    if "+" in flags and not s.startswith(("-", "+")):
        s = "+" + s
    return s


def go_sprintf(fmt: str, args: list[Any]) -> str:
    """fmt.Sprintf with the verbs templates use: %v %s %q %d %x %X %o %b %c %U %t %T
    %e %f %g %%, flags -+# 0, width and precision (numbers or *)."""
    out: list[str] = []
    argi = 0
    pos = 0
    while True:
        j = fmt.find("%", pos)
        if j < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:j])
        m = _VERB.match(fmt, j)
        if not m:
            out.append("%!(NOVERB)")
            pos = len(fmt)
            break
        flags, width_s, prec_s, verb = m.groups()
        pos = m.end()
        if verb == "%":
            out.append("%")
            continue
        width = prec = None
        if width_s == "*":
            if argi < len(args) and isinstance(args[argi], int):
                width = args[argi]
                if width < 0:
                    flags += "-"
                    width = -width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        elif width_s:
            width = int(width_s)
        if prec_s == "*":
            if argi < len(args) and isinstance(args[argi], int):
                prec = args[argi]
            else:
                out.append("%!(BADPREC)")
            argi += 1
        elif prec_s is not None:
            prec = int(prec_s or 0)
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_fmt_one(verb, flags, width, prec, args[argi]))
        argi += 1
    if argi < len(args):
        extra = ", ".join(f"{_go_type(a)}={go_str(a)}" if a is not None else "<nil>"
                          for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _sprint(args: list[Any]) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    for k, a in enumerate(args):
        if k > 0 and not isinstance(a, str) and not isinstance(args[k - 1], str):
            out.append(" ")
        out.append(go_str(a) if a is not MISSING else "<nil>")
    return "".join(out)


# -- functions ----------------------------------------------------------------------------

def _need_str(name: str, v: Any) -> str:
    if isinstance(v, str):
        return v
    raise TemplateError(f"wrong type for value; expected string; got {_go_type(v)}")


def _need_int(name: str, v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise TemplateError(f"wrong type for value; expected int; got {_go_type(v)}")


def _f_len(x: Any) -> int:
    if isinstance(x, str):
        return len(x.encode())
    if isinstance(x, (list, tuple, dict)):
        return len(x)
    raise TemplateError(f"error calling len: len of type {_go_type(x)}")


def _f_index(item: Any, *keys: Any) -> Any:
    for k in keys:
        if item is MISSING or item is None:
            raise TemplateError("error calling index: index of untyped nil")
        if isinstance(item, dict):
            if not isinstance(k, str) and item and all(isinstance(x, str) for x in item):
                raise TemplateError(f"error calling index: value has type {_go_type(k)}; "
                                    "should be string")
            item = item.get(k, MISSING)
        elif isinstance(item, (list, tuple, str)):
            n = _need_int("index", k)
            if not 0 <= n < len(item):
                raise TemplateError(f"error calling index: index out of range: {n}")
            item = item[n] if not isinstance(item, str) else item.encode()[n]
        else:
            raise TemplateError(f"error calling index: can't index item of type "
                                f"{_go_type(item)}")
    return item


def _f_slice(item: Any, *idx: Any) -> Any:
    if not isinstance(item, (str, list, tuple)):
        raise TemplateError(f"error calling slice: can't slice item of type {_go_type(item)}")
    if len(idx) > 2 and isinstance(item, str):
        raise TemplateError("error calling slice: cannot 3-index slice a string")
    n = [_need_int("slice", i) for i in idx]
    lo = n[0] if n else 0
    hi = n[1] if len(n) > 1 else len(item)
    if not 0 <= lo <= hi <= len(item):
        raise TemplateError(f"error calling slice: index out of range: {hi}")
    return item[lo:hi]


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    num = (int, float)
    if isinstance(a, bool) != isinstance(b, bool):
        raise TemplateError("error calling eq: incompatible types for comparison")
    if isinstance(a, num) and isinstance(b, num):
        return a, b
    if type(a) is not type(b):
        raise TemplateError("incompatible types for comparison")
    return a, b


def _f_eq(a: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("error calling eq: missing argument for comparison")
    if isinstance(a, (list, dict)):
        raise TemplateError(f"error calling eq: uncomparable type {_go_type(a)}: {go_str(a)}")
    for b in others:
        if a in (None, MISSING) or b in (None, MISSING):
            if (a in (None, MISSING)) and (b in (None, MISSING)):
                return True
            continue
        try:
            x, y = _comparable(a, b)
        except TemplateError:
            raise TemplateError("error calling eq: incompatible types for comparison") \
                from None
        if x == y:
            return True
    return False


def _order(name: str, a: Any, b: Any) -> tuple[Any, Any]:
    for v in (a, b):
        if not isinstance(v, (int, float, str)) or isinstance(v, bool):
            raise TemplateError(f"error calling {name}: invalid type for comparison")
    if isinstance(a, str) != isinstance(b, str):
        raise TemplateError(f"error calling {name}: incompatible types for comparison")
    if isinstance(a, str):
        return a.encode(), b.encode()
    return a, b


def _f_lt(a, b):
    x, y = _order("lt", a, b)
    return x < y


def _f_le(a, b):
    x, y = _order("le", a, b)
    return x <= y


def _f_gt(a, b):
    x, y = _order("gt", a, b)
    return x > y


def _f_ge(a, b):
    x, y = _order("ge", a, b)
    return x >= y


def _f_html(*args) -> str:
    s = _sprint(list(args))
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&#34;").replace("\0", "\uFFFD"))


def _f_js(*args) -> str:
    s = _sprint(list(args))
    out = []
    for ch in s:
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=":
            out.append(f"\\u{ord(ch):04X}")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _f_urlquery(*args) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_sprint(list(args)))


def go_json(v: Any) -> str:
    """Docker's `json` function: encoding/json with SetEscapeHTML(false), compact."""
    s = json.dumps(_json_ready(v), ensure_ascii=False, separators=(",", ":"),
                   default=_json_default)
    if getattr(type(v), "go_json_escape_html", False):
        # docker/cli marshals its list documents with encoding/json's defaults, which
        # escape <, > and & ("\u003cnone\u003e" in `docker images --format json`)
        s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _json_ready(v: Any) -> Any:
    """Go's encoding/json writes a float64 with an integer value without ".0"."""
    if v is MISSING:
        return None
    if hasattr(v, "resolved"):
        v = v.resolved()
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return int(v)
    if isinstance(v, dict):
        return {k: _json_ready(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_ready(x) for x in v]
    return v


def _json_default(o: Any) -> Any:
    if o is MISSING:
        return None
    raise TypeError(f"not JSON: {type(o).__name__}")


def _go_title(s: str) -> str:
    """strings.Title: upper-case the first letter of each word (a word starts after a
    character that is not a letter, digit, underscore or mark)."""
    out = []
    prev_sep = True
    for ch in s:
        out.append(ch.title() if prev_sep else ch)
        prev_sep = not (ch.isalnum() or ch == "_")
    return "".join(out)


def _f_join(items: Any, sep: Any) -> str:
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
        raise TemplateError(f"error calling join: wrong type for value; expected []string; "
                            f"got {_go_type(items)}")
    return _need_str("join", sep).join(items)


def _f_split(s: Any, sep: Any) -> list[str]:
    s, sep = _need_str("split", s), _need_str("split", sep)
    if sep == "":  # strings.Split with "" splits after each UTF-8 sequence
        return list(s)
    return s.split(sep)


def _f_truncate(s: Any, n: Any) -> str:
    s, n = _need_str("truncate", s), _need_int("truncate", n)
    return s if len(s) < n else s[:n]


def _f_pad(s: Any, prefix: Any, suffix: Any) -> str:
    s = _need_str("pad", s)
    return " " * _need_int("pad", prefix) + s + " " * _need_int("pad", suffix)


FUNCS: dict[str, Callable[..., Any]] = {
    "not": lambda a: not truth(a),
    "len": _f_len,
    "index": _f_index,
    "slice": _f_slice,
    "print": lambda *a: _sprint(list(a)),
    "printf": lambda f, *a: go_sprintf(_need_str("printf", f), list(a)),
    "println": lambda *a: " ".join(go_str(x) if x is not MISSING else "<nil>"
                                   for x in a) + "\n",
    "eq": _f_eq,
    "ne": lambda a, b: not _f_eq(a, b),
    "lt": _f_lt, "le": _f_le, "gt": _f_gt, "ge": _f_ge,
    "html": _f_html, "js": _f_js, "urlquery": _f_urlquery,
    # Docker's (docker/cli templates.basicFunctions)
    "json": go_json,
    "join": _f_join,
    "split": _f_split,
    "lower": lambda s: _need_str("lower", s).lower(),
    "upper": lambda s: _need_str("upper", s).upper(),
    "title": lambda s: _go_title(_need_str("title", s)),
    "truncate": _f_truncate,
    "pad": _f_pad,
}

# For a table's header row, Docker runs the template on the column names with these
# functions instead (templates.HeaderFunctions): each gives back its first argument.
HEADER_FUNCS: dict[str, Callable[..., Any]] = dict(FUNCS)
for _name in ("json", "join", "split", "lower", "upper", "title", "truncate", "pad"):
    HEADER_FUNCS[_name] = lambda v, *_rest: v


# -- lexing -------------------------------------------------------------------------------

@_record
class _Tok:
    kind: str  # field dot var ident str num bool nil ( ) | , := =
    value: Any
    space: bool  # whitespace before it (a field right after a term chains onto it)
    pos: int


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUM = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|"
                  r"(\d[\d_]*)?\.?\d*([eE][+-]?\d+)?)")
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block",
             "break", "continue"}
_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
        "\\": "\\", '"': '"', "'": "'"}


def _line_col(src: str, pos: int) -> str:
    line = src.count("\n", 0, pos) + 1
    return f"{line}:{pos - (src.rfind(chr(10), 0, pos) + 1)}"


def _unquote(src: str, i: int, quote: str) -> tuple[str, int]:
    """A Go interpreted string or char literal starting at src[i] == quote."""
    out = []
    j = i + 1
    while True:
        if j >= len(src) or src[j] == "\n":
            raise TemplateError(f"template: :{_line_col(src, i)}: unterminated quoted string")
        ch = src[j]
        if ch == quote:
            return "".join(out), j + 1
        if ch == "\\":
            nxt = src[j + 1:j + 2]
            if nxt in _ESC:
                out.append(_ESC[nxt])
                j += 2
            elif nxt in ("x", "u", "U"):
                n = {"x": 2, "u": 4, "U": 8}[nxt]
                hexs = src[j + 2:j + 2 + n]
                if len(hexs) != n or not all(c in "0123456789abcdefABCDEF" for c in hexs):
                    raise TemplateError(f"template: :{_line_col(src, j)}: bad escape")
                out.append(chr(int(hexs, 16)))
                j += 2 + n
            elif nxt and nxt in "01234567":
                octs = src[j + 1:j + 4]
                out.append(chr(int(octs, 8)))
                j += 4
            else:
                raise TemplateError(f"template: :{_line_col(src, j)}: unknown escape sequence")
            continue
        out.append(ch)
        j += 1


def _lex_action(src: str, i: int) -> tuple[list[_Tok], int, bool]:
    """Tokens of the action starting at src[i] (just after `{{` and any `- `); returns
    (tokens, index after `}}`, right-trim)."""
    toks: list[_Tok] = []
    space = True
    n = len(src)
    while True:
        if i >= n:
            raise TemplateError(f"template: :{_line_col(src, i)}: unclosed action")
        ch = src[i]
        if ch in " \t\r\n":
            j = i
            while j < n and src[j] in " \t\r\n":
                j += 1
            if src.startswith("-}}", j):
                return toks, j + 3, True
            i = j
            space = True
            continue
        if src.startswith("}}", i):
            return toks, i + 2, False
        start = i
        if ch in "()|,":
            toks.append(_Tok(ch, ch, space, start))
            i += 1
        elif src.startswith(":=", i):
            toks.append(_Tok(":=", ":=", space, start))
            i += 2
        elif ch == "=":
            toks.append(_Tok("=", "=", space, start))
            i += 1
        elif ch == '"':
            s, i = _unquote(src, i, '"')
            toks.append(_Tok("str", s, space, start))
        elif ch == "`":
            j = src.find("`", i + 1)
            if j < 0:
                raise TemplateError(f"template: :{_line_col(src, i)}: unterminated raw quoted "
                                    "string")
            toks.append(_Tok("str", src[i + 1:j], space, start))
            i = j + 1
        elif ch == "'":
            s, i = _unquote(src, i, "'")
            if len(s) != 1:
                raise TemplateError(f"template: :{_line_col(src, start)}: malformed character "
                                    "constant")
            toks.append(_Tok("num", ord(s), space, start))
        elif ch == "." and (i + 1 < n and (src[i + 1].isalpha() or src[i + 1] == "_")):
            m = _IDENT.match(src, i + 1)
            toks.append(_Tok("field", m.group(), space, start))
            i = m.end()
        elif ch == "." and not (i + 1 < n and src[i + 1].isdigit()):
            toks.append(_Tok("dot", ".", space, start))
            i += 1
        elif ch == "$":
            m = _IDENT.match(src, i + 1)
            name = "$" + (m.group() if m else "")
            toks.append(_Tok("var", name, space, start))
            i = m.end() if m else i + 1
        elif ch.isdigit() or (ch in "+-." and i + 1 < n and src[i + 1].isdigit()):
            m = _NUM.match(src, i)
            text = m.group().replace("_", "")
            i = m.end()
            try:
                low = text.lower().lstrip("+-")
                if low.startswith(("0x", "0b", "0o")):
                    val: Any = int(text, 0)
                elif re.fullmatch(r"[+-]?\d+", text):
                    val = int(text, 8) if len(low) > 1 and low.startswith("0") else int(text)
                else:
                    val = float(text)
            except ValueError:
                raise TemplateError(f"template: :{_line_col(src, start)}: bad number syntax: "
                                    f"{text!r}") from None
            if i < n and (src[i].isalnum() or src[i] == "_"):
                raise TemplateError(f"template: :{_line_col(src, start)}: bad number syntax: "
                                    f"{src[start:i + 1]!r}")
            toks.append(_Tok("num", val, space, start))
        elif ch.isalpha() or ch == "_":
            m = _IDENT.match(src, i)
            word = m.group()
            i = m.end()
            if word in ("true", "false"):
                toks.append(_Tok("bool", word == "true", space, start))
            elif word == "nil":
                toks.append(_Tok("nil", None, space, start))
            else:
                toks.append(_Tok("ident", word, space, start))
        else:
            raise TemplateError(f"template: :{_line_col(src, i)}: unexpected {ch!r} in "
                                "command")
        space = False


def _items(src: str) -> list[tuple]:
    """The template as ("text", str) and ("action", tokens, pos) items, with trimming."""
    items: list[tuple] = []
    pos = 0
    trim_next = False
    while True:
        j = src.find("{{", pos)
        text = src[pos:] if j < 0 else src[pos:j]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if j < 0:
            if text:
                items.append(("text", text))
            return items
        k = j + 2
        if src.startswith("-", k) and src[k + 1:k + 2] in (" ", "\t", "\r", "\n"):
            text = text.rstrip(" \t\r\n")
            k += 2
        if text:
            items.append(("text", text))
        # comment
        kk = k
        while kk < len(src) and src[kk] in " \t\r\n" and k != j + 2:
            kk += 1
        if src.startswith("/*", kk):
            end = src.find("*/", kk + 2)
            if end < 0:
                raise TemplateError(f"template: :{_line_col(src, j)}: unclosed comment")
            rest = end + 2
            trim_next = False
            if src.startswith(" -}}", rest) or src.startswith("\t-}}", rest) \
                    or src.startswith("\n-}}", rest):
                trim_next = True
                rest += 4
            elif src.startswith("}}", rest):
                rest += 2
            else:
                raise TemplateError(f"template: :{_line_col(src, j)}: comment ends before "
                                    "closing delimiter")
            pos = rest
            continue
        toks, pos, trim_next = _lex_action(src, k)
        items.append(("action", toks, j))


# -- parse tree ---------------------------------------------------------------------------

@_record
class _Field:  # .A.B on dot, or on a receiver node (a variable, a parenthesized pipeline)
    names: list[str]
    receiver: Any = None
    text: str = ""


@_record
class _Var:
    name: str


@_record
class _Dot:
    pass


@_record
class _Lit:
    value: Any


@_record
class _Func:
    name: str


@_record
class _Cmd:
    args: list[Any]


@_record
class _Pipe:
    cmds: list[_Cmd]
    decl: list[str] = _FRESH_LIST
    assign: bool = False  # `=` rather than `:=`
    text: str = ""


@_record
class _Action:
    pipe: _Pipe


@_record
class _Text:
    text: str


@_record
class _Branch:  # if / with
    kind: str
    pipe: _Pipe
    body: list[Any]
    else_body: list[Any] | None


@_record
class _Range:
    pipe: _Pipe
    body: list[Any]
    else_body: list[Any] | None


@_record
class _Loop:
    kind: str  # break / continue


class _Parser:
    def __init__(self, src: str, funcs: dict) -> None:
        self.src = src
        self.funcs = funcs
        self.items = _items(src)
        self.i = 0
        self.range_depth = 0

    def err(self, pos: int, msg: str) -> TemplateError:
        return TemplateError(f"template: :{_line_col(self.src, pos)}: {msg}")

    def parse(self) -> list[Any]:
        body, term = self.parse_list()
        if term is not None:
            raise self.err(term[2], f"unexpected {{{{{term[1][0].value}}}}}")
        return body

    def parse_list(self) -> tuple[list[Any], tuple | None]:
        nodes: list[Any] = []
        while self.i < len(self.items):
            item = self.items[self.i]
            self.i += 1
            if item[0] == "text":
                nodes.append(_Text(item[1]))
                continue
            toks, pos = item[1], item[2]
            if not toks:
                raise self.err(pos, "missing value for command")
            first = toks[0]
            kw = first.value if first.kind == "ident" and first.value in _KEYWORDS else None
            if kw in ("end", "else"):
                return nodes, item
            if kw in ("if", "with"):
                nodes.append(self.parse_branch(kw, toks[1:], pos))
            elif kw == "range":
                nodes.append(self.parse_range(toks[1:], pos))
            elif kw in ("break", "continue"):
                if self.range_depth == 0:
                    raise self.err(pos, f"{{{{{kw}}}}} outside {{{{range}}}}")
                if len(toks) > 1:
                    raise self.err(pos, f"unexpected {toks[1].value} in {{{{{kw}}}}}")
                nodes.append(_Loop(kw))
            elif kw in ("define", "template", "block"):
                raise self.err(pos, f"{{{{{kw}}}}} (named templates) is not supported by rl")
            else:
                nodes.append(_Action(self.parse_pipe(toks, pos, decl_ok=True)))
        return nodes, None

    def expect_end(self, term: tuple | None, pos: int, what: str) -> None:
        if term is None:
            raise self.err(pos, f"unexpected EOF: {{{{{what}}}}} has no {{{{end}}}}")
        if term[1][0].value != "end" or len(term[1]) > 1:
            raise self.err(term[2], f"unexpected {term[1][0].value} in {what}")

    def parse_branch(self, kind: str, toks: list[_Tok], pos: int) -> _Branch:
        pipe = self.parse_pipe(toks, pos, decl_ok=True)
        body, term = self.parse_list()
        if term is None:
            raise self.err(pos, f"unexpected EOF: {{{{{kind}}}}} has no {{{{end}}}}")
        ttoks = term[1]
        if ttoks[0].value == "end":
            self.expect_end(term, pos, kind)
            return _Branch(kind, pipe, body, None)
        # else, else if, else with
        if len(ttoks) > 1 and ttoks[1].kind == "ident" and ttoks[1].value in ("if", "with"):
            # `{{else if x}}` is `{{else}}{{if x}}...{{end}}{{end}}` sharing one end
            nested = self.parse_branch(ttoks[1].value, ttoks[2:], term[2])
            return _Branch(kind, pipe, body, [nested])
        if len(ttoks) > 1:
            raise self.err(term[2], f"unexpected {ttoks[1].value} in else")
        else_body, term2 = self.parse_list()
        self.expect_end(term2, pos, kind)
        return _Branch(kind, pipe, body, else_body)

    def parse_range(self, toks: list[_Tok], pos: int) -> _Range:
        pipe = self.parse_pipe(toks, pos, decl_ok=True, range_decl=True)
        self.range_depth += 1
        body, term = self.parse_list()
        self.range_depth -= 1
        if term is None:
            raise self.err(pos, "unexpected EOF: {{range}} has no {{end}}")
        else_body = None
        if term[1][0].value == "else":
            if len(term[1]) > 1:
                raise self.err(term[2], f"unexpected {term[1][1].value} in else")
            else_body, term = self.parse_list()
        self.expect_end(term, pos, "range")
        return _Range(pipe, body, else_body)

    def parse_pipe(self, toks: list[_Tok], pos: int, decl_ok: bool = False,
                   range_decl: bool = False) -> _Pipe:
        text = self.src[pos:toks[-1].pos + 1] if toks else ""
        decl: list[str] = []
        assign = False
        if decl_ok and len(toks) >= 2 and toks[0].kind == "var":
            if toks[1].kind in (":=", "="):
                decl, assign, toks = [toks[0].value], toks[1].kind == "=", toks[2:]
            elif range_decl and len(toks) >= 4 and toks[1].kind == "," \
                    and toks[2].kind == "var" and toks[3].kind in (":=", "="):
                decl = [toks[0].value, toks[2].value]
                assign, toks = toks[3].kind == "=", toks[4:]
        if not toks:
            raise self.err(pos, "missing value for command")
        cmds: list[_Cmd] = []
        k = 0
        while k < len(toks):
            args: list[Any] = []
            while k < len(toks) and toks[k].kind != "|":
                node, k = self.operand(toks, k, pos)
                args.append(node)
            if not args:
                raise self.err(pos, "missing command")
            if isinstance(args[0], _Lit) and args[0].value is None and len(args) == 1 \
                    and toks[k - 1].kind == "nil":
                raise self.err(pos, "nil is not a command")
            cmds.append(_Cmd(args))
            if k < len(toks):  # "|"
                k += 1
                if k >= len(toks):
                    raise self.err(pos, "missing command after |")
        for c in cmds[1:]:
            if not isinstance(c.args[0], (_Func, _Field)) and not (
                    isinstance(c.args[0], _Var)):
                raise self.err(pos, "non executable command in pipeline stage")
        return _Pipe(cmds, decl, assign, text)

    def operand(self, toks: list[_Tok], k: int, pos: int) -> tuple[Any, int]:
        t = toks[k]
        if t.kind == "field":
            names = [t.value]
            k += 1
            while k < len(toks) and toks[k].kind == "field" and not toks[k].space:
                names.append(toks[k].value)
                k += 1
            return _Field(names, None, "." + ".".join(names)), k
        if t.kind == "dot":
            node: Any = _Dot()
            k += 1
        elif t.kind == "var":
            node = _Var(t.value)
            k += 1
        elif t.kind in ("str", "num", "bool", "nil"):
            node = _Lit(t.value)
            k += 1
        elif t.kind == "ident":
            if t.value in _KEYWORDS:
                raise self.err(t.pos, f"unexpected <{t.value}> in command")
            if t.value not in self.funcs and t.value not in ("and", "or"):
                raise self.err(t.pos, f'function "{t.value}" not defined')
            node = _Func(t.value)
            k += 1
        elif t.kind == "(":
            depth = 0
            j = k
            while j < len(toks):
                if toks[j].kind == "(":
                    depth += 1
                elif toks[j].kind == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(toks):
                raise self.err(t.pos, "unclosed left paren")
            node = self.parse_pipe(toks[k + 1:j], t.pos, decl_ok=True)
            k = j + 1
        else:
            raise self.err(t.pos, f"unexpected {t.value!r} in operand")
        names = []
        while k < len(toks) and toks[k].kind == "field" and not toks[k].space:
            names.append(toks[k].value)
            k += 1
        if names:
            if isinstance(node, (_Lit, _Func)):
                raise self.err(t.pos, "unexpected . after term")
            node = _Field(names, node, "." + ".".join(names))
        return node, k


# -- execution ----------------------------------------------------------------------------

class _Exec:
    def __init__(self, funcs: dict, root: Any) -> None:
        self.funcs = funcs
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.out: list[str] = []

    def var(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise TemplateError(f"undefined variable: {name}")

    def set_var(self, name: str, value: Any) -> None:
        for k in range(len(self.vars) - 1, -1, -1):
            if self.vars[k][0] == name:
                self.vars[k] = (name, value)
                return
        raise TemplateError(f"undefined variable: {name}")

    def walk(self, nodes: list[Any], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Action):
                v = self.pipe(node.pipe, dot)
                if not node.pipe.decl:
                    self.out.append(_printable(v))
            elif isinstance(node, _Branch):
                mark = len(self.vars)
                v = self.pipe(node.pipe, dot)
                if truth(v):
                    self.walk(node.body, v if node.kind == "with" else dot)
                elif node.else_body is not None:
                    self.walk(node.else_body, dot)
                del self.vars[mark:]
            elif isinstance(node, _Range):
                self.range(node, dot)
            elif isinstance(node, _Loop):
                raise _Break() if node.kind == "break" else _Continue()

    def range(self, node: _Range, dot: Any) -> None:
        mark = len(self.vars)
        decl = node.pipe.decl
        node.pipe.decl = []  # the pipeline's value is what we iterate, not a variable
        try:
            value = self.pipe(node.pipe, dot)
        finally:
            node.pipe.decl = decl
        if isinstance(value, dict):
            pairs = [(k, value[k]) for k in _sorted_keys(value)]
        elif isinstance(value, (list, tuple)):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            pairs = []
        else:
            raise TemplateError(f"range can't iterate over {go_str(value)}")
        if not pairs:
            if node.else_body is not None:
                self.walk(node.else_body, dot)
            del self.vars[mark:]
            return
        for key, elem in pairs:
            if len(decl) == 1:
                self.vars.append((decl[0], elem))
            elif len(decl) == 2:
                self.vars.append((decl[0], key))
                self.vars.append((decl[1], elem))
            inner = len(self.vars)
            try:
                self.walk(node.body, elem)
            except _Break:
                del self.vars[mark:]
                break
            except _Continue:
                pass
            del self.vars[inner:]
            del self.vars[mark:]
        del self.vars[mark:]

    def pipe(self, p: _Pipe, dot: Any) -> Any:
        value: Any = _NOARG
        for cmd in p.cmds:
            value = self.cmd(cmd, dot, value)
        for name in p.decl:
            if p.assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def cmd(self, c: _Cmd, dot: Any, final: Any) -> Any:
        first = c.args[0]
        rest = c.args[1:]
        if isinstance(first, _Func):
            if first.name in ("and", "or"):
                return self.and_or(first.name, rest, dot, final)
            args = [self.arg(a, dot) for a in rest]
            if final is not _NOARG:
                args.append(final)
            fn = self.funcs[first.name]
            try:
                return fn(*args)
            except TemplateError:
                raise
            except TypeError:
                raise TemplateError(f"wrong number of args for {first.name}: got "
                                    f"{len(args)}") from None
        if isinstance(first, _Field):
            args = [self.arg(a, dot) for a in rest]
            if final is not _NOARG:
                args.append(final)
            return self.field(first, dot, args)
        if rest or final is not _NOARG:
            what = "nil" if isinstance(first, _Lit) and first.value is None else "non-function"
            raise TemplateError(f"can't give argument to {what} {self.describe(first)}")
        return self.arg(first, dot)

    def describe(self, node: Any) -> str:
        if isinstance(node, _Lit):
            return go_quote(node.value) if isinstance(node.value, str) else go_str(node.value)
        if isinstance(node, _Var):
            return node.name
        return "."

    def and_or(self, name: str, rest: list[Any], dot: Any, final: Any) -> Any:
        thunks = [lambda a=a: self.arg(a, dot) for a in rest]
        if final is not _NOARG:
            thunks.append(lambda: final)
        if not thunks:
            raise TemplateError(f"wrong number of args for {name}: want at least 1 got 0")
        v: Any = None
        for t in thunks:
            v = t()
            if truth(v) != (name == "and"):
                return v
        return v

    def arg(self, node: Any, dot: Any) -> Any:
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Lit):
            return node.value
        if isinstance(node, _Var):
            return self.var(node.name)
        if isinstance(node, _Field):
            return self.field(node, dot, [])
        if isinstance(node, _Pipe):
            mark = len(self.vars)
            v = self.pipe(node, dot)
            del self.vars[mark:]
            return v
        if isinstance(node, _Func):
            if node.name in ("and", "or"):
                return self.and_or(node.name, [], dot, _NOARG)
            try:
                return self.funcs[node.name]()
            except TypeError:
                raise TemplateError(f"wrong number of args for {node.name}: got 0") from None
        raise TemplateError(f"can't evaluate {node!r}")

    def field(self, node: _Field, dot: Any, args: list[Any]) -> Any:
        recv = dot if node.receiver is None else self.arg(node.receiver, dot)
        names = node.names
        for k, name in enumerate(names):
            last = k == len(names) - 1
            recv = lookup_field(recv, name, args if last else [], node.text)
        return recv

    def run(self, nodes: list[Any], dot: Any) -> str:
        self.walk(nodes, dot)
        return "".join(self.out)


def lookup_field(recv: Any, name: str, args: list[Any], text: str = "") -> Any:
    """`.name` on recv as Go does on a map (or a struct with methods, for the dict
    subclasses in docker_shapes that define `go_methods` and `go_strict`)."""
    where = f"at <{text or '.' + name}>: "
    if recv is MISSING:
        return MISSING  # Go: a field of a missing key is missing too (missingkey=default)
    if recv is None:
        raise TemplateError(f"{where}nil pointer evaluating interface {{}}.{name}")
    if isinstance(recv, dict):
        methods = getattr(type(recv), "go_methods", ())
        if name in methods:
            try:
                return getattr(recv, name)(*args)
            except TypeError:
                raise TemplateError(f"{where}wrong number of args for {name}: got "
                                    f"{len(args)}") from None
        if name in recv:
            if args:
                raise TemplateError(f"{where}{name} has arguments but cannot be invoked as "
                                    "function")
            return recv[name]
        if getattr(type(recv), "go_strict", False):
            raise TemplateError(f"{where}can't evaluate field {name} in type "
                                f"{_go_type(recv)}")
        if args:
            raise TemplateError(f"{where}{name} is not a method but has arguments")
        return MISSING
    raise TemplateError(f"{where}can't evaluate field {name} in type {_go_type(recv)}")


class Template:
    """A parsed template: `Template(text).execute(data)` returns the output as a string.
    `header=True` parses it for Docker's table header row (the functions give back their
    argument)."""

    def __init__(self, text: str, *, header: bool = False,
                 funcs: dict[str, Callable[..., Any]] | None = None) -> None:
        self.text = text
        self.funcs = dict(HEADER_FUNCS if header else FUNCS)
        if funcs:
            self.funcs.update(funcs)
        self.nodes = _Parser(text, self.funcs).parse()

    def execute(self, data: Any) -> str:
        try:
            return _Exec(self.funcs, data).run(self.nodes, data)
        except (_Break, _Continue):  # cannot happen: the parser refuses them outside range
            raise TemplateError("break or continue outside range") from None
        except RecursionError:
            raise TemplateError("template nests too deeply") from None

"""Variables in compose files, as the Compose Specification defines them: `$VAR`, `${VAR}`,
`${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`,
`${VAR+alt}`, `$$` for a literal `$`; defaults may hold variables themselves. Also the
.env file format (KEY=VALUE, `export `, quotes, comments).

Hand-written: the only Python packages that do this (python-dotenv's expander, the
abandoned docker-compose 1.x) differ from the spec in nested defaults and `?` errors."""

from __future__ import annotations

import re

from rootless.compose.errors import ComposeError, path_text, where

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Missing(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def substitute(text: str, env: dict[str, str]) -> str:
    """One string with its variables replaced; _Missing for `?` on an unset variable."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$":
            out.append(c)
            i += 1
            continue
        if i + 1 < n and text[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if i + 1 < n and text[i + 1] == "{":
            end = _closing(text, i + 2)
            if end < 0:
                raise _Missing(f"invalid interpolation format for {text!r}: no closing '}}'")
            out.append(_braced(text[i + 2:end], env, text))
            i = end + 1
            continue
        m = _NAME.match(text, i + 1)
        if m:
            out.append(env.get(m.group(), ""))
            i = m.end()
            continue
        out.append("$")  # a lone `$` stays, as compose-go does
        i += 1
    return "".join(out)


def _closing(text: str, start: int) -> int:
    """The index of the `}` closing a `${` whose body starts at `start` (nesting counted)."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _braced(body: str, env: dict[str, str], whole: str) -> str:
    m = _NAME.match(body)
    if not m:
        raise _Missing(f"invalid interpolation format for {whole!r}")
    name, rest = m.group(), body[m.end():]
    value = env.get(name)
    if not rest:
        return value or ""
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op):]
            break
    else:
        raise _Missing(f"invalid interpolation format for {whole!r}")
    unset_or_empty = value is None or (op.startswith(":") and value == "")
    kind = op[-1]
    if kind == "-":
        return substitute(arg, env) if unset_or_empty else value
    if kind == "+":
        return "" if unset_or_empty else substitute(arg, env)
    if unset_or_empty:  # ?
        msg = substitute(arg, env) if arg else ""
        state = "unset or empty" if op == ":?" else "unset"
        raise _Missing(f"required variable {name} is {state}" + (f": {msg}" if msg else ""))
    return value


def interpolate(doc, env: dict[str, str], file: str, path: list | None = None):
    """Every string value (never a key) of a loaded YAML document, substituted."""
    path = path or []
    if isinstance(doc, dict):
        return {k: (v if str(k).startswith("x-") and not path else
                    interpolate(v, env, file, [*path, k])) for k, v in doc.items()}
    if isinstance(doc, list):
        return [interpolate(v, env, file, [*path, i]) for i, v in enumerate(doc)]
    if isinstance(doc, str):
        try:
            return substitute(doc, env)
        except _Missing as exc:
            raise ComposeError(f"{where(file, path_text(path))}: {exc.message}") from None
    return doc


def parse_env_file(text: str, file: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """A .env file: `KEY=VALUE` lines, `export ` allowed, `#` comments, single quotes
    literal, double quotes with \\n escapes and interpolation, unquoted values interpolated
    (against `env` and the keys above them) and cut at ` #`."""
    out: dict[str, str] = {}
    scope = dict(env or {})
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not _NAME.fullmatch(key):
            raise ComposeError(f"{file}: line {no}: invalid variable name {key!r}")
        if not sep:  # a bare name takes the environment's value, if any
            if key in scope:
                out[key] = scope[key]
            continue
        value = value.strip()
        if value[:1] == "'" and value.endswith("'") and len(value) > 1:
            value = value[1:-1]
        else:
            if value[:1] == '"' and value.endswith('"') and len(value) > 1:
                value = value[1:-1].replace("\\n", "\n").replace('\\"', '"')
            else:
                value = value.split(" #", 1)[0].rstrip()
            try:
                value = substitute(value, scope)
            except _Missing as exc:
                raise ComposeError(f"{file}: line {no}: {exc.message}") from None
        out[key] = value
        scope[key] = value
    return out

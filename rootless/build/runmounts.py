"""`RUN --mount=...` specs, and the `--secret`/`--ssh` build flags, parsed with BuildKit's
rules (dockerfile2llb's commands_runmount.go): CSV of KEY=VALUE, `type` bind (default),
cache, tmpfs, secret or ssh. Parsing only; the builder (rootless/engine/buildmounts.py)
prepares what each mount needs. Errors are RlErrors with the reason and the fix.
"""

from __future__ import annotations

import csv
import os
import posixpath
from dataclasses import dataclass

from rootless.errors import InvalidArgument

TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING = ("shared", "private", "locked")


@dataclass
class RunMount:
    type: str
    target: str | None = None
    source: str | None = None  # a path in `from` (bind, cache) or of the context
    from_: str | None = None
    readonly: bool = False
    id: str | None = None
    sharing: str = "shared"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    required: bool = False
    env: str | None = None  # secret: also (or instead) in this environment variable
    size: int | None = None  # tmpfs: bytes


def _bool(key: str, value: str, spec: str) -> bool:
    v = value.lower()
    if v in ("", "1", "true"):
        return True
    if v in ("0", "false"):
        return False
    raise InvalidArgument(f"--mount={spec}: {key}={value!r} is not a boolean")


def _int(key: str, value: str, spec: str, base: int = 10) -> int:
    try:
        n = int(value, base)
    except ValueError:
        raise InvalidArgument(f"--mount={spec}: {key}={value!r} is not a number"
                              + (" (octal)" if base == 8 else "")) from None
    if n < 0:
        raise InvalidArgument(f"--mount={spec}: {key} must not be negative")
    return n


def _size(value: str, spec: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    v = value.strip().lower().removesuffix("b")
    mult = units.get(v[-1:], 1)
    try:
        return int(float(v[:-1] if v[-1:] in units else v) * mult)
    except ValueError:
        raise InvalidArgument(f"--mount={spec}: size={value!r} is not a size") from None


def _target(value: str, spec: str) -> str:
    if not value.startswith("/"):
        # BuildKit resolves a relative target against the working dir; the builder does.
        return value
    if ".." in value.split("/"):
        raise InvalidArgument(f"--mount={spec}: target {value!r} must not contain '..'")
    return posixpath.normpath(value)


def parse(spec: str) -> RunMount:
    """One `RUN --mount` value."""
    try:
        fields = next(csv.reader([spec]))
    except (csv.Error, StopIteration):
        raise InvalidArgument(f"--mount={spec}: not a comma-separated list of KEY=VALUE") \
            from None
    kv: list[tuple[str, str, bool]] = []
    mtype = "bind"
    for f in fields:
        key, sep, value = f.partition("=")
        key = key.strip().lower()
        if key == "type":
            mtype = value.strip().lower()
        else:
            kv.append((key, value.strip(), bool(sep)))
    if mtype not in TYPES:
        raise InvalidArgument(f"--mount={spec}: unknown mount type {mtype!r}",
                              f"use one of {', '.join(TYPES)}")
    m = RunMount(type=mtype, readonly=mtype in ("bind", "secret", "ssh"))
    for key, value, has in kv:
        if key in ("target", "dst", "destination"):
            m.target = _target(value, spec)
        elif key in ("source", "src"):
            m.source = value
        elif key == "from":
            m.from_ = value
        elif key in ("readonly", "ro"):
            m.readonly = _bool(key, value, spec)
        elif key in ("readwrite", "rw"):
            m.readonly = not _bool(key, value, spec)
        elif key == "id" and mtype in ("cache", "secret", "ssh"):
            m.id = value
        elif key == "sharing" and mtype == "cache":
            if value not in SHARING:
                raise InvalidArgument(f"--mount={spec}: sharing={value!r}",
                                      "use shared, private or locked")
            m.sharing = value
        elif key == "mode" and mtype in ("cache", "secret", "ssh"):
            m.mode = _int(key, value, spec, 8)
        elif key in ("uid", "gid") and mtype in ("cache", "secret", "ssh"):
            setattr(m, key, _int(key, value, spec))
        elif key == "required" and mtype in ("secret", "ssh"):
            m.required = _bool(key, value, spec)
        elif key == "env" and mtype == "secret":
            m.env = value
        elif key in ("size", "tmpfs-size") and mtype == "tmpfs":
            m.size = _size(value, spec)
        elif not has:
            raise InvalidArgument(f"--mount={spec}: {key!r} is not KEY=VALUE")
        else:
            raise InvalidArgument(f"--mount={spec}: unexpected key {key!r} for type={mtype}")
    if mtype == "secret":
        if not m.id:
            if not m.target:
                raise InvalidArgument(f"--mount={spec}: a secret needs id= (or target=)")
            m.id = posixpath.basename(m.target)
        if not m.target and not m.env:
            m.target = f"/run/secrets/{m.id}"
        if m.mode is None:
            m.mode = 0o400
    elif mtype == "ssh":
        m.id = m.id or "default"
        m.target = m.target or "/run/buildkit/ssh_agent.0"
        if m.mode is None:
            m.mode = 0o600
    elif not m.target:
        raise InvalidArgument(f"--mount={spec}: target= is required for type={mtype}")
    if mtype == "cache":
        m.id = m.id or m.target
        if m.mode is None:
            m.mode = 0o755
    if m.target == "/":
        raise InvalidArgument(f"--mount={spec}: the target can't be '/'")
    return m


def parse_secret(spec: str) -> tuple[str, bytes]:
    """`--secret id=NAME[,src=FILE|env=VAR][,type=file|env]` -> (id, content). As buildx:
    with neither src nor env, the variable named like the id when it is set, else the file
    named like the id."""
    kv: dict[str, str] = {}
    for f in next(csv.reader([spec]), []):
        key, sep, value = f.partition("=")
        key = key.strip().lower()
        if not sep:
            raise InvalidArgument(f"--secret {spec!r}: {key!r} is not KEY=VALUE",
                                  "write --secret id=NAME,src=FILE or id=NAME,env=VAR")
        kv[{"source": "src"}.get(key, key)] = value
    sid = kv.pop("id", "")
    kind = kv.pop("type", None)
    src, env = kv.pop("src", None), kv.pop("env", None)
    if kv:
        raise InvalidArgument(f"--secret {spec!r}: unexpected key {sorted(kv)[0]!r}",
                              "keys are id, src (or source), env and type")
    if kind == "env" and src is not None and env is None:
        src, env = None, src
    if not sid:
        sid = env or (os.path.basename(src) if src else "")
    if not sid:
        raise InvalidArgument(f"--secret {spec!r}: no id", "write --secret id=NAME,src=FILE")
    if src is None and env is None:
        env = sid if kind != "file" and sid in os.environ else None
        src = None if env else sid
    if env is not None:
        if env not in os.environ:
            raise InvalidArgument(f"--secret {spec!r}: the environment variable {env} is "
                                  "not set")
        return sid, os.environ[env].encode()
    try:
        with open(src, "rb") as f:  # type: ignore[arg-type]
            return sid, f.read()
    except OSError as exc:
        raise InvalidArgument(f"--secret {spec!r}: cannot read {src}: {exc.strerror}",
                              "give a readable file with src=") from None


def parse_ssh(spec: str) -> tuple[str, str]:
    """`--ssh default` (the agent of $SSH_AUTH_SOCK) or `--ssh ID=SOCKET` -> (id, socket)."""
    sid, sep, path = spec.partition("=")
    sid = sid.strip() or "default"
    if not sep or not path:
        path = os.environ.get("SSH_AUTH_SOCK", "")
        if not path:
            raise InvalidArgument(f"--ssh {spec}: SSH_AUTH_SOCK is not set",
                                  "start an agent (eval $(ssh-agent)) or give --ssh ID=SOCKET")
    path = path.split(",")[0]
    if not os.path.exists(path):
        raise InvalidArgument(f"--ssh {spec}: {path}: no such socket")
    import stat

    if not stat.S_ISSOCK(os.stat(path).st_mode):
        raise InvalidArgument(f"--ssh {spec}: {path} is not a socket (key files are not "
                              "supported: give an agent's socket)",
                              "ssh-add the key to an agent and pass --ssh default")
    return sid, os.path.abspath(path)

"""A container's mounts as the engine takes them (`Mount`, a typed record), and the
parsers of Docker's CLI syntax for them (`-v`, `--mount`, `--tmpfs`), with Docker's rules.

Every front end gives RunOptions.mounts as `Mount`s: the CLI through the parsers here, the
API from HostConfig.Mounts (Binds and Tmpfs are Docker's CLI syntax in the JSON too, so
they go through the parsers), compose from its long syntax. `checked(m)` applies the same
rules to a record built by hand; the engine calls it for every mount.

- `-v /host:/ctr[:opts]` is a bind mount; `-v name:/ctr[:opts]` a named volume (created on
  first use); `-v /ctr` an anonymous volume. A source that is neither absolute nor a valid
  volume name (`./dir`, `a/b`) is refused as Docker refuses it.
- `--mount type=bind|volume|tmpfs,source=..,target=..,readonly,...` (CSV, Docker's keys).
- `--tmpfs /ctr[:size=64m,mode=1777,...]`.
Targets must be absolute, not `/`, without `..` components or empty parts.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from rootless.errors import InvalidArgument
from rootless.store.volumes import validate_name

PROPAGATIONS = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
# Accepted for compatibility and meaningless here: SELinux relabel, macOS consistency.
NOOP_MODES = {"z", "Z", "consistent", "cached", "delegated"}


@dataclass
class Mount:
    """One mount of a new container."""

    type: str  # "bind", "volume" or "tmpfs"
    target: str
    source: str | None = None  # host path (bind), volume name (volume; None = anonymous)
    readonly: bool = False
    nocopy: bool = False
    propagation: str = "rprivate"
    tmpfs_options: list[str] = field(default_factory=list)
    create_source: bool = False  # -v creates a missing host dir; --mount refuses it

    def as_docker(self) -> dict:
        return {"Type": self.type, "Source": self.source or "", "Destination": self.target,
                "RW": not self.readonly, "Propagation": self.propagation}


def _check_target(target: str, spec: str) -> str:
    if not target:
        raise InvalidArgument(f"invalid mount spec {spec!r}: empty container path")
    if not target.startswith("/"):
        raise InvalidArgument(f"invalid mount spec {spec!r}: container path {target!r} "
                              "must be absolute")
    parts = target.split("/")[1:]
    if ".." in parts:
        raise InvalidArgument(f"invalid mount spec {spec!r}: container path {target!r} "
                              "must not contain '..'")
    clean = posixpath.normpath(target)
    if clean == "/":
        raise InvalidArgument(f"invalid mount spec {spec!r}: the container path can't be '/'")
    return clean


def _source_kind(source: str, spec: str) -> str:
    if source.startswith("/"):
        if ".." in source.split("/"):
            raise InvalidArgument(f"invalid mount spec {spec!r}: host path {source!r} "
                                  "must not contain '..'")
        return "bind"
    try:
        validate_name(source)
    except InvalidArgument as exc:
        raise InvalidArgument(
            f"invalid mount spec {spec!r}: {source!r} is neither an absolute host path nor "
            "a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)",
            "give host directories as absolute paths, e.g. -v \"$PWD/dir:/dir\"") from exc
    return "volume"


def parse_volume(spec: str) -> Mount:
    """One `-v`/`--volume` value."""
    parts = spec.split(":")
    if any(p == "" for p in parts) or len(parts) > 3:
        raise InvalidArgument(f"invalid volume spec {spec!r}: expected "
                              "[SOURCE:]CONTAINER-PATH[:OPTIONS] with no empty part")
    if len(parts) == 1:
        return Mount("volume", _check_target(parts[0], spec))
    source, target = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) == 3 else []
    req = Mount(_source_kind(source, spec), _check_target(target, spec), source)
    if req.type == "bind":
        req.source = posixpath.normpath(source)
        req.create_source = True
    for opt in opts:
        if opt == "ro":
            req.readonly = True
        elif opt == "rw":
            req.readonly = False
        elif opt == "nocopy":
            req.nocopy = True
        elif opt in PROPAGATIONS:
            req.propagation = opt
        elif opt in NOOP_MODES:
            pass
        else:
            raise InvalidArgument(f"invalid volume spec {spec!r}: unknown option {opt!r}",
                                  "options are ro, rw, nocopy, z, Z and propagation modes")
    return req


def _bool(value: str, key: str, spec: str) -> bool:
    v = value.lower()
    if v in ("", "1", "true"):
        return True
    if v in ("0", "false"):
        return False
    raise InvalidArgument(f"invalid --mount {spec!r}: {key}={value!r} is not a boolean")


def parse_mount(spec: str) -> Mount:
    """One `--mount` value."""
    import csv  # only here: `rl run` without --mount does not pay for it

    try:
        fields = next(csv.reader([spec]))
    except (csv.Error, StopIteration) as exc:
        raise InvalidArgument(f"invalid --mount {spec!r}: {exc}") from exc
    kv: dict[str, str] = {}
    for f in fields:
        key, sep, value = f.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro", "volume-nocopy") and not sep:
            value = "true"
        elif not sep:
            raise InvalidArgument(f"invalid --mount {spec!r}: invalid field {f!r}, "
                                  "expected KEY=VALUE")
        kv[key] = value
    mtype = kv.pop("type", "volume")
    if mtype not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid --mount {spec!r}: type {mtype!r} is not supported",
                              "use type=bind, type=volume or type=tmpfs")
    target = None
    for key in ("target", "destination", "dst"):
        if key in kv:
            target = kv.pop(key)
    if target is None:
        raise InvalidArgument(f"invalid --mount {spec!r}: target is required")
    source = None
    for key in ("source", "src"):
        if key in kv:
            source = kv.pop(key)
    req = Mount(mtype, _check_target(target, spec), source or None)
    for key, value in kv.items():
        if key in ("readonly", "ro"):
            req.readonly = _bool(value, key, spec)
        elif key == "bind-propagation" and mtype == "bind":
            if value not in PROPAGATIONS:
                raise InvalidArgument(f"invalid --mount {spec!r}: bad propagation {value!r}")
            req.propagation = value
        elif key == "volume-nocopy" and mtype == "volume":
            req.nocopy = _bool(value, key, spec)
        elif key == "tmpfs-size" and mtype == "tmpfs":
            req.tmpfs_options += parse_tmpfs_options(f"size={value}", spec)
        elif key == "tmpfs-mode" and mtype == "tmpfs":
            req.tmpfs_options += parse_tmpfs_options(f"mode={value}", spec)
        elif key == "consistency":
            pass
        else:
            raise InvalidArgument(f"invalid --mount {spec!r}: unexpected key {key!r} "
                                  f"for type={mtype}")
    if mtype == "bind":
        if not source:
            raise InvalidArgument(f"invalid --mount {spec!r}: source is required for a bind mount")
        if not source.startswith("/"):
            raise InvalidArgument(f"invalid --mount {spec!r}: bind source {source!r} must be "
                                  "an absolute path")
        req.source = posixpath.normpath(source)
    elif mtype == "volume" and source:
        _source_kind(source, spec)
    elif mtype == "tmpfs" and source:
        raise InvalidArgument(f"invalid --mount {spec!r}: a tmpfs mount takes no source")
    return req


# --tmpfs options Docker takes (its mount.ParseTmpfsOptions): flags, with their opposites
# (a later one wins, so `exec` lifts the default noexec), and tmpfs's own KEY=VALUEs.
TMPFS_FLAGS = {"ro": "rw", "nosuid": "suid", "nodev": "dev", "noexec": "exec",
               "noatime": "atime", "nodiratime": "diratime", "strictatime": "nostrictatime",
               "relatime": "norelatime", "sync": "async", "dirsync": "", "mand": "nomand"}
TMPFS_FLAGS.update({v: k for k, v in TMPFS_FLAGS.items() if v})
_TMPFS_DATA = {"size": r"\d+[kmgKMG%]?", "nr_blocks": r"\d+[kmgKMG%]?",
               "nr_inodes": r"\d+[kmgKMG%]?", "mode": r"[0-7]{1,4}", "uid": r"\d+",
               "gid": r"\d+"}


def parse_tmpfs_options(text: str, spec: str) -> list[str]:
    """`size=64m,mode=1770,uid=1000,exec` -> the options for the kernel's tmpfs, checked
    (the kernel would refuse a bad one only when the container starts). Docker's size
    suffixes (b, kb, mib...) are given as the kernel's k, m, g."""
    import re

    out = []
    for opt in (o.strip() for o in text.split(",")):
        if not opt:
            continue
        key, sep, value = opt.partition("=")
        if not sep and key in TMPFS_FLAGS:
            out.append(key)
            continue
        if sep and key in _TMPFS_DATA:
            if key in ("size", "nr_blocks") and not value.endswith("%"):
                from rootless.engine.procflags import parse_size

                value = str(parse_size(value, f"--tmpfs {key}"))
            if not re.fullmatch(_TMPFS_DATA[key], value):
                raise InvalidArgument(f"invalid tmpfs option {opt!r} in {spec!r}",
                                      f"{key} takes " + ("an octal mode, e.g. 1777"
                                                         if key == "mode" else "a number"))
            out.append(f"{key}={value}")
            continue
        raise InvalidArgument(f"invalid tmpfs option {opt!r} in {spec!r}",
                              "use size=, mode=, uid=, gid=, nr_inodes= and mount flags "
                              "(ro, exec, noexec, suid, nosuid, dev, nodev, ...)")
    return out


def merge_tmpfs_options(defaults: list[str], given: list[str]) -> list[str]:
    """Docker's MergeTmpfsOptions: a given flag replaces a default one and its opposite;
    the last KEY=VALUE of a key wins."""
    out: list[str] = []
    for opt in [*defaults, *given]:
        key = opt.partition("=")[0]
        other = TMPFS_FLAGS.get(opt, "")
        out = [o for o in out if o != other and o != opt
               and not ("=" in opt and o.partition("=")[0] == key)]
        out.append(opt)
    return out


def parse_tmpfs(spec: str) -> Mount:
    """One `--tmpfs` value: PATH[:OPTIONS]."""
    target, _, opts = spec.partition(":")
    req = Mount("tmpfs", _check_target(target, spec))
    req.tmpfs_options = parse_tmpfs_options(opts, spec)
    return req


def checked(m: Mount) -> Mount:
    """`m` (built by a front end from its own syntax) checked with the rules the parsers
    apply: the target, the source of its type, the propagation, the tmpfs options (sizes
    in bytes). Raises InvalidArgument; returns a normalized copy."""
    import dataclasses

    spec = f"{m.type} mount on {m.target or '(no target)'}"
    if m.type not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid {spec}: type {m.type!r} is not supported",
                              "use type=bind, type=volume or type=tmpfs")
    out = dataclasses.replace(m, target=_check_target(m.target, spec),
                              tmpfs_options=list(m.tmpfs_options))
    if m.propagation not in PROPAGATIONS:
        raise InvalidArgument(f"invalid {spec}: bad propagation {m.propagation!r}")
    if m.type == "bind":
        if not m.source or not m.source.startswith("/"):
            raise InvalidArgument(f"invalid {spec}: bind source {m.source!r} must be an "
                                  "absolute path")
        _source_kind(m.source, spec)
        out.source = posixpath.normpath(m.source)
    elif m.type == "volume" and m.source:
        _source_kind(m.source, spec)
    elif m.type == "tmpfs":
        if m.source:
            raise InvalidArgument(f"invalid {spec}: a tmpfs mount takes no source")
        out.tmpfs_options = parse_tmpfs_options(",".join(m.tmpfs_options), spec)
    return out


def check_unique_targets(mounts: list[Mount]) -> None:
    seen: set[str] = set()
    for m in mounts:
        if m.target in seen:
            raise InvalidArgument(f"duplicate mount point: {m.target}")
        seen.add(m.target)

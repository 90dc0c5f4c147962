"""A compose project as the Compose Specification reads it: file discovery, several `-f`
files merged by the spec's rules, `extends`, `include`, .env / --env-file interpolation,
profiles, the project name; every file validated against the compose-spec JSON schema
(schema.py) before anything is merged, and keys rl does not support refused with their path
(supported.py). The result, `Project`, holds each service in one canonical (long) form: the
form `rl compose config` prints and the config hash is taken of.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from rootless.compose import interpolate, schema, supported
from rootless.compose.errors import ComposeError
from rootless.errors import InvalidArgument

FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDE_NAMES = ("compose.override.yaml", "compose.override.yml",
                  "docker-compose.override.yaml", "docker-compose.override.yml")
# keys whose values an override replaces whole (the spec's "Merge and override")
_REPLACED = {"command", "entrypoint", "test", "image", "build.context"}
_UNIQUE_LISTS = {"ports", "expose", "dns", "dns_search", "dns_opt", "tmpfs", "cap_add",
                 "cap_drop", "security_opt", "devices", "profiles", "group_add",
                 "extra_hosts", "external_links", "links", "cache_from"}


@dataclass
class Project:
    name: str
    working_dir: str
    config_files: list[str]
    services: dict[str, dict]
    networks: dict[str, dict] = field(default_factory=dict)
    volumes: dict[str, dict] = field(default_factory=dict)
    disabled: dict[str, dict] = field(default_factory=dict)  # off by their profiles
    environment: dict[str, str] = field(default_factory=dict)

    def service(self, name: str) -> dict:
        if name in self.services:
            return self.services[name]
        if name in self.disabled:
            raise ComposeError(f"service {name!r} is not enabled by the active profiles",
                               f"add --profile {', '.join(self.disabled[name]['profiles'])}")
        raise ComposeError(f"no such service: {name}")

    def to_dict(self) -> dict:
        out: dict = {"name": self.name, "services": dict(sorted(self.services.items()))}
        if self.networks:
            out["networks"] = self.networks
        if self.volumes:
            out["volumes"] = self.volumes
        return out


# -- discovery and the environment --------------------------------------------------------

def find_files(files: list[str], project_directory: str | None) -> list[str]:
    """-f files as given, else COMPOSE_FILE, else the first of FILE_NAMES found in the
    working directory or a parent, with its override file if present."""
    if files:
        return [f if f == "-" else os.path.abspath(f) for f in files]
    env_files = os.environ.get("COMPOSE_FILE")
    if env_files:
        sep = os.environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)
        return [os.path.abspath(f) for f in env_files.split(sep) if f]
    d = Path(project_directory or os.getcwd()).resolve()
    for here in (d, *d.parents):
        found = [here / n for n in FILE_NAMES if (here / n).is_file()]
        if found:
            out = [str(found[0])]
            over = [here / n for n in OVERRIDE_NAMES if (here / n).is_file()]
            return [*out, str(over[0])] if over else out
    raise ComposeError(f"no compose file found in {d} or its parents",
                       f"name one with -f, or create {FILE_NAMES[0]}", exit_code=14)


def environment(project_dir: str, env_files: list[str] | None) -> dict[str, str]:
    """The variables of interpolation: the .env of the project directory (or the
    --env-file files, in order), under the process's environment, which wins."""
    base = {k: v for k, v in os.environ.items()}
    files = env_files or []
    if not files and os.path.isfile(os.path.join(project_dir, ".env")):
        files = [os.path.join(project_dir, ".env")]
    from_files: dict[str, str] = {}
    for f in files:
        try:
            text = Path(f).read_text()
        except OSError as exc:
            raise ComposeError(f"cannot read env file {f}: {exc.strerror}") from None
        from_files.update(interpolate.parse_env_file(text, f, {**from_files, **base}))
    return {**from_files, **base}


def project_name(explicit: str | None, declared: str | None, project_dir: str) -> str:
    if explicit:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", explicit):
            raise ComposeError(f"invalid project name {explicit!r}",
                               "use lowercase letters, digits, dashes and underscores, "
                               "starting with a letter or digit")
        return explicit
    for candidate in (os.environ.get("COMPOSE_PROJECT_NAME"), declared,
                      os.path.basename(os.path.abspath(project_dir))):
        if candidate:
            name = re.sub(r"[^a-z0-9_-]", "", candidate.lower()).lstrip("_-")
            if name:
                return name
    raise ComposeError(f"cannot make a project name of {project_dir!r}", "give one with -p")


# -- loading one file ---------------------------------------------------------------------

def _shown(path: str) -> str:
    """A file as errors name it: relative to the working directory when below it."""
    if path == "-":
        return "(stdin)"
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _read_yaml(path: str) -> object:
    import sys

    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise ComposeError(f"cannot read {_shown(path)}: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=loader) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ComposeError(f"{_shown(path)}: not valid YAML{at}: {problem}") from None


@dataclass
class _Loaded:
    file: str
    base_dir: str
    doc: dict


def _load_file(path: str, base_dir: str, env: dict[str, str], seen: tuple = ()) -> _Loaded:
    """Read, interpolate, validate, canonicalize; includes and extends resolved."""
    shown = _shown(path)
    if path in seen:
        raise ComposeError(f"{shown}: include cycle: {' -> '.join([*seen, path])}")
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        schema.validate(raw, shown)
    doc = interpolate.interpolate(raw, env, shown)
    schema.validate(doc, shown)
    supported.check(doc, shown)
    for name, svc in (doc.get("services") or {}).items():
        doc["services"][name] = canonical(svc or {}, base_dir, env, shown, name)
    loaded = _Loaded(shown, base_dir, doc)
    _extends(loaded, env, {})
    _include(loaded, path, env, (*seen, path))
    return loaded


def _include(loaded: _Loaded, path: str, env: dict[str, str], seen: tuple) -> None:
    """Top-level `include`: each entry is a project of its own (its own directory and
    .env); its services, networks and volumes join ours, a name defined twice is an error."""
    doc = loaded.doc
    for i, entry in enumerate(doc.pop("include", None) or []):
        if isinstance(entry, str):
            entry = {"path": [entry]}
        paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
        paths = [os.path.join(loaded.base_dir, p) for p in paths]
        sub_dir = os.path.join(loaded.base_dir, entry.get("project_directory") or
                               os.path.dirname(paths[0]))
        ef = entry.get("env_file")
        ef = [ef] if isinstance(ef, str) else ef
        sub_env = {**environment(sub_dir, [os.path.join(loaded.base_dir, f) for f in ef]
                                 if ef else None), **env}
        sub = [_load_file(p, sub_dir, sub_env, seen) for p in paths]
        merged = sub[0].doc
        for other in sub[1:]:
            merged = merge(merged, other.doc)
        for section in ("services", "networks", "volumes"):
            for key, value in (merged.get(section) or {}).items():
                mine = doc.get(section)
                if mine is None:
                    mine = doc[section] = {}
                if key in mine and mine[key] != value:
                    raise ComposeError(f"{loaded.file}: include[{i}]: {section}.{key} is "
                                       f"defined both here and in {sub[0].file}")
                mine[key] = value


def _extends(loaded: _Loaded, env: dict[str, str], cache: dict) -> None:
    services = loaded.doc.get("services") or {}
    for name in list(services):
        services[name] = _resolve_extends(loaded, name, env, cache, ())


def _resolve_extends(loaded: _Loaded, name: str, env, cache, chain) -> dict:
    svc = loaded.doc["services"][name]
    ext = svc.get("extends")
    if not ext:
        return svc
    key = (loaded.file, name)
    if key in chain:
        raise ComposeError(f"{loaded.file}: services.{name}.extends: cycle: "
                           f"{' -> '.join(n for _, n in (*chain, key))}")
    if isinstance(ext, str):
        ext = {"service": ext}
    base_loaded = loaded
    if ext.get("file"):
        fpath = os.path.join(loaded.base_dir, ext["file"])
        if fpath not in cache:
            cache[fpath] = _load_file_for_extends(fpath, env)
        base_loaded = cache[fpath]
    base_services = base_loaded.doc.get("services") or {}
    if ext["service"] not in base_services:
        raise ComposeError(f"{loaded.file}: services.{name}.extends: no service "
                           f"{ext['service']!r} in {base_loaded.file}")
    base = _resolve_extends(base_loaded, ext["service"], env, cache, (*chain, key))
    base = {k: v for k, v in base.items() if k not in ("depends_on",)} \
        if base_loaded is not loaded else base
    mine = {k: v for k, v in svc.items() if k != "extends"}
    out = merge_service(base, mine)
    out.pop("extends", None)
    loaded.doc["services"][name] = out
    return out


def _load_file_for_extends(path: str, env) -> _Loaded:
    shown = _shown(path)
    raw = _read_yaml(path)
    doc = interpolate.interpolate(raw, env, shown)
    schema.validate(doc, shown)
    supported.check(doc, shown)
    base_dir = os.path.dirname(path)
    for name, svc in (doc.get("services") or {}).items():
        doc["services"][name] = canonical(svc or {}, base_dir, env, shown, name)
    return _Loaded(shown, base_dir, doc)


# -- canonical forms ----------------------------------------------------------------------

def _str(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def _mapping(value, sep: str = "=") -> dict:
    """list ["K=V", "K"] or mapping -> {K: V or None}."""
    if isinstance(value, dict):
        return {str(k): (None if v is None else _str(v)) for k, v in value.items()}
    out: dict = {}
    for item in value or []:
        k, has, v = str(item).partition(sep)
        out[k] = v if has else None
    return out


def _split_command(value):
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def _abs(base_dir: str, p: str) -> str:
    p = os.path.expanduser(p)
    return os.path.normpath(os.path.join(base_dir, p))


def canonical(svc: dict, base_dir: str, env: dict, file: str, name: str) -> dict:
    """One service in the long syntax, relative paths made absolute against `base_dir`."""
    out = dict(svc)
    if "build" in out:
        b = out["build"]
        b = {"context": b} if isinstance(b, str) else dict(b)
        ctx = b.get("context") or "."
        b["context"] = ctx if re.match(r"^[a-z]+://|^git@", ctx) else _abs(base_dir, ctx)
        if "args" in b:
            b["args"] = {k: (v if v is not None else env.get(k)) for k, v in
                         _mapping(b["args"]).items() if v is not None or k in env}
        if "labels" in b:
            b["labels"] = _mapping(b["labels"])
        out["build"] = b
    for key in ("command", "entrypoint"):
        if key in out:
            out[key] = _split_command(out[key])
    if "environment" in out:
        out["environment"] = _mapping(out["environment"])
    if "labels" in out:
        out["labels"] = _mapping(out["labels"])
    if "sysctls" in out:
        out["sysctls"] = _mapping(out["sysctls"])
    if "env_file" in out:
        ef = out["env_file"]
        ef = [ef] if isinstance(ef, str) else ef
        out["env_file"] = [{"path": _abs(base_dir, e if isinstance(e, str) else e["path"]),
                            "required": True if isinstance(e, str) else e.get("required", True)}
                           for e in ef]
    if "extra_hosts" in out:
        eh = out["extra_hosts"]
        if isinstance(eh, dict):
            eh = [f"{k}:{v}" for k, v in eh.items()]
        out["extra_hosts"] = [e.replace("=", ":", 1) if "=" in e else e for e in eh]
    for key in ("dns", "dns_search", "tmpfs"):
        if isinstance(out.get(key), str):
            out[key] = [out[key]]
    if "ports" in out:
        out["ports"] = [p for i, item in enumerate(out["ports"])
                        for p in _ports(item, file, f"services.{name}.ports[{i}]")]
    if "expose" in out:
        out["expose"] = [str(e) for e in out["expose"]]
    if "volumes" in out:
        out["volumes"] = [_volume(v, base_dir, file, f"services.{name}.volumes[{i}]")
                          for i, v in enumerate(out["volumes"])]
    if "networks" in out:
        nets = out["networks"]
        out["networks"] = ({n: None for n in nets} if isinstance(nets, list) else
                           {n: (dict(v) if v else None) for n, v in nets.items()})
    if "depends_on" in out:
        dep = out["depends_on"]
        if isinstance(dep, list):
            dep = {d: {} for d in dep}
        out["depends_on"] = {d: {"condition": (v or {}).get("condition", "service_started"),
                                 "required": (v or {}).get("required", True),
                                 **({"restart": v["restart"]} if v and "restart" in v else {})}
                             for d, v in dep.items()}
    if "healthcheck" in out:
        hc = dict(out["healthcheck"])
        if isinstance(hc.get("test"), str):
            hc["test"] = ["CMD-SHELL", hc["test"]]
        if hc.pop("disable", False):
            hc = {"test": ["NONE"]}
        out["healthcheck"] = hc
    if "ulimits" in out:
        out["ulimits"] = {k: ({"soft": v, "hard": v} if isinstance(v, int) else dict(v))
                          for k, v in out["ulimits"].items()}
    return out


def _ports(item, file: str, path: str) -> list[dict]:
    if isinstance(item, dict):
        try:
            target = int(item["target"])
        except (ValueError, TypeError):
            raise ComposeError(f"{file}: {path}.target: expected a port number, got "
                               f"{item['target']!r}") from None
        p = {"target": target, "protocol": item.get("protocol", "tcp")}
        if item.get("published") is not None:
            p["published"] = str(item["published"])
        if item.get("host_ip"):
            p["host_ip"] = item["host_ip"]
        return [p]
    from rootless.network import ports

    try:  # `rl run -p`'s parser: compose and the CLI take and refuse the same strings
        requests = ports.parse_publish(str(item))
    except InvalidArgument as exc:
        raise ComposeError(f"{file}: {path}: {exc.message}", exc.fix) from None
    out = []
    for r in requests:
        p: dict = {"target": r.container_port, "protocol": r.protocol}
        if r.host_port_start:
            p["published"] = (str(r.host_port_start)
                              if r.host_port_end in (0, r.host_port_start)
                              else f"{r.host_port_start}-{r.host_port_end}")
        if r.host_ip:
            p["host_ip"] = r.host_ip
        out.append(p)
    return out


def _volume(item, base_dir: str, file: str, path: str) -> dict:
    if isinstance(item, dict):
        v = dict(item)
        if v.get("type") == "bind" and v.get("source"):
            v["source"] = _abs(base_dir, v["source"])
        return v
    from rootless.engine import mountspec

    text = str(item)
    src, sep, rest = text.partition(":")
    if sep and src.startswith((".", "~")):  # relative to the file's directory, in compose
        text = f"{_abs(base_dir, src)}:{rest}"
    try:  # `rl run -v`'s parser: compose and the CLI take and refuse the same strings
        m = mountspec.parse_volume(text)
    except InvalidArgument as exc:
        raise ComposeError(f"{file}: {path}: {exc.message}", exc.fix) from None
    v: dict = {"type": m.type, "target": m.target}
    if m.source is not None:
        v["source"] = m.source
    if m.readonly:
        v["read_only"] = True
    if m.type == "bind":
        v["bind"] = {"create_host_path": True}
        if m.propagation != "rprivate":
            v["bind"]["propagation"] = m.propagation
    elif m.nocopy:
        v["volume"] = {"nocopy": True}
    return v


# -- merging ------------------------------------------------------------------------------

def merge(base: dict, over: dict) -> dict:
    """Two whole files (the second an override of the first)."""
    out = dict(base)
    for key, value in over.items():
        if key == "services":
            svcs = dict(out.get("services") or {})
            for name, svc in (value or {}).items():
                svcs[name] = merge_service(svcs[name], svc) if name in svcs else svc
            out["services"] = svcs
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_map(out[key], value, key)
        else:
            out[key] = value
    return out


def merge_service(base: dict, over: dict) -> dict:
    return _merge_map(base, over, "")


def _merge_map(base: dict, over: dict, path: str) -> dict:
    out = dict(base)
    for key, value in over.items():
        sub = f"{path}.{key}" if path else key
        old = out.get(key)
        if key in _REPLACED or sub in _REPLACED or old is None or value is None:
            out[key] = value
        elif isinstance(old, dict) and isinstance(value, dict):
            out[key] = _merge_map(old, value, sub)
        elif isinstance(old, list) and isinstance(value, list):
            if key == "volumes" and not path:
                by_target = {v["target"]: v for v in old}
                by_target.update({v["target"]: v for v in value})
                out[key] = list(by_target.values())
            elif key == "env_file" or key in _UNIQUE_LISTS:
                out[key] = old + [v for v in value if v not in old]
            else:
                out[key] = value
        else:
            out[key] = value
    return out


# -- the project --------------------------------------------------------------------------

def load(files: list[str] | None = None, *, project_name_: str | None = None,
         project_directory: str | None = None, env_files: list[str] | None = None,
         profiles: list[str] | None = None, wanted: list[str] | None = None) -> Project:
    """The project of these files (or the ones discovered); raises ComposeError before
    anything is created. `wanted`: services named on the command line, which are enabled
    whatever their profiles (as docker compose does)."""
    paths = find_files(list(files or []), project_directory)
    first = paths[0]
    pdir = os.path.abspath(project_directory) if project_directory else \
        (os.getcwd() if first == "-" else os.path.dirname(first))
    env = environment(pdir, [os.path.abspath(f) for f in env_files] if env_files else None)
    loaded = [_load_file(p, pdir, env) for p in paths]
    doc = loaded[0].doc
    for other in loaded[1:]:
        doc = merge(doc, other.doc)
    name = project_name(project_name_, doc.get("name"), pdir)
    env = {**env, "COMPOSE_PROJECT_NAME": name}
    if profiles is None:
        profiles = [p for p in os.environ.get("COMPOSE_PROFILES", "").split(",") if p]
    services, disabled = {}, {}
    for sname, svc in sorted((doc.get("services") or {}).items()):
        svc = finish_service(svc, env, loaded[0].file, sname)
        want = set(svc.get("profiles") or [])
        on = not want or "*" in profiles or want & set(profiles) or sname in (wanted or [])
        (services if on else disabled)[sname] = svc
    project = Project(name=name, working_dir=pdir, config_files=paths, services=services,
                      networks=_networks(doc, name, services), volumes=_volumes(doc, name),
                      disabled=disabled, environment=env)
    _check_references(project, loaded[0].file)
    from rootless.compose import graph

    graph.order(project.services)  # a cycle is an error now, before anything starts
    return project


def finish_service(svc: dict, env: dict, file: str, name: str) -> dict:
    """env_file contents under environment; bare variables from the environment; a
    service with neither image nor build refused."""
    svc = dict(svc)
    environ: dict[str, str] = {}
    for ef in svc.get("env_file") or []:
        try:
            text = Path(ef["path"]).read_text()
        except OSError as exc:
            if ef["required"]:
                raise ComposeError(f"{file}: services.{name}.env_file: cannot read "
                                   f"{ef['path']}: {exc.strerror}") from None
            continue
        environ.update(interpolate.parse_env_file(text, ef["path"], env))
    for k, v in (svc.get("environment") or {}).items():
        if v is None:
            if k in env:
                environ[k] = env[k]
        else:
            environ[k] = v
    if "environment" in svc or "env_file" in svc:
        svc["environment"] = environ
    svc.pop("env_file", None)
    if not svc.get("image") and not svc.get("build"):
        raise ComposeError(f"{file}: services.{name}: neither an image nor a build is "
                           "given", "add image: or build:")
    return svc


def _networks(doc: dict, project: str, services: dict) -> dict:
    declared = {k: dict(v or {}) for k, v in (doc.get("networks") or {}).items()}
    used = any(_service_networks(s) == {"default": None} or "default" in _service_networks(s)
               for s in services.values())
    if used and "default" not in declared:
        declared["default"] = {}
    for key, net in declared.items():
        net.setdefault("name", net["name"] if net.get("external") and net.get("name") else
                       net.get("name") or (key if net.get("external") else f"{project}_{key}"))
    return declared


def _service_networks(svc: dict) -> dict:
    if svc.get("network_mode"):
        return {}
    return svc.get("networks") or {"default": None}


def _volumes(doc: dict, project: str) -> dict:
    out = {}
    for key, vol in (doc.get("volumes") or {}).items():
        vol = dict(vol or {})
        vol.setdefault("name", key if vol.get("external") else f"{project}_{key}")
        out[key] = vol
    return out


def _check_references(p: Project, file: str) -> None:
    for name, svc in p.services.items():
        for dep, d in (svc.get("depends_on") or {}).items():
            if dep not in p.services and d.get("required", True):
                why = " (disabled by its profiles)" if dep in p.disabled else ""
                raise ComposeError(f"{file}: services.{name}.depends_on: service {dep!r} "
                                   f"is not defined{why}")
        for net in _service_networks(svc):
            if net not in p.networks:
                raise ComposeError(f"{file}: services.{name}.networks: network {net!r} is "
                                   "not declared", "declare it under the top-level networks:")
        for i, v in enumerate(svc.get("volumes") or []):
            if v.get("type") == "volume" and v.get("source") and v["source"] not in p.volumes:
                raise ComposeError(f"{file}: services.{name}.volumes[{i}]: volume "
                                   f"{v['source']!r} is not declared",
                                   "declare it under the top-level volumes:")
        mode = svc.get("network_mode") or ""
        if mode.startswith("service:") and mode[8:] not in p.services:
            raise ComposeError(f"{file}: services.{name}.network_mode: service "
                               f"{mode[8:]!r} is not defined")

"""`rl build`: a Dockerfile (parsed and resolved by rootless/build/) made into an image.

Each stage starts from its base (an image, ensured through engine.images; `scratch`; or an
earlier stage's result) and walks its instructions with rootless.build.scope:
- RUN runs in a container created from the current image (engine.containers, network of
  the host, output shown unless -q); the container's upper dir becomes the new layer
  (ship.upper_layer: owners from the union fs, whiteouts kept), then the container goes.
- COPY/ADD write a layer tar of what their sources select: from the context
  (rootless/build/context.py, owned by root unless --chown), or from an earlier stage or
  an image (COPY --from), read through the merged view of its layers; ADD unpacks a local
  tar archive.
- every other instruction changes only the config and adds a history entry.
Every step is committed as an (unnamed) image through copy() into the store, and
recorded in the `build_cache` table under a key of: the parent image, the instruction's
text, the build args in scope and, for COPY/ADD, the content hash of the sources (or the
source stage's image). A later build finds the key and prints `Using cache`.
Names are given only when the whole build succeeded.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import tarfile
import time
from dataclasses import dataclass, field
from typing import Any

from rootless.errors import InvalidArgument, NotFound, RlError
from rootless.store import buildcache, catalog

DEFAULT_SHELL = ["/bin/sh", "-c"]


@dataclass
class BuildOptions:
    context: str
    dockerfile: str | None = None
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    # -q: the caller shows nothing, so a failed RUN's error ends with its last lines
    quiet: bool = False
    # where the build's steps ("step" events), its RUN steps' output ("output") and its
    # pulls' progress go (rootless/image/progress.py); None: nowhere
    progress: Any = None
    # the time of every config and the clamp of the layers' timestamps (None: now)
    source_epoch: int | None = None
    platform: str | None = None
    secrets: dict[str, bytes] = field(default_factory=dict)  # --secret id -> content
    ssh: dict[str, str] = field(default_factory=dict)  # --ssh id -> agent socket
    network: str = "default"  # RUN's: default (slirp4netns), none or host
    add_hosts: list[str] = field(default_factory=list)  # NAME:IP
    pull: bool = False  # --pull: always check the registry for FROM images
    cache_from: list[str] = field(default_factory=list)  # images whose steps may be reused
    build_contexts: dict[str, str] = field(default_factory=dict)  # NAME -> DIR or
                                                                  # docker-image://REF


class _State:
    """The image a stage has built so far."""

    def __init__(self, image_id: str | None, config: dict, lineage: str = "") -> None:
        self.image_id = image_id
        self.config = config
        # A key of the base and every step so far, whatever image ids they got: recorded
        # in the history of RUN/COPY/ADD steps, it lets --cache-from match the steps of an
        # image built elsewhere (whose intermediate images are not here).
        self.lineage = lineage or (image_id or "scratch")


def _out(opts: BuildOptions, text: str) -> None:
    if opts.progress is not None:
        from rootless.image.progress import Event

        opts.progress(Event("step", text=text))


def build(opts: BuildOptions) -> str:
    """Build; returns the image id of the target stage. Safe to call from several threads
    at once: each build's output goes to its own `opts.progress`. A failed build leaves
    the steps it finished in the cache (unnamed images) and no name."""
    from rootless.engine import ship

    with ship.source_epoch_of(opts.source_epoch):
        return _build(opts)


def _build(opts: BuildOptions) -> str:
    from rootless.build import dockerfile as dfmod
    from rootless.build.context import BuildContext
    from rootless.engine import ship

    if not os.path.isdir(opts.context):
        raise NotFound(f"build context {opts.context}: no such directory")
    df_path = opts.dockerfile or os.path.join(opts.context, "Dockerfile")
    if not os.path.isabs(df_path) and opts.dockerfile and not os.path.exists(df_path):
        df_path = os.path.join(opts.context, opts.dockerfile)
    if not os.path.isfile(df_path):
        raise NotFound(f"Dockerfile {df_path}: no such file",
                       "give one with -f, or put a Dockerfile in the context")
    names = [ship.normalize_name(t) for t in opts.tags]  # bad tags fail before any work
    df = dfmod.parse_file(df_path, os.path.basename(df_path))
    plan = dfmod.resolve(df, opts.build_args, opts.target)
    ctx = BuildContext.open(opts.context, df_path)
    total = sum(1 + len(plan.stages[i].stage.instructions) for i in plan.order)
    opts._cache_images = _cache_images(opts)
    results: dict[int, str] = {}
    step = [0]
    for i in plan.order:
        results[i] = _build_stage(opts, plan, plan.stages[i], results, ctx, step, total)
    image_id = results[plan.target]
    if opts.labels:
        from rootless.engine import images

        rec = images.get_image(image_id)
        cfg = ship.base_config(rec.config)
        cfg["config"].setdefault("Labels", {}).update(opts.labels)
        image_id = ship.add_image(cfg, image_id, [], [])
    if names:
        from rootless.store import imagedb

        conn = catalog.connect()
        try:
            with catalog.transaction(conn):
                for n in names:
                    imagedb.set_name(conn, n, image_id)
        finally:
            conn.close()
        for n in names:
            _out(opts, f"Successfully tagged {n}")
    return image_id


@dataclass
class Output:
    type: str  # "local", "tar" (the files), "docker" or "oci" (the image, as an archive)
    dest: str  # a directory (local), a file or "-" (tar)


def parse_output(spec: str) -> Output:
    """`-o type=local,dest=DIR`, `-o type=tar,dest=FILE|-`, or `-o DIR` (local) / `-o -`
    (a tar on stdout), as docker buildx."""
    if "=" not in spec:
        return Output("tar", "-") if spec == "-" else Output("local", spec)
    kv = {}
    for part in spec.split(","):
        k, sep, v = part.partition("=")
        if not sep:
            raise InvalidArgument(f"--output {spec!r}: {part!r} is not KEY=VALUE",
                                  "write type=local,dest=DIR or type=tar,dest=FILE")
        kv[k.strip().lower()] = v
    kind = kv.pop("type", "local")
    dest = kv.pop("dest", None) or kv.pop("destination", None)
    if kind in ("docker", "oci"):
        kv.pop("name", None)  # buildx names the image in the archive; rl uses -t
    if kind not in ("local", "tar", "docker", "oci"):
        raise InvalidArgument(f"--output {spec!r}: type {kind!r} is not supported",
                              "use type=local, tar, docker or oci")
    if kv:
        raise InvalidArgument(f"--output {spec!r}: unexpected key {sorted(kv)[0]!r}")
    if not dest:
        raise InvalidArgument(f"--output {spec!r}: dest= is required")
    if kind == "local" and os.path.exists(dest) and not os.path.isdir(dest):
        raise InvalidArgument(f"--output {spec!r}: {dest} exists and is not a directory")
    return Output(kind, dest)


def write_output(image_id: str, out: Output, *, stream=None,
                 source_epoch: int | None = None) -> None:
    """The image's files, the merged view of its layers read from the store (never a tree
    a container wrote), as a tar (owners as the layers record them) or copied into a
    directory (owned by the user). A destination "-" is `stream` (a binary file object
    of the caller's, flushed, not closed); `source_epoch` clamps the tar's times."""
    from rootless.engine import ship

    if out.dest == "-" and stream is None:
        raise InvalidArgument("--output to '-' needs a stream to write to")
    with ship.source_epoch_of(source_epoch):
        _write_output(image_id, out, stream)


def _write_output(image_id: str, out: Output, stream) -> None:
    import shutil

    from rootless.engine import images
    from rootless.store.layers import TempArea

    if out.type in ("docker", "oci"):  # the image itself, as `rl save` writes it
        from rootless.engine import ship

        fmt = "docker-archive" if out.type == "docker" else "oci-archive"
        if out.dest == "-":
            ship.save([image_id], stream, fmt)
            stream.flush()
        else:
            ship.save([image_id], out.dest, fmt)
        return
    layers = [str(p) for p in reversed(images.get_image(image_id).layer_dirs)]
    if out.type == "local":
        os.makedirs(out.dest, exist_ok=True)
        if layers:
            _copy_merged(layers, "", out.dest)
        return
    tmp = str(TempArea().path("output.tar"))
    try:
        with open(tmp, "wb") as f:
            tf = tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT)
            if layers:
                _add_tree(tf, layers[0], "", layers, ".", None, None, {})
            tf.close()
        if out.dest == "-":
            with open(tmp, "rb") as f:
                shutil.copyfileobj(f, stream)
            stream.flush()
        else:
            shutil.move(tmp, out.dest)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _key(*parts) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _build_stage(opts, plan, rs, results, ctx, step, total) -> str:
    from rootless.build.scope import StageScope
    from rootless.engine import images, ship

    step[0] += 1
    _out(opts, f"STEP {step[0]}/{total}: {rs.stage.from_.source}")
    if rs.base_stage is not None:
        rec = images.get_image(results[rs.base_stage])
        state = _State(rec.id, ship.base_config(rec.config))
    elif rs.is_scratch:
        state = _State(None, ship.base_config(None))
    else:
        base = _named_context(opts, rs.base) or rs.base
        if not isinstance(base, str):
            raise RlError(f"{rs.stage.from_.filename}:{rs.stage.from_.location}: FROM "
                          f"{rs.base}: a --build-context directory cannot be a base image",
                          "give docker-image://IMAGE for it, or COPY --from it")
        try:
            rec = images.ensure_image(base, progress=opts.progress,
                                      platform=rs.platform or opts.platform,
                                      pull="always" if opts.pull else "missing")
        except RlError as exc:
            raise RlError(f"{rs.stage.from_.filename}:{rs.stage.from_.location}: {exc.message}", exc.fix) from None
        state = _State(rec.id, ship.base_config(rec.config))
    scope = StageScope(plan, state.config["config"].get("Env") or [])
    # The base's ONBUILD triggers run first, and are not inherited further (Docker).
    from rootless.build import dockerfile as dfmod

    triggers = state.config["config"].pop("OnBuild", None) or []
    todo: list = []
    for expr in triggers:
        try:
            todo.append((None, dfmod.parse_trigger(expr)))
        except RlError as exc:
            raise RlError(f"{rs.stage.from_.filename}:{rs.stage.from_.location}: ONBUILD "
                          f"trigger of the base image: {exc.message}", exc.fix) from None
    todo += list(enumerate(rs.stage.instructions))
    downloads = _Downloads()  # ADD URL bodies fetched for a cache key, for the step
    try:
        for pos, raw in todo:
            state = _build_step(opts, plan, rs, results, ctx, step, total, scope, state,
                                pos, raw, downloads)
            downloads.clear()
    finally:
        downloads.clear()
    if state.image_id is None:  # FROM scratch and nothing else: an empty image
        state.image_id = ship.add_image(state.config, None, [], [])
    return state.image_id


def _build_step(opts, plan, rs, results, ctx, step, total, scope, state, pos, raw,
            downloads) -> _State:
    from rootless.build import instructions as ins
    from rootless.engine import images, ship

    if pos is None:
        _out(opts, f"ONBUILD {raw.source}")
    else:
        step[0] += 1
        _out(opts, f"STEP {step[0]}/{total}: {raw.source}")
    inst = scope.step(raw)
    extra = None
    from_image = None
    step_ctx = ctx
    if isinstance(inst, (ins.Copy, ins.Add)):
        src = rs.copy_from.get(pos) if isinstance(inst, ins.Copy) else None
        if pos is None and isinstance(inst, ins.Copy) and inst.from_:
            src = inst.from_  # a trigger names an image
        named = _named_context(opts, src) if isinstance(src, str) else None
        if named is not None and not isinstance(named, str):
            step_ctx, src = named, None  # --build-context NAME=DIR: its files
        if src is not None:
            try:
                from_image = results[src] if isinstance(src, int) else \
                    images.ensure_image(named or src, progress=opts.progress).id
            except RlError as exc:
                raise RlError(f"{raw.filename}:{raw.location}: COPY --from={src}: {exc.message}",
                              exc.fix) from None
            extra = from_image
        else:
            srcs = step_ctx.resolve_sources(inst)
            extra = [step_ctx.content_hash(srcs),
                     [(c.path, c.data) for c in inst.contents]]
            if any(s.url for s in srcs):
                extra.append(_remote_keys(inst, srcs, downloads))
    elif isinstance(inst, ins.Run):
        mounts = _run_mounts(inst)
        extra = _mounts_key(inst, mounts, pos, rs, results, ctx, opts) or None
    key = _key(state.image_id or "scratch", raw.source, scope.args_in_scope, extra,
               state.config["config"].get("Env"), ship.source_epoch())
    lineage = _key(state.lineage, raw.source, scope.args_in_scope, extra,
                   state.config["config"].get("Env"), ship.source_epoch())
    if not opts.no_cache:
        cached = buildcache.get(key)
        if cached is not None:
            rec = images.get_image(cached)
            state = _State(rec.id, ship.base_config(rec.config), lineage)
            _out(opts, f"--> Using cache {cached.partition(':')[2]}")
            return state
        if isinstance(inst, (ins.Run, ins.Copy, ins.Add)):
            reused = _from_cache_images(opts, state, lineage)
            if reused is not None:
                buildcache.put(key, reused, state.image_id)
                rec = images.get_image(reused)
                state = _State(rec.id, ship.base_config(rec.config), lineage)
                _out(opts, f"--> Using cache {reused.partition(':')[2]} (--cache-from)")
                return state
    sources = _Sources(opts, rs, results, ctx, pos)
    sources.downloads = downloads
    new_id = _execute(opts, inst, state, scope, step_ctx, from_image, sources, lineage)
    buildcache.put(key, new_id, state.image_id)
    rec = images.get_image(new_id)
    state = _State(new_id, ship.base_config(rec.config), lineage)
    _out(opts, f"--> {new_id.partition(':')[2][:12]}")
    return state


def _history(cfg: dict, created_by: str, empty: bool) -> None:
    from rootless.engine import ship

    cfg["created"] = ship.now_iso()
    entry = {"created": cfg["created"], "created_by": created_by}
    if empty:
        entry["empty_layer"] = True
    cfg["history"].append(entry)


def _shell(cfg: dict) -> list[str]:
    return list(cfg["config"].get("Shell") or DEFAULT_SHELL)


def _command(cfg: dict, inst) -> list[str]:
    if inst.shell_form:
        return [*_shell(cfg), inst.command[0] if inst.command else ""]
    return list(inst.command)


def _execute(opts, inst, state: _State, scope, ctx, from_image, sources=None,
             lineage: str | None = None) -> str:
    from rootless.build import instructions as ins
    from rootless.engine import ship

    cfg = json.loads(json.dumps(state.config))
    c = cfg["config"]
    layer = None
    nop = f"/bin/sh -c #(nop) {inst.source}"
    try:
        if isinstance(inst, ins.Run):
            layer, created_by = _run(opts, inst, state, scope, sources)
            _history(cfg, created_by, layer is None)
        elif isinstance(inst, (ins.Copy, ins.Add)):
            layer = _copy(inst, state, ctx, from_image, getattr(sources, "downloads", None))
            _history(cfg, nop, False)
        if lineage and isinstance(inst, (ins.Run, ins.Copy, ins.Add)):
            cfg["history"][-1]["comment"] = _STEP_MARK + lineage.partition(":")[2]
        else:
            if isinstance(inst, ins.Env):
                c["Env"] = scope.image_env()
            elif isinstance(inst, ins.Label):
                c.setdefault("Labels", {}).update(dict(inst.pairs))
            elif isinstance(inst, ins.Workdir):
                c["WorkingDir"] = os.path.join(c.get("WorkingDir") or "/", inst.path)
            elif isinstance(inst, ins.User):
                c["User"] = inst.user
            elif isinstance(inst, ins.Expose):
                for p in inst.ports:
                    c.setdefault("ExposedPorts", {})[p if "/" in p else f"{p}/tcp"] = {}
            elif isinstance(inst, ins.Volume):
                for p in inst.paths:
                    c.setdefault("Volumes", {})[p] = {}
            elif isinstance(inst, ins.StopSignal):
                c["StopSignal"] = inst.signal
            elif isinstance(inst, ins.Cmd):
                c["Cmd"] = _command(cfg, inst)
            elif isinstance(inst, ins.Entrypoint):
                c["Entrypoint"] = _command(cfg, inst)
                if not _cmd_set_here(state):
                    c.pop("Cmd", None)
            elif isinstance(inst, ins.Shell):
                c["Shell"] = list(inst.shell)
            elif isinstance(inst, ins.Healthcheck):
                hc = {"Test": list(inst.test)}
                for attr, key in (("interval", "Interval"), ("timeout", "Timeout"),
                                  ("start_period", "StartPeriod"),
                                  ("start_interval", "StartInterval"), ("retries", "Retries")):
                    v = getattr(inst, attr)
                    if v is not None:
                        hc[key] = v if key == "Retries" else int(v * 1e9)
                c["Healthcheck"] = hc
            elif isinstance(inst, ins.Onbuild):
                c.setdefault("OnBuild", []).append(inst.expression)
            elif isinstance(inst, ins.Maintainer):
                cfg["author"] = inst.maintainer
            _history(cfg, nop, True)
        return ship.add_image(cfg, state.image_id, [layer] if layer else [], [])
    finally:
        if layer is not None:
            with contextlib.suppress(OSError):
                os.unlink(layer.blob_path)


# -- --build-context --

def _named_context(opts, ref: str | None):
    """What --build-context gives `ref`: an image reference (str), a BuildContext (a
    directory), or None when it names none. Opened once per build."""
    if ref is None or ref not in opts.build_contexts:
        return None
    value = opts.build_contexts[ref]
    if value.startswith("docker-image://"):
        return value[len("docker-image://"):]
    cache = opts.__dict__.setdefault("_named_ctx", {})
    if ref not in cache:
        if value.startswith("oci-layout://"):
            cache[ref] = _from_oci_layout(value)
        else:
            from rootless.build.context import BuildContext

            cache[ref] = BuildContext.open(value)
    return cache[ref]


def _from_oci_layout(value: str) -> str:
    """oci-layout://DIR[:TAG]: the image of an OCI layout directory, loaded into the store
    (through an oci-archive of it); its id."""
    from rootless.engine import ship
    from rootless.store.layers import TempArea

    path, tag = value[len("oci-layout://"):], None
    head, _, last = path.rpartition("/")
    if ":" in last:
        last, _, tag = last.partition(":")
        path = f"{head}/{last}" if head else last
    if not os.path.isfile(os.path.join(path, "index.json")):
        raise InvalidArgument(f"--build-context {value}: {path} is not an OCI layout "
                              "(no index.json)")
    tmp = str(TempArea().path("oci-layout.tar"))
    try:
        with tarfile.open(tmp, "w") as tf:
            for name in sorted(os.listdir(path)):
                tf.add(os.path.join(path, name), name)
        loaded = ship.load(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    if tag is not None:
        loaded = [(i, n) for i, n in loaded if any(x == tag or x.endswith(":" + tag)
                                                   for x in n)] or loaded[:0]
    if len(loaded) != 1:
        raise InvalidArgument(f"--build-context {value}: {len(loaded)} images match",
                              "name one with oci-layout://DIR:TAG")
    return loaded[0][0]


# -- --cache-from --

_STEP_MARK = "rl.step:"


def _cache_images(opts) -> list:
    """The --cache-from images (pulled when missing; one that cannot be had is skipped
    with a warning, as Docker does)."""
    from rootless.engine import images

    out = []
    for ref in opts.cache_from:
        try:
            if ref.startswith("local:"):  # a directory --cache-to type=local wrote
                from rootless.engine import ship

                archive = os.path.join(ref[len("local:"):], CACHE_ARCHIVE)
                out += [images.get_image(i) for i, _ in ship.load(archive)]
            else:
                out.append(images.ensure_image(ref))
        except RlError as exc:
            if opts.progress is not None:
                from rootless.image.progress import Event

                opts.progress(Event("message", text=f"warning: --cache-from {ref}: "
                                                    f"{exc.message}"))
    return out


CACHE_ARCHIVE = "rl-cache.tar"


def export_cache(image_id: str, dest: str) -> None:
    """--cache-to type=local,dest=DIR: the target image (whose history carries the step
    lineage) as an OCI archive in DIR, for --cache-from type=local,src=DIR."""
    from rootless.engine import ship

    os.makedirs(dest, exist_ok=True)
    tmp = os.path.join(dest, f".{CACHE_ARCHIVE}.{os.getpid()}")
    try:
        ship.save([image_id], tmp, "oci-archive")
        os.replace(tmp, os.path.join(dest, CACHE_ARCHIVE))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _from_cache_images(opts, state: _State, lineage: str) -> str | None:
    """An image for this step made of a --cache-from image's layer and history entry,
    when that image's entry at this position records the same lineage and its layers so
    far are ours; None otherwise."""
    from rootless.engine import images, ship
    from rootless.image import manifest as mf
    from rootless.image.local_transport import StoreExportSource

    mark = _STEP_MARK + lineage.partition(":")[2]
    pos = len(state.config.get("history") or [])
    ours = list(images.get_image(state.image_id).config.get("rootfs", {}).get("diff_ids")
                or []) if state.image_id else []
    for cand in getattr(opts, "_cache_images", []):
        hist = cand.config.get("history") or []
        diff_ids = (cand.config.get("rootfs") or {}).get("diff_ids") or []
        if pos >= len(hist) or hist[pos].get("comment") != mark:
            continue
        if diff_ids[:len(ours)] != ours:
            continue
        entry = hist[pos]
        cfg = json.loads(json.dumps(state.config))
        cfg["history"].append(entry)
        cfg["created"] = entry.get("created") or cfg.get("created")
        if entry.get("empty_layer"):
            return ship.add_image(cfg, state.image_id, [], [])
        if len(diff_ids) <= len(ours):
            continue
        src = StoreExportSource(cand.id, manifest_type=mf.OCI_MANIFEST)
        try:
            doc = json.loads(src.get_manifest()[0])
            desc = doc["layers"][len(ours)]
            if "gzip" not in desc["mediaType"]:
                continue
            layer = ship.NewLayer(blob_path=src.blobs[desc["digest"]], digest=desc["digest"],
                                  size=desc["size"], diff_id=diff_ids[len(ours)])
            return ship.add_image(cfg, state.image_id, [layer], [])
        finally:
            src.close()
    return None


def _cmd_set_here(state: _State) -> bool:
    """Docker: ENTRYPOINT resets a CMD inherited from the base image, but not one set by
    an earlier CMD of this stage (we do not track which; keep CMD when history shows it)."""
    for h in reversed(state.config.get("history") or []):
        if "CMD" in h.get("created_by", "") and "#(nop)" in h.get("created_by", ""):
            return True
    return False


# -- RUN --

def _run_mounts(inst) -> list:
    """The step's --mount specs parsed (an error names the Dockerfile line)."""
    from rootless.build import runmounts

    out = []
    for spec in inst.mounts:
        try:
            out.append(runmounts.parse(spec))
        except InvalidArgument as exc:
            raise inst.error(exc.message, exc.fix) from None
    return out


class _Sources:
    """What a RUN step's bind (and seeded cache) mounts read: the context, an earlier
    stage or an image (`from=`), at `source=`."""

    def __init__(self, opts, rs, results, ctx, pos) -> None:
        self.opts, self.rs, self.results, self.ctx, self.pos = opts, rs, results, ctx, pos

    def image_of(self, m, n: int) -> str | None:
        """The image id `from=` names; None for the context."""
        from rootless.engine import images

        if m.from_ is None:
            return None
        ref = self.rs.mount_from.get((self.pos, n), m.from_) if self.pos is not None \
            else m.from_
        if isinstance(ref, int):
            return self.results[ref]
        named = _named_context(self.opts, ref)
        if named is not None and not isinstance(named, str):
            return None  # a directory: read as a context
        return images.ensure_image(named or ref, progress=self.opts.progress).id

    def ctx_of(self, m):
        """The context a bind mount without an image reads: the build's, or a named one."""
        named = _named_context(self.opts, m.from_) if m.from_ else None
        return named if named is not None and not isinstance(named, str) else self.ctx

    def context_source(self, m, inst):
        from rootless.build import instructions as ins

        probe = ins.Copy(line=inst.line, end_line=inst.end_line, source=inst.source,
                         filename=inst.filename, sources=(m.source or ".",), dest="/")
        return self.ctx_of(m).resolve_sources(probe)

    def __call__(self, m, n: int, where: str) -> str:
        """Copy what the mount selects into the directory `where`; the path to bind."""
        import shutil

        from rootless.engine import images

        image = self.image_of(m, n)
        if image is None:
            src = self.context_source(m, self.inst)[0]
            ctx = self.ctx_of(m)
            rel = src.paths[0] if src.paths else ""
            path = ctx._abs(rel)
            if os.path.isdir(path) and not os.path.islink(path):
                for e in ctx.walk(rel):
                    sub = e.path[len(rel):].lstrip("/") if rel else e.path
                    out = os.path.join(where, sub)
                    if e.is_dir:
                        os.makedirs(out, exist_ok=True)
                    elif e.is_symlink:
                        os.symlink(os.readlink(ctx._abs(e.path)), out)
                    else:
                        shutil.copy2(ctx._abs(e.path), out)
                return where
            out = os.path.join(where, os.path.basename(rel) or "file")
            shutil.copy2(path, out)
            return out
        layers = [str(p) for p in reversed(images.get_image(image).layer_dirs)]
        rel = (m.source or "/").strip("/")
        found = _merged_find(layers, rel) if rel else (layers[0] if layers else None)
        if found is None and rel:
            raise RlError(f"--mount from={m.from_}: {m.source}: no such file or directory")
        if found is not None and os.path.islink(found):
            # its target names a path of the image, not of the host: never followed here
            raise RlError(f"--mount from={m.from_}: {m.source} is a symbolic link",
                          "give the path it points to as source=")
        if found is not None and not os.path.isdir(found):
            out = os.path.join(where, os.path.basename(rel))
            shutil.copy2(found, out, follow_symlinks=False)
            return out
        if layers:
            _copy_merged(layers, rel, where)
        return where


def _copy_merged(layers: list[str], rel: str, dest: str) -> None:
    """The merged view of `rel` in the store's layer dirs, copied into `dest` as the
    user's own files, as BuildKit's local exporter writes them for the invoking user:
    the image's modes (the override xattr's, not the store's widened ones) and times,
    no xattr of the store's, and no owner of the image (nor a subordinate id's).
    Device nodes, fifos and sockets are left out: a plain user cannot make them.

    `dest` may be a volume or a bind mount a running container writes: its top is opened
    by the path the user named, everything below by directory fd (safepath), so a symlink
    planted in it is replaced, never followed. The layers are the store's, which nothing
    but rl's unpacker writes: they are read by path."""
    from rootless.linux import safepath

    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _copy_merged_at(layers, rel, fd)
    except safepath.Escape as exc:
        raise RlError(f"{dest}: {exc.strerror}",
                      "is a container writing there? write the output elsewhere") from None
    except OSError as exc:  # a name removed or changed under us meanwhile, a mode refused
        raise RlError(f"{dest}: cannot write the output: {exc.strerror or exc}",
                      "is a container writing there? write the output elsewhere") from None
    finally:
        os.close(fd)


def _copy_merged_at(layers: list[str], rel: str, dfd: int) -> None:
    from fuse_overlay.metadata import read_override
    from rootless.linux import safepath

    for name, path in sorted(_merged_list(layers, rel).items()):
        st = os.lstat(path)
        times = (st.st_atime_ns, st.st_mtime_ns)
        if stat.S_ISLNK(st.st_mode):
            safepath.symlink_at(dfd, os.readlink(path), name)
            os.utime(name, ns=times, dir_fd=dfd, follow_symlinks=False)
            continue
        ov = read_override(path)
        kind = ov.ftype if ov is not None and ov.ftype is not None else \
            stat.S_IFMT(st.st_mode)
        mode = ov.mode if ov is not None else stat.S_IMODE(st.st_mode)
        # never a real setuid or setgid bit (docs/design.md, section 1): a setuid-root
        # program of the image would be setuid-you in `dest`, a volume a container's
        # other users may run it from
        mode &= 0o1777
        # an earlier output in `dest`: replaced, directories merged (the safepath calls)
        if kind == stat.S_IFDIR:
            fd = safepath.ensure_dir_at(dfd, name)
            try:
                os.fchmod(fd, 0o700)
                _copy_merged_at(layers, f"{rel}/{name}" if rel else name, fd)
                os.fchmod(fd, mode)  # last: a read-only directory is filled first
                os.utime(fd, ns=times)
            finally:
                os.close(fd)
        elif kind == stat.S_IFREG:
            fd = safepath.create_at(dfd, name)
            try:
                _copy_into(path, fd)
                os.fchmod(fd, mode)
                os.utime(fd, ns=times)
            finally:
                os.close(fd)


def _copy_into(path: str, fd: int) -> None:
    """The bytes of the file `path` written to `fd`, in the kernel where it can."""
    with open(path, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        sent = 0
        try:
            while sent < size:
                n = os.sendfile(fd, src.fileno(), sent, size - sent)
                if n == 0:
                    break
                sent += n
            return
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS) or sent:
                raise
        import shutil

        with open(fd, "wb", closefd=False) as dst:
            shutil.copyfileobj(src, dst)


def _mounts_key(inst, mounts, pos, rs, results, ctx, opts) -> list:
    """The cache key's part for a RUN's mounts: what bind mounts show (content hash of the
    context source, or the image id). Cache mounts and secrets are not in it (BuildKit)."""
    if not any(m.type == "bind" for m in mounts):
        return []
    src = _Sources(opts, rs, results, ctx, pos)
    out = []
    for n, m in enumerate(mounts):
        if m.type != "bind":
            continue
        image = src.image_of(m, n)
        out.append([n, image if image else
                    src.ctx_of(m).content_hash(src.context_source(m, inst))])
    return out


def _run(opts, inst, state: _State, scope, sources=None):
    from rootless.engine import buildmounts
    from rootless.engine.spec import RunOptions

    if state.image_id is None:
        raise inst.error("RUN needs a base image with a shell (this stage is FROM scratch "
                         "with no files yet)")
    mounts = _run_mounts(inst)
    buildmounts.check_runnable(state.config, inst)
    if inst.security and inst.security != "sandbox":
        raise inst.error(f"RUN --security={inst.security} is not supported")
    network = inst.network or opts.network
    if network not in ("host", "none", "default"):
        raise inst.error(f"RUN --network={network}: use host, none or default")
    cfg = state.config
    if inst.shell_form:
        script = inst.shell_script()
        argv = [*_shell(cfg), script]
        created_by = " ".join([*_shell(cfg), script])
    else:
        argv = list(inst.command)
        created_by = " ".join(argv)
    env = [f"{k}={v}" for k, v in scope.run_env().items()]
    workdir = cfg["config"].get("WorkingDir") or None
    if sources is not None:
        sources.inst = inst
    try:
        prep = buildmounts.prepare(mounts, workdir=workdir or "/", secrets=opts.secrets,
                                   ssh=opts.ssh, source_of=sources, inst=inst)
    except (OSError, InvalidArgument) as exc:
        raise inst.error(f"RUN --mount: {getattr(exc, 'message', None) or exc}") from None
    env += [f"{k}={v}" for k, v in prep.env.items()]
    doc = inst.shebang_heredoc
    if doc is not None:
        # `RUN <<EOF` starting with `#!`: BuildKit runs the heredoc as a file, so its
        # interpreter runs it (not /bin/sh); it sits at /dev/pipes/NAME, as there.
        script = buildmounts.script_file(prep, doc.name, doc.text)
        target = f"/dev/pipes/{doc.name}"
        prep.mounts.append(buildmounts._bind(script, target, True))
        argv = [target]
    name = f"rl-build-{os.urandom(6).hex()}"
    run_opts = RunOptions(image=state.image_id.partition(":")[2], command=argv,
                          entrypoint="", name=name, env=env,
                          workdir=workdir,
                          user=cfg["config"].get("User") or None,
                          network="slirp4netns" if network == "default" else network,
                          mounts=prep.mounts, add_hosts=list(opts.add_hosts),
                          pull="never")
    try:
        return _run_container(opts, inst, run_opts, name, created_by, prep, state)
    finally:
        prep.close()


def _run_container(opts, inst, run_opts, name, created_by, prep, state):
    """Run a RUN step's container to its end: started detached (its own monitor writes
    its output to its log), its log followed into the build's progress as it comes, so
    nothing of this process (no fd, no terminal) is used and builds in several threads
    each get their own output. The container is removed whatever happens (Ctrl-C too)."""
    from collections import deque

    from rootless.engine import buildmounts, containers, images, ship
    from rootless.image.progress import Event

    last = deque(maxlen=5)  # a failed RUN's error ends with them when nobody saw them
    line = [b""]

    def keep(data: bytes) -> None:
        line[0] += data
        *done, line[0] = line[0].split(b"\n")
        last.extend(d.decode(errors="replace") for d in done)

    c = containers.create(run_opts)
    try:
        containers.start(c.id)
        for _ts, stream, data in containers.logs(c.id, follow=True):
            keep(data)
            if opts.progress is not None:
                opts.progress(Event("output", data=data, stream=stream))
        code = containers.wait(c.id)
        if code != 0:
            if line[0]:
                last.append(line[0].decode(errors="replace"))
            tail = (": " + " | ".join(last)) if opts.quiet and last else ""
            raise inst.error(f"RUN {inst.source.partition(' ')[2].strip()} failed with "
                             f"exit code {code}{tail}")
        c = containers.lookup(c.id)
        if prep.targets:
            base = [str(p) for p in reversed(images.get_image(state.image_id).layer_dirs)]
            buildmounts.remove_stubs(str(c.dir / "upper"), prep.targets,
                                     lambda p: _merged_find(base, p) is not None)
        layer = ship.upper_layer(str(c.dir / "upper"))
        return layer, created_by
    finally:
        with contextlib.suppress(RlError):
            containers.remove(c.id, force=True)


# -- COPY / ADD --

def _merged_find(layers: list[str], rel: str) -> str | None:
    """The path of `rel` in the union of `layers` (top first), or None (absent/whited out).
    Its directory is found in each layer by _layer_dir (no symlink of a layer followed);
    the path returned may itself be a symlink, which callers copy, never follow."""
    parts = [p for p in rel.strip("/").split("/") if p and p != "."]
    if not parts:
        return layers[0] if layers else None
    parent, name = "/".join(parts[:-1]), parts[-1]
    for top in layers:
        d, hides = _layer_dir(top, parent)
        if d is not None:
            if os.path.lexists(os.path.join(d, ".wh." + name)):
                return None
            path = os.path.join(d, name)
            if os.path.lexists(path):
                return path
            hides = hides or os.path.lexists(os.path.join(d, ".wh..wh..opq"))
        if hides:
            return None
    return None


def _layer_dir(top: str, rel: str) -> tuple[str | None, bool]:
    """(`rel` in the layer dir `top` if it is a real directory there, whether this layer
    hides `rel` in the layers below it). Each component is lstat'ed: a hostile image's
    layer may hold `a -> /home/USER` under another layer's `a/b/`, and joining `a/b` onto
    this layer would then name the user's own directory. (Store layers are written by
    rl's unpacker only and never change, so a check by path here races with nothing.)"""
    cur = top
    hides = False
    for p in (p for p in rel.split("/") if p and p != "."):
        if os.path.lexists(os.path.join(cur, ".wh." + p)):
            return None, True
        hides = hides or os.path.lexists(os.path.join(cur, ".wh..wh..opq"))
        try:
            st = os.lstat(os.path.join(cur, p))
        except FileNotFoundError:
            return None, hides
        if not stat.S_ISDIR(st.st_mode):
            return None, True  # a file or a symlink: it, not a directory, is at that path
        cur = os.path.join(cur, p)
    return cur, hides


def _merged_list(layers: list[str], rel: str) -> dict[str, str]:
    """{name: path in its layer} of the union of `layers` (top first) at directory `rel`."""
    out: dict[str, str] = {}
    gone: set[str] = set()
    for top in layers:
        d, hides = _layer_dir(top, rel)
        if d is not None:
            names = os.listdir(d)
            for n in names:
                if n == ".wh..wh..opq":
                    continue
                if n.startswith(".wh."):
                    gone.add(n[4:])
                elif n not in out and n not in gone:
                    out[n] = os.path.join(d, n)
            if ".wh..wh..opq" in names:
                break
        if hides:
            break
    return out


def _id_table(layers: list[str], name: str) -> dict[str, tuple[int, int]]:
    """name -> (id, primary gid) from the image's /etc/passwd or /etc/group."""
    path = _merged_find(layers, f"etc/{name}") if layers else None
    out: dict[str, tuple[int, int]] = {}
    if path is None or not os.path.isfile(path):
        return out
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.strip().split(":")
            if len(parts) >= 3 and parts[2].isdigit():
                gid = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else int(parts[2])
                out[parts[0]] = (int(parts[2]), gid)
    return out


def _owner(spec: str | None, layers: list[str]) -> tuple[int, int]:
    """--chown=USER[:GROUP], names looked up in the image's /etc/passwd and /etc/group
    (as Docker does); a user alone also sets the group to the user's primary group."""
    if not spec:
        return (0, 0)
    user, sep, group = spec.partition(":")
    if user.isdigit():
        uid, gid = int(user), int(user)
    else:
        entry = _id_table(layers, "passwd").get(user)
        if entry is None:
            raise InvalidArgument(f"--chown={spec}: no user {user!r} in the image's "
                                  "/etc/passwd")
        uid, gid = entry
    if sep and group:
        if group.isdigit():
            gid = int(group)
        else:
            g = _id_table(layers, "group").get(group)
            if g is None:
                raise InvalidArgument(f"--chown={spec}: no group {group!r} in the image's "
                                      "/etc/group")
            gid = g[0]
    return uid, gid


def _copy(inst, state: _State, ctx, from_image, downloads=None):
    from rootless.engine import images, ship
    from rootless.store.layers import TempArea

    # (--link is accepted: it changes how BuildKit caches a layer, not what it holds.)
    base_layers: list[str] = []
    if state.image_id:
        base_layers = [str(p) for p in reversed(images.get_image(state.image_id).layer_dirs)]
    try:
        owner = _owner(inst.chown, base_layers)
        chmod = int(inst.chmod, 8) if inst.chmod else None
    except InvalidArgument as exc:
        raise inst.error(exc.message) from None
    except ValueError:
        raise inst.error(f"--chmod={inst.chmod}: not an octal mode") from None
    workdir = state.config["config"].get("WorkingDir") or "/"
    dest = inst.dest if inst.dest.startswith("/") else os.path.join(workdir, inst.dest)
    dest_is_dir = inst.dest.endswith("/") or inst.dest in (".", "./")
    found = _merged_find(base_layers, dest) if base_layers else None
    if found and os.path.isdir(found) and not os.path.islink(found):
        dest_is_dir = True
    items: list[tuple[str, str]] = []  # (absolute source path, source name)
    generated: list[str] = []  # a temp dir for heredoc sources and downloads

    def gen_dir() -> str:
        if not generated:
            generated.append(str(TempArea().mkdir("copy-src")))
        return generated[0]

    if from_image is not None:
        layers = [str(p) for p in reversed(images.get_image(from_image).layer_dirs)]
        for spec in inst.sources:
            p = _merged_find(layers, spec)
            if p is None:
                raise inst.error(f"{spec}: no such file or directory in {inst.from_}")
            items.append((p, spec))
        source_layers = layers
    else:
        sources = ctx.resolve_sources(inst)
        for s in sources:
            if s.url:
                from rootless.engine import buildcontext

                if buildcontext.is_git_url(s.url):  # cloned with git, not a plain GET
                    try:
                        where = os.path.join(gen_dir(), f"git{len(items)}")
                        items.append((buildcontext.fetch_git(s.url, where,
                                                             inst.keep_git_dir), s.url))
                    except RlError as exc:
                        raise inst.error(f"ADD {s.url}: {exc.message}", exc.fix) from None
                    dest_is_dir = True
                    continue
                items.append((_fetch(inst, s.url, gen_dir(), downloads), s.url))
                continue
            if not s.paths:
                raise inst.error(f"COPY source {s.spec}: no such file or directory in the "
                                 "build context")
            for p in s.paths:
                items.append((str(ctx._abs(p)), p))
            if s.wildcard or len(s.paths) > 1:
                dest_is_dir = True
        source_layers = None
    for content in inst.contents:  # heredoc sources: files of their text
        path = os.path.join(gen_dir(), os.path.basename(content.path) or "heredoc")
        with open(path, "w") as f:
            f.write(content.data)
        os.chmod(path, 0o644)
        items.append((path, content.path))
    excl = None
    if inst.excludes:  # Dockerfile 1.7: patterns as .dockerignore's, per source
        from rootless.build.dockerignore import IgnoreRules

        excl = IgnoreRules(list(inst.excludes), "--exclude")
        items = [(p, spec) for p, spec in items
                 if not (excl.excluded(spec.strip("/")) or
                         excl.excluded(os.path.basename(spec.rstrip("/"))))]
    if len(items) > 1 or getattr(inst, "parents", False):
        dest_is_dir = True
    mtime = ship.source_epoch()
    tmp = str(TempArea().path("copy.tar"))
    try:
        return _write_copy_layer(inst, tmp, items, dest, dest_is_dir, source_layers, owner,
                                 chmod, from_image, mtime, ctx=ctx if from_image is None
                                 else None, excl=excl, pivots=_pivots(inst))
    finally:
        if generated:
            import shutil

            shutil.rmtree(generated[0], ignore_errors=True)


def _pivots(inst) -> list[str]:
    """COPY --parents: for each source, the part of its path NOT kept under the
    destination: what comes before a `/./` in it (BuildKit's pivot), else nothing."""
    out = []
    for spec in inst.sources:
        before, sep, _ = spec.partition("/./")
        out.append(before.strip("/").removeprefix("./") if sep else "")
    return out


def _parents_name(spec: str, pivots: list[str]) -> str:
    rel = os.path.normpath(spec.strip("/") or ".")
    rel = "" if rel == "." else rel
    for pv in pivots:
        if pv and (rel == pv or rel.startswith(pv + "/")):
            return rel[len(pv):].lstrip("/")
    return rel


def _write_copy_layer(inst, tmp, items, dest, dest_is_dir, source_layers, owner, chmod,
                      from_image, mtime, ctx=None, excl=None, pivots=()):
    from rootless.build import instructions as ins
    from rootless.engine import ship
    from rootless.image import layertar

    try:
        with open(tmp, "wb") as f:
            tf = tarfile.open(fileobj=f, mode="w|", format=tarfile.PAX_FORMAT)
            inodes: dict = {}
            ctx_owner = owner if from_image is None or inst.chown else None
            parents = getattr(inst, "parents", False)
            for path, _spec in items:
                is_dir = os.path.isdir(path) and not os.path.islink(path)
                keep = _parents_name(_spec, list(pivots)) if parents and "://" not in _spec \
                    else ""
                if is_dir:
                    target = os.path.join(dest, keep).strip("/") if keep else dest.strip("/")
                    if target:
                        _dir_entry(tf, target)
                    in_ctx = ctx is not None and _is_in(path, str(ctx.root))
                    if in_ctx:  # .dockerignore and --exclude apply below the source too
                        rel = os.path.relpath(path, ctx.root)
                        rel = "" if rel == "." else rel
                        for e in ctx.walk(rel):
                            sub = e.path[len(rel):].lstrip("/") if rel else e.path
                            if excl is not None and excl.excluded(sub):
                                continue
                            layertar.add_entry(tf, str(ctx._abs(e.path)),
                                               f"{target}/{sub}" if target else sub, mtime,
                                               inodes, owner=ctx_owner, chmod=chmod)
                        continue
                    _add_tree(tf, path, target, source_layers, _rel_in(source_layers, path),
                              ctx_owner, chmod, inodes)
                    continue
                if keep:
                    layertar.add_entry(tf, path, os.path.join(dest, keep).strip("/"), mtime,
                                       inodes, owner=ctx_owner, chmod=chmod)
                    continue
                if isinstance(inst, ins.Add) and from_image is None and "://" not in _spec \
                        and _is_archive(path):
                    _add_archive(tf, path, dest.strip("/"))
                    continue
                name = os.path.join(dest, os.path.basename(path)) if dest_is_dir else dest
                layertar.add_entry(tf, path, name.strip("/"), mtime, inodes, owner=ctx_owner,
                                   chmod=chmod)
            tf.close()
        return ship.layer_from_tar(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _is_in(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class _Downloads(dict):
    """url -> a body fetched while computing a step's cache key, in a temp dir, for the
    step's ADD; clear() removes the files."""

    def __init__(self) -> None:
        super().__init__()
        self.dir: str | None = None

    def new_path(self) -> str:
        from rootless.store.layers import TempArea

        if self.dir is None:
            self.dir = str(TempArea().mkdir("add-url"))
        return os.path.join(self.dir, str(len(self)))

    def clear(self) -> None:
        super().clear()
        if self.dir is not None:
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _remote_keys(inst, sources, downloads: _Downloads) -> list:
    """The cache key's part for ADD's remote sources: what the remote holds now, not the
    URL's text (BuildKit checks the remote too: a changed file is fetched again). A git
    URL by the commit its ref names (git ls-remote); an http(s) URL by --checksum when
    given, else by its body's digest: a conditional GET with the ETag / Last-Modified
    of the last download answers 304 when nothing changed (the digest recorded then),
    else the body comes now and is kept for the step."""
    from rootless.engine import buildcontext

    out = []
    for s in sources:
        if not s.url:
            continue
        if buildcontext.is_git_url(s.url):
            try:
                out.append([s.url, buildcontext.git_commit(s.url)])
            except RlError as exc:
                raise inst.error(f"ADD {exc.message}", exc.fix) from None
        elif inst.checksum:
            out.append([s.url, inst.checksum])
        else:
            out.append([s.url, _remote_digest(inst, s.url, downloads)])
    return out


def _remote_digest(inst, url: str, downloads: _Downloads) -> str:
    known = buildcache.remote_get(url)
    headers = {}
    if known is not None:
        etag, modified, _ = known
        if etag:
            headers["If-None-Match"] = etag
        if modified:
            headers["If-Modified-Since"] = modified
    path = downloads.new_path()
    got = _download(inst, url, path, headers)
    if got is None:  # 304: unchanged since the download recorded
        return known[2]
    digest, etag, modified = got
    buildcache.remote_put(url, etag, modified, digest)
    downloads[url] = path
    return digest


def _download(inst, url: str, path: str, headers: dict | None = None
              ) -> tuple[str, str | None, str | None] | None:
    """GET `url` into `path`: (sha256 digest, ETag, Last-Modified), or None when the
    server answered 304 to a conditional request."""
    from rootless.image import httpx_lite

    httpx = httpx_lite.load()
    h = hashlib.sha256()
    try:
        with httpx.stream("GET", url, headers=headers or {}, follow_redirects=True,
                          timeout=60.0) as resp:
            if resp.status_code == 304 and headers:
                return None
            if resp.status_code != 200:
                raise inst.error(f"ADD {url}: the server answered {resp.status_code}")
            with open(path, "wb") as f:
                for chunk in resp.iter_bytes():
                    h.update(chunk)
                    f.write(chunk)
            return ("sha256:" + h.hexdigest(), resp.headers.get("etag"),
                    resp.headers.get("last-modified"))
    except httpx.HTTPError as exc:
        raise inst.error(f"ADD {url}: {exc}") from None


def _fetch(inst, url: str, into: str, downloads: _Downloads | None = None) -> str:
    """ADD URL: the body (fetched for the cache key, or now) in `into` under the URL's
    file name (mode 0600, as Docker), checked against --checksum."""
    from urllib.parse import urlsplit

    name = os.path.basename(urlsplit(url).path) or "index.html"
    path = os.path.join(into, name)
    if downloads is not None and url in downloads:
        os.rename(downloads.pop(url), path)
        with open(path, "rb") as f:
            got = "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
    else:
        got = _download(inst, url, path)[0]
    if inst.checksum and inst.checksum != got:
        raise inst.error(f"ADD {url}: checksum mismatch: expected {inst.checksum}, got {got}")
    os.chmod(path, 0o600)
    return path


def _rel_in(layers, path: str) -> str | None:
    if layers is None:
        return None
    for top in layers:
        if path == top or path.startswith(top + "/"):
            return os.path.relpath(path, top)
    return None


def _dir_entry(tf, name: str) -> None:
    from rootless.engine import ship

    info = tarfile.TarInfo(name)
    epoch = ship.source_epoch()
    info.mtime = int(time.time()) if epoch is None else epoch
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tf.addfile(info)


def _add_tree(tf, path, target, layers, rel, owner, chmod, inodes) -> None:
    from rootless.engine import ship
    from rootless.image import layertar

    if layers is not None and rel is not None:
        children = _merged_list(layers, "" if rel == "." else rel)
    else:
        children = {n: os.path.join(path, n) for n in os.listdir(path)}
    for n in sorted(children):
        child = children[n]
        name = f"{target}/{n}" if target else n
        if layers is None and n.startswith(".wh."):
            continue
        is_dir = layertar.add_entry(tf, child, name, ship.source_epoch(), inodes, owner=owner,
                                    chmod=chmod)
        if is_dir:
            _add_tree(tf, child, name, layers,
                      None if rel is None else os.path.join(rel, n), owner, chmod, inodes)


def _is_archive(path: str) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _add_archive(tf, path: str, dest: str) -> None:
    from rootless.engine import ship

    epoch = ship.source_epoch()
    with tarfile.open(path, "r:*") as src:
        for m in src:
            name = os.path.normpath(m.name).lstrip("/")
            if name.startswith(".."):
                continue
            m.name = f"{dest}/{name}" if dest else name
            if epoch is not None:
                m.mtime = min(int(m.mtime), epoch)
            if m.islnk():
                m.linkname = f"{dest}/{m.linkname.lstrip('/')}" if dest else m.linkname
            tf.addfile(m, src.extractfile(m) if m.isreg() else None)

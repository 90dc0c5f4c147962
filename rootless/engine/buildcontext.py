"""Where `rl build`'s context comes from, made a local directory for the builder:
- a directory (used as is);
- `-`: stdin, a tar (unpacked, safely: no member outside, no write through a symlink) or
  a Dockerfile (then the context is empty, as `docker build -`);
- a git URL (`git@host:repo.git`, `git://...`, `http(s)://` or `file://` ending in
  `.git`, `github.com/...`), with `#REF[:SUBDIR]`: fetched with the `git` command at
  depth 1 into a temp dir, `.git` removed (Docker's default);
- an http(s) URL of a tar (maybe compressed), downloaded and unpacked.
`fetch_git` also serves `ADD <git URL> DEST` (with `--keep-git-dir`).
Temp dirs are under the store's tmp area and removed when the build ends.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tarfile

from rootless.errors import InvalidArgument, RlError

_GIT = re.compile(r"^(git@|git://|github\.com/)|^(https?|file)://[^#]*\.git(#.*)?$",
                  re.IGNORECASE)


def is_git_url(spec: str) -> bool:
    return bool(_GIT.match(spec))


@contextlib.contextmanager
def opened(spec: str, dockerfile: str | None, stdin=None):
    """(context dir, Dockerfile path or None) for the build; temp dirs removed after.
    "-" (the context: a tar or a Dockerfile; or `dockerfile`: the Dockerfile) is read from
    `stdin`, a binary file object of the caller's (None: there is none)."""
    local = spec != "-" and not is_git_url(spec) and not re.match(r"^https?://", spec, re.I)
    if local and dockerfile != "-":
        yield spec, dockerfile
        return
    from rootless.store.layers import TempArea

    tmp = str(TempArea().path("context"))
    os.mkdir(tmp, 0o700)
    try:
        ctx = os.path.join(tmp, "ctx")
        os.mkdir(ctx, 0o700)
        if dockerfile == "-":
            if spec == "-":
                raise InvalidArgument("stdin cannot be both the context and the Dockerfile")
            if stdin is None:
                raise InvalidArgument("-f -: nothing on stdin", "pipe a Dockerfile")
            dockerfile = os.path.join(tmp, "Dockerfile")
            with open(dockerfile, "wb") as f:
                shutil.copyfileobj(stdin, f, 1 << 20)
        if local:
            yield spec, dockerfile
        elif spec == "-":
            yield _from_stdin(tmp, ctx, dockerfile, stdin)
        elif is_git_url(spec):
            yield _from_git(spec, tmp, ctx), dockerfile
        else:
            yield _from_url(spec, tmp, ctx), dockerfile
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _unpack(path: str, ctx: str, what: str) -> None:
    from rootless.runtime.copying import _safe_extract

    try:
        with tarfile.open(path, "r:*") as tf:
            _safe_extract(tf, ctx)
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidArgument(f"build context from {what}: not a readable tar ({exc})") \
            from None


def _from_stdin(tmp: str, ctx: str, dockerfile: str | None, stdin):
    if stdin is None:
        raise InvalidArgument("build context '-': nothing on stdin",
                              "pipe a tar or a Dockerfile: rl build - < Dockerfile")
    data = os.path.join(tmp, "stdin")
    with open(data, "wb") as f:
        shutil.copyfileobj(stdin, f, 1 << 20)
    if tarfile.is_tarfile(data):
        _unpack(data, ctx, "stdin")
        return ctx, dockerfile
    if dockerfile and dockerfile != "-":
        raise InvalidArgument("build context '-' is a Dockerfile, and -f names another",
                              "drop -f, or pipe a tar holding both")
    return ctx, data  # a Dockerfile alone: outside the (empty) context


def _from_git(spec: str, tmp: str, ctx: str) -> str:
    return fetch_git(spec, ctx)


def git_commit(spec: str) -> str:
    """The commit `URL#REF` names now (git ls-remote), for the cache key of an ADD of a
    git URL: BuildKit checks the remote too, so a moved branch is fetched again."""
    url, _, frag = spec.partition("#")
    ref = frag.partition(":")[0] or "HEAD"
    if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", ref):
        return ref
    url, env = _git_setup(url)
    try:
        proc = subprocess.run(["git", "ls-remote", "--", url, ref], capture_output=True,
                              text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise InvalidArgument(f"{spec}: git ls-remote timed out") from None
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise InvalidArgument(f"{spec}: git ls-remote: {why}",
                              "check the URL and the ref after '#'")
    found = {name: sha for sha, _, name in (line.partition("\t")
                                            for line in proc.stdout.splitlines()) if name}
    # an annotated tag's commit is its peeled line (`refs/tags/v1^{}`)
    for name in (f"refs/tags/{ref}^{{}}", ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
        if name in found:
            return found[name]
    if found:
        return sorted(found.items())[0][1]
    # not a ref the remote advertises (an abbreviated commit): the spec itself
    return spec


def _git_setup(url: str) -> tuple[str, dict]:
    """The URL git is given, and its environment (no prompt for credentials: a build
    must fail, not wait on a terminal)."""
    if url.lower().startswith("github.com/"):
        url = "https://" + url
    if shutil.which("git") is None:
        raise RlError("building from a git URL needs the git command",
                      "install git (apt-get install git)")
    return url, {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}


def fetch_git(spec: str, ctx: str, keep_git_dir: bool = False) -> str:
    """Fetch `URL#REF:SUBDIR` into the directory `ctx` (made if missing); the checked-out
    directory (SUBDIR of it when given)."""
    url, _, frag = spec.partition("#")
    ref, _, subdir = frag.partition(":")
    url, env = _git_setup(url)
    steps = [("init", ["git", "init", "-q", ctx]),
             ("fetch", ["git", "-C", ctx, "fetch", "-q", "--depth", "1", "--", url,
                        ref or "HEAD"]),
             ("checkout", ["git", "-C", ctx, "checkout", "-q", "FETCH_HEAD"])]
    for name, argv in steps:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                                  env=env, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise InvalidArgument(f"build context {spec}: git {name} timed out") from None
        if proc.returncode != 0:
            why = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            raise InvalidArgument(f"build context {spec}: git {name}: {why}",
                                  "check the URL and the ref after '#'")
    if not keep_git_dir:
        shutil.rmtree(os.path.join(ctx, ".git"), ignore_errors=True)
    if subdir:
        parts = [p for p in subdir.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise InvalidArgument(f"build context {spec}: the subdirectory must not "
                                  "contain '..'")
        sub = os.path.join(ctx, *parts)
        if os.path.islink(sub) or not os.path.isdir(sub):
            raise InvalidArgument(f"build context {spec}: no directory {subdir} in the "
                                  "repository")
        return sub
    return ctx


def _from_url(spec: str, tmp: str, ctx: str) -> str:
    from rootless.image import httpx_lite

    httpx = httpx_lite.load()
    path = os.path.join(tmp, "download")
    try:
        with httpx.stream("GET", spec, follow_redirects=True, timeout=60.0) as resp:
            if resp.status_code != 200:
                raise InvalidArgument(f"build context {spec}: the server answered "
                                      f"{resp.status_code}")
            with open(path, "wb") as f:
                for chunk in resp.iter_bytes():
                    f.write(chunk)
    except httpx.HTTPError as exc:
        raise InvalidArgument(f"build context {spec}: {exc}") from None
    if tarfile.is_tarfile(path):
        _unpack(path, ctx, spec)
    else:  # a Dockerfile alone (docker build URL accepts one)
        shutil.copyfile(path, os.path.join(ctx, "Dockerfile"))
    return ctx

"""rl build: RUN --mount (cache, secret, bind, tmpfs), the network of RUN steps, outputs
(-o, --iidfile), `rl builder prune`, and the errors of bad build input."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile

from tests.support.httpserver import serving

SECRET = b"s3cr3t-canary-7f1c9a2e"


def _one_line_error(proc) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 2, proc.stderr  # the message, and a fix when there is one


PIP_LIKE = """\
FROM BASE
ARG ROUND
RUN --mount=type=cache,target=/root/.cache/pip,id=pip,sharing=locked \\
    ls /root/.cache/pip > /seen; \\
    for i in 1 2 3; do echo "pkg$i" > /root/.cache/pip/pkg$i.whl; done; \\
    cp /root/.cache/pip/pkg1.whl /installed
"""


def test_cache_mount_is_kept_between_builds_and_not_in_the_image(rl, ctx):
    path = ctx(PIP_LIKE)
    rl("build", "-t", "pip:1", "--build-arg", "ROUND=1", path, check=True)
    assert rl("run", "--rm", "pip:1", "cat", "/seen", check=True).stdout == ""
    # a second build (another ROUND: the step runs again) finds what the first downloaded
    rl("build", "-t", "pip:2", "--build-arg", "ROUND=2", path, check=True)
    r = rl("run", "--rm", "pip:2", "sh", "-c",
           "cat /seen /installed; test -e /root/.cache && echo STUB; "
           "find / -xdev -name 'pkg*.whl'", check=True)
    assert r.stdout.split() == ["pkg1.whl", "pkg2.whl", "pkg3.whl", "pkg1"]
    # kept under the store, private to the user
    caches = rl.root / "data" / "rl" / "build-cache-mounts"
    assert stat.S_IMODE(os.stat(caches).st_mode) == 0o700
    assert any(p.name.startswith("pkg") for p in caches.rglob("*.whl"))
    # used just now: kept by a prune of what was last used over an hour ago
    rl("builder", "prune", "-f", "--filter", "until=1h", check=True)
    assert list(caches.rglob("*.whl"))
    bad = rl("builder", "prune", "-f", "--filter", "label=x")
    assert bad.returncode == 125 and len(bad.stderr.strip().splitlines()) == 1
    # prune clears it: the next build starts empty
    out = rl("builder", "prune", "-f", check=True).stdout
    assert "reclaimed" in out
    assert not list(caches.rglob("*.whl"))
    rl("build", "-t", "pip:3", "--build-arg", "ROUND=3", path, check=True)
    assert rl("run", "--rm", "pip:3", "cat", "/seen", check=True).stdout == ""


def test_secret_is_read_by_run_and_stored_nowhere(rl, ctx, tmp_path):
    secret_file = tmp_path / "token"
    secret_file.write_bytes(SECRET)
    path = ctx("FROM BASE\n"
               "RUN --mount=type=secret,id=tok,required=true "
               "wc -c < /run/secrets/tok > /len && cat /run/secrets/tok | md5sum > /sum\n"
               "RUN --mount=type=secret,id=tok,env=TOK,target=/s "
               "test \"$TOK\" = \"$(cat /s)\" && echo same > /same\n")
    rl("build", "-t", "sec:1", "--secret", f"id=tok,src={secret_file}", path, check=True)
    r = rl("run", "--rm", "sec:1", "sh", "-c",
           "cat /len /same; test -e /run/secrets && echo STUB; test -e /s && echo STUB2; true",
           check=True)
    assert r.stdout.split() == [str(len(SECRET)), "same"]
    # not in any layer, the config or the history
    archive = tmp_path / "sec.tar"
    rl("save", "-o", str(archive), "sec:1", check=True)
    with tarfile.open(archive) as tf:
        for m in tf:
            if not m.isreg():
                continue
            data = tf.extractfile(m).read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            assert SECRET not in data, m.name
    info = rl("image", "inspect", "sec:1", check=True).stdout
    assert SECRET.decode() not in info
    hist = rl("history", "--no-trunc", "sec:1", check=True).stdout
    assert SECRET.decode() not in hist and "wc -c" in hist
    # nor anywhere in the store once the build is over
    for dirpath, _dirs, files in os.walk(rl.root / "data"):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            with open(p, "rb") as f:
                assert SECRET not in f.read(), p


def test_missing_required_secret_and_bad_mounts_fail_in_one_line(rl, ctx):
    before = rl("images", "-q", check=True).stdout
    cases = [
        ("RUN --mount=type=secret,id=nope,required=true true", "secret 'nope' is required"),
        ("RUN --mount=type=nosuch,target=/x true", "unknown mount type"),
        ("RUN --mount=type=cache,target=/x,sharing=sometimes true", "sharing="),
        ("RUN --device=/dev/kvm true", "--device is not supported"),
    ]
    for line, needle in cases:
        proc = rl("build", "-t", "bad:1", ctx(f"FROM BASE\n{line}\n"))
        _one_line_error(proc)
        assert needle in proc.stderr and "Dockerfile:2" in proc.stderr, proc.stderr
        assert "not found in the local store" in rl("image", "inspect", "bad:1").stderr
    proc = rl("build", "-t", "bad:1", "-o", "type=registry,dest=x", ctx("FROM BASE\n"))
    _one_line_error(proc)
    assert "--output" in proc.stderr
    proc = rl("build", "-t", "bad:1", "--secret", "id=x,src=/nonexistent/file",
              ctx("FROM BASE\n"))
    _one_line_error(proc)
    assert "not found in the local store" in rl("image", "inspect", "bad:1").stderr
    assert rl("images", "-q", check=True).stdout == before


def test_bind_and_tmpfs_mounts(rl, ctx):
    path = ctx("FROM BASE AS first\n"
               "RUN echo staged > /staged.txt\n"
               "FROM BASE\n"
               "RUN --mount=type=bind,source=sub,target=/m cat /m/a.txt > /from-ctx\n"
               "RUN --mount=type=bind,from=first,source=/staged.txt,target=/st.txt "
               "cat /st.txt > /from-stage\n"
               "RUN --mount=type=bind,target=/ctx,rw touch /ctx/new && "
               "mkdir /ctx/d && touch /ctx/d/f && chown -R 1000:1000 /ctx/d && "
               f"ln -s {ctx.dir} /ctx/link && "
               "(touch /m2 2>/dev/null; test ! -e /ctx/ignored.txt && echo noignored > /ig)\n"
               "RUN --mount=type=bind,target=/ro sh -c 'touch /ro/x 2>/dev/null || "
               "echo readonly > /ro-result'\n"
               "RUN --mount=type=tmpfs,target=/t sh -c "
               "'grep -q \" /t tmpfs\" /proc/mounts && echo x > /t/f && echo tmpfs > /tm'\n")
    rl("build", "-t", "bind:1", path, check=True)
    r = rl("run", "--rm", "bind:1", "sh", "-c",
           "cat /from-ctx /from-stage /ig /ro-result /tm; "
           "for p in /m /st.txt /ctx /ro /t; do test -e $p && echo STUB $p; done; true",
           check=True)
    assert r.stdout.split() == ["a", "staged", "noignored", "readonly", "tmpfs"]
    assert not (ctx.dir / "new").exists()  # rw writes are discarded
    assert sorted(os.listdir(ctx.dir)) == [".dockerignore", "Dockerfile", "hello.txt",
                                           "ignored.txt", "sub"]
    # and so is the copy they went to, files of subordinate uids included
    tmp = rl.root / "data" / "rl" / "tmp"
    assert not [n for n in os.listdir(tmp) if "bind" in n] if tmp.exists() else True
    # a change in the bound context dir makes the step run again
    (ctx.dir / "sub" / "a.txt").write_text("b\n")
    out = rl("build", "-t", "bind:2", path, check=True).stdout
    assert rl("run", "--rm", "bind:2", "cat", "/from-ctx", check=True).stdout == "b\n"
    assert out.count("Using cache") == 1  # only the first stage's RUN


def test_outputs_and_iidfile(rl, ctx, tmp_path):
    path = ctx("FROM BASE AS b\n"
               "RUN mkdir -p /o/d && echo built > /o/out.txt && ln -s out.txt /o/link\n"
               "FROM scratch\n"
               "COPY --from=b /o /\n"
               "COPY hello.txt /h/\n")
    iid = tmp_path / "iid"
    local = tmp_path / "local"
    tarf = tmp_path / "out.tar"
    out = rl("build", "-q", "--iidfile", str(iid), "-o", f"type=local,dest={local}", path,
             check=True).stdout.strip()
    assert iid.read_text() == "sha256:" + out
    rl("build", "-q", "-o", f"type=tar,dest={tarf}", path, check=True)
    files = {}
    for dirpath, dirs, names in os.walk(local):
        for n in names + dirs:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, local)
            files[rel] = ("l:" + os.readlink(p) if os.path.islink(p) else
                          "d" if os.path.isdir(p) else open(p, "rb").read())
    assert files == {"out.txt": b"built\n", "link": "l:out.txt", "d": "d", "h": "d",
                     "h/hello.txt": b"hi\n"}
    with tarfile.open(tarf) as tf:
        got = {}
        for m in tf:
            name = m.name.strip("/").removeprefix("./")
            got[name] = ("l:" + m.linkname if m.issym() else "d" if m.isdir() else
                         tf.extractfile(m).read())
    assert got == files
    # the image itself as an archive: docker (manifest.json) or oci (index.json)
    for kind, marker in (("docker", "manifest.json"), ("oci", "index.json")):
        archive = tmp_path / f"img-{kind}.tar"
        rl("build", "-q", "-o", f"type={kind},dest={archive}", path, check=True)
        with tarfile.open(archive) as tf:
            assert marker in tf.getnames()
    # a tar on stdout: the archive alone (the steps went to stderr)
    proc = rl("build", "--no-cache", "-o", "type=tar,dest=-", path, text=False, check=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tf:
        assert sorted(m.name.strip("/").removeprefix("./") for m in tf) == sorted(files)
    assert b"STEP" in proc.stderr
    # -o DIR is type=local
    short = tmp_path / "short"
    rl("build", "-q", "-o", str(short), path, check=True)
    assert (short / "h" / "hello.txt").read_text() == "hi\n"


def test_local_output_is_the_users_with_the_images_modes(rl, ctx, tmp_path):
    path = ctx("FROM BASE AS b\n"
               "RUN mkdir -p /o/ro /o/priv && echo x > /o/ro/f && echo s > /o/priv/s && "
               "chmod 0555 /o/ro && chmod 0600 /o/priv/s && chmod 0700 /o/priv && "
               "chown -R 1000:1000 /o/priv && echo run > /o/tool && chown 0:2000 /o/tool && "
               "chmod 4750 /o/tool && mkfifo /o/fifo && touch -d @1000000000 /o/old\n"
               "FROM scratch\nCOPY --from=b /o /\n")
    out = tmp_path / "out"
    for _round in (1, 2):  # a second build into the same directory replaces its files
        rl("build", "-q", "-o", f"type=local,dest={out}", path, check=True)
        got = {}
        for dirpath, dirs, names in os.walk(out):
            for n in dirs + names:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid()), p
                assert os.listxattr(p, follow_symlinks=False) == [], p
                got[os.path.relpath(p, out)] = oct(stat.S_IMODE(st.st_mode))
        # the setuid bit of /o/tool is not written: a setuid-you program from an image
        # (docs/design.md, section 1: never a real setuid or setgid bit)
        assert got == {"ro": "0o555", "ro/f": "0o644", "priv": "0o700", "priv/s": "0o600",
                       "tool": "0o750", "old": "0o644"}, got
        assert (out / "priv" / "s").read_text() == "s\n"
        assert os.stat(out / "old").st_mtime == 1000000000
    (out / "ro").chmod(0o755)  # for the test's cleanup


def test_run_network_default_none_and_host(rl, ctx):
    with serving(b"from-the-host\n") as port:
        def get(addr: str, name: str) -> str:
            return (f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} {port} "
                    f"> /{name} 2>/dev/null")
        path = ctx("FROM BASE\nARG N\n"
                   f"RUN {get('127.0.0.1', 'lo')}; {get('10.0.2.2', 'gw')}; "
                   "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /ifaces\n")

        def built(network: str) -> tuple[str, str, set[str]]:
            tag = f"net-{network}:1"
            rl("build", "-t", tag, "--network", network, "--build-arg", f"N={network}",
               path, check=True)
            out = rl("run", "--rm", tag, "sh", "-c",
                     "cat /lo; echo =; cat /gw; echo =; cat /ifaces", check=True)
            lo, gw, ifaces = out.stdout.split("=\n")
            return lo, gw, set(ifaces.split())

        lo, _, _ = built("host")
        assert "from-the-host" in lo  # the server answers: the refusals below are real
        lo, gw, ifaces = built("none")
        assert lo == gw == "" and ifaces == {"lo"}
        # default: sandboxed, with an interface of its own (slirp4netns's tap: outbound
        # access), and the host's loopback refused, by 127.0.0.1 (its own) and 10.0.2.2
        lo, gw, ifaces = built("default")
        assert lo == gw == "" and len(ifaces - {"lo"}) == 1, (lo, gw, ifaces)


def _host_address() -> str:
    """An IPv4 address of this host that is not loopback (slirp4netns's outbound NAT
    reaches it from a RUN step, as a remote server)."""
    import subprocess

    from tests.support import users

    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout.split()
    addrs = [out[i + 1].partition("/")[0] for i, w in enumerate(out[:-1]) if w == "inet"]
    users.need(bool(addrs), "the host has no IPv4 address but loopback")
    return addrs[0]


def test_run_default_network_reaches_the_outside_and_not_the_host_loopback(rl, ctx):
    import time
    import urllib.request

    from tests.support.registry import free_port

    addr = _host_address()
    wport = free_port()
    rl("network", "create", "buildnet", check=True)
    try:
        # a server in a container on a user network, published on the host's address
        rl("run", "-d", "--name", "websrv", "--network", "buildnet", "-p",
           f"{addr}:{wport}:80", ctx.base, "sh", "-c",
           "mkdir /www && echo from-user-network > /www/index.html && "
           "exec httpd -f -p 80 -h /www", check=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://{addr}:{wport}/", timeout=2) as resp:
                    assert resp.read() == b"from-user-network\n"
                break
            except OSError:
                assert time.monotonic() < deadline, "the published server never answered"
                time.sleep(0.2)
        with serving(b"from-host-address\n", host=addr) as hport, \
                serving(b"from-host-loopback\n") as lport:
            # (nc, as the other tests: the test image's static busybox wget crashes)
            get = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {} >> /{} 2>/dev/null"
            path = ctx("FROM BASE\nRUN touch /u /h /lo; " + "; ".join([
                get.format(f"{addr} {wport}", "u"), get.format(f"{addr} {hport}", "h"),
                # the host's 127.0.0.1: by the gateway, and by the host's own address
                get.format(f"10.0.2.2 {lport}", "lo"), get.format(f"{addr} {lport}", "lo"),
                get.format(f"127.0.0.1 {lport}", "lo")]) + "; true\n")
            out = rl("build", "-q", path, check=True).stdout.strip()
            with urllib.request.urlopen(f"http://127.0.0.1:{lport}/", timeout=5) as resp:
                assert resp.read() == b"from-host-loopback\n"  # it was up all along
        r = rl("run", "--rm", "--network", "none", out, "sh", "-c",
               "cat /u; echo =; cat /h; echo =; cat /lo", check=True)
        u, h, lo = r.stdout.split("=\n")
        assert "from-user-network" in u and "from-host-address" in h and lo == "", r.stdout
    finally:
        rl("rm", "-f", "websrv")
        rl("network", "rm", "buildnet")


def test_add_host_and_progress_quiet(rl, ctx):
    path = ctx("FROM BASE\nRUN grep db.example /etc/hosts > /hosts-line\n")
    out = rl("build", "--progress", "quiet", "--add-host", "db.example:10.1.2.3", path,
             check=True).stdout
    assert len(out.strip()) == 64 and "STEP" not in out
    r = rl("run", "--rm", out.strip(), "cat", "/hosts-line", check=True)
    assert r.stdout.split() == ["10.1.2.3", "db.example"]
    proc = rl("build", "--add-host", "nocolon", path)
    _one_line_error(proc)


def test_cache_owner_mode_and_prune_of_a_hostile_cache(rl, ctx, tmp_path):
    """A RUN step fills its cache mount with symlinks to the user's files outside and with
    files of a subordinate uid it then locks (mode 000); `rl builder prune` removes it all
    without following a link: the canary and its directory are unchanged."""
    canary_dir = tmp_path / "canary"
    canary_dir.mkdir()
    canary = canary_dir / "keep.txt"
    canary.write_text("precious\n")
    os.chmod(canary, 0o640)
    before = (sorted(os.listdir(canary_dir)), canary.read_text(),
              stat.S_IMODE(os.stat(canary).st_mode), stat.S_IMODE(os.stat(canary_dir).st_mode))
    path = ctx("FROM BASE\n"
               "RUN --mount=type=cache,target=/c,id=owned,uid=1000,gid=1000,mode=0750 "
               "stat -c '%u:%g %a' /c > /owner && "
               f"ln -s {canary_dir} /c/dirlink && ln -s {canary} /c/filelink && "
               f"ln -s {canary_dir} /c/data && mkdir -p /c/d/e && echo x > /c/d/e/f && "
               "chown -R 1000:1000 /c/d && chmod 000 /c/d/e /c/d\n")
    rl("build", "-t", "own:1", path, check=True)
    assert rl("run", "--rm", "own:1", "cat", "/owner", check=True).stdout == "1000:1000 750\n"
    caches = rl.root / "data" / "rl" / "build-cache-mounts"
    assert any(caches.iterdir())
    rl("builder", "prune", "-f", check=True)
    assert list(caches.iterdir()) == []
    after = (sorted(os.listdir(canary_dir)), canary.read_text(),
             stat.S_IMODE(os.stat(canary).st_mode), stat.S_IMODE(os.stat(canary_dir).st_mode))
    assert after == before


def test_shebang_heredoc_runs_as_a_script(rl, ctx):
    # run as a file, the script is its own $0; given to `sh -c`, $0 would be /bin/sh
    path = ctx("FROM BASE\n"
               "RUN <<EOF\n"
               "#!/bin/sh\n"
               "echo \"$0\" > /zero.txt\n"
               "EOF\n"
               "RUN <<EOF\n"
               "echo \"$0\" > /plain.txt\n"
               "EOF\n")
    rl("build", "-t", "doc:1", path, check=True)
    r = rl("run", "--rm", "doc:1", "sh", "-c", "cat /zero.txt /plain.txt; test -e /dev/pipes "
           "&& echo STUB; true", check=True)
    assert r.stdout.splitlines() == ["/dev/pipes/EOF", "/bin/sh"]


def test_ssh_agent_socket_is_forwarded(rl, ctx, tmp_path):
    import socket

    sock_path = tmp_path / "agent.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    server.listen(1)
    try:
        # busybox has no unix-socket client: the step checks the socket is there
        path = ctx("FROM BASE\n"
                   "RUN --mount=type=ssh,required=true "
                   "test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /sock\n")
        rl("build", "-t", "ssh:1", "--ssh", "default", path, check=True,
           env={"SSH_AUTH_SOCK": str(sock_path)})
        r = rl("run", "--rm", "ssh:1", "sh", "-c", "cat /sock; test -e /run/buildkit && "
               "echo STUB; true", check=True)
        assert r.stdout == "/run/buildkit/ssh_agent.0\n"
        proc = rl("build", "--no-cache", "-t", "ssh:2", path)  # no --ssh: it is required
        assert proc.returncode == 1 and "ssh agent 'default' is required" in proc.stderr
        assert "not found in the local store" in rl("image", "inspect", "ssh:2").stderr
    finally:
        server.close()


def test_context_from_stdin_and_from_git(rl, ctx, tmp_path):
    import subprocess

    # a Dockerfile on stdin: an empty context
    out = rl("build", "-q", "-t", "stdin:1", "-",
             input=f"FROM {ctx.base}\nRUN ls / > /list && echo piped > /p\n",
             check=True).stdout.strip()
    assert len(out) == 64
    assert rl("run", "--rm", "stdin:1", "cat", "/p", check=True).stdout == "piped\n"
    # a tar on stdin: its files are the context
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("Dockerfile", f"FROM {ctx.base}\nCOPY f.txt /f.txt\n"),
                           ("f.txt", "from the tar\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data.encode())
            tf.addfile(info, io.BytesIO(data.encode()))
    rl("build", "-q", "-t", "stdin:2", "-", input=buf.getvalue(), text=False, check=True)
    assert rl("run", "--rm", "stdin:2", "cat", "/f.txt", check=True).stdout == "from the tar\n"
    # a git repository: a tag and a subdirectory
    repo = tmp_path / "repo.git"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "app").mkdir()
    (repo / "app" / "Dockerfile").write_text(f"FROM {ctx.base}\nCOPY v.txt /v.txt\n")
    (repo / "app" / "v.txt").write_text("v1\n")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    subprocess.run([*git, "tag", "v1"], check=True)
    (repo / "app" / "v.txt").write_text("v2\n")
    subprocess.run([*git, "commit", "-q", "-am", "two"], check=True)
    rl("build", "-q", "-t", "git:1", f"file://{repo}#v1:app", check=True)
    assert rl("run", "--rm", "git:1", "cat", "/v.txt", check=True).stdout == "v1\n"
    rl("build", "-q", "-t", "git:2", f"file://{repo}#:app", check=True)
    assert rl("run", "--rm", "git:2", "cat", "/v.txt", check=True).stdout == "v2\n"
    # ADD of a git URL: cloned (not fetched with a GET), .git kept on request
    (ctx.dir / "Dockerfile").write_text(
        f"FROM {ctx.base}\nADD file://{repo}#v1:app /src/\n"
        f"ADD --keep-git-dir=true file://{repo} /full\n")
    rl("build", "-q", "-t", "git:add", str(ctx.dir), check=True)
    r = rl("run", "--rm", "git:add", "sh", "-c", "cat /src/v.txt /full/app/v.txt; "
           "ls -d /src/.git /full/.git 2>&1; true", check=True)
    assert r.stdout.splitlines()[:3] == ["v1", "v2", "ls: /src/.git: No such file or directory"]
    assert "/full/.git" in r.stdout
    # cached by the commit the ref names now: a new commit on the branch is fetched
    assert rl("build", str(ctx.dir), check=True).stdout.count("Using cache") == 2
    (repo / "app" / "v.txt").write_text("v3\n")
    subprocess.run([*git, "commit", "-q", "-am", "three"], check=True)
    out = rl("build", "-t", "git:add", str(ctx.dir), check=True).stdout
    assert out.count("Using cache") == 1  # the tag v1 did not move
    assert rl("run", "--rm", "git:add", "cat", "/full/app/v.txt", check=True
              ).stdout == "v3\n"
    # unreachable: one line, exit 1, nothing tagged
    proc = rl("build", "-t", "git:3", f"file://{tmp_path}/nope.git#main")
    _one_line_error(proc)
    assert "git fetch" in proc.stderr
    assert "not found in the local store" in rl("image", "inspect", "git:3").stderr


def test_cache_from_a_pushed_image_on_a_clean_store(rl, ctx, registry, tmp_path):
    from tests.support import users

    path = ctx("FROM BASE\nENV A=1\n"
               "RUN head -c 8 /dev/urandom | md5sum > /random\n"
               "COPY hello.txt /hello.txt\n")
    rl("build", "-t", "cached:1", path, check=True)
    first = rl("run", "--rm", "cached:1", "cat", "/random", check=True).stdout
    ref = registry.ref("buildcache/cached:v1")
    rl("push", "cached:1", ref, check=True)

    clean = users.make_runner(tmp_path / "rl2")
    clean.env["RL_ROOTFS_BACKEND"] = users.rootfs_backend()
    try:
        out = clean("build", "-t", "again:1", "--cache-from", ref, path, check=True).stdout
        assert out.count("(--cache-from)") == 2, out  # RUN and COPY
        again = clean("run", "--rm", "again:1", "cat", "/random", check=True).stdout
        assert again == first  # the RUN step did not run again: its layer was reused
        # a change in the context: COPY and what follows run, the RUN is still reused
        (ctx.dir / "hello.txt").write_text("changed\n")
        out = clean("build", "-t", "again:2", "--cache-from", ref, path, check=True).stdout
        assert out.count("(--cache-from)") == 0 and out.count("Using cache") == 2, out
        r = clean("run", "--rm", "again:2", "cat", "/random", "/hello.txt", check=True)
        assert r.stdout == first + "changed\n"
        out = clean("build", "--no-cache", "-t", "again:3", "--cache-from", ref, path,
                    check=True).stdout
        assert "Using cache" not in out  # --no-cache: nothing reused
        proc = clean("build", "--cache-from", "type=gha", path)
        assert proc.returncode == 1 and "--cache-from" in proc.stderr
        # the same through a directory: --cache-to type=local, then a third clean store
        cache_dir = tmp_path / "cachedir"
        rl("build", "-q", "-t", "cached:1", "--cache-to", f"type=local,dest={cache_dir}",
           path, check=True)
        third = users.make_runner(tmp_path / "rl3")
        third.env["RL_ROOTFS_BACKEND"] = users.rootfs_backend()
        out = third("build", "-t", "again:4", "--cache-from",
                    f"type=local,src={cache_dir}", path, check=True).stdout
        assert out.count("(--cache-from)") >= 1, out  # the RUN at least (COPY: edited)
        r = third("run", "--rm", "again:4", "cat", "/random", check=True)
        assert r.stdout == first
        users.stop_fuse_zygotes(third.root / "run" / "rl")
    finally:
        ids = clean("ps", "-aq", timeout=30).stdout.split()
        if ids:
            clean("rm", "-f", *ids, timeout=60)
        users.stop_fuse_zygotes(clean.root / "run" / "rl")


def test_named_build_contexts(rl, ctx, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "f.txt").write_text("from lib\n")
    path = ctx("FROM mybase\n"
               "COPY --from=lib f.txt /lib.txt\n"
               "RUN --mount=type=bind,from=lib,target=/l cat /l/f.txt > /mounted.txt\n")
    rl("build", "-t", "named:1", "--build-context", f"lib={lib}",
       "--build-context", f"mybase=docker-image://{ctx.base}", path, check=True)
    r = rl("run", "--rm", "named:1", "cat", "/lib.txt", "/mounted.txt", check=True)
    assert r.stdout == "from lib\nfrom lib\n"
    # the named directory's content is part of the cache key
    (lib / "f.txt").write_text("changed\n")
    rl("build", "-t", "named:2", "--build-context", f"lib={lib}",
       "--build-context", f"mybase=docker-image://{ctx.base}", path, check=True)
    r = rl("run", "--rm", "named:2", "cat", "/lib.txt", "/mounted.txt", check=True)
    assert r.stdout == "changed\nchanged\n"
    for bad in ("x=oci-layout://somewhere", "novalue", f"x={tmp_path}/missing",
                "x=https://example.invalid/ctx"):
        _one_line_error(rl("build", "--build-context", bad, path))
    # an OCI layout directory as the base
    archive = tmp_path / "layout.tar"
    layout = tmp_path / "layout"
    rl("save", "--format", "oci-archive", "-o", str(archive), "named:2", check=True)
    with tarfile.open(archive) as tf:
        tf.extractall(layout)
    (ctx.dir / "Dockerfile").write_text("FROM fromlayout\nRUN cat /lib.txt > /again.txt\n")
    rl("build", "-t", "named:3", "--build-context", f"fromlayout=oci-layout://{layout}",
       str(ctx.dir), check=True)
    r = rl("run", "--rm", "named:3", "cat", "/again.txt", check=True)
    assert r.stdout == "changed\n"


def test_cache_mounts_in_system_df_and_builder_prune_asks(rl, ctx):
    import json

    path = ctx("FROM BASE\nRUN --mount=type=cache,target=/c,id=sized "
               "head -c 100000 /dev/zero > /c/blob\n")
    rl("build", path, check=True)
    rl("build", "--no-cache", path, check=True)

    def df() -> tuple[dict, list[dict]]:
        rows = [json.loads(x) for x in
                rl("system", "df", "--format", "json", check=True).stdout.splitlines()]
        doc = json.loads(rl("system", "df", "-v", "--format", "json", check=True).stdout)
        # (without the times: "1 second ago" moves on)
        return {r["Type"]: r for r in rows}["Build Cache"], [
            {k: v for k, v in e.items() if not k.endswith("Since")} for e in doc["BuildCache"]]

    row, entries = df()
    [mount] = [e for e in entries if e["CacheType"] == "exec.cachemount"]
    assert mount["Size"] == "102kB" and mount["UsageCount"] == "2", mount
    assert int(row["TotalCount"]) >= 1 and row["Active"] == "0"
    table = rl("system", "df", "-v", check=True).stdout
    assert [mount["ID"], "exec.cachemount", "102kB"] in [ln.split()[:3] for ln in
                                                        table.splitlines()], table
    # Docker's prompt: no answer is a no (exit 1), nothing removed
    r = rl("builder", "prune", input="")
    assert r.returncode == 1 and r.stdout.startswith(
        "WARNING! This will remove all dangling build cache. Are you sure you want to "
        "continue? [y/N] "), r.stdout
    assert "builder prune has been cancelled" in r.stderr
    r = rl("builder", "prune", "-a", input="n\n")
    assert r.returncode == 1 and "remove all build cache. Are you sure" in r.stdout
    assert df()[1] == entries
    # a filter on the type keeps the cache mount; a bad filter is refused before asking
    rl("builder", "prune", "-f", "--filter", "type=regular", check=True)
    assert [e for e in df()[1] if e["CacheType"] == "exec.cachemount"] == [mount]
    r = rl("builder", "prune", "--filter", "type=nope", input="y\n")
    assert r.returncode == 125 and "WARNING" not in r.stdout
    out = rl("builder", "prune", input="y\n", check=True).stdout.splitlines()
    # (the prompt ends without a newline: the answer's was typed, not printed)
    assert out[0].endswith("[y/N] Deleted build cache objects:") and mount["ID"] in out
    assert out[-1].startswith("Total reclaimed space: ") and out[-1] != \
        "Total reclaimed space: 0B"
    row, entries = df()
    assert row["TotalCount"] == str(len(entries)) and not [
        e for e in entries if e["CacheType"] == "exec.cachemount"]


def test_mount_values_take_build_args(rl, ctx):
    path = ctx("FROM BASE\nARG CID=one\nARG DIR=/cachedir\n"
               "RUN --mount=type=cache,id=$CID,target=$DIR "
               "ls $DIR > /seen; touch $DIR/mark-$CID\n")
    rl("build", "--build-arg", "CID=a", path, check=True)
    out = rl("build", "-q", "--build-arg", "CID=b", path, check=True).stdout.strip()
    # another id: another cache, empty
    assert rl("run", "--rm", out, "cat", "/seen", check=True).stdout == ""
    out = rl("build", "-q", "--no-cache", "--build-arg", "CID=a", path,
             check=True).stdout.strip()
    assert rl("run", "--rm", out, "cat", "/seen", check=True).stdout == "mark-a\n"


def test_pull_checks_the_registry_for_from_images(rl, ctx, registry):
    ref2 = registry.ref("pulltest/base:1")
    rl("push", ctx.base, ref2, check=True)
    rl("pull", "-q", ref2, check=True)  # the local copy: plain busybox
    newer = ctx(f"FROM {ctx.base}\nRUN touch /newer\n")
    rl("build", "-t", "newer:1", newer, check=True)
    rl("push", "newer:1", ref2, check=True)  # the registry's tag moves on
    path = ctx(f"FROM {ref2}\nRUN test -e /newer && echo new > /r || echo old > /r\n")
    out = rl("build", "-q", path, check=True).stdout.strip()
    assert rl("run", "--rm", out, "cat", "/r", check=True).stdout == "old\n"
    out = rl("build", "-q", "--pull", path, check=True).stdout.strip()
    assert rl("run", "--rm", out, "cat", "/r", check=True).stdout == "new\n"

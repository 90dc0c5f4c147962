"""rl build: instructions, layers from RUN, COPY, cache, multi-stage, errors; commit and
export of containers."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from tests.support.httpserver import serving

DOCKERFILE = """\
FROM BASE
ARG GREETING=hello
ENV APP=/app
WORKDIR /app
COPY hello.txt ./
COPY sub /app/sub/
RUN echo "$GREETING from run" > /app/run.txt && mkdir -p /home/bob && \\
    echo x > /home/bob/f && chown -R 1234:1234 /home/bob && chmod 0640 /home/bob/f && \\
    rm /etc/group
CMD ["cat", "/app/hello.txt", "/app/run.txt"]
"""


def test_build_run_copy_cache_and_layers(rl, ctx):
    path = ctx(DOCKERFILE)
    proc = rl("build", "-t", "built:1", "--build-arg", "GREETING=salut", path, check=True)
    assert "STEP 8/8" in proc.stdout and "Using cache" not in proc.stdout
    assert rl("run", "--rm", "built:1", check=True).stdout == "hi\nsalut from run\n"
    r = rl("run", "--rm", "built:1", "sh", "-c",
           "stat -c '%u:%g %a' /home/bob/f; ls /app/sub; test -e /etc/group || echo gone; "
           "echo $APP; pwd; ls /app", check=True)
    assert r.stdout.split() == ["1234:1234", "640", "a.txt", "gone", "/app", "/app",
                                "hello.txt", "run.txt", "sub"]
    info = json.loads(rl("image", "inspect", "built:1", check=True).stdout)[0]
    assert len(info["RootFS"]["Layers"]) == 1 + 3  # busybox + COPY, COPY, RUN
    assert info["Config"]["WorkingDir"] == "/app"
    assert "APP=/app" in info["Config"]["Env"]
    assert not any(e.startswith("GREETING=") for e in info["Config"]["Env"])
    # everything cached the second time
    proc = rl("build", "-t", "built:2", "--build-arg", "GREETING=salut", path, check=True)
    assert proc.stdout.count("Using cache") == 7
    info2 = json.loads(rl("image", "inspect", "built:2", check=True).stdout)[0]
    assert info2["Id"] == info["Id"]
    # another build arg value: from the ARG step on, RUN is rebuilt
    proc = rl("build", "-q", path, check=True)
    assert len(proc.stdout.strip()) == 64 and "STEP" not in proc.stdout
    # editing the COPYed file rebuilds from that step only
    (ctx.dir / "hello.txt").write_text("changed\n")
    proc = rl("build", "-t", "built:3", "--build-arg", "GREETING=salut", path, check=True)
    assert proc.stdout.count("Using cache") == 3
    assert rl("run", "--rm", "built:3", check=True).stdout == "changed\nsalut from run\n"
    hist = rl("history", "built:3", check=True).stdout
    assert "COPY hello.txt" in hist


def test_multistage_copy_from_and_scratch(rl, ctx):
    path = ctx("""\
FROM BASE AS builder
RUN mkdir -p /out && echo made > /out/artifact && echo junk > /junk
FROM scratch
COPY --from=builder /out/artifact /artifact
COPY --from=builder /bin/busybox /bin/busybox
ENTRYPOINT ["/bin/busybox"]
CMD ["cat", "/artifact"]
""")
    rl("build", "-t", "multi:1", path, check=True)
    assert rl("run", "--rm", "multi:1", check=True).stdout == "made\n"
    r = rl("run", "--rm", "multi:1", "ls", "/")
    assert r.stdout.split() == ["artifact", "bin"] or "junk" not in r.stdout
    info = json.loads(rl("image", "inspect", "multi:1", check=True).stdout)[0]
    assert len(info["RootFS"]["Layers"]) == 2
    # --target builds only the first stage
    rl("build", "--target", "builder", "-t", "multi:builder", path, check=True)
    assert rl("run", "--rm", "multi:builder", "cat", "/junk", check=True).stdout == "junk\n"


@pytest.mark.parametrize("text, needle", [
    ("FROM BASE\nFROBNICATE x\n", "Dockerfile:2"),
    ("FROM BASE\nCOPY missing.txt /x\n", "Dockerfile:2"),
    ("FROM BASE\nCOPY ../outside /x\n", "Dockerfile:2"),
    ("FROM BASE\nCOPY --from=nostage /x /y\n", "Dockerfile:2"),
    ("FROM BASE\nCOPY --from=3 /x /y\n", "Dockerfile:2"),
    ("FROM BASE\nRUN echo before; exit 3\n", "Dockerfile:2"),
    ("ARG V\nFROM $V\n", "Dockerfile:2"),
])
def test_build_errors_name_the_line_and_tag_nothing(rl, ctx, text, needle):
    path = ctx(text)
    before = rl("images", "-q").stdout
    proc = rl("build", "-t", "bad:1", path)
    assert proc.returncode != 0
    assert needle in proc.stderr, proc.stderr
    if "exit 3" in text:
        assert "exit code 3" in proc.stderr
    assert "not found in the local store" in rl("image", "inspect", "bad:1").stderr
    assert before is not None


def test_build_missing_context(rl, tmp_path):
    proc = rl("build", str(tmp_path / "nope"))
    assert proc.returncode == 1 and "no such directory" in proc.stderr


def test_commit_and_export(rl, pulled, tmp_path):
    ref = pulled("busybox:latest")
    rl("run", "--name", "c1", ref, "sh", "-c",
       "echo data > /made && chown 77:88 /made && rm /etc/passwd", check=True)
    out = rl("commit", "-c", 'CMD ["cat", "/made"]', "c1", "committed:1", check=True)
    assert len(out.stdout.strip()) == 64
    assert rl("run", "--rm", "committed:1", check=True).stdout == "data\n"
    r = rl("run", "--rm", "committed:1", "sh", "-c",
           "stat -c '%u:%g' /made; test -e /etc/passwd || echo gone", check=True)
    assert r.stdout.split() == ["77:88", "gone"]
    exported = tmp_path / "c1.tar"
    rl("export", "-o", str(exported), "c1", check=True)
    with tarfile.open(exported) as tf:
        m = tf.getmember("made")
        assert (m.uid, m.gid) == (77, 88)
        assert tf.extractfile(m).read() == b"data\n"
        names = set(tf.getnames())
    assert "bin/busybox" in names and "etc/passwd" not in names
    proc = rl("export", "c1", text=False, check=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tf:
        assert "made" in tf.getnames()
    proc = rl("commit", "nosuch", "x:1")
    assert proc.returncode == 125


def test_timestamp_makes_builds_reproducible(rl, ctx):
    path = ctx("FROM BASE\nCOPY sub /sub\nRUN echo x > /made && mkdir /d\nENV A=1\n")
    first = rl("build", "-q", "--no-cache", "--timestamp", "0", path, check=True).stdout
    (ctx.dir / "sub" / "a.txt").touch()  # a newer mtime, same content
    second = rl("build", "-q", "--no-cache", "--timestamp", "0", path, check=True).stdout
    assert first == second and len(first.strip()) == 64
    info = json.loads(rl("image", "inspect", first.strip(), check=True).stdout)[0]
    assert info["Created"].startswith("1970-01-01T00:00:00")
    r = rl("run", "--rm", first.strip(), "stat", "-c", "%Y", "/made", "/sub/a.txt",
           check=True)
    assert r.stdout.split() == ["0", "0"]


def test_copy_chown_chmod_wildcards_and_add_archive(rl, ctx):
    d = ctx.dir
    (d / "w1.cfg").write_text("1\n")
    (d / "w2.cfg").write_text("2\n")
    inner = d / "inner"
    inner.mkdir()
    (inner / "in.txt").write_text("in\n")
    with tarfile.open(d / "arch.tar.gz", "w:gz") as tf:
        tf.add(inner / "in.txt", arcname="x/in.txt")
    path = ctx("""\
FROM BASE
COPY --chown=user:nobody --chmod=0600 hello.txt /owned
COPY --chown=1000 *.cfg /cfg/
ADD arch.tar.gz /unpacked/
""")
    rl("build", "-t", "perm:1", path, check=True)
    r = rl("run", "--rm", "perm:1", "sh", "-c",
           "stat -c '%u:%g %a' /owned /cfg/w1.cfg; ls /cfg; cat /unpacked/x/in.txt",
           check=True)
    assert r.stdout.split() == ["1000:65534", "600", "1000:1000", "644", "w1.cfg", "w2.cfg",
                                "in"]
    proc = rl("build", ctx("FROM BASE\nCOPY ignored.txt /x\n"))  # .dockerignore'd
    assert proc.returncode == 1 and "Dockerfile:2" in proc.stderr
    bad = ctx("FROM BASE\nCOPY --chown=nosuchuser hello.txt /x\n")
    proc = rl("build", bad)
    assert proc.returncode == 1 and "Dockerfile:2" in proc.stderr and "nosuchuser" in \
        proc.stderr


def test_onbuild_triggers_run_in_the_child_build(rl, ctx):
    rl("build", "-t", "parent:1", ctx("FROM BASE\nONBUILD RUN echo triggered > /trig\n"),
       check=True)
    info = json.loads(rl("image", "inspect", "parent:1", check=True).stdout)[0]
    assert info["Config"]["OnBuild"] == ["RUN echo triggered > /trig"]
    proc = rl("build", "-t", "child:1",
              ctx("FROM localhost/parent:1\nCMD [\"cat\", \"/trig\"]\n"), check=True)
    assert "ONBUILD RUN echo triggered" in proc.stdout
    assert rl("run", "--rm", "child:1", check=True).stdout == "triggered\n"
    info = json.loads(rl("image", "inspect", "child:1", check=True).stdout)[0]
    assert not info["Config"].get("OnBuild")


def test_platform_picks_the_base_of_that_platform(rl, ctx, registry):
    multi = registry.ref("multiarch:latest")
    path = ctx(f"FROM {multi}\nLABEL x=y\n")
    image_id = rl("build", "-q", "--platform", "linux/arm64", path, check=True).stdout.strip()
    info = json.loads(rl("image", "inspect", image_id, check=True).stdout)[0]
    assert info["Architecture"] == "arm64"
    assert info["Config"]["Labels"] == {"x": "y"}


@pytest.fixture
def http_file():
    """A local web server serving one file: (url, sha256 digest)."""
    import hashlib

    body = b"downloaded content\n"
    with serving(body, "/files/data.txt") as port:
        yield (f"http://127.0.0.1:{port}/files/data.txt",
               "sha256:" + hashlib.sha256(body).hexdigest())


def test_copy_heredoc_and_add_url_with_checksum(rl, ctx, http_file):
    url, digest = http_file
    path = ctx(f"""\
FROM BASE
ARG WHO=world
COPY <<EOF /greeting
hello $WHO
EOF
ADD --checksum={digest} {url} /dl/
""")
    rl("build", "-t", "here:1", path, check=True)
    r = rl("run", "--rm", "here:1", "sh", "-c",
           "cat /greeting /dl/data.txt; stat -c %a /dl/data.txt", check=True)
    assert r.stdout == "hello world\ndownloaded content\n600\n"
    bad = ctx(f"FROM BASE\nADD --checksum=sha256:{'0' * 64} {url} /dl/\n")
    proc = rl("build", "-t", "here:2", bad)
    assert proc.returncode == 1 and "Dockerfile:2" in proc.stderr and "checksum" in \
        proc.stderr
    assert "not found in the local store" in rl("image", "inspect", "here:2").stderr


def test_run_network_none_and_unsupported_mount(rl, ctx):
    path = ctx("FROM BASE\n"
               "RUN --network=none cat /proc/net/dev | tail -n +3 | wc -l > /ifaces\n")
    rl("build", "-t", "net:1", path, check=True)
    assert rl("run", "--rm", "net:1", "cat", "/ifaces", check=True).stdout.strip() == "1"
    proc = rl("build", ctx("FROM BASE\nRUN --mount=type=nosuch,target=/c true\n"))
    assert proc.returncode == 1 and "Dockerfile:2" in proc.stderr and "--mount" in \
        proc.stderr and "unknown mount type" in proc.stderr


def test_intermediate_images_are_hidden_unless_all(rl, ctx):
    path = ctx("FROM BASE\nENV A=1\nRUN echo one > /one\nRUN echo two > /two\n")
    final = "sha256:" + rl("build", "-q", "-t", "steps:1", path, check=True).stdout.strip()
    shown = rl("images", "-q", "--no-trunc", check=True).stdout.split()
    every = rl("images", "-a", "-q", "--no-trunc", check=True).stdout.split()
    assert final in shown and final in every
    hidden = set(every) - set(shown)
    # ENV and the first RUN made untagged parents of later steps: shown only with -a.
    assert len(hidden) == 2
    listed = rl("images", check=True).stdout
    assert "<none>" not in listed


def test_copy_exclude_parents_and_dockerignore_below_a_source(rl, ctx):
    (ctx.dir / "sub" / "b.log").write_text("log\n")
    (ctx.dir / "sub" / "deep").mkdir()
    (ctx.dir / "sub" / "deep" / "c.txt").write_text("c\n")
    (ctx.dir / "sub" / "deep" / "ignored.txt").write_text("no\n")
    (ctx.dir / ".dockerignore").write_text("ignored.txt\n**/ignored.txt\n")
    path = ctx("FROM BASE\n"
               "COPY --exclude=*.log sub /ex/\n"
               "COPY --parents sub/deep/c.txt hello.txt /par/\n"
               "COPY --parents ./sub/./deep/c.txt /piv/\n"
               "COPY --exclude=sub --exclude=Dockerfile . /all/\n")
    rl("build", "-t", "flags:1", path, check=True)
    r = rl("run", "--rm", "flags:1", "sh", "-c",
           "cd /ex && find . | sort; echo =; cd /par && find . -type f | sort; echo =; "
           "cd /piv && find . -type f; echo =; cd /all && find . | sort", check=True)
    ex, par, piv, every = r.stdout.split("=\n")
    assert ex.split() == [".", "./a.txt", "./deep", "./deep/c.txt"]
    assert par.split() == ["./hello.txt", "./sub/deep/c.txt"]
    assert piv.split() == ["./deep/c.txt"]
    assert every.split() == [".", "./.dockerignore", "./hello.txt"]


def test_healthcheck_is_recorded_with_every_duration(rl, ctx):
    path = ctx("FROM BASE\nHEALTHCHECK --interval=5s --timeout=2s --start-period=1s "
               "--start-interval=500ms --retries=4 CMD true\n")
    rl("build", "-q", "-t", "hc:1", path, check=True)
    hc = json.loads(rl("image", "inspect", "hc:1", check=True).stdout)[0]["Config"]["Healthcheck"]
    assert hc == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000,
                  "Timeout": 2_000_000_000, "StartPeriod": 1_000_000_000,
                  "StartInterval": 500_000_000, "Retries": 4}


def test_add_url_is_cached_by_what_the_server_holds(rl, ctx):
    """BuildKit checks the remote: a changed file is not served from a stale step; an
    unchanged one is not downloaded again (a conditional GET answered 304)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    served = {"body": b"v1\n", "etag": '"1"', "200": 0, "304": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            etag = served["etag"]
            if etag and self.headers.get("If-None-Match") == etag:
                served["304"] += 1
                self.send_response(304)
                self.end_headers()
                return
            served["200"] += 1
            self.send_response(200)
            if etag:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(served["body"])))
            self.end_headers()
            self.wfile.write(served["body"])

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/f.txt"
        path = ctx(f"FROM BASE\nADD {url} /f.txt\nRUN cat /f.txt > /seen\n")

        def build() -> tuple[str, int]:
            out = rl("build", "-t", "addurl:1", path, check=True).stdout
            seen = rl("run", "--rm", "addurl:1", "cat", "/seen", check=True).stdout
            return seen, out.count("Using cache")

        assert build() == ("v1\n", 0)
        assert (served["200"], served["304"]) == (1, 0)  # one download serves key and step
        assert build() == ("v1\n", 2)  # unchanged: both steps cached, nothing downloaded
        assert (served["200"], served["304"]) == (1, 1)
        served.update(body=b"v2\n", etag='"2"')
        assert build() == ("v2\n", 0)  # changed: not the stale step
        # a server without validators: the body is fetched and its digest decides
        served.update(etag=None)
        assert build() == ("v2\n", 2)
        served.update(body=b"v3\n")
        assert build() == ("v3\n", 0)
    finally:
        server.shutdown()
        server.server_close()

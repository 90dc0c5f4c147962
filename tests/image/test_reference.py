"""Reference parsing and normalisation (Docker's rules) and registries.conf merging."""

from __future__ import annotations

import pytest

from rootless.errors import InvalidArgument, RlError
from rootless.image import reference, registries_conf

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, expected", [
    ("python", "docker.io/library/python:latest"),
    ("python:3.11", "docker.io/library/python:3.11"),
    ("library/python", "docker.io/library/python:latest"),
    ("user/app:v1", "docker.io/user/app:v1"),
    ("docker.io/python", "docker.io/library/python:latest"),
    ("index.docker.io/library/python", "docker.io/library/python:latest"),
    ("quay.io/a/b/c:tag", "quay.io/a/b/c:tag"),
    ("localhost/app", "localhost/app:latest"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest"),
    (f"host:5000/a/b@{DIGEST}", f"host:5000/a/b@{DIGEST}"),
    (f"python:3.11@{DIGEST}", f"docker.io/library/python:3.11@{DIGEST}"),
    ("a.b/c_d__e-f.g", "a.b/c_d__e-f.g:latest"),
])
def test_normalize(text, expected):
    assert reference.normalize(text) == expected


def test_short_names_and_domains():
    ref = reference.parse("python:3.11")
    assert ref.is_short and ref.familiar() == "python"
    assert str(ref.with_domain("quay.io")) == "quay.io/python:3.11"
    assert str(ref.with_domain("docker.io")) == "docker.io/library/python:3.11"
    assert not reference.parse("quay.io/python").is_short


@pytest.mark.parametrize("text", [
    "", " python", "Python", "python:", "python:-bad", "a//b", "a/", "/a", "a@sha256:12",
    "a@md5:" + "0" * 40, "https://docker.io/python", "a:b:c", "UPPER.io:x/y", "x" * 300,
])
def test_invalid(text):
    with pytest.raises(InvalidArgument):
        reference.parse(text)


def test_registries_conf_merge_and_rewrite(tmp_path):
    first = tmp_path / "a.conf"
    second = tmp_path / "b.conf"
    first.write_text('unqualified-search-registries = ["quay.io"]\n'
                     '[[registry]]\nprefix = "docker.io"\nlocation = "mirror.a:5000"\n'
                     '[[registry]]\nlocation = "plain.example"\ninsecure = true\n')
    second.write_text('unqualified-search-registries = ["docker.io", "quay.io"]\n'
                      '[[registry]]\nprefix = "docker.io/library"\nlocation = "127.0.0.1:1/lib"\n'
                      '[[registry.mirror]]\nlocation = "m.example/x"\n'
                      '[[registry]]\nprefix = "*.corp.example"\nblocked = true\n')
    conf = registries_conf.load([first, tmp_path / "missing.conf", second])
    assert conf.search_registries() == ["docker.io", "quay.io"]
    srcs = conf.sources(reference.parse("busybox"))
    assert [(s.endpoint.host, s.repository, s.is_mirror) for s in srcs] == [
        ("m.example", "x/busybox", True), ("127.0.0.1:1", "lib/busybox", False)]
    assert srcs[1].endpoint.insecure and not srcs[0].endpoint.insecure  # loopback
    other = conf.sources(reference.parse("docker.io/user/app"))
    assert [(s.endpoint.host, s.repository) for s in other] == [("mirror.a:5000", "user/app")]
    plain = conf.sources(reference.parse("plain.example/app"))
    assert plain[0].endpoint.insecure
    hub = registries_conf.load([]).sources(reference.parse("busybox"))
    assert hub[0].endpoint.host == "registry-1.docker.io" and not hub[0].endpoint.insecure
    with pytest.raises(RlError, match="blocked"):
        conf.sources(reference.parse("reg.corp.example/app"))


def test_registries_conf_errors(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("unqualified-search-registries = [\n")
    with pytest.raises(RlError, match="not valid TOML"):
        registries_conf.load([bad])
    bad.write_text('unqualified-search-registries = "docker.io"\n')
    with pytest.raises(RlError, match="list of strings"):
        registries_conf.load([bad])


def test_loopback_is_insecure():
    for host in ("localhost", "localhost:5000", "127.0.0.1", "127.1.2.3:80", "[::1]:5000"):
        assert registries_conf.is_loopback(host), host
    for host in ("docker.io", "10.0.0.1:5000", "example.localhost.com"):
        assert not registries_conf.is_loopback(host), host


def test_registries_conf_v1_format(tmp_path):
    old = tmp_path / "v1.conf"
    old.write_text("[registries.search]\nregistries = ['quay.io', 'docker.io']\n"
                   "[registries.insecure]\nregistries = ['plain.example:5000']\n"
                   "[registries.block]\nregistries = ['bad.example']\n")
    conf = registries_conf.load([old])
    assert conf.search_registries() == ["quay.io", "docker.io"]
    assert conf.sources(reference.parse("plain.example:5000/a"))[0].endpoint.insecure
    with pytest.raises(RlError, match="blocked"):
        conf.sources(reference.parse("bad.example/a"))

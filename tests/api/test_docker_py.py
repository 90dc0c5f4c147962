"""docker-py (PyPI `docker`) and testcontainers, as CI suites use them, against rl."""

from __future__ import annotations

import io
import tarfile
import time
import urllib.request

import pytest

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.slow


@pytest.fixture
def client(service):
    c = docker.DockerClient(base_url=service.host, timeout=120)
    yield c
    c.close()


def _http_get(host: str, port: int, path: str) -> bytes:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as r:
                return r.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_object_api(client):
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.43"
    lines = list(client.api.pull("busybox", tag="latest", stream=True, decode=True))
    statuses = [x.get("status", "") for x in lines]
    assert any(s.startswith("Digest: sha256:") for s in statuses)
    assert any(s in ("Pull complete", "Already exists") for s in statuses)
    assert any("busybox:latest" in i.tags for i in client.images.list())

    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"],
                                remove=True, stderr=True)
    assert b"out\n" in out
    with pytest.raises(docker.errors.ContainerError) as failed:
        client.containers.run("busybox", ["sh", "-c", "exit 7"], remove=True)
    assert failed.value.exit_status == 7

    c = client.containers.run("busybox", ["sh", "-c", "echo to-out; echo to-err >&2; "
                                          "sleep 300"], detach=True, name="pyc",
                              environment={"K": "v"}, labels={"ci": "yes"})
    try:
        c.reload()
        assert c.status == "running"
        assert c.labels["ci"] == "yes"
        time.sleep(0.5)
        assert c.logs(stdout=True, stderr=False) == b"to-out\n"
        assert c.logs(stdout=False, stderr=True) == b"to-err\n"
        code, output = c.exec_run(["sh", "-c", "echo $K; exit 2"])
        assert (code, output) == (2, b"v\n")
        assert [x.name for x in client.containers.list(filters={"label": "ci=yes"})] == ["pyc"]
        # the engine's pause: no delegated cgroup v2 freezer on these hosts, so refused
        with pytest.raises(docker.errors.APIError) as refused:
            c.pause()
        assert "cannot pause container pyc: no cgroup freezer" in str(refused.value)

        assert c.put_archive("/tmp", _tar({"a/put.txt": b"put\n"}))
        stream, stat = c.get_archive("/tmp/a/put.txt")
        assert stat["name"] == "put.txt" and stat["size"] == 4
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            assert tar.extractfile("put.txt").read() == b"put\n"
        with pytest.raises(docker.errors.NotFound):
            c.get_archive("/no/such/file")
    finally:
        c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("pyc")


def test_ports_networks_volumes(client, service):
    client.images.pull("busybox", tag="latest")
    web = client.containers.run("busybox", ["sh", "-c", "mkdir /www && echo py > /www/i && "
                                            "httpd -f -p 8080 -h /www"],
                                detach=True, ports={"8080/tcp": ("127.0.0.1", None)})
    try:
        web.reload()
        port = int(web.ports["8080/tcp"][0]["HostPort"])
        assert _http_get("127.0.0.1", port, "/i") == b"py\n"
    finally:
        web.remove(force=True)

    first = client.networks.create("pyfirst")
    net = client.networks.create("pynet")
    vol = client.volumes.create("pyvol")
    server = client.containers.run("busybox", ["sleep", "300"], detach=True, name="server",
                                   network="pyfirst",
                                   volumes={"pyvol": {"bind": "/data", "mode": "rw"}})
    try:
        net.connect(server, aliases=["backend"])
        server.exec_run(["sh", "-c", "echo shared > /data/f"])
        probe = client.containers.run(
            "busybox", ["sh", "-c", "ping -c1 -W5 backend >/dev/null && cat /data/f"],
            network="pynet", volumes={"pyvol": {"bind": "/data", "mode": "ro"}},
            remove=True)
        assert probe == b"shared\n"
        net.reload()
        assert server.id in net.attrs["Containers"]
        # a container on the default network (slirp4netns) cannot change networks, as
        # with rootless podman: a 400 in Docker's body, the reason and the fix, the
        # engine's error that `rl network connect` prints; nothing changed
        plain = client.containers.run("busybox", ["sleep", "300"], detach=True,
                                      name="plain")
        try:
            with pytest.raises(docker.errors.APIError) as refused:
                net.connect(plain)
            assert refused.value.status_code == 400
            message = refused.value.explanation
            assert "uses --network slirp4netns, not a user-defined network" in message
            assert "recreate it with --network NAME" in message
            cli = service.runner("network", "connect", "pynet", "plain")
            assert cli.returncode == 125
            assert cli.stderr.strip() == f"rl: error: {message}"
            plain.reload()
            assert "pynet" not in plain.attrs["NetworkSettings"]["Networks"]
            net.reload()
            assert plain.id not in net.attrs["Containers"]
        finally:
            plain.remove(force=True)
    finally:
        server.remove(force=True)
        net.remove()
        first.remove()
        vol.remove()


def test_build(client, tmp_path):
    client.images.pull("busybox", tag="latest")
    (tmp_path / "Dockerfile").write_text("FROM busybox\nARG WHO=nobody\n"
                                         "RUN echo built-for-$WHO > /built\n"
                                         "LABEL made=by-test\n")
    image, logs = client.images.build(path=str(tmp_path), tag="pybuilt:1",
                                      buildargs={"WHO": "ci"})
    text = "".join(x.get("stream", "") for x in logs)
    assert "echo built-for-$WHO" in text and "Successfully tagged" in text
    # rl names a short name's build as podman does (localhost/NAME); clients find it by
    # the name they gave
    assert client.images.get("pybuilt:1").id == image.id
    assert any(t.endswith("pybuilt:1") for t in image.tags)
    assert image.labels["made"] == "by-test"
    assert client.containers.run("pybuilt:1", ["cat", "/built"], remove=True) == b"built-for-ci\n"

    ctx = _tar({"Containerfile.ci": b"FROM busybox\nCOPY hello /hello\nCMD [\"cat\", \"/hello\"]\n",
                "hello": b"from a custom context\n"})
    client.images.build(fileobj=io.BytesIO(ctx), custom_context=True,
                                    dockerfile="Containerfile.ci", tag="pyctx")
    assert client.containers.run("pyctx", remove=True) == b"from a custom context\n"
    with pytest.raises(docker.errors.BuildError):
        client.images.build(fileobj=io.BytesIO(_tar({"Dockerfile": b"FROM busybox\n"
                                                                  b"RUN exit 9\n"})),
                            custom_context=True)
    client.images.remove("pyctx")
    client.images.remove(image.id, force=True)


def test_testcontainers(service, monkeypatch):
    tc = pytest.importorskip("testcontainers.core.container")
    from testcontainers.core.config import ConnectionMode
    from testcontainers.core.config import testcontainers_config as tc_config

    monkeypatch.setenv("DOCKER_HOST", service.host)
    # no reaper container (ryuk is an image from Docker Hub); the test removes its own
    monkeypatch.setattr(tc_config, "ryuk_disabled", True)
    # CI machines are often containers themselves (/.dockerenv), where testcontainers
    # would reach ports through the container's gateway; rl publishes on the host
    # (TESTCONTAINERS_CONNECTION_MODE=docker_host)
    monkeypatch.setattr(tc_config, "connection_mode_override", ConnectionMode.docker_host)
    service.docker("pull", "busybox", check=True)
    container = (tc.DockerContainer("busybox")
                 .with_command(["sh", "-c", "mkdir /www && echo tc > /www/i && "
                                "httpd -f -p 8080 -h /www"])
                 .with_exposed_ports(8080))
    with container:
        host = container.get_container_host_ip()
        port = int(container.get_exposed_port(8080))
        assert _http_get(host, port, "/i") == b"tc\n"


def test_wait_next_exit_returns_at_a_restart(client, service):
    """Docker's next-exit: the next exit after the call; a `rl restart` of the running
    container is one (its row is running again before the next look at it)."""
    import threading

    client.images.pull("busybox", tag="latest")
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, name="nx")
    try:
        got: list = []
        waiter = threading.Thread(
            target=lambda: got.append(c.wait(condition="next-exit", timeout=60)))
        waiter.start()
        time.sleep(0.5)
        assert not got  # running: no exit yet
        # the request may reach the service after a restart under load: then the next
        # restart is its next exit
        for _ in range(5):
            service.runner("restart", "-t", "0", "nx", check=True)
            waiter.join(10)
            if got:
                break
        assert got and got[0]["StatusCode"] == 137  # SIGKILL at once (-t 0)
        c.reload()
        assert c.status == "running"  # and it runs again
        # not-running (the default) on a running container: until it stops
        got.clear()
        waiter = threading.Thread(target=lambda: got.append(c.wait(timeout=60)))
        waiter.start()
        time.sleep(0.3)
        assert not got
        c.kill()
        waiter.join(60)
        assert got and got[0]["StatusCode"] == 137
    finally:
        c.remove(force=True)

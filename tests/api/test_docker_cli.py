"""The real docker CLI driving rl through the socket: the steps of a CI script."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def test_pull_images_inspect_rmi(service):
    out = service.docker("pull", "busybox", check=True)
    assert "busybox" in out.stdout
    images = service.docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=True)
    assert "busybox:latest" in images.stdout.split()
    doc = json.loads(service.docker("image", "inspect", "busybox", check=True).stdout)
    assert doc[0]["Id"].startswith("sha256:")
    service.docker("tag", "busybox", "mybox:1", check=True)
    assert "mybox:1" in service.docker("images", "--format", "{{.Repository}}:{{.Tag}}",
                                       check=True).stdout
    service.docker("rmi", "mybox:1", check=True)
    assert "mybox:1" not in service.docker("images", "--format",
                                           "{{.Repository}}:{{.Tag}}").stdout
    missing = service.docker("pull", "no-such-image-here")
    assert missing.returncode != 0


def test_detached_lifecycle(service, rl):
    service.docker("pull", "busybox", check=True)
    cid = service.docker("run", "-d", "--name", "worker", "-e", "GREETING=hello",
                         "-w", "/tmp", "busybox", "sh", "-c",
                         "echo $GREETING from $(pwd); echo oops >&2; sleep 300",
                         check=True).stdout.strip()
    assert len(cid) == 64
    ps = service.docker("ps", "--format", "{{.Names}} {{.Status}}", check=True).stdout
    assert "worker Up" in ps
    # the same store as the CLI: rl sees it
    assert "worker" in rl("ps", "--format", "{{.Names}}", check=True).stdout
    doc = json.loads(service.docker("inspect", "worker", check=True).stdout)[0]
    assert doc["State"]["Running"] is True
    assert doc["Name"] == "/worker"
    assert "GREETING=hello" in doc["Config"]["Env"]
    logs = service.docker("logs", "worker", check=True)
    assert logs.stdout == "hello from /tmp\n"
    assert logs.stderr == "oops\n"
    assert service.docker("start", "worker").returncode == 0  # 304: already running
    service.docker("stop", "-t", "1", "worker", check=True)
    code = service.docker("wait", "worker", check=True).stdout.strip()
    assert code in ("137", "143")
    conflict = service.docker("rm", "worker")
    assert conflict.returncode == 0
    assert "worker" not in service.docker("ps", "-a", "--format", "{{.Names}}").stdout


def test_rm_running_needs_force(service):
    service.docker("pull", "busybox", check=True)
    service.docker("run", "-d", "--name", "busy", "busybox", "sleep", "300", check=True)
    refused = service.docker("rm", "busy")
    assert refused.returncode != 0 and "running" in refused.stderr
    service.docker("rm", "-f", "busy", check=True)
    missing = service.docker("inspect", "busy")
    assert missing.returncode != 0 and "no such" in missing.stderr.lower()


def test_published_port(service):
    service.docker("pull", "busybox", check=True)
    service.docker("run", "-d", "--name", "web", "-p", "127.0.0.1::8080", "busybox", "sh",
                   "-c", "mkdir -p /www && echo served > /www/index.html && "
                   "httpd -f -p 8080 -h /www", check=True)
    port = service.docker("port", "web", "8080", check=True).stdout.strip()
    host_port = int(port.rsplit(":", 1)[1])

    deadline = time.monotonic() + 20
    body = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/", timeout=5) as r:
                body = r.read()
            break
        except OSError:
            time.sleep(0.2)
    assert body == b"served\n"
    service.docker("rm", "-f", "web", check=True)


def test_cp_both_ways(service, tmp_path):
    service.docker("pull", "busybox", check=True)
    service.docker("run", "-d", "--name", "box", "busybox", "sleep", "300", check=True)
    src = tmp_path / "hello.txt"
    src.write_text("from the host\n")
    service.docker("cp", str(src), "box:/tmp/", check=True)
    out = tmp_path / "out"
    out.mkdir()
    service.docker("cp", "box:/tmp/hello.txt", str(out / "back.txt"), check=True)
    assert (out / "back.txt").read_text() == "from the host\n"
    service.docker("cp", "box:/etc/passwd", str(out), check=True)
    assert (out / "passwd").read_text().startswith("root:")
    service.docker("rm", "-f", "box", check=True)


def test_volumes_and_networks(service):
    service.docker("pull", "busybox", check=True)
    service.docker("volume", "create", "data", check=True)
    assert "data" in service.docker("volume", "ls", "--format", "{{.Name}}", check=True).stdout
    service.docker("run", "-d", "--name", "writer", "-v", "data:/data", "busybox", "sh", "-c",
                   "echo kept > /data/f", check=True)
    service.docker("wait", "writer", check=True)
    service.docker("run", "-d", "--name", "reader", "-v", "data:/data:ro", "busybox", "sh",
                   "-c", "cat /data/f; touch /data/g || echo read-only", check=True)
    service.docker("wait", "reader", check=True)
    assert service.docker("logs", "reader", check=True).stdout.split() == ["kept", "read-only"]
    service.docker("rm", "writer", "reader", check=True)
    service.docker("volume", "rm", "data", check=True)

    service.docker("network", "create", "ci-net", check=True)
    doc = json.loads(service.docker("network", "inspect", "ci-net", check=True).stdout)[0]
    assert doc["Name"] == "ci-net"
    service.docker("run", "-d", "--name", "db", "--network", "ci-net", "--network-alias",
                   "database", "busybox", "sleep", "300", check=True)
    service.docker("run", "-d", "--name", "app", "--network", "ci-net", "busybox", "sh", "-c",
                   "ping -c1 -W5 db >/dev/null && echo by-name; "
                   "ping -c1 -W5 database >/dev/null && echo by-alias", check=True)
    assert service.docker("wait", "app", check=True).stdout.strip() == "0"
    assert service.docker("logs", "app", check=True).stdout.split() == ["by-name", "by-alias"]
    service.docker("rm", "-f", "db", "app", check=True)
    service.docker("network", "rm", "ci-net", check=True)


def test_run_foreground(service):
    service.docker("pull", "busybox", check=True)
    out = service.docker("run", "--rm", "busybox", "echo", "hello", check=True)
    assert out.stdout == "hello\n"
    failed = service.docker("run", "--rm", "busybox", "sh", "-c", "echo err >&2; exit 3")
    assert failed.returncode == 3
    assert failed.stderr == "err\n"
    env = service.docker("run", "--rm", "-e", "A=1", "-w", "/etc", "-u", "1000", "busybox",
                         "sh", "-c", "echo $A $(pwd) $(id -u)", check=True)
    assert env.stdout == "1 /etc 1000\n"
    piped = service.docker("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z",
                           input="from stdin\n", check=True)
    assert piped.stdout == "FROM STDIN\n"
    kept = service.docker("run", "--name", "kept", "busybox", "sh", "-c", "exit 5")
    assert kept.returncode == 5
    assert service.docker("inspect", "-f", "{{.State.ExitCode}}", "kept",
                          check=True).stdout.strip() == "5"
    service.docker("rm", "kept", check=True)
    assert service.docker("ps", "-aq", check=True).stdout.strip() == ""


def test_exec_and_follow(service):
    service.docker("pull", "busybox", check=True)
    service.docker("run", "-d", "--name", "svc", "busybox", "sh", "-c",
                   "for i in 1 2 3; do echo line$i; sleep 0.3; done; sleep 300", check=True)
    out = service.docker("exec", "svc", "sh", "-c", "echo inside; echo e >&2; exit 4")
    assert out.returncode == 4
    assert out.stdout == "inside\n" and out.stderr == "e\n"
    fed = service.docker("exec", "-i", "svc", "cat", input="via exec\n", check=True)
    assert fed.stdout == "via exec\n"
    # detach keys of an exec are refused through the API, with the reason, not ignored
    keys = service.docker("exec", "-i", "--detach-keys", "ctrl-x", "svc", "true")
    assert keys.returncode != 0 and "DetachKeys is not supported" in keys.stderr, keys.stderr
    import subprocess

    follow = subprocess.Popen([*_docker(service), "logs", "-f", "svc"], env=service.client_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        got = [follow.stdout.readline() for _ in range(3)]
        assert got == ["line1\n", "line2\n", "line3\n"]
        time.sleep(0.2)
        assert follow.poll() is None  # still following
    finally:
        follow.kill()
        follow.wait()
    service.docker("rm", "-f", "svc", check=True)
    # the service went on after its client was killed
    assert service.docker("ps", "-q", check=True).returncode == 0


def _docker(service) -> list[str]:
    from tests.api.conftest import docker_cli

    return [docker_cli()]


def test_run_it_through_a_pty(service):
    """`docker run -it` under a real terminal: a tty of the client's size that follows
    it, typed input echoed by the container's terminal, Ctrl-C to its foreground process,
    the exit code."""
    import pexpect

    from tests.api.conftest import docker_cli

    service.docker("pull", "busybox", check=True)
    child = pexpect.spawn(docker_cli(), ["run", "-it", "--rm", "--name", "tty", "busybox",
                                         "sh"], env=service.client_env(), encoding="utf-8",
                          timeout=30, dimensions=(30, 100))
    try:
        child.expect("# ")
        child.sendline("echo typed-$((6*7)); tty; stty size")
        child.expect_exact("echo typed-$((6*7)); tty; stty size")  # the echo of the typing
        child.expect("typed-42")
        child.expect("/dev/pts/0")
        child.expect("30 100")
        child.setwinsize(40, 120)
        child.sendline("stty size")
        child.expect("40 120")
        child.sendline("sleep 100")
        child.expect("sleep 100")
        time.sleep(0.5)  # let the shell start it: a ^C while it reads the line is its own
        child.sendcontrol("c")
        child.expect("# ")
        child.sendline("exit 7")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 7
    finally:
        if child.isalive():
            child.terminate(force=True)
    assert service.docker("ps", "-aq", check=True).stdout.strip() == ""


def test_build_with_the_classic_builder(service, tmp_path):
    """`docker build` with DOCKER_BUILDKIT=0 (the client's env here): the context tar goes
    to /build; steps stream back; the image runs; a failing RUN fails the build."""
    service.docker("pull", "busybox", check=True)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nARG WHO=nobody\nCOPY hello.txt /hello\n"
                                    "RUN echo built-for-$WHO > /built\nLABEL team=ci\n"
                                    'CMD ["cat", "/hello", "/built"]\n')
    (ctx / "hello.txt").write_text("hello\n")
    (ctx / ".dockerignore").write_text("secret\n")
    (ctx / "secret").write_text("not sent\n")
    # --no-cache: the build's steps take a while, long enough for the store's sweep of
    # its tmp area to have removed the context, as it once did
    built = service.docker("build", "--no-cache", "-t", "cibuilt:1", "--build-arg",
                           "WHO=ci", "--label", "by=cli", str(ctx), check=True)
    assert "Successfully built" in built.stdout
    assert "Successfully tagged cibuilt:1" in built.stdout
    ran = service.docker("run", "--rm", "cibuilt:1", check=True)
    assert ran.stdout == "hello\nbuilt-for-ci\n"
    labels = json.loads(service.docker("inspect", "-f", "{{json .Config.Labels}}",
                                       "cibuilt:1", check=True).stdout)
    assert labels == {"team": "ci", "by": "cli"}
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY secret /\n")
    refused = service.docker("build", "-t", "cibuilt:2", str(ctx))
    assert refused.returncode != 0 and "secret" in refused.stderr
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo failing; exit 3\n")
    failed = service.docker("build", "-t", "cibuilt:3", str(ctx))
    assert failed.returncode != 0
    assert "failing" in failed.stdout and "3" in failed.stderr
    assert "cibuilt" not in service.docker("images", "--format", "{{.Repository}}:{{.Tag}}",
                                           "cibuilt:3", check=True).stdout
    service.docker("rmi", "cibuilt:1", check=True)


def test_run_attached_with_a_restart_policy(service):
    """An attached `docker run` (its monitor stays whole: a client from before the start)
    with a restart policy: the client gets the first exit code, the policy restarts the
    container after it, as Docker's daemon does."""
    service.docker("pull", "busybox", check=True)
    r = service.docker("run", "--name", "flaky", "--restart", "on-failure:2", "busybox",
                       "sh", "-c", "echo try; exit 3")
    assert r.returncode == 3 and r.stdout == "try\n"
    deadline = time.monotonic() + 60
    while True:
        state = service.docker("inspect", "-f", "{{.RestartCount}} {{.State.Status}}",
                               "flaky", check=True).stdout.split()
        if state == ["2", "exited"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert state == ["2", "exited"]
    assert service.docker("logs", "flaky", check=True).stdout == "try\n" * 3
    service.docker("rm", "flaky", check=True)

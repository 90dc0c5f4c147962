"""The service itself: who may connect, HTTP edge cases, clients that go away, idle exit,
socket activation, the TCP listener, API version prefixes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.support import users


def _raw(sock_path, data: bytes, *, read: bool = True) -> bytes:
    """Send raw bytes on a fresh connection; the whole answer (until the server closes or
    a complete Content-Length body arrived)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(str(sock_path))
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
            head, sep, body = out.partition(b"\r\n\r\n")
            if sep:
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:") and \
                            len(body) >= int(line.split(b":")[1]):
                        return out
    finally:
        s.close()


def _get(sock_path, path: str) -> tuple[int, dict, bytes]:
    out = _raw(sock_path, f"GET {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".encode())
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_socket_is_private(service):
    st = os.stat(service.sock)
    assert st.st_mode & 0o777 == 0o600
    assert os.stat(service.sock.parent).st_mode & 0o777 == 0o700


def test_versions_and_errors(service):
    status, headers, body = _get(service.sock, "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["api-version"] == "1.43"
    head = _raw(service.sock, b"HEAD /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
    for prefix in ("", "/v1.24", "/v1.43", "/v1.47"):
        status, _, body = _get(service.sock, f"{prefix}/version")
        assert status == 200 and json.loads(body)["ApiVersion"] == "1.43"
    status, _, body = _get(service.sock, "/v1.23/version")
    assert status == 400 and "too old" in json.loads(body)["message"]
    status, _, body = _get(service.sock, "/v1.43/no/such/thing")
    assert status == 404 and "message" in json.loads(body)
    status, _, body = _get(service.sock, "/containers/nope/json")
    assert status == 404 and "nope" in json.loads(body)["message"]


def test_malformed_requests_leave_the_service_running(service):
    assert _raw(service.sock, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    huge = b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    assert _raw(service.sock, huge).startswith(b"HTTP/1.1 431")
    big_body = (b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: "
                b"application/json\r\nContent-Length: 20000000\r\n\r\n")
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(str(service.sock))
    s.sendall(big_body)
    try:
        for _ in range(20):
            s.sendall(b" " * 1_000_000)
    except OSError:
        pass  # the service answered and closed
    answer = s.recv(65536)
    s.close()
    assert answer.startswith(b"HTTP/1.1 413")
    bad_json = _raw(service.sock, b"POST /containers/create HTTP/1.1\r\nHost: d\r\n"
                    b"Content-Length: 5\r\nConnection: close\r\n\r\n{nope")
    assert bad_json.startswith(b"HTTP/1.1 400")
    # a body cut short by a client that goes away
    _raw(service.sock, b"POST /build HTTP/1.1\r\nHost: d\r\nContent-Length: 100000\r\n\r\n"
         + b"x" * 1000, read=False)
    # a chunked body (as docker-py sends build contexts) is read as one
    chunked = _raw(service.sock, b"POST /containers/create HTTP/1.1\r\nHost: d\r\n"
                   b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                   b"5\r\n{\"Ima\r\n8\r\nge\": \"\"}\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.1 400") and b"Image is required" in chunked
    assert _get(service.sock, "/_ping")[0] == 200
    # nothing of the bodies is left in the store's tmp area
    assert not [p for p in (service.runner.data_dir / "tmp").iterdir()
                if p.name.startswith("api-")]


def test_keep_alive(service):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(str(service.sock))
    f = s.makefile("rb")
    for _ in range(3):
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
        status = f.readline()
        assert status.startswith(b"HTTP/1.1 200")
        length = 0
        while (line := f.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        assert f.read(length) == b"OK"
    s.close()


def test_other_users_and_namespaces_are_refused(service):
    # another user: the socket's mode keeps it out
    if users.nosub_available():
        probe = ("import socket,sys; s=socket.socket(socket.AF_UNIX); "
                 f"s.connect({str(service.sock)!r})")
        r = users.run_as_nosub([sys.executable, "-c", probe])
        assert r.returncode != 0 and "Permission denied" in r.stderr
    # our own uid, but from a user namespace (as a process of one of our containers would
    # be if the socket were mounted into it): refused by the peer check, and logged
    unshare = shutil.which("unshare")
    users.need(unshare is not None, "unshare(1) is missing")
    # (the service answers a refused peer at once, before it sends anything)
    client = (f"import socket; s=socket.socket(socket.AF_UNIX); s.connect({str(service.sock)!r});"
              "print(s.recv(4096).decode())")
    r = subprocess.run([unshare, "--user", "--map-root-user", sys.executable, "-c", client],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("HTTP/1.1 403")
    assert "another user namespace" in r.stdout
    assert "refused a connection" in service.log.read_text()
    assert _get(service.sock, "/_ping")[0] == 200


@pytest.mark.slow
def test_clients_killed_mid_attach_and_mid_pull(service):
    service.docker("pull", "busybox", check=True)
    client = subprocess.Popen([_docker(), "run", "-i", "--name", "talker", "busybox", "sh",
                               "-c", "echo ready; cat; sleep 300"], env=service.client_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert client.stdout.readline() == b"ready\n"
    finally:
        client.kill()
        client.wait()
    ps = service.docker("ps", "--format", "{{.Names}} {{.State}}", check=True)
    assert "talker running" in ps.stdout
    # a pull whose client leaves at once
    _raw(service.sock, b"POST /images/create?fromImage=layered&tag=latest HTTP/1.1\r\n"
         b"Host: d\r\nContent-Length: 0\r\n\r\n", read=False)
    assert _get(service.sock, "/_ping")[0] == 200
    # an events stream whose client leaves
    _raw(service.sock, b"GET /events HTTP/1.1\r\nHost: d\r\n\r\n", read=False)
    service.docker("rm", "-f", "talker", check=True)
    assert service.docker("ps", "-aq", check=True).stdout.strip() == ""


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


@pytest.mark.slow
def test_a_wait_whose_client_left_ends(service):
    """A wait holds a worker thread while its client is connected; once the client goes,
    the thread ends although the container runs on (trio keeps an idle worker thread
    for 10 s: the count drops by the 20 waits after that)."""
    service.docker("pull", "busybox", check=True)
    cid = service.docker("run", "-d", "busybox", "sleep", "300", check=True).stdout.strip()
    clients = []
    try:
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(30)
            s.connect(str(service.sock))
            s.sendall(f"POST /containers/{cid}/wait HTTP/1.1\r\nHost: d\r\n"
                      "Content-Length: 0\r\n\r\n".encode())
            assert s.recv(65536).startswith(b"HTTP/1.1 200")  # the head, at once
            clients.append(s)
        peak = _threads(service.proc.pid)  # a thread each, waiting (and idle ones)
    finally:
        for s in clients:
            s.close()
    deadline = time.monotonic() + 60
    while _threads(service.proc.pid) > peak - 20 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _threads(service.proc.pid) <= peak - 20, (peak, _threads(service.proc.pid))
    ps = service.docker("ps", "--format", "{{.ID}} {{.State}}", check=True).stdout
    assert f"{cid[:12]} running" in ps
    service.docker("rm", "-f", cid, check=True)


def _docker() -> str:
    from tests.api.conftest import docker_cli

    return docker_cli()


def test_idle_exit(rl, tmp_path):
    from tests.api.conftest import Service

    svc = Service(rl, tmp_path)
    svc.start("--time", "1")
    try:
        # a connected client keeps it
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(svc.sock))
        s.sendall(b"GET /events HTTP/1.1\r\nHost: d\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        with pytest.raises(subprocess.TimeoutExpired):
            svc.proc.wait(3)
        s.close()
        assert svc.proc.wait(30) == 0
        assert not svc.sock.exists()  # its socket goes with it
    finally:
        svc.stop()


def test_socket_activation(rl, tmp_path):
    activate = shutil.which("systemd-socket-activate")
    users.need(activate is not None, "systemd-socket-activate is missing (systemd package)")
    sock = tmp_path / "activated.sock"
    env = {k: v for k, v in rl.env.items() if v is not None}
    proc = subprocess.Popen([activate, "-l", str(sock), users.rl_executable(), "system",
                             "service", "--time", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        status, _, body = _get(sock, "/_ping")  # the first connection starts rl
        assert (status, body) == (200, b"OK")
        assert _get(sock, "/version")[0] == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert "systemd socket activation" in out


def test_tcp_listener_is_explicit_and_warned(rl, tmp_path):
    from tests.support.registry import free_port

    port = free_port()
    env = {k: v for k, v in rl.env.items() if v is not None}
    refused = subprocess.run([users.rl_executable(), "system", "service",
                              f"tcp://0.0.0.0:{port}"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode != 0 and "loopback only" in refused.stderr
    proc = subprocess.Popen([users.rl_executable(), "system", "service", "--time", "0",
                             f"tcp://127.0.0.1:{port}"], env=env, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        first = proc.stderr.readline()
        assert "warning" in first and "every local user" in first
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
                    assert s.recv(4096).startswith(b"HTTP/1.1 200")
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_info_prints_docker_host(rl):
    out = rl("info", check=True).stdout
    assert f"export DOCKER_HOST=unix://{rl.root}/run/rl/rl.sock" in out


def test_create_answers_the_engines_warnings(rl, tmp_path, monkeypatch):
    """What the engine says through warn= crosses the forker into create's Warnings,
    which the docker CLI prints: here the single-mapping warning of a user without a
    subordinate id range (the service's idmap reads empty subuid/subgid files; the forker
    and its workers are forks of it)."""
    from tests.api import conftest

    empty = tmp_path / "empty-subids"
    empty.write_text("")
    wrapper = tmp_path / "rl-without-subids"
    wrapper.write_text(f"#!{sys.executable}\n"
                       "from rootless.runtime import idmap\n"
                       f"idmap.SUBUID_FILE = idmap.SUBGID_FILE = {str(empty)!r}\n"
                       "from rootless.cli.main import main\n"
                       "main()\n")
    wrapper.chmod(0o755)
    monkeypatch.setattr(conftest.users, "rl_executable", lambda: str(wrapper))
    svc = conftest.Service(rl, tmp_path)
    svc.start("--time", "0")
    try:
        svc.docker("pull", "busybox", check=True)
        r = svc.docker("create", "--name", "warned", "busybox", "true", check=True)
        warnings = [line for line in r.stderr.splitlines() if line.startswith("WARNING")]
        assert len(warnings) == 1, r.stderr
        assert "no subordinate id range" in warnings[0]
        assert "usermod --add-subuids" in warnings[0]
        svc.docker("rm", "warned", check=True)
    finally:
        svc.stop()

"""Namespaces for the network tests: each test gets user+net namespaces of its own, made
with unshare(1) as the test user, and everything started in them is killed afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import users
from tests.volumes.ctr import ctr_images, rlc  # noqa: F401  (real containers)

BUSYBOX = "/bin/busybox"


class Netns:
    """A process holding a new user namespace (the test user as root) and net namespace."""

    def __init__(self, holder: subprocess.Popen, enter: list[str]) -> None:
        self.holder = holder
        self.pid = holder.pid
        self._enter = enter
        self.children: list[subprocess.Popen] = []

    def cmd(self, *args: str) -> list[str]:
        return [*self._enter, "-t", str(self.pid), *args]

    def run(self, *args: str, timeout: float = 20, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout,
                              check=check)

    def spawn(self, *args: str, **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(self.cmd(*args), **kw)
        self.children.append(proc)
        return proc

    def close(self) -> None:
        for proc in [*self.children, self.holder]:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _wait_unshared(pid: int, reference: str) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            # unshare writes the id maps after unsharing: wait for its exec of sleep
            if (os.readlink(f"/proc/{pid}/ns/net") != reference
                    and Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"):
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"process {pid} did not enter a new network namespace")


def make_netns(parent: Netns | int | None = None, own_user: bool = False) -> Netns:
    """A fresh user+net namespace. Inside `parent` (a Netns or the pid of a process holding
    user+net namespaces): a new net namespace owned by the parent's user namespace, or with
    own_user a new user namespace under it too."""
    enter = ["nsenter", "--preserve-credentials", "-U", "-n"]
    if parent is None:
        ref = os.readlink("/proc/self/ns/net")
        cmd = ["unshare", "--user", "--map-root-user", "--net", "sleep", "600"]
    else:
        ppid = parent if isinstance(parent, int) else parent.pid
        ref = os.readlink(f"/proc/{ppid}/ns/net")
        flags = ["--user", "--map-root-user"] if own_user else []
        cmd = [*enter, "-t", str(ppid), "unshare", *flags, "--net", "sleep", "600"]
    # unshare and nsenter (without -p) exec in place: holder.pid is the namespace holder.
    holder = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    ns = Netns(holder, enter)
    try:
        _wait_unshared(holder.pid, ref)
        ns.run(BUSYBOX, "ip", "link", "set", "lo", "up")
    except BaseException:
        ns.close()
        raise
    return ns


@pytest.fixture
def netns_factory():
    users.need(shutil.which("unshare") is not None and shutil.which("nsenter") is not None,
               "util-linux unshare/nsenter missing")
    users.need(os.path.exists(BUSYBOX), "busybox-static is not installed")
    made: list[Netns] = []

    def factory(parent: Netns | int | None = None, own_user: bool = False) -> Netns:
        ns = make_netns(parent, own_user)
        made.append(ns)
        return ns

    yield factory
    for ns in reversed(made):
        ns.close()


@pytest.fixture
def netns(netns_factory) -> Netns:
    return netns_factory()


@pytest.fixture
def sockdir():
    """A short directory for API sockets (unix socket paths are limited to 107 bytes)."""
    users.need(shutil.which("slirp4netns") is not None, "slirp4netns is not installed")
    path = Path(tempfile.mkdtemp(prefix="rlnet-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def webroot(tmp_path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("hello from the namespace\n")
    cgi = root / "cgi-bin"
    cgi.mkdir()
    script = cgi / "peer"
    script.write_text(f"#!{BUSYBOX} sh\necho 'Content-Type: text/plain'\necho\n"
                      "echo \"$REMOTE_ADDR\"\n")
    script.chmod(0o755)
    tmp_path.chmod(0o755)
    return root


def http_get(url: str, timeout: float = 10.0) -> str:
    """GET url, retrying while the server inside the namespace is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return resp.read().decode()
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="session")
def udpecho_image(ctr_images, tmp_path_factory):  # noqa: F811  (the fixture above)
    """`udpecho` in the test registry: busybox + /usr/local/bin/udpecho (udpecho.c, built
    here with gcc -static: busybox has no UDP server applet); it runs `udpecho PORT`."""
    from tests.support import images

    return images.push_static_probe(ctr_images, tmp_path_factory.mktemp("udpecho"),
                                    Path(__file__).with_name("udpecho.c"), "udpecho",
                                    ["udpecho", "5353"])

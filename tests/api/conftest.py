"""Fixtures for the Docker API service tests: `rl system service` started for a test's
own store (the test images pulled from the test registry), real clients pointed at it
through DOCKER_HOST, and everything stopped at the end: the service, then every container
the test made."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.runtime.conftest import REGISTRIES_CONF, Runner, _extra_env
from tests.support import users


class Service:
    def __init__(self, runner: Runner, tmp: Path) -> None:
        self.runner = runner
        self.sock = runner.root / "run" / "rl" / "rl.sock"
        self.log = tmp / "service.log"
        self.docker_config = tmp / "docker-config"
        self.docker_config.mkdir()
        self.proc: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def start(self, *args: str) -> None:
        env = {k: v for k, v in self.runner.env.items() if v is not None}
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([users.rl_executable(), "system", "service", *args],
                                     env=env, stdout=self.logf, stderr=self.logf,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the service exited: {self.log.read_text()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(self.sock))
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the service did not listen within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.logf.close()

    def client_env(self) -> dict[str, str]:
        env = {k: v for k, v in self.runner.env.items() if v is not None}
        env.update(DOCKER_HOST=self.host, DOCKER_CONFIG=str(self.docker_config),
                   DOCKER_BUILDKIT="0")
        return env

    def docker(self, *args: str, input: str | bytes | None = None, timeout: float = 120,
               check: bool = False, text: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([docker_cli(), *args], env=self.client_env(), input=input,
                              capture_output=True, timeout=timeout, text=text)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}\n"
                                 f"service log: {self.log.read_text()[-3000:]}")
        return proc


def docker_cli() -> str:
    path = shutil.which("docker")
    users.need(path is not None, "no docker CLI on PATH (contrib/prepare-host.sh installs "
               "Debian's docker.io)")
    return path


@pytest.fixture
def rl(registry, tmp_path):
    root = tmp_path / "rl"
    for sub in ("data", "config", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "run", 0o700)
    runner = Runner(root, extra_env=_extra_env())
    runner.config_dir.mkdir(parents=True, exist_ok=True)
    (runner.config_dir / "registries.conf").write_text(REGISTRIES_CONF.format(host=registry.host))
    yield runner
    runner.cleanup()


@pytest.fixture
def service(rl, tmp_path):
    """The service on the runner's default socket, never idling out; stopped at the end
    (before the runner's cleanup removes the containers)."""
    svc = Service(rl, tmp_path)
    svc.start("--time", "0")
    yield svc
    svc.stop()

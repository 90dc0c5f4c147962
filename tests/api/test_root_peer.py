"""As root (the root pass): root may open the user's socket despite its mode, and the
service's peer check refuses it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support import users

pytestmark = pytest.mark.asroot


def test_root_is_refused_by_the_peer_check():
    rl = users.rl_executable()
    root = Path(tempfile.mkdtemp(prefix="rl-api-root.", dir="/tmp"))
    try:
        for sub in ("data", "config", "run"):
            (root / sub).mkdir()
        shutil.chown(root, "rltest")
        for p in root.iterdir():
            shutil.chown(p, "rltest")
        os.chmod(root / "run", 0o700)
        env = {"HOME": "/home/rltest", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
               "XDG_DATA_HOME": f"{root}/data", "XDG_CONFIG_HOME": f"{root}/config",
               "XDG_RUNTIME_DIR": f"{root}/run", "RL_FUSE_ZYGOTE": "0"}
        log = root / "service.log"
        with open(log, "wb") as logf:
            proc = subprocess.Popen(["runuser", "-u", "rltest", "--", "env", "-i",
                                     *(f"{k}={v}" for k, v in env.items()), rl, "system",
                                     "service", "--time", "0"], stdout=logf, stderr=logf,
                                    start_new_session=True)
        sock = root / "run" / "rl" / "rl.sock"
        try:
            deadline = time.monotonic() + 30
            while not sock.exists():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(30)
                s.connect(str(sock))  # root passes the file's mode
                answer = s.recv(4096).decode()
            assert answer.startswith("HTTP/1.1 403")
            assert "uid 0" in answer
            deadline = time.monotonic() + 10
            while "refused a connection: uid 0" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(30)
    finally:
        shutil.rmtree(root, ignore_errors=True)

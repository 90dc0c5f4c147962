"""Fixtures for fuse_overlay: a worker process in a user + mount namespace (single id
mapping: `unshare --map-root-user`; full subuid mapping: `--map-users=auto`), where the
scenarios of scenarios.py mount fuse_overlay and the kernel's overlayfs.

The worker is the only thing that mounts; its mount namespace dies with it, so nothing stays
mounted whatever happens. It removes its own files (owned by subordinate ids in the full
mapping, which the test user could not remove) before it exits.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from tests.support import users

HERE = os.path.dirname(os.path.abspath(__file__))
UNSHARE = {
    "single": ["unshare", "--user", "--map-root-user", "--mount"],
    "full": ["unshare", "--user", "--map-users=auto", "--map-groups=auto", "--map-root-user",
             "--mount"],
}


class NsError(AssertionError):
    """A scenario raised inside the namespace (the text holds its traceback)."""


class NsWorker:
    def __init__(self, mapping: str, base: str) -> None:
        self.mapping = mapping
        self.base = base
        r, w = os.pipe()
        env = dict(os.environ)
        env["PATH"] = os.path.dirname(sys.executable) + ":" + env.get("PATH", "/usr/bin:/bin")
        env["FO_TEST_BASE"] = base
        self.proc = subprocess.Popen(
            [*UNSHARE[mapping], sys.executable, os.path.join(HERE, "nsworker.py"), str(w)],
            stdin=subprocess.PIPE, pass_fds=(w,), env=env, start_new_session=True, text=True)
        os.close(w)
        self.answers = os.fdopen(r, "r")

    def __call__(self, fn: str, *args):
        """Run scenarios.fn(*args) in the namespace; returns its result, raises on error."""
        self.proc.stdin.write(json.dumps({"fn": fn, "args": list(args)}) + "\n")
        self.proc.stdin.flush()
        line = self.answers.readline()
        if not line:
            raise RuntimeError(f"namespace worker died (exit {self.proc.wait()})")
        answer = json.loads(line)
        if "error" in answer:
            raise NsError(f"{fn} failed in the namespace:\n{answer['error']}")
        return answer["ok"]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self("remove_tree", self.base)
                self.proc.stdin.close()
                self.proc.wait(timeout=20)
        except Exception:
            pass
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self.answers.close()
            shutil.rmtree(self.base, ignore_errors=True)


def _usable(mapping: str) -> bool:
    r = subprocess.run([*UNSHARE[mapping], "true"], capture_output=True)
    return r.returncode == 0


def _worker(tmp_path_factory, mapping: str):
    users.need(shutil.which("unshare") is not None, "util-linux unshare is not installed")
    users.need(os.path.exists("/dev/fuse"), "/dev/fuse is missing")
    users.need(_usable(mapping), f"cannot create a user namespace ({mapping} mapping) here")
    # not below pytest's 0700 basetemp: other users of the namespace must reach the mounts
    base = tempfile.mkdtemp(prefix=f"fo-{mapping}-")
    os.chmod(base, 0o755)
    worker = NsWorker(mapping, base)
    return worker


@pytest.fixture(scope="session")
def ns_single(tmp_path_factory):
    """The worker in a namespace mapping only the test user (to uid 0)."""
    w = _worker(tmp_path_factory, "single")
    yield w
    w.close()


@pytest.fixture(scope="session")
def ns_full(tmp_path_factory):
    """The worker in a namespace with the test user's whole subuid/subgid range."""
    w = _worker(tmp_path_factory, "full")
    yield w
    w.close()


@pytest.fixture(params=["single", "full"])
def ns(request):
    """Each test using it runs once per id mapping."""
    return request.getfixturevalue(f"ns_{request.param}")

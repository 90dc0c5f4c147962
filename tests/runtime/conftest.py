"""Fixtures for the container runtime tests: `rl` runners (the real console script, with
the test images pulled from the test registry into a store of their own) for the test user
and for `rlnosub`, and cleanup that removes every container a test made, also when the test
failed."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from tests.support import users

REGISTRIES_CONF = """
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "docker.io/library"
location = "{host}"
"""


class Runner(users.RlRunner):
    """users.RlRunner with the warm fuse zygote on (the default start path), and cleanup."""

    def argv(self, *args) -> list[str]:
        """The command line (for pexpect or Popen) with the environment set by the caller."""
        return [users.rl_executable(), *args]

    def cleanup(self) -> None:
        ids = self("ps", "-aq", timeout=30, check=True).stdout.split()
        if ids:
            self("rm", "-f", *ids, timeout=60)
        users.stop_fuse_zygotes(self.root / "run" / "rl")


def _extra_env() -> dict[str, str]:
    return {"RL_ROOTFS_BACKEND": users.rootfs_backend(), "RL_FUSE_ZYGOTE": "1"}


@pytest.fixture
def rl(registry, tmp_path):
    root = tmp_path / "rl"
    for sub in ("data", "config", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "run", 0o700)
    runner = Runner(root, extra_env=_extra_env())
    runner.config_dir.mkdir(parents=True, exist_ok=True)
    (runner.config_dir / "registries.conf").write_text(REGISTRIES_CONF.format(host=registry.host))
    runner("pull", "-q", "busybox", check=True)
    runner("pull", "-q", "layered", check=True)
    yield runner
    runner.cleanup()


@pytest.fixture
def rl_nosub(registry):
    """`rl` as rlnosub (no subuid range), its busybox pulled from the test registry."""
    users.need(users.nosub_available(),
               f"user {users.NOSUB_USER} not reachable through sudo")
    base = users.make_nosub_runner()
    runner = Runner(base.root, prefix=base.prefix,
                    extra_env={"HOME": f"/home/{users.NOSUB_USER}", "XDG_RUNTIME_DIR": None,
                               **_extra_env()})
    runner.env.pop("XDG_RUNTIME_DIR", None)
    try:
        conf = runner.config_dir / "registries.conf"
        users.run_as_nosub(["sh", "-c", f"mkdir -p {shlex.quote(str(conf.parent))} && "
                            f"cat > {shlex.quote(str(conf))}"],
                           input=REGISTRIES_CONF.format(host=registry.host), check=True)
        runner("pull", "-q", "busybox", check=True)
        yield runner
        runner.cleanup()
        for pid in users.run_as_nosub(["sh", "-c", "cat /tmp/rl-$(id -u)/fuse-zygote-*.pid"
                                       ]).stdout.split():
            users.run_as_nosub(["kill", pid])
    finally:
        users.cleanup_nosub_runner(runner)


def _zygote_pids(root: Path) -> set[str]:
    """The warm fuse server of the rl whose directories are under `root`: it outlives the
    containers by design (rootless/runtime/zygote.py), so it is not a leftover."""
    pids: set[str] = set()
    try:
        for pidfile in (root / "run" / "rl").glob("fuse-zygote-*.pid"):
            pids.update(pidfile.read_text().split())
    except OSError:
        pass
    return pids


def user_processes_mentioning(text: str) -> list[str]:
    """Processes whose command line or environment mentions `text` (a runner's root: every
    process rl starts inherits XDG_DATA_HOME under it, also those whose command line names
    nothing of it, like the fuse server forked from `rl run`), except that root's warm fuse
    server, and the processes whose environment we may not read (rl's helpers in a
    container's namespaces are not dumpable) below one of those or below that server.
    Only processes this user may read are seen; as root, all."""
    out = []
    needle = text.encode()
    skip = _zygote_pids(Path(text))
    parent: dict[str, str] = {}
    mentions: set[str] = set()
    hidden: dict[str, str] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        shown = "?"
        try:
            with open(f"/proc/{pid}/stat") as f:
                raw = f.read()
            parent[pid] = raw[raw.rindex(")") + 2:].split()[1]
            if pid in skip:
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            shown = cmd.replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except PermissionError:
            hidden[pid] = shown
            continue
        except OSError:
            continue
        if needle in cmd or needle in environ:
            mentions.add(pid)
            out.append(f"{pid}: {shown}")
    for pid, shown in hidden.items():
        seen, up = set(), parent.get(pid)
        while up and up not in seen:
            if up in mentions or up in skip:
                out.append(f"{pid}: {shown} (not dumpable)")
                break
            seen.add(up)
            up = parent.get(up)
    return out

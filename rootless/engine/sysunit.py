"""`rl generate systemd NAME`: a `systemctl --user` unit that starts a container when the
user's service manager starts (at login, or at boot with lingering: `loginctl
enable-linger $USER`), as podman's `generate systemd` does.

rl has no daemon: `rl start` hands the container to its own monitor (which keeps its
restart policy), so the unit is a oneshot that stays active (RemainAfterExit) while the
monitor, left in the unit's cgroup, runs; `systemctl --user stop` runs `rl stop`.
"""

from __future__ import annotations

import os
import shlex
import sys

# what decides where rl keeps its state: the unit must see the same
_ENV = ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "RL_ROOTFS_BACKEND", "RL_REGISTRIES_CONF")


def rl_command() -> list[str]:
    """How the unit calls rl: this rl's console script, else this Python with -m."""
    argv0 = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.basename(argv0) == "rl" and os.access(argv0, os.X_OK):
        return [argv0]
    return [sys.executable, "-m", "rootless"]


def unit(ref: str, *, stop_timeout: int | None = None) -> tuple[str, str]:
    """(file name, text) of the unit for container `ref`."""
    from rootless.engine import lifecycle
    from rootless.store import containerdb

    c = containerdb.lookup(ref)
    timeout = lifecycle.stop_timeout_of(c) if stop_timeout is None else stop_timeout
    rl = " ".join(shlex.quote(a) for a in rl_command())
    env = "".join(f"Environment={shlex.quote(f'{k}={os.environ[k]}')}\n"
                  for k in _ENV if os.environ.get(k))
    text = (
        f"# container-{c.name}.service, written by rl generate systemd\n"
        f"# install: cp it to ~/.config/systemd/user/, then systemctl --user daemon-reload\n"
        f"# and systemctl --user enable --now container-{c.name}.service; to start it at\n"
        f"# boot without a login: loginctl enable-linger $USER\n"
        f"[Unit]\n"
        f"Description=rl container {c.name}\n"
        f"Wants=network-online.target\n"
        f"After=network-online.target\n"
        f"\n"
        f"[Service]\n"
        f"Type=oneshot\n"
        f"RemainAfterExit=yes\n"
        f"{env}"
        f"ExecStart={rl} start {c.id}\n"
        f"ExecStop={rl} stop -t {timeout} {c.id}\n"
        f"TimeoutStopSec={max(timeout, 0) + 60}\n"
        f"KillMode=mixed\n"
        f"\n"
        f"[Install]\n"
        f"WantedBy=default.target\n"
    )
    return f"container-{c.name}.service", text

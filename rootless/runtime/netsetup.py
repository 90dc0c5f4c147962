"""The container's network, from the namespace side: start slirp4netns for the sandbox's
network namespace (the default network), stop it with the container.

The network branch owns rootless/network/slirp.py (slirp4netns with its API socket and
port forwards); when it is present we call it, otherwise we start slirp4netns here with the
same command line (DESIGN.md section 4), without port forwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

from rootless.errors import RlError

SLIRP_ARGS = ["--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox",
              "--enable-seccomp"]


class Slirp:
    def __init__(self, proc: subprocess.Popen, api_socket: str | None, exit_w: int) -> None:
        self.proc = proc
        self.api_socket = api_socket
        # slirp4netns exits when this pipe closes: also when the monitor dies.
        self.exit_w = exit_w

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.exit_w >= 0:
            os.close(self.exit_w)
            self.exit_w = -1
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_slirp(pid: int, api_socket: str | None = None, timeout: float = 10) -> Slirp:
    exe = shutil.which("slirp4netns", path="/usr/bin:/bin:/usr/local/bin")
    if exe is None:
        raise RlError("slirp4netns is not installed (it gives containers their network)",
                      "apt-get install slirp4netns, or use --network none")
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    args = [exe, *SLIRP_ARGS, f"--ready-fd={ready_w}", f"--exit-fd={exit_r}"]
    if api_socket:
        args.append(f"--api-socket={api_socket}")
    args += [str(pid), "tap0"]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, pass_fds=(ready_w, exit_r), close_fds=True,
                            start_new_session=True)
    os.close(ready_w)
    os.close(exit_r)
    import select

    ready, _, _ = select.select([ready_r], [], [], timeout)
    data = os.read(ready_r, 1) if ready else b""
    os.close(ready_r)
    if data != b"1":
        os.close(exit_w)
        proc.kill()
        err = proc.communicate()[1].decode(errors="replace").strip()
        raise RlError(f"slirp4netns failed: {err.splitlines()[-1] if err else 'no answer'}",
                      "use --network none to run without a network")
    proc.stderr.close()
    return Slirp(proc, api_socket, exit_w)

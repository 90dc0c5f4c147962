"""The monitor's health-check schedule (the checks themselves: rootless/engine/health.py).

It runs inside the monitor's loop (rootless/runtime/monitor.py run_loop), also in the lean
monitor of a detached container, so it imports only os, sys and time: each check is a
fresh `python -I -S` process (rootless/runtime/lean.py `health_main`) that imports the
engine's check (named in the timer's arguments), runs it in the container, records it and exits 0 when the container is
healthy. One check at a time; the next one is due an interval after the last one ended:
`start_interval` while the container is in its start period and has not been healthy
yet, `interval` after.
"""

import os
import sys
import time


class HealthTimer:
    def __init__(self, cid: str, args: str, env: dict | None = None) -> None:
        """`args`: interval,start_period,start_interval (seconds),check (the check's
        `module:function`, which rootless.runtime.lean health_main calls); `env`: the
        checks' environment, if not ours."""
        self.env = env
        *times, self.check = args.split(",")
        interval, start_period, start_interval = (float(x) for x in times)
        self.cid = cid
        self.interval = interval
        self.start_period = start_period
        self.start_interval = start_interval
        self.t0 = time.monotonic()
        self.healthy_once = False
        self.child = 0
        self.due = self.t0 + self._period()

    def _period(self) -> float:
        if not self.healthy_once and time.monotonic() - self.t0 < self.start_period:
            return self.start_interval
        return self.interval

    def timeout(self) -> float:
        """Seconds until the loop must call tick() again."""
        if self.child:
            return 0.05  # a check runs: look for its end soon
        return max(0.0, self.due - time.monotonic())

    def tick(self) -> None:
        if self.child:
            try:
                done, status = os.waitpid(self.child, os.WNOHANG)
            except ChildProcessError:
                done, status = self.child, 1 << 8
            if not done:
                return
            self.child = 0
            if os.waitstatus_to_exitcode(status) == 0:
                self.healthy_once = True
            self.due = time.monotonic() + self._period()
            return
        if time.monotonic() >= self.due:
            self.child = self._spawn()

    def _spawn(self) -> int:
        from rootless.runtime import lean

        argv = lean._argv("health_main", [self.check, self.cid])
        pid = os.fork()
        if pid == 0:
            try:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.closerange(3, 65536)  # nothing of the monitor's (pty, pipes, status)
                if self.env is not None:
                    os.execve(sys.executable, argv, self.env)
                os.execv(sys.executable, argv)
            finally:
                os._exit(2)
        return pid

    def stop(self) -> None:
        """The container exited: a check still running would only fail; end it."""
        if self.child:
            import signal

            try:
                os.kill(self.child, signal.SIGKILL)
                os.waitpid(self.child, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.child = 0

"""`rl ps` and `rl ps --format '{{.Names}}'` with 100 created containers, against
`podman ps` the same way (median of RL_BENCH_REPEAT runs, default 10, interleaved), as the
unprivileged test user, in the temporary stores of contrib/bench/run.py's Env."""

from __future__ import annotations

import os
import statistics

from contrib.bench.run import Env, _as_user, _time

COUNT = 100


def run(report) -> None:
    repeat = int(os.environ.get("RL_BENCH_REPEAT", "10"))
    e = Env()
    try:
        e.load_podman()
        for i in range(COUNT):
            for argv in ([*e.rl_argv, "create", "--network", "none", "--name", f"b{i}",
                          e.image, "true"],
                         [*e.podman, "create", "--network", "none", "--name", f"b{i}",
                          "localhost/rlbench", "true"]):
                r = _as_user(argv, e.env)
                if r.returncode != 0:
                    raise RuntimeError(f"{argv[0]} create: {r.stderr}")
        for label, extra in (("ps -a", []), ("ps -a --format '{{.Names}}'",
                                             ["--format", "{{.Names}}"])):
            ours, theirs = [], []
            for _ in range(repeat):
                ours.append(_time([*e.rl_argv, "ps", "-a", *extra], e.env))
                theirs.append(_time([*e.podman, "ps", "-a", *extra], e.env))
            report.ratio(f"{label}, {COUNT} containers", statistics.median(ours), "podman",
                         statistics.median(theirs), target="<= 1.0")
    finally:
        e.cleanup()

"""Runs inside a user + mount namespace (started by conftest.py through `unshare`): reads one
JSON request per line from stdin, {"fn": name, "args": [...]}, calls that function of
tests/fuse_overlay/scenarios.py and answers one JSON line {"ok": result} or {"error": text}
on the fd given as argv[1] (stdout stays free for the tools the scenarios run).

Everything mounted here disappears with the namespace when this process exits.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def main() -> None:
    out = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))))
    from tests.fuse_overlay import scenarios

    for line in sys.stdin:
        req = json.loads(line)
        try:
            result = getattr(scenarios, req["fn"])(*req.get("args", []))
            answer = {"ok": result}
        except Exception:
            answer = {"error": traceback.format_exc()}
        finally:
            scenarios.cleanup_mounts()
        out.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()

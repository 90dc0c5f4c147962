"""The engine as a library, as the Docker API service and compose call it (not through the
CLI): a pull's progress, a build's steps and RUN output go to what the caller passes, two
builds in two threads keep their outputs apart, a run leaves its events in the journal;
nothing is written to the process's own stdout or stderr."""

from __future__ import annotations

import json
import subprocess
import sys


def engine(rl, code: str, *args: str) -> dict:
    """Run `code` in a fresh interpreter on rl's store: what it printed (one JSON line),
    checking that the engine itself printed nothing."""
    r = subprocess.run([sys.executable, "-c", code, *args], env=rl.env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    return json.loads(lines[0])


PULL = """
import json, sys
from rootless.engine import images
events = []
rec = images.pull(sys.argv[1], progress=events.append)
print(json.dumps({"id": rec.id, "events": [[e.kind, e.text, e.digest, e.current, e.total,
                                            e.status] for e in events]}))
"""


def test_pull_progress_goes_to_the_callers_list(rl, registry, test_images):
    ref = registry.ref("layered:latest")
    image = test_images["layered:latest"]
    sizes = {layer.digest: len(layer.blob) for layer in image.layers}
    got = engine(rl, PULL, ref)
    events = got["events"]
    kinds = [e[0] for e in events]
    assert events[0][:2] == ["message", f"Trying to pull {ref}..."]
    assert events[-1][0] == "message" and events[-1][1].startswith(f"Pulled {ref}: ")
    assert kinds.index("begin") < kinds.index("end")
    done = {e[2]: e for e in events if e[0] == "layer-done"}
    assert set(sizes) <= set(done)
    for digest, size in sizes.items():
        assert done[digest][3:] == [size, size, "done"]
        advances = [e[3] for e in events if e[0] == "layer-advance" and e[2] == digest]
        assert advances == sorted(advances) and advances[-1] == size
    # pulled again: every layer is already there
    again = engine(rl, PULL, ref)
    assert again["id"] == got["id"]
    statuses = {e[2]: e[5] for e in again["events"] if e[0] == "layer-done"}
    assert all(statuses[d] == "exists" for d in sizes)
    assert not [e for e in again["events"] if e[0] == "layer-advance"]


BUILDS = """
import json, sys, threading
from rootless.engine import build
out = {}
def one(key, ctx):
    events = []
    try:
        image = build.build(build.BuildOptions(context=ctx, no_cache=True,
                                               progress=events.append))
    except BaseException as exc:
        image = repr(exc)
    out[key] = {"image": image,
                "steps": [e.text for e in events if e.kind == "step"],
                "stdout": b"".join(e.data for e in events
                                   if e.kind == "output" and e.stream == "stdout").decode(),
                "stderr": b"".join(e.data for e in events
                                   if e.kind == "output" and e.stream == "stderr").decode()}
threads = [threading.Thread(target=one, args=(k, c)) for k, c in zip("ab", sys.argv[1:])]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(out))
"""


def run_builds(rl, pulled, tmp_path, keys: str) -> None:
    """Build one image per key (in a thread each), each RUN step writing 300 lines on
    stdout and 300 on stderr; check each build got exactly its own."""
    base = pulled("busybox:latest")
    dirs = []
    for key in keys:
        d = tmp_path / key
        d.mkdir()
        (d / "Dockerfile").write_text(
            f"FROM {base}\n"
            f"RUN i=0; while [ $i -lt 300 ]; do echo {key}-out-$i; echo {key}-err-$i >&2; "
            "i=$((i+1)); done\n")
        dirs.append(str(d))
    got = engine(rl, BUILDS, *dirs)
    for key in keys:
        result = got[key]
        assert result["image"].startswith("sha256:"), result["image"]
        assert result["steps"][0] == f"STEP 1/2: FROM {base}"
        assert result["steps"][1].startswith("STEP 2/2: RUN i=0;")
        assert result["stdout"].splitlines() == [f"{key}-out-{i}" for i in range(300)]
        assert result["stderr"].splitlines() == [f"{key}-err-{i}" for i in range(300)]
    # the RUN containers are gone
    assert rl("ps", "-aq", check=True).stdout.split() == []


def test_a_builds_run_output_goes_to_the_callers_progress(rl, pulled, tmp_path):
    run_builds(rl, pulled, tmp_path, "a")


def test_two_builds_in_threads_keep_their_run_output_apart(rl, pulled, tmp_path):
    run_builds(rl, pulled, tmp_path, "ab")


def test_a_failed_run_step_says_its_last_lines_when_quiet(rl, ctx):
    path = ctx("FROM BASE\nRUN echo first; echo last-words >&2; exit 3\n")
    code = ("import sys\nfrom rootless.engine import build\nfrom rootless.errors import RlError\n"
            "try:\n    build.build(build.BuildOptions(context=sys.argv[1], quiet=True))\n"
            "except RlError as exc:\n    import json; print(json.dumps(str(exc)))\n")
    message = engine(rl, code, path)
    assert "failed with exit code 3" in message
    assert "first | last-words" in message
    assert rl("ps", "-aq", check=True).stdout.split() == []


EVENTS = """
import json, sys
from rootless.engine import events
print(json.dumps([[e["Action"], e["Actor"]["Attributes"].get("exitCode")]
                  for e in events.read() if e["Type"] == "container"
                  and e["Actor"]["ID"] == sys.argv[1]]))
"""


def test_a_run_leaves_its_events_in_the_journal(rl, pulled):
    base = pulled("busybox:latest")
    cid = rl("run", "-d", base, "sh", "-c", "exit 4", check=True).stdout.strip()
    assert rl("wait", cid, check=True).stdout.strip() == "4"
    rl("rm", cid, check=True)
    assert engine(rl, EVENTS, cid) == [["create", None], ["start", None], ["die", "4"],
                                       ["destroy", None]]

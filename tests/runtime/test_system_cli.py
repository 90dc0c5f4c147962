"""`rl system df/prune`, the prune filters and prompts, `rename`, `diff`, the management
aliases and Docker's unknown-flag wording, on real containers as the unprivileged test
user."""

from __future__ import annotations

import json

import pytest


def lines(r) -> list[str]:
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def names(rl) -> list[str]:
    return sorted(lines(rl("ps", "-a", "--format", "{{.Names}}")))


def test_system_prune_keeps_running_containers_their_images_and_volumes(rl):
    rl("run", "-d", "--network", "none", "--name", "alive", "-v", "keepvol:/data", "busybox",
       "sleep", "300", check=True)
    rl("run", "--network", "none", "--name", "done", "-v", "/scratch", "busybox", "true",
       check=True)
    rl("volume", "create", "idle", check=True)
    rl("network", "create", "idlenet", check=True)
    prompt = rl("system", "prune", "--volumes", input="")
    assert prompt.returncode == 1
    assert prompt.stdout == (
        "WARNING! This will remove:\n"
        "  - all stopped containers\n"
        "  - all networks not used by at least one container\n"
        "  - all anonymous volumes not used by at least one container\n"
        "  - all dangling images\n"
        "  - unused build cache\n\n"
        "Are you sure you want to continue? [y/N] \n")
    assert prompt.stderr.strip() == "rl: error: system prune has been cancelled"
    assert names(rl) == ["alive", "done"]  # nothing removed on "no"
    out = lines(rl("system", "prune", "-f", "--volumes"))
    assert out[0] == "Deleted Containers:" and len(out[1]) == 64
    assert "Deleted Networks:" in out and "idlenet" in out and out[-1].startswith(
        "Total reclaimed space: ")
    assert names(rl) == ["alive"]
    vols = lines(rl("volume", "ls", "-q"))
    assert "keepvol" in vols and "idle" in vols and len(vols) == 2  # anonymous one pruned
    assert lines(rl("network", "ls", "-q")) == []
    # -a: every image no container uses goes; busybox stays for the running container
    rl("system", "prune", "-af", check=True)
    assert lines(rl("images", "--format", "{{.Repository}}")) == ["busybox"]
    assert lines(rl("exec", "alive", "true")) == []
    rl("rm", "-f", "alive", check=True)


def test_prune_filters_and_prompts(rl):
    rl("create", "--name", "old", "--label", "keep=no", "busybox", "true", check=True)
    rl("create", "--name", "kept", "--label", "keep=yes", "busybox", "true", check=True)
    r = rl("container", "prune", input="n\n")
    assert r.returncode == 1 and r.stdout == (
        "WARNING! This will remove all stopped containers.\n"
        "Are you sure you want to continue? [y/N] ")
    assert "container prune has been cancelled" in r.stderr
    # until=1h: both are younger, nothing goes
    assert lines(rl("container", "prune", "-f", "--filter", "until=1h")) == [
        "Total reclaimed space: 0B"]
    out = lines(rl("container", "prune", "--filter", "label=keep=no", input="y\n"))
    # the answer read from a pipe is not echoed: the output goes on after the prompt
    assert out[1] == "Are you sure you want to continue? [y/N] Deleted Containers:"
    assert len(out[2]) == 64 and out[3:] == ["", "Total reclaimed space: 0B"]
    assert names(rl) == ["kept"]
    rl("container", "prune", "-f", "--filter", "label!=keep", check=True)
    assert names(rl) == ["kept"]
    rl("volume", "create", "--label", "tier=a", "va", check=True)
    rl("volume", "create", "vb", check=True)
    r = rl("volume", "prune", "-af", "--filter", "until=10m")
    assert r.returncode == 125 and "invalid filter 'until'" in r.stderr
    assert sorted(lines(rl("volume", "ls", "-q"))) == ["va", "vb"]
    r = rl("volume", "prune", "-af", "--filter", "color=red")
    assert r.returncode == 125 and "invalid filter 'color'" in r.stderr
    out = lines(rl("volume", "prune", "-af", "--filter", "label=tier=a"))
    assert out == ["Deleted Volumes:", "va", "", "Total reclaimed space: 0B"]
    rl("network", "create", "--label", "x=1", "n1", check=True)
    rl("network", "create", "n2", check=True)
    assert lines(rl("network", "prune", "-f", "--filter", "label=x")) == [
        "Deleted Networks:", "n1"]
    r = rl("image", "prune", "-a", input="")
    assert r.returncode == 1 and "WARNING! This will remove all images without at least " \
        "one container associated to them." in r.stdout
    rl("network", "rm", "n2", check=True)


def test_system_df_agrees_with_images_and_ps(rl):
    rl("run", "--network", "none", "--name", "writer", "busybox", "sh", "-c",
       "head -c 300000 /dev/zero > /big", check=True)
    rl("volume", "create", "v1", check=True)
    out = lines(rl("system", "df"))
    assert out[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    rows = [json.loads(x) for x in lines(rl("system", "df", "--format", "json"))]
    by = {r["Type"]: r for r in rows}
    assert list(by) == ["Images", "Containers", "Local Volumes", "Build Cache"]
    assert by["Images"]["TotalCount"] == str(len(lines(rl("images", "-q"))))
    assert by["Images"]["Active"] == "1"
    assert by["Containers"] == {"Type": "Containers", "TotalCount": "1", "Active": "0",
                                "Size": "300kB", "Reclaimable": "300kB (100%)"}
    assert by["Local Volumes"]["TotalCount"] == "1" and by["Local Volumes"]["Active"] == "0"
    assert lines(rl("system", "df", "--format", "{{.Type}}={{.TotalCount}}"))[2] == \
        "Local Volumes=1"
    # -v: the per-object tables, sizes as `rl images` and `rl ps -s` print them
    verbose = lines(rl("system", "df", "-v"))
    assert verbose[0] == "Images space usage:" and "Containers space usage:" in verbose
    assert "Build cache usage: 0B" in verbose
    ps_size = lines(rl("ps", "-as", "--format", "{{.Size}}"))[0]
    [ctr_line] = [x for x in verbose if x.endswith(" writer")]
    assert f" {ps_size} " in ctr_line and ps_size == "300kB"
    doc = json.loads(lines(rl("system", "df", "-v", "--format", "json"))[0])
    sizes = {f"{i['Repository']}:{i['Tag']}": i["Size"] for i in doc["Images"]}
    for line in lines(rl("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}")):
        name, size = line.split()
        assert sizes[name] == size
    assert {i["Repository"]: i["Containers"] for i in doc["Images"]}["busybox"] == "1"
    assert doc["Volumes"] == [{"Name": "v1", "Links": "0", "Size": "0B"}]
    rl("rm", "writer", check=True)
    rl("volume", "rm", "v1", check=True)


def test_rename(rl):
    rl("run", "-d", "--network", "none", "--name", "first", "-v", "rvol:/v", "busybox",
       "sleep", "300", check=True)
    rl("create", "--name", "other", "busybox", "true", check=True)
    assert rl("rename", "first", "second", check=True).stdout == ""
    assert names(rl) == ["other", "second"]
    assert lines(rl("inspect", "-f", "{{.State.Running}}", "second")) == ["true"]
    r = rl("rename", "second", "other")
    assert r.returncode == 125 and "the container name other is already in use" in r.stderr
    r = rl("rename", "second", "second")
    assert r.returncode == 125 and "same name as its current name" in r.stderr
    r = rl("container", "rename", "nobody", "x")
    assert r.returncode != 0 and "nobody" in r.stderr
    r = rl("volume", "rm", "rvol")
    assert "second" in r.stderr  # the volume's user is known by the new name
    rl("rm", "-f", "second", "other", check=True)


def test_diff_lists_changes_and_does_not_follow_planted_symlinks(rl, tmp_path):
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "canary-secret").write_text("keep out\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    script = ("rm /data/keep.txt && echo more >> /olddir/new && mkdir /newdir && "
              f"echo hi > /newdir/f && ln -s {canary} /evil && ln -s {canary} /newdir/link && "
              f"ln -s {canary}/canary-secret /newdir/filelink")
    rl("run", "--network", "none", "--name", "changer", "layered", "sh", "-c", script,
       check=True)
    out = lines(rl("diff", "changer"))
    for line in ("C /data", "D /data/keep.txt", "A /evil", "A /newdir", "A /newdir/f",
                 "A /newdir/link", "A /newdir/filelink", "C /olddir", "C /olddir/new"):
        assert line in out, (line, out)
    assert out.index("C /data") < out.index("D /data/keep.txt")
    assert out.index("A /newdir") < out.index("A /newdir/f")
    assert not [x for x in out if "canary" in x], out  # nothing of the canary listed
    assert lines(rl("container", "diff", "changer")) == out
    assert (canary / "canary-secret").read_text() == "keep out\n"
    assert sorted(p.name for p in canary.iterdir()) == ["canary-secret"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    # a container that changed nothing: nothing listed (not the runtime's mount points)
    rl("run", "--network", "none", "--name", "quiet", "busybox", "true", check=True)
    assert rl("diff", "quiet", check=True).stdout == ""
    rl("rm", "quiet", check=True)
    r = rl("diff", "nothing-here")
    assert r.returncode == 125 and "nothing-here" in r.stderr
    rl("rm", "changer", check=True)


def test_unknown_flag_is_worded_as_docker(rl):
    r = rl("run", "--gpus", "all", "busybox", "true")
    assert r.returncode == 125
    assert r.stderr == "unknown flag: --gpus\nSee 'rl run --help'.\n"
    r = rl("container", "ls", "-Z")
    assert r.returncode == 125
    assert r.stderr == "unknown shorthand flag: 'Z' in -Z\nSee 'rl container ls --help'.\n"
    assert lines(rl("ps", "-aq")) == []  # nothing was created
    assert "-v, --volume SRC:DST[:OPTS]" in rl("run", "--help", check=True).stdout


def test_management_aliases(rl):
    rl("container", "create", "--name", "c1", "--network", "none", "busybox", "true",
       check=True)
    assert lines(rl("container", "ls", "-a", "--format", "{{.Names}}")) == ["c1"]
    assert lines(rl("container", "list", "-aq")) == lines(rl("ps", "-aq"))
    assert lines(rl("image", "list", "-q")) == lines(rl("images", "-q"))
    assert lines(rl("image", "history", "-q", "busybox")) == lines(rl("history", "-q",
                                                                       "busybox"))
    assert lines(rl("system", "info", "--format", "{{.OSType}}")) == ["linux"]
    rl("container", "rm", "c1", check=True)
    assert lines(rl("container", "ps", "-aq")) == []


STATS_FIELDS = {"BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name",
                "NetIO", "PIDs"}


def test_stats_no_stream_from_proc(rl):
    rl("run", "-d", "--network", "none", "--name", "busy", "busybox", "sh", "-c",
       "while :; do :; done", check=True)
    rl("run", "-d", "--network", "none", "--name", "idle", "busybox", "sleep", "300",
       check=True)
    rl("create", "--name", "stopped", "busybox", "true", check=True)
    rows = {r["Name"]: r for r in map(json.loads, lines(rl(
        "stats", "--no-stream", "--format", "json")))}
    assert set(rows) == {"busy", "idle"}
    assert set(rows["busy"]) == STATS_FIELDS
    assert float(rows["busy"]["CPUPerc"].rstrip("%")) > 10.0
    assert float(rows["idle"]["CPUPerc"].rstrip("%")) < 10.0
    assert rows["busy"]["PIDs"] == "1" and rows["idle"]["PIDs"] == "1"
    used, _, limit = rows["idle"]["MemUsage"].partition(" / ")
    assert used != "0B" and limit.endswith("iB")
    table = lines(rl("stats", "--no-stream", "-a", "busy", "stopped"))
    assert table[0].split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"]
    assert [x.split()[1] for x in table[1:]] == ["busy", "stopped"]
    assert lines(rl("container", "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}",
                    "stopped")) == ["stopped 0"]
    assert "no cgroups" in rl("stats", "--help", check=True).stdout
    rl("rm", "-f", "busy", "idle", "stopped", check=True)


def test_events_of_a_run_in_order_with_since_and_until(rl):
    import time

    t0 = time.time()
    rl("run", "--network", "none", "--name", "ev1", "busybox", "true", check=True)
    rl("rm", "ev1", check=True)
    rl("volume", "create", "evvol", check=True)
    rl("volume", "rm", "evvol", check=True)
    t1 = time.time() + 0.5
    time.sleep(0.6)
    rl("create", "--name", "later", "busybox", "true", check=True)
    out = lines(rl("events", "--since", f"{t0:.3f}", "--until", f"{t1:.3f}",
                   "--filter", "type=container", "--format",
                   "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}", timeout=30))
    assert out == ["container create ev1", "container start ev1", "container die ev1",
                   "container destroy ev1"]
    evs = [json.loads(x) for x in lines(rl("system", "events", "--since", f"{t0:.3f}",
                                          "--until", f"{t1:.3f}", "--format", "json"))]
    assert [(e["Type"], e["Action"]) for e in evs][-2:] == [("volume", "create"),
                                                           ("volume", "destroy")]
    assert evs[2]["Actor"]["Attributes"]["exitCode"] == "0"
    assert evs[0]["status"] == "create" and evs[0]["from"] == "busybox"
    # the default line: time, type, action, id, (attributes)
    text = lines(rl("events", "--since", f"{t0:.3f}", "--until", f"{t1:.3f}",
                    "-f", "event=destroy", "-f", "container=ev1"))
    assert len(text) == 1 and " container destroy " in text[0]
    assert text[0].endswith("(image=busybox, name=ev1)")
    # --until passed: "later" is not among them; --since 1s ago shows it
    assert "later" not in " ".join(lines(rl("events", "--since", f"{t0:.3f}", "--until",
                                            f"{t1:.3f}")))
    r = rl("events", "--since", "yesterday-ish", "--until", "1s")
    assert r.returncode == 125 and "invalid value for --since" in r.stderr
    rl("rm", "later", check=True)


@pytest.mark.parametrize("detach", [False, True])
def test_events_of_an_rm_run_include_its_exit(rl, detach):
    """An --rm container dies before it is destroyed, with its exit code, in the
    foreground and under a detached monitor (Docker's order: create start die destroy)."""
    import time

    t0 = time.time()
    name = f"evrm{int(detach)}"
    args = ["run", "--rm", "--network", "none", "--name", name]
    r = rl(*args, *(["-d"] if detach else []), "busybox", "sh", "-c", "exit 3")
    assert r.returncode == (0 if detach else 3), r.stderr
    deadline = time.monotonic() + 20
    while True:  # the detached monitor writes destroy last
        out = lines(rl("events", "--since", f"{t0:.3f}", "--until", f"{time.time():.3f}",
                       "--filter", f"container={name}", "--format",
                       "{{.Action}} {{.Actor.Attributes.exitCode}}", timeout=30))
        if (out and out[-1].startswith("destroy")) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [x.split()[0] for x in out] == ["create", "start", "die", "destroy"], out
    assert out[2] == "die 3"

"""`--format`, `--filter` and the Docker flags of ps, images, inspect, volume/network ls,
logs and stop, on real containers as the unprivileged test user; and shell snippets as CI
scripts written for Docker use them, run unchanged with `docker` meaning `rl`."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.support import users

PS_FIELDS = {"Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
             "Names", "Networks", "Ports", "RunningFor", "Size", "State", "Status"}


def lines(r) -> list[str]:
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def names(rl, *args) -> list[str]:
    return sorted(lines(rl("ps", "-a", "--format", "{{.Names}}", *args)))


def create(rl, name, *args, image="busybox"):
    rl("create", "--name", name, "--network", "none", *args, image, "true", check=True)


def test_ps_json_lines_have_dockers_fields_as_strings(rl):
    create(rl, "one", "--label", "tier=web", "--label", "a=<b>")
    out = lines(rl("ps", "-a", "--format", "json"))
    assert len(out) == 1
    row = json.loads(out[0])
    assert set(row) == PS_FIELDS
    assert all(isinstance(v, str) for v in row.values())
    assert row["Names"] == "one" and row["State"] == "created" and row["Status"] == "Created"
    assert row["Labels"] == "a=<b>,tier=web" and row["Command"] == '"true"'
    assert row["LocalVolumes"] == "0" and len(row["ID"]) == 12
    assert "\\u003cb\\u003e" in out[0]  # escaped as Docker's encoding/json does
    assert json.loads(lines(rl("ps", "-a", "--no-trunc", "--format", "{{json .}}"))[0]
                      )["ID"] == lines(rl("inspect", "-f", "{{.Id}}", "one"))[0]


def test_ps_templates_table_and_label_method(rl):
    create(rl, "web1", "--label", "tier=front")
    create(rl, "db1", "--label", "tier=back")
    assert lines(rl("ps", "-a", "--format", '{{.Names}}:{{.Label "tier"}}')) == [
        "db1:back", "web1:front"]
    out = lines(rl("ps", "-a", "--format", "table {{.Names}}\t{{.State}}"))
    assert out == ["NAMES     STATE", "db1       created", "web1      created"]
    r = rl("ps", "--format", "{{.NoSuchField}}", "-a")
    assert r.returncode == 125 and "can't evaluate field NoSuchField" in r.stderr
    r = rl("ps", "--format", "{{.Names")
    assert r.returncode == 125 and "unclosed action" in r.stderr


def test_inspect_format_on_each_object_type(rl):
    cid = rl("run", "-d", "--network", "none", "--name", "web", "-e", "FOO=bar", "busybox",
             "sleep", "60", check=True).stdout.strip()
    assert lines(rl("inspect", "-f", "{{.State.Running}}", "web")) == ["true"]
    assert lines(rl("inspect", "--format", "{{.State.Running}} {{.Name}}", cid)) == [
        "true web"]
    env = json.loads(lines(rl("inspect", "--format", "{{json .Config.Env}}", "web"))[0])
    assert "FOO=bar" in env
    assert lines(rl("container", "inspect", "-f", "{{.State.Status}}", "web")) == ["running"]
    rl("volume", "create", "--label", "k=v", "vol1", check=True)
    assert lines(rl("inspect", "-f", "{{.Driver}} {{.Labels.k}}", "vol1")) == ["local v"]
    assert lines(rl("volume", "inspect", "-f", "{{.Name}}", "vol1")) == ["vol1"]
    assert lines(rl("inspect", "--type", "image", "-f", "{{.Os}}", "busybox")) == ["linux"]
    assert lines(rl("image", "inspect", "-f", "{{len .RootFS.Layers}}", "busybox")) == ["1"]
    r = rl("inspect", "--type", "volume", "web")
    assert r.returncode == 125 and "no such volume: web" in r.stderr and r.stdout == ""
    r = rl("inspect", "-f", "{{.Name}}", "web", "nothing-here")
    assert r.stdout == "web\n" and "no such object: nothing-here" in r.stderr
    rl("rm", "-f", "web", check=True)
    rl("volume", "rm", "vol1", check=True)


def test_ps_filters_each_key_matches_and_not(rl):
    rl("network", "create", "fnet", check=True)
    try:
        create(rl, "alpha", "--label", "env=prod", "-v", "fvol:/data")
        time.sleep(1.1)  # created times one second apart at least (before/since)
        create(rl, "beta", "--label", "env=dev", image="layered")
        rl("create", "--name", "gamma", "--network", "fnet", "-p", "18080:80", "busybox",
           "true", check=True)
        rl("run", "--name", "ex3", "--network", "none", "busybox", "sh", "-c", "exit 3")
        beta_id = lines(rl("inspect", "-f", "{{.Id}}", "beta"))[0]
        cases = {
            "name=alp": ["alpha"], "name=^/beta$": ["beta"], "name=^beta$": ["beta"],
            f"id={beta_id[:10]}": ["beta"], "id=ffffffffffff": [],
            "label=env": ["alpha", "beta"], "label=env=prod": ["alpha"],
            "label=env=staging": [],
            "status=exited": ["ex3"], "status=created": ["alpha", "beta", "gamma"],
            "status=running": [],
            "exited=3": ["ex3"], "exited=0": [],
            "ancestor=layered": ["beta"], "ancestor=layered:latest": ["beta"],
            "before=beta": ["alpha"], "since=alpha": ["beta", "ex3", "gamma"],
            "volume=fvol": ["alpha"], "volume=/data": ["alpha"], "volume=other": [],
            "network=fnet": ["gamma"], "network=nonet": [],
            "publish=80": ["gamma"], "publish=80/tcp": ["gamma"], "publish=81": [],
            "expose=80": ["gamma"], "expose=22": [],
            "health=none": ["alpha", "beta", "ex3", "gamma"], "health=healthy": [],
        }
        for flt, want in cases.items():
            assert names(rl, "--filter", flt) == want, flt
        # two keys: both must match; one key twice: either
        assert names(rl, "-f", "label=env", "-f", "name=beta") == ["beta"]
        assert names(rl, "-f", "name=alpha", "-f", "name=beta") == ["alpha", "beta"]
        # a status filter lists stopped containers without -a, as Docker
        assert lines(rl("ps", "-q", "-f", "status=exited")) == lines(
            rl("ps", "-aq", "-f", "name=ex3"))
        r = rl("ps", "-f", "colour=red")
        assert r.returncode == 125 and "invalid filter 'colour'" in r.stderr
        r = rl("ps", "-f", "status=sleeping")
        assert r.returncode == 125 and "invalid filter 'status=sleeping'" in r.stderr
        # -n, -l, --no-trunc
        assert lines(rl("ps", "-n", "2", "--format", "{{.Names}}")) == ["ex3", "gamma"]
        assert lines(rl("ps", "-l", "--format", "{{.Names}}")) == ["ex3"]
        assert lines(rl("ps", "-aq", "--no-trunc", "-f", "name=beta")) == [beta_id]
    finally:
        rl("rm", "-f", "alpha", "beta", "gamma", "ex3")
        rl("network", "rm", "fnet")
        rl("volume", "rm", "fvol")


def test_images_volumes_networks_filters_and_formats(rl):
    assert lines(rl("images", "--format", "{{.Repository}}:{{.Tag}}",
                    "-f", "reference=busybox")) == ["busybox:latest"]
    assert lines(rl("images", "--format", "{{.Repository}}", "-f", "reference=nothing*")) == []
    assert lines(rl("images", "-q", "-f", "dangling=true")) == []
    assert len(lines(rl("images", "-q", "-f", "dangling=false"))) == 2
    assert lines(rl("images", "-q", "-f", "label=no.such.label")) == []
    rows = [json.loads(x) for x in lines(rl("images", "--format", "json"))]
    assert {"Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository",
            "SharedSize", "Size", "Tag", "UniqueSize", "VirtualSize"} == set(rows[0])
    out = lines(rl("images", "--format", "table {{.Repository}}\t{{.Tag}}",
                   "-f", "reference=layered"))
    assert out == ["REPOSITORY   TAG", "layered      latest"]

    rl("volume", "create", "--label", "team=db", "v-db", check=True)
    rl("volume", "create", "v-web", check=True)
    try:
        def vols(*f):
            return lines(rl("volume", "ls", "--format", "{{.Name}}", *f))

        assert vols("-f", "name=db") == ["v-db"] and vols("-f", "name=zzz") == []
        assert vols("-f", "label=team=db") == ["v-db"] and vols("-f", "label=team=x") == []
        assert vols("-f", "driver=local") == ["v-db", "v-web"] and vols("-f", "driver=nfs") == []
        assert vols("-f", "dangling=true") == ["v-db", "v-web"]
        assert vols("-f", "dangling=false") == []
        row = json.loads(lines(rl("volume", "ls", "--format", "json", "-f", "name=v-db"))[0])
        assert row["Name"] == "v-db" and row["Driver"] == "local" and row["Labels"] == "team=db"
    finally:
        rl("volume", "rm", "v-db", "v-web")

    rl("network", "create", "--label", "app=x", "n-one", check=True)
    try:
        def nets(*f):
            return lines(rl("network", "ls", "--format", "{{.Name}}", *f))

        nid = lines(rl("network", "inspect", "-f", "{{.Id}}", "n-one"))[0]
        assert nets("-f", "name=n-o") == ["n-one"] and nets("-f", "name=other") == []
        assert nets("-f", f"id={nid[:6]}") == ["n-one"] and nets("-f", "id=zz") == []
        assert nets("-f", "label=app=x") == ["n-one"] and nets("-f", "label=app=y") == []
        assert nets("-f", "driver=bridge") == ["n-one"] and nets("-f", "driver=macvlan") == []
        assert nets("-f", "type=custom") == ["n-one"] and nets("-f", "type=builtin") == []
        row = json.loads(lines(rl("network", "ls", "--format", "json"))[0])
        assert row["Name"] == "n-one" and row["Driver"] == "bridge" and row["IPv6"] == "false"
    finally:
        rl("network", "rm", "n-one")


def test_logs_since_until_tail_and_stop_timeout_signal(rl):
    rl("run", "-d", "--network", "none", "--name", "talk", "busybox", "sh", "-c",
       'trap "echo got-usr1; exit 7" USR1; echo first; sleep 2; echo second; '
       "while true; do sleep 0.1; done", check=True)
    deadline = time.monotonic() + 15
    while "second" not in rl("logs", "talk").stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    stamps = lines(rl("logs", "-t", "talk"))
    t_second = stamps[1].split()[0]
    assert lines(rl("logs", "-n", "1", "talk")) == ["second"]
    assert lines(rl("logs", "--since", t_second, "talk")) == ["second"]
    assert lines(rl("logs", "--until", t_second, "talk")) == ["first"]
    assert lines(rl("logs", "--since", "1h", "talk")) == ["first", "second"]
    assert lines(rl("logs", "--since", str(int(time.time()) + 60), "talk")) == []
    r = rl("logs", "--since", "yesterday", "talk")
    assert r.returncode == 125 and "invalid value for --since" in r.stderr
    r = rl("stop", "-s", "NOPE", "talk")
    assert r.returncode == 125 and rl("inspect", "-f", "{{.State.Running}}", "talk"
                                      ).stdout == "true\n"
    rl("stop", "-t", "5", "-s", "USR1", "talk", check=True)
    assert lines(rl("inspect", "-f", "{{.State.ExitCode}}", "talk")) == ["7"]
    assert "got-usr1" in rl("logs", "talk").stdout
    rl("rm", "talk", check=True)


# -- CI snippets, as written for Docker ---------------------------------------------------

SNIPPETS = [
    # (script, expected stdout)
    ("docker ps -q -f name=web | wc -l", "1"),
    ("docker inspect -f '{{.State.Running}}' web", "true"),
    ("test \"$(docker inspect --format '{{.State.Status}}' web)\" = running && echo up", "up"),
    ("docker images --format '{{.Repository}}:{{.Tag}}' | grep -c '^busybox:latest$'", "1"),
    ("docker ps -a --filter status=exited -q | xargs -r docker rm >/dev/null; "
     "docker ps -aq -f status=exited | wc -l", "0"),
    ("docker ps --format '{{.Names}}' | sort | head -1", "web"),
    ("docker inspect --format '{{json .Config.Env}}' web | grep -o 'CI=1'", "CI=1"),
    ("docker ps --filter label=ci=yes --format '{{.ID}}' | wc -l", "1"),
    ("docker inspect -f '{{range .Config.Env}}{{println .}}{{end}}' web | grep '^CI='",
     "CI=1"),
    ("docker ps --format '{{json .}}' | grep -c '\"Names\":\"web\"'", "1"),
    ("docker inspect -f '{{index .Config.Labels \"ci\"}}' web", "yes"),
    ("if [ -n \"$(docker ps -q -f name=^/web$)\" ]; then echo running; fi", "running"),
    ("docker volume ls -q -f dangling=true | wc -l", "0"),
    ("docker ps --format 'table {{.Names}}\\t{{.Status}}' | head -1 | tr -s ' '",
     "NAMES STATUS"),
    ("docker logs web 2>&1 | tail -n 1", "ready"),
    ("docker logs -n 1 web", "ready"),
    ("docker ps -a --filter 'exited=0' --format '{{.Names}}'", "done0"),
    ("docker system df --format '{{.Type}}' | head -1", "Images"),
    ("docker container ls --format '{{.Names}}' | grep -cx web", "1"),
    ("docker image ls -q busybox | wc -l", "1"),
    ("docker rename web web2 && docker container rename web2 web && "
     "docker ps --format '{{.Names}}'", "web"),
    ("docker exec web touch /made-by-ci && docker diff web | grep -x 'A /made-by-ci'",
     "A /made-by-ci"),
    ("docker container prune --force --filter until=1h | tail -n 1",
     "Total reclaimed space: 0B"),
    ("docker system prune -f >/dev/null && docker ps -q -f name=web | wc -l", "1"),
    ("docker events --since 10m --until 0s --filter event=create --filter container=web "
     "--format '{{.Actor.Attributes.name}}'", "web"),
    ("docker stats --no-stream --format '{{.Name}}' web", "web"),
    ("docker run -d --network none --name job busybox sh -c 'echo step1; echo finished' "
     ">/dev/null && docker logs -f job | tail -n 1", "finished"),
    ("docker run -d --network none --name w busybox sh -c 'exit 3' >/dev/null; "
     "docker wait w", "3"),
    ("docker run -d --network none --name hc --health-cmd true --health-interval 1s "
     "busybox sleep 60 >/dev/null; for i in $(seq 60); do "
     "s=$(docker inspect -f '{{.State.Health.Status}}' hc); "
     "[ \"$s\" = healthy ] && break; sleep 0.5; done; echo $s", "healthy"),
    ("docker system prune -af --volumes >/dev/null && "
     "docker images --format '{{.Repository}}' && docker ps -aq -f status=exited | wc -l",
     "busybox\n0"),
]


def test_ci_snippets_run_unchanged(rl, tmp_path):
    rl("run", "-d", "--network", "none", "--name", "web", "-e", "CI=1", "--label", "ci=yes",
       "busybox", "sh", "-c", "echo ready; sleep 60", check=True)
    rl("run", "--network", "none", "--name", "gone", "busybox", "sh", "-c", "exit 1")
    # `docker` is rl: a command on PATH (not a shell function: xargs runs it too)
    shim = tmp_path / "bin" / "docker"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{users.rl_executable()}" "$@"\n')
    shim.chmod(0o755)
    env = dict(rl.env, PATH=f"{shim.parent}:{rl.env['PATH']}")
    prelude = "set -o pipefail; "
    deadline = time.monotonic() + 10
    while "ready" not in rl("logs", "web").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        failures = []
        for k, (script, expected) in enumerate(SNIPPETS):
            if "exited=0" in script:
                rl("run", "--network", "none", "--name", "done0", "busybox", "true",
                   check=True)
            r = subprocess.run(["bash", "-c", prelude + script], env=env,
                               capture_output=True, text=True, timeout=60)
            if r.stdout.strip() != expected or r.returncode != 0:
                failures.append((k, script, r.returncode, r.stdout, r.stderr))
        assert not failures, failures
        assert len(SNIPPETS) >= 10
    finally:
        rl("rm", "-f", "web", "gone", "done0", "job", "w", "hc")


@pytest.mark.parametrize("args", [("ps",), ("ps", "--format", "{{.Names}}"),
                                  ("ps", "-a", "--format", "json")])
def test_ps_imports_nothing_heavy(args, rl):
    from tests.test_code_quality import HEAVY, imported_modules

    mods = imported_modules(*args, env=rl.env)
    assert "click" in mods
    assert not mods & set(HEAVY), sorted(mods & set(HEAVY))

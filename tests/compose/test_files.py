"""Compose files as the Compose Specification reads them (rootless/compose/model.py): bad
files refused in one line naming the file and the path, before anything is created;
interpolation, merging of several -f files, extends, include, profiles, project names."""

from __future__ import annotations

import json
import textwrap

import pytest

GOOD = """\
services:
  web:
    image: busybox
    ports: ["8080:80"]
  db:
    image: busybox
    volumes: [data:/var/lib/db]
volumes:
  data: {}
"""

BAD = {
    "schema": ("""\
        services:
          web:
            image: busybox
            ports:
              - [80, 8080]
        """, "compose.yaml: services.web.ports[0]: [80, 8080] is not valid here: expected"),
    "bad-value": ("""\
        services:
          web:
            image: busybox
            ports:
              - {target: eighty}
        """, "compose.yaml: services.web.ports[0].target: expected a port number"),
    "cycle": ("""\
        services:
          a: {image: busybox, depends_on: [b]}
          b: {image: busybox, depends_on: [c]}
          c: {image: busybox, depends_on: [a]}
        """, "dependency cycle between services: a -> b -> c -> a"),
    "required-variable": ("""\
        services:
          web:
            image: "busybox:${TAG?the image tag is needed}"
        """, "compose.yaml: services.web.image: required variable TAG is unset: "
             "the image tag is needed"),
    "unknown-key": ("""\
        services:
          web:
            image: busybox
            imagee: busybox
        """, "compose.yaml: services.web: unknown key 'imagee'"),
    "unsupported-key": ("""\
        services:
          web:
            image: busybox
            runtime: runc
        """, "compose.yaml: services.web.runtime: not supported by rl"),
}


def write(tmp_path, text: str, name: str = "compose.yaml"):
    d = tmp_path / "proj"
    d.mkdir(exist_ok=True)
    (d / name).write_text(textwrap.dedent(text))
    return d / name


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_is_one_line_naming_the_path_and_nothing_is_created(rl, tmp_path, case):
    text, want = BAD[case]
    f = write(tmp_path, textwrap.dedent(text) + "volumes:\n  v: {}\n")
    for verb in (["up", "-d"], ["config"], ["create"]):
        r = rl("compose", "-f", str(f), *verb, env={"TAG": None})
        assert r.returncode != 0
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and want in lines[0], r.stderr
        assert "Traceback" not in r.stderr
    assert rl("ps", "-aq", check=True).stdout == ""
    assert rl("network", "ls", "-q", check=True).stdout == ""
    assert rl("volume", "ls", "-q", check=True).stdout == ""


def config(rl, *args, env=None) -> dict:
    r = rl("compose", *args, "config", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_interpolation_env_file_and_escapes(rl, tmp_path):
    f = write(tmp_path, """\
        services:
          web:
            image: "${IMG:-busybox}:${TAG-latest}"
            command: ["echo", "$$HOME", "${GREETING:?}", "${EMPTY:-fallback}", "${EMPTY-kept}"]
            environment:
              FROM_SHELL:
              NESTED: "${UNSET:-${GREETING}}"
        """)
    (f.parent / ".env").write_text("GREETING='hi there'\nEMPTY=\nexport TAG=1.0 # comment\n")
    doc = config(rl, "-f", str(f), env={"FROM_SHELL": "shell", "TAG": None})
    web = doc["services"]["web"]
    assert web["image"] == "busybox:1.0"
    assert web["command"] == ["echo", "$HOME", "hi there", "fallback", ""]
    assert web["environment"] == {"FROM_SHELL": "shell", "NESTED": "hi there"}
    assert doc["name"] == "proj"
    # the shell's environment wins over .env; --env-file replaces .env
    other = f.parent / "other.env"
    other.write_text("GREETING=from other\nTAG=2\n")
    doc = config(rl, "-f", str(f), "--env-file", str(other), env={"TAG": "3"})
    assert doc["services"]["web"]["image"] == "busybox:3"
    assert doc["services"]["web"]["command"][2] == "from other"


def test_several_files_merge_by_the_specs_rules(rl, tmp_path):
    base = write(tmp_path, """\
        services:
          web:
            image: busybox
            command: ["httpd", "-f"]
            environment: {A: "1", B: "2"}
            ports: ["8080:80"]
            volumes: ["./a:/data", "cache:/cache"]
            labels: [x=1]
        volumes:
          cache: {}
        """)
    over = write(tmp_path, """\
        services:
          web:
            command: ["sleep", "1"]
            environment: [B=3, C=4]
            ports: ["8443:443"]
            volumes: ["./b:/data:ro"]
            labels: {y: "2"}
        """, "compose.override.yaml")
    web = config(rl, "-f", str(base), "-f", str(over))["services"]["web"]
    assert web["command"] == ["sleep", "1"]
    assert web["environment"] == {"A": "1", "B": "3", "C": "4"}
    assert [(p["published"], p["target"]) for p in web["ports"]] == [("8080", 80), ("8443", 443)]
    vols = {v["target"]: v for v in web["volumes"]}
    assert vols["/data"]["source"] == str(tmp_path / "proj" / "b") and vols["/data"]["read_only"]
    assert vols["/cache"]["source"] == "cache"
    assert web["labels"] == {"x": "1", "y": "2"}
    # discovery: compose.yaml and its override file, from the project directory
    web = config(rl, "--project-directory", str(base.parent))["services"]["web"]
    assert web["command"] == ["sleep", "1"]


def test_extends_include_profiles_and_names(rl, tmp_path):
    lib = tmp_path / "proj" / "lib"
    lib.mkdir(parents=True)
    (lib / "base.yaml").write_text(textwrap.dedent("""\
        services:
          common:
            image: busybox
            environment: {LEVEL: base, KEEP: "yes"}
            volumes: ["./conf:/conf"]
        """))
    (lib / "inc.yaml").write_text(textwrap.dedent("""\
        services:
          cache:
            image: busybox
            env_file: [cache.env]
        """))
    (lib / "cache.env").write_text("SIZE=${CACHE_SIZE:-64}\n")
    f = write(tmp_path, """\
        name: My_App
        include:
          - lib/inc.yaml
        services:
          web:
            extends: {file: lib/base.yaml, service: common}
            environment: {LEVEL: web}
          debug:
            image: busybox
            profiles: [dev]
        """)
    doc = config(rl, "-f", str(f))
    assert doc["name"] == "my_app"
    web = doc["services"]["web"]
    assert web["environment"] == {"LEVEL": "web", "KEEP": "yes"}
    assert web["volumes"][0]["source"] == str(lib / "conf")  # relative to base.yaml
    assert doc["services"]["cache"]["environment"] == {"SIZE": "64"}
    assert "debug" not in doc["services"]
    assert "debug" in config(rl, "-f", str(f), "--profile", "dev")["services"]
    assert "debug" in config(rl, "-f", str(f), env={"COMPOSE_PROFILES": "dev"})["services"]
    assert config(rl, "-p", "other", "-f", str(f))["name"] == "other"
    assert config(rl, "-f", str(f), env={"COMPOSE_PROJECT_NAME": "envname"})["name"] == "envname"
    r = rl("compose", "-p", "Bad Name", "-f", str(f), "config")
    assert r.returncode != 0 and "invalid project name" in r.stderr
    r = rl("compose", "-f", str(f), "config", "--services")
    assert r.stdout.split() == ["cache", "web"]


def test_config_services_and_volumes(rl, tmp_path):
    f = write(tmp_path, GOOD)
    assert rl("compose", "-f", str(f), "config", "--services").stdout.split() == ["db", "web"]
    assert rl("compose", "-f", str(f), "config", "--volumes").stdout.split() == ["data"]
    import yaml

    doc = yaml.safe_load(rl("compose", "-f", str(f), "config", check=True).stdout)
    assert doc["volumes"]["data"]["name"] == "proj_data"
    assert doc["networks"]["default"]["name"] == "proj_default"
    assert doc["services"]["web"]["ports"] == [{"target": 80, "protocol": "tcp",
                                               "published": "8080"}]


# short-syntax strings, some good and some bad, for -p/ports and -v/volumes
SHORT = {
    "ports": ["127.0.0.1:8080:80", "8000-8001:80-81/udp", "9000-9009:90", "[::1]::70",
              "80/sctp", "70000:80", "8000-8002:80-81", "1.2.3:80:80", "0:80", "80/tcpx"],
    "volumes": ["{tmp}/host:/a:ro,rshared", "named:/n:nocopy", "/anon", "named:/n:bogus",
                "a:b:c:d", "named:relative", "bad name!:/x", "{tmp}/host::/x"],
}


def test_short_syntax_is_taken_and_refused_as_by_the_cli(rlc, tmp_path):
    """ports and volumes strings go through `rl run`'s parsers: compose and `rl create`
    take the same ones and refuse the same ones with the same words."""
    (tmp_path / "host").mkdir()
    for key, flag in (("ports", "-p"), ("volumes", "-v")):
        for item in SHORT[key]:
            item = item.format(tmp=tmp_path)
            f = write(tmp_path, f"""\
                services:
                  web:
                    image: busybox
                    {key}: [{json.dumps(item)}]
                volumes:
                  named: {{}}
                """)
            composed = rlc("compose", "-f", str(f), "config")
            cli = rlc("create", flag, item, "busybox", "true")
            assert (composed.returncode == 0) == (cli.returncode == 0), \
                (item, composed.stderr, cli.stderr)
            if cli.returncode == 0:
                rlc("rm", "-v", cli.stdout.strip(), check=True)
                continue
            said = cli.stderr.strip().removeprefix("rl: error: ")
            assert f"services.web.{key}[0]: {said}" in composed.stderr, item
    rlc("volume", "rm", "-f", "named")

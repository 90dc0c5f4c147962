"""The service answers the basic requests a client starts with."""

from __future__ import annotations

import json


def test_ping_version_info(service):
    v = service.docker("version", "--format", "{{json .}}", check=True)
    doc = json.loads(v.stdout)
    assert doc["Server"]["ApiVersion"] == "1.43"
    info = service.docker("info", "--format", "{{.OperatingSystem}}", check=True)
    assert info.stdout.strip()


def test_system_df_and_events(service):
    service.docker("pull", "busybox", check=True)
    service.docker("create", "--name", "idle", "busybox", "true", check=True)
    df = service.docker("system", "df", "--format", "{{.Type}} {{.TotalCount}}", check=True)
    assert "Images 1" in df.stdout and "Containers 1" in df.stdout
    import time

    since = str(time.time() - 60)
    ev = service.docker("events", "--since", since, "--until", str(time.time() + 1),
                        "--filter", "type=container", "--format", "{{.Action}} {{.Actor.ID}}",
                        check=True)
    assert "create" in ev.stdout.split()
    service.docker("rm", "idle", check=True)

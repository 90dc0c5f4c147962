"""The service answers the basic requests a client starts with."""

from __future__ import annotations

import json


def test_ping_version_info(service):
    v = service.docker("version", "--format", "{{json .}}", check=True)
    doc = json.loads(v.stdout)
    assert doc["Server"]["ApiVersion"] == "1.43"
    info = service.docker("info", "--format", "{{.OperatingSystem}}", check=True)
    assert info.stdout.strip()

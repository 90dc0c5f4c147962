"""The compose tests' application: three services written to a project directory, and an
`rl` runner (tests/volumes/ctr.py: real containers, busybox from the test registry) whose
cleanup also takes the project down."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.volumes.ctr import ctr_images, rlc  # noqa: F401  (real containers)

DOCKERFILE = """\
FROM busybox
ARG GREETING=hi
RUN mkdir -p /www && echo "$GREETING from web" > /www/index.html
CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
"""

# web: built here with a build arg, published on 127.0.0.1:${WEB_PORT}, healthy when it
# answers; kv: a key-value-like store on a named volume (httpd serving /data), healthy once
# its key is written; worker: starts after both are healthy and fetches from each by
# service name and by alias, printing what it got (retrying: podman-compose, the peer,
# does not wait for health).
COMPOSE = """\
name: ${PROJECT:-demo}
services:
  web:
    build:
      context: ./web
      args:
        GREETING: ${GREETING:-hello}
    ports:
      - "127.0.0.1:${WEB_PORT:?set WEB_PORT}:80"
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1/"]
      interval: 1s
      retries: 30
    networks:
      default:
        aliases: [frontend]
  kv:
    image: busybox
    command: ["sh", "-c", "echo stored-$$KV_MODE > /data/key; exec httpd -f -p 6379 -h /data"]
    environment:
      KV_MODE: durable
    volumes:
      - kvdata:/data
    healthcheck:
      test: ["CMD", "test", "-s", "/data/key"]
      interval: 1s
      retries: 30
  worker:
    image: busybox
    depends_on:
      kv:
        condition: service_healthy
      web:
        condition: service_healthy
    environment:
      MODE: ${WORKER_MODE:-first}
    command:
      - sh
      - -c
      - >-
        echo "worker $$MODE";
        get() { until wget -q -O /tmp/got "$$1"; do sleep 0.2; done; cat /tmp/got; };
        echo "by-name: $$(get http://web/)";
        echo "by-alias: $$(get http://frontend/)";
        echo "kv: $$(get http://kv:6379/key)";
        exec sleep 600
volumes:
  kvdata: {}
"""


class App:
    def __init__(self, runner, root: Path, port: int) -> None:
        self.rlc = runner
        self.dir = root
        self.file = root / "compose.yaml"
        self.port = port

    def __call__(self, *args: str, env: dict | None = None, check: bool = False,
                 timeout: float = 240):
        return self.rlc("compose", "-f", str(self.file), *args, check=check, timeout=timeout,
                        env={"WEB_PORT": str(self.port), **(env or {})})


def write_app(root: Path, compose: str = COMPOSE) -> Path:
    (root / "web").mkdir(parents=True, exist_ok=True)
    (root / "web" / "Dockerfile").write_text(DOCKERFILE)
    (root / "compose.yaml").write_text(textwrap.dedent(compose))
    return root


@pytest.fixture
def app(rlc, tmp_path):  # noqa: F811  (the fixture imported above)
    from tests.support.registry import free_port

    a = App(rlc, write_app(tmp_path / "demo"), free_port())
    try:
        yield a
    finally:
        a("down", "-v", "--remove-orphans", timeout=120)
        nets = rlc("network", "ls", "-q").stdout.split()
        if nets:
            rlc("network", "rm", *nets)

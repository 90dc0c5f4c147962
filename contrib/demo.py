"""The main job of the README, as the current (unprivileged) user.

1. builds a busybox-static image offline (tests/support/images.py),
2. serves it from Debian's docker-registry on 127.0.0.1 and points `docker.io` at that
   registry through a registries.conf (RL_REGISTRIES_CONF), so short names resolve as usual,
3. `rl pull busybox`, `rl images`, runs containers from it with a named volume,
4. builds a web-server image with `rl build`, runs it with a published port and a volume
   (`rl run -d -v data:/data -p 127.0.0.1:PORT:80`) and fetches a page from the host.

Each step prints the rl command it runs; the first failing one stops the demo non-zero.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support import images
from tests.support.registry import Registry, free_port


def rl(*args: str, env: dict[str, str]) -> None:
    print(f"$ rl {shlex.join(args)}", flush=True)
    proc = subprocess.run(["rl", *args], env=env)
    if proc.returncode != 0:
        print(f"demo: `rl {shlex.join(args)}` exited {proc.returncode}", file=sys.stderr)
        sys.exit(proc.returncode)


def fetch(url: str, attempts: int = 50) -> str:
    """GET url, retrying while the server in the container starts."""
    import time
    import urllib.request

    for i in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            if i == attempts - 1:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="rl-demo-") as tmp:
        reg = Registry.start(Path(tmp) / "registry")
        try:
            reg.push_image("library/busybox", "latest", images.build_busybox())
            conf = Path(tmp) / "registries.conf"
            conf.write_text(
                'unqualified-search-registries = ["docker.io"]\n\n'
                f'[[registry]]\nprefix = "docker.io"\nlocation = "{reg.host}"\ninsecure = true\n')
            env = dict(os.environ, RL_REGISTRIES_CONF=str(conf))
            print(f"demo: a registry on {reg.host} serves docker.io/library/busybox:latest")
            rl("info", env=env)
            rl("pull", "busybox", env=env)
            rl("images", env=env)
            rl("run", "--rm", "busybox", "sh", "-c",
               "echo hello from $(hostname); id; cat /proc/self/uid_map", env=env)
            rl("run", "--rm", "-v", "rl-demo-data:/data", "busybox", "sh", "-c",
               "date > /data/stamp", env=env)
            rl("run", "--rm", "-v", "rl-demo-data:/data", "busybox", "cat", "/data/stamp",
               env=env)
            web = Path(tmp) / "web"
            web.mkdir()
            (web / "index.html").write_text("hello from a rootless container\n")
            (web / "Dockerfile").write_text(
                "FROM busybox\n"
                "COPY index.html /www/index.html\n"
                "EXPOSE 80\n"
                'CMD ["sh", "-c", "date >> /data/visits; exec httpd -f -p 80 -h /www"]\n')
            rl("build", "-t", "rl-demo-web", str(web), env=env)
            port = free_port()
            rl("run", "-d", "--name", "rl-demo-web", "-v", "rl-demo-data:/data",
               "-p", f"127.0.0.1:{port}:80", "rl-demo-web", env=env)
            try:
                body = fetch(f"http://127.0.0.1:{port}/")
                print(f"demo: GET http://127.0.0.1:{port}/ -> {body.strip()!r}")
                rl("ps", env=env)
                rl("port", "rl-demo-web", env=env)
            finally:
                rl("rm", "-f", "rl-demo-web", env=env)
            rl("run", "--rm", "-v", "rl-demo-data:/data", "busybox", "cat", "/data/visits",
               env=env)
            rl("rmi", "rl-demo-web", env=env)
            rl("volume", "rm", "rl-demo-data", env=env)
        finally:
            reg.stop()
            _end_warm_fuse_server()
    print("demo: done")


def _end_warm_fuse_server() -> None:
    """The demo runs from a copy that is deleted when it ends: removing the socket of the
    warm fuse server it started makes that server exit now instead of idling for minutes."""
    from rootless.runtime import zygote

    try:
        os.unlink(zygote.socket_path())
    except OSError:
        pass


if __name__ == "__main__":
    main()

"""Small HTTP servers for the cases a real registry will not produce: a registry answering
exactly what a test says (malformed manifests, odd media types, 401/403, 5xx bursts), and
a throttling proxy in front of a real registry (so a test can kill a pull mid-way)."""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Served:
    """A threaded HTTP server on 127.0.0.1 whose `host` is "127.0.0.1:PORT"."""

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.handle_error = lambda *args: None  # clients we kill reset connections
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FakeRegistry(_Served):
    """routes: path -> (status, headers, body). Records (method, path, headers) per request.
    `fail_first[path] = n` answers 503 to the first n requests of that path;
    `cut_first[path] = n` drops the connection half-way through the first n bodies."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict, bytes]] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self.fail_first: dict[str, int] = {}
        self.cut_first: dict[str, int] = {}  # send half the body, then drop the connection
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, with_body: bool) -> None:
                outer.requests.append((self.command, self.path, dict(self.headers)))
                if outer.fail_first.get(self.path, 0) > 0:
                    outer.fail_first[self.path] -= 1
                    status, headers, body = 503, {}, b"busy"
                else:
                    status, headers, body = outer.routes.get(
                        self.path, (404, {"Content-Type": "application/json"},
                                    b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'))
                cut = outer.cut_first.get(self.path, 0) > 0 and status == 200
                if cut:
                    outer.cut_first[self.path] -= 1
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if with_body:
                    self.wfile.write(body[:len(body) // 2] if cut else body)
                if cut:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)

            def do_GET(self) -> None:
                self._answer(True)

            def do_HEAD(self) -> None:
                self._answer(False)

            def log_message(self, *args) -> None:
                pass

        self._serve(Handler)


class ThrottlingProxy(_Served):
    """Forwards GET/HEAD to `upstream` (host:port), sending bodies at `rate` bytes/s."""

    def __init__(self, upstream: str, rate: int) -> None:
        self.rate = rate
        outer = self
        host, port = upstream.rsplit(":", 1)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                conn.close()
                if self.command == "HEAD":
                    return
                chunk = 16384
                try:
                    for i in range(0, len(body), chunk):
                        self.wfile.write(body[i:i + chunk])
                        time.sleep(chunk / outer.rate)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _forward
            do_HEAD = _forward

            def log_message(self, *args) -> None:
                pass

        self._serve(Handler)

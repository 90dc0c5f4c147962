"""A tiny HTTP server on the host's 127.0.0.1 for tests: fixed bodies by path."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextlib.contextmanager
def serving(body: bytes, path: str | None = None, host: str = "127.0.0.1") -> Iterator[int]:
    """Serve `body` for GET `path` (any path when None) on `host` until the block ends;
    yields the port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if path is not None and self.path != path:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()

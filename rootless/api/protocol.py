"""What a handler sees and gives back: `Request` (method, path without the /vX.Y prefix,
query, headers, body) and `Response` (status, JSON or bytes or a stream of chunks, or a
hijack of the connection), plus Docker's conventions for query values and errors.

Handlers run in worker threads and may block (they call the engine). A streamed body is
an iterator of bytes, pulled one chunk at a time from a thread; when the client goes away
the server sets `request.gone` and stops pulling, so a generator that checks it ends at its
next chunk.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from rootless.errors import Conflict, InvalidArgument, NotFound, RlError


class ApiError(Exception):
    """An error answered with Docker's body, {"message": ...}, and this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def status_of(exc: BaseException) -> tuple[int, str]:
    """Docker's status code and message for an error a handler raised."""
    if isinstance(exc, ApiError):
        return exc.status, exc.message
    if isinstance(exc, NotFound):
        return 404, str(exc)
    if isinstance(exc, Conflict):
        return 409, str(exc)
    if isinstance(exc, InvalidArgument):
        return 400, str(exc)
    if isinstance(exc, RlError):
        return 500, str(exc)
    return 500, f"internal error: {type(exc).__name__}: {exc}"


@dataclass
class Request:
    method: str
    path: str  # without the /vX.Y prefix
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    api_version: tuple[int, int]
    params: dict[str, str] = field(default_factory=dict)  # from the route's pattern
    body: bytes = b""  # a JSON body, read whole (bounded)
    body_file: str | None = None  # a tar body, spooled to a file in the store's tmp area
    gone: threading.Event = field(default_factory=threading.Event)
    peer_pid: int | None = None

    def q(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def qbool(self, name: str, default: bool = False) -> bool:
        """Docker's booleans: 1/true/True are true, 0/false/"" false."""
        v = self.q(name)
        if v is None:
            return default
        return v.strip().lower() in ("1", "true", "yes")

    def qint(self, name: str, default: int | None = None) -> int | None:
        v = self.q(name)
        if v is None or v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise ApiError(400, f"invalid value for {name}: {v!r} is not an integer") from None

    def filters(self) -> dict[str, list[str]]:
        """The `filters` query value: {"label": ["a=b"]}, or the old {"label": {"a=b": true}}."""
        raw = self.q("filters")
        if not raw:
            return {}
        try:
            doc = json.loads(raw)
        except ValueError:
            raise ApiError(400, f"invalid filters: {raw!r} is not JSON") from None
        if not isinstance(doc, dict):
            raise ApiError(400, "invalid filters: not a JSON object")
        out: dict[str, list[str]] = {}
        for k, v in doc.items():
            if isinstance(v, dict):
                out[k] = [x for x, on in v.items() if on]
            elif isinstance(v, list):
                out[k] = [str(x) for x in v]
            else:
                out[k] = [str(v)]
        return out

    def json(self, default=None):
        """The body as JSON (None/default when empty); 400 when it is not JSON."""
        if not self.body.strip():
            return default
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ApiError(400, f"the request body is not valid JSON: {exc}") from None


@dataclass
class Response:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    # hijack(sock, pending): the raw connection after the response head (101 when the
    # client asked for an upgrade, else 200), run in a worker thread; `pending` holds the
    # bytes the client sent after its request. The server closes `sock` after it.
    hijack: Callable | None = None
    streamed: bool = False  # a long stream: the server watches for the client going away


def json_response(doc, status: int = 200, headers: list | None = None) -> Response:
    return Response(status, json.dumps(doc).encode() + b"\n", headers=headers or [])


def no_content(status: int = 204) -> Response:
    return Response(status, b"", content_type="")


def json_lines(docs: Iterable[dict]) -> Iterable[bytes]:
    for d in docs:
        yield json.dumps(d).encode() + b"\r\n"


def frame(stream: int, data: bytes) -> bytes:
    """Docker's multiplexed stream frame: stream (1 stdout, 2 stderr), 0, 0, 0, then the
    length as 4 big-endian bytes, then the data."""
    return bytes((stream, 0, 0, 0)) + len(data).to_bytes(4, "big") + data


def parse_qs_strict(text: str) -> dict[str, list[str]]:
    return parse_qs(text, keep_blank_values=True)

"""The service's connections: trio for concurrency, h11 for HTTP/1.1.

Why trio + h11: h11 is sans-IO, so the server owns the socket at every moment; Docker's
attach and exec start take the connection over after their response head ("hijack"),
which is here nothing more than: stop feeding h11, hand the raw socket (and the bytes the
client already sent after its request, h11's trailing data) to a worker thread. Servers
built on a framework (aiohttp, ASGI) hide the socket and make that a fight. trio gives
structured cancellation: a client that goes away cancels what serves it, nothing leaks.

Each request's handler runs in a worker thread (trio.to_thread): engine calls block (they
read the catalog, wait for containers, fork helpers), and a long `logs --follow` or
`attach` must not stall `/containers/json`.

Limits, each answered with Docker's {"message": ...} body and the connection closed: a
request head over MAX_HEAD bytes (431), a JSON body over MAX_JSON_BODY (413), a body whose
next bytes do not come within BODY_TIMEOUT seconds (408), a request h11 cannot parse (400).
Only the user may connect: SO_PEERCRED's uid must be ours and the peer must be in our user
namespace (a process of one of our containers maps to our uid too); anything else gets a
403 and a line on stderr.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import sys
import tempfile
import time

import h11
import trio

from rootless import __version__
from rootless.api import API_VERSION, MIN_API_VERSION, protocol, routes
from rootless.trace import trace

MAX_HEAD = 64 * 1024
MAX_JSON_BODY = 16 * 1024 * 1024
BODY_TIMEOUT = 60.0
_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")
_LIMITER = trio.CapacityLimiter(512)  # threads: many follows/attaches at once


def log(text: str) -> None:
    print(f"rl system service: {text}", file=sys.stderr, flush=True)


def _version_tuple(text: str) -> tuple[int, int]:
    a, b = text.split(".")
    return int(a), int(b)


def peer_problem(sock) -> str | None:
    """Why a unix-socket peer may not use the service, or None when it is us."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError as exc:
        return f"its credentials cannot be read ({exc.strerror})"
    pid, uid, _gid = struct.unpack("3i", raw)
    if uid != os.getuid():
        return f"uid {uid} (pid {pid}) is not uid {os.getuid()}, the owner of this service"
    try:
        if os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user"):
            return (f"pid {pid} runs in another user namespace (a container?); only "
                    "processes of the user on the host may use this socket")
    except OSError:
        return f"the user namespace of pid {pid} cannot be read"
    return None


class Service:
    def __init__(self, listeners: list[socket.socket], *, idle: float, unix: bool,
                 cleanup: str | None = None, tmpdir: str | None = None) -> None:
        self.listeners = listeners
        self.idle = idle
        self.unix = unix
        self.cleanup = cleanup  # the socket path we made, removed at exit
        self.tmpdir = tmpdir
        self.connections = 0
        self.last_active = time.monotonic()

    # -- life ------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            trio.run(self._main)
        finally:
            if self.cleanup:
                try:
                    os.unlink(self.cleanup)
                except OSError:
                    pass

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            for s in self.listeners:
                tsock = trio.socket.from_stdlib_socket(s)
                nursery.start_soon(self._accept_loop, trio.SocketListener(tsock))
            nursery.start_soon(self._signals, nursery.cancel_scope)
            if self.idle > 0:
                nursery.start_soon(self._idle_watch, nursery.cancel_scope)

    async def _signals(self, scope: trio.CancelScope) -> None:
        import signal

        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                scope.cancel()
                return

    async def _idle_watch(self, scope: trio.CancelScope) -> None:
        while True:
            await trio.sleep(min(self.idle, 1.0))
            if self.connections == 0 and time.monotonic() - self.last_active >= self.idle:
                scope.cancel()
                return

    async def _accept_loop(self, listener: trio.SocketListener) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:  # EMFILE and the like: keep serving the others
                    log(f"accept failed: {exc}")
                    await trio.sleep(0.1)
                    continue
                nursery.start_soon(self._connection, stream)

    # -- one connection ----------------------------------------------------------------------
    async def _connection(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        self.last_active = time.monotonic()
        try:
            if self.unix:
                problem = peer_problem(stream.socket)
                if problem is not None:
                    log(f"refused a connection: {problem}")
                    body = json.dumps({"message": f"refused: {problem}"}).encode()
                    head = (f"HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n"
                            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
                    try:
                        await stream.send_all(head.encode() + body)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                    return
            await self._serve(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
            pass  # the client went away
        finally:
            self.connections -= 1
            self.last_active = time.monotonic()
            try:
                await stream.aclose()
            except Exception:
                pass

    async def _serve(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        while True:
            try:
                event = await self._next_event(conn, stream, timeout=None)
                if isinstance(event, h11.ConnectionClosed):
                    return
                if not isinstance(event, h11.Request):
                    return
                keep = await self._request(conn, stream, event)
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                if "exceeds" in str(exc) or "too long" in str(exc).lower():
                    status = 431
                await self._send_error(conn, stream, status, f"bad request: {exc}")
                return
            except protocol.ApiError as exc:  # while reading the request's body
                await self._send_error(conn, stream, exc.status, exc.message)
                return
            if not keep or conn.our_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _next_event(self, conn: h11.Connection, stream, timeout: float | None):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                with trio.move_on_after(timeout if timeout is not None else float("inf")) as cs:
                    data = await stream.receive_some(65536)
                if cs.cancelled_caught:
                    raise protocol.ApiError(408, "the request body stopped coming "
                                            f"(nothing for {BODY_TIMEOUT:.0f} s)")
                conn.receive_data(data)
                continue
            return event

    async def _read_body(self, conn: h11.Connection, stream, kind: str, req) -> None:
        """The request's body: whole in memory for JSON (bounded), spooled to a temp file
        for tar bodies (build contexts, image loads, archives)."""
        out = None
        size = 0
        chunks: list[bytes] = []
        try:
            while True:
                event = await self._next_event(conn, stream, BODY_TIMEOUT)
                if isinstance(event, h11.EndOfMessage):
                    break
                if isinstance(event, h11.ConnectionClosed):
                    raise protocol.ApiError(400, "the client closed the connection mid-body")
                if not isinstance(event, h11.Data):
                    continue
                size += len(event.data)
                if kind == "file":
                    if out is None:
                        # <pid>-: the store's sweep of tmp/ keeps what live processes
                        # spool there (rootless/store/layers.py TempArea)
                        fd, path = tempfile.mkstemp(prefix=f"{os.getpid()}-api-body-",
                                                    dir=self.tmpdir)
                        out = os.fdopen(fd, "wb")
                        req.body_file = path
                    out.write(event.data)
                else:
                    if size > MAX_JSON_BODY:
                        raise protocol.ApiError(413, f"the request body is over "
                                                f"{MAX_JSON_BODY >> 20} MiB")
                    chunks.append(event.data)
        except BaseException:
            if out is not None:
                out.close()
                _unlink(req.body_file)
                req.body_file = None
            raise
        if out is not None:
            out.close()
        req.body = b"".join(chunks)

    async def _request(self, conn: h11.Connection, stream, event: h11.Request) -> bool:
        """Serve one request; False when the connection must end after it."""
        self.last_active = time.monotonic()
        method = event.method.decode("ascii", "replace").upper()
        target = event.target.decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
        path, _, query = target.partition("?")
        version = _version_tuple(API_VERSION)
        m = _VERSION_PREFIX.match(path)
        req = protocol.Request(method, path, protocol.parse_qs_strict(query), headers, version)
        try:
            if m:
                req.api_version = (int(m.group(1)), int(m.group(2)))
                req.path = m.group(3)
                if req.api_version < _version_tuple(MIN_API_VERSION):
                    raise protocol.ApiError(
                        400, f"client version {m.group(1)}.{m.group(2)} is too old. Minimum "
                        f"supported API version is {MIN_API_VERSION}, please upgrade your "
                        "client to a newer version")
            handler, params, body_kind = routes.match(method, req.path)
            req.params = params
            await self._read_body(conn, stream, body_kind, req)
        except protocol.ApiError as exc:
            if exc.status in (408, 413):  # the body cannot be read on: the connection ends
                await self._send_error(conn, stream, exc.status, exc.message)
                return False
            await self._drain(conn, stream)
            await self._send_error(conn, stream, exc.status, exc.message, close=False)
            return True
        trace(f"api {method} {req.path}")
        try:
            resp = await trio.to_thread.run_sync(_call, handler, req, limiter=_LIMITER,
                                                 abandon_on_cancel=True)
        finally:
            _unlink(req.body_file)
        trace(f"api {method} {req.path} handled {resp.status}")
        if resp.hijack is not None:
            await self._hijack(conn, stream, req, resp)
            return False
        keep = await self._respond(conn, stream, req, resp)
        trace(f"api {method} {req.path} answered")
        return keep

    async def _drain(self, conn, stream) -> None:
        while conn.their_state is h11.SEND_BODY:
            event = await self._next_event(conn, stream, BODY_TIMEOUT)
            if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return

    def _headers(self, resp: protocol.Response, extra: list) -> list[tuple[str, str]]:
        h = [("Api-Version", API_VERSION), ("Server", f"rl/{__version__}"),
             ("Docker-Experimental", "false"), ("Ostype", "linux")]
        if resp.content_type:
            h.append(("Content-Type", resp.content_type))
        return h + resp.headers + extra

    async def _respond(self, conn, stream, req, resp: protocol.Response) -> bool:
        is_head = req.method == "HEAD"
        if isinstance(resp.body, bytes):
            extra = [("Content-Length", str(len(resp.body)))] if resp.status not in (204, 304) \
                else []
            await self._send(conn, stream, h11.Response(
                status_code=resp.status, headers=self._headers(resp, extra)))
            if resp.body and not is_head and resp.status not in (204, 304):
                await self._send(conn, stream, h11.Data(data=resp.body))
            await self._send(conn, stream, h11.EndOfMessage())
            return True
        it = iter(resp.body)
        json_stream = resp.content_type.startswith("application/json")
        await self._send(conn, stream, h11.Response(status_code=resp.status,
                                                    headers=self._headers(resp, [])))
        ok = True
        try:
            if resp.streamed:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch_gone, conn, stream, req, nursery.cancel_scope)
                    ok = await self._pump(conn, stream, req, it, json_stream)
                    nursery.cancel_scope.cancel()
                if req.gone.is_set():
                    return False
            else:
                ok = await self._pump(conn, stream, req, it, json_stream)
        finally:
            if not ok or req.gone.is_set():
                req.gone.set()
        if ok and not req.gone.is_set():
            await self._send(conn, stream, h11.EndOfMessage())
            return True
        return False

    async def _pump(self, conn, stream, req, it, json_stream: bool) -> bool:
        while True:
            try:
                chunk = await trio.to_thread.run_sync(next, it, None, limiter=_LIMITER,
                                                      abandon_on_cancel=True)
            except Exception as exc:
                msg = protocol.status_of(exc)[1]
                log(f"{req.method} {req.path}: error mid-stream: {msg}")
                if not json_stream:  # a tar cut short: the client must see it break
                    return False
                # Docker's way in a JSON stream: an error line (build, pull, push)
                chunk = json.dumps({"message": msg, "error": msg,
                                    "errorDetail": {"message": msg}}).encode() + b"\r\n"
                await self._send(conn, stream, h11.Data(data=chunk))
                return True
            if chunk is None:
                return True
            if chunk:
                await self._send(conn, stream, h11.Data(data=chunk))

    async def _watch_gone(self, conn, stream, req, scope: trio.CancelScope) -> None:
        """A streamed response: the client may send nothing more until its end, so EOF (or
        an error) on the socket means it went away: stop the stream."""
        while True:
            try:
                data = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            if not data:
                req.gone.set()
                scope.cancel()
                return
            conn.receive_data(data)  # pipelined: h11 keeps it for the next cycle

    async def _hijack(self, conn, stream, req, resp: protocol.Response) -> None:
        upgrade = "upgrade" in req.headers.get("connection", "").lower()
        if upgrade:
            head = ("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream"
                    "\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n")
        else:
            head = ("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n")
        head += f"Api-Version: {API_VERSION}\r\n"
        for k, v in resp.headers:
            head += f"{k}: {v}\r\n"
        await stream.send_all((head + "\r\n").encode())
        pending = conn.trailing_data[0]
        fd = stream.socket.detach()
        raw = socket.socket(fileno=fd)
        raw.setblocking(True)
        try:
            await trio.to_thread.run_sync(_hijacked, resp.hijack, raw, pending, req,
                                          limiter=_LIMITER, abandon_on_cancel=True)
        finally:
            req.gone.set()

    async def _send(self, conn, stream, event) -> None:
        data = conn.send(event)
        if data:
            await stream.send_all(data)

    async def _send_error(self, conn, stream, status: int, message: str, *,
                          close: bool = True) -> None:
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = json.dumps({"message": message}).encode() + b"\n"
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                   ("Api-Version", API_VERSION)]
        if close:
            headers.append(("Connection", "close"))
        try:
            await self._send(conn, stream, h11.Response(status_code=status, headers=headers))
            await self._send(conn, stream, h11.Data(data=body))
            await self._send(conn, stream, h11.EndOfMessage())
        except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass


def _call(handler, req: protocol.Request) -> protocol.Response:
    """Run one handler: its errors become Docker's error responses."""
    try:
        return handler(req)
    except Exception as exc:
        status, msg = protocol.status_of(exc)
        if status >= 500:
            import traceback

            log(f"{req.method} {req.path}: {msg}")
            if not isinstance(exc, protocol.ApiError):
                traceback.print_exception(exc, file=sys.stderr)
        return protocol.json_response({"message": msg}, status)


def _hijacked(fn, raw: socket.socket, pending: bytes, req) -> None:
    try:
        fn(raw, pending)
    except Exception as exc:
        log(f"{req.method} {req.path}: {protocol.status_of(exc)[1]}")
    finally:
        try:
            raw.close()
        except OSError:
            pass


def _unlink(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass

"""The IC API's hot path on raw HTTP/1.1, in front of aiohttp.

Theory of operation.  Agents make many small requests on keep-alive connections:
``POST /api/v{2,3}/canister/<id>/{query,call,read_state}`` and ``GET /api/v2/status``
with a ``Content-Length`` CBOR body.  ``ApiProtocol`` is the protocol of every accepted
connection.  It parses such a request itself (request line, headers, body: a few
microseconds of bytes handling instead of aiohttp's request and response objects),
calls the same ``HttpFrontend`` endpoint functions, and writes one response with the
replica's CORS headers.  Anything else — another path (dashboard, gateway), another
method (``OPTIONS``, a ``GET`` on a ``POST`` endpoint), HTTP/1.0, a query string,
``Transfer-Encoding``, ``Expect``, ``Upgrade``, a body over the size limit, a header
block over ``MAX_HEAD_BYTES`` or anything that does not parse cleanly — is *handed
off*: the connection switches to aiohttp's protocol, which receives every byte from
the start of that request and owns the connection from then on.  So aiohttp keeps
answering every odd or malformed request exactly as before, and the hot path only
ever sees the clean common case.

Requests on one connection are answered in order: while a synchronous call
(``/api/v3``) waits for its certificate, later bytes are buffered (up to one more
largest request; then the connection stops being read until the call is answered),
and a client that does not read its answers stops being read too (asyncio's write
flow control), so memory stays bounded.  Idle keep-alive
connections are closed after ``KEEPALIVE_TIMEOUT`` seconds (aiohttp's default).

Spec: RFC 9112 (HTTP/1.1 message syntax: request line, header fields,
``Content-Length`` framing, persistent connections); interface spec §1.1 (endpoints).
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast

from aiohttp import web

if TYPE_CHECKING:
    from icp.http.server import HttpFrontend, HttpReply

log = logging.getLogger("icp.http")

MAX_HEAD_BYTES: Final = 16 * 1024
"""Largest request line + header block parsed here (larger: aiohttp decides)."""
KEEPALIVE_TIMEOUT: Final = 75.0
"""Seconds an idle keep-alive connection stays open (aiohttp's default)."""
SWEEP_INTERVAL: Final = 10.0
"""Seconds between sweeps for idle connections."""

ROUTE: Final = re.compile(r"/api/(v[234])/(canister|subnet)/([^/?#]+)/(call|query|read_state)")
"""The hot endpoints: version, kind, effective id, operation."""
STATUS_PATH: Final = "/api/v2/status"
CBOR: Final = "application/cbor"


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Unknown"


def cors_block(headers: dict[str, str]) -> bytes:
    """Return header lines for ``headers`` (each ``name: value\\r\\n``)."""
    return b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())


class ApiProtocol(asyncio.Protocol):
    """One client connection: the hot API endpoints here, everything else to aiohttp."""

    def __init__(
        self,
        frontend: HttpFrontend,
        fallback: Callable[[], asyncio.Protocol],
        connections: set[ApiProtocol],
        cors: bytes,
    ) -> None:
        self.frontend = frontend
        self.fallback = fallback
        self.connections = connections
        self.cors = cors
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False
        self.closing = False
        self.paused = False
        self.write_paused = False
        self.last_activity = time.monotonic()

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.transport = None

    def pause_writing(self) -> None:
        # the client does not read its answers: stop reading its requests too
        self.write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None:
            if not self.paused:
                self.transport.resume_reading()
            self._process()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.last_activity = time.monotonic()
        if not self.busy:
            self._process()
        elif (
            len(self.buffer) > MAX_HEAD_BYTES + self.frontend.max_request_bytes
            and self.transport is not None
            and not self.paused
        ):
            # a client piling up requests behind a waiting sync call: stop reading
            # until that call is answered (memory stays bounded)
            self.transport.pause_reading()
            self.paused = True

    # -- parsing -----------------------------------------------------------------------

    def _process(self) -> None:
        """Answer every complete request in the buffer (in order)."""
        while (
            self.transport is not None
            and not self.busy
            and not self.closing
            and not self.write_paused
        ):
            end = self.buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES)
            if end < 0:
                if len(self.buffer) >= MAX_HEAD_BYTES:
                    self._hand_off()
                return
            parsed = self._parse_head(bytes(self.buffer[:end]))
            if parsed is None:
                self._hand_off()
                return
            endpoint, target, length, close, ctype = parsed
            if len(self.buffer) < end + 4 + length:
                return  # wait for the rest of the body
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.closing = close
            self._dispatch(endpoint, target, ctype, body)

    def _parse_head(self, head: bytes) -> tuple[str, str, int, bool, str] | None:
        """Return (endpoint, effective id, body length, close, content type), or None.

        None means "not the clean common case": aiohttp answers the request.
        """
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or parts[2] != b"HTTP/1.1" or parts[0] not in (b"GET", b"POST"):
            return None
        try:
            path = parts[1].decode("ascii")
        except UnicodeDecodeError:
            return None
        method = parts[0]
        length = 0
        close = False
        ctype = ""
        seen_length = False
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                return None
            key = name.lower()
            text = value.strip()
            if key == b"content-length":
                if seen_length or not text.isdigit():
                    return None
                seen_length = True
                length = int(text)
            elif key == b"content-type":
                ctype = text.decode("latin-1")
            elif key == b"connection":
                tokens = {t.strip() for t in text.lower().split(b",")}
                if b"upgrade" in tokens:
                    return None
                close = b"close" in tokens
            elif key in (b"transfer-encoding", b"expect", b"upgrade"):
                return None
        if length > self.frontend.max_request_bytes:
            return None
        if method == b"GET":
            if path != STATUS_PATH or length:
                return None
            return "status", "", 0, close, ctype
        match = ROUTE.fullmatch(path)
        if match is None:
            return None
        version, kind, target, operation = match.groups()
        if version == "v4" and operation != "call":
            endpoint = ""
        elif kind == "subnet":
            endpoint = "read_state_subnet" if operation == "read_state" else ""
        elif operation == "call":
            endpoint = "call_v2" if version == "v2" else "call_v3"
        else:
            endpoint = operation
        if not endpoint or not seen_length:
            return None
        if "%" in target:
            target = urllib.parse.unquote(target)
        return endpoint, target, length, close, ctype

    # -- answering ---------------------------------------------------------------------

    def _dispatch(self, endpoint: str, target: str, ctype: str, body: bytes) -> None:
        from icp.http.server import HttpReply, text_reply

        frontend = self.frontend
        frontend.metrics.requests += 1
        if endpoint == "status":
            self._write(frontend.get_status())
            return
        if ctype.split(";")[0].strip().lower() != CBOR:
            self._write(text_reply(400, f"unexpected content-type {ctype!r}, expected {CBOR}"))
            return
        if endpoint == "call_v3":
            try:
                outcome = frontend.start_call_v3(target, body)
            except Exception as exc:  # the server must survive any request
                log.exception("internal error serving call_v3")
                outcome = text_reply(500, f"internal error: {type(exc).__name__}: {exc}")
            if isinstance(outcome, HttpReply):
                self._write(outcome)
            else:
                self.busy = True
                outcome.add_done_callback(self._v3_done)
            return
        handle: Any = {
            "call_v2": frontend.call_v2,
            "query": frontend.query,
            "read_state": frontend.read_state_canister,
            "read_state_subnet": frontend.read_state_subnet,
        }[endpoint]
        try:
            reply = handle(target, body)
        except Exception as exc:  # the server must survive any request
            log.exception("internal error serving %s", endpoint)
            reply = text_reply(500, f"internal error: {type(exc).__name__}: {exc}")
        self._write(reply)

    def _v3_done(self, future: asyncio.Future[HttpReply]) -> None:
        from icp.http.server import text_reply

        self.busy = False
        if future.cancelled():
            reply = text_reply(503, "the server is shutting down")
        elif (exc := future.exception()) is not None:
            log.error("internal error serving call_v3", exc_info=exc)
            reply = text_reply(500, f"internal error: {type(exc).__name__}: {exc}")
        else:
            reply = future.result()
        self._write(reply)
        if self.paused and self.transport is not None:
            self.paused = False
            if not self.write_paused:
                self.transport.resume_reading()
        self._process()

    def _write(self, reply: HttpReply) -> None:
        if reply.status >= 400:
            self.frontend.metrics.errors += 1
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        head = b"HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
            reply.status,
            _reason(reply.status),
            self.cors,
            reply.content_type.encode("latin-1"),
            len(reply.body),
            b"Connection: close\r\n" if self.closing else b"",
        )
        transport.write(head + reply.body if len(reply.body) < 65536 else head)
        if len(reply.body) >= 65536:
            transport.write(reply.body)
        self.last_activity = time.monotonic()
        if self.closing:
            transport.close()

    def _hand_off(self) -> None:
        """Give the connection, from the current request on, to aiohttp."""
        transport = self.transport
        if transport is None:
            return
        self.connections.discard(self)
        self.transport = None
        protocol = self.fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            protocol.data_received(data)

    def close_if_idle(self, now: float) -> None:
        """Close the connection if it has been idle longer than ``KEEPALIVE_TIMEOUT``."""
        if (
            self.transport is not None
            and not self.busy
            and now - self.last_activity > KEEPALIVE_TIMEOUT
        ):
            self.transport.close()


class ApiSite(web.TCPSite):
    """A TCP site whose connections start on ``ApiProtocol`` (aiohttp for the rest)."""

    __slots__ = ("_connections", "_frontend", "_sweeper")

    def __init__(self, runner: web.BaseRunner, frontend: HttpFrontend, **kwargs: Any) -> None:
        super().__init__(runner, **kwargs)
        self._frontend = frontend
        self._connections: set[ApiProtocol] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen; every accepted connection gets an ``ApiProtocol``."""
        from icp.http.server import CORS_HEADERS

        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        cors = cors_block(CORS_HEADERS)
        frontend, connections = self._frontend, self._connections

        def factory() -> ApiProtocol:
            return ApiProtocol(frontend, server, connections, cors)

        self._server = await loop.create_server(
            factory, self._host, self._port, backlog=self._backlog
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
        self._sweeper = loop.create_task(self._sweep())

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = time.monotonic()
            for connection in list(self._connections):
                connection.close_if_idle(now)

    async def stop(self) -> None:
        """Stop listening and close the connections still on the hot path."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self._connections):
            if connection.transport is not None:
                connection.transport.close()
        await super().stop()


__all__ = ["KEEPALIVE_TIMEOUT", "MAX_HEAD_BYTES", "ApiProtocol", "ApiSite"]

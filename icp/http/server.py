"""The IC HTTP interface over an in-process IC, served by aiohttp (and a hot path).

Theory of operation.  ``HttpFrontend`` owns a ``Backend`` (an ``InternetComputer``)
and everything an edge may touch: the wall clock and the event loop.  A background
task (``drive_clock``) keeps the IC's virtual time level with the wall clock, so
consensus finalizes blocks and certifies states at its own pace while the handlers
answer requests in between; it sleeps ``CLOCK_POLL`` when caught up, and after each
step answers the ``/api/v3`` calls whose status a new certified height made final
(one future and one timeout timer per waiting call).  All IC access happens on the
event loop's thread (the IC is not thread-safe and its steps are short).
Connections start on ``icp.http.wire.ApiProtocol``, which parses the common agent
requests itself and hands everything else to the aiohttp application below.

Each endpoint is a small function from (frontend, path parameters, body) to an
``HttpReply``; ``ICError`` from the backend becomes the status and body the replica
would send: a call refused before execution (``inspect_message``, missing canister)
is a 200 CBOR reject on ``/api/v2/.../call`` and a ``non_replicated_rejection`` on
``/api/v3/.../call``; other refusals are 4xx/5xx with a plain-text message (what the
replica sends and what agents show to users).  CORS headers follow the replica's.

Spec: interface spec §1.1-§1.8; dfinity/ic ``rs/http_endpoints/public`` (CORS layer,
5 MiB request limit, 10 s ``/api/v3`` call wait) [mem].
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time as _time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import attrs
from aiohttp import web

from icp.crypto.hashing import cbor_encode
from icp.http.backend import (
    Backend,
    parse_principal,
    request_content,
    resolve_effective_canister_id,
)
from icp.http.wire import ApiSite
from icp.ic import CallResult, ICError
from icp.principal import Principal

if TYPE_CHECKING:
    from icp.ic import InternetComputer

log = logging.getLogger("icp.http")

CBOR: Final = "application/cbor"
MAX_REQUEST_BYTES: Final = 5 * 1024 * 1024
"""Largest request body accepted (the replica's limit; ingress itself is ≤ 2 MiB)."""
SYNC_CALL_TIMEOUT: Final = 10.0
"""Seconds ``/api/v3/.../call`` waits for a certified answer before answering 202."""
CLOCK_STEP: Final = 50_000_000
"""Largest slice of virtual time (ns) run before yielding to pending requests."""
CLOCK_POLL: Final = 0.001
"""Seconds the clock driver sleeps when the IC has caught up with the wall clock."""
PRINCIPAL_CACHE: Final = 4096
"""Textual principals from URLs remembered by the frontend (see ``_principal``)."""
LISTEN_BACKLOG: Final = 1024
"""Pending connections the listening socket queues (aiohttp's default of 128 drops the
SYNs of larger bursts of clients, which then wait out TCP's 1-3-7 s retransmissions)."""
TERMINAL_STATUSES: Final = frozenset({"replied", "rejected", "done"})
"""Request statuses a synchronous call answers with a certificate.  Spec: §1.8."""

CANISTER_LEVEL_REJECTS: Final = frozenset({3, 4, 5})
"""Reject codes of refusals by the destination (DESTINATION_INVALID, CANISTER_*)."""

CORS_HEADERS: Final = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": (
        "DNT, User-Agent, X-Requested-With, If-None-Match, If-Modified-Since, Cache-Control, "
        "Content-Type, Range, Cookie, X-Ic-Canister-Id"
    ),
    "Access-Control-Expose-Headers": (
        "Accept-Ranges, Content-Length, Content-Range, X-Request-Id, X-Ic-Canister-Id"
    ),
    "Access-Control-Max-Age": "7200",
}
"""The replica's CORS layer (dfinity/ic ``rs/http_endpoints/public/src/lib.rs``) [mem]."""


def wall_clock_ns() -> int:
    """Return the wall-clock time in nanoseconds since the epoch."""
    return _time.time_ns()


@attrs.frozen
class HttpReply:
    """A response: status, body and content type."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain"


def cbor_reply(value: Any, status: int = 200) -> HttpReply:
    """Return a CBOR (self-described) response."""
    return HttpReply(status, cbor_encode(value), CBOR)


def text_reply(status: int, message: str) -> HttpReply:
    """Return a plain-text error response (what the replica sends for 4xx/5xx)."""
    return HttpReply(status, (message.rstrip() + "\n").encode(), "text/plain; charset=utf-8")


def reject_fields(exc: ICError) -> dict[str, Any]:
    """Return the ``reject_code``/``reject_message``/``error_code`` map of a refusal.

    Spec: interface spec §1.1 (pre-processing rejection body), §1.7.
    """
    fields: dict[str, Any] = {"reject_code": exc.reject_code, "reject_message": exc.message}
    if exc.error_code:
        fields["error_code"] = exc.error_code
    return fields


def error_reply(exc: ICError, endpoint: str = "") -> HttpReply:
    """Return the HTTP response for a refused request.

    ``endpoint`` is ``call_v2`` or ``call_v3`` for the call endpoints, whose refusals
    by the destination (missing canister, ``inspect_message`` said no: reject codes
    3-5) are 200 CBOR bodies; malformed or unauthenticated requests are 4xx text.
    Spec: interface spec §1.1.
    """
    if exc.reject_code in CANISTER_LEVEL_REJECTS and exc.http_status < 500:
        if endpoint == "call_v2":
            return cbor_reply(reject_fields(exc))
        if endpoint == "call_v3":
            return cbor_reply(dict(reject_fields(exc), status="non_replicated_rejection"))
    text = exc.message
    if exc.error_code:
        text = f"{text} (error code {exc.error_code})"
    return text_reply(exc.http_status, text)


def certified_reply(result: CallResult) -> HttpReply:
    """Return the ``/api/v3`` answer for a request with a certified terminal status.

    Spec: interface spec §1.1 (``{status: "replied", certificate}`` for replied and
    rejected alike; the certificate holds ``/request_status/<id>`` and ``/time``).
    """
    return cbor_reply({"status": "replied", "certificate": result.certificate})


@attrs.define
class Metrics:
    """Counters the dashboard shows (ingress rate, requests served)."""

    ingress_times: collections.deque[float] = attrs.Factory(
        lambda: collections.deque(maxlen=10_000)
    )
    requests: int = 0
    errors: int = 0
    backend_seconds: float = 0.0
    """CPU time spent inside the IC answering requests (query, submit, certificates)."""
    clock_seconds: float = 0.0
    """CPU time spent running the IC's consensus to keep up with the wall clock."""

    def ingress_rate(self, now: float, window: float = 10.0) -> float:
        """Return accepted ingress messages per second over the last ``window`` seconds."""
        recent = sum(1 for t in self.ingress_times if now - t <= window)
        return recent / window


class HttpFrontend:
    """The IC HTTP interface (and dashboard) over a ``Backend``.

    Spec: see module docstring.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        clock: Callable[[], int] = wall_clock_ns,
        sync_call_timeout: float = SYNC_CALL_TIMEOUT,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.backend = backend
        self.clock = clock
        self.sync_call_timeout = sync_call_timeout
        self.max_request_bytes = max_request_bytes
        self.metrics = Metrics()
        self._clock_task: asyncio.Task[None] | None = None
        self._principals: dict[str, Principal] = {}
        self._waiters: dict[
            tuple[bytes, bytes], tuple[Principal, list[asyncio.Future[HttpReply]]]
        ] = {}

    def _principal(self, text: str, what: str = "effective canister id") -> Principal:
        """Parse a textual principal from a URL, remembering recent ones.

        Agents name the same few effective canister ids over and over; checking a
        textual id (base32, CRC-32) is most of the hot path's own cost.  At most
        ``PRINCIPAL_CACHE`` valid ids are kept (the cache is emptied when full).
        """
        known = self._principals.get(text)
        if known is not None:
            return known
        principal = parse_principal(text, what)
        if len(self._principals) >= PRINCIPAL_CACHE:
            self._principals.clear()
        self._principals[text] = principal
        return principal

    # -- endpoints (small functions of the request) ---------------------------------------

    def get_status(self) -> HttpReply:
        """``GET /api/v2/status``: CBOR map with the root key.  Spec: §1.1."""
        return cbor_reply(self.backend.status())

    def submit(self, ecid_text: str, body: bytes) -> tuple[bytes, Principal]:
        """Resolve the effective canister id and submit a call; return (request id, ecid)."""
        ecid = resolve_effective_canister_id(
            self.backend.topology, self._principal(ecid_text), body
        )
        start = _time.thread_time()
        try:
            rid = self.backend.submit_call(body, ecid)
        finally:
            self.metrics.backend_seconds += _time.thread_time() - start
        self.metrics.ingress_times.append(_time.monotonic())
        return rid, ecid

    def call_v2(self, ecid_text: str, body: bytes) -> HttpReply:
        """``POST /api/v2/canister/<ecid>/call``: 202 when accepted.  Spec: §1.1."""
        try:
            self.submit(ecid_text, body)
        except ICError as exc:
            return error_reply(exc, "call_v2")
        return HttpReply(202)

    async def call_v3(self, ecid_text: str, body: bytes) -> HttpReply:
        """``POST /api/v3/canister/<ecid>/call``: wait for the certified answer, or 202.

        Spec: interface spec §1.1 (synchronous call).
        """
        outcome = self.start_call_v3(ecid_text, body)
        return outcome if isinstance(outcome, HttpReply) else await outcome

    def start_call_v3(self, ecid_text: str, body: bytes) -> HttpReply | asyncio.Future[HttpReply]:
        """Submit a synchronous call; return its answer now, or a future of it.

        The future is resolved by ``wake_waiters`` once the request's status is
        certified, or with 202 after ``sync_call_timeout`` seconds (one timer, no task);
        cancelling it forgets the request.  Spec: interface spec §1.1.
        """
        try:
            rid, ecid = self.submit(ecid_text, body)
        except ICError as exc:
            return error_reply(exc, "call_v3")
        reply = self._outcome(rid, ecid)
        if reply is not None:
            return reply
        loop = asyncio.get_running_loop()
        key = (rid, ecid.raw)
        waiter: asyncio.Future[HttpReply] = loop.create_future()
        self._waiters.setdefault(key, (ecid, []))[1].append(waiter)
        timer = loop.call_later(self.sync_call_timeout, _settle, waiter, HttpReply(202))

        def settled(done: asyncio.Future[HttpReply]) -> None:
            timer.cancel()
            entry = self._waiters.get(key)
            if entry is not None and done in entry[1]:
                entry[1].remove(done)
                if not entry[1]:
                    del self._waiters[key]

        waiter.add_done_callback(settled)
        return waiter

    def _outcome(self, rid: bytes, ecid: Principal) -> HttpReply | None:
        """Return the v3 answer if the request's status is certified terminal, else None.

        The certified status is looked up first (cheap); only a terminal one pays for a
        certificate.
        """
        start = _time.thread_time()
        try:
            status = self.backend.request_status(rid, ecid)
            if status is None or status.status.value not in TERMINAL_STATUSES:
                return None
            return certified_reply(self.backend.wait_for(rid, ecid, timeout=0))
        except ICError as exc:
            return None if exc.http_status == 408 else error_reply(exc)
        finally:
            self.metrics.backend_seconds += _time.thread_time() - start

    def wake_waiters(self) -> None:
        """Answer the synchronous calls whose outcome is now certified."""
        for key, (ecid, waiters) in list(self._waiters.items()):
            reply = self._outcome(key[0], ecid)
            if reply is None:
                continue
            for waiter in list(waiters):
                _settle(waiter, reply)

    def query(self, ecid_text: str, body: bytes) -> HttpReply:
        """``POST /api/v2/canister/<ecid>/query``: signed CBOR response.  Spec: §1.6."""
        try:
            ecid = resolve_effective_canister_id(
                self.backend.topology, self._principal(ecid_text), body
            )
            start = _time.thread_time()
            try:
                return HttpReply(200, self.backend.query(body, ecid), CBOR)
            finally:
                self.metrics.backend_seconds += _time.thread_time() - start
        except ICError as exc:
            return error_reply(exc)

    def read_state_canister(self, ecid_text: str, body: bytes) -> HttpReply:
        """``POST /api/v2/canister/<ecid>/read_state``.  Spec: §1.1, §2.3."""
        try:
            ecid = resolve_effective_canister_id(
                self.backend.topology, self._principal(ecid_text), body
            )
            return HttpReply(200, self.backend.read_state(body, ecid), CBOR)
        except ICError as exc:
            return error_reply(exc)

    def read_state_subnet(self, subnet_text: str, body: bytes) -> HttpReply:
        """``POST /api/v2/subnet/<subnet_id>/read_state``.  Spec: §1.1, §2.3."""
        try:
            subnet_id = self._principal(subnet_text, "subnet id")
            return HttpReply(200, self.backend.read_state(body, subnet_id=subnet_id), CBOR)
        except ICError as exc:
            return error_reply(exc)

    # -- aiohttp wiring -------------------------------------------------------------------

    def application(self) -> web.Application:
        """Return the aiohttp application serving the interface and the dashboard."""
        app = web.Application(
            client_max_size=self.max_request_bytes, middlewares=[self._middleware]
        )
        app.router.add_get("/api/v2/status", self._h_status)
        app.router.add_post("/api/v2/canister/{ecid}/call", self._h_call_v2)
        # v3 and v4 (canister-migration era) calls are both synchronous; our
        # delegations carry both the old and the sharded canister-range layouts.
        app.router.add_post("/api/v3/canister/{ecid}/call", self._h_call_v3)
        app.router.add_post("/api/v4/canister/{ecid}/call", self._h_call_v3)
        for version in ("v2", "v3"):
            api = f"/api/{version}"
            app.router.add_post(f"{api}/canister/{{ecid}}/query", self._h_query)
            app.router.add_post(f"{api}/canister/{{ecid}}/read_state", self._h_read_state)
            app.router.add_post(f"{api}/subnet/{{subnet}}/read_state", self._h_read_state_subnet)
        from icp.http import dashboard, gateway

        dashboard.add_routes(app, self)
        gateway.add_routes(app, self)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.metrics.requests += 1
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = web.Response(
                    status=exc.status, text=exc.text or exc.reason, content_type="text/plain"
                )
            except Exception as exc:  # the server must survive any request
                log.exception("internal error serving %s", request.path)
                response = web.Response(
                    status=500, text=f"internal error: {type(exc).__name__}: {exc}\n"
                )
        if response.status >= 400:
            self.metrics.errors += 1
        response.headers.update(CORS_HEADERS)
        return response

    @staticmethod
    def _respond(reply: HttpReply) -> web.Response:
        return web.Response(status=reply.status, body=reply.body, content_type=_mime(reply))

    async def _body(self, request: web.Request) -> bytes | HttpReply:
        ctype = request.headers.get("Content-Type", "")
        if ctype.split(";")[0].strip().lower() != CBOR:
            return text_reply(400, f"unexpected content-type {ctype!r}, expected {CBOR}")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return text_reply(413, f"request body larger than {self.max_request_bytes} bytes")

    async def _h_status(self, request: web.Request) -> web.Response:
        return self._respond(self.get_status())

    async def _with_body(
        self, request: web.Request, handle: Callable[[str, bytes], HttpReply], key: str
    ) -> web.Response:
        body = await self._body(request)
        if isinstance(body, HttpReply):
            return self._respond(body)
        return self._respond(handle(request.match_info[key], body))

    async def _h_call_v2(self, request: web.Request) -> web.Response:
        return await self._with_body(request, self.call_v2, "ecid")

    async def _h_call_v3(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, HttpReply):
            return self._respond(body)
        return self._respond(await self.call_v3(request.match_info["ecid"], body))

    async def _h_query(self, request: web.Request) -> web.Response:
        return await self._with_body(request, self.query, "ecid")

    async def _h_read_state(self, request: web.Request) -> web.Response:
        return await self._with_body(request, self.read_state_canister, "ecid")

    async def _h_read_state_subnet(self, request: web.Request) -> web.Response:
        return await self._with_body(request, self.read_state_subnet, "subnet")

    # -- the clock ------------------------------------------------------------------------

    async def _on_startup(self, app: web.Application) -> None:
        self._clock_task = asyncio.create_task(self.drive_clock())

    async def _on_cleanup(self, app: web.Application) -> None:
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task

    async def drive_clock(self) -> None:
        """Keep the IC's virtual time level with the wall clock, forever.

        Runs at most ``CLOCK_STEP`` of virtual time at once, then yields so that
        requests are served between steps: at once while the IC lags behind the wall
        clock, else for ``CLOCK_POLL`` seconds (the wall clock moves on continuously,
        so yielding without sleeping would spin the loop and burn a core for nothing).
        After each step, synchronous calls are answered if a subnet certified a new
        height.
        """
        ic: Any = self.backend
        heights: tuple[int | None, ...] = ()
        while True:
            target = self.clock()
            if ic.now < target:
                start = _time.thread_time()
                ic.run_until(min(target, ic.now + CLOCK_STEP))
                self.metrics.clock_seconds += _time.thread_time() - start
                if self._waiters:
                    now = tuple(s.serving_replica().state.certified_height for s in ic.subnets)
                    if now != heights:
                        heights = now
                        self.wake_waiters()
            await asyncio.sleep(0 if ic.now < target else CLOCK_POLL)


def _settle(waiter: asyncio.Future[HttpReply], reply: HttpReply) -> None:
    if not waiter.done():
        waiter.set_result(reply)


def _mime(reply: HttpReply) -> str:
    return reply.content_type.split(";")[0].strip()


async def serve(
    ic: InternetComputer,
    *,
    host: str = "127.0.0.1",
    port: int = 4943,
    ready: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    sync_call_timeout: float = SYNC_CALL_TIMEOUT,
) -> None:
    """Serve ``ic`` over HTTP until ``stop`` is set (or the task is cancelled).

    ``ready(port)`` is called once the socket listens (with the real port when
    ``port`` is 0).  Raises ``OSError`` if the port is taken.
    """
    frontend = HttpFrontend(ic, sync_call_timeout=sync_call_timeout)
    runner = web.AppRunner(frontend.application(), access_log=None)
    await runner.setup()
    try:
        site = ApiSite(runner, frontend, host=host, port=port, backlog=LISTEN_BACKLOG)
        await site.start()
        bound = site.port
        if ready is not None:
            ready(bound)
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """Return a uvloop event loop where uvloop is installed, else asyncio's."""
    import importlib.util

    if importlib.util.find_spec("uvloop") is not None:
        loop: asyncio.AbstractEventLoop = importlib.import_module("uvloop").new_event_loop()
        return loop
    return asyncio.new_event_loop()


class BackgroundServer:
    """Serve an IC from a daemon thread's event loop (for embedding, tests, benchmarks).

    Every access to the IC then belongs to that thread: do not touch ``ic`` from
    elsewhere until ``stop()`` returned.
    """

    def __init__(self, ic: InternetComputer, host: str = "127.0.0.1", port: int = 0) -> None:
        import threading

        self.frontend = HttpFrontend(ic)
        self.loop = new_event_loop()
        self._ready = threading.Event()
        self.port = port
        self.runner = web.AppRunner(self.frontend.application(), access_log=None)

        async def start() -> None:
            await self.runner.setup()
            site = ApiSite(self.runner, self.frontend, host=host, port=port, backlog=LISTEN_BACKLOG)
            await site.start()
            self.port = site.port

        def main() -> None:
            try:
                self.loop.run_until_complete(start())
            finally:
                self._ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, name="icp-http", daemon=True)
        self.thread.start()
        self._ready.wait()
        self.url = f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Stop serving and join the thread."""
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


__all__ = [
    "CORS_HEADERS",
    "BackgroundServer",
    "HttpFrontend",
    "HttpReply",
    "error_reply",
    "request_content",
    "serve",
    "wall_clock_ns",
]

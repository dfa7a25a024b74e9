"""The HTTP gateway: browsers reach canisters at ``http://<canister-id>.localhost:<port>/``.

Theory of operation.  A request whose ``Host`` is ``<canister-id>.localhost`` (or
that names ``?canisterId=<id>``) becomes a Candid ``HttpRequest`` for the canister's
``http_request`` query, sent as an ordinary anonymous query through the IC's query
path.  If the canister answers ``upgrade = opt true`` the gateway makes the same
request an update call to ``http_request_update`` and waits for its certified
reply.  A ``streaming_strategy`` callback is followed (a query per chunk, the token
re-encoded at the type the canister itself declared on the wire) until the token is
null.  URL paths are handed to the canister unchanged (the gateway never touches
files, so ``..`` means nothing to it).

A query answer comes from one replica, so before anything reaches the browser the
gateway verifies its certification (``icp.http.certification``: the ``IC-Certificate``
header, v1 or v2, against the IC root key): a response that fails verification or
carries no certification becomes a 503 with the reason, never the canister's content.
As in ``ic-http-gateway``: answers of upgraded (update) calls are certified by
consensus and not verified again; the raw domain ``<id>.raw.localhost`` skips
verification (the way to reach a canister that does not certify its responses).

Spec: HTTP Gateway Protocol specification (dfinity/interface-spec
``spec/http-gateway-protocol-spec.md``: canister id from the host or ``canisterId``,
the ``HttpRequest``/``HttpResponse`` Candid types, upgrade to update calls, streaming,
response verification); dfinity/http-gateway ``ic-http-gateway`` and dfinity/ic-gateway
(verification skipped only for raw domains, for upgraded calls, or when switched off
by configuration; v1 refuses redirects and drops ``Cache-Control``).
Differences: a failed verification is a 503 with the reason as text
(``ic-http-gateway`` answers with its own error response, 500 in the version read);
streamed bodies are verified too (assembled first, as the spec's v1 rules say),
where ``ic-http-gateway`` passes streamed responses on unverified.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from icp.candid import (
    Blob,
    Bool,
    CandidError,
    Nat16,
    Opt,
    Rec,
    Record,
    Reserved,
    Text,
    Type,
    Vec,
    decode,
    encode,
    idl_hash,
)
from icp.candid.types import FuncRef
from icp.crypto.certificate import Certificate
from icp.crypto.errors import CertificateError
from icp.crypto.hashing import cbor_decode, cbor_encode
from icp.crypto.hashtree import LookupStatus
from icp.http import certification
from icp.ic import ICError
from icp.principal import Principal

if TYPE_CHECKING:
    from icp.http.server import HttpFrontend

HeaderField: Final = Record([Text, Text])
HttpRequest: Final = Record(
    {
        "method": Text,
        "url": Text,
        "headers": Vec(HeaderField),
        "body": Blob,
        "certificate_version": Opt(Nat16),
    }
)
HttpResponse: Final = Record(
    {
        "status_code": Nat16,
        "headers": Vec(HeaderField),
        "body": Blob,
        "upgrade": Opt(Bool),
        "streaming_strategy": Reserved,
    }
)
"""The gateway's view of ``HttpResponse``; the streaming strategy (whose token type
each canister chooses) is read at the types the canister put on the wire."""

API_ENDPOINT: Final = re.compile(r"/api/v[234]/(canister|subnet)/[^/]+/(call|query|read_state)")
"""The IC API's endpoints (a wrong method on one of them is 405, not the gateway)."""
MAX_CHUNKS: Final = 1024
HOP_BY_HOP: Final = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"}
)
ANONYMOUS: Final = b"\x04"
TTL: Final = 240 * 1_000_000_000


class GatewayError(Exception):
    """A request the gateway cannot serve, with the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_raw(host: str) -> bool:
    """Return whether ``host`` is a raw domain (``<id>.raw.localhost``): no verification.

    Spec: HTTP gateway spec §"Canister ID Resolution" (raw hostnames).
    """
    labels = host.split(":")[0].lower().split(".")
    return "raw" in labels[1:-1]


def canister_of(host: str, query: Mapping[str, str]) -> Principal | None:
    """Return the canister a browser request names (host label or ``canisterId``).

    Raises ``GatewayError`` (400) for a name that is not a principal.
    Spec: HTTP gateway spec §"Canister resolution".
    """
    name = host.split(":")[0].lower()
    text: str | None = None
    if name.endswith(".localhost"):
        text = name[: -len(".localhost")].split(".")[0]
        if text == "raw" or not text:
            text = None
    if text is None:
        text = query.get("canisterId")
    if text is None:
        return None
    try:
        return Principal.from_text(text)
    except ValueError as exc:
        raise GatewayError(400, f"{text!r} is not a canister id: {exc}") from None


def http_request_arg(method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """Encode the ``http_request`` argument.  Spec: HTTP gateway spec §"Candid"."""
    value = {
        "method": method,
        "url": url,
        "headers": [tuple(h) for h in headers],
        "body": body,
        "certificate_version": 2,
    }
    return encode([HttpRequest], [value])


def wire_types(data: bytes) -> list[Type]:
    """Return the types a Candid message declares for its values."""
    from icp.candid.binary import DEFAULT_LIMITS, _read_header, _Reader

    return _read_header(_Reader(bytes(data), DEFAULT_LIMITS), DEFAULT_LIMITS)


def _resolve(typ: Type) -> Type:
    """Follow recursion knots (``Rec``) to the type they stand for."""
    while isinstance(typ, Rec) and typ.target is not None:
        typ = typ.target
    return typ


def _field(typ: Type, name: str) -> Type:
    fields = getattr(_resolve(typ), "fields", ())
    wanted = idl_hash(name)
    for f in fields:
        if f.id == wanted:
            return f.type  # type: ignore[no-any-return]
    raise CandidError(f"no field {name!r} in {typ}")


def streaming_strategy(data: bytes) -> tuple[FuncRef, tuple[Type, Any] | None] | None:
    """Return (callback, (token type, token)) of a response's streaming strategy, if any."""
    (typ,) = wire_types(data)[:1]
    (value,) = decode(data)[:1]
    strategy = value.get(idl_hash("streaming_strategy"))
    if strategy is None:
        return None
    callback = strategy.get(idl_hash("Callback"))
    if callback is None:
        return None
    opt = _resolve(_field(typ, "streaming_strategy"))
    record = _field(getattr(opt, "inner", opt), "Callback")
    token = (_field(record, "token"), callback[idl_hash("token")])
    return callback[idl_hash("callback")], token


def next_chunk(data: bytes) -> tuple[bytes, tuple[Type, Any] | None]:
    """Decode a streaming callback's answer: (body chunk, next token or None)."""
    (typ,) = wire_types(data)[:1]
    (value,) = decode(data)[:1]
    chunk = bytes(value[idl_hash("body")])
    token = value.get(idl_hash("token"))
    if token is None:
        return chunk, None
    token_type = _resolve(_field(typ, "token"))
    return chunk, (getattr(token_type, "inner", token_type), token)


class Gateway:
    """Serve canisters' ``http_request`` to browsers through an ``HttpFrontend``."""

    def __init__(self, frontend: HttpFrontend) -> None:
        self.frontend = frontend
        self.certificates = certification.VerifiedCertificates()

    def _envelope(self, kind: str, canister: Principal, method: str, arg: bytes) -> bytes:
        content = {
            "request_type": kind,
            "sender": ANONYMOUS,
            "canister_id": canister.raw,
            "method_name": method,
            "arg": arg,
            "ingress_expiry": self.frontend.clock() + TTL,
        }
        return cbor_encode({"content": content})

    def version_floor(self, canister: Principal) -> int:
        """Read (certified) the lowest response verification version ``canister`` allows.

        Raises ``certification.VerificationError`` if the answer cannot be trusted.
        Spec: HTTP gateway spec "Response Verification Version Assertion" (public
        metadata ``supported_certificate_versions``, read with ``read_state``).
        """
        path = [b"canister", canister.raw, b"metadata", b"supported_certificate_versions"]
        content = {
            "request_type": "read_state",
            "sender": ANONYMOUS,
            "paths": [path],
            "ingress_expiry": self.frontend.clock() + TTL,
        }
        try:
            answer: Any = cbor_decode(
                self.frontend.backend.read_state(cbor_encode({"content": content}), canister)
            )
            cert = Certificate.from_cbor(answer["certificate"])
            cert.verify(
                self.frontend.backend.root_key,
                canister,
                now=self.frontend.clock(),
                max_time_skew_ns=certification.MAX_CERT_TIME_OFFSET_NS,
            )
        except ICError as exc:
            raise certification.VerificationError(
                f"cannot read the canister's supported versions: {exc.message}"
            ) from None
        except (CertificateError, KeyError, TypeError) as exc:
            raise certification.VerificationError(f"metadata certificate: {exc}") from None
        found = cert.lookup(path)
        if found.status not in (LookupStatus.FOUND, LookupStatus.ABSENT):
            raise certification.VerificationError("the metadata certificate does not decide")
        return certification.version_floor(found.value)

    def query(self, canister: Principal, method: str, arg: bytes) -> bytes:
        """Run an anonymous query through the IC's query path; return the reply bytes."""
        try:
            answer: Any = cbor_decode(
                self.frontend.backend.query(
                    self._envelope("query", canister, method, arg), canister
                )
            )
        except ICError as exc:
            raise GatewayError(exc.http_status, exc.message) from None
        if answer["status"] != "replied":
            status = 404 if answer.get("reject_code") == 3 else 502
            raise GatewayError(status, f"canister {canister}: {answer.get('reject_message')}")
        return bytes(answer["reply"]["arg"])

    async def update(self, canister: Principal, method: str, arg: bytes) -> bytes:
        """Make an anonymous update call and wait for its certified reply."""
        body = self._envelope("call", canister, method, arg)
        try:
            rid = self.frontend.backend.submit_call(body, canister)
            self.frontend.metrics.ingress_times.append(time.monotonic())
        except ICError as exc:
            raise GatewayError(exc.http_status, exc.message) from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.frontend.sync_call_timeout * 3
        while True:
            try:
                result = self.frontend.backend.wait_for(rid, canister, timeout=0)
                break
            except ICError as exc:
                if exc.http_status != 408 or loop.time() > deadline:
                    raise GatewayError(504, exc.message) from None
            await asyncio.sleep(0.01)
        if result.reply is None:
            raise GatewayError(502, f"canister {canister}: {result.reject_message}")
        return result.reply

    async def handle(
        self, request: web.Request, canister: Principal, *, verify: bool = True
    ) -> web.Response:
        """Answer one browser request from ``canister``.

        With ``verify`` (every domain but the raw one) a query answer is passed on only
        if its certification verifies; otherwise the answer is a 503.
        """
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items()]
        url = request.rel_url.raw_path_qs
        arg = http_request_arg(request.method, url, headers, body)
        upgraded = False
        try:
            reply = self.query(canister, "http_request", arg)
            response = decode(reply, [HttpResponse])[0]
            if response.get("upgrade") is True:
                upgraded = True
                reply = await self.update(canister, "http_request_update", arg)
                response = decode(reply, [HttpResponse])[0]
            content = bytes(response["body"])
            stream = streaming_strategy(reply)
            if stream is not None:
                callback, token = stream
                if Principal(bytes(callback.principal.raw)) != canister:
                    raise GatewayError(502, "streaming callback names another canister")
                chunks = [content]
                for _ in range(MAX_CHUNKS):
                    if token is None:
                        break
                    chunk_reply = self.query(
                        canister, callback.method, encode([token[0]], [token[1]])
                    )
                    chunk, token = next_chunk(chunk_reply)
                    chunks.append(chunk)
                else:
                    raise GatewayError(502, f"more than {MAX_CHUNKS} streamed chunks")
                content = b"".join(chunks)
        except CandidError as exc:
            raise GatewayError(502, f"canister {canister} sent a bad HttpResponse: {exc}") from None
        status = int(response["status_code"])
        passed: tuple[tuple[str, str], ...] = tuple((k, v) for k, v in response["headers"])
        if verify and not upgraded:
            try:
                verified = certification.verify_response(
                    certification.Request(request.method, url, tuple(headers), body),
                    certification.Response(status, passed, content),
                    canister,
                    self.frontend.backend.root_key,
                    self.frontend.clock(),
                    floor=lambda: self.version_floor(canister),
                    cache=self.certificates,
                )
            except certification.VerificationError as exc:
                raise GatewayError(
                    503, f"response verification failed for canister {canister}: {exc.reason}"
                ) from None
            passed = verified.headers
        out = web.Response(status=status, body=content)
        for name, value in passed:
            if name.lower() not in HOP_BY_HOP:
                out.headers.add(name, value)
        return out


def add_routes(app: web.Application, frontend: HttpFrontend) -> None:
    """Serve canisters for every path outside ``/api/`` and ``/_/``."""
    gateway = Gateway(frontend)

    async def serve(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith(("/api/", "/_/")) or path == "/api":
            if API_ENDPOINT.fullmatch(path) or path in ("/api/v2/status", "/_/dashboard"):
                raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST", "OPTIONS"])
            raise web.HTTPNotFound(text=f"no endpoint {path}\n")
        try:
            canister = canister_of(request.host, request.query)
            if canister is None:
                raise GatewayError(
                    404,
                    "no canister named: use http://<canister-id>.localhost:<port>/ or "
                    "?canisterId=<canister-id>",
                )
            return await gateway.handle(request, canister, verify=not is_raw(request.host))
        except GatewayError as exc:
            return web.Response(status=exc.status, text=exc.message + "\n")

    app.router.add_route("*", "/{tail:.*}", serve)


__all__ = [
    "Gateway",
    "GatewayError",
    "HttpRequest",
    "HttpResponse",
    "add_routes",
    "canister_of",
    "is_raw",
]

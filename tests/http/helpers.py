"""An HttpFrontend over an in-process IC, served from a background thread, and envelopes."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from icp.crypto.hashing import cbor_decode
from icp.crypto.user_sig import Ed25519Identity, principal_of
from icp.http.server import HttpFrontend, wall_clock_ns
from icp.http.wire import ApiSite
from icp.ic import InternetComputer
from icp.principal import Principal
from icp.testing import call_content, envelope, read_state_content

CBOR = "application/cbor"


class ServerThread:
    """Serve an ``InternetComputer`` on a free port from a daemon thread's event loop."""

    def __init__(self, ic: InternetComputer, **frontend_args: Any) -> None:
        from aiohttp import web

        self.ic = ic
        self.frontend = HttpFrontend(ic, **frontend_args)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = 0

        async def run() -> None:
            self.runner = web.AppRunner(self.frontend.application(), access_log=None)
            await self.runner.setup()
            self.site = ApiSite(self.runner, self.frontend, host="127.0.0.1", port=0, backlog=1024)
            await self.site.start()
            self.port = self.site.port
            self._ready.set()

        def main() -> None:
            self.loop.run_until_complete(run())
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("server did not start")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop serving."""
        fut = asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop)
        fut.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


def http(
    url: str,
    body: bytes | None = None,
    *,
    method: str | None = None,
    content_type: str = CBOR,
    timeout: float = 60,
) -> tuple[int, dict[str, str], bytes]:
    """Send one request; return (status, headers, body) whatever the status."""
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def new_ic(**kwargs: Any) -> InternetComputer:
    """Return a small IC whose virtual time starts at the wall clock."""
    return InternetComputer(time=wall_clock_ns(), **kwargs)


def expiry() -> int:
    """Return an ingress expiry 3 minutes from now."""
    return time.time_ns() + 180 * 10**9


def identity(seed: int = 1) -> Ed25519Identity:
    """Return a deterministic Ed25519 identity."""
    return Ed25519Identity.from_seed(bytes([seed]) * 32)


def call_body(
    who: Ed25519Identity | None,
    canister: Principal,
    method: str,
    arg: bytes,
    *,
    request_type: str = "call",
    ingress_expiry: int | None = None,
) -> bytes:
    """Return a signed (or anonymous) call/query envelope."""
    sender = principal_of(who) if who is not None else Principal.anonymous()
    content = call_content(request_type, sender, canister, method, arg, ingress_expiry or expiry())
    return envelope(content, who)


def read_state_body(who: Ed25519Identity | None, paths: list[list[bytes | str]]) -> bytes:
    """Return a read_state envelope."""
    sender = principal_of(who) if who is not None else Principal.anonymous()
    return envelope(read_state_content(sender, paths, expiry()), who)


def decode(body: bytes) -> Any:
    """Decode a CBOR response body."""
    return cbor_decode(body)

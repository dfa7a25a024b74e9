"""The raw HTTP/1.1 hot path: keep-alive, ordering, framing, and hand-off to aiohttp.

Spec: RFC 9112 (message framing, persistent connections, pipelining order);
interface spec §1.1 (endpoints, status codes).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from icp.candid import encode
from icp.execution.management import ProvisionalCreateArgs
from icp.http.wire import MAX_HEAD_BYTES
from icp.principal import Principal
from tests.http.helpers import ServerThread, call_body, decode, identity, new_ic

pytestmark = pytest.mark.timeout(120)
ALICE = identity(7)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(new_ic(nodes=1, seed=11))
    yield srv
    srv.stop()


def post(path: str, body: bytes, extra: str = "", port: int = 0) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/cbor\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """Read one Content-Length-framed response from ``sock`` (leftovers stay in buffer)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a response"
        buffer += chunk
    end = buffer.index(b"\r\n\r\n")
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    size = int(headers.get("content-length", "0"))
    while len(buffer) < end + 4 + size:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a body"
        buffer += chunk
    body = bytes(buffer[end + 4 : end + 4 + size])
    del buffer[: end + 4 + size]
    return int(lines[0].split(" ")[1]), headers, body


def connect(server: ServerThread) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def provisional_create(who: int) -> bytes:
    arg = encode(
        [ProvisionalCreateArgs],
        [{"amount": 10**12, "settings": None, "specified_id": None,
          "sender_canister_version": None}],
    )  # fmt: skip
    mgmt = Principal.management_canister()
    return call_body(identity(who), mgmt, "provisional_create_canister_with_cycles", arg)


def test_pipelined_requests_are_answered_in_order_on_one_connection(
    server: ServerThread,
) -> None:
    ecid = server.ic.applications[0].ranges[0].start.to_text()
    missing = Principal.from_canister_index(9).to_text()
    query = call_body(ALICE, Principal.from_text(missing), "get", b"DIDL\0\0", request_type="query")
    with connect(server) as sock:
        # a synchronous call (waits for consensus), then a status and a query, sent at once
        sock.sendall(
            post(f"/api/v3/canister/{ecid}/call", provisional_create(8))
            + b"GET /api/v2/status HTTP/1.1\r\nHost: x\r\n\r\n"
            + post(f"/api/v2/canister/{missing}/query", query)
        )
        buffer = bytearray()
        status, headers, body = read_response(sock, buffer)
        assert status == 200 and decode(body)["status"] == "replied"
        assert headers["access-control-allow-origin"] == "*"
        status, _, body = read_response(sock, buffer)
        assert status == 200 and "root_key" in decode(body)
        status, _, body = read_response(sock, buffer)
        assert status == 200 and decode(body)["status"] == "rejected"
        assert not buffer


def test_body_split_across_segments_and_connection_close(server: ServerThread) -> None:
    request = b"GET /api/v2/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with connect(server) as sock:
        for i in range(0, len(request), 7):
            sock.sendall(request[i : i + 7])
        buffer = bytearray()
        status, headers, _ = read_response(sock, buffer)
        assert status == 200 and headers["connection"] == "close"
        assert sock.recv(1) == b""  # the server closed the connection


def test_odd_requests_are_handed_to_aiohttp_mid_connection(server: ServerThread) -> None:
    ecid = server.ic.applications[0].ranges[0].start.to_text()
    with connect(server) as sock:
        buffer = bytearray()
        sock.sendall(b"GET /api/v2/status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock, buffer)[0] == 200
        # a CORS preflight: not a hot-path request, aiohttp answers on the same connection
        sock.sendall(f"OPTIONS /api/v2/canister/{ecid}/call HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, headers, _ = read_response(sock, buffer)
        assert status == 204 and headers["access-control-allow-methods"].startswith("GET")
        # from now on aiohttp owns the connection and still serves the API
        sock.sendall(b"GET /api/v2/status HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock, buffer)[0] == 200
    cases = [
        (b"GET /api/v2/canister/" + ecid.encode() + b"/query HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (post(f"/api/v2/canister/{ecid}/query", b"x", "Transfer-Encoding: chunked\r\n"), 400),
        (b"GET /api/v2/status HTTP/1.0\r\n\r\n", 200),
        (b"GET /api/v9/nothing HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"BREW /api/v2/status HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ]  # fmt: skip
    for request, expected in cases:
        with connect(server) as sock:
            sock.sendall(request)
            status, _, body = read_response(sock, bytearray())
            assert status == expected, (request[:60], status, body[:200])


def test_hot_path_errors_match_the_endpoints(server: ServerThread) -> None:
    ecid = server.ic.applications[0].ranges[0].start.to_text()
    with connect(server) as sock:
        buffer = bytearray()
        sock.sendall(post(f"/api/v2/canister/{ecid}/query", b"\xff\x00garbage"))
        status, headers, body = read_response(sock, buffer)
        assert status == 400 and headers["content-type"].startswith("text/plain") and body
        sock.sendall(post("/api/v2/canister/not-a-principal/call", b"\xa0"))
        status, _, body = read_response(sock, buffer)
        assert status == 400 and b"invalid effective canister id" in body
        sock.sendall(post(f"/api/v2/canister/{ecid}/query", b"\xa0").replace(b"cbor", b"json"))
        status, _, body = read_response(sock, buffer)
        assert status == 400 and b"content-type" in body
    before = server.frontend.metrics.requests
    with connect(server) as sock:
        sock.sendall(b"GET /api/v2/status HTTP/1.1\r\nHost: x\r\n\r\n")
        read_response(sock, bytearray())
    assert server.frontend.metrics.requests == before + 1


def test_requests_piling_up_behind_a_sync_call_stop_the_reading() -> None:
    ic = new_ic(nodes=1, seed=12)
    frozen = ic.now
    # the clock never moves: the sync call cannot be certified and waits its 3 s
    server = ServerThread(ic, clock=lambda: frozen, sync_call_timeout=3.0)
    try:
        ecid = ic.applications[0].ranges[0].start.to_text()
        junk = b"POST /x HTTP/1.1\r\nContent-Length: 1\r\n\r\nx" * 200_000  # 8 MB
        with connect(server) as sock:
            sock.sendall(post(f"/api/v3/canister/{ecid}/call", provisional_create(9)))
            sender = threading.Thread(target=sock.sendall, args=(junk,), daemon=True)
            sender.start()
            limit = MAX_HEAD_BYTES + server.frontend.max_request_bytes + 512 * 1024
            largest, paused = 0, False
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                for connection in list(server.site._connections):
                    largest = max(largest, len(connection.buffer))
                    paused = paused or connection.paused
                time.sleep(0.05)
            assert paused and largest <= limit, (paused, largest)
            status, _, _ = read_response(sock, bytearray())
            assert status == 202  # then the rest is read again (and refused by aiohttp)
            sender.join(30)
            assert not sender.is_alive()
    finally:
        server.stop()


def test_a_client_that_does_not_read_its_answers_stops_being_read(
    server: ServerThread,
) -> None:
    request = b"GET /api/v2/status HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the handshake
        sock.connect(("127.0.0.1", server.port))
        sender = threading.Thread(target=sock.sendall, args=(request * 100_000,), daemon=True)
        sender.start()  # 4 MB of requests whose answers (~50 MB) nobody reads
        largest, paused = 0, False
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not paused:
            for connection in list(server.site._connections):
                largest = max(largest, len(connection.buffer))
                paused = paused or connection.write_paused
            time.sleep(0.05)
        assert paused and largest <= 2 * 1024 * 1024, (paused, largest)
    with connect(server) as other:  # everyone else is still served
        other.sendall(request)
        assert read_response(other, bytearray())[0] == 200


class FakeTransport:
    """Records what a protocol does to its transport."""

    def __init__(self) -> None:
        self.closed = False
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def test_idle_connections_are_closed_after_the_keepalive_timeout(server: ServerThread) -> None:
    from icp.http.wire import KEEPALIVE_TIMEOUT, ApiProtocol

    connections: set[ApiProtocol] = set()
    protocol = ApiProtocol(server.frontend, lambda: None, connections, b"")  # type: ignore[arg-type,return-value]
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    assert protocol in connections
    protocol.close_if_idle(protocol.last_activity + KEEPALIVE_TIMEOUT - 1)
    assert not transport.closed
    protocol.busy = True  # a sync call in flight is never idle
    protocol.close_if_idle(protocol.last_activity + KEEPALIVE_TIMEOUT + 1)
    assert not transport.closed
    protocol.busy = False
    protocol.close_if_idle(protocol.last_activity + KEEPALIVE_TIMEOUT + 1)
    assert transport.closed

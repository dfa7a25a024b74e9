"""10,000+ malformed requests: each gets a clear refusal, the server lives, valid traffic works.

Spec: interface spec §1.1 (4xx client errors), §1.2-§1.3 (envelopes).
"""

from __future__ import annotations

import asyncio
import random
import resource
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from icp.crypto.hashing import cbor_encode
from icp.principal import Principal
from tests.http.helpers import ServerThread, call_body, decode, identity, new_ic

pytestmark = pytest.mark.timeout(180)
N_MALFORMED = 10_000


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(new_ic(nodes=1, seed=3))
    yield srv
    srv.stop()


def malformed(rng: random.Random, app_canister: Principal) -> tuple[str, str, bytes]:
    """Return (kind, path, body) of one malformed request."""
    alice = identity(1)
    ecid = app_canister.to_text()
    endpoint = rng.choice(["call", "query", "read_state"])
    path = f"/api/v2/canister/{ecid}/{endpoint}"
    kind = rng.choice(
        ["random", "truncated", "wrong_types", "not_a_map", "bad_sig", "expired",
         "wrong_sender", "bad_ecid", "traversal", "huge_nat", "deep"]
    )  # fmt: skip
    good = decode(call_body(alice, app_canister, "inc", b"DIDL\0\0"))
    if kind == "random":
        return kind, path, rng.randbytes(rng.randint(0, 200))
    if kind == "truncated":
        data = cbor_encode(good)
        return kind, path, data[: rng.randint(0, len(data) - 1)]
    if kind == "wrong_types":
        content = dict(good["content"])
        field = rng.choice(list(content))
        content[field] = rng.choice([1.5, -3, "text", [1, 2], {"a": 1}, None, True, 2**70])
        return kind, path, cbor_encode(dict(good, content=content))
    if kind == "not_a_map":
        return kind, path, cbor_encode(rng.choice([[1], "x", 5, b"abc", None]))
    if kind == "bad_sig":
        sig = bytearray(good["sender_sig"])
        sig[rng.randrange(64)] ^= 1 << rng.randrange(8)
        return kind, path, cbor_encode(dict(good, sender_sig=bytes(sig)))
    if kind == "expired":
        when = time.time_ns() - rng.randint(10**11, 10**15)
        return kind, path, call_body(alice, app_canister, "inc", b"DIDL\0\0", ingress_expiry=when)
    if kind == "wrong_sender":
        content = dict(good["content"], sender=identity(9).public_key_der()[:29])
        return kind, path, cbor_encode(dict(good, content=content))
    if kind == "bad_ecid":
        bad = rng.choice(["zzzzz", "aaaaa-ab", "-", "%00", "a" * 70])
        return kind, f"/api/v2/canister/{bad}/{endpoint}", cbor_encode(good)
    if kind == "traversal":
        return kind, rng.choice(
            [f"/api/v2/canister/../../etc/passwd/{endpoint}", "/api/v2/../../etc/passwd",
             "/_/../../../etc/passwd", "/api/v2/canister/%2e%2e%2f%2e%2e/call"]
        ), cbor_encode(good)  # fmt: skip
    if kind == "huge_nat":
        content = dict(good["content"], ingress_expiry=2**200)
        return kind, path, cbor_encode(dict(good, content=content))
    nested: Any = b"x"
    for _ in range(rng.randint(50, 400)):
        nested = [nested]
    return kind, path, cbor_encode({"content": nested})


def test_malformed_requests_are_refused_and_the_server_keeps_serving(
    server: ServerThread,
) -> None:
    app_canister = server.ic.applications[0].ranges[0].start
    rng = random.Random(2024)
    requests = [malformed(rng, app_canister) for _ in range(N_MALFORMED)]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    async def run() -> tuple[Counter[tuple[str, int]], list[str], int]:
        statuses: Counter[tuple[str, int]] = Counter()
        problems: list[str] = []
        ok_status = 0
        headers = {"Content-Type": "application/cbor"}
        connector = aiohttp.TCPConnector(limit=32)
        async with aiohttp.ClientSession(server.url, connector=connector) as session:
            queue: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()
            for item in requests:
                queue.put_nowait(item)

            async def worker() -> None:
                while not queue.empty():
                    kind, path, body = queue.get_nowait()
                    async with session.post(path, data=body, headers=headers) as response:
                        text = await response.read()
                        statuses[(kind, response.status)] += 1
                        refused = 400 <= response.status < 600
                        # a call to an empty id is the destination's refusal: 200 + CBOR reject
                        reject = response.status == 200 and decode(text).get("reject_code")
                        if not (refused or reject) or len(text.strip()) < 3:
                            problems.append(f"{kind} {path} -> {response.status} {text[:80]!r}")

            async def valid_traffic() -> int:
                count = 0
                while not queue.empty():
                    async with session.get("/api/v2/status") as response:
                        assert response.status == 200
                        count += 1
                    await asyncio.sleep(0.01)
                return count

            results = await asyncio.gather(valid_traffic(), *[worker() for _ in range(32)])
            ok_status = results[0]
            # huge bodies: refused with 413 before they are read into memory
            for _ in range(5):
                async with session.post(
                    f"/api/v2/canister/{app_canister}/call", data=b"\0" * (6 * 2**20),
                    headers=headers,
                ) as response:  # fmt: skip
                    statuses[("huge", response.status)] += 1
        return statuses, problems, ok_status

    statuses, problems, ok_status = asyncio.run(run())
    assert not problems, problems[:10]
    assert sum(statuses.values()) == N_MALFORMED + 5
    assert statuses[("huge", 413)] == 5
    assert ok_status > 0
    # the server is alive and the IC still makes progress
    height = server.ic.applications[0].certified_height()
    deadline = time.monotonic() + 20
    while server.ic.applications[0].certified_height() <= height:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert rss_after - rss_before < 400_000, (rss_before, rss_after)  # KiB

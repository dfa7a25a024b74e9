"""HTTP benchmarks: query and update calls/s over the IC HTTP interface vs in process.

Runs one IC (NNS + one application subnet of 4 nodes, real crypto) with the Motoko
counter installed, served by ``icp.http.server`` on a local port, and measures in the
same run:

1. queries/s and p50/p99 latency with concurrent HTTP clients (signed ``query``
   envelopes, node-signed responses) vs the same envelopes answered by
   ``InternetComputer.query`` in process (ratio);
2. update calls/s and p50/p99 latency with concurrent clients on ``/api/v3/.../call``
   (each waits for its certified reply; the IC's clock follows the wall clock) vs the
   same number of calls submitted in process and awaited in virtual time (ratio).

The load generator (aiohttp clients) runs in a separate process.
Goals from issue 8: >= 2,000 queries/s and >= 300 updates/s over HTTP.
Run: ``.venv/bin/python benchmarks/bench_http.py [--queries N] [--updates N] [--clients C]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp

from icp.build import compile_motoko
from icp.candid import decode, encode
from icp.candid.types import Nat
from icp.crypto.hashing import cbor_decode
from icp.crypto.user_sig import Ed25519Identity, principal_of
from icp.execution.management import CanisterIdRecord, InstallCodeArgs, ProvisionalCreateArgs
from icp.http.server import BackgroundServer, wall_clock_ns
from icp.ic import InternetComputer
from icp.principal import Principal
from icp.testing import call_content, envelope

ROOT = Path(__file__).resolve().parent.parent
ME = Ed25519Identity.from_seed(bytes(range(32)))
SENDER = principal_of(ME)
HEADERS = {"Content-Type": "application/cbor"}


def body(kind: str, canister: Principal, method: str, arg: bytes, nonce: int) -> bytes:
    expiry = wall_clock_ns() + 240 * 10**9
    content = call_content(kind, SENDER, canister, method, arg, expiry, nonce.to_bytes(8, "big"))
    return envelope(content, ME)


def setup(ic: InternetComputer) -> Principal:
    mgmt = Principal.management_canister()
    start = ic.applications[0].ranges[0].start
    create = encode(
        [ProvisionalCreateArgs],
        [{"amount": 10**15, "settings": None, "specified_id": None,
          "sender_canister_version": None}],
    )  # fmt: skip
    result = ic.call_and_wait(
        body("call", mgmt, "provisional_create_canister_with_cycles", create, 0), start
    )
    assert result.reply is not None
    cid: Principal = decode(result.reply, [CanisterIdRecord])[0]["canister_id"]
    wasm = compile_motoko(ROOT / "tests/canisters/counter")
    install = encode(
        [InstallCodeArgs],
        [{"mode": {"install": None}, "canister_id": cid, "wasm_module": wasm,
          "arg": encode([], []), "sender_canister_version": None}],
    )  # fmt: skip
    ic.call_and_wait(body("call", mgmt, "install_code", install, 1), cid)
    return cid


def answer(data: bytes) -> dict[str, Any]:
    value = cbor_decode(data)
    assert isinstance(value, Mapping)
    return dict(value)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def hammer(
    url: str, path: str, bodies: list[bytes], clients: int, expect: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = list(reversed(bodies))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, connector=connector) as session:

        async def client() -> None:
            while queue:
                data = queue.pop()
                t0 = time.perf_counter()
                async with session.post(path, data=data, headers=HEADERS) as response:
                    payload = await response.read()
                    if response.status != expect:
                        raise RuntimeError(f"{response.status}: {payload[:200]!r}")
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*[client() for _ in range(clients)])
        return time.perf_counter() - t0, latencies


def load(url: str, path: str, bodies: list[bytes], clients: int) -> tuple[float, list[float]]:
    """Run ``hammer`` (in a worker process); every answer must be 200."""
    return asyncio.run(hammer(url, path, bodies, clients, 200))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--updates", type=int, default=400)
    parser.add_argument("--clients", type=int, default=32, help="concurrent query clients")
    parser.add_argument("--update-clients", type=int, default=256, help="concurrent update clients")
    args = parser.parse_args()

    ic = InternetComputer(nodes=4, applications=1, seed=8, time=wall_clock_ns())
    cid = setup(ic)
    get = encode([], [])
    query_bodies = [body("query", cid, "get", get, 100 + i) for i in range(args.queries)]
    update_bodies = [body("call", cid, "inc", get, 10**6 + i) for i in range(args.updates)]

    # -- over HTTP --------------------------------------------------------------------
    ic.run_until(wall_clock_ns())
    server = BackgroundServer(ic)
    try:
        # the load generator runs in its own process: it must not share the GIL
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            q_secs, q_lat = pool.submit(
                load, server.url, f"/api/v2/canister/{cid}/query", query_bodies, args.clients
            ).result()
            u_secs, u_lat = pool.submit(
                load, server.url, f"/api/v3/canister/{cid}/call", update_bodies,
                args.update_clients,
            ).result()  # fmt: skip
    finally:
        server.stop()

    # -- in process (same IC, same kind of envelopes) ---------------------------------
    fresh_queries = [body("query", cid, "get", get, 5 * 10**6 + i) for i in range(args.queries)]
    t0 = time.perf_counter()
    for data in fresh_queries:
        assert answer(ic.query(data, cid))["status"] == "replied"
    q_ref = time.perf_counter() - t0
    ic.run_until(wall_clock_ns())
    fresh_updates = [body("call", cid, "inc", get, 9 * 10**6 + i) for i in range(args.updates)]
    t0 = time.perf_counter()
    rids = [ic.submit_call(data, cid) for data in fresh_updates]
    for rid in rids:
        assert ic.wait_for(rid, cid).status == "replied"
    u_ref = time.perf_counter() - t0
    reply = answer(ic.query(body("query", cid, "get", get, 1), cid))["reply"]
    final = decode(reply["arg"], [Nat])[0]
    assert final == 2 * args.updates, final

    q_rate, q_ref_rate = args.queries / q_secs, args.queries / q_ref
    u_rate, u_ref_rate = args.updates / u_secs, args.updates / u_ref
    ms = 1000.0
    print(
        f"HTTP benchmark: NNS + 1 app subnet x 4 nodes; {args.clients} query clients, "
        f"{args.update_clients} update clients"
    )
    print(
        f"  queries : {q_rate:8.0f} /s over HTTP  p50 {pct(q_lat, 0.5) * ms:6.1f} ms  "
        f"p99 {pct(q_lat, 0.99) * ms:6.1f} ms | in process {q_ref_rate:8.0f} /s | "
        f"ratio {q_rate / q_ref_rate:.2f} (goal >= 2000 /s)"
    )
    print(
        f"  updates : {u_rate:8.0f} /s over HTTP  p50 {pct(u_lat, 0.5) * ms:6.1f} ms  "
        f"p99 {pct(u_lat, 0.99) * ms:6.1f} ms | in process {u_ref_rate:8.0f} /s "
        f"(virtual time) | ratio {u_rate / u_ref_rate:.2f} (goal >= 300 /s)"
    )
    print(f"  mean update latency {statistics.mean(u_lat) * ms:.0f} ms (certified replies)")
    ic.close()


if __name__ == "__main__":
    main()

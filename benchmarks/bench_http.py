"""HTTP benchmarks: query and update calls/s over the IC HTTP interface vs in process.

Runs one IC (NNS + one application subnet of 4 nodes, real crypto) with the Motoko
counter installed, served by ``icp.http.server`` on a local port, and measures in the
same run:

1. queries/s and p50/p99 latency with concurrent HTTP clients (signed ``query``
   envelopes, node-signed responses) vs the same envelopes answered by
   ``InternetComputer.query`` in process (ratio);
2. update calls/s and p50/p99 latency with concurrent clients on ``/api/v3/.../call``
   (each waits for its certified reply; the IC's clock follows the wall clock) vs the
   same number of calls submitted in process and awaited with the IC's clock running
   free (ratio).  A synchronous call takes a few block times (about a second), so by
   Little's law the rate is at most clients / latency: 512 clients by default.

The load generator runs in its own process and is as cheap as we can make it: a raw
HTTP/1.1 client on asyncio (uvloop when installed) with one keep-alive connection per
client and every request pre-built as bytes (signed envelopes made before the clock
starts).  Its CPU share is printed, as is the server's, and the server's CPU time is
split into the IC answering requests, the IC's consensus keeping up with the wall
clock, and the rest (HTTP parsing, routing, responses, the clock driver's polling:
the HTTP layer's own cost).  On Linux the server thread's time waiting for a CPU
(``/proc/.../schedstat``) is printed too: on a shared 2-core machine other processes
take the server's core, and the rate per second of server CPU says what one free
core would do.
Goals from issue 8: >= 2,000 queries/s and >= 300 updates/s over HTTP.
Run: ``.venv/bin/python benchmarks/bench_http.py [--queries N] [--updates N] [--clients C]``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

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


def post(host: str, port: int, path: str, data: bytes) -> bytes:
    """Return one complete HTTP/1.1 POST (keep-alive) as bytes."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/cbor\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def client(
    host: str, port: int, queue: list[bytes], latencies: list[float], expect: int
) -> None:
    """Send queued requests one at a time on one keep-alive connection.

    Every answer must have status ``expect`` and say ``replied`` (a CBOR text).
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while queue:
            request = queue.pop()
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            at = head.lower().find(b"content-length:")
            size = int(head[at + 15 : head.index(b"\r\n", at)]) if at >= 0 else 0
            payload = await reader.readexactly(size)
            if int(head[9:12]) != expect or b"replied" not in payload:
                raise RuntimeError(f"{head[:12]!r}: {payload[:600]!r}")
            latencies.append(time.perf_counter() - t0)
    finally:
        writer.close()


def load(
    host: str, port: int, requests: list[bytes], clients: int
) -> tuple[float, float, list[float]]:
    """Run the clients (in a worker process); return (seconds, CPU seconds, latencies).

    Every answer must be 200.
    """
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    latencies: list[float] = []
    queue = list(reversed(requests))

    async def run() -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*[client(host, port, queue, latencies, 200) for _ in range(clients)])
        return time.perf_counter() - t0, time.process_time() - c0

    try:
        secs, cpu = loop.run_until_complete(run())
    finally:
        loop.close()
    return secs, cpu, latencies


def schedstat(thread_id: int | None) -> tuple[float, float]:
    """Return (seconds on a CPU, seconds waiting for one) of a thread (Linux), or zeros."""
    try:
        with open(f"/proc/self/task/{thread_id}/schedstat") as f:
            on_cpu, waiting = f.read().split()[:2]
    except (OSError, ValueError):
        return 0.0, 0.0
    return int(on_cpu) / 1e9, int(waiting) / 1e9


def over_http(
    server: BackgroundServer, pool: ProcessPoolExecutor, path: str, bodies: list[bytes],
    clients: int,
) -> dict[str, Any]:  # fmt: skip
    """Run one load; return rates, latencies and where the server's time went."""
    host, port = "127.0.0.1", server.port
    requests = [post(host, port, path, data) for data in bodies]
    metrics = server.frontend.metrics

    def split() -> tuple[float, float]:  # (an older server without the split: zeros)
        return getattr(metrics, "backend_seconds", 0.0), getattr(metrics, "clock_seconds", 0.0)

    ic0, clock0 = split()
    cpu0, load0 = time.process_time(), os.getloadavg()[0]
    run0, wait0 = schedstat(server.thread.native_id)
    secs, client_cpu, latencies = pool.submit(load, host, port, requests, clients).result()
    run1, wait1 = schedstat(server.thread.native_id)
    return {
        "on_cpu": (run1 - run0) / secs,
        "starved": (wait1 - wait0) / secs,
        "rate": len(bodies) / secs,
        "p50": pct(latencies, 0.5),
        "p99": pct(latencies, 0.99),
        "client_cpu": client_cpu / secs,
        "server_cpu": (time.process_time() - cpu0) / secs,
        "ic": (split()[0] - ic0) / secs,
        "consensus": (split()[1] - clock0) / secs,
        "load": max(load0, os.getloadavg()[0]),
    }


def show(
    name: str, m: dict[str, Any], ref_rate: float, ref_what: str, goal: int, estimate: bool
) -> None:
    """Print one line of rates and two of where the time went.

    With ``estimate`` (queries: their IC cost does not depend on the rate, consensus
    costs the same each second) the rate a free core would reach is extrapolated.
    """
    ms = 1000.0
    print(
        f"  {name:8s}: {m['rate']:7.0f} /s over HTTP  p50 {m['p50'] * ms:7.1f} ms  "
        f"p99 {m['p99'] * ms:7.1f} ms | in process {ref_rate:7.0f} /s{ref_what} | "
        f"ratio {m['rate'] / ref_rate:.2f} (goal >= {goal} /s)"
    )
    http = max(0.0, m["server_cpu"] - m["ic"] - m["consensus"])
    per = 1e6 / m["rate"]
    print(
        f"            server CPU {m['server_cpu']:4.0%} of a core = IC answering {m['ic']:4.0%} "
        f"+ IC consensus {m['consensus']:4.0%} + HTTP layer {http:4.0%} "
        f"(HTTP {http * per:.0f} us/request) | load generator CPU {m['client_cpu']:4.0%}"
    )
    if m["on_cpu"]:
        line = (
            f"            server thread: on a CPU {m['on_cpu']:4.0%}, waiting for one "
            f"{m['starved']:4.0%} (taken by other processes; load avg {m['load']:.1f})"
        )
        if estimate:
            # consensus costs a fixed share of each wall second; requests get the rest
            capacity = (1.0 - m["consensus"]) / ((m["ic"] + http) / m["rate"])
            line += f"; a free core would serve about {capacity:.0f} /s"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32, help="concurrent query clients")
    parser.add_argument("--update-clients", type=int, default=512, help="concurrent update clients")
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
            warm = [body("query", cid, "get", get, 50 + i) for i in range(20)]
            over_http(server, pool, f"/api/v2/canister/{cid}/query", warm, 4)
            q = over_http(server, pool, f"/api/v2/canister/{cid}/query", query_bodies, args.clients)
            u = over_http(
                server, pool, f"/api/v3/canister/{cid}/call", update_bodies, args.update_clients
            )
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

    q_ref_rate, u_ref_rate = args.queries / q_ref, args.updates / u_ref
    print(
        f"HTTP benchmark: NNS + 1 app subnet x 4 nodes; {args.clients} query clients, "
        f"{args.update_clients} update clients; {os.cpu_count()} CPUs"
    )
    show("queries", q, q_ref_rate, "", 2000, estimate=True)
    show("updates", u, u_ref_rate, " (IC clock runs free)", 300, estimate=False)
    ic.close()


if __name__ == "__main__":
    main()

"""Message-routing benchmark: batch execution throughput vs raw executor calls.

Prints, for N counter increments (WAT and Motoko counters):
1. messages/s through ``execute_batch`` (envelope parsing, induction checks and fees,
   ingress history, scheduling, output routing; batches of 1,000 messages, the IC's
   per-block limit) vs messages/s of ``execute_message`` called directly on the same
   messages (the reference, measured in the same run), and their ratio;
2. cross-subnet round trips/s: Motoko ``call_inc`` from subnet A to a counter on
   subnet B with real certified XNet slices (BLS-signed state trees) per height.

Run: ``.venv/bin/python benchmarks/bench_messaging.py [N]``.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import cast

import wasmtime

from icp.build import compile_motoko
from icp.candid import Text, encode
from icp.consensus.artifacts import BatchPayload
from icp.consensus.replica import Batch
from icp.crypto.hashing import cbor_encode
from icp.execution.canister import CanisterState
from icp.execution.cycles import ExecutionLimits
from icp.execution.engine import WasmEngine
from icp.execution.executor import (
    ExecutionEnvironment,
    IngressMessage,
    execute_message,
    install_code,
    new_canister,
)
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.messaging.config import SubnetExecutionConfig
from icp.messaging.routing import CanisterIdRange, RoutingTable
from icp.messaging.state_machine import execute_batch
from icp.principal import Principal
from icp.state.replicated_state import NetworkTopology, ReplicatedState, SubnetTopology
from icp.types import NANOS_PER_SECOND, Height, RegistryVersion, Time

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
WAT = bytes(wasmtime.wat2wasm((ROOT / "tests/canisters/wat/counter.wat").read_text()))
T0 = Time(1_700_000_000_000_000_000)
SUBNET = Principal(hashlib.sha224(b"bench subnet").digest() + b"\x02")
CANISTER = Principal.from_canister_index(0x8000000000100000)
ANON = Principal.anonymous()
PER_BLOCK = 1000


def _installed(wasm: bytes, env: ExecutionEnvironment) -> CanisterState:
    canister = new_canister(CANISTER.raw, (ANON.raw,), 10**15, ExecutionLimits())
    return install_code(canister, "install", wasm, b"", ANON.raw, T0, env)


def _state(canister: CanisterState) -> ReplicatedState:
    table = RoutingTable(((CanisterIdRange(CANISTER, CANISTER), SUBNET),))
    topology = NetworkTopology((SubnetTopology(SUBNET, b"\x00" * 133),), table, SUBNET)
    return ReplicatedState(SUBNET, topology, Height(0), T0).with_canister(canister)


def _envelopes(n: int) -> list[bytes]:
    expiry = T0 + 4 * 60 * NANOS_PER_SECOND
    return [
        cbor_encode(
            {
                "content": {
                    "request_type": "call",
                    "sender": ANON.raw,
                    "canister_id": CANISTER.raw,
                    "method_name": "inc",
                    "arg": b"DIDL\x00\x00",
                    "ingress_expiry": expiry,
                    "nonce": i.to_bytes(8, "big"),
                }
            }
        )
        for i in range(n)
    ]


def _time_batches(wasm: bytes, env: ExecutionEnvironment, envelopes: list[bytes]) -> float:
    config = SubnetExecutionConfig(SUBNET, env)
    state = _state(_installed(wasm, env))
    t = time.perf_counter()
    for h, start in enumerate(range(0, len(envelopes), PER_BLOCK), 1):
        chunk = tuple(envelopes[start : start + PER_BLOCK])
        batch = Batch(
            Height(h), b"\x00" * 32, Time(T0 + h), RegistryVersion(1), b"\x01" * 32,
            BatchPayload(chunk), False,
        )  # fmt: skip
        state = execute_batch(state, batch, config)
    elapsed = time.perf_counter() - t
    assert state.messaging.pending_messages() == 0
    replied = sum(1 for s in state.ingress_history.entries.values() if s.reply is not None)
    assert replied == len(envelopes), replied
    return elapsed


def _time_raw(wasm: bytes, env: ExecutionEnvironment, envelopes: list[bytes]) -> float:
    canister = _installed(wasm, env)
    messages = [
        IngressMessage(hashlib.sha256(e).digest(), ANON.raw, CANISTER.raw, "inc", b"DIDL\x00\x00",
                       len(e))
        for e in envelopes
    ]  # fmt: skip
    t = time.perf_counter()
    for m in messages:
        canister, _ = execute_message(canister, m, T0, env)
    return time.perf_counter() - t


def bench_batches_vs_executor(name: str, wasm: bytes, n: int, repeats: int = 3) -> None:
    """Best of ``repeats`` interleaved runs of each (the machine may be shared)."""
    engine = cast(WasmEngine, WasmtimeEngine())
    env = ExecutionEnvironment(engine=engine, subnet_id=SUBNET.raw, subnet_size=13)
    envelopes = _envelopes(n)
    batched = raw = float("inf")
    for _ in range(repeats):
        batched = min(batched, _time_batches(wasm, env, envelopes))
        raw = min(raw, _time_raw(wasm, env, envelopes))
    print(
        f"{name:7s} counter, {n} increments: execute_batch {n / batched:9,.0f} msg/s | "
        f"raw execute_message {n / raw:9,.0f} msg/s | ratio {raw / batched:.2f}"
    )


def bench_xnet_round_trips(rounds: int) -> None:
    from tests.messaging.helpers import Driver, make_net

    a, b = make_net(2, WasmtimeEngine())
    d = Driver([a, b])
    caller, callee = d.create_canister(a.id), d.create_canister(b.id)
    d.install(a.id, caller, compile_motoko(ROOT / "tests/canisters/caller"))
    d.install(b.id, callee, compile_motoko(ROOT / "tests/canisters/counter"))
    arg = encode([Text], [callee.to_text()])
    mids = [d.submit(a.id, caller, "call_inc", arg) for _ in range(rounds)]
    t = time.perf_counter()
    steps = 0
    while any((s := d.status(a.id, m)) is None or s.reply is None for m in mids):
        d.step()
        steps += 1
    elapsed = time.perf_counter() - t
    print(
        f"XNet: {rounds} cross-subnet calls in {steps} heights (2 subnets, certified slices): "
        f"{rounds / elapsed:,.0f} round trips/s, {elapsed / steps * 1000:.1f} ms per height "
        "for both subnets"
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    motoko = compile_motoko(ROOT / "tests/canisters/counter")
    bench_batches_vs_executor("WAT", WAT, n)
    bench_batches_vs_executor("Motoko", motoko, n)
    bench_xnet_round_trips(200)


if __name__ == "__main__":
    main()

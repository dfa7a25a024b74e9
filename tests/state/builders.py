"""Builders for state tests: topologies with real keys, canisters with real Wasm."""

from __future__ import annotations

import hashlib
from typing import cast

import attrs
import wasmtime
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from icp.crypto import threshold
from icp.execution.canister import CanisterState
from icp.execution.cycles import ExecutionLimits
from icp.execution.engine import WasmEngine
from icp.execution.executor import ExecutionEnvironment, install_code, new_canister
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.messaging.routing import CanisterIdRange, RoutingTable
from icp.principal import Principal
from icp.state.replicated_state import NetworkTopology, ReplicatedState, SubnetTopology
from icp.types import Height, Time

NNS = Principal.from_text("tdb26-jop6k-aogll-7ltgs-eruif-6kk7m-qpktf-gdiqx-mxtrf-vb5e6-eqe")
APP = Principal(hashlib.sha224(b"app subnet").digest() + b"\x02")
USER = Principal.self_authenticating(b"\x30" * 44)
OTHER_USER = Principal.self_authenticating(b"\x31" * 44)
T0 = Time(1_700_000_000_000_000_000)

WAT = """
(module
  (import "ic0" "certified_data_set" (func $cds (param i32 i32)))
  (import "ic0" "stable_grow" (func $sg (param i32) (result i32)))
  (import "ic0" "stable_write" (func $sw (param i32 i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (memory 2)
  (global $g (mut i64) (i64.const 0))
  (data (i32.const 0) "certified!")
  (func (export "canister_init")
    (global.set $g (i64.const 42))
    (i32.store (i32.const 70000) (i32.const 7))
    (drop (call $sg (i32.const 1)))
    (call $sw (i32.const 100) (i32.const 0) (i32.const 10))
    (call $cds (i32.const 0) (i32.const 10)))
  (func (export "canister_query get") (call $reply)))
"""


def custom_section(name: str, content: bytes) -> bytes:
    """Return a Wasm custom section (id 0) named ``name``."""
    body = bytes([len(name)]) + name.encode() + content
    size = len(body)
    leb = bytearray()
    while True:
        byte, size = size & 0x7F, size >> 7
        leb.append(byte | (0x80 if size else 0))
        if not size:
            break
    return b"\x00" + bytes(leb) + body


def wasm_module() -> bytes:
    """A small canister with heap, stable memory, certified data and metadata."""
    base = wasmtime.wat2wasm(WAT)
    return (
        bytes(base)
        + custom_section("icp:public candid:service", b"service : { get : () -> () }")
        + custom_section("icp:private secret", b"hidden")
    )


def subnet_key(
    seed: bytes, n: int
) -> tuple[threshold.ThresholdPublicKey, list[threshold.ThresholdSecretShare]]:
    """A 2f+1-of-n threshold key dealt from ``seed``."""
    f = (n - 1) // 3
    return threshold.deal_trusted(seed, n, 2 * f + 1)


def node_keys(subnet: Principal, n: int) -> dict[Principal, bytes]:
    """Real Ed25519 node keys (DER) for ``n`` nodes of ``subnet``."""
    out = {}
    for i in range(n):
        sk = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(subnet.raw + bytes([i])).digest())
        der = sk.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        node = Principal.self_authenticating(der)
        out[node] = der
    return out


@attrs.frozen
class World:
    """Two subnets (NNS + app) with real threshold keys and a routing table."""

    topology: NetworkTopology
    nns_key: threshold.ThresholdPublicKey
    nns_shares: list[threshold.ThresholdSecretShare]
    app_key: threshold.ThresholdPublicKey
    app_shares: list[threshold.ThresholdSecretShare]


def world(n: int = 4) -> World:
    nns_key, nns_shares = subnet_key(b"nns", n)
    app_key, app_shares = subnet_key(b"app", n)
    table = RoutingTable(
        (
            (CanisterIdRange.from_indices(0, 2**20 - 1), NNS),
            (CanisterIdRange.from_indices(2**20, 2**21 - 1), APP),
        )
    )
    topology = NetworkTopology(
        (
            SubnetTopology(NNS, nns_key.to_der(), node_keys(NNS, n)),
            SubnetTopology(APP, app_key.to_der(), node_keys(APP, n)),
        ),
        table,
        NNS,
    )
    return World(topology, nns_key, nns_shares, app_key, app_shares)


def app_canister_id(i: int) -> Principal:
    return Principal.from_canister_index(2**20 + i)


def empty_state(w: World, subnet: Principal = APP, height: int = 1) -> ReplicatedState:
    return ReplicatedState(subnet, w.topology, Height(height), T0)


def plain_canister(cid: Principal, controllers: tuple[bytes, ...] = (USER.raw,)) -> CanisterState:
    return new_canister(cid.raw, controllers, 10**12, ExecutionLimits())


def installed_canister(
    cid: Principal, engine: WasmtimeEngine, wasm: bytes | None = None
) -> CanisterState:
    """A canister with the test module installed (init ran: heap, stable, certified data)."""
    env = ExecutionEnvironment(engine=cast(WasmEngine, engine), subnet_size=4)
    return install_code(
        plain_canister(cid), "install", wasm or wasm_module(), b"", USER.raw, T0, env
    )

"""Builders for messaging tests: subnets with real threshold keys, envelopes, batches.

A ``Net`` is a set of subnets driven directly through ``execute_batch`` (no
consensus): each subnet has a state, a config, a 1-of-1 (or t-of-n) threshold key
with which its states are certified, and a StateTreeBuilder.
"""

from __future__ import annotations

import hashlib
from typing import cast

import attrs
import wasmtime

from icp.candid import decode, encode
from icp.consensus.artifacts import BatchPayload, XNetSlice
from icp.consensus.replica import Batch
from icp.crypto import threshold
from icp.crypto.hashing import cbor_encode
from icp.execution.engine import WasmEngine
from icp.execution.executor import ExecutionEnvironment
from icp.execution.management import CanisterIdRecord, InstallCodeArgs, ProvisionalCreateArgs
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.messaging.config import SubnetExecutionConfig
from icp.messaging.routing import CanisterIdRange, RoutingTable
from icp.messaging.state_machine import execute_batch
from icp.principal import Principal
from icp.state.certification import Certification, aggregate, certify
from icp.state.ingress_history import IngressStatus
from icp.state.replicated_state import NetworkTopology, ReplicatedState, SubnetTopology
from icp.state.stream_certification import certified_stream_slice
from icp.state.tree import StateTreeBuilder
from icp.types import NANOS_PER_SECOND, Height, RegistryVersion, Time

T0 = Time(1_700_000_000_000_000_000)
ANON = Principal.anonymous()
FIRST_APP_INDEX = 0x8000000000100000


def subnet_id(i: int) -> Principal:
    """Return a deterministic subnet id (a self-authenticating-like principal)."""
    return Principal(hashlib.sha224(b"subnet %d" % i).digest() + b"\x02")


def canister_range(i: int) -> CanisterIdRange:
    """Return subnet ``i``'s canister-id range (2**20 ids, like dfx for app subnets)."""
    start = FIRST_APP_INDEX + i * 2**20
    return CanisterIdRange.from_indices(start, start + 2**20 - 1)


@attrs.define
class Subnet:
    """One subnet's state, config and signing key (mutable test driver)."""

    state: ReplicatedState
    config: SubnetExecutionConfig
    key: threshold.ThresholdPublicKey
    shares: list[threshold.ThresholdSecretShare]
    builder: StateTreeBuilder = attrs.Factory(StateTreeBuilder)
    certified: tuple[ReplicatedState, Certification] | None = None

    @property
    def id(self) -> Principal:
        return self.state.subnet_id

    def certify(self) -> Certification:
        """Certify the current state with the subnet's key (real BLS)."""
        tree = self.builder.build(self.state)
        root = tree.digest()
        certification = aggregate(
            self.key, [certify(self.state.height, root, s) for s in self.shares]
        )
        self.certified = (self.state, certification)
        return certification

    def slice_for(self, destination: Principal, from_index: int, max_messages: int) -> bytes | None:
        """Serve a certified slice of the last certified state's stream to ``destination``."""
        if self.certified is None:
            return None
        state, certification = self.certified
        stream = state.stream_to(destination)
        if not stream.header.begin <= from_index <= stream.header.end:
            return None
        return certified_stream_slice(state, certification, destination, from_index, max_messages)


def make_net(
    n_subnets: int, engine: WasmtimeEngine, *, subnet_size: int = 1, **config_kw: object
) -> list[Subnet]:
    """Return ``n_subnets`` subnets sharing one topology (routing table + keys)."""
    ids = [subnet_id(i) for i in range(n_subnets)]
    keys = [threshold.deal_trusted(b"key %d" % i, 1, 1) for i in range(n_subnets)]
    table = RoutingTable(tuple((canister_range(i), ids[i]) for i in range(n_subnets)))
    topology = NetworkTopology(
        tuple(SubnetTopology(ids[i], keys[i][0].to_der()) for i in range(n_subnets)), table, ids[0]
    )
    out = []
    for i in range(n_subnets):
        env = ExecutionEnvironment(
            engine=cast(WasmEngine, engine), subnet_id=ids[i].raw, subnet_size=subnet_size
        )
        config = SubnetExecutionConfig(ids[i], env, **config_kw)  # type: ignore[arg-type]
        state = ReplicatedState(ids[i], topology, Height(0), T0)
        out.append(Subnet(state, config, keys[i][0], keys[i][1]))
    return out


def envelope(
    canister: Principal,
    method: str,
    arg: bytes,
    *,
    expiry: int,
    nonce: bytes = b"",
    sender: Principal = ANON,
) -> bytes:
    """Return an anonymous call envelope (CBOR), as an agent would send it."""
    content: dict[str, object] = {
        "request_type": "call",
        "sender": sender.raw,
        "canister_id": canister.raw,
        "method_name": method,
        "arg": arg,
        "ingress_expiry": expiry,
    }
    if nonce:
        content["nonce"] = nonce
    return cbor_encode({"content": content})


def make_batch(
    height: int,
    time: int,
    ingress: tuple[bytes, ...] = (),
    xnet: tuple[XNetSlice, ...] = (),
    randomness: bytes = b"\x07" * 32,
) -> Batch:
    """Return a finalized batch as consensus would deliver it."""
    return Batch(
        Height(height),
        hashlib.sha256(b"block %d" % height).digest(),
        Time(time),
        RegistryVersion(1),
        randomness,
        BatchPayload(ingress, xnet),
        False,
    )


class Driver:
    """Run subnets batch by batch; pull XNet slices between them like block makers do."""

    def __init__(self, subnets: list[Subnet], slice_size: int = 1000) -> None:
        self.subnets = subnets
        self.time = T0
        self.slice_size = slice_size
        self.pending: dict[Principal, list[bytes]] = {s.id: [] for s in subnets}
        self.nonce = 0
        self.sent: list[bytes] = []  # every envelope put into a batch, in order

    def subnet_of(self, sid: Principal) -> Subnet:
        return next(s for s in self.subnets if s.id == sid)

    def submit(self, sid: Principal, canister: Principal, method: str, arg: bytes) -> bytes:
        """Queue an anonymous call for the next batch of ``sid``; return the request id."""
        from icp.messaging.ingress import parse_call_envelope

        self.nonce += 1
        data = envelope(
            canister,
            method,
            arg,
            expiry=self.time + 4 * 60 * NANOS_PER_SECOND,
            nonce=self.nonce.to_bytes(8, "big"),
        )
        self.pending[sid].append(data)
        return parse_call_envelope(data).message_id

    def xnet_for(self, sub: Subnet) -> tuple[XNetSlice, ...]:
        out = []
        for other in self.subnets:
            if other is sub:
                continue
            start = sub.state.stream_to(other.id).header.signals_end
            data = other.slice_for(sub.id, start, self.slice_size)
            if data is not None:
                out.append(XNetSlice(other.id.raw, data))
        return tuple(out)

    def step(self, advance: int = NANOS_PER_SECOND) -> None:
        """Execute one batch on every subnet, then certify every subnet's new state."""
        self.time = Time(self.time + advance)
        for sub in self.subnets:
            batch = make_batch(
                sub.state.height + 1, self.time, tuple(self.pending[sub.id]), self.xnet_for(sub)
            )
            self.sent.extend(self.pending[sub.id])
            self.pending[sub.id] = []
            sub.state = execute_batch(sub.state, batch, sub.config)
        for sub in self.subnets:
            sub.certify()

    def status(self, sid: Principal, message_id: bytes) -> IngressStatus | None:
        return self.subnet_of(sid).state.ingress_history.get(message_id)

    def create_canister(self, sid: Principal, cycles: int = 10**14) -> Principal:
        arg = encode(
            [ProvisionalCreateArgs],
            [{"amount": cycles, "settings": None, "specified_id": None,
              "sender_canister_version": None}],
        )  # fmt: skip
        mid = self.submit(
            sid, Principal.management_canister(), "provisional_create_canister_with_cycles", arg
        )
        self.step()
        st = self.status(sid, mid)
        assert st is not None and st.reply is not None, st
        return cast(Principal, decode(st.reply, [CanisterIdRecord])[0]["canister_id"])

    def install(self, sid: Principal, canister: Principal, wasm: bytes, arg: bytes = b"") -> None:
        payload = encode(
            [InstallCodeArgs],
            [{"mode": {"install": None}, "canister_id": canister, "wasm_module": wasm, "arg": arg,
              "sender_canister_version": None}],
        )  # fmt: skip
        mid = self.submit(sid, Principal.management_canister(), "install_code", payload)
        self.step()
        st = self.status(sid, mid)
        assert st is not None and st.reply is not None, st


def wat_counter() -> bytes:
    """The hand-written counter canister of the execution tests."""
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "canisters" / "wat" / "counter.wat"
    return bytes(wasmtime.wat2wasm(path.read_text()))


def signed_envelope(
    identity_seed: bytes,
    canister: Principal,
    method: str,
    arg: bytes,
    *,
    expiry: int,
    nonce: bytes = b"",
    forge: bool = False,
) -> bytes:
    """Return an envelope signed with a real Ed25519 key (``forge``: flip a signature bit)."""
    from icp.crypto.hashing import request_id
    from icp.crypto.user_sig import Ed25519Identity, principal_of, sign_request

    identity = Ed25519Identity.from_seed(hashlib.sha256(identity_seed).digest())
    content: dict[str, object] = {
        "request_type": "call",
        "sender": principal_of(identity).raw,
        "canister_id": canister.raw,
        "method_name": method,
        "arg": arg,
        "ingress_expiry": expiry,
    }
    if nonce:
        content["nonce"] = nonce
    signature = bytearray(sign_request(identity, request_id(content)))
    if forge:
        signature[0] ^= 1
    return cbor_encode(
        {
            "content": content,
            "sender_pubkey": identity.public_key_der(),
            "sender_sig": bytes(signature),
        }
    )


def query(sub: Subnet, canister: Principal, method: str, arg: bytes = b"") -> bytes:
    """Run a non-replicated query on the subnet's current state; return the reply bytes."""
    from icp.execution.executor import execute_query
    from icp.execution.system_api import Reply

    state = sub.state.canister(canister)
    assert state is not None
    response = execute_query(state, ANON.raw, method, arg, sub.state.time, sub.config.env)
    assert isinstance(response, Reply), response
    return response.data


def management_call(d: Driver, sid: Principal, method: str, arg: bytes) -> IngressStatus:
    """Call ``aaaaa-aa`` by ingress and return the final status after one batch."""
    mid = d.submit(sid, Principal.management_canister(), method, arg)
    d.step()
    status = d.status(sid, mid)
    assert status is not None
    return status


def relay_wasm() -> bytes:
    """The relay canister (``forward`` a call and report its outcome; ``ping``)."""
    from pathlib import Path

    return bytes(wasmtime.wat2wasm((Path(__file__).resolve().parent / "relay.wat").read_text()))


def forward_arg(callee: Principal, method: str, payload: bytes) -> bytes:
    """Return the relay's ``forward`` argument."""
    name = method.encode()
    return bytes([len(callee.raw)]) + callee.raw + bytes([len(name)]) + name + payload

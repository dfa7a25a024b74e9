"""IcPayloadBuilder: batch selection and validation against a Byzantine block maker."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from icp.candid import Text, encode
from icp.consensus.artifacts import BatchPayload, Block, DataPayload, ValidationContext, XNetSlice
from icp.consensus.config import REPLICA_VERSION
from icp.consensus.context import InvalidArtifact
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.messaging.ingress import IngressLimits, IngressPool, parse_call_envelope
from icp.messaging.payload import IcPayloadBuilder
from icp.principal import Principal
from icp.types import NANOS_PER_SECOND, Height, Rank, RegistryVersion, Time
from tests.messaging.helpers import Driver, Subnet, envelope, make_net, signed_envelope

MINUTE = 60 * NANOS_PER_SECOND


def block_with(batch: BatchPayload, height: int = 5) -> Block:
    """A block carrying ``batch`` (for ``past``)."""
    return Block(
        REPLICA_VERSION,
        b"\x00" * 32,
        Height(height),
        Rank(0),
        ValidationContext(RegistryVersion(1), Height(0), Time(0)),
        DataPayload(batch),
    )


def builder_for(
    sub: Subnet, pool: IngressPool | None = None, client: object = None
) -> IcPayloadBuilder:
    def state() -> object:
        return sub.state

    if client is None:
        return IcPayloadBuilder(sub.config, pool or IngressPool(), state)  # type: ignore[arg-type]
    return IcPayloadBuilder(sub.config, pool or IngressPool(), state, client)  # type: ignore[arg-type]


def test_get_batch_selects_hosted_unexecuted_ingress(engine: WasmtimeEngine) -> None:
    (sub,) = make_net(1, engine)
    d = Driver([sub])
    now = d.time
    mine = sub.state.topology.canister_ranges(sub.id)[0].start
    foreign = Principal.from_canister_index(5)  # no subnet hosts it
    pool = IngressPool()
    datas = [
        envelope(mine, "inc", b"", expiry=now + MINUTE, nonce=b"1"),
        envelope(mine, "inc", b"", expiry=now + MINUTE, nonce=b"2"),
        envelope(foreign, "inc", b"", expiry=now + MINUTE, nonce=b"3"),
        envelope(mine, "inc", b"", expiry=now - 2 * MINUTE, nonce=b"4"),  # expired
    ]
    for data in datas:
        pool.add(parse_call_envelope(data))
    builder = builder_for(sub, pool)
    past = [block_with(BatchPayload((datas[1],)))]
    batch = builder.get_batch(Height(6), now, past)
    assert batch.ingress == (datas[0],)  # original bytes; datas[1] is already in the chain
    builder.validate_batch(Height(6), now, batch, past)


def test_validate_refuses_bad_signature_expiry_duplicates_and_limits(
    engine: WasmtimeEngine,
) -> None:
    (sub,) = make_net(1, engine)
    now = Time(sub.state.time)
    target = sub.state.topology.canister_ranges(sub.id)[0].start
    builder = builder_for(sub)
    good = signed_envelope(b"alice", target, "inc", b"", expiry=now + MINUTE, nonce=b"g")
    builder.validate_batch(Height(1), now, BatchPayload((good,)), [])
    cases = {
        "signature": BatchPayload(
            (signed_envelope(b"alice", target, "inc", b"", expiry=now + MINUTE, forge=True),)
        ),
        "expired": BatchPayload(
            (signed_envelope(b"alice", target, "inc", b"", expiry=now - 2 * MINUTE),)
        ),
        "twice": BatchPayload((good, good)),
        "ancestor": BatchPayload((good,)),
        "CBOR": BatchPayload((b"\xff\x00junk",)),
        "does not host": BatchPayload(
            (envelope(Principal.from_canister_index(3), "inc", b"", expiry=now + MINUTE),)
        ),
    }
    for reason, batch in cases.items():
        past = [block_with(BatchPayload((good,)))] if reason == "ancestor" else []
        with pytest.raises(InvalidArtifact, match=reason):
            builder.validate_batch(Height(1), now, batch, past)


def test_validate_refuses_oversized_batches(engine: WasmtimeEngine) -> None:
    import attrs

    (sub,) = make_net(1, engine)
    limits = IngressLimits(max_messages_per_block=2, max_bytes_per_block=600)
    sub.config = attrs.evolve(sub.config, ingress_limits=limits)
    now = Time(sub.state.time)
    target = sub.state.topology.canister_ranges(sub.id)[0].start
    builder = builder_for(sub)
    three = tuple(
        envelope(target, "inc", b"", expiry=now + MINUTE, nonce=bytes([i])) for i in range(3)
    )
    with pytest.raises(InvalidArtifact, match="exceed the limit"):
        builder.validate_batch(Height(1), now, BatchPayload(three), [])
    big = envelope(target, "inc", b"x" * 700, expiry=now + MINUTE)
    with pytest.raises(InvalidArtifact, match="block limit"):
        builder.validate_batch(Height(1), now, BatchPayload((big,)), [])


def test_already_inducted_ingress_is_not_selected_and_refused(
    engine: WasmtimeEngine, counter_wat: bytes
) -> None:
    (sub,) = make_net(1, engine)
    d = Driver([sub])
    canister = d.create_canister(sub.id)
    data = envelope(canister, "inc", b"", expiry=d.time + MINUTE, nonce=b"x")
    d.pending[sub.id] = [data]
    d.step()
    pool = IngressPool()
    pool.add(parse_call_envelope(data))
    builder = builder_for(sub, pool)
    assert builder.get_batch(Height(9), d.time, []).ingress == ()
    with pytest.raises(InvalidArtifact, match="already inducted"):
        builder.validate_batch(Height(9), d.time, BatchPayload((data,)), [])


def xnet_setup(
    engine: WasmtimeEngine, motoko: Callable[[str], bytes]
) -> tuple[Driver, Subnet, Subnet]:
    a, b = make_net(2, engine)
    d = Driver([a, b])
    caller = d.create_canister(a.id)
    callee = d.create_canister(b.id)
    d.install(a.id, caller, motoko("caller"))
    d.install(b.id, callee, motoko("counter"))
    for _ in range(3):
        d.submit(a.id, caller, "call_inc", encode([Text], [callee.to_text()]))
    d.step()
    return d, a, b


def test_xnet_slices_selected_and_validated(
    engine: WasmtimeEngine, motoko: Callable[[str], bytes]
) -> None:
    d, a, b = xnet_setup(engine, motoko)
    assert a.state.stream_to(b.id).header.end == 3
    calls: list[tuple[Principal, int]] = []

    def client(source: Principal, start: int) -> bytes | None:
        calls.append((source, start))
        return a.slice_for(b.id, start, 2)

    builder = builder_for(b, client=client)
    batch = builder.get_batch(Height(b.state.height + 1), d.time, [])
    assert len(batch.xnet) == 1 and calls == [(a.id, 0)]
    builder.validate_batch(Height(b.state.height + 1), d.time, batch, [])
    # with that batch in an unfinalized ancestor, the next slice starts at index 2
    past = [block_with(batch, b.state.height + 1)]
    calls.clear()
    nxt = builder.get_batch(Height(b.state.height + 2), d.time, past)
    assert calls == [(a.id, 2)] and len(nxt.xnet) == 1
    builder.validate_batch(Height(b.state.height + 2), d.time, nxt, past)
    # the same slice again (a replay) does not continue the stream
    with pytest.raises(InvalidArtifact, match="XNet"):
        builder.validate_batch(Height(b.state.height + 2), d.time, batch, past)


def test_forged_or_misplaced_xnet_slices_are_refused(
    engine: WasmtimeEngine, motoko: Callable[[str], bytes]
) -> None:
    d, a, b = xnet_setup(engine, motoko)
    builder = builder_for(b)
    height = Height(b.state.height + 1)
    good = a.slice_for(b.id, 0, 10)
    assert good is not None
    forged = bytearray(good)
    forged[-3] ^= 0x40
    late = a.slice_for(b.id, 1, 10)  # skips message 0
    assert late is not None
    cases = {
        "invalid XNet slice": XNetSlice(a.id.raw, bytes(forged)),
        "not consecutive|invalid": XNetSlice(a.id.raw, late),
        "unknown or own": XNetSlice(b.id.raw, good),
    }
    for reason, piece in cases.items():
        with pytest.raises(InvalidArtifact, match=reason):
            builder.validate_batch(height, d.time, BatchPayload((), (piece,)), [])
    with pytest.raises(InvalidArtifact, match="two XNet slices"):
        builder.validate_batch(
            height, d.time, BatchPayload((), (XNetSlice(a.id.raw, good),) * 2), []
        )
    builder.validate_batch(height, d.time, BatchPayload((), (XNetSlice(a.id.raw, good),)), [])
    # a slice signed by another subnet's key (b certifies a fake stream) is refused
    b.certify()
    wrong_signer = b.slice_for(a.id, 0, 10)
    assert wrong_signer is not None
    with pytest.raises(InvalidArtifact):
        builder.validate_batch(
            height, d.time, BatchPayload((), (XNetSlice(a.id.raw, wrong_signer),)), []
        )


def test_management_ingress_belongs_to_the_subnet_of_its_target(engine: WasmtimeEngine) -> None:
    from icp.execution.management import CanisterIdRecord

    a, b = make_net(2, engine)
    now = Time(a.state.time)
    mgmt = Principal.management_canister()
    theirs = b.state.topology.canister_ranges(b.id)[0].start
    mine = a.state.topology.canister_ranges(a.id)[0].start
    builder = builder_for(a)

    def status_call(target: Principal) -> bytes:
        arg = encode([CanisterIdRecord], [{"canister_id": target}])
        return envelope(mgmt, "canister_status", arg, expiry=now + MINUTE)

    builder.validate_batch(Height(1), now, BatchPayload((status_call(mine),)), [])
    create = envelope(
        mgmt, "provisional_create_canister_with_cycles", b"DIDL\x00\x00", expiry=now + MINUTE
    )
    builder.validate_batch(Height(1), now, BatchPayload((create,)), [])
    with pytest.raises(InvalidArtifact, match="does not host"):
        builder.validate_batch(Height(1), now, BatchPayload((status_call(theirs),)), [])

"""Message-routing properties: XNet delivery, determinism, traps, cycles, dedup, validation.

Owned by the messaging engineer (icp/messaging).  Subnets are driven directly
through ``execute_batch`` with batches built here (no consensus); XNet slices are
real certified slices (BLS-signed state trees).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icp.build import compile_motoko
from icp.candid import Nat, Text, decode, encode
from icp.consensus.artifacts import BatchPayload, XNetSlice
from icp.consensus.context import InvalidArtifact
from icp.execution.system_api import Reply
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.messaging.ingress import IngressPool, parse_call_envelope
from icp.messaging.payload import IcPayloadBuilder
from icp.messaging.state_machine import execute_batch
from icp.principal import Principal
from icp.state.checkpoint import state_hash
from icp.state.ingress_history import RequestStatus
from icp.state.tree import StateTreeBuilder
from icp.types import NANOS_PER_SECOND, Height, Time
from tests.messaging.helpers import (
    Driver,
    Subnet,
    envelope,
    make_batch,
    make_net,
    signed_envelope,
    wat_counter,
)

CANISTERS = Path(__file__).resolve().parent.parent / "canisters"
MINUTE = 60 * NANOS_PER_SECOND
FAST = settings(max_examples=12, deadline=None, derandomize=True)


@cache
def engine() -> WasmtimeEngine:
    return WasmtimeEngine()


@cache
def motoko(name: str) -> bytes:
    return compile_motoko(CANISTERS / name)


@cache
def counter() -> bytes:
    return wat_counter()


def counter_subnet(cycles: int = 10**14) -> tuple[Driver, Principal]:
    (sub,) = make_net(1, engine())
    d = Driver([sub])
    cid = d.create_canister(sub.id, cycles=cycles)
    d.install(sub.id, cid, counter())
    return d, cid


# ---------------------------------------------------------------------------- XNet delivery


@FAST
@given(
    calls=st.integers(1, 6),
    schedule=st.lists(
        st.tuples(st.integers(1, 3), st.booleans(), st.booleans()), min_size=10, max_size=25
    ),
)
def test_xnet_exactly_once_in_order(calls: int, schedule: list[tuple[int, bool, bool]]) -> None:
    """Whatever the slice sizes and delays, B serves each call once, in the order A sent them."""
    a, b = make_net(2, engine())
    d = Driver([a, b])
    caller = d.create_canister(a.id)
    callee = d.create_canister(b.id)
    d.install(a.id, caller, motoko("caller"))
    d.install(b.id, callee, motoko("counter"))
    mids = [
        d.submit(a.id, caller, "call_inc", encode([Text], [callee.to_text()])) for _ in range(calls)
    ]
    for size, deliver_ab, deliver_ba in schedule:
        d.time = Time(d.time + NANOS_PER_SECOND)
        for sub, other, deliver in ((a, b, deliver_ba), (b, a, deliver_ab)):
            xnet: tuple[XNetSlice, ...] = ()
            if deliver:
                start = sub.state.stream_to(other.id).header.signals_end
                data = other.slice_for(sub.id, start, size)
                xnet = () if data is None else (XNetSlice(other.id.raw, data),)
            ingress = tuple(d.pending[sub.id])
            d.pending[sub.id] = []
            batch = make_batch(sub.state.height + 1, d.time, ingress, xnet)
            sub.state = execute_batch(sub.state, batch, sub.config)
        a.certify()
        b.certify()
    for _ in range(2 * calls + 4):  # drain with full delivery
        d.step()
    replies = []
    for mid in mids:
        status = d.status(a.id, mid)
        assert status is not None and status.reply is not None, status
        replies.append(decode(status.reply, [Nat])[0])
    assert replies == list(range(1, calls + 1))
    assert not a.state.stream_to(b.id).messages and not b.state.stream_to(a.id).messages


# ---------------------------------------------------------------------------- determinism

OPS = st.sampled_from(["inc", "inc_then_trap", "grow_then_trap", "no_reply", "reject", "missing"])


def run_ops(ops: list[list[str]]) -> list[tuple[bytes, bytes]]:
    d, cid = counter_subnet()
    sub = d.subnets[0]
    builder = StateTreeBuilder()
    hashes = []
    for batch_ops in ops:
        for op in batch_ops:
            d.submit(sub.id, cid, op, b"")
        d.step()
        hashes.append((builder.build(sub.state).digest(), state_hash(sub.state)))
    return hashes


@FAST
@given(ops=st.lists(st.lists(OPS, max_size=4), min_size=1, max_size=5))
def test_same_batches_same_state_hashes(ops: list[list[str]]) -> None:
    """Two replicas applying the same batch sequence agree on every height's hashes."""
    assert run_ops(ops) == run_ops(ops)


# ---------------------------------------------------------------------------- traps and cycles


@FAST
@given(
    before=st.lists(OPS, max_size=4),
    trap=st.sampled_from(["inc_then_trap", "grow_then_trap", "div_zero"]),
)
def test_trap_changes_only_cycles(before: list[str], trap: str) -> None:
    """A trapped message leaves the canister as it was, except for the cycles charged."""
    d, cid = counter_subnet()
    sub = d.subnets[0]
    for op in before:
        d.submit(sub.id, cid, op, b"")
    d.step()
    old = sub.state.canister(cid)
    assert old is not None and old.runtime is not None
    heap, stable = old.runtime.snapshot().digest(), old.runtime.stable.digest()
    mid = d.submit(sub.id, cid, trap, b"")
    d.step(advance=1)  # no idle charges
    new = sub.state.canister(cid)
    assert new is not None and new.runtime is not None
    status = d.status(sub.id, mid)
    assert status is not None and status.status is RequestStatus.REJECTED
    assert new.runtime.snapshot().digest() == heap and new.runtime.stable.digest() == stable
    assert new.cycles < old.cycles
    assert attrs.evolve(
        new, cycles=old.cycles, version=old.version, next_id=old.next_id
    ) == attrs.evolve(old, runtime=new.runtime)


@FAST
@given(
    cycles=st.integers(0, 5 * 10**9),
    ops=st.lists(st.sampled_from(["inc", "inc_then_trap", "work"]), min_size=1, max_size=8),
    advance=st.integers(1, 10**6 * NANOS_PER_SECOND),
)
def test_cycles_never_negative(cycles: int, ops: list[str], advance: int) -> None:
    """However poor the canister and however long idle, balances stay >= 0."""
    d, cid = counter_subnet()
    sub = d.subnets[0]
    c = sub.state.canister(cid)
    assert c is not None
    sub.state = sub.state.with_canister(attrs.evolve(c, cycles=cycles))
    for op in ops:
        d.submit(sub.id, cid, op, (1000).to_bytes(4, "little"))
    d.step()
    d.step(advance=advance)
    for canister in sub.state.canisters.values():
        assert canister.cycles >= 0


# ---------------------------------------------------------------------------- ingress dedup


@FAST
@given(
    distinct=st.integers(1, 5),
    picks=st.lists(st.lists(st.integers(0, 4), max_size=6), min_size=1, max_size=5),
)
def test_ingress_never_executes_twice(distinct: int, picks: list[list[int]]) -> None:
    """Resubmitting the same envelopes, in one batch or across batches, executes each once."""
    d, cid = counter_subnet()
    sub = d.subnets[0]
    datas = [
        envelope(cid, "inc", b"", expiry=d.time + 4 * MINUTE, nonce=bytes([i]))
        for i in range(distinct)
    ]
    included: set[int] = set()
    for batch_picks in picks:
        chosen = [i % distinct for i in batch_picks]
        included.update(chosen)
        d.pending[sub.id] = [datas[i] for i in chosen]
        d.step()
    from icp.execution.executor import execute_query

    canister = sub.state.canister(cid)
    assert canister is not None
    value = execute_query(canister, b"\x04", "get", b"", sub.state.time, sub.config.env)
    assert isinstance(value, Reply)
    assert int.from_bytes(value.data, "little") == 100 + len(included)


# ---------------------------------------------------------------------------- Byzantine payloads


@cache
def byzantine_world() -> tuple[Driver, Subnet, Subnet, Principal]:
    a, b = make_net(2, engine())
    d = Driver([a, b])
    caller = d.create_canister(a.id)
    callee = d.create_canister(b.id)
    d.install(a.id, caller, motoko("caller"))
    d.install(b.id, callee, motoko("counter"))
    for _ in range(3):
        d.submit(a.id, caller, "call_inc", encode([Text], [callee.to_text()]))
    d.step()
    return d, a, b, callee


CORRUPTIONS = [
    "bad_signature",
    "expired",
    "far_future",
    "duplicate",
    "history_duplicate",
    "forged_slice",
    "gap_slice",
    "wrong_subnet_canister",
]


@settings(max_examples=24, deadline=None, derandomize=True)
@given(
    corruption=st.sampled_from(CORRUPTIONS), flip=st.integers(0, 10**6), honest=st.integers(0, 2)
)
def test_validate_batch_refuses_byzantine_payloads(corruption: str, flip: int, honest: int) -> None:
    """Every way a block maker can cheat on the batch is refused; the honest batch passes."""
    d, a, b, callee = byzantine_world()
    now = d.time
    good_ingress = tuple(
        signed_envelope(b"user", callee, "inc", b"", expiry=now + MINUTE, nonce=bytes([i, 7]))
        for i in range(honest)
    )
    good_slice = a.slice_for(b.id, 0, 10)
    assert good_slice is not None
    builder = IcPayloadBuilder(b.config, IngressPool(), lambda: b.state)
    height = Height(b.state.height + 1)
    honest_batch = BatchPayload(good_ingress, (XNetSlice(a.id.raw, good_slice),))
    builder.validate_batch(height, now, honest_batch, [])
    ingress, xnet = list(good_ingress), list(honest_batch.xnet)
    if corruption == "bad_signature":
        ingress.append(
            signed_envelope(b"user", callee, "inc", b"", expiry=now + MINUTE, forge=True)
        )
    elif corruption == "expired":
        ingress.append(signed_envelope(b"user", callee, "inc", b"", expiry=now - 2 * MINUTE))
    elif corruption == "far_future":
        ingress.append(signed_envelope(b"user", callee, "inc", b"", expiry=now + 10 * MINUTE))
    elif corruption == "duplicate":
        extra = signed_envelope(b"user", callee, "inc", b"", expiry=now + MINUTE, nonce=b"dup")
        ingress += [extra, extra]
    elif corruption == "history_duplicate":
        # re-include a request the subnet already inducted (the setup's install_code)
        inducted = [m for m in d.sent if b.state.ingress_history.get(message_id(m)) is not None]
        ingress.append(inducted[flip % len(inducted)])
    elif corruption == "forged_slice":
        forged = bytearray(good_slice)
        i = flip % len(forged)
        forged[i] ^= 1 << (flip % 8)
        xnet = [XNetSlice(a.id.raw, bytes(forged))]
    elif corruption == "gap_slice":
        late = a.slice_for(b.id, 1 + flip % 2, 10)
        assert late is not None
        xnet = [XNetSlice(a.id.raw, late)]
    elif corruption == "wrong_subnet_canister":
        other = a.state.topology.canister_ranges(a.id)[0].start
        ingress.append(envelope(other, "inc", b"", expiry=now + MINUTE))
    batch = BatchPayload(tuple(ingress), tuple(xnet))
    if corruption == "forged_slice" and bytes(xnet[0].certified_slice) == good_slice:
        return  # pragma: no cover - a flip always changes the bytes
    try:
        builder.validate_batch(height, now, batch, [])
    except InvalidArtifact:
        return
    if corruption == "forged_slice":
        # a bit flip in an unsigned part of the encoding (e.g. the CBOR self-describe
        # tag) may still decode to the same verified content: it must induct as such
        after = execute_batch(b.state, make_batch(height, now, (), batch.xnet), b.config)
        honest_after = execute_batch(
            b.state, make_batch(height, now, (), honest_batch.xnet), b.config
        )
        assert after.stream_to(a.id).header == honest_after.stream_to(a.id).header
        return
    pytest.fail(f"{corruption} was accepted")


def message_id(data: bytes) -> bytes:
    """Return the request id of an envelope."""
    return parse_call_envelope(data).message_id


# ---------------------------------------------------------------------------- fairness


@FAST
@given(
    loads=st.lists(st.integers(0, 6), min_size=2, max_size=4),
    per_round=st.integers(1, 4),
)
def test_no_canister_starves(loads: list[int], per_round: int) -> None:
    """With a round budget of k messages, every busy canister runs within a few rounds,
    and all messages are eventually executed exactly once, in order per canister."""
    from icp.execution.executor import execute_query
    from icp.messaging.config import SchedulerConfig

    (sub,) = make_net(1, engine())
    d = Driver([sub])
    ids = []
    for _ in loads:
        cid = d.create_canister(sub.id)
        d.install(sub.id, cid, counter())
        ids.append(cid)
    overhead = SchedulerConfig().instruction_overhead_per_execution
    sub.config = attrs.evolve(
        sub.config,
        scheduler=SchedulerConfig(max_instructions_per_round=overhead * per_round - 1),
    )
    mids = {
        cid: [d.submit(sub.id, cid, "inc", b"") for _ in range(n)]
        for cid, n in zip(ids, loads, strict=True)
    }
    busy = [cid for cid, n in zip(ids, loads, strict=True) if n]
    first_run: dict[Principal, int] = {}
    rounds = 0
    while sub.state.messaging.pending_messages() or d.pending[sub.id]:
        d.step()
        rounds += 1
        for cid in busy:
            canister = sub.state.canister(cid)
            assert canister is not None
            value = execute_query(canister, b"\x04", "get", b"", sub.state.time, sub.config.env)
            assert isinstance(value, Reply)
            if int.from_bytes(value.data, "little") > 100:
                first_run.setdefault(cid, rounds)
        assert rounds <= sum(loads) + 1
    # no starvation: a canister that has not run yet outranks every one that has, so
    # each round at least one new canister runs
    for cid in busy:
        assert first_run[cid] <= len(busy)
    for ms in mids.values():
        replies = [d.status(sub.id, m) for m in ms]
        assert [int.from_bytes(r.reply or b"", "little") for r in replies if r] == list(
            range(101, 101 + len(ms))
        )


@settings(max_examples=8, deadline=None, derandomize=True)
@given(
    calls=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=1, max_size=12),
    schedule=st.lists(st.lists(st.integers(0, 3), min_size=3, max_size=3), min_size=5, max_size=15),
)
def test_three_subnets_bidirectional_exactly_once(
    calls: list[tuple[int, int]], schedule: list[list[int]]
) -> None:
    """Relays on three subnets ping each other in all directions; per stream in order,
    each callee serves every call exactly once (slice size 0 = no delivery)."""
    from tests.messaging.helpers import forward_arg, relay_wasm

    subs = make_net(3, engine())
    d = Driver(subs)
    relays = []
    for sub in subs:
        relay = d.create_canister(sub.id)
        d.install(sub.id, relay, relay_wasm())
        relays.append(relay)
    sent: list[tuple[int, int, bytes]] = []
    for src, dst in calls:
        if src == dst:
            dst = (dst + 1) % 3
        mid = d.submit(subs[src].id, relays[src], "forward", forward_arg(relays[dst], "ping", b""))
        sent.append((src, dst, mid))
    for sizes in schedule:
        d.time = Time(d.time + NANOS_PER_SECOND)
        for i, sub in enumerate(subs):
            xnet = []
            for j, other in enumerate(subs):
                if j == i or sizes[j] == 0:
                    continue
                start = sub.state.stream_to(other.id).header.signals_end
                data = other.slice_for(sub.id, start, sizes[j])
                if data is not None:
                    xnet.append(XNetSlice(other.id.raw, data))
            ingress = tuple(d.pending[sub.id])
            d.pending[sub.id] = []
            batch = make_batch(sub.state.height + 1, d.time, ingress, tuple(xnet))
            sub.state = execute_batch(sub.state, batch, sub.config)
        for sub in subs:
            sub.certify()
    for _ in range(8):
        d.step()
    served: dict[int, list[int]] = {0: [], 1: [], 2: []}
    per_pair: dict[tuple[int, int], list[int]] = {}
    for src, dst, mid in sent:
        status = d.status(subs[src].id, mid)
        assert status is not None and status.reply is not None, status
        assert status.reply[:1] == b"\x01"
        count = int.from_bytes(status.reply[1:], "little")
        served[dst].append(count)
        per_pair.setdefault((src, dst), []).append(count)
    for dst, counts in served.items():
        assert sorted(counts) == list(range(1, len(counts) + 1)), dst  # exactly once
    for counts in per_pair.values():
        assert counts == sorted(counts)  # in order per stream

"""execute_batch: the per-height transition, and two subnets calling each other over XNet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from icp.candid import Nat, Text, decode, encode
from icp.consensus.artifacts import XNetSlice
from icp.crypto.hashtree import LookupStatus, lookup_path
from icp.execution.management import TopUpArgs
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.messaging.config import SchedulerConfig
from icp.messaging.routing import RoutingTable
from icp.messaging.state_machine import execute_batch, update_ingress_history
from icp.principal import Principal
from icp.state.checkpoint import load_checkpoint, state_hash, write_checkpoint
from icp.state.ingress_history import IngressHistory, IngressStatus, RequestStatus
from icp.state.replicated_state import StateError
from icp.state.tree import StateTreeBuilder
from icp.types import NANOS_PER_SECOND, RegistryVersion, Time
from tests.messaging.helpers import (
    Driver,
    canister_range,
    envelope,
    forward_arg,
    make_batch,
    make_net,
    relay_wasm,
)


def test_batch_sets_height_and_time(engine: WasmtimeEngine) -> None:
    (sub,) = make_net(1, engine)
    state = execute_batch(sub.state, make_batch(1, sub.state.time + 5), sub.config)
    assert (state.height, state.time) == (1, sub.state.time + 5)
    with pytest.raises(StateError):
        execute_batch(state, make_batch(1, state.time + 5), sub.config)


def test_batch_for_another_subnet_is_refused(engine: WasmtimeEngine) -> None:
    a, b = make_net(2, engine)
    with pytest.raises(StateError):
        execute_batch(a.state, make_batch(1, a.state.time), b.config)


def test_ingress_to_counter_is_replied_in_the_same_batch(
    engine: WasmtimeEngine, counter_wat: bytes
) -> None:
    (sub,) = make_net(1, engine)
    d = Driver([sub])
    canister = d.create_canister(sub.id)
    d.install(sub.id, canister, counter_wat)
    mids = [d.submit(sub.id, canister, "inc", b"") for _ in range(3)]
    d.step()
    replies = [d.status(sub.id, m) for m in mids]
    assert [int.from_bytes(r.reply or b"", "little") for r in replies if r] == [101, 102, 103]
    assert all(r is not None and r.effective_canister_id == canister.raw for r in replies)


def test_trap_rejects_and_keeps_only_the_charge(engine: WasmtimeEngine, counter_wat: bytes) -> None:
    (sub,) = make_net(1, engine)
    d = Driver([sub])
    canister = d.create_canister(sub.id)
    d.install(sub.id, canister, counter_wat)
    before = sub.state.canister(canister)
    assert before is not None
    mid = d.submit(sub.id, canister, "inc_then_trap", b"")
    d.step()
    status = d.status(sub.id, mid)
    assert status is not None and status.status is RequestStatus.REJECTED
    assert status.reject_code == 5 and status.error_code == "IC0503"
    after = sub.state.canister(canister)
    assert after is not None and after.cycles < before.cycles
    probe = d.submit(sub.id, canister, "inc", b"")
    d.step()
    reply = d.status(sub.id, probe)
    assert reply is not None and reply.reply == (101).to_bytes(8, "little")


def test_ingress_history_done_then_pruned() -> None:
    now = Time(10_000)
    history = IngressHistory()
    replied = IngressStatus(RequestStatus.REPLIED, Time(9_000), reply=b"x", sender=b"\x04")
    history = history.set_status(b"a" * 32, replied)
    history = history.set_status(b"b" * 32, attrs.evolve(replied, expiry=Time(5_000)))
    history = history.set_status(b"c" * 32, attrs.evolve(replied, expiry=Time(20_000)))
    out = update_ingress_history(history, now, permitted_drift=2_000)
    a = out.get(b"a" * 32)
    assert a is not None and a.status is RequestStatus.DONE and a.reply is None
    assert a.sender == b"\x04"
    assert out.get(b"b" * 32) is None  # could never be inducted again: pruned
    c = out.get(b"c" * 32)
    assert c is not None and c.status is RequestStatus.REPLIED


def test_duplicate_ingress_executes_once_across_batches(
    engine: WasmtimeEngine, counter_wat: bytes
) -> None:
    (sub,) = make_net(1, engine)
    d = Driver([sub])
    canister = d.create_canister(sub.id)
    d.install(sub.id, canister, counter_wat)
    data = envelope(canister, "inc", b"", expiry=d.time + 60 * NANOS_PER_SECOND, nonce=b"n")
    for _ in range(3):
        d.pending[sub.id] = [data, data]
        d.step()
    get = envelope(canister, "inc", b"", expiry=d.time + 60 * NANOS_PER_SECOND, nonce=b"m")
    d.pending[sub.id] = [get]
    d.step()
    from icp.messaging.ingress import parse_call_envelope

    status = d.status(sub.id, parse_call_envelope(get).message_id)
    assert status is not None and status.reply == (102).to_bytes(8, "little")


def test_two_subnets_call_each_other_over_xnet(
    engine: WasmtimeEngine, motoko: Callable[[str], bytes]
) -> None:
    a, b = make_net(2, engine)
    d = Driver([a, b])
    caller = d.create_canister(a.id)
    callee = d.create_canister(b.id)
    d.install(a.id, caller, motoko("caller"))
    d.install(b.id, callee, motoko("counter"))
    assert a.state.hosts(caller) and b.state.hosts(callee)
    mid = d.submit(a.id, caller, "call_inc", encode([Text], [callee.to_text()]))
    d.step()
    status = d.status(a.id, mid)
    assert status is not None and status.status is RequestStatus.PROCESSING
    assert a.state.stream_to(b.id).header.end == 1  # the request left through the stream
    for _ in range(3):
        d.step()
    status = d.status(a.id, mid)
    assert status is not None and status.reply is not None
    assert decode(status.reply, [Nat]) == [1]
    # signals garbage-collected both streams
    assert a.state.stream_to(b.id).header.begin == 1
    assert b.state.stream_to(a.id).header.begin == 1
    # a trap in the callee comes back as a reject through the caller's reject callback
    mid = d.submit(a.id, caller, "call_failing", encode([Text], [callee.to_text()]))
    for _ in range(4):
        d.step()
    status = d.status(a.id, mid)
    assert status is not None and status.reply is not None
    assert decode(status.reply, [Text]) == ["rejected"]


def test_call_to_nonexistent_remote_canister_is_rejected(
    engine: WasmtimeEngine, motoko: Callable[[str], bytes]
) -> None:
    a, b = make_net(2, engine)
    d = Driver([a, b])
    caller = d.create_canister(a.id)
    d.install(a.id, caller, motoko("caller"))
    missing = b.state.topology.canister_ranges(b.id)[0].start  # in b's range, never created
    mid = d.submit(a.id, caller, "call_failing", encode([Text], [missing.to_text()]))
    for _ in range(4):
        d.step()
    status = d.status(a.id, mid)
    assert status is not None and status.reply is not None
    assert decode(status.reply, [Text]) == ["rejected"]
    assert b.state.stream_to(a.id).header.end == 1  # b answered with a reject response


def test_forged_slice_is_skipped_at_induction(
    engine: WasmtimeEngine, motoko: Callable[[str], bytes]
) -> None:
    a, b = make_net(2, engine)
    d = Driver([a, b])
    caller = d.create_canister(a.id)
    callee = d.create_canister(b.id)
    d.install(a.id, caller, motoko("caller"))
    d.install(b.id, callee, motoko("counter"))
    d.submit(a.id, caller, "call_inc", encode([Text], [callee.to_text()]))
    d.step()
    good = a.slice_for(b.id, 0, 10)
    assert good is not None
    forged = bytearray(good)
    forged[-5] ^= 1  # corrupt the signature
    batch = make_batch(b.state.height + 1, d.time + 1, (), (XNetSlice(a.id.raw, bytes(forged)),))
    after = execute_batch(b.state, batch, b.config)
    assert after.stream_to(a.id).header.signals_end == 0  # nothing inducted
    batch = make_batch(b.state.height + 1, d.time + 1, (), (XNetSlice(a.id.raw, good),))
    after = execute_batch(b.state, batch, b.config)
    assert after.stream_to(a.id).header.signals_end == 1


def test_same_batches_same_state_hash(engine: WasmtimeEngine, counter_wat: bytes) -> None:
    roots = []
    for _ in range(2):
        (sub,) = make_net(1, engine)
        d = Driver([sub])
        canister = d.create_canister(sub.id)
        d.install(sub.id, canister, counter_wat)
        for i in range(3):
            d.submit(sub.id, canister, "inc" if i % 2 else "inc_then_trap", b"")
            d.step()
        roots.append(StateTreeBuilder().build(sub.state).digest())
    assert roots[0] == roots[1]


def test_checkpoint_restart_keeps_queues_and_converges(
    engine: WasmtimeEngine, counter_wat: bytes, tmp_path: Path
) -> None:
    """A replica restored from a checkpoint with queued messages continues identically."""
    (sub,) = make_net(1, engine)
    d = Driver([sub])
    canister = d.create_canister(sub.id)
    d.install(sub.id, canister, counter_wat)
    sub.config = attrs.evolve(
        sub.config, scheduler=SchedulerConfig(max_instructions_per_round=5_000_000)
    )
    mids = [d.submit(sub.id, canister, "inc", b"") for _ in range(8)]
    d.step()
    assert sub.state.messaging.pending_messages() == 5
    ref = write_checkpoint(tmp_path, sub.state)
    restored = load_checkpoint(ref.path, engine=engine).state
    assert state_hash(restored) == state_hash(sub.state)
    assert restored.messaging == sub.state.messaging
    copy = sub.state
    sub_copy_state = restored
    for h in range(2):
        batch = make_batch(copy.height + 1, copy.time + NANOS_PER_SECOND)
        copy = execute_batch(copy, batch, sub.config)
        sub_copy_state = execute_batch(sub_copy_state, batch, sub.config)
        assert state_hash(copy) == state_hash(sub_copy_state), h
    replies = [sub_copy_state.ingress_history.get(m) for m in mids]
    assert [int.from_bytes(r.reply or b"", "little") for r in replies if r] == list(range(101, 109))


def test_management_call_is_routed_to_the_target_canisters_subnet(
    engine: WasmtimeEngine,
) -> None:
    """A canister's call to aaaaa-aa about a canister on another subnet runs there."""
    a, b = make_net(2, engine)
    d = Driver([a, b])
    relay = d.create_canister(a.id)
    d.install(a.id, relay, relay_wasm())
    target = d.create_canister(b.id)
    before = b.state.canister(target)
    assert before is not None
    top_up = encode([TopUpArgs], [{"canister_id": target, "amount": 12_345}])
    mid = d.submit(
        a.id,
        relay,
        "forward",
        forward_arg(Principal.management_canister(), "provisional_top_up_canister", top_up),
    )
    for _ in range(4):
        d.step()
    status = d.status(a.id, mid)
    assert status is not None and status.reply is not None
    assert status.reply[:1] == b"\x01", status.reply  # replied, not "canister not found"
    after = b.state.canister(target)
    assert after is not None and after.cycles == before.cycles + 12_345


def test_relay_ping_across_subnets_and_to_missing_canister(engine: WasmtimeEngine) -> None:
    a, b = make_net(2, engine)
    d = Driver([a, b])
    relay = d.create_canister(a.id)
    pong = d.create_canister(b.id)
    d.install(a.id, relay, relay_wasm())
    d.install(b.id, pong, relay_wasm())
    missing = Principal.from_canister_index(int.from_bytes(pong.raw[:8], "big") + 50)
    ping = d.submit(a.id, relay, "forward", forward_arg(pong, "ping", b""))
    lost = d.submit(a.id, relay, "forward", forward_arg(missing, "ping", b""))
    for _ in range(4):
        d.step()
    ok, rejected = d.status(a.id, ping), d.status(a.id, lost)
    assert ok is not None and ok.reply == b"\x01" + (1).to_bytes(8, "little")
    assert rejected is not None and rejected.reply is not None
    assert rejected.reply[:1] == b"\x03" and b"not found" in rejected.reply


def test_ingress_history_visits_only_newly_expired_entries() -> None:
    replied = IngressStatus(RequestStatus.REPLIED, Time(5_000), reply=b"x")
    history = IngressHistory().set_status(b"a" * 32, replied)
    history = history.set_status(b"b" * 32, attrs.evolve(replied, expiry=Time(9_000)))
    out = update_ingress_history(history, Time(10_000), permitted_drift=8_000, since=8_000)
    a, b = out.get(b"a" * 32), out.get(b"b" * 32)
    assert a is not None and a.status is RequestStatus.REPLIED  # expired earlier: kept
    assert b is not None and b.status is RequestStatus.DONE


def test_each_batch_takes_the_topology_of_its_registry_version(engine: WasmtimeEngine) -> None:
    """A registry change reaches the state at the batch that carries its version."""
    a, b = make_net(2, engine)
    one_subnet = attrs.evolve(
        a.state.topology,
        subnets=(a.state.own_subnet,),
        routing_table=RoutingTable(((canister_range(0), a.id),)),
    )
    by_version = {RegistryVersion(1): one_subnet, RegistryVersion(2): a.state.topology}
    config = attrs.evolve(a.config, topology_at=by_version.__getitem__)
    state = a.state.with_topology(one_subnet)
    state = execute_batch(state, make_batch(1, state.time + 1), config)
    assert state.topology is one_subnet  # unchanged version: the same object, no copy
    assert state.topology.routing_table.route(canister_range(1).start) is None
    two = attrs.evolve(make_batch(2, state.time + 1), registry_version=RegistryVersion(2))
    state = execute_batch(state, two, config)
    assert state.topology is by_version[RegistryVersion(2)]
    assert state.topology.routing_table.route(canister_range(1).start) == b.id
    # the certified tree now lists the other subnet (its key, its canister ranges)
    tree = StateTreeBuilder().build(state)
    found = lookup_path(tree, [b"subnet", b.id.raw, b"public_key"])
    assert (found.status, found.value) == (LookupStatus.FOUND, b.key.to_der())

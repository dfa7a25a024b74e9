"""Induction of ingress (the IC's checks, fees, statuses) and of XNet slices (signals)."""

from __future__ import annotations

import attrs

from icp.candid import encode
from icp.execution.canister import CanisterStatus
from icp.execution.cycles import ingress_induction_cost
from icp.execution.executor import CanisterRequest, CanisterResponse
from icp.execution.management import CanisterIdRecord
from icp.execution.system_api import Reject
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.messaging.induction import effective_canister_id, induct_ingress, induct_slice
from icp.messaging.ingress import parse_call_envelope
from icp.messaging.xnet import Stream
from icp.principal import Principal
from icp.state.ingress_history import RequestStatus
from icp.types import NANOS_PER_SECOND
from tests.messaging.helpers import ANON, Driver, envelope, make_net

MINUTE = 60 * NANOS_PER_SECOND


def test_checks_and_statuses(engine: WasmtimeEngine, counter_wat: bytes) -> None:
    (sub,) = make_net(1, engine)
    d = Driver([sub])
    running = d.create_canister(sub.id)
    stopped = d.create_canister(sub.id)
    stopping = d.create_canister(sub.id)
    poor = d.create_canister(sub.id, cycles=10)
    state = sub.state
    for cid, status in ((stopped, CanisterStatus.STOPPED), (stopping, CanisterStatus.STOPPING)):
        c = state.canister(cid)
        assert c is not None
        state = state.with_canister(attrs.evolve(c, status=status))
    missing = Principal.from_canister_index(int.from_bytes(running.raw[:8], "big") + 100)
    now = state.time
    datas = {
        "ok": envelope(running, "inc", b"", expiry=now + MINUTE, nonce=b"1"),
        "stopped": envelope(stopped, "inc", b"", expiry=now + MINUTE),
        "stopping": envelope(stopping, "inc", b"", expiry=now + MINUTE),
        "poor": envelope(poor, "inc", b"", expiry=now + MINUTE),
        "missing": envelope(missing, "inc", b"", expiry=now + MINUTE),
        "expired": envelope(running, "inc", b"", expiry=now - 2 * MINUTE),
    }
    messages = {k: parse_call_envelope(v) for k, v in datas.items()}
    after = induct_ingress(state, list(messages.values()), sub.config)
    h = after.ingress_history
    ok = h.get(messages["ok"].message_id)
    assert ok is not None and ok.status is RequestStatus.RECEIVED
    assert ok.sender == ANON.raw and ok.effective_canister_id == running.raw
    expected = {
        "stopped": (5, "IC0508"),
        "stopping": (5, "IC0509"),
        "poor": (2, "IC0207"),
        "missing": (3, "IC0301"),
    }
    for name, (code, error) in expected.items():
        st = h.get(messages[name].message_id)
        assert st is not None and st.status is RequestStatus.REJECTED, name
        assert (st.reject_code, st.error_code) == (code, error), name
        assert st.sender == ANON.raw
    assert h.get(messages["expired"].message_id) is None
    # the fee is charged once, at induction, to the receiving canister
    fee = ingress_induction_cost(sub.config.env.fees, len(datas["ok"]), sub.config.subnet_size)
    before, charged = state.canister(running), after.canister(running)
    assert before is not None and charged is not None
    assert before.cycles - charged.cycles == fee
    assert len(after.messaging.queues_of(running.raw).ingress) == 1
    # inducting the same message again changes nothing (dedup by ingress history)
    again = induct_ingress(after, [messages["ok"]], sub.config)
    assert again.messaging == after.messaging and again.ingress_history == after.ingress_history


def test_management_call_effective_canister_pays(engine: WasmtimeEngine) -> None:
    (sub,) = make_net(1, engine)
    d = Driver([sub])
    target = d.create_canister(sub.id)
    arg = encode([CanisterIdRecord], [{"canister_id": target}])
    data = envelope(Principal.management_canister(), "canister_status", arg, expiry=d.time + MINUTE)
    message = parse_call_envelope(data)
    assert effective_canister_id(message) == target.raw
    after = induct_ingress(sub.state, [message], sub.config)
    status = after.ingress_history.get(message.message_id)
    assert status is not None and status.effective_canister_id == target.raw
    before_c, after_c = sub.state.canister(target), after.canister(target)
    assert before_c is not None and after_c is not None and after_c.cycles < before_c.cycles
    assert len(after.messaging.management) == 1


def test_signals_collect_garbage_and_reject_signals_become_rejects(
    engine: WasmtimeEngine,
) -> None:
    a, b = make_net(2, engine)
    d = Driver([a, b])
    caller = d.create_canister(a.id)
    callee = b.state.topology.canister_ranges(b.id)[0].start
    requests = [CanisterRequest(caller.raw, callee.raw, "m", b"", 5, i) for i in range(3)]
    stream: Stream[object] = Stream()
    for r in requests:
        stream = stream.push(r)
    a.state = a.state.with_stream(b.id, stream)
    # b inducted messages 0..2 of a's stream and rejected #1 (e.g. its canister migrated)
    b.state = b.state.with_stream(a.id, Stream().with_signals(3, [1]))
    b.certify()
    data = b.slice_for(a.id, 0, 10)
    assert data is not None
    after = induct_slice(a.state, b.id, data, a.config)
    assert after.stream_to(b.id).header.begin == 3  # garbage-collected
    queue = after.messaging.queues_of(caller.raw).input
    assert len(queue) == 1 and isinstance(queue[0], CanisterResponse)
    assert queue[0].callback_id == 1 and queue[0].refund == 5
    assert isinstance(queue[0].response, Reject)

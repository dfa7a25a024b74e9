"""Stream building: local delivery, XNet streams, back-pressure, unknown destinations."""

from __future__ import annotations

from icp.execution.executor import CanisterRequest, CanisterResponse, IngressResult
from icp.execution.system_api import Reject, Reply
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.messaging.queues import MANAGEMENT_CANISTER
from icp.messaging.stream_builder import route_outputs
from icp.principal import Principal
from icp.state.ingress_history import IngressStatus, RequestStatus
from icp.types import Time
from tests.messaging.helpers import Driver, make_net


def test_outputs_go_to_queues_streams_and_history(engine: WasmtimeEngine) -> None:
    a, b = make_net(2, engine)
    d = Driver([a, b])
    local = d.create_canister(a.id)
    remote = b.state.topology.canister_ranges(b.id)[0].start
    nowhere = Principal.from_canister_index(7)
    missing_local = a.state.topology.canister_ranges(a.id)[0].end
    history = a.state.ingress_history.set_status(
        b"m" * 32, IngressStatus(RequestStatus.RECEIVED, Time(a.state.time + 10), sender=b"\x04")
    )
    state = a.state.with_ingress_history(history)
    outputs = [
        CanisterRequest(local.raw, local.raw, "self", b"", 0, 1),
        CanisterRequest(local.raw, remote.raw, "far", b"", 3, 2),
        CanisterRequest(local.raw, nowhere.raw, "void", b"", 4, 3),
        CanisterRequest(local.raw, missing_local.raw, "gone", b"", 5, 4),
        CanisterRequest(local.raw, MANAGEMENT_CANISTER, "raw_rand", b"", 0, 5),
        CanisterResponse(remote.raw, local.raw, 9, Reply(b"ok"), 0),
        IngressResult(b"m" * 32, Reply(b"done")),
    ]
    after = route_outputs(state, outputs, a.config)
    queue = after.messaging.queues_of(local.raw).input
    assert queue[0] == outputs[0]
    rejects = [m for m in queue[1:] if isinstance(m, CanisterResponse)]
    assert [(r.callback_id, r.refund) for r in rejects] == [(3, 4), (4, 5)]
    assert all(isinstance(r.response, Reject) and r.response.code == 3 for r in rejects)
    stream = after.stream_to(b.id)
    assert stream.messages == (outputs[1], outputs[5])
    assert after.messaging.management == (outputs[4],)
    status = after.ingress_history.get(b"m" * 32)
    assert status is not None and status.reply == b"done" and status.sender == b"\x04"


def test_back_pressure_rejects_requests_but_never_responses(engine: WasmtimeEngine) -> None:
    a, b = make_net(2, engine, max_stream_messages=2)
    d = Driver([a, b])
    local = d.create_canister(a.id)
    remote = b.state.topology.canister_ranges(b.id)[0].start
    requests = [CanisterRequest(local.raw, remote.raw, "m", b"", 1, i) for i in range(4)]
    responses = [CanisterResponse(remote.raw, local.raw, i, Reply(b""), 0) for i in range(3)]
    after = route_outputs(a.state, [*requests, *responses], a.config)
    stream = after.stream_to(b.id)
    assert stream.messages == (requests[0], requests[1], *responses)
    queue = after.messaging.queues_of(local.raw).input
    assert [m.callback_id for m in queue] == [2, 3]
    assert all(isinstance(m, CanisterResponse) and isinstance(m.response, Reject) for m in queue)


def test_full_input_queue_rejects_requests_per_sender(engine: WasmtimeEngine) -> None:
    (sub,) = make_net(1, engine, max_queue_requests=2)
    d = Driver([sub])
    x, y, z = (d.create_canister(sub.id) for _ in range(3))
    from_x = [CanisterRequest(x.raw, z.raw, "m", b"", 1, i) for i in range(3)]
    from_y = [CanisterRequest(y.raw, z.raw, "m", b"", 1, 10)]
    responses = [CanisterResponse(z.raw, x.raw, 20 + i, Reply(b""), 0) for i in range(3)]
    after = route_outputs(sub.state, [*from_x, *from_y, *responses], sub.config)
    # z holds two requests from x, one from y; responses to z are never refused
    z_queue = after.messaging.queues_of(z.raw).input
    assert z_queue == (from_x[0], from_x[1], from_y[0], *responses)
    x_queue = after.messaging.queues_of(x.raw).input
    assert len(x_queue) == 1 and isinstance(x_queue[0], CanisterResponse)
    assert x_queue[0].callback_id == 2 and isinstance(x_queue[0].response, Reject)
    assert x_queue[0].response.error_code == "IC0201" and x_queue[0].response.code == 2

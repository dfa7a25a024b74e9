"""The execution round: budget, fairness, compute allocation, tasks, local calls, aaaaa-aa."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from icp.candid import Nat, Text, decode, encode
from icp.execution.management import ProvisionalCreateArgs
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.messaging.config import SchedulerConfig
from icp.principal import Principal
from icp.state.ingress_history import IngressStatus, RequestStatus
from tests.messaging.helpers import Driver, make_net, management_call, query

ONE_MESSAGE = 2_000_000  # the per-execution overhead: the budget below admits 3 messages


def small_rounds(**kw: int) -> SchedulerConfig:
    return SchedulerConfig(max_instructions_per_round=5_000_000, **kw)


def counter_net(
    engine: WasmtimeEngine, wasm: bytes, n: int = 1, scheduler: SchedulerConfig | None = None
) -> tuple[Driver, list[Principal]]:
    (sub,) = make_net(1, engine)
    d = Driver([sub])
    ids = []
    for _ in range(n):
        cid = d.create_canister(sub.id)
        d.install(sub.id, cid, wasm)
        ids.append(cid)
    if scheduler is not None:
        sub.config = attrs.evolve(sub.config, scheduler=scheduler)
    return d, ids


def test_round_budget_carries_messages_over(engine: WasmtimeEngine, counter_wat: bytes) -> None:
    d, (c,) = counter_net(engine, counter_wat, scheduler=small_rounds())
    sub = d.subnets[0]
    mids = [d.submit(sub.id, c, "inc", b"") for _ in range(7)]
    d.step()
    done = [d.status(sub.id, m) for m in mids]
    replied = [s for s in done if s is not None and s.status is RequestStatus.REPLIED]
    assert len(replied) == 3
    assert len(sub.state.messaging.queues_of(c.raw).ingress) == 4
    d.step()
    d.step()
    replies = [d.status(sub.id, m) for m in mids]
    assert [int.from_bytes(s.reply or b"", "little") for s in replies if s] == list(range(101, 108))
    assert sub.state.messaging.pending_messages() == 0


def test_canisters_take_turns_when_the_budget_is_short(
    engine: WasmtimeEngine, counter_wat: bytes
) -> None:
    d, (x, y) = counter_net(engine, counter_wat, n=2, scheduler=small_rounds())
    sub = d.subnets[0]
    for _ in range(6):
        d.submit(sub.id, x, "inc", b"")
        d.submit(sub.id, y, "inc", b"")
    progress = []
    for _ in range(4):
        d.step()
        progress.append(
            (
                int.from_bytes(query(sub, x, "get"), "little") - 100,
                int.from_bytes(query(sub, y, "get"), "little") - 100,
            )
        )
    first = progress[0]
    assert sorted(first) == [0, 3]  # one canister used the whole round...
    second = progress[1]
    assert second == (3, 3)  # ...the other goes first in the next one
    assert progress[-1] == (6, 6)


def test_compute_allocation_goes_first(engine: WasmtimeEngine, counter_wat: bytes) -> None:
    d, (x, y) = counter_net(engine, counter_wat, n=2, scheduler=small_rounds())
    sub = d.subnets[0]
    late = max(x, y)  # would run second by id order
    canister = sub.state.canister(late)
    assert canister is not None
    settings = attrs.evolve(canister.settings, compute_allocation=50)
    sub.state = sub.state.with_canister(attrs.evolve(canister, settings=settings))
    for _ in range(3):
        d.submit(sub.id, x, "inc", b"")
        d.submit(sub.id, y, "inc", b"")
    d.step()
    assert int.from_bytes(query(sub, late, "get"), "little") == 103
    assert int.from_bytes(query(sub, min(x, y), "get"), "little") == 100


def test_global_timer_fires_in_a_later_round(engine: WasmtimeEngine, counter_wat: bytes) -> None:
    d, (c,) = counter_net(engine, counter_wat)
    sub = d.subnets[0]
    d.submit(sub.id, c, "arm_timer", b"")
    d.step(advance=1)
    assert query(sub, c, "fired") == (0).to_bytes(8, "little")
    d.step(advance=2_000_000_000)
    assert query(sub, c, "fired") == (1).to_bytes(8, "little")
    d.step(advance=2_000_000_000)
    assert query(sub, c, "fired") == (1).to_bytes(8, "little")  # one-shot


def test_local_call_completes_within_one_batch(
    engine: WasmtimeEngine, motoko: Callable[[str], bytes]
) -> None:
    (sub,) = make_net(1, engine)
    d = Driver([sub])
    caller = d.create_canister(sub.id)
    callee = d.create_canister(sub.id)
    d.install(sub.id, caller, motoko("caller"))
    d.install(sub.id, callee, motoko("counter"))
    mid = d.submit(sub.id, caller, "call_inc", encode([Text], [callee.to_text()]))
    d.step()
    status = d.status(sub.id, mid)
    assert status is not None and status.reply is not None
    assert decode(status.reply, [Nat]) == [1]
    assert not sub.state.streams  # nothing left the subnet


def test_specified_id_must_be_in_the_subnet_ranges(engine: WasmtimeEngine) -> None:
    a, b = make_net(2, engine)
    d = Driver([a, b])

    def create(specified: Principal) -> IngressStatus:
        arg = encode(
            [ProvisionalCreateArgs],
            [{"amount": None, "settings": None, "specified_id": specified,
              "sender_canister_version": None}],
        )  # fmt: skip
        return management_call(d, a.id, "provisional_create_canister_with_cycles", arg)

    mine = a.state.topology.canister_ranges(a.id)[0].start
    theirs = b.state.topology.canister_ranges(b.id)[0].start
    ok = create(Principal.from_canister_index(int.from_bytes(mine.raw[:8], "big") + 7))
    assert ok.status is RequestStatus.REPLIED
    refused = create(theirs)
    assert refused.status is RequestStatus.REJECTED
    assert "not hosted by subnet" in (refused.reject_message or "")
    assert (refused.reject_code, refused.error_code) == (4, "IC0405")
    assert a.state.canister(theirs) is None


def test_unknown_management_method_is_rejected(engine: WasmtimeEngine) -> None:
    (sub,) = make_net(1, engine)
    d = Driver([sub])
    status = management_call(d, sub.id, "no_such_method", encode([], []))
    assert status.status is RequestStatus.REJECTED and status.error_code == "IC0407"


def test_motoko_recurring_timer_ticks_with_batch_time(
    engine: WasmtimeEngine, motoko: Callable[[str], bytes]
) -> None:
    (sub,) = make_net(1, engine)
    d = Driver([sub])
    ticker = d.create_canister(sub.id)
    d.install(sub.id, ticker, motoko("timer"))
    d.step(advance=5_000_000_000)
    assert decode(query(sub, ticker, "get", encode([], [])), [Nat]) == [0]
    for _ in range(4):
        d.step(advance=11_000_000_000)  # the timer job runs through a self-call
    ticks = decode(query(sub, ticker, "get", encode([], [])), [Nat])[0]
    assert 3 <= ticks <= 4


def test_messages_queued_for_a_deleted_canister_are_rejected(
    engine: WasmtimeEngine, counter_wat: bytes
) -> None:
    from icp.execution.management import CanisterIdRecord

    d, (c,) = counter_net(engine, counter_wat)
    sub = d.subnets[0]
    mgmt = Principal.management_canister()
    target = encode([CanisterIdRecord], [{"canister_id": c}])
    incs = [d.submit(sub.id, c, "inc", b"") for _ in range(3)]
    stop = d.submit(sub.id, mgmt, "stop_canister", target)
    delete = d.submit(sub.id, mgmt, "delete_canister", target)
    d.step()  # management calls run first in the round: the canister is gone
    for mid in (stop, delete):
        status = d.status(sub.id, mid)
        assert status is not None and status.status is RequestStatus.REPLIED
    assert sub.state.canister(c) is None
    for mid in incs:
        status = d.status(sub.id, mid)
        assert status is not None and status.status is RequestStatus.REJECTED
        assert (status.reject_code, status.error_code) == (3, "IC0301")
    assert sub.state.messaging.pending_messages() == 0

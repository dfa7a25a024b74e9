"""The deterministic execution round: who runs, in which order, within which budget.

Theory of operation.  One round runs per batch, after induction:

1. *Idle charges.*  Once at least a second of batch time has passed, every
   canister pays storage and compute allocation for the elapsed whole seconds
   (``charge_idle_resources``; a canister that cannot pay is uninstalled).
2. *Priorities.*  Every canister with waiting messages gains its compute
   allocation plus an equal share of the unallocated capacity
   (``100 × scheduler_cores`` in total) as *accumulated priority* (AP); canisters
   run in order of decreasing AP, ties broken by canister id.  Canisters that got
   to execute pay back what was handed out, split evenly, so a canister that was
   skipped because the budget ran out runs earlier next round (round-robin
   fairness).  AP is reset every ``priority_reset_rounds`` rounds.
3. *Tasks.*  Due global timers and heartbeats run first, in the same order.
4. *Inner iterations.*  The management canister's queue runs, then each canister
   in priority order executes messages from its queues — alternating between
   canister messages and ingress — until its queues are empty or it has used
   ``max_instructions_per_slice`` in this iteration.  Outputs are routed at once
   (``route_outputs``): local calls land in local queues and run in the next
   iteration of the *same* round, remote calls go to XNet streams, ingress
   results go to the ingress history.  Iterations repeat until nothing is left,
   the round's instruction budget is used, or ``max_inner_iterations`` is reached.
   Each execution costs the instructions it used (measured by the engine's
   counter) plus ``instruction_overhead_per_execution``.

All orders are derived from the state alone, so every replica runs the same
messages in the same order.  Differences from the IC: the round runs on one
thread (its budget is ``max_instructions_per_round``), and there is no
deterministic time slicing — a message runs to completion within its
per-message limit.

Spec: protocol digest §4.5 (deterministic scheduler, round instruction limit,
compute allocation and accumulated priority, round-robin among best-effort
canisters, inner iterations executing local messages within the round budget,
AP reset every 24·3600 rounds), §4.7 ("local inter-canister messages bypass
consensus and are executed in the same round while the round's instruction budget
lasts"); interface spec §"Heartbeat", §"Global timer".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import attrs

from icp.candid import CandidError, decode
from icp.execution.canister import CanisterOrigin, CanisterState, IngressOrigin, Origin
from icp.execution.errors import CanisterError, ErrorCode, RejectCode, WasmTrap
from icp.execution.executor import (
    CanisterRequest,
    CanisterResponse,
    IngressMessage,
    IngressResult,
    Message,
    Output,
    charge_idle_resources,
    execute_global_timer,
    execute_heartbeat,
    execute_message,
    reject_of,
)
from icp.execution.management import (
    ManagementResult,
    ProvisionalCreateArgs,
    SubnetExecutionState,
    execute_management_call,
)
from icp.execution.system_api import Reply, Response
from icp.messaging.config import SubnetExecutionConfig
from icp.messaging.queues import MANAGEMENT_CANISTER, CanisterQueues, ManagementMessage
from icp.messaging.stream_builder import (
    destination_not_found,
    record_ingress_results,
    route_outputs,
)
from icp.principal import Principal
from icp.state.ingress_history import IngressStatus, RequestStatus
from icp.state.replicated_state import ReplicatedState
from icp.types import NANOS_PER_SECOND

Execution = Callable[[CanisterState], tuple[CanisterState, list[Output]]]


class _Meter:
    """Wrap a canister runtime and add up the instructions its executions use."""

    __slots__ = ("begin", "commit", "inner", "rollback", "used")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.used = 0
        # the per-message calls, bound once (``__getattr__`` serves the rest)
        self.begin = inner.begin
        self.commit = inner.commit
        self.rollback = inner.rollback

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def run(self, export: str, args: tuple[int, ...], api: Any, limit: int) -> int:
        try:
            used: int = self.inner.run(export, args, api, limit)
        except WasmTrap:
            self.used += max(0, min(limit, api.instructions_used()))
            raise
        self.used += used
        return used

    def call_closure(self, fun: int, env: int, api: Any, limit: int) -> int:
        try:
            used: int = self.inner.call_closure(fun, env, api, limit)
        except WasmTrap:
            self.used += max(0, min(limit, api.instructions_used()))
            raise
        self.used += used
        return used


def run_metered(
    canister: CanisterState, execution: Execution
) -> tuple[CanisterState, list[Output], int]:
    """Run ``execution`` on ``canister``; return its result and the instructions it used.

    Spec: protocol digest §4.5 (the round's budget counts executed instructions).
    """
    runtime = canister.runtime
    if runtime is None:
        new, outputs = execution(canister)
        return new, outputs, 0
    meter = _Meter(runtime)
    new, outputs = execution(attrs.evolve(canister, runtime=meter))
    if new.runtime is meter:
        new = attrs.evolve(new, runtime=runtime)
    return new, outputs, meter.used


def random_tape(randomness: bytes) -> Callable[[], bytes]:
    """Return a deterministic source of 32-byte ``raw_rand`` values for one batch.

    Spec: interface spec §"IC method raw_rand" (randomness from the random tape of
    the batch's height; protocol digest §2.3).
    """
    counter = 0

    def draw() -> bytes:
        nonlocal counter
        counter += 1
        return hashlib.sha256(b"\x08raw_rand" + randomness + counter.to_bytes(8, "big")).digest()

    return draw


@attrs.define
class _Round:
    """Mutable bookkeeping of one round (local to ``execute_round``)."""

    state: ReplicatedState
    config: SubnetExecutionConfig
    tape: Callable[[], bytes]
    used: int = 0
    executed: set[bytes] = attrs.Factory(set)
    messages: int = 0
    results: dict[bytes, Response] = attrs.Factory(dict)
    """Ingress results not yet in ``state``'s ingress history (see ``flush``)."""

    @property
    def budget_left(self) -> bool:
        return self.used < self.config.scheduler.max_instructions_per_round

    def route(self, outputs: list[Output]) -> None:
        """Route outputs; ingress results are collected for one bulk history update."""
        others: list[Output] = []
        for output in outputs:
            if isinstance(output, IngressResult):
                self.results.setdefault(output.message_id, output.response)  # first wins
            else:
                others.append(output)
        if others:
            self.state = route_outputs(self.state, others, self.config)

    def flush(self) -> None:
        """Write the collected ingress results into the state's ingress history.

        Nothing in a round reads the terminal status of a request whose result is
        still collected (a request executes once), so deferring the writes to the
        end of each inner iteration changes no outcome, only the number of copies.
        """
        if self.results:
            history = record_ingress_results(self.state.ingress_history, self.results)
            self.state = self.state.with_ingress_history(history)
            self.results = {}


def charge_idle(state: ReplicatedState, config: SubnetExecutionConfig) -> ReplicatedState:
    """Charge every canister for storage and compute allocation since the last charge.

    Spec: protocol digest §4.6 (gib_storage_per_second_fee, compute allocation fee;
    duration_between_allocation_charges); digest §7.1.
    """
    messaging = state.messaging
    if messaging.charged_until == 0 or state.time < messaging.charged_until:
        return state.with_messaging(attrs.evolve(messaging, charged_until=state.time))
    seconds = (state.time - messaging.charged_until) // NANOS_PER_SECOND
    if seconds <= 0:
        return state
    outputs: list[Output] = []
    changed: list[CanisterState] = []
    for canister in state.canisters.values():
        new, outs = charge_idle_resources(canister, seconds, config.env)
        if new is not canister:
            changed.append(new)
        outputs.extend(outs)
    state = state.with_canisters(changed)
    charged = messaging.charged_until + seconds * NANOS_PER_SECOND
    state = state.with_messaging(attrs.evolve(state.messaging, charged_until=charged))
    return route_outputs(state, outputs, config)


def _active(state: ReplicatedState) -> list[bytes]:
    return [cid for cid, q in state.messaging.queues.items() if not q.is_empty()]


def _grant_priorities(
    state: ReplicatedState, config: SubnetExecutionConfig
) -> tuple[ReplicatedState, int]:
    """Add each active canister's share of the round to its accumulated priority."""
    messaging = state.messaging
    reset = (
        config.scheduler.priority_reset_rounds > 0
        and messaging.rounds % config.scheduler.priority_reset_rounds == 0
    )
    active = _active(state)
    if not active:
        return state, 0
    allocations = {}
    for cid in active:
        canister = state.canister(cid)
        allocations[cid] = canister.settings.compute_allocation if canister is not None else 0
    capacity = 100 * config.scheduler.scheduler_cores
    free = max(0, capacity - sum(allocations.values())) // len(active)
    granted = 0
    for cid in active:
        queues = messaging.queues_of(cid)
        base = 0 if reset else queues.accumulated_priority
        share = allocations[cid] + free
        granted += share
        messaging = messaging.with_queues(
            cid, attrs.evolve(queues, accumulated_priority=base + share)
        )
    return state.with_messaging(messaging), granted


def _order(state: ReplicatedState) -> list[bytes]:
    queues = state.messaging.queues
    return sorted(_active(state), key=lambda cid: (-queues[cid].accumulated_priority, cid))


def _settle_priorities(
    state: ReplicatedState, executed: set[bytes], granted: int
) -> ReplicatedState:
    """Charge the canisters that ran for the priority handed out; idle ones restart at 0."""
    messaging = state.messaging
    charge = granted // len(executed) if executed else 0
    for cid, queues in list(messaging.queues.items()):
        if queues.is_empty():
            messaging = messaging.with_queues(cid, attrs.evolve(queues, accumulated_priority=0))
        elif cid in executed:
            messaging = messaging.with_queues(
                cid, attrs.evolve(queues, accumulated_priority=queues.accumulated_priority - charge)
            )
    return state.with_messaging(messaging)


def _run_tasks(rnd: _Round, order: list[bytes]) -> None:
    """Run due global timers and heartbeats.

    Spec: interface spec §"Global timer", §"Heartbeat".
    """
    time = rnd.state.time
    env = rnd.config.env
    candidates = order + sorted(
        cid
        for cid, c in rnd.state.canisters.items()
        if cid not in set(order) and c.runtime is not None
    )
    for cid in candidates:
        canister = rnd.state.canister(cid)
        if canister is None or canister.runtime is None:
            continue
        if not (
            (canister.global_timer and time >= canister.global_timer)
            or canister.runtime.has_system_method("canister_heartbeat")
        ):
            continue

        def tasks(c: CanisterState) -> tuple[CanisterState, list[Output]]:
            c, outs = execute_global_timer(c, time, env)
            c, outs2 = execute_heartbeat(c, time, env)
            return c, outs + outs2

        new, outputs, used = run_metered(canister, tasks)
        rnd.used += used + rnd.config.scheduler.instruction_overhead_per_execution
        rnd.state = rnd.state.with_canister(new)
        rnd.route(outputs)


def _reject_orphans(rnd: _Round, cid: bytes, queues: CanisterQueues) -> None:
    """Answer the messages queued for a canister that no longer exists."""
    outputs: list[Output] = []
    for request in queues.input:
        if isinstance(request, CanisterRequest):
            outputs.append(destination_not_found(request))
    for ingress in queues.ingress:
        err = CanisterError(
            RejectCode.DESTINATION_INVALID,
            f"Canister {Principal(cid)} not found",
            ErrorCode.CANISTER_NOT_FOUND,
        )
        outputs.append(IngressResult(ingress.message_id, reject_of(err)))
    rnd.state = rnd.state.with_messaging(rnd.state.messaging.with_queues(cid, CanisterQueues()))
    rnd.route(outputs)


def _mark_processing(rnd: _Round, message: IngressMessage, outputs: list[Output]) -> None:
    if any(isinstance(o, IngressResult) and o.message_id == message.message_id for o in outputs):
        return
    history = rnd.state.ingress_history
    old = history.get(message.message_id)
    if old is not None and old.status is RequestStatus.RECEIVED:
        new = IngressStatus(
            RequestStatus.PROCESSING,
            old.expiry,
            sender=old.sender,
            effective_canister_id=old.effective_canister_id,
        )
        rnd.state = rnd.state.with_ingress_history(history.set_status(message.message_id, new))


def _executor(message: Message, time: int, config: SubnetExecutionConfig) -> Execution:
    def run(canister: CanisterState) -> tuple[CanisterState, list[Output]]:
        return execute_message(canister, message, time, config.env)

    return run


def _run_canister(rnd: _Round, cid: bytes) -> None:
    """Execute one canister's queued messages for one inner iteration.

    The canister's queues are taken out of the state for the slice (messages that
    arrive meanwhile, e.g. responses to its own local calls, queue up behind them)
    and the canister state is written back once at the end.
    """
    sched = rnd.config.scheduler
    queues = rnd.state.messaging.queues_of(cid)
    if queues.is_empty():
        return
    canister = rnd.state.canister(cid)
    if canister is None:
        _reject_orphans(rnd, cid, queues)
        return
    priority = queues.accumulated_priority
    taken = CanisterQueues(accumulated_priority=priority)
    rnd.state = rnd.state.with_messaging(rnd.state.messaging.with_queues(cid, taken))
    inputs, ingress = list(queues.input), list(queues.ingress)
    next_input = next_ingress = 0
    runtime = canister.runtime
    meter = _Meter(runtime) if runtime is not None else None
    current = canister if meter is None else attrs.evolve(canister, runtime=meter)
    time, env = rnd.state.time, rnd.config.env
    slice_used = 0
    prefer_input = True
    try:
        while rnd.budget_left and slice_used < sched.max_instructions_per_slice:
            has_input, has_ingress = next_input < len(inputs), next_ingress < len(ingress)
            if not has_input and not has_ingress:
                arrived = rnd.state.messaging.queues_of(cid)
                if arrived.is_empty():
                    break
                inputs += arrived.input
                ingress += arrived.ingress
                rnd.state = rnd.state.with_messaging(rnd.state.messaging.with_queues(cid, taken))
                continue
            message: Message
            take_input = has_input and (prefer_input or not has_ingress)
            if take_input:
                message = inputs[next_input]
                next_input += 1
            else:
                message = ingress[next_ingress]
                next_ingress += 1
            prefer_input = not take_input
            before = meter.used if meter is not None else 0
            current, outputs = execute_message(current, message, time, env)
            used = (meter.used - before) if meter is not None else 0
            cost = used + sched.instruction_overhead_per_execution
            slice_used += cost
            rnd.used += cost
            rnd.messages += 1
            rnd.executed.add(cid)
            rnd.route(outputs)
            if isinstance(message, IngressMessage):
                _mark_processing(rnd, message, outputs)
    finally:
        if meter is not None and current.runtime is meter:
            current = attrs.evolve(current, runtime=runtime)
        rnd.state = rnd.state.with_canister(current)
        arrived = rnd.state.messaging.queues_of(cid)
        left = CanisterQueues(
            (*ingress[next_ingress:], *arrived.ingress),
            (*inputs[next_input:], *arrived.input),
            priority,
        )
        rnd.state = rnd.state.with_messaging(rnd.state.messaging.with_queues(cid, left))


def _canister_range(state: ReplicatedState) -> tuple[int, int]:
    ranges = state.topology.canister_ranges(state.subnet_id)
    for r in ranges:
        if len(r.start.raw) == 10 and len(r.end.raw) == 10:
            return int.from_bytes(r.start.raw[:8], "big"), int.from_bytes(r.end.raw[:8], "big")
    return (0, -1)


def _origin(message: ManagementMessage) -> Origin:
    if isinstance(message, CanisterRequest):
        return CanisterOrigin(message.sender, message.callback_id)
    return IngressOrigin(message.message_id, message.sender)


def _check_specified_id(state: ReplicatedState, message: ManagementMessage) -> None:
    """Refuse a ``specified_id`` outside this subnet's canister ranges.

    Spec: interface spec §"IC method provisional_create_canister_with_cycles"
    (``specified_id`` must be a canister id the subnet can host).
    """
    if message.method_name != "provisional_create_canister_with_cycles":
        return
    try:
        args = decode(message.arg, [ProvisionalCreateArgs])[0]
    except (CandidError, IndexError, TypeError, ValueError):
        return  # the management canister reports the decoding error
    specified = args.get("specified_id") if isinstance(args, dict) else None
    if isinstance(specified, Principal) and not state.hosts(specified):
        raise CanisterError.of(
            ErrorCode.CANISTER_NOT_HOSTED_BY_SUBNET,
            f"Specified CanisterId {specified} is not hosted by subnet {state.subnet_id}.",
        )


def _apply_management(rnd: _Round, result: ManagementResult) -> None:
    """Write the management canister's view of the canisters back into the state."""
    state = rnd.state
    after = result.subnet.canisters
    removed = [cid for cid in state.canisters if cid not in after]
    changed = [c for cid, c in after.items() if state.canisters.get(cid) is not c]
    for cid in removed:
        state = state.without_canister(cid)
    state = state.with_canisters(changed)
    messaging = attrs.evolve(state.messaging, next_canister_index=result.subnet.next_canister_index)
    rnd.state = state.with_messaging(messaging)


def _run_management(rnd: _Round) -> None:
    """Execute the calls queued for the management canister ``aaaaa-aa``.

    Spec: interface spec §"The IC management canister" (digest §6).
    """
    while rnd.state.messaging.management and rnd.budget_left:
        messaging = rnd.state.messaging
        message = messaging.management[0]
        rnd.state = rnd.state.with_messaging(
            attrs.evolve(messaging, management=messaging.management[1:])
        )
        rnd.used += rnd.config.scheduler.instruction_overhead_per_execution
        rnd.messages += 1
        cycles = message.cycles if isinstance(message, CanisterRequest) else 0
        state = rnd.state
        subnet = SubnetExecutionState(
            dict(state.canisters.items()),
            state.messaging.next_canister_index,
            _canister_range(state),
        )
        try:
            _check_specified_id(state, message)
            result = execute_management_call(
                subnet, message.sender, message.method_name, message.arg, cycles, state.time,
                rnd.config.env, from_canister=isinstance(message, CanisterRequest),
                random_tape=rnd.tape, origin=_origin(message),
            )  # fmt: skip
        except CanisterError as err:
            reject = reject_of(err)
            if isinstance(message, CanisterRequest):
                rnd.route(
                    [
                        CanisterResponse(
                            message.sender, MANAGEMENT_CANISTER, message.callback_id, reject, cycles
                        )
                    ]
                )
            else:
                rnd.route([IngressResult(message.message_id, reject)])
            continue
        _apply_management(rnd, result)
        rnd.route(list(result.outputs))
        if result.deferred:
            if isinstance(message, IngressMessage):
                _mark_processing(rnd, message, [])
            continue
        reply = Reply(result.reply)
        if isinstance(message, CanisterRequest):
            rnd.route(
                [
                    CanisterResponse(
                        message.sender,
                        MANAGEMENT_CANISTER,
                        message.callback_id,
                        reply,
                        result.refund,
                    )
                ]
            )
        else:
            rnd.route([IngressResult(message.message_id, reply)])


@attrs.frozen(slots=True)
class RoundStats:
    """What one round did (for metrics and benchmarks).

    Spec: interface spec §"Subnet metrics" (update_transactions_total).
    """

    instructions: int
    messages: int
    canisters: int


def execute_round(
    state: ReplicatedState, config: SubnetExecutionConfig, randomness: bytes
) -> tuple[ReplicatedState, RoundStats]:
    """Run one deterministic execution round on ``state`` (at its batch time).

    Spec: protocol digest §4.5; see the module docstring.
    """
    state = charge_idle(state, config)
    state, granted = _grant_priorities(state, config)
    rnd = _Round(state, config, random_tape(randomness))
    _run_tasks(rnd, _order(rnd.state))
    for _ in range(config.scheduler.max_inner_iterations):
        rnd.flush()
        if not rnd.budget_left:
            break
        _run_management(rnd)
        order = _order(rnd.state)
        if not order and not rnd.state.messaging.management:
            break
        for cid in order:
            if not rnd.budget_left:
                break
            _run_canister(rnd, cid)
    rnd.flush()
    state = _settle_priorities(rnd.state, rnd.executed, granted)
    state = state.with_messaging(attrs.evolve(state.messaging, rounds=state.messaging.rounds + 1))
    return state, RoundStats(rnd.used, rnd.messages, len(rnd.executed))

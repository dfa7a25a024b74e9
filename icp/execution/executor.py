"""Message execution: requests, responses, system tasks, install/upgrade, queries.

Theory of operation
-------------------
``execute_message(state, message, time, env) -> (new_state, outputs)`` runs one
message against one canister.  Messages are ingress requests, canister
requests and canister responses; outputs are outgoing canister requests,
canister responses and ingress results, which the messaging layer (or the small
``Router`` in ``icp.execution.router``) delivers later.  Each execution:

1. checks the canister can run it (installed, running, method exported, not
   frozen) or produces the IC's reject;
2. prepays ``execution_cost(limit)`` cycles (responses use the prepayment made
   by ``call_perform``);
3. runs the entry point inside a transaction on the canister runtime
   (``begin``; ``commit`` on success, ``rollback`` on trap) — a trap discards
   heap, globals, stable memory, outgoing calls, reply and cycle movements, but
   keeps the execution charge;
4. refunds the unused instructions, registers callbacks for outgoing calls,
   and closes call contexts (reply/reject exactly once; a call context that
   ends without a response is rejected with IC0506).

System state is evolved with ``attrs.evolve``; the runtime (Wasm heap) is the
one mutable resource and only changes transactionally.

Spec: interface spec §"Abstract behavior" (message execution, call contexts,
callbacks, cycles), digest §5.4, §7.1 (prepay/refund), §6.3 (lifecycle).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import attrs

from icp.execution.canister import (
    Callback,
    CallContext,
    CanisterOrigin,
    CanisterSettings,
    CanisterState,
    CanisterStatus,
    IngressOrigin,
    Origin,
    SystemOrigin,
)
from icp.execution.cycles import (
    ExecutionLimits,
    FeeSchedule,
    execution_cost,
    freezing_limit,
    ingress_induction_cost,
    instructions_refund,
    memory_cost,
    response_transmission_refund,
    scale_cost,
)
from icp.execution.engine import WasmEngine
from icp.execution.errors import CanisterError, ErrorCode, InvalidWasm, RejectCode, WasmTrap
from icp.execution.runtime import PythonCanister, PythonRuntime, WasmRuntime
from icp.execution.stable_memory import StableMemory
from icp.execution.system_api import (
    CanisterView,
    Context,
    ExecutionInput,
    Reject,
    Reply,
    Response,
    SystemApi,
)
from icp.principal import Principal


@attrs.frozen(slots=True)
class ExecutionEnvironment:
    """Subnet-wide parameters an execution needs (all injected, no globals).

    Spec: digest §7 (fees and limits per subnet type and size).
    """

    engine: WasmEngine
    subnet_id: bytes = b"\x01"
    subnet_size: int = 13
    fees: FeeSchedule = attrs.Factory(FeeSchedule)
    limits: ExecutionLimits = attrs.Factory(ExecutionLimits)
    root_key: bytes = b""


@attrs.frozen(slots=True)
class IngressMessage:
    """An update call from a user, already authenticated and inducted."""

    message_id: bytes
    sender: bytes
    receiver: bytes
    method_name: str
    arg: bytes
    size_bytes: int = 0  # size of the signed envelope, for the induction fee
    induction_fee_paid: bool = False  # message routing charged the fee at induction


@attrs.frozen(slots=True)
class CanisterRequest:
    """An inter-canister request."""

    sender: bytes
    receiver: bytes
    method_name: str
    arg: bytes
    cycles: int
    callback_id: int


@attrs.frozen(slots=True)
class CanisterResponse:
    """A response to an inter-canister request."""

    originator: bytes
    respondent: bytes
    callback_id: int
    response: Response
    refund: int


@attrs.frozen(slots=True)
class IngressResult:
    """The terminal answer to an ingress message."""

    message_id: bytes
    response: Response


Message = IngressMessage | CanisterRequest | CanisterResponse
Output = CanisterRequest | CanisterResponse | IngressResult


@functools.lru_cache(maxsize=4096)
def canister_text(canister_id: bytes) -> str:
    """Return the textual form of a canister id (memoized: every message formats it)."""
    return Principal.from_bytes(canister_id).to_text()


def reject_of(err: CanisterError) -> Reject:
    """Convert a ``CanisterError`` to a ``Reject`` response."""
    return Reject(
        int(err.reject_code), err.message, err.error_code.text() if err.error_code else ""
    )


def get_freezing_limit(state: CanisterState, env: ExecutionEnvironment) -> int:
    """Return the balance under which the canister is frozen.

    Spec: digest §7.1 (freezing threshold).
    """
    mem = state.runtime.memory_bytes() if state.runtime is not None else 0
    return freezing_limit(
        env.fees,
        freezing_threshold_seconds=state.settings.freezing_threshold,
        memory_bytes=mem,
        memory_allocation=state.settings.memory_allocation,
        compute_allocation=state.settings.compute_allocation,
        reserved_balance=0,
        subnet_size=env.subnet_size,
    )


def _view(
    state: CanisterState,
    env: ExecutionEnvironment,
    time: int,
    balance: int,
    replicated: bool = True,
    data_certificate: bytes | None = None,
    freezing_limit: int | None = None,
) -> CanisterView:
    if freezing_limit is None:
        freezing_limit = get_freezing_limit(state, env)
    return CanisterView(
        canister_id=state.canister_id,
        subnet_id=env.subnet_id,
        controllers=state.settings.controllers,
        status=int(state.status),
        version=state.version,
        balance=balance,
        freezing_limit=freezing_limit,
        time=time,
        global_timer=state.global_timer,
        certified_data=state.certified_data,
        subnet_size=env.subnet_size,
        wasm64=state.runtime.is_wasm64() if state.runtime is not None else False,
        replicated=replicated,
        data_certificate=data_certificate,
        root_key=env.root_key,
    )


def _respond(state: CanisterState, origin: Origin, response: Response, refund: int) -> list[Output]:
    if isinstance(origin, IngressOrigin):
        return [IngressResult(origin.message_id, response)]
    if isinstance(origin, CanisterOrigin):
        return [
            CanisterResponse(origin.caller, state.canister_id, origin.callback_id, response, refund)
        ]
    return []


def _wasm64(state: CanisterState) -> bool:
    return state.runtime.is_wasm64() if state.runtime is not None else False


@attrs.frozen(slots=True)
class _RunResult:
    api: SystemApi
    used: int
    trap: WasmTrap | None


def _run(
    state: CanisterState,
    entry: str | tuple[int, int],
    api: SystemApi,
    limit: int,
    keep: bool,
) -> _RunResult:
    """Run one entry point transactionally; keep changes only if ``keep`` and no trap."""
    rt = state.runtime
    if rt is None:  # pragma: no cover - callers check
        raise CanisterError.of(ErrorCode.CANISTER_WASM_MODULE_NOT_FOUND, "empty canister")
    rt.begin()
    try:
        if isinstance(entry, str):
            used = rt.run(entry, (), api, limit)
        else:
            used = rt.call_closure(entry[0], entry[1], api, limit)
    except WasmTrap as trap:
        used = max(0, min(limit, api.instructions_used()))
        rt.rollback()
        return _RunResult(api, used, trap)
    if keep:
        rt.commit()
    else:
        rt.rollback()
    return _RunResult(api, used, None)


def _finish_call_context(state: CanisterState, cc_id: int, outputs: list[Output]) -> CanisterState:
    """Close a call context without response if nothing more can respond (IC0506)."""
    cc = state.call_contexts.get(cc_id)
    if cc is None or state.callbacks_of(cc_id) > 0:
        return state
    contexts = dict(state.call_contexts)
    del contexts[cc_id]
    _reject_unanswered(state, cc, outputs)
    state = attrs.evolve(state, call_contexts=contexts)
    return _maybe_stopped(state, outputs)


def _reject_unanswered(state: CanisterState, cc: CallContext, outputs: list[Output]) -> None:
    """Reject the caller of a closing call context that never responded (IC0506).

    Spec: interface spec §"Call contexts" (a call context without outstanding calls and
    without a response is rejected with "did not produce a response").
    """
    if not cc.responded and not isinstance(cc.origin, SystemOrigin):
        err = CanisterError.of(
            ErrorCode.CANISTER_DID_NOT_REPLY,
            f"Canister {canister_text(state.canister_id)} did not produce a response",
        )
        outputs.extend(_respond(state, cc.origin, reject_of(err), cc.cycles_available))


STOP_REPLY = b"DIDL\x00\x00"
"""The Candid empty reply ``()`` of ``stop_canister``."""


def _maybe_stopped(state: CanisterState, outputs: list[Output]) -> CanisterState:
    """Move a stopping canister with no open call contexts to stopped; answer stop calls.

    Spec: interface spec §"IC method stop_canister" (digest §5.4, §6.2).
    """
    if state.status is CanisterStatus.STOPPING and not state.call_contexts:
        for origin in state.stop_requests:
            outputs.extend(respond_to_origin(MANAGEMENT_ID, origin, Reply(STOP_REPLY)))
        state = attrs.evolve(
            state, status=CanisterStatus.STOPPED, version=state.version + 1, stop_requests=()
        )
    return state


MANAGEMENT_ID = b""


def respond_to_origin(respondent: bytes, origin: Origin, response: Response) -> list[Output]:
    if isinstance(origin, IngressOrigin):
        return [IngressResult(origin.message_id, response)]
    if isinstance(origin, CanisterOrigin):
        return [CanisterResponse(origin.caller, respondent, origin.callback_id, response, 0)]
    return []


def _apply_effects(
    state: CanisterState,
    res: _RunResult,
    cc_id: int,
    outputs: list[Output],
    *,
    cycles: int,
) -> CanisterState:
    """Register calls, deliver the response and record state changes of a successful run.

    Also closes the call context when nothing more can respond (what
    ``_finish_call_context`` does, folded in to evolve the state once).
    """
    api = res.api
    callbacks = dict(state.callbacks)
    next_id = state.next_id
    for call in api.calls:
        cb_id = next_id
        next_id += 1
        callbacks[cb_id] = Callback(
            call_context_id=cc_id,
            callee=call.callee,
            reply=(call.reply_fun, call.reply_env),
            reject=(call.reject_fun, call.reject_env),
            cleanup=call.cleanup,
            cycles_sent=call.cycles,
            prepaid=call.prepaid,
        )
        outputs.append(
            CanisterRequest(
                state.canister_id, call.callee, call.method_name, call.arg, call.cycles, cb_id
            )
        )
    contexts = dict(state.call_contexts)
    cc = contexts.get(cc_id)
    if cc is not None:
        available = cc.cycles_available - api.cycles_accepted
        if api.response is not None and not cc.responded:
            outputs.extend(_respond(state, cc.origin, api.response, available))
            cc = attrs.evolve(
                cc, responded=True, cycles_available=0, instructions=cc.instructions + res.used
            )
        else:
            cc = attrs.evolve(
                cc, cycles_available=available, instructions=cc.instructions + res.used
            )
        contexts[cc_id] = cc
        if not any(cb.call_context_id == cc_id for cb in callbacks.values()):
            del contexts[cc_id]
            _reject_unanswered(state, cc, outputs)
    state = attrs.evolve(
        state,
        cycles=cycles,
        callbacks=callbacks,
        call_contexts=contexts,
        next_id=next_id,
        certified_data=api.certified_data
        if api.certified_data is not None
        else state.certified_data,
        global_timer=api.global_timer if api.global_timer is not None else state.global_timer,
        version=state.version + 1,
        cycles_burned_total=state.cycles_burned_total + api.cycles_burned,
        logs=(*state.logs, *api.logs)[-100:] if api.logs else state.logs,
    )
    return _maybe_stopped(state, outputs)


def execute_message(
    state: CanisterState, message: Message, time: int, env: ExecutionEnvironment
) -> tuple[CanisterState, list[Output]]:
    """Execute one message on one canister; return the new state and outputs.

    Spec: interface spec §"Abstract behavior" (message execution); digest §5.4.
    """
    if isinstance(message, CanisterResponse):
        return execute_response(state, message, time, env)
    return execute_request(state, message, time, env)


def execute_request(
    state: CanisterState,
    message: IngressMessage | CanisterRequest,
    time: int,
    env: ExecutionEnvironment,
) -> tuple[CanisterState, list[Output]]:
    """Execute an ingress or canister request (update or replicated query).

    Spec: interface spec §"Abstract behavior" (call execution); digest §7.1.
    """
    if isinstance(message, IngressMessage):
        origin: Origin = IngressOrigin(message.message_id, message.sender)
        cycles = 0
    else:
        origin = CanisterOrigin(message.sender, message.callback_id)
        cycles = message.cycles
    cid = canister_text(state.canister_id)

    def reject(err: CanisterError, st: CanisterState = state) -> tuple[CanisterState, list[Output]]:
        return st, _respond(st, origin, reject_of(err), cycles)

    rt = state.runtime
    if rt is None:
        return reject(
            CanisterError.of(
                ErrorCode.CANISTER_WASM_MODULE_NOT_FOUND,
                f"Error from Canister {cid}: Attempted to execute a message, but the canister "
                "contains no Wasm module.",
            )
        )
    if state.status is CanisterStatus.STOPPED:
        return reject(CanisterError.of(ErrorCode.CANISTER_STOPPED, f"Canister {cid} is stopped"))
    if state.status is CanisterStatus.STOPPING:
        return reject(CanisterError.of(ErrorCode.CANISTER_STOPPING, f"Canister {cid} is stopping"))
    kind = rt.method_kind(message.method_name)
    if kind is None or kind == "composite_query":
        if kind is None:
            text = (
                f"Error from Canister {cid}: Canister has no update method '{message.method_name}'."
            )
        else:
            text = (
                f"Error from Canister {cid}: Composite query cannot be called in replicated mode: "
                f"'{message.method_name}'."
            )
        return reject(CanisterError.of(ErrorCode.CANISTER_METHOD_NOT_FOUND, text))
    balance = state.cycles
    flimit = get_freezing_limit(state, env)
    if isinstance(message, IngressMessage) and not message.induction_fee_paid:
        fee = ingress_induction_cost(env.fees, message.size_bytes, env.subnet_size)
        if balance - fee < flimit:
            return reject(_out_of_cycles(cid, fee, balance, flimit))
        balance -= fee
    limit = env.limits.max_instructions_per_message
    wasm64 = rt.is_wasm64()
    prepay = execution_cost(env.fees, limit, env.subnet_size, wasm64=wasm64)
    if balance - prepay < flimit:
        st = attrs.evolve(state, cycles=balance)
        return reject(_out_of_cycles(cid, prepay, balance, flimit), st)
    balance -= prepay
    cc_id = state.next_id
    cc = CallContext(origin=origin, cycles_available=cycles)
    state = attrs.evolve(
        state,
        cycles=balance,
        next_id=cc_id + 1,
        call_contexts={**state.call_contexts, cc_id: cc},
    )
    ctx = Context.U if kind == "update" else Context.RQ
    api = SystemApi(
        ExecutionInput(
            ctx, caller=message.sender, arg=message.arg, method_name=message.method_name,
            cycles_available=cycles,
        ),
        _view(state, env, time, balance, freezing_limit=flimit),
        rt.stable, env.limits, env.fees, limit,
    )  # fmt: skip
    res = _run(state, f"canister_{kind} {message.method_name}", api, limit, keep=kind == "update")
    refund = instructions_refund(env.fees, limit - res.used, env.subnet_size, wasm64=wasm64)
    refund = min(refund, prepay)
    outputs: list[Output] = []
    if res.trap is not None:
        state = attrs.evolve(state, cycles=balance + refund)
        err = res.trap.to_canister_error(cid)
        outputs.extend(_respond(state, origin, reject_of(err), cycles))
        contexts = dict(state.call_contexts)
        del contexts[cc_id]
        return attrs.evolve(state, call_contexts=contexts), outputs
    if kind == "update":
        state = _apply_effects(state, res, cc_id, outputs, cycles=api.balance + refund)
    else:  # replicated query: only the response survives
        state = attrs.evolve(state, cycles=balance + refund)
        if api.response is not None:
            outputs.extend(_respond(state, origin, api.response, cycles))
            contexts = dict(state.call_contexts)
            contexts[cc_id] = attrs.evolve(cc, responded=True, cycles_available=0)
            state = attrs.evolve(state, call_contexts=contexts)
    state = _finish_call_context(state, cc_id, outputs)
    return state, outputs


def _out_of_cycles(cid: str, needed: int, balance: int, flimit: int) -> CanisterError:
    return CanisterError.of(
        ErrorCode.CANISTER_OUT_OF_CYCLES,
        f"Canister {cid} is out of cycles: please top up the canister with at least "
        f"{needed + flimit - balance} additional cycles",
    )


def execute_response(
    state: CanisterState, message: CanisterResponse, time: int, env: ExecutionEnvironment
) -> tuple[CanisterState, list[Output]]:
    """Run the reply or reject callback (then cleanup if it trapped).

    Spec: interface spec §"Abstract behavior" (callback invocation); digest §5.4.
    """
    cb = state.callbacks.get(message.callback_id)
    if cb is None:
        return state, []
    callbacks = dict(state.callbacks)
    del callbacks[message.callback_id]
    payload = (
        message.response.data
        if isinstance(message.response, Reply)
        else message.response.message.encode()
    )
    transmission_refund = response_transmission_refund(
        env.fees, env.limits, len(payload), env.subnet_size
    )
    wasm64 = _wasm64(state)
    limit = env.limits.max_instructions_per_message
    exec_prepaid = cb.prepaid - response_transmission_refund(
        env.fees, env.limits, 0, env.subnet_size
    )
    balance = state.cycles + message.refund + transmission_refund
    state = attrs.evolve(state, callbacks=callbacks, cycles=balance)
    cc = state.call_contexts.get(cb.call_context_id)
    outputs: list[Output] = []
    if state.runtime is None or cc is None:
        # canister uninstalled meanwhile: the prepaid execution is refunded, no callback runs
        return attrs.evolve(state, cycles=balance + exec_prepaid), outputs
    is_reply = isinstance(message.response, Reply)
    inp = ExecutionInput(
        Context.RY if is_reply else Context.RT,
        caller=_caller_of(cc.origin),
        arg=message.response.data if isinstance(message.response, Reply) else b"",
        cycles_available=0 if cc.responded else cc.cycles_available,
        cycles_refunded=message.refund,
        reject_code=0 if isinstance(message.response, Reply) else message.response.code,
        reject_message="" if isinstance(message.response, Reply) else message.response.message,
        call_context_instructions=cc.instructions,
    )
    cid = canister_text(state.canister_id)
    api = SystemApi(
        inp, _view(state, env, time, balance), state.runtime.stable, env.limits, env.fees, limit,
        already_responded=cc.responded,
    )  # fmt: skip
    res = _run(state, cb.reply if is_reply else cb.reject, api, limit, keep=True)
    refund = min(
        exec_prepaid,
        instructions_refund(env.fees, limit - res.used, env.subnet_size, wasm64=wasm64),
    )
    # the execution cost is covered by the prepayment made at call_perform time
    net = exec_prepaid - (exec_prepaid - refund)
    if res.trap is None:
        state = _apply_effects(state, res, cb.call_context_id, outputs, cycles=api.balance + net)
        return _finish_call_context(state, cb.call_context_id, outputs), outputs
    state = attrs.evolve(state, cycles=balance + net)
    if cb.cleanup is not None and state.runtime is not None:
        capi = SystemApi(
            ExecutionInput(Context.C, caller=_caller_of(cc.origin), reject_code=inp.reject_code),
            _view(state, env, time, state.cycles), state.runtime.stable, env.limits, env.fees,
            limit,
        )  # fmt: skip
        cres = _run(state, cb.cleanup, capi, limit, keep=True)
        if cres.trap is None:
            state = attrs.evolve(
                state,
                cycles=capi.balance,
                global_timer=capi.global_timer
                if capi.global_timer is not None
                else state.global_timer,
                version=state.version + 1,
            )
    del cid
    return _finish_call_context(state, cb.call_context_id, outputs), outputs


def _caller_of(origin: Origin) -> bytes:
    if isinstance(origin, IngressOrigin):
        return origin.sender
    if isinstance(origin, CanisterOrigin):
        return origin.caller
    return b""


def execute_global_timer(
    state: CanisterState, time: int, env: ExecutionEnvironment
) -> tuple[CanisterState, list[Output]]:
    """Fire ``canister_global_timer`` if the timer is due (it is deactivated first).

    Spec: interface spec §"Global timer" (digest §5.3 ``global_timer_set``).
    """
    rt = state.runtime
    if (
        rt is None
        or state.global_timer == 0
        or time < state.global_timer
        or state.status is not CanisterStatus.RUNNING
        or not rt.has_system_method("canister_global_timer")
    ):
        return state, []
    return _execute_task(attrs.evolve(state, global_timer=0), "canister_global_timer", time, env)


def execute_heartbeat(
    state: CanisterState, time: int, env: ExecutionEnvironment
) -> tuple[CanisterState, list[Output]]:
    """Run ``canister_heartbeat`` if exported.

    Spec: interface spec §"Heartbeat".
    """
    rt = state.runtime
    if (
        rt is None
        or state.status is not CanisterStatus.RUNNING
        or not rt.has_system_method("canister_heartbeat")
    ):
        return state, []
    return _execute_task(state, "canister_heartbeat", time, env)


def _execute_task(
    state: CanisterState, export: str, time: int, env: ExecutionEnvironment
) -> tuple[CanisterState, list[Output]]:
    rt = state.runtime
    assert rt is not None
    limit = env.limits.max_instructions_per_message
    wasm64 = rt.is_wasm64()
    prepay = execution_cost(env.fees, limit, env.subnet_size, wasm64=wasm64)
    if state.cycles - prepay < get_freezing_limit(state, env):
        return state, []
    balance = state.cycles - prepay
    cc_id = state.next_id
    state = attrs.evolve(
        state,
        cycles=balance,
        next_id=cc_id + 1,
        call_contexts={**state.call_contexts, cc_id: CallContext(SystemOrigin(export), 0)},
    )
    api = SystemApi(
        ExecutionInput(Context.T),
        _view(state, env, time, balance),
        rt.stable,
        env.limits,
        env.fees,
        limit,
    )
    res = _run(state, export, api, limit, keep=True)
    refund = min(
        prepay, instructions_refund(env.fees, limit - res.used, env.subnet_size, wasm64=wasm64)
    )
    outputs: list[Output] = []
    if res.trap is not None:
        contexts = dict(state.call_contexts)
        del contexts[cc_id]
        return attrs.evolve(state, cycles=balance + refund, call_contexts=contexts), outputs
    state = _apply_effects(state, res, cc_id, outputs, cycles=api.balance + refund)
    return _finish_call_context(state, cc_id, outputs), outputs


# ---------------------------------------------------------------------------
# queries


MAX_CALL_DEPTH_COMPOSITE_QUERY = 6
"""Spec: digest §7.2 (composite query call-graph depth 6)."""

QueryResolver = Callable[[bytes], "CanisterState | None"]


def execute_query(
    state: CanisterState,
    sender: bytes,
    method_name: str,
    arg: bytes,
    time: int,
    env: ExecutionEnvironment,
    *,
    data_certificate: bytes | None = None,
    resolve: QueryResolver | None = None,
) -> Response:
    """Run a non-replicated (composite) query on the live state; discard every change.

    Queries are free (no cycles charged).  A composite query may call query and
    composite query methods of canisters that ``resolve`` finds (same subnet);
    its callbacks run on the same uncommitted state, and everything is rolled back
    at the end.  Spec: interface spec §"Query call", §"Composite query";
    digest §1.6, §5.2 (CQ, CRy, CRt), §7.2 (depth 6).
    """
    return _query(
        state, sender, method_name, arg, time, env, data_certificate, resolve, 0,
        frozenset(), top=True,
    )  # fmt: skip


def _query(
    state: CanisterState,
    sender: bytes,
    method_name: str,
    arg: bytes,
    time: int,
    env: ExecutionEnvironment,
    data_certificate: bytes | None,
    resolve: QueryResolver | None,
    depth: int,
    active: frozenset[bytes],
    *,
    top: bool,
) -> Response:
    cid = canister_text(state.canister_id)
    rt = state.runtime
    if rt is None:
        return reject_of(
            CanisterError.of(
                ErrorCode.CANISTER_WASM_MODULE_NOT_FOUND,
                f"Error from Canister {cid}: Attempted to execute a message, but the canister "
                "contains no Wasm module.",
            )
        )
    if state.status is not CanisterStatus.RUNNING:
        code = (
            ErrorCode.CANISTER_STOPPED
            if state.status is CanisterStatus.STOPPED
            else ErrorCode.CANISTER_STOPPING
        )
        return reject_of(CanisterError.of(code, f"Canister {cid} is {state.status.name.lower()}"))
    kind = rt.method_kind(method_name)
    if kind not in ("query", "composite_query"):
        return reject_of(
            CanisterError.of(
                ErrorCode.CANISTER_METHOD_NOT_FOUND,
                f"Error from Canister {cid}: Canister has no query method '{method_name}'.",
            )
        )
    if state.canister_id in active:
        return reject_of(
            CanisterError.of(
                ErrorCode.QUERY_CALL_GRAPH_LOOP_DETECTED,
                f"Error from Canister {cid}: Loop detected. Canister {cid} is already in the "
                "composite query call graph.",
            )
        )
    limit = env.limits.max_instructions_per_query
    composite = kind == "composite_query"
    view = _view(
        state, env, time, state.cycles, replicated=False,
        data_certificate=data_certificate if top else None,
    )  # fmt: skip
    api = SystemApi(
        ExecutionInput(
            Context.CQ if composite else Context.NRQ, caller=sender, arg=arg,
            method_name=method_name,
        ),
        view, rt.stable, env.limits, env.fees, limit,
    )  # fmt: skip
    rt.begin()
    try:
        try:
            rt.run(f"canister_{kind} {method_name}", (), api, limit)
        except WasmTrap as trap:
            return reject_of(trap.to_canister_error(cid))
        response = api.response
        pending = list(api.calls)
        inner = active | {state.canister_id}
        while pending:
            call = pending.pop(0)
            callee = resolve(call.callee) if resolve is not None else None
            if callee is None:
                result: Response = reject_of(
                    CanisterError(
                        RejectCode.DESTINATION_INVALID,
                        f"Canister {canister_text(call.callee)} not found",
                        ErrorCode.CANISTER_NOT_FOUND,
                    )
                )
            elif depth + 1 >= MAX_CALL_DEPTH_COMPOSITE_QUERY:
                result = reject_of(
                    CanisterError.of(
                        ErrorCode.CANISTER_CONTRACT_VIOLATION,
                        "Composite query call graph exceeds the maximum depth "
                        f"{MAX_CALL_DEPTH_COMPOSITE_QUERY}",
                    )
                )
            else:
                result = _query(
                    callee, state.canister_id, call.method_name, call.arg, time, env, None,
                    resolve, depth + 1, inner, top=False,
                )  # fmt: skip
            is_reply = isinstance(result, Reply)
            cb_api = SystemApi(
                ExecutionInput(
                    Context.CRY if is_reply else Context.CRT,
                    caller=sender,
                    arg=result.data if isinstance(result, Reply) else b"",
                    reject_code=0 if isinstance(result, Reply) else result.code,
                    reject_message="" if isinstance(result, Reply) else result.message,
                ),
                view, rt.stable, env.limits, env.fees, limit,
                already_responded=response is not None,
            )  # fmt: skip
            closure = (
                (call.reply_fun, call.reply_env) if is_reply else (call.reject_fun, call.reject_env)
            )
            try:
                rt.call_closure(closure[0], closure[1], cb_api, limit)
            except WasmTrap as trap:
                if response is None:
                    return reject_of(trap.to_canister_error(cid))
                continue
            if response is None and cb_api.response is not None:
                response = cb_api.response
            pending.extend(cb_api.calls)
    finally:
        rt.rollback()
    if response is None:
        return reject_of(
            CanisterError.of(
                ErrorCode.CANISTER_DID_NOT_REPLY,
                f"Canister {cid} did not produce a response",
            )
        )
    return response


def inspect_message(
    state: CanisterState,
    sender: bytes,
    method_name: str,
    arg: bytes,
    time: int,
    env: ExecutionEnvironment,
) -> CanisterError | None:
    """Run ``canister_inspect_message``; return None if accepted, else the reject.

    Spec: interface spec §"Message inspection" (digest §5.3 ``accept_message``).
    """
    rt = state.runtime
    cid = canister_text(state.canister_id)
    if rt is None or not rt.has_system_method("canister_inspect_message"):
        return None
    limit = env.limits.max_instructions_per_inspect_message
    api = SystemApi(
        ExecutionInput(Context.F, caller=sender, arg=arg, method_name=method_name),
        _view(state, env, time, state.cycles, replicated=False),
        rt.stable, env.limits, env.fees, limit,
    )  # fmt: skip
    res = _run(state, "canister_inspect_message", api, limit, keep=False)
    if res.trap is not None:
        return res.trap.to_canister_error(cid)
    if not api.message_accepted:
        return CanisterError.of(
            ErrorCode.CANISTER_REJECTED_MESSAGE,
            f"Error from Canister {cid}: Canister rejected the message",
        )
    return None


# ---------------------------------------------------------------------------
# install / upgrade / uninstall


@attrs.frozen(slots=True)
class UpgradeOptions:
    """The ``upgrade`` mode's options.

    Spec: interface spec §"IC method install_code" (digest §6.2).
    """

    skip_pre_upgrade: bool = False
    keep_wasm_memory: bool = False


EOP_SECTION = "icp:private enhanced-orthogonal-persistence"


def new_canister(
    canister_id: bytes, controllers: tuple[bytes, ...], cycles: int, limits: ExecutionLimits
) -> CanisterState:
    """Return a fresh empty canister.

    Spec: interface spec §"IC method create_canister".
    """
    return CanisterState(
        canister_id=canister_id,
        settings=CanisterSettings(
            controllers=controllers,
            freezing_threshold=limits.default_freezing_threshold_seconds,
            reserved_cycles_limit=limits.default_reserved_cycles_limit,
            wasm_memory_limit=limits.default_wasm_memory_limit,
        ),
        cycles=cycles,
    )


def _charge_install(
    state: CanisterState, used: int, env: ExecutionEnvironment, wasm64: bool
) -> int:
    return max(0, state.cycles - execution_cost(env.fees, used, env.subnet_size, wasm64=wasm64))


def install_code(
    state: CanisterState,
    mode: str,
    wasm_or_code: bytes | PythonCanister,
    arg: bytes,
    sender: bytes,
    time: int,
    env: ExecutionEnvironment,
    upgrade: UpgradeOptions | None = None,
) -> CanisterState:
    """Install, reinstall or upgrade code atomically; raise ``CanisterError`` on failure.

    ``mode`` is ``"install"``, ``"reinstall"`` or ``"upgrade"``.  On any trap the
    canister is left exactly as it was (only the cycles for instructions used are
    charged via the returned error's absence: failed installs charge nothing here).
    Spec: interface spec §"IC method install_code" (digest §5.1, §6.2).
    """
    cid = canister_text(state.canister_id)
    if mode not in ("install", "reinstall", "upgrade"):
        raise CanisterError.of(
            ErrorCode.INVALID_MANAGEMENT_PAYLOAD, f"invalid install mode {mode!r}"
        )
    if mode == "install" and state.runtime is not None:
        raise CanisterError.of(
            ErrorCode.CANISTER_NON_EMPTY,
            f"Canister {cid} cannot be installed because the canister is not empty. "
            "Try installing with mode='reinstall' instead.",
        )
    if mode == "upgrade" and state.runtime is None:
        raise CanisterError.of(
            ErrorCode.CANISTER_WASM_MODULE_NOT_FOUND,
            f"Error from Canister {cid}: Attempted to execute a message, but the canister contains "
            "no Wasm module.",
        )
    limit = env.limits.max_instructions_per_install_code
    upgrade = upgrade or UpgradeOptions()
    old = state.runtime
    # stable memory: fresh for install/reinstall, carried over for upgrade
    stable = old.stable if (mode == "upgrade" and old is not None) else StableMemory()
    new_rt: WasmRuntime | PythonRuntime
    if isinstance(wasm_or_code, PythonCanister):
        new_rt = PythonRuntime(wasm_or_code, stable)
    else:
        compiled = env.engine.compile(wasm_or_code)
        if mode == "upgrade" and old is not None:
            eop_old = EOP_SECTION in old.custom_sections()
            if eop_old and not upgrade.keep_wasm_memory:
                raise CanisterError.of(
                    ErrorCode.CANISTER_CONTRACT_VIOLATION,
                    f"Error from Canister {cid}: Missing upgrade option: Enhanced orthogonal "
                    "persistence requires the `wasm_memory_persistence` upgrade option.",
                )
            if (
                upgrade.keep_wasm_memory
                and EOP_SECTION not in compiled.parsed.public_custom_sections()
            ):
                raise CanisterError.of(
                    ErrorCode.CANISTER_CONTRACT_VIOLATION,
                    f"Error from Canister {cid}: Invalid upgrade option: "
                    "The `wasm_memory_persistence: "
                    "opt Keep` upgrade option requires that the new canister module supports "
                    "enhanced orthogonal persistence.",
                )
        instance = env.engine.instantiate(compiled, state.settings.wasm_memory_limit)
        new_rt = WasmRuntime(
            compiled.module_hash, instance, compiled.parsed, stable, bytes(wasm_or_code)
        )
    used_total = 0
    if mode == "upgrade" and old is not None:
        old.begin()
        if not upgrade.skip_pre_upgrade and old.has_system_method("canister_pre_upgrade"):
            api = SystemApi(
                ExecutionInput(Context.G, caller=sender),
                _view(state, env, time, state.cycles), old.stable, env.limits, env.fees, limit,
            )  # fmt: skip
            try:
                used_total += old.run("canister_pre_upgrade", (), api, limit)
            except WasmTrap as trap:
                old.rollback()
                raise _install_error(trap, cid, "pre_upgrade") from None
        if upgrade.keep_wasm_memory and isinstance(new_rt, WasmRuntime):
            new_rt.restore(old.snapshot())
        if isinstance(new_rt, PythonRuntime) and isinstance(old, PythonRuntime):
            new_rt.state = old.state
    state_new = attrs.evolve(
        state,
        runtime=new_rt,
        certified_data=state.certified_data if mode == "upgrade" else b"",
        global_timer=0,
    )
    if mode != "upgrade" or old is None:
        new_rt.begin()
    try:
        timer: int | None = None
        certified: bytes | None = None
        for export, ctx in (
            ("__icp_start", Context.S),
            ("canister_post_upgrade" if mode == "upgrade" else "canister_init", Context.I),
        ):
            if not new_rt.has_system_method(export):
                continue
            api = SystemApi(
                ExecutionInput(ctx, caller=sender, arg=arg if ctx is Context.I else b""),
                _view(state_new, env, time, state.cycles), new_rt.stable, env.limits, env.fees,
                limit - used_total,
            )  # fmt: skip
            used_total += new_rt.run(export, (), api, limit - used_total)
            timer = api.global_timer if api.global_timer is not None else timer
            certified = api.certified_data if api.certified_data is not None else certified
    except WasmTrap as trap:
        if mode == "upgrade" and old is not None:
            old.rollback()
        raise _install_error(trap, cid, "post_upgrade" if mode == "upgrade" else "init") from None
    except InvalidWasm:
        if mode == "upgrade" and old is not None:
            old.rollback()
        raise
    if mode == "upgrade" and old is not None:
        old.commit()
    else:
        new_rt.commit()
    return attrs.evolve(
        state_new,
        cycles=_charge_install(state, used_total, env, new_rt.is_wasm64()),
        global_timer=timer or 0,
        certified_data=certified if certified is not None else state_new.certified_data,
        version=state.version + 1,
    )


def _install_error(trap: WasmTrap, cid: str, phase: str) -> CanisterError:
    err = trap.to_canister_error(cid)
    return CanisterError(err.reject_code, f"{err.message} (in canister_{phase})", err.error_code)


def uninstall_code(state: CanisterState) -> tuple[CanisterState, list[Output]]:
    """Drop code and state; reject open call contexts.

    Spec: interface spec §"IC method uninstall_code" (digest §6.2).
    """
    outputs: list[Output] = []
    cid = canister_text(state.canister_id)
    for cc in state.call_contexts.values():
        if not cc.responded:
            err = CanisterError.of(
                ErrorCode.CANISTER_WASM_MODULE_NOT_FOUND,
                f"Canister {cid} has been uninstalled.",
            )
            outputs.extend(_respond(state, cc.origin, reject_of(err), cc.cycles_available))
    return (
        attrs.evolve(
            state,
            runtime=None,
            call_contexts={},
            certified_data=b"",
            global_timer=0,
            version=state.version + 1,
        ),
        outputs,
    )


def charge_idle_resources(
    state: CanisterState, seconds: int, env: ExecutionEnvironment
) -> tuple[CanisterState, list[Output]]:
    """Charge storage and compute allocation for ``seconds``; deallocate at zero.

    A canister that cannot pay is uninstalled (its open call contexts rejected)
    and left with 0 cycles; id, controllers and settings are kept.
    Spec: digest §7.1 (storage per GiB-second, compute allocation fee), §6.3
    ("balance 0 ⇒ canister deallocated").
    """
    if seconds <= 0:
        return state, []
    mem = state.runtime.memory_bytes() if state.runtime is not None else 0
    charged = max(mem, state.settings.memory_allocation)
    cost = memory_cost(env.fees, charged, seconds, env.subnet_size) + scale_cost(
        env.fees,
        env.fees.compute_percent_allocated_per_second_fee
        * seconds
        * state.settings.compute_allocation,
        env.subnet_size,
    )
    if cost < state.cycles:
        return attrs.evolve(state, cycles=state.cycles - cost), []
    if state.runtime is None:
        return attrs.evolve(state, cycles=0), []
    emptied, outputs = uninstall_code(state)
    return attrs.evolve(emptied, cycles=0), outputs

"""Induction: put a batch's ingress and XNet messages into canister input queues.

Theory of operation.  Induction is the first step of processing a finalized batch.

*Ingress.*  Each envelope in the batch is parsed; messages that are malformed,
expired at the batch time or already in the ingress history (duplicates) are
skipped without a trace — a valid block cannot contain them, and the ingress
history keeps every inducted id until its expiry, so a request never executes
twice.  For the rest the IC's induction checks decide: the destination canister
must exist on this subnet (else ``rejected``, code 3 / IC0301), must be running
(stopping → IC0509, stopped → IC0508, code 5) and must pay the induction fee
``ingress_induction_cost`` without dropping below its freezing threshold (else
IC0207, code 2).  Accepted messages are charged, queued and recorded as
``received``; every status records ``sender`` and ``effective_canister_id``.
Calls to the management canister are queued for ``aaaaa-aa``; their effective
canister (the ``canister_id`` argument, if any) pays the fee.

*XNet.*  Each certified slice is verified against the source subnet's public key
(``verify_stream_slice``) and checked to continue exactly where induction
stopped (``check_slice``); a slice that fails is skipped (the payload validator
refuses such blocks).  Then the slice's header signals acknowledge our stream
towards the source: acknowledged messages are garbage-collected, and rejected
requests among them turn into reject responses for their local callers.  Its
messages are inducted in order: responses to their callers, requests to their
callees — a request for a canister this subnet does not host is answered with a
reject response in the reverse stream.  Finally our reverse-stream header's
``signals_end`` advances past the slice.

Spec: protocol digest §4.1 step 2(a) (induction and its checks), §4.2 (ingress
fee paid by the receiving canister), §4.3 (certified slices, contiguity, signals,
garbage collection, reject responses); interface spec §"Reject codes".
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from icp.consensus.artifacts import XNetSlice
from icp.execution.canister import CanisterState, CanisterStatus
from icp.execution.cycles import ingress_induction_cost
from icp.execution.errors import ErrorCode, RejectCode
from icp.execution.executor import (
    CanisterRequest,
    CanisterResponse,
    IngressMessage,
    canister_text,
    get_freezing_limit,
)
from icp.execution.system_api import Reject
from icp.messaging.config import SubnetExecutionConfig
from icp.messaging.ingress import IngressError, SignedIngress, is_expiry_valid, parse_call_envelope
from icp.messaging.queues import MANAGEMENT_CANISTER
from icp.messaging.stream_builder import (
    UNLIMITED,
    destination_not_found,
    enqueue_input,
    enqueue_management,
    input_queue_full,
    management_target,
    queue_full,
)
from icp.messaging.xnet import StreamError, check_slice
from icp.principal import Principal
from icp.state.ingress_history import INGRESS_HISTORY_MAX_MESSAGES, IngressStatus, RequestStatus
from icp.state.replicated_state import ReplicatedState, StateError
from icp.state.stream_certification import StreamSliceError, verify_stream_slice

FREE_MANAGEMENT_METHODS = frozenset(
    {"provisional_create_canister_with_cycles", "provisional_top_up_canister"}
)
"""Management calls whose induction costs nothing (no canister pays for them).

Spec: dfinity/ic ``ingress_induction_cost`` (``IngressInductionCost::Free``).
"""


def effective_canister_id(message: SignedIngress) -> bytes:
    """Return the canister a message is for: its receiver, or for ``aaaaa-aa`` its target.

    The target of a management call is the ``canister_id`` field of its argument
    record; a call without one (``provisional_create_canister_with_cycles``) has the
    management canister itself as effective id.
    Spec: interface spec §"Effective canister id".
    """
    if message.canister_id.raw != MANAGEMENT_CANISTER:
        return message.canister_id.raw
    target = management_target(message.arg)
    return MANAGEMENT_CANISTER if target is None else target


def parse_batch_ingress(
    envelopes: Sequence[bytes], config: SubnetExecutionConfig
) -> list[SignedIngress]:
    """Parse a batch's ingress envelopes, dropping the malformed ones.

    Spec: interface spec §"Envelope"; protocol digest §4.1 step 2(a).
    """
    out: list[SignedIngress] = []
    cache = config.envelopes
    for data in envelopes:
        try:
            if cache is not None:
                out.append(cache.parse_call(data, config.ingress_limits))
            else:
                out.append(parse_call_envelope(data, limits=config.ingress_limits))
        except IngressError:
            continue
    return out


def _reject_status(
    message: SignedIngress, effective: bytes, code: ErrorCode, text: str
) -> IngressStatus:
    return IngressStatus(
        RequestStatus.REJECTED,
        message.ingress_expiry,  # type: ignore[arg-type]
        reject_code=int(code.reject_code),
        reject_message=text,
        error_code=code.text(),
        sender=message.sender.raw,
        effective_canister_id=effective,
    )


def induct_ingress(
    state: ReplicatedState, messages: Sequence[SignedIngress], config: SubnetExecutionConfig
) -> ReplicatedState:
    """Induct parsed ingress messages at ``state.time`` (the batch time).

    Spec: protocol digest §4.1 step 2(a), §4.2; interface spec §"Request status".
    """
    env = config.env
    history = state.ingress_history
    statuses: dict[bytes, IngressStatus] = {}  # new statuses, written in one bulk update
    payers: dict[bytes, CanisterState] = {}  # canisters charged so far (written back once)
    balances: dict[bytes, int] = {}  # their balances after the fees charged so far
    freezing: dict[bytes, int] = {}  # their freezing limits (fees do not change them)
    queued_for: dict[bytes, list[IngressMessage]] = {}  # new ingress per receiver
    management: list[IngressMessage] = []
    for message in messages:
        mid = message.message_id
        if mid in statuses or history.get(mid) is not None:
            continue  # duplicate: already inducted (any status) and not yet expired
        if len(history) + len(statuses) >= INGRESS_HISTORY_MAX_MESSAGES:
            break  # the history is full: later messages are not inducted (clients retry)
        if not is_expiry_valid(message.ingress_expiry, state.time, config.ingress_limits):
            continue
        effective = effective_canister_id(message)
        receiver = message.canister_id.raw
        payer_id = receiver if receiver != MANAGEMENT_CANISTER else effective
        free = receiver == MANAGEMENT_CANISTER and (
            message.method_name in FREE_MANAGEMENT_METHODS or payer_id == MANAGEMENT_CANISTER
        )
        payer = None if free else payers.get(payer_id) or state.canister(payer_id)
        if payer is not None and payer_id not in payers:
            payers[payer_id] = payer
            balances[payer_id] = payer.cycles
            freezing[payer_id] = get_freezing_limit(payer, env)
        status: IngressStatus | None = None
        if not free and payer is None:
            status = _reject_status(
                message,
                effective,
                ErrorCode.CANISTER_NOT_FOUND,
                f"Canister {canister_text(payer_id)} not found",
            )
        elif payer is not None and receiver != MANAGEMENT_CANISTER:
            if payer.status is CanisterStatus.STOPPED:
                status = _reject_status(
                    message,
                    effective,
                    ErrorCode.CANISTER_STOPPED,
                    f"Canister {canister_text(payer_id)} is stopped",
                )
            elif payer.status is CanisterStatus.STOPPING:
                status = _reject_status(
                    message,
                    effective,
                    ErrorCode.CANISTER_STOPPING,
                    f"Canister {canister_text(payer_id)} is stopping",
                )
        fee = 0
        if status is None and payer is not None:
            fee = ingress_induction_cost(env.fees, message.size, env.subnet_size)
            limit, balance = freezing[payer_id], balances[payer_id]
            if balance - fee < limit:
                status = _reject_status(
                    message,
                    effective,
                    ErrorCode.CANISTER_OUT_OF_CYCLES,
                    f"Canister {canister_text(payer_id)} is out of cycles: please top up the "
                    f"canister with at least {fee + limit - balance} additional cycles",
                )
        if status is not None:
            statuses[mid] = status
            continue
        if payer is not None and fee:
            balances[payer_id] -= fee
        queued = IngressMessage(
            mid,
            message.sender.raw,
            receiver,
            message.method_name,
            message.arg,
            message.size,
            induction_fee_paid=True,
        )
        if receiver == MANAGEMENT_CANISTER:
            management.append(queued)
        else:
            queued_for.setdefault(receiver, []).append(queued)
        statuses[mid] = IngressStatus(
            RequestStatus.RECEIVED,
            message.ingress_expiry,  # type: ignore[arg-type]
            sender=message.sender.raw,
            effective_canister_id=effective,
        )
    messaging = state.messaging
    if management:
        messaging = attrs.evolve(messaging, management=(*messaging.management, *management))
    for receiver, new in queued_for.items():
        queues = messaging.queues_of(receiver)
        messaging = messaging.with_queues(
            receiver, attrs.evolve(queues, ingress=(*queues.ingress, *new))
        )
    charged = [
        attrs.evolve(payer, cycles=balances[cid])
        for cid, payer in payers.items()
        if balances[cid] != payer.cycles
    ]
    state = state.with_canisters(charged).with_messaging(messaging)
    return state.with_ingress_history(history.set_statuses(statuses))


def expected_index(state: ReplicatedState, source: Principal) -> int:
    """Return the index of the next message this subnet expects from ``source``.

    It is the ``signals_end`` of our stream towards ``source`` (the reverse stream).
    Spec: protocol digest §4.3 (signals_end).
    """
    return state.stream_to(source).header.signals_end


def _reject_signal_response(request: CanisterRequest) -> CanisterResponse:
    reject = Reject(
        int(RejectCode.SYS_TRANSIENT),
        f"Canister {canister_text(request.receiver)}: the destination subnet rejected the request",
        ErrorCode.CANISTER_QUEUE_FULL.text(),
    )
    return CanisterResponse(
        request.sender, request.receiver, request.callback_id, reject, request.cycles
    )


def induct_slice(
    state: ReplicatedState,
    source: Principal,
    certified_slice: bytes,
    config: SubnetExecutionConfig,
) -> ReplicatedState:
    """Verify one certified slice from ``source`` and induct its signals and messages.

    Raises ``StreamSliceError`` / ``StreamError`` / ``StateError`` if the slice does
    not verify or does not continue the stream; the state is then unchanged.
    Spec: protocol digest §4.3.
    """
    if source == state.subnet_id:
        raise StreamError("a subnet does not receive slices from itself")
    public_key = state.topology.subnet(source).public_key_der
    expected = expected_index(state, source)
    verified = verify_stream_slice(certified_slice, public_key, state.subnet_id, expected)
    piece = verified.slice
    outgoing = state.stream_to(source)
    check_slice(expected, outgoing.header.begin, piece)
    # 1. signals: garbage-collect what the source has inducted
    acknowledged, dropped = outgoing.acknowledge(piece.header.signals_end)
    rejected = set(piece.header.reject_signals)
    state = state.with_stream(source, acknowledged)
    for offset, message in enumerate(dropped):
        if outgoing.header.begin + offset in rejected and isinstance(message, CanisterRequest):
            state = enqueue_input(state, message.sender, _reject_signal_response(message))
    # 2. messages, in order
    for message in piece.messages:
        if isinstance(message, CanisterRequest):
            if message.receiver == MANAGEMENT_CANISTER:
                state = enqueue_management(state, message)
            elif state.canister(message.receiver) is None:
                reverse = state.stream_to(source).push(
                    destination_not_found(message), limit=UNLIMITED
                )
                state = state.with_stream(source, reverse)
            elif input_queue_full(state, message, config):
                reject = queue_full(message, "its input queue")
                state = state.with_stream(
                    source, state.stream_to(source).push(reject, limit=UNLIMITED)
                )
            else:
                state = enqueue_input(state, message.receiver, message)
        elif isinstance(message, CanisterResponse):
            if state.canister(message.originator) is not None:
                state = enqueue_input(state, message.originator, message)
        else:
            raise StreamError(f"a stream carries requests and responses, not {type(message)}")
    # 3. our signals for the source
    reverse = state.stream_to(source).with_signals(piece.next_index)
    return state.with_stream(source, reverse)


def induct_xnet(
    state: ReplicatedState, slices: Sequence[XNetSlice], config: SubnetExecutionConfig
) -> ReplicatedState:
    """Induct a batch's XNet slices in order, skipping any that do not verify.

    Spec: protocol digest §4.1 step 2(a), §4.3.
    """
    for item in slices:
        try:
            source = Principal(item.source_subnet)
            state = induct_slice(state, source, item.certified_slice, config)
        except (StreamSliceError, StreamError, StateError, ValueError):
            continue
    return state

"""Stream building: deliver execution outputs to local queues, XNet streams or users.

Theory of operation.  Every execution produces outputs: canister requests,
canister responses and ingress results.  ``route_outputs`` sends each one where
it belongs:

* an ingress result becomes the request's terminal status in the ingress history
  (``replied`` with the reply bytes, or ``rejected`` with reject code, message and
  error code);
* a request to ``aaaaa-aa`` goes to the management queue of the subnet that hosts
  the canister it names (its ``canister_id`` argument), or of this subnet if it
  names none (``create_canister``, ``raw_rand``);
* a request or response for a canister on this subnet goes straight into that
  canister's input queue (the IC's "loopback stream": local messages never go
  through consensus and run in the same round while its budget lasts);
* anything else is appended to the outgoing stream towards the subnet that the
  routing table names; a request whose destination no subnet hosts, or whose
  stream is full (back-pressure), is answered at once with a reject response.

Responses are never refused: every request gets exactly one response.

Spec: protocol digest §4.1 step 2(c) (stream builder routes output queues by the
routing table; local messages are routed into local input queues), §4.3
(back-pressure, every request gets exactly one response); interface spec
§"Request status" (status, reply, reject_code, reject_message, error_code).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

import attrs

from icp.candid import CandidError, PrincipalType, Record, decode
from icp.execution.errors import ErrorCode, RejectCode
from icp.execution.executor import (
    CanisterRequest,
    CanisterResponse,
    IngressResult,
    Output,
    canister_text,
)
from icp.execution.system_api import Reject, Reply, Response
from icp.messaging.config import SubnetExecutionConfig
from icp.messaging.queues import MANAGEMENT_CANISTER, InputMessage
from icp.messaging.xnet import StreamError
from icp.principal import Principal
from icp.state.ingress_history import IngressHistory, IngressStatus, RequestStatus
from icp.state.replicated_state import ReplicatedState

UNLIMITED: Final = 1 << 62
"""Stream limit used for responses: back-pressure never drops a response."""

_CANISTER_ID_ARG = Record({"canister_id": PrincipalType})


def management_target(arg: bytes) -> bytes | None:
    """Return the ``canister_id`` a management call is about, or None if it names none.

    Spec: interface spec §"Effective canister id" (the ``canister_id`` field of the
    argument record of a call to ``aaaaa-aa``).
    """
    try:
        value = decode(arg, [_CANISTER_ID_ARG])[0]
    except (CandidError, IndexError, TypeError, ValueError):
        return None
    target = value.get("canister_id") if isinstance(value, dict) else None
    return target.raw if isinstance(target, Principal) else None


def destination_not_found(request: CanisterRequest) -> CanisterResponse:
    """Return the system's reject response for a request to a canister that does not exist.

    Spec: interface spec §"Reject codes" (3 DESTINATION_INVALID, IC0301 CanisterNotFound).
    """
    reject = Reject(
        int(RejectCode.DESTINATION_INVALID),
        f"Canister {canister_text(request.receiver)} not found",
        ErrorCode.CANISTER_NOT_FOUND.text(),
    )
    return CanisterResponse(
        request.sender, request.receiver, request.callback_id, reject, request.cycles
    )


def queue_full(request: CanisterRequest, what: str) -> CanisterResponse:
    """Return the reject response for a request refused by back-pressure.

    Spec: interface spec §"Reject codes" (2 SYS_TRANSIENT, IC0201 CanisterQueueFull).
    """
    reject = Reject(
        int(RejectCode.SYS_TRANSIENT),
        f"Canister {canister_text(request.receiver)}: {what} is full",
        ErrorCode.CANISTER_QUEUE_FULL.text(),
    )
    return CanisterResponse(
        request.sender, request.receiver, request.callback_id, reject, request.cycles
    )


def terminal_status(old: IngressStatus | None, response: Response) -> IngressStatus | None:
    """Return the replied/rejected status a result gives a request (None: ignored).

    A result for a request the history does not know, or that already finished, is
    ignored (it cannot happen for inducted requests).
    Spec: interface spec §"Request status"; digest §1.8.
    """
    if old is None or old.status not in (RequestStatus.RECEIVED, RequestStatus.PROCESSING):
        return None
    if isinstance(response, Reply):
        return IngressStatus(
            RequestStatus.REPLIED,
            old.expiry,
            reply=response.data,
            sender=old.sender,
            effective_canister_id=old.effective_canister_id,
        )
    return IngressStatus(
        RequestStatus.REJECTED,
        old.expiry,
        reject_code=response.code,
        reject_message=response.message,
        error_code=response.error_code or None,
        sender=old.sender,
        effective_canister_id=old.effective_canister_id,
    )


def record_ingress_result(
    history: IngressHistory, message_id: bytes, response: Response
) -> IngressHistory:
    """Return the history with the request's terminal status (replied or rejected).

    Spec: interface spec §"Request status"; digest §1.8.
    """
    new = terminal_status(history.get(message_id), response)
    return history if new is None else history.set_status(message_id, new)


def record_ingress_results(
    history: IngressHistory, results: Mapping[bytes, Response]
) -> IngressHistory:
    """Return the history with each request's terminal status, in one bulk update.

    The same as ``record_ingress_result`` for each ``(message id, response)``.
    Spec: interface spec §"Request status"; digest §1.8.
    """
    changes: dict[bytes, IngressStatus] = {}
    for message_id, response in results.items():
        new = terminal_status(history.get(message_id), response)
        if new is not None:
            changes[message_id] = new
    return history.set_statuses(changes) if changes else history


def input_queue_full(
    state: ReplicatedState, request: CanisterRequest, config: SubnetExecutionConfig
) -> bool:
    """Return whether the receiver's input queue holds ``max_queue_requests`` from the sender.

    Spec: interface spec §5.4 ("queue full ⇒ SYS_TRANSIENT"); dfinity/ic
    ``DEFAULT_QUEUE_CAPACITY`` = 500 messages per canister pair.
    """
    queue = state.messaging.queues_of(request.receiver).input
    if len(queue) < config.max_queue_requests:
        return False
    pending = sum(1 for m in queue if isinstance(m, CanisterRequest) and m.sender == request.sender)
    return pending >= config.max_queue_requests


def enqueue_input(
    state: ReplicatedState, receiver: bytes, message: InputMessage
) -> ReplicatedState:
    """Append ``message`` to a local canister's input queue (no check that it exists).

    Spec: protocol digest §4.1 step 2(a) (induction into canister input queues).
    """
    messaging = state.messaging
    queues = messaging.queues_of(receiver)
    queues = attrs.evolve(queues, input=(*queues.input, message))
    return state.with_messaging(messaging.with_queues(receiver, queues))


def enqueue_management(state: ReplicatedState, request: CanisterRequest) -> ReplicatedState:
    """Append a canister's call to ``aaaaa-aa`` to the subnet's management queue.

    Spec: interface spec §"The IC management canister".
    """
    messaging = state.messaging
    return state.with_messaging(
        attrs.evolve(messaging, management=(*messaging.management, request))
    )


def route_outputs(
    state: ReplicatedState, outputs: Iterable[Output], config: SubnetExecutionConfig
) -> ReplicatedState:
    """Deliver each output to the ingress history, a local queue or an XNet stream.

    Spec: protocol digest §4.1 step 2(c), §4.3.
    """
    history = None  # consecutive ingress results go into one history update
    for output in outputs:
        if isinstance(output, IngressResult):
            history = record_ingress_result(
                history if history is not None else state.ingress_history,
                output.message_id,
                output.response,
            )
            continue
        if history is not None:
            state, history = state.with_ingress_history(history), None
        state = route_output(state, output, config)
    return state if history is None else state.with_ingress_history(history)


def route_output(
    state: ReplicatedState, output: Output, config: SubnetExecutionConfig
) -> ReplicatedState:
    """Deliver one output; see ``route_outputs``.

    Spec: protocol digest §4.1 step 2(c), §4.3.
    """
    if isinstance(output, IngressResult):
        history = record_ingress_result(state.ingress_history, output.message_id, output.response)
        return state.with_ingress_history(history)
    if isinstance(output, CanisterRequest):
        if output.receiver == MANAGEMENT_CANISTER:
            target = management_target(output.arg)
            destination = None
            if target is not None and state.canister(target) is None:
                destination = state.topology.routing_table.route(Principal(target))
            if destination is None or destination == state.subnet_id:
                return enqueue_management(state, output)
        elif state.canister(output.receiver) is not None:
            if input_queue_full(state, output, config):
                return enqueue_input(state, output.sender, queue_full(output, "its input queue"))
            return enqueue_input(state, output.receiver, output)
        else:
            destination = state.topology.routing_table.route(Principal(output.receiver))
        if destination is None or destination == state.subnet_id:
            return enqueue_input(state, output.sender, destination_not_found(output))
        stream = state.stream_to(destination)
        try:
            stream = stream.push(output, limit=config.max_stream_messages)
        except StreamError:
            reject = queue_full(output, f"the stream to subnet {destination}")
            return enqueue_input(state, output.sender, reject)
        return state.with_stream(destination, stream)
    # a response
    if state.canister(output.originator) is not None:
        return enqueue_input(state, output.originator, output)
    destination = state.topology.routing_table.route(Principal(output.originator))
    if destination is None or destination == state.subnet_id:
        return state  # the caller was deleted: nobody waits for this response
    stream = state.stream_to(destination).push(output, limit=UNLIMITED)
    return state.with_stream(destination, stream)

"""The deterministic state machine: one finalized batch in, the next replicated state out.

Theory of operation.  ``execute_batch(state, batch, config)`` is the whole
per-height transition of a subnet, a pure function of its inputs (canister
runtimes are changed in place, inside their transactions, like the IC's
copy-on-write page maps):

1. relabel the state with the batch's height and time, and take the network
   topology (keys, routing table) from the registry at the batch's registry version;
2. induct the XNet slices (signals first, then messages) and the ingress
   messages (``induction``);
3. run one execution round (``scheduler.execute_round``): management calls,
   timers and heartbeats, canister messages; outputs are routed into local
   queues, outgoing XNet streams (stream building) and the ingress history;
4. ingress-history housekeeping: requests whose expiry has passed move from
   replied/rejected to ``done`` (their reply is forgotten), and entries that can
   no longer be resubmitted (expiry before ``time - permitted drift``) are pruned;
5. update the subnet metrics.

All honest replicas that start from the same state and apply the same batches
reach the same state, hence the same certified root hash and checkpoint hash.

Spec: protocol digest §4.1 (pipeline per finalized height: induction, execution,
stream building; batches in height order, exactly once; empty batches still
advance time), §4.7 (ingress history kept until expiry); interface spec
§"Request status" (``done``).
"""

from __future__ import annotations

import attrs

from icp.consensus.replica import Batch
from icp.messaging.config import SchedulerConfig, SubnetExecutionConfig, SubnetType
from icp.messaging.induction import induct_ingress, induct_xnet, parse_batch_ingress
from icp.messaging.scheduler import RoundStats, execute_round
from icp.state.ingress_history import IngressHistory, RequestStatus
from icp.state.replicated_state import ReplicatedState, StateError
from icp.types import Height, Time

__all__ = [
    "SchedulerConfig",
    "SubnetExecutionConfig",
    "SubnetType",
    "execute_batch",
    "execute_batch_with_stats",
    "update_ingress_history",
]


def update_ingress_history(
    history: IngressHistory, now: Time, permitted_drift: int, since: int = 0
) -> IngressHistory:
    """Forget replies of expired requests and prune ids that can no longer be resubmitted.

    A request id stays in the history while a message with that id could still be
    inducted (``expiry >= now - permitted_drift``), so it never executes twice.
    Replies are forgotten for requests that expired in ``[since, now)`` (``since``:
    the previous batch time, so each batch only visits newly expired entries; a
    reply that arrives after its request expired is kept until pruned).
    Spec: interface spec §"Request status" (replied/rejected → done); protocol
    digest §4.7 (ingress history kept until expiry).
    """
    history = history.prune(Time(now - permitted_drift))
    finished: list[bytes] = []
    for key, message_id in history.by_expiry.items_from(max(0, since).to_bytes(8, "big")):
        if int.from_bytes(key[:8], "big") >= now:
            break
        status = history.get(message_id)
        if status is not None and status.status in (RequestStatus.REPLIED, RequestStatus.REJECTED):
            finished.append(message_id)
    for message_id in finished:
        history = history.forget_replies(message_id)
    return history


def execute_batch_with_stats(
    state: ReplicatedState, batch: Batch, config: SubnetExecutionConfig
) -> tuple[ReplicatedState, RoundStats]:
    """Like ``execute_batch``, also returning what the execution round did.

    Spec: protocol digest §4.1.
    """
    if config.subnet_id != state.subnet_id:
        raise StateError(
            f"the config is for subnet {config.subnet_id}, the state for {state.subnet_id}"
        )
    if batch.height <= state.height:
        raise StateError(f"batch {batch.height} does not follow the state at {state.height}")
    previous_time = state.time
    state = state.at_height(Height(batch.height), Time(max(batch.time, state.time)))
    if config.topology_at is not None:
        topology = config.topology_at(batch.registry_version)
        if topology is not state.topology and topology != state.topology:
            state = state.with_topology(topology)
    state = induct_xnet(state, batch.payload.xnet, config)
    state = induct_ingress(state, parse_batch_ingress(batch.payload.ingress, config), config)
    state, stats = execute_round(state, config, batch.randomness)
    history = update_ingress_history(
        state.ingress_history, state.time, config.ingress_limits.permitted_drift, previous_time
    )
    state = state.with_ingress_history(history)
    metrics = attrs.evolve(
        state.metrics,
        update_transactions_total=state.metrics.update_transactions_total + stats.messages,
    )
    return state.with_metrics(metrics), stats


def execute_batch(
    state: ReplicatedState, batch: Batch, config: SubnetExecutionConfig
) -> ReplicatedState:
    """Return the subnet's state after the finalized ``batch`` (the next height).

    Raises ``StateError`` if the batch does not follow ``state`` (wrong subnet, or a
    height that is not above the state's); malformed or invalid batch contents are
    skipped, never raised.
    Spec: protocol digest §4.1.
    """
    return execute_batch_with_stats(state, batch, config)[0]

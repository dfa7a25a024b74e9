"""Canister input queues and the scheduler's bookkeeping, kept in the replicated state.

Theory of operation.  Induction puts messages into per-canister queues; the
scheduler takes them out, possibly over several rounds when the round's
instruction budget runs out, so the queues are part of the replicated state
(they survive between batches and are written to checkpoints).  Each canister
has an *ingress* queue (user calls) and an *input* queue (requests and responses
from canisters, local or remote); the scheduler alternates between them.  The
management canister ``aaaaa-aa`` has its own subnet-level queue.  Everything is
an immutable value: ``attrs.evolve`` and ``PMap.set`` derive the next one.

Spec: protocol digest §4.1 (induction into canister input queues), §4.5
(accumulated priority per canister); interface spec §"Abstract behavior"
(message queues per canister).
"""

from __future__ import annotations

from typing import Final

import attrs

from icp.execution.executor import CanisterRequest, CanisterResponse, IngressMessage
from icp.state.pmap import PMap

InputMessage = CanisterRequest | CanisterResponse
"""A message from another canister (a request to serve or a response to a call)."""

ManagementMessage = IngressMessage | CanisterRequest
"""A call to the management canister ``aaaaa-aa``."""

MANAGEMENT_CANISTER: Final = b""
"""Raw id of the management canister (the empty principal)."""


@attrs.frozen(slots=True)
class CanisterQueues:
    """The messages waiting for one canister and its scheduling priority.

    Spec: protocol digest §4.5 (accumulated priority), §4.1 (input queues).
    """

    ingress: tuple[IngressMessage, ...] = ()  # user calls, in induction order
    input: tuple[InputMessage, ...] = ()  # canister requests and responses, FIFO
    accumulated_priority: int = 0  # AP in percent-of-a-core units (scheduler.py)

    def is_empty(self) -> bool:
        """Return whether no message waits."""
        return not self.ingress and not self.input


def _queues(value: PMap[CanisterQueues] | dict[bytes, CanisterQueues]) -> PMap[CanisterQueues]:
    return value if isinstance(value, PMap) else PMap(value)


@attrs.frozen(slots=True)
class MessagingState:
    """Message routing's part of the replicated state (not in the certified tree).

    Spec: protocol digest §4.1 (induction pool), §4.5 (scheduler state);
    interface spec §"Canister ids" (the subnet allocates ids from its ranges).
    """

    queues: PMap[CanisterQueues] = attrs.field(factory=PMap, converter=_queues)
    # canister id (raw) -> its queues; absent = empty with priority 0
    management: tuple[ManagementMessage, ...] = ()  # calls to aaaaa-aa, FIFO
    next_canister_index: int = 0  # next canister index create_canister tries
    charged_until: int = 0  # batch time up to which idle resources were charged (ns)
    rounds: int = 0  # execution rounds run so far

    def queues_of(self, canister_id: bytes) -> CanisterQueues:
        """Return a canister's queues (empty ones if it has none)."""
        return self.queues.get(canister_id, EMPTY_QUEUES)

    def with_queues(self, canister_id: bytes, queues: CanisterQueues) -> MessagingState:
        """Return the state with one canister's queues replaced (dropped when empty)."""
        if queues.is_empty() and queues.accumulated_priority == 0:
            if canister_id in self.queues:
                return attrs.evolve(self, queues=self.queues.remove(canister_id))
            return self
        return attrs.evolve(self, queues=self.queues.set(canister_id, queues))

    def pending_messages(self) -> int:
        """Return how many messages wait in all queues (management included)."""
        return len(self.management) + sum(
            len(q.ingress) + len(q.input) for q in self.queues.values()
        )


EMPTY_QUEUES: Final = CanisterQueues()

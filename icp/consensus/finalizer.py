"""Finalizer: finalization-share a notarized block when it is the only one this node supported.

Spec: ICC paper §3.5 (finalization share when D ⊆ {B}); protocol.md §1.4 step 5 and
§1.7 "Finalizer" ((a) one share per height, (b) exactly one notarized block, (c) no own
notarization share for another block; applied to every height in (F, N]).
"""

from __future__ import annotations

from icp.consensus.artifacts import (
    Block,
    FinalizationContent,
    FinalizationShare,
    NotarizationShare,
)
from icp.consensus.config import REPLICA_VERSION
from icp.consensus.context import ReplicaContext
from icp.consensus.pool import AddToValidated, ChangeAction, PoolReader
from icp.consensus.ranking import get_notarization_committee
from icp.types import Height, Time


def finalization_candidate(
    notarized: list[Block], own_notarization_shares: list[NotarizationShare]
) -> Block | None:
    """Return the block to finalization-share at a height, or None.

    Exactly one notarized block B, and every own notarization share is for B.

    Spec: ICC paper §3.5 ("D ⊆ {B}"); protocol.md §1.7 "Finalizer" (b), (c); INV-5.
    """
    if len(notarized) != 1:
        return None
    block_hash = notarized[0].block_hash()
    if any(s.content.block != block_hash for s in own_notarization_shares):
        return None
    return notarized[0]


class Finalizer:
    """Issue finalization shares for notarized heights above the finalized height.

    Spec: ICC paper §3.5; protocol.md §1.7 "Finalizer".
    """

    def __init__(self, ctx: ReplicaContext) -> None:
        self.ctx = ctx

    def on_state_change(self, pool: PoolReader, now: Time) -> list[ChangeAction]:
        """Return finalization shares."""
        out: list[ChangeAction] = []
        for h in range(pool.finalized_height() + 1, pool.notarized_height() + 1):
            height = Height(h)
            if pool.shares_by(FinalizationShare, height, self.ctx.node):
                continue
            beacon = pool.beacon_at(height - 1)
            if beacon is None or self.ctx.node not in get_notarization_committee(
                beacon, self.ctx.config.n
            ):
                continue
            block = finalization_candidate(
                pool.notarized_blocks_at(height),
                pool.shares_by(NotarizationShare, height, self.ctx.node),
            )
            if block is None:
                continue
            content = FinalizationContent(REPLICA_VERSION, height, block.block_hash())
            signature = self.ctx.crypto.sign_multi(
                self.ctx.secrets.committee, content.signing_bytes()
            )
            out.append(AddToValidated(FinalizationShare(content, self.ctx.node, signature)))
        return out

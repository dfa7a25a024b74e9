"""Notary: support (notarization-share) the lowest-ranked valid blocks of the round.

Spec: ICC paper §3.4 step "Support" (share a valid round-k block of rank r once
Delta_ntry(r) has passed, only if no block of lower rank was shared); protocol.md §1.4
step 2 and §1.7 (b) (``find_lowest_ranked_non_disqualified_proposals``; committee
membership; adjusted notary delay).
"""

from __future__ import annotations

from icp.consensus.artifacts import BlockProposal, NotarizationContent, NotarizationShare
from icp.consensus.config import REPLICA_VERSION
from icp.consensus.context import ReplicaContext
from icp.consensus.delays import get_notary_delay
from icp.consensus.pool import AddToValidated, ChangeAction, PoolReader, Relay
from icp.consensus.ranking import get_notarization_committee
from icp.types import Height, NodeIndex, Rank, Time


def lowest_ranked_non_disqualified(
    proposals: list[BlockProposal], disqualified: set[NodeIndex]
) -> list[BlockProposal]:
    """Return the proposals of the lowest rank whose maker did not equivocate.

    Spec: protocol.md §1.7 (b), "Equivocation" (a disqualified rank is ignored).
    """
    eligible = [p for p in proposals if p.signer not in disqualified]
    if not eligible:
        return []
    lowest = min(p.rank for p in eligible)
    return [p for p in eligible if p.rank == lowest]


def may_support(
    candidate: BlockProposal, own_shared_ranks: list[Rank], already_shared: set[bytes]
) -> bool:
    """Return whether the notary may still share ``candidate``.

    Not shared before, and no block of strictly lower rank shared at this height.

    Spec: ICC paper §3.4 ("no block of rank < r is in D"); protocol.md INV-6.
    """
    if candidate.block.block_hash() in already_shared:
        return False
    return all(candidate.rank <= r for r in own_shared_ranks)


class Notary:
    """Notarization-share the best blocks of the current round.

    Spec: ICC paper §3.4; protocol.md §1.7 (b).
    """

    def __init__(self, ctx: ReplicaContext) -> None:
        self.ctx = ctx

    def on_state_change(self, pool: PoolReader, now: Time) -> list[ChangeAction]:
        """Return notarization shares (and echoes of the supported blocks)."""
        height = Height(pool.notarized_height() + 1)
        beacon = pool.beacon_at(height - 1)
        if beacon is None:
            return []
        if self.ctx.node not in get_notarization_committee(beacon, self.ctx.config.n):
            return []
        start = pool.round_start(height)
        if start is None:
            return []
        disqualified = pool.equivocators_at(height)
        candidates = lowest_ranked_non_disqualified(pool.proposals_at(height), disqualified)
        if not candidates:
            return []
        own = pool.shares_by(NotarizationShare, height, self.ctx.node)
        already = {s.content.block for s in own}
        blocks = {p.block.block_hash(): p for p in pool.proposals_at(height)}
        own_ranks = [
            blocks[h].rank for h in already if h in blocks and blocks[h].signer not in disqualified
        ]
        out: list[ChangeAction] = []
        for proposal in sorted(candidates, key=lambda p: p.block.block_hash()):
            if not may_support(proposal, own_ranks, already):
                continue
            delay = get_notary_delay(
                self.ctx.config, proposal.rank, pool.notarized_height(), pool.finalized_height()
            )
            if delay is None or now < start + delay:
                continue
            content = NotarizationContent(REPLICA_VERSION, height, proposal.block.block_hash())
            signature = self.ctx.crypto.sign_multi(
                self.ctx.secrets.committee, content.signing_bytes()
            )
            out.append(AddToValidated(NotarizationShare(content, self.ctx.node, signature)))
            out.append(Relay(proposal))  # echo (ICC1)
            already.add(proposal.block.block_hash())
            own_ranks.append(proposal.rank)
        return out

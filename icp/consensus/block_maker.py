"""Block maker: propose a block of one's rank once the rank's delay has passed.

Spec: ICC paper §3.4 step "Propose" (wait Delta_prop(rank) after the round starts, build
on a notarized block of the previous round); protocol.md §1.7 (a) (only ranks 0..f
propose; no proposal once a lower-rank validated proposal exists; parent = lowest-rank
notarized block), §1.6 (context rules).
"""

from __future__ import annotations

from icp.consensus.artifacts import (
    Block,
    BlockMetadata,
    BlockProposal,
    DataPayload,
    DealingMessage,
    Payload,
    SummaryPayload,
    ValidationContext,
)
from icp.consensus.config import REPLICA_VERSION
from icp.consensus.context import ReplicaContext
from icp.consensus.delays import get_block_maker_delay
from icp.consensus.dkg import chain_since, compute_summary, dealings_on_chain, summary_of
from icp.consensus.pool import AddToValidated, ChangeAction, PoolReader
from icp.consensus.ranking import get_block_maker_rank
from icp.types import Height, Rank, Time


def select_parent(pool: PoolReader, height: Height) -> Block | None:
    """Return the lowest-rank notarized block at ``height`` (ties by hash), if any.

    Spec: protocol.md §1.7 (a) "Parent = lowest-rank notarized block at h-1".
    """
    blocks = pool.notarized_blocks_at(height)
    if not blocks:
        return None
    return min(blocks, key=lambda b: (b.rank, b.block_hash()))


def undelivered_ancestors(pool: PoolReader, ctx: ReplicaContext, parent: Block) -> list[Block]:
    """Return ``parent`` and its ancestors whose batches are not in the state yet, newest first.

    That is every ancestor above the finalized height, and also the finalized blocks
    whose batches wait for their random tape (above ``ctx.delivered_height``): the
    payload builder checks a payload against the state plus these blocks' payloads, so
    a message already in one of them is not proposed (or accepted) again.
    Spec: protocol.md §1.6 (payloads are validated against the past payloads of the
    chain since the state they build on).
    """
    out: list[Block] = []
    block: Block | None = parent
    floor = pool.finalized_height()
    if ctx.delivered_height is not None:
        floor = min(floor, ctx.delivered_height)
    while block is not None and block.height > floor:
        out.append(block)
        block = pool.block(block.parent)
    return out


def previous_summary_chain(
    pool: PoolReader, ctx: ReplicaContext, parent: Block
) -> list[Block] | None:
    """Return the chain from ``parent`` down to the summary block of its interval."""
    start = ctx.config.interval_start(parent.height)
    return chain_since(pool.pool.blocks_by_hash, parent, start)


def build_summary_payload(
    pool: PoolReader, ctx: ReplicaContext, parent: Block, height: Height
) -> SummaryPayload | None:
    """Return the deterministic summary payload for a summary block on ``parent``.

    Spec: protocol.md §3.1 (the summary block's DKG summary).
    """
    chain = previous_summary_chain(pool, ctx, parent)
    if chain is None:
        return None
    previous = summary_of(chain[-1])
    if previous is None:
        return None
    return SummaryPayload(compute_summary(ctx.config, ctx.dkg, previous, chain[:-1], height))


def select_dealings(
    pool: PoolReader, ctx: ReplicaContext, parent: Block
) -> tuple[DealingMessage, ...]:
    """Return up to ``dkg_dealings_per_block`` validated dealings not yet on the chain.

    Spec: protocol.md §3.1 (DKG_DEALINGS_PER_BLOCK = 1; dealings posted in blocks).
    """
    chain = previous_summary_chain(pool, ctx, parent)
    if chain is None:
        return ()
    summary = summary_of(chain[-1])
    if summary is None or not summary.configs:
        return ()
    included = {(d.content.dkg_id, d.content.dealer) for d in dealings_on_chain(chain)}
    candidates = sorted(
        (
            d
            for d in pool.dealings_at(summary.height + ctx.config.dkg_interval_length + 1)
            if (d.content.dkg_id, d.content.dealer) not in included
        ),
        key=lambda d: (d.content.dkg_id, d.content.dealer),
    )
    return tuple(candidates[: ctx.config.dkg_dealings_per_block])


def build_block(
    pool: PoolReader, ctx: ReplicaContext, parent: Block, rank: Rank, now: Time
) -> Block | None:
    """Return a new block of ``rank`` on ``parent`` (None if a payload cannot be built yet).

    The context carries this node's latest registry version, so a registry change
    reaches the subnet's state at the first block that carries it.
    Spec: protocol.md §1.6 (context: time = max(now, parent time), registry_version =
    latest local registry version; non-decreasing).
    """
    height = Height(parent.height + 1)
    registry_version = ctx.latest_registry_version()
    if registry_version < parent.context.registry_version:
        return None  # the parent's registry version has not reached this node yet
    context = ValidationContext(
        registry_version,
        parent.context.certified_height,
        Time(max(now, parent.context.time)),
    )
    payload: Payload
    if ctx.config.is_summary_height(height):
        summary = build_summary_payload(pool, ctx, parent, height)
        if summary is None:
            return None
        payload = summary
    else:
        past = undelivered_ancestors(pool, ctx, parent)
        batch = ctx.payload_builder.get_batch(height, context.time, past)
        payload = DataPayload(batch, select_dealings(pool, ctx, parent))
    return Block(REPLICA_VERSION, parent.block_hash(), height, rank, context, payload)


def sign_proposal(ctx: ReplicaContext, block: Block) -> BlockProposal:
    """Return ``block`` signed by this node's basic key."""
    metadata = BlockMetadata(
        block.version, block.height, ctx.membership.subnet_id, block.block_hash()
    )
    signature = ctx.crypto.sign_basic(ctx.secrets.basic, metadata.signing_bytes())
    return BlockProposal(block, ctx.node, signature, ctx.membership.subnet_id)


class BlockMaker:
    """Propose at most one block per height, respecting the rank's delay.

    Spec: ICC paper §3.4; protocol.md §1.7 (a).
    """

    def __init__(self, ctx: ReplicaContext) -> None:
        self.ctx = ctx

    def on_state_change(self, pool: PoolReader, now: Time) -> list[ChangeAction]:
        """Return a new proposal when it is this node's turn."""
        height = Height(pool.notarized_height() + 1)
        beacon = pool.beacon_at(height - 1)
        if beacon is None:
            return []
        rank = get_block_maker_rank(beacon, self.ctx.node, self.ctx.config.n)
        if rank is None:
            return []
        proposals = pool.proposals_at(height)
        if any(p.signer == self.ctx.node for p in proposals):
            return []
        disqualified = pool.equivocators_at(height)
        if any(p.rank < rank and p.signer not in disqualified for p in proposals):
            return []
        start = pool.round_start(height)
        if start is None or now < start + get_block_maker_delay(self.ctx.config, rank):
            return []
        parent = select_parent(pool, Height(height - 1))
        if parent is None:
            return []
        block = build_block(pool, self.ctx, parent, rank, now)
        if block is None:
            return []
        return [AddToValidated(sign_proposal(self.ctx, block))]

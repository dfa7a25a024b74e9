"""Random beacon and random tape makers.

Spec: ICC paper §3.2 (the random beacon R_k, a threshold signature on R_{k-1});
protocol.md §2.3 (beacon share rule of ``random_beacon_maker.rs``; random tape).
"""

from __future__ import annotations

from collections.abc import Callable

from icp.consensus.artifacts import (
    DkgTag,
    RandomBeaconContent,
    RandomBeaconShare,
    RandomTape,
    RandomTapeContent,
    RandomTapeShare,
)
from icp.consensus.config import REPLICA_VERSION
from icp.consensus.context import ReplicaContext
from icp.consensus.pool import AddToValidated, ChangeAction, PoolReader
from icp.types import Height, Time

RANDOM_TAPE_CHECK_MAX_HEIGHT_RANGE = 16
"""At most this many heights from the next batch height on get tape shares / tapes.

Spec: dfinity/ic ``random_tape_maker.rs`` ``RANDOM_TAPE_CHECK_MAX_HEIGHT_RANGE = 16``.
"""

NextBatchHeight = Callable[[], Height]
"""Returns the height of the next batch to deliver (message routing's expected height)."""


def tape_heights(pool: PoolReader, next_batch_height: NextBatchHeight | None) -> range:
    """Return the heights that may still need a tape share or a tape.

    From max(next batch height, CUP height + 1) up to the finalized height, at most
    ``RANDOM_TAPE_CHECK_MAX_HEIGHT_RANGE`` heights: anchored at the delivery frontier,
    not the finalized tip, so a tape lost while finalization ran ahead is still made
    (else batch delivery would stop for good). We differ from the IC on the upper
    bound: the IC already shares the tape of finalized height + 1; we wait until a
    height is finalized (its block maker cannot predict its tape). Without a message
    routing hook, the delivery frontier is taken as RANGE heights below the tip.

    Spec: dfinity/ic ``random_tape_maker.rs`` (``next_batch_height = max(expected
    batch height, CUP height + 1)``), ``share_aggregator.rs``
    ``aggregate_random_tape_shares``; protocol.md §1.2, §2.3.
    """
    finalized = pool.finalized_height()
    if next_batch_height is None:
        start = finalized - RANDOM_TAPE_CHECK_MAX_HEIGHT_RANGE
    else:
        start = next_batch_height()
    start = max(start, pool.cup_height() + 1)
    return range(start, min(start + RANDOM_TAPE_CHECK_MAX_HEIGHT_RANGE, finalized) + 1)


def should_share_beacon(pool: PoolReader, ctx: ReplicaContext, height: Height) -> bool:
    """Return whether to issue a beacon share for ``height`` = notarized height + 1.

    Beacon h - 1 exists, beacon h does not, no own share at h yet.

    Spec: protocol.md §2.3 (random_beacon_maker: share for N+1 iff beacon N exists,
    beacon N+1 does not, not yet shared, in the low-threshold committee).
    """
    return (
        pool.beacon_at(height - 1) is not None
        and pool.beacon_at(height) is None
        and not pool.shares_by(RandomBeaconShare, height, ctx.node)
    )


class RandomBeaconMaker:
    """Issue this node's threshold share of the next beacon.

    Spec: ICC paper §3.2; protocol.md §2.3.
    """

    def __init__(self, ctx: ReplicaContext) -> None:
        self.ctx = ctx

    def on_state_change(self, pool: PoolReader, now: Time) -> list[ChangeAction]:
        """Return at most one new beacon share."""
        height = Height(pool.notarized_height() + 1)
        if not should_share_beacon(pool, self.ctx, height):
            return []
        transcript = self.ctx.transcript(height, DkgTag.LOW)
        if transcript is None:
            return []
        share = self.ctx.keys.share_for(transcript)
        previous = pool.beacon_at(height - 1)
        if share is None or previous is None:
            return []
        content = RandomBeaconContent(REPLICA_VERSION, height, previous.artifact_hash())
        signature = self.ctx.crypto.sign_threshold_share(share, content.signing_bytes())
        return [AddToValidated(RandomBeaconShare(content, self.ctx.node, signature))]


class RandomTapeMaker:
    """Issue tape shares for finalized heights that have no tape yet.

    Spec: protocol.md §1.2 (the tape of height h is made only after h is finalized, so
    the block maker cannot predict it), §2.3.
    """

    def __init__(
        self, ctx: ReplicaContext, next_batch_height: NextBatchHeight | None = None
    ) -> None:
        self.ctx = ctx
        self.next_batch_height = next_batch_height

    def on_state_change(self, pool: PoolReader, now: Time) -> list[ChangeAction]:
        """Return tape shares for undelivered finalized heights lacking a tape."""
        out: list[ChangeAction] = []
        for h in tape_heights(pool, self.next_batch_height):
            height = Height(h)
            if pool.tape_at(height) is not None or pool.shares_by(
                RandomTapeShare, height, self.ctx.node
            ):
                continue
            transcript = self.ctx.transcript(height, DkgTag.LOW)
            share = None if transcript is None else self.ctx.keys.share_for(transcript)
            if share is None:
                continue
            content = RandomTapeContent(REPLICA_VERSION, height)
            signature = self.ctx.crypto.sign_threshold_share(share, content.signing_bytes())
            out.append(AddToValidated(RandomTapeShare(content, self.ctx.node, signature)))
        return out


def tape_is_complete(pool: PoolReader, height: Height) -> RandomTape | None:
    """Return the tape at ``height`` if present."""
    return pool.tape_at(height)

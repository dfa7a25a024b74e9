"""Random beacon and random tape makers.

Spec: ICC paper §3.2 (the random beacon R_k, a threshold signature on R_{k-1});
protocol.md §2.3 (beacon share rule of ``random_beacon_maker.rs``; random tape).
"""

from __future__ import annotations

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

TAPE_WINDOW = 4
"""How many finalized heights below the tip the tape maker still signs."""


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

    def __init__(self, ctx: ReplicaContext) -> None:
        self.ctx = ctx

    def on_state_change(self, pool: PoolReader, now: Time) -> list[ChangeAction]:
        """Return tape shares for recent finalized heights lacking a tape."""
        out: list[ChangeAction] = []
        finalized = pool.finalized_height()
        for h in range(max(pool.cup_height() + 1, finalized - TAPE_WINDOW), finalized + 1):
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

"""Catch-up package maker and adopter.

Spec: protocol.md §3.2 (a CUP at each summary height once the state there is known,
threshold-signed with the interval's high-threshold key; a node can start from a CUP
alone; pools are purged below the CUP height); §1.7 "Catch-up packages".
"""

from __future__ import annotations

from collections.abc import Callable

from icp.consensus.artifacts import CatchUpContent, CatchUpPackageShare, DkgTag
from icp.consensus.context import ReplicaContext
from icp.consensus.pool import AddToValidated, AdoptCatchUpPackage, ChangeAction, PoolReader
from icp.types import Height, Time

StateHashOf = Callable[[Height], "bytes | None"]
"""Returns the replicated state hash after executing ``height`` (None: not yet)."""


class CatchUpPackageMaker:
    """Share a CUP for the latest finalized summary block once its state hash is known.

    Spec: protocol.md §3.2; dfinity/ic ``catchup_package_maker.rs``.
    """

    def __init__(self, ctx: ReplicaContext, state_hash_of: StateHashOf) -> None:
        self.ctx = ctx
        self.state_hash_of = state_hash_of

    def on_state_change(self, pool: PoolReader, now: Time) -> list[ChangeAction]:
        """Return at most one CUP share."""
        height = self.ctx.config.interval_start(pool.finalized_height())
        if height <= pool.latest_validated_cup().height:
            return []
        if pool.shares_by(CatchUpPackageShare, height, self.ctx.node):
            return []
        block = pool.finalized_block_at(height)
        beacon = pool.beacon_at(height)
        state_hash = self.state_hash_of(height)
        transcript = self.ctx.transcript(height, DkgTag.HIGH)
        if block is None or beacon is None or state_hash is None or transcript is None:
            return []
        share = self.ctx.keys.share_for(transcript)
        if share is None:
            return []
        content = CatchUpContent(block, beacon, state_hash, self.ctx.config.registry_version)
        signature = self.ctx.crypto.sign_threshold_share(share, content.signing_bytes())
        return [AddToValidated(CatchUpPackageShare(content, self.ctx.node, signature))]


class CatchUpPackageAdopter:
    """Re-root the pool at the newest validated CUP (purging everything below it).

    Spec: protocol.md §3.2 ("All artifacts below the CUP height can be purged").
    """

    def on_state_change(self, pool: PoolReader, now: Time) -> list[ChangeAction]:
        """Return an adoption when a newer CUP is validated."""
        latest = pool.latest_validated_cup()
        if latest.height > pool.cup_height():
            return [AdoptCatchUpPackage(latest)]
        return []

"""DKG dealer: deal once for every DKG of the current interval this node deals in.

Spec: protocol.md §3.1 (dealings for the next transcripts are collected during the
interval; resharing dealers deal a sharing of their current share).
"""

from __future__ import annotations

import hashlib

from icp.consensus.artifacts import DealingContent, DealingMessage
from icp.consensus.context import ReplicaContext
from icp.consensus.dkg import DkgError, resharing_source
from icp.consensus.pool import AddToValidated, ChangeAction, PoolReader
from icp.types import Time


class DkgDealer:
    """Create this node's dealings for the configs of the current summary."""

    def __init__(self, ctx: ReplicaContext) -> None:
        self.ctx = ctx
        self._dealt: set[tuple[int, int]] = set()

    def on_state_change(self, pool: PoolReader, now: Time) -> list[ChangeAction]:
        """Return new dealings (at most one per config)."""
        backend = self.ctx.dkg
        if backend is None:
            return []
        start = self.ctx.config.interval_start(pool.finalized_height())
        summary = self.ctx.summaries.get(start)
        if summary is None:
            return []
        out: list[ChangeAction] = []
        mine = {
            d.content.dkg_id
            for d in pool.dealings_at(start + self.ctx.config.dkg_interval_length + 1)
            if d.content.dealer == self.ctx.node
        }
        for config in summary.configs:
            marker = (config.dkg_id.start_height, int(config.dkg_id.tag))
            if (
                self.ctx.node not in config.dealers
                or config.dkg_id in mine
                or marker in self._dealt
            ):
                continue
            reshared = None
            source = resharing_source(summary, config)
            if source is not None:
                reshared = self.ctx.keys.share_for(source)
                if reshared is None:
                    continue
            seed = hashlib.sha256(self.ctx.secrets.dkg_seed + repr(config.dkg_id).encode()).digest()
            try:
                dealing = backend.create_dealing(config, self.ctx.node, reshared, source, seed)
            except DkgError:
                self._dealt.add(marker)
                continue
            content = DealingContent(config.dkg_id, self.ctx.node, dealing)
            signature = self.ctx.crypto.sign_basic(self.ctx.secrets.basic, content.signing_bytes())
            self._dealt.add(marker)
            out.append(AddToValidated(DealingMessage(content, signature)))
        return out

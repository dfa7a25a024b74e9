"""Share aggregator: turn enough validated shares into full artifacts.

Notarizations and finalizations are BLS *multi-signatures*: the aggregate lists its
signers. The IC uses multi-signatures here (not threshold signatures) because the
protocol only needs "2f + 1 committee members signed this", which aggregation proves
with per-node keys and without a DKG for the notarization committee; it also tells who
signed (useful for accountability and rewards). Uniqueness is not needed: two different
valid notarizations of one block are equally good. The beacon, tape and CUP need a
*unique*, unpredictable value, so they use threshold BLS (any t shares give the same
signature). To keep artifacts identical across replicas we aggregate the 2f + 1 lowest
signer indices.

Spec: protocol.md §1.7 ("notarization/finalization signatures are BLS multi-signatures
... only the beacon needs threshold (unique) signatures"), §2.1 threshold table;
ICC paper §3.4-3.5.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TypeVar

from icp.consensus.artifacts import (
    CatchUpPackage,
    CatchUpPackageShare,
    DkgTag,
    Finalization,
    FinalizationShare,
    Notarization,
    NotarizationShare,
    RandomBeacon,
    RandomBeaconShare,
    RandomTape,
    RandomTapeShare,
)
from icp.consensus.beacon import NextBatchHeight, tape_heights
from icp.consensus.context import ReplicaContext
from icp.consensus.dkg import receiver_position, to_threshold_public_key
from icp.consensus.pool import AddToValidated, ChangeAction, PoolReader
from icp.crypto.errors import CryptoError
from icp.types import Height, NodeIndex, Time

S = TypeVar("S", NotarizationShare, FinalizationShare)


def group_by_block(shares: list[S]) -> dict[bytes, dict[NodeIndex, S]]:
    """Return shares grouped by block hash, one per signer."""
    grouped: dict[bytes, dict[NodeIndex, S]] = defaultdict(dict)
    for share in shares:
        grouped[share.content.block].setdefault(share.signer, share)
    return grouped


class ShareAggregator:
    """Aggregate beacon, notarization, finalization, tape and CUP shares.

    Spec: ICC paper §3.4-3.5 (n - t shares make a notarization / finalization);
    protocol.md §2.1 (thresholds), §3.2 (CUP shares).
    """

    def __init__(
        self, ctx: ReplicaContext, next_batch_height: NextBatchHeight | None = None
    ) -> None:
        self.ctx = ctx
        self.next_batch_height = next_batch_height

    def on_state_change(self, pool: PoolReader, now: Time) -> list[ChangeAction]:
        """Return newly aggregated artifacts."""
        return [
            *self._beacon(pool),
            *self._multi(pool, NotarizationShare),
            *self._multi(pool, FinalizationShare),
            *self._tapes(pool),
            *self._cups(pool),
        ]

    def _threshold_signature(
        self, height: Height, tag: DkgTag, shares: dict[NodeIndex, bytes], message: bytes
    ) -> bytes | None:
        transcript = self.ctx.transcript(height, tag)
        if transcript is None:
            return None
        positions: dict[int, bytes] = {}
        for signer, signature in shares.items():
            position = receiver_position(transcript, signer)
            if position is not None:
                positions[position] = signature
        if len(positions) < transcript.threshold:
            return None
        try:
            return self.ctx.crypto.combine_threshold(
                to_threshold_public_key(transcript), positions, message
            )
        except CryptoError:
            return None

    def _beacon(self, pool: PoolReader) -> list[ChangeAction]:
        height = Height(pool.beacon_height() + 1)
        shares = pool.validated_at(RandomBeaconShare, height)
        if not shares:
            return []
        content = shares[0].content
        matching = {s.signer: s.signature for s in shares if s.content == content}
        signature = self._threshold_signature(height, DkgTag.LOW, matching, content.signing_bytes())
        if signature is None:
            return []
        return [AddToValidated(RandomBeacon(content, signature))]

    def _multi(
        self, pool: PoolReader, kind: type[NotarizationShare] | type[FinalizationShare]
    ) -> list[ChangeAction]:
        out: list[ChangeAction] = []
        low = pool.finalized_height() + 1
        high = pool.notarized_height() + (1 if kind is NotarizationShare else 0)
        threshold = self.ctx.config.notarization_threshold
        for h in range(low, high + 1):
            if kind is NotarizationShare:
                done = {a.content.block for a in pool.validated_at(Notarization, h)}
                for block_hash, by_signer in group_by_block(
                    pool.validated_at(NotarizationShare, h)
                ).items():
                    if block_hash not in done and len(by_signer) >= threshold:
                        signers = tuple(sorted(by_signer)[:threshold])
                        signature = self.ctx.crypto.aggregate(
                            [by_signer[s].signature for s in signers]
                        )
                        content = by_signer[signers[0]].content
                        out.append(AddToValidated(Notarization(content, signers, signature)))
            else:
                done = {a.content.block for a in pool.validated_at(Finalization, h)}
                for block_hash, by_signer_f in group_by_block(
                    pool.validated_at(FinalizationShare, h)
                ).items():
                    if block_hash not in done and len(by_signer_f) >= threshold:
                        signers = tuple(sorted(by_signer_f)[:threshold])
                        signature = self.ctx.crypto.aggregate(
                            [by_signer_f[s].signature for s in signers]
                        )
                        fcontent = by_signer_f[signers[0]].content
                        out.append(AddToValidated(Finalization(fcontent, signers, signature)))
        return out

    def _tapes(self, pool: PoolReader) -> list[ChangeAction]:
        out: list[ChangeAction] = []
        for h in tape_heights(pool, self.next_batch_height):
            height = Height(h)
            if pool.tape_at(height) is not None:
                continue
            shares = pool.validated_at(RandomTapeShare, height)
            if not shares:
                continue
            content = shares[0].content
            matching = {s.signer: s.signature for s in shares if s.content == content}
            signature = self._threshold_signature(
                height, DkgTag.LOW, matching, content.signing_bytes()
            )
            if signature is not None:
                out.append(AddToValidated(RandomTape(content, signature), broadcast=True))
        return out

    def _cups(self, pool: PoolReader) -> list[ChangeAction]:
        latest = pool.latest_validated_cup().height
        height = self.ctx.config.interval_start(pool.finalized_height())
        if height <= latest:
            return []
        by_content: dict[bytes, dict[NodeIndex, bytes]] = defaultdict(dict)
        contents = {}
        for share in pool.validated_at(CatchUpPackageShare, height):
            key = share.content.signing_bytes()
            contents[key] = share.content
            by_content[key].setdefault(share.signer, share.signature)
        out: list[ChangeAction] = []
        for key, matching in by_content.items():
            signature = self._threshold_signature(height, DkgTag.HIGH, matching, key)
            if signature is not None:
                out.append(AddToValidated(CatchUpPackage(contents[key], signature)))
                break
        return out

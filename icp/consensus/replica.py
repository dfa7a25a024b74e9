"""ConsensusReplica: run the components in the IC's order, apply changes, deliver batches.

Theory of operation. ``on_artifact`` puts a peer's artifact into the unvalidated pool.
``tick(now)`` runs the components in a fixed order - finalizer, CUP maker, share
aggregator, notary, random beacon maker, random tape maker, block maker, DKG dealer,
validator, CUP adopter, purger - applying each one's change actions before the next
reads the pool, and repeats the cycle until nothing changes. It then delivers the
batches of newly finalized heights (in order; a batch needs its random tape) and
returns the artifacts to send. A replica that sees no progress for
``rebroadcast_interval`` re-sends its frontier (the IC's P2P re-advertises its whole
validated pool on reconnection), and helps peers whose shares show they lag behind.

Spec: dfinity/ic ``rs/consensus/src/consensus.rs`` (``on_state_change`` calls finalize,
make_catch_up_package, aggregate, notarize, make_random_beacon, make_random_tape,
make_block, validate, purge); protocol.md §1.4, §4.1 (batch delivery per finalized
height), §3.2 (start from a CUP).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import attrs

from icp.consensus.aggregator import ShareAggregator
from icp.consensus.artifacts import (
    BatchPayload,
    Block,
    BlockProposal,
    CatchUpPackage,
    ConsensusArtifact,
    DataPayload,
    Finalization,
    FinalizationShare,
    Notarization,
    NotarizationShare,
    RandomBeaconShare,
)
from icp.consensus.beacon import RandomBeaconMaker, RandomTapeMaker
from icp.consensus.block_maker import BlockMaker
from icp.consensus.catchup import CatchUpPackageAdopter, CatchUpPackageMaker
from icp.consensus.config import TIME_ZERO
from icp.consensus.context import ReplicaContext
from icp.consensus.dealer import DkgDealer
from icp.consensus.dkg import DkgError, summary_of
from icp.consensus.finalizer import Finalizer
from icp.consensus.notary import Notary
from icp.consensus.pool import ArtifactPool, ChangeAction, PoolReader
from icp.consensus.purger import Purger
from icp.consensus.validator import Validator
from icp.crypto.hashing import hash_with_domain
from icp.types import Height, NodeIndex, RegistryVersion, Time

MAX_CYCLES_PER_TICK = 16
CATCH_UP_BATCH = 64
"""At most this many finalized heights are re-sent to a lagging peer at once."""


class Component(Protocol):
    """A consensus component: read the pool, return changes."""

    def on_state_change(self, pool: PoolReader, now: Time) -> list[ChangeAction]:
        """Return the changes this component wants."""
        ...


@attrs.frozen(slots=True)
class Batch:
    """What consensus hands to message routing for one finalized height.

    Spec: protocol.md §4.1 (batch per finalized height, with time, randomness, registry
    version; summary heights require a checkpoint).
    """

    height: Height
    block_hash: bytes
    time: Time
    registry_version: RegistryVersion
    randomness: bytes
    """The random tape of the height (threshold signature), for ``raw_rand``."""
    payload: BatchPayload
    requires_checkpoint: bool


def batch_hash(previous: bytes, batch: Batch) -> bytes:
    """Return the running hash of the delivered batch sequence (the default state hash).

    Without an execution layer, the replicated "state" is the sequence of batches.
    """
    return hash_with_domain(
        b"icp-batch-chain",
        previous,
        batch.height.to_bytes(8, "big"),
        batch.block_hash,
        batch.randomness,
    )


class ConsensusReplica:
    """One replica's consensus: pool, components, batch delivery.

    Spec: see module docstring.
    """

    def __init__(
        self,
        ctx: ReplicaContext,
        cup: CatchUpPackage,
        now: Time = TIME_ZERO,
        *,
        on_batch: Callable[[Batch], bytes | None] | None = None,
    ) -> None:
        """Start from ``cup`` alone (genesis or any later CUP); no older blocks needed.

        ``on_batch`` executes a delivered batch and returns the new state hash (None: use
        the running batch hash).
        """
        self.ctx = ctx
        self.pool = ArtifactPool(cup, now)
        self.reader = PoolReader(self.pool)
        self.on_batch = on_batch
        self.batches: list[Batch] = []
        self.dkg_failures = 0
        """Transcripts whose share this node could not decrypt."""
        self.state_hashes: dict[Height, bytes] = {cup.height: cup.content.state_hash}
        self.delivered_height = cup.height
        self.last_state_hash = cup.content.state_hash
        self.finalized_log: dict[Height, bytes] = {cup.height: cup.content.block.block_hash()}
        self.finalized_parents: dict[Height, bytes] = {cup.height: cup.content.block.parent}
        self.summaries_seen_up_to = cup.height
        self._register_summary(cup.height, cup)
        self.last_progress = now
        self._last_progress_height = cup.height
        self.peer_heights: dict[NodeIndex, Height] = {}
        self._last_help = Time(-(10**18))
        self._resend_height = cup.height
        self.validator = Validator(ctx, self.state_hash_of)
        self.components: list[Component] = [
            Finalizer(ctx),
            CatchUpPackageMaker(ctx, self.state_hash_of),
            ShareAggregator(ctx),
            Notary(ctx),
            RandomBeaconMaker(ctx),
            RandomTapeMaker(ctx),
            BlockMaker(ctx),
            DkgDealer(ctx),
            self.validator,
            CatchUpPackageAdopter(),
            Purger(),
        ]

    # -- public interface ---------------------------------------------------------------

    @property
    def node(self) -> NodeIndex:
        """This replica's node index."""
        return self.ctx.node

    def on_artifact(self, artifact: ConsensusArtifact) -> None:
        """Accept an artifact from a peer into the unvalidated pool."""
        if isinstance(artifact, NotarizationShare | FinalizationShare | RandomBeaconShare):
            signer = artifact.signer
            if 0 <= signer < self.ctx.config.n:
                seen = Height(artifact.height - 1)
                if seen > self.peer_heights.get(signer, Height(-1)):
                    self.peer_heights[signer] = seen
        self.pool.insert_unvalidated(artifact)

    def tick(self, now: Time) -> list[ConsensusArtifact]:
        """Run the components until idle; deliver batches; return artifacts to send."""
        outbound: list[ConsensusArtifact] = []
        for _ in range(MAX_CYCLES_PER_TICK):
            changed = False
            for component in self.components:
                changes = component.on_state_change(self.reader, now)
                if changes:
                    changed = True
                    outbound.extend(self.pool.apply(changes, now))
                    if self.reader.cup_height() > self.delivered_height:
                        self._jump_to_cup()
            self._after_finalization()
            if not changed:
                break
        outbound.extend(self._resend(now))
        return outbound

    def finalized_chain(self) -> list[tuple[Height, bytes]]:
        """Return (height, block hash) of every finalized height this replica has seen."""
        return sorted(self.finalized_log.items())

    @property
    def batches_delivered(self) -> Sequence[Batch]:
        """Batches handed to message routing, in height order."""
        return self.batches

    def finalized_height(self) -> Height:
        """Return the finalized height."""
        return self.reader.finalized_height()

    def notarized_height(self) -> Height:
        """Return the notarized height."""
        return self.reader.notarized_height()

    def state_hash_of(self, height: Height) -> bytes | None:
        """Return the state hash after ``height`` if executed (None otherwise)."""
        return self.state_hashes.get(height)

    # -- finalization, DKG summaries, batches -------------------------------------------

    def _register_summary(self, height: Height, cup: CatchUpPackage | None = None) -> None:
        block = cup.content.block if cup is not None else self.reader.finalized_block_at(height)
        summary = None if block is None else summary_of(block)
        if summary is None:
            return
        self.ctx.summaries[height] = summary
        if self.ctx.dkg is not None:
            for transcript in (*summary.current, *summary.next):
                missing = self.ctx.keys.share_for(transcript) is None
                if missing and self.ctx.node in transcript.receivers:
                    try:
                        self.ctx.keys.shares[transcript.dkg_id] = self.ctx.dkg.decrypt_share(
                            transcript, self.ctx.node, self.ctx.secrets.dkg_encryption
                        )
                    except DkgError:
                        self.dkg_failures += 1

    def _after_finalization(self) -> None:
        finalized = self.reader.finalized_height()
        if finalized > self._last_progress_height:
            self._last_progress_height = finalized
            tip: Block | None = self.reader.finalized_tip()
            while tip is not None and tip.height not in self.finalized_log:
                self.finalized_log[tip.height] = tip.block_hash()
                self.finalized_parents[tip.height] = tip.parent
                if tip.is_summary():
                    self._register_summary(tip.height)
                tip = self.reader.block(tip.parent)
        self._deliver()

    def _deliver(self) -> None:
        finalized = self.reader.finalized_height()
        while self.delivered_height < finalized:
            height = Height(self.delivered_height + 1)
            block = self.reader.finalized_block_at(height)
            tape = self.reader.tape_at(height)
            if block is None or tape is None:
                return
            payload = (
                block.payload.batch if isinstance(block.payload, DataPayload) else BatchPayload()
            )
            batch = Batch(
                height=height,
                block_hash=block.block_hash(),
                time=block.context.time,
                registry_version=block.context.registry_version,
                randomness=tape.signature,
                payload=payload,
                requires_checkpoint=block.is_summary(),
            )
            state_hash = self.on_batch(batch) if self.on_batch is not None else None
            self.last_state_hash = state_hash or batch_hash(self.last_state_hash, batch)
            self.batches.append(batch)
            self.delivered_height = height
            if block.is_summary():
                self.state_hashes[height] = self.last_state_hash

    def _jump_to_cup(self) -> None:
        """Adopted a CUP ahead of our delivered height: take its state (state sync)."""
        cup = self.reader.cup()
        self.delivered_height = cup.height
        self.last_state_hash = cup.content.state_hash
        self.state_hashes[cup.height] = cup.content.state_hash
        self.finalized_log[cup.height] = cup.content.block.block_hash()
        self.finalized_parents[cup.height] = cup.content.block.parent
        self._register_summary(cup.height, cup)

    # -- retransmission -----------------------------------------------------------------

    def _resend(self, now: Time) -> list[ConsensusArtifact]:
        out: list[ConsensusArtifact] = []
        finalized = self.reader.finalized_height()
        if finalized > self._resend_height:
            self.last_progress = now
            self._resend_height = finalized
        elif now - self.last_progress >= self.ctx.config.rebroadcast_interval:
            self.last_progress = now
            out.extend(self._frontier())
        lagging = [
            h for node, h in self.peer_heights.items() if node != self.node and h + 1 < finalized
        ]
        if lagging and now - self._last_help >= self.ctx.config.rebroadcast_interval:
            self._last_help = now
            out.extend(self._catch_up_material(Height(min(lagging))))
            self.peer_heights = {k: Height(max(v, finalized)) for k, v in self.peer_heights.items()}
        return out

    def _frontier(self) -> list[ConsensusArtifact]:
        """Return what a stalled replica re-sends: everything above its finalized height."""
        reader = self.reader
        finalized = reader.finalized_height()
        out: list[ConsensusArtifact] = [reader.latest_validated_cup()]
        out.extend(reader.validated_at(Finalization, finalized))
        out.extend(reader.validated_at(Notarization, finalized))
        for h in range(finalized, reader.beacon_height() + 1):
            beacon = reader.beacon_at(h)
            if beacon is not None:
                out.append(beacon)
        for h in range(finalized + 1, reader.notarized_height() + 2):
            for kind in (BlockProposal, Notarization, NotarizationShare, FinalizationShare):
                out.extend(reader.validated_at(kind, h))
            out.extend(reader.validated_at(RandomBeaconShare, h))
        return out

    def _catch_up_material(self, peer_height: Height) -> list[ConsensusArtifact]:
        """Return finalized blocks with their proofs above a lagging peer's height."""
        reader = self.reader
        start = max(peer_height, reader.cup_height())
        out: list[ConsensusArtifact] = []
        if peer_height < reader.cup_height():
            out.append(reader.cup())
        for h in range(start, min(start + CATCH_UP_BATCH, reader.finalized_height() + 1)):
            block = reader.finalized_block_at(h)
            beacon = reader.beacon_at(h)
            if beacon is not None:
                out.append(beacon)
            if block is None:
                continue
            block_hash = block.block_hash()
            out.extend(p for p in reader.proposals_at(h) if p.block.block_hash() == block_hash)
            out.extend(reader.validated_at(Notarization, h))
            out.extend(reader.validated_at(Finalization, h))
            tape = reader.tape_at(h)
            if tape is not None:
                out.append(tape)
        return out


def all_artifacts(replicas: Iterable[ConsensusReplica]) -> int:
    """Return the total number of validated artifacts held (diagnostics)."""
    return sum(len(r.pool.validated.by_hash) for r in replicas)

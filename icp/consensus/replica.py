"""ConsensusReplica: run the components in the IC's order, apply changes, deliver batches.

Theory of operation. ``on_artifact`` puts a peer's artifact into the unvalidated pool.
``tick(now)`` runs the components in a fixed order - finalizer, CUP maker, share
aggregator, notary, random beacon maker, random tape maker, block maker, DKG dealer,
validator, CUP adopter, purger - applying each one's change actions before the next
reads the pool, and repeats the cycle until nothing changes. It then delivers the
batches of newly finalized heights (in order; a batch needs its random tape) and
returns the artifacts to send.

Retransmission (the simulated links lose messages; the IC's P2P layer re-advertises its
validated pool until every peer has it). Every ``rebroadcast_interval``:

* a replica whose finalized height has not advanced re-sends its validated pool from
  its CUP up (at most ``CATCH_UP_BATCH`` finalized heights, everything above the
  finalized height, its latest CUP and its share of the next CUP);
* a replica whose batch delivery is stuck (a random tape is missing) re-sends its tape
  shares for the undelivered heights;
* a replica helps every live peer whose latest shares show it lags behind: it sends
  its CUP if the peer is below it (the peer adopts the CUP and state-syncs) and the
  finalized blocks with their proofs above. Help repeats while the lagging peer keeps
  signalling the same height, so one lost help message cannot strand it;
* a replica answers a tape or CUP share for a height it already holds the tape or a
  CUP of with that tape or CUP (the sender re-sends its share because it lacks them).

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
    CatchUpPackageShare,
    ConsensusArtifact,
    DataPayload,
    Finalization,
    FinalizationShare,
    Notarization,
    NotarizationShare,
    RandomBeaconShare,
    RandomTapeShare,
)
from icp.consensus.beacon import (
    RANDOM_TAPE_CHECK_MAX_HEIGHT_RANGE,
    RandomBeaconMaker,
    RandomTapeMaker,
)
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
        ctx.delivered_height = cup.height
        self.last_state_hash = cup.content.state_hash
        self.finalized_log: dict[Height, bytes] = {cup.height: cup.content.block.block_hash()}
        self.finalized_parents: dict[Height, bytes] = {cup.height: cup.content.block.parent}
        self.summaries_seen_up_to = cup.height
        self._register_summary(cup.height, cup)
        self.last_progress = now
        self._last_progress_height = cup.height
        self.peer_heights: dict[NodeIndex, Height] = {}
        """Per peer, the highest height its shares show it has reached."""
        self._peer_signalled: set[NodeIndex] = set()
        """Peers that sent a share since we last helped them (alive and signalling)."""
        self._peer_helped: dict[NodeIndex, Time] = {}
        """Per peer, when we last sent it catch-up material."""
        self._owed: dict[bytes, ConsensusArtifact] = {}
        """Tapes and CUPs a peer's share showed it lacks (sent on the next tick)."""
        self._owed_sent: dict[bytes, Time] = {}
        self._now = now
        self._resend_height = cup.height
        self._delivery_mark = (cup.height, now)
        """(delivered height, when it last advanced) for the delivery-stall resend."""
        self.validator = Validator(ctx, self.state_hash_of)
        self.components: list[Component] = [
            Finalizer(ctx),
            CatchUpPackageMaker(ctx, self.state_hash_of),
            ShareAggregator(ctx, self._next_batch_height),
            Notary(ctx),
            RandomBeaconMaker(ctx),
            RandomTapeMaker(ctx, self._next_batch_height),
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
            if 0 <= signer < self.ctx.config.n and signer != self.node:
                seen = Height(artifact.height - 1)
                if seen > self.peer_heights.get(signer, Height(-1)):
                    self.peer_heights[signer] = seen
                self._peer_signalled.add(signer)
        elif isinstance(artifact, RandomTapeShare | CatchUpPackageShare):
            self._note_owed(artifact)
        self.pool.insert_unvalidated(artifact)

    def tick(self, now: Time) -> list[ConsensusArtifact]:
        """Run the components until idle; deliver batches; return artifacts to send."""
        self._now = now
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

    def forget_below(self, floor: Height) -> None:
        """Forget the records of heights below ``floor`` that no component reads again.

        The replica records every delivered batch, every finalized block hash and
        parent, the state hash of every summary height and every DKG summary, while its
        pool is purged below the CUP.  Below ``floor`` (at most the CUP height) this
        drops the batches, the finalized-chain records and the summary state hashes;
        DKG summaries go once they are an interval older than the floor's interval
        (``transcript_for_height`` reads a height's own summary or the one before), and
        with them the secret shares of transcripts no kept summary names, as the IC's
        key store retains only active keys.  The simulator never calls it (its property
        checker reads every batch).
        Spec: protocol.md §3.2 (purge below the CUP), §3.1 (transcripts per interval);
        dfinity/ic ``NiDkgAlgorithm::retain_only_active_keys``.
        """
        floor = Height(min(floor, self.reader.cup_height()))
        batches = self.batches
        stale = 0
        while stale < len(batches) and batches[stale].height < floor:
            stale += 1
        del batches[:stale]
        for records in (self.finalized_log, self.finalized_parents, self.state_hashes):
            for height in [h for h in records if h < floor]:
                del records[height]
        ctx = self.ctx
        summary_floor = ctx.config.interval_start(floor) - ctx.config.dkg_interval_length - 1
        stale_summaries = [h for h in ctx.summaries if h < summary_floor]
        if not stale_summaries:
            return
        for height in stale_summaries:
            del ctx.summaries[height]
        active = {
            transcript.dkg_id
            for summary in ctx.summaries.values()
            for transcript in (*summary.current, *summary.next)
        }
        for dkg_id in [d for d in ctx.keys.shares if d not in active]:
            del ctx.keys.shares[dkg_id]

    # -- finalization, DKG summaries, batches -------------------------------------------

    def _next_batch_height(self) -> Height:
        """Return the height of the next batch to deliver (tapes are made from here)."""
        return Height(self.delivered_height + 1)

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
            self.ctx.delivered_height = height
            if block.is_summary():
                self.state_hashes[height] = self.last_state_hash

    def _jump_to_cup(self) -> None:
        """Adopted a CUP ahead of our delivered height: take its state (state sync)."""
        cup = self.reader.cup()
        self.delivered_height = cup.height
        self.ctx.delivered_height = cup.height
        self.last_state_hash = cup.content.state_hash
        self.state_hashes[cup.height] = cup.content.state_hash
        self.finalized_log[cup.height] = cup.content.block.block_hash()
        self.finalized_parents[cup.height] = cup.content.block.parent
        self._register_summary(cup.height, cup)

    # -- retransmission -----------------------------------------------------------------

    def _note_owed(self, share: RandomTapeShare | CatchUpPackageShare) -> None:
        """Owe the tape or CUP a peer's (re-sent) share shows it lacks.

        A share that arrives within ``rebroadcast_interval`` of our tape or CUP is the
        ordinary late share of an honest peer (it gets the tape or CUP by broadcast);
        a later one is a re-send by a peer that is stuck without it.
        """
        reader = self.reader
        owed: ConsensusArtifact | None
        if isinstance(share, RandomTapeShare):
            owed = reader.tape_at(share.height)
        else:
            latest = reader.latest_validated_cup()
            owed = latest if share.height <= latest.height else None
        if owed is None:
            return
        key = owed.artifact_hash()
        arrived = reader.arrival_time(key)
        if arrived is not None and self._now - arrived >= self.ctx.config.rebroadcast_interval:
            self._owed[key] = owed

    def _resend(self, now: Time) -> list[ConsensusArtifact]:
        out: list[ConsensusArtifact] = []
        interval = self.ctx.config.rebroadcast_interval
        finalized = self.reader.finalized_height()
        if finalized > self._resend_height:
            self.last_progress = now
            self._resend_height = finalized
        elif now - self.last_progress >= interval:
            self.last_progress = now
            out.extend(self._frontier())
        out.extend(self._undelivered(now))
        out.extend(self._pay_owed(now))
        out.extend(self._help(now, finalized))
        return out

    def _help(self, now: Time, finalized: Height) -> list[ConsensusArtifact]:
        """Return catch-up material for live peers whose shares show they lag behind.

        A peer is helped at most once per ``rebroadcast_interval`` and only if it sent a
        share since the last help (a crashed peer is not helped forever); its height is
        not assumed to advance until its own shares say so.
        """
        interval = self.ctx.config.rebroadcast_interval
        never = Time(-(10**18))
        lagging = [
            node
            for node, height in self.peer_heights.items()
            if height + 1 < finalized
            and node in self._peer_signalled
            and now - self._peer_helped.get(node, never) >= interval
        ]
        if not lagging:
            return []
        for node in lagging:
            self._peer_helped[node] = now
            self._peer_signalled.discard(node)
        return self._catch_up_material(Height(min(self.peer_heights[n] for n in lagging)))

    def _undelivered(self, now: Time) -> list[ConsensusArtifact]:
        """Re-send our tape shares if batch delivery has been stuck for an interval.

        Spec: protocol.md §4.1 (a batch needs the random tape of its height).
        """
        delivered, since = self._delivery_mark
        if self.delivered_height != delivered:
            self._delivery_mark = (self.delivered_height, now)
            return []
        finalized = self.reader.finalized_height()
        if delivered >= finalized or now - since < self.ctx.config.rebroadcast_interval:
            return []
        self._delivery_mark = (delivered, now)
        out: list[ConsensusArtifact] = []
        last = min(finalized, delivered + RANDOM_TAPE_CHECK_MAX_HEIGHT_RANGE)
        for h in range(delivered + 1, last + 1):
            tape = self.reader.tape_at(h)
            if tape is not None:
                out.append(tape)
            else:
                out.extend(self.reader.shares_by(RandomTapeShare, h, self.node))
        return out

    def _pay_owed(self, now: Time) -> list[ConsensusArtifact]:
        """Send the tapes and CUPs peers showed they lack (each once per interval)."""
        if not self._owed:
            return []
        out: list[ConsensusArtifact] = []
        interval = self.ctx.config.rebroadcast_interval
        for key, artifact in self._owed.items():
            last = self._owed_sent.get(key)
            if last is None or now - last >= interval:
                self._owed_sent[key] = now
                out.append(artifact)
        self._owed.clear()
        if len(self._owed_sent) > 4 * CATCH_UP_BATCH:
            cutoff = now - interval
            self._owed_sent = {k: t for k, t in self._owed_sent.items() if t > cutoff}
        return out

    def _frontier(self) -> list[ConsensusArtifact]:
        """Return what a stalled replica re-sends: its validated pool from the CUP up.

        That is the latest CUP and our share of the next one, the finalized chain above
        the root CUP (at most ``CATCH_UP_BATCH`` heights: a peer that lacks a beacon or
        block at a finalized height cannot say so if it has no share left to send) and
        everything above the finalized height.

        Spec: the IC's P2P layer re-advertises the whole validated pool to peers.
        """
        reader = self.reader
        finalized = reader.finalized_height()
        latest_cup = reader.latest_validated_cup()
        out: dict[bytes, ConsensusArtifact] = {latest_cup.artifact_hash(): latest_cup}
        next_cup = self.ctx.config.interval_start(finalized)
        if next_cup > latest_cup.height:
            out.update(
                (s.artifact_hash(), s)
                for s in reader.shares_by(CatchUpPackageShare, next_cup, self.node)
            )
        above: list[ConsensusArtifact] = [
            *self._catch_up_material(reader.cup_height()),
            *reader.validated_at(Finalization, finalized),
            *reader.validated_at(Notarization, finalized),
        ]
        for h in range(finalized, reader.beacon_height() + 1):
            beacon = reader.beacon_at(h)
            if beacon is not None:
                above.append(beacon)
        for h in range(reader.beacon_height() + 1, finalized + 1):
            above.extend(reader.validated_at(RandomBeaconShare, h))  # a finalized height's
            # beacon can be missing (all its shares lost): nothing above it can proceed
        for h in range(finalized + 1, reader.notarized_height() + 2):
            for kind in (BlockProposal, Notarization, NotarizationShare, FinalizationShare):
                above.extend(reader.validated_at(kind, h))
            above.extend(reader.validated_at(RandomBeaconShare, h))
        out.update((a.artifact_hash(), a) for a in above)
        return list(out.values())

    def _catch_up_material(self, peer_height: Height) -> list[ConsensusArtifact]:
        """Return our CUP if the peer is below it, and finalized blocks with proofs above.

        Spec: protocol.md §3.2 (a replica behind the latest CUP adopts it and
        state-syncs; blocks below a CUP are purged and never needed again).
        """
        reader = self.reader
        cup = reader.latest_validated_cup()
        start = max(peer_height, reader.cup_height())
        out: list[ConsensusArtifact] = []
        if peer_height < cup.height:
            out.append(cup)
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

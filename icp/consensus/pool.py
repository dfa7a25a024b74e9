"""The consensus artifact pool: unvalidated and validated sections, indexed by height.

Theory of operation: artifacts from peers land in the *unvalidated* section. Components
read the pool (``PoolReader``) and return ``ChangeAction``s; only ``ArtifactPool.apply``
mutates it. An artifact enters the *validated* section either because the validator
checked it (``MoveToValidated``) or because this replica made it (``AddToValidated``).
Both sections are ``SortedDict``s keyed by height so that "everything above the finalized
height" and "purge everything below the CUP" are range operations.

The pool also remembers when each validated artifact arrived: the round start of height
h is the later of the arrival of beacon h - 1 and of the first notarization at h - 1.

Spec: STYLE.md "dfinity/ic" (components read the pool and return changes; unvalidated
and validated pools are separate); protocol.md §1.7 "Round start".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

import attrs
from sortedcontainers import SortedDict

from icp.consensus.artifacts import (
    Block,
    BlockProposal,
    CatchUpPackage,
    CatchUpPackageShare,
    ConsensusArtifact,
    DealingMessage,
    EquivocationProof,
    Finalization,
    FinalizationShare,
    Notarization,
    NotarizationShare,
    RandomBeacon,
    RandomBeaconShare,
    RandomTape,
    RandomTapeShare,
)
from icp.types import Height, NodeIndex, Time

A = TypeVar("A", bound=ConsensusArtifact)


# --- change actions --------------------------------------------------------------------


@attrs.frozen(slots=True)
class AddToValidated:
    """Add an artifact this replica made (or aggregated) to the validated pool and send it."""

    artifact: ConsensusArtifact
    broadcast: bool = True


@attrs.frozen(slots=True)
class MoveToValidated:
    """Move a checked artifact from unvalidated to validated (``relay`` re-sends it)."""

    artifact_hash: bytes
    relay: bool = False


@attrs.frozen(slots=True)
class RemoveFromUnvalidated:
    """Drop an unvalidated artifact that has become useless (e.g. below finalized height)."""

    artifact_hash: bytes


@attrs.frozen(slots=True)
class HandleInvalid:
    """Drop an unvalidated artifact that failed a permanent check, with the reason."""

    artifact_hash: bytes
    reason: str


@attrs.frozen(slots=True)
class Relay:
    """Send an already validated artifact again (the paper's echo of a supported block)."""

    artifact: ConsensusArtifact


@attrs.frozen(slots=True)
class PurgeBelow:
    """Drop validated and unvalidated artifacts below ``height`` (keeps the CUP)."""

    height: Height
    shares_only_up_to: Height | None = None
    """If set, additionally drop shares at heights <= this (they are no longer needed)."""


@attrs.frozen(slots=True)
class AdoptCatchUpPackage:
    """Restart the pool from a newer validated CUP (drops everything below it)."""

    cup: CatchUpPackage


ChangeAction = (
    AddToValidated
    | MoveToValidated
    | RemoveFromUnvalidated
    | HandleInvalid
    | Relay
    | PurgeBelow
    | AdoptCatchUpPackage
)

_SHARE_TYPES = (
    NotarizationShare,
    FinalizationShare,
    RandomBeaconShare,
    RandomTapeShare,
    CatchUpPackageShare,
)


def artifact_height(artifact: ConsensusArtifact) -> Height:
    """Return the height the pool indexes ``artifact`` by."""
    return artifact.height


# --- the pool --------------------------------------------------------------------------


class _Section:
    """One section: hash -> artifact, and per type a SortedDict height -> {hash: artifact}."""

    def __init__(self) -> None:
        self.by_hash: dict[bytes, ConsensusArtifact] = {}
        self.by_type: dict[type, SortedDict] = {}
        self.heights: SortedDict = SortedDict()  # height -> {hash: None}, insertion-ordered
        # (dicts, not sets: iteration order must not depend on PYTHONHASHSEED, so that a
        # simulated run replays bit-exactly in any process)

    def add(self, key: bytes, artifact: ConsensusArtifact) -> bool:
        if key in self.by_hash:
            return False
        self.by_hash[key] = artifact
        h = artifact_height(artifact)
        per_type = self.by_type.get(type(artifact))
        if per_type is None:
            per_type = self.by_type[type(artifact)] = SortedDict()
        bucket = per_type.get(h)
        if bucket is None:
            bucket = per_type[h] = {}
        bucket[key] = artifact
        keys = self.heights.get(h)
        if keys is None:
            keys = self.heights[h] = {}
        keys[key] = None
        return True

    def remove(self, key: bytes) -> ConsensusArtifact | None:
        artifact = self.by_hash.pop(key, None)
        if artifact is None:
            return None
        h = artifact_height(artifact)
        per_type = self.by_type[type(artifact)]
        bucket = per_type[h]
        del bucket[key]
        if not bucket:
            del per_type[h]
        keys = self.heights[h]
        keys.pop(key, None)
        if not keys:
            del self.heights[h]
        return artifact

    def at(self, kind: type[A], height: int) -> list[A]:
        per_type = self.by_type.get(kind)
        if per_type is None:
            return []
        bucket = per_type.get(height)
        return list(bucket.values()) if bucket else []

    def max_height(self, kind: type) -> int | None:
        per_type = self.by_type.get(kind)
        if not per_type:
            return None
        return int(per_type.keys()[-1])

    def keys_below(self, height: int) -> list[bytes]:
        out: list[bytes] = []
        for h in list(self.heights.irange(maximum=height, inclusive=(True, False))):
            out.extend(self.heights[h])
        return out

    def keys_in(self, low: int, high: int) -> Iterator[bytes]:
        for h in self.heights.irange(minimum=low, maximum=high):
            yield from list(self.heights[h])


class ArtifactPool:
    """The artifact pool of one replica, rooted at a catch-up package.

    Spec: STYLE.md (unvalidated / validated pools); protocol.md §3.2 (pools are purged
    below the CUP height).
    """

    def __init__(self, cup: CatchUpPackage, now: Time) -> None:
        self.unvalidated = _Section()
        self.validated = _Section()
        self.arrival: dict[bytes, Time] = {}
        self.blocks_by_hash: dict[bytes, Block] = {}
        self.invalid_count = 0
        self.invalid_reasons: list[str] = []
        self.version = 0
        """Incremented on every change of the validated section (readers memoise on it)."""
        self._reset(cup, now)

    def _reset(self, cup: CatchUpPackage, now: Time) -> None:
        self.unvalidated = _Section()
        self.validated = _Section()
        self.arrival = {}
        self.blocks_by_hash = {}
        self.cup = cup
        self.cup_time = now
        block = cup.content.block
        self.blocks_by_hash[block.block_hash()] = block
        self.validated.add(cup.artifact_hash(), cup)
        self.validated.add(cup.content.random_beacon.artifact_hash(), cup.content.random_beacon)
        self.arrival[cup.content.random_beacon.artifact_hash()] = now

    # -- mutation (only through apply) --------------------------------------------------

    def insert_unvalidated(self, artifact: ConsensusArtifact) -> bool:
        """Add an artifact from a peer unless it is already known; return whether added."""
        if artifact_height(artifact) < self.cup.height:
            return False
        key = artifact.artifact_hash()
        if key in self.validated.by_hash:
            return False
        return self.unvalidated.add(key, artifact)

    def _add_validated(self, key: bytes, artifact: ConsensusArtifact, now: Time) -> bool:
        if not self.validated.add(key, artifact):
            return False
        self.version += 1
        self.arrival[key] = now
        if isinstance(artifact, BlockProposal):
            self.blocks_by_hash[artifact.block.block_hash()] = artifact.block
        if isinstance(artifact, CatchUpPackage) and artifact.height > self.cup.height:
            pass  # adoption is an explicit AdoptCatchUpPackage action
        return True

    def apply(self, changes: Iterable[ChangeAction], now: Time) -> list[ConsensusArtifact]:
        """Apply change actions; return the artifacts to send to peers."""
        outbound: list[ConsensusArtifact] = []
        self.version += 1
        for change in changes:
            if isinstance(change, AddToValidated):
                artifact = change.artifact
                key = artifact.artifact_hash()
                self.unvalidated.remove(key)
                if self._add_validated(key, artifact, now) and change.broadcast:
                    outbound.append(artifact)
            elif isinstance(change, MoveToValidated):
                moved = self.unvalidated.remove(change.artifact_hash)
                if (
                    moved is not None
                    and self._add_validated(change.artifact_hash, moved, now)
                    and change.relay
                ):
                    outbound.append(moved)
            elif isinstance(change, RemoveFromUnvalidated):
                self.unvalidated.remove(change.artifact_hash)
            elif isinstance(change, HandleInvalid):
                if self.unvalidated.remove(change.artifact_hash) is not None:
                    self.invalid_count += 1
                    if len(self.invalid_reasons) < 1000:
                        self.invalid_reasons.append(change.reason)
            elif isinstance(change, Relay):
                outbound.append(change.artifact)
            elif isinstance(change, PurgeBelow):
                self._purge(change)
            elif isinstance(change, AdoptCatchUpPackage):
                self._adopt(change.cup, now)
        return outbound

    def _adopt(self, cup: CatchUpPackage, now: Time) -> None:
        """Re-root at ``cup``: rebase if its block is in the pool, else restart from it."""
        if cup.height <= self.cup.height:
            return
        block_hash = cup.content.block.block_hash()
        if block_hash in self.blocks_by_hash:
            beacon_key = cup.content.random_beacon.artifact_hash()
            self.cup = cup
            self.cup_time = self.arrival.get(beacon_key, now)
            self.validated.add(cup.artifact_hash(), cup)
            self.validated.add(beacon_key, cup.content.random_beacon)
            self._purge(PurgeBelow(cup.height))
            return
        keep = [a for a in self.unvalidated.by_hash.values() if artifact_height(a) > cup.height]
        self._reset(cup, now)
        for artifact in keep:
            self.insert_unvalidated(artifact)

    def _purge(self, change: PurgeBelow) -> None:
        cup_key = self.cup.artifact_hash()
        beacon_key = self.cup.content.random_beacon.artifact_hash()
        for key in self.validated.keys_below(change.height):
            if key not in (cup_key, beacon_key):
                artifact = self.validated.remove(key)
                self.arrival.pop(key, None)
                if isinstance(artifact, BlockProposal):
                    self.blocks_by_hash.pop(artifact.block.block_hash(), None)
        for key in self.unvalidated.keys_below(change.height):
            self.unvalidated.remove(key)
        if change.shares_only_up_to is not None:
            for section in (self.validated, self.unvalidated):
                for key in list(section.keys_in(0, change.shares_only_up_to)):
                    artifact = section.by_hash[key]
                    if isinstance(artifact, _SHARE_TYPES) and not isinstance(
                        artifact, CatchUpPackageShare | RandomTapeShare
                    ):
                        section.remove(key)
                        self.arrival.pop(key, None)


# --- read-only queries -----------------------------------------------------------------


class PoolReader:
    """Read-only queries over a pool, the view every component gets.

    Spec: protocol.md §1.4 (notarized / finalized heights, round state), §1.7.
    """

    def __init__(self, pool: ArtifactPool) -> None:
        self._pool = pool
        self._memo: dict[str, object] = {}
        self._memo_version = -1

    def _cached(self, name: str) -> object | None:
        if self._memo_version != self._pool.version:
            self._memo.clear()
            self._memo_version = self._pool.version
        return self._memo.get(name)

    @property
    def pool(self) -> ArtifactPool:
        """The underlying pool (components must not mutate it)."""
        return self._pool

    def cup(self) -> CatchUpPackage:
        """Return the CUP the pool is rooted at."""
        return self._pool.cup

    def cup_height(self) -> Height:
        """Return the height of the root CUP."""
        return self._pool.cup.height

    def validated_at(self, kind: type[A], height: int) -> list[A]:
        """Return validated artifacts of ``kind`` at ``height``."""
        return self._pool.validated.at(kind, height)

    def unvalidated_artifacts(self) -> list[tuple[bytes, ConsensusArtifact]]:
        """Return (hash, artifact) pairs of the unvalidated section, lowest height first."""
        section = self._pool.unvalidated
        out: list[tuple[bytes, ConsensusArtifact]] = []
        for h in section.heights:
            for key in section.heights[h]:
                out.append((key, section.by_hash[key]))
        return out

    def is_validated(self, key: bytes) -> bool:
        """Return whether an artifact with this hash is validated."""
        return key in self._pool.validated.by_hash

    def arrival_time(self, key: bytes) -> Time | None:
        """Return when a validated artifact entered the pool."""
        return self._pool.arrival.get(key)

    def block(self, block_hash: bytes) -> Block | None:
        """Return a validated block (or the CUP block) by hash."""
        return self._pool.blocks_by_hash.get(block_hash)

    def proposals_at(self, height: int) -> list[BlockProposal]:
        """Return validated proposals at ``height``."""
        return self.validated_at(BlockProposal, height)

    def beacon_at(self, height: int) -> RandomBeacon | None:
        """Return the validated beacon at ``height``."""
        beacons = self.validated_at(RandomBeacon, height)
        return beacons[0] if beacons else None

    def beacon_height(self) -> Height:
        """Return the highest height with a validated beacon."""
        cached = self._cached("beacon")
        if isinstance(cached, int):
            return Height(cached)
        h = self._pool.validated.max_height(RandomBeacon)
        result = Height(self.cup_height() if h is None else h)
        self._memo["beacon"] = result
        return result

    def tape_at(self, height: int) -> RandomTape | None:
        """Return the validated random tape at ``height``."""
        tapes = self.validated_at(RandomTape, height)
        return tapes[0] if tapes else None

    def notarized_height(self) -> Height:
        """Return the highest notarized height (a finalization implies notarization).

        Honest replicas only finalization-share notarized blocks, so a valid finalization
        proves the block was notarized even if the notarization itself never arrived.
        """
        cached = self._cached("notarized")
        if isinstance(cached, int):
            return Height(cached)
        h = self._pool.validated.max_height(Notarization)
        result = Height(max(self.finalized_height(), -1 if h is None else h))
        self._memo["notarized"] = result
        return result

    def finalized_height(self) -> Height:
        """Return the highest height with a validated finalization (or the CUP height)."""
        cached = self._cached("finalized")
        if isinstance(cached, int):
            return Height(cached)
        h = self._pool.validated.max_height(Finalization)
        result = Height(max(self.cup_height(), -1 if h is None else h))
        self._memo["finalized"] = result
        return result

    def notarized_blocks_at(self, height: int) -> list[Block]:
        """Return blocks at ``height`` with a validated notarization or finalization.

        The CUP block counts as notarized.
        """
        if height == self.cup_height():
            return [self.cup().content.block]
        out: list[Block] = []
        seen: set[bytes] = set()
        proofs: list[Notarization | Finalization] = [
            *self.validated_at(Notarization, height),
            *self.validated_at(Finalization, height),
        ]
        for notarization in proofs:
            block = self.block(notarization.content.block)
            if block is not None and notarization.content.block not in seen:
                seen.add(notarization.content.block)
                out.append(block)
        return out

    def is_notarized(self, block_hash: bytes, height: int) -> bool:
        """Return whether the block with this hash is notarized."""
        if height == self.cup_height():
            return block_hash == self.cup().content.block.block_hash()
        proofs: list[Notarization | Finalization] = [
            *self.validated_at(Notarization, height),
            *self.validated_at(Finalization, height),
        ]
        return any(n.content.block == block_hash for n in proofs)

    def finalized_tip(self) -> Block:
        """Return the finalized block at the finalized height."""
        h = self.finalized_height()
        if h == self.cup_height():
            return self.cup().content.block
        for finalization in self.validated_at(Finalization, h):
            block = self.block(finalization.content.block)
            if block is not None:
                return block
        raise LookupError(f"finalized block at height {h} is missing from the pool")

    def finalized_block_at(self, height: int) -> Block | None:
        """Return the finalized block at ``height`` (walking parents from the tip)."""
        if height < self.cup_height() or height > self.finalized_height():
            return None
        block: Block | None = self.finalized_tip()
        while block is not None and block.height > height:
            block = self.block(block.parent)
        return block

    def round_start(self, height: int) -> Time | None:
        """Return when round ``height`` started locally, if it has.

        round_start(h) = max(arrival of beacon h-1, earliest arrival of a notarization at
        h-1); at the CUP height + 1, the CUP's arrival.

        Spec: protocol.md §1.7 "Round start" (pool_reader ``get_round_start_time``).
        """
        previous = height - 1
        if previous < self.cup_height():
            return None
        if previous == self.cup_height():
            return self._pool.cup_time
        beacon = self.beacon_at(previous)
        if beacon is None:
            return None
        beacon_time = self.arrival_time(beacon.artifact_hash())
        proofs: list[Notarization | Finalization] = [
            *self.validated_at(Notarization, previous),
            *self.validated_at(Finalization, previous),
        ]
        times = [self.arrival_time(n.artifact_hash()) for n in proofs]
        known = [t for t in times if t is not None]
        if beacon_time is None or not known:
            return None
        return Time(max(beacon_time, min(known)))

    def equivocators_at(self, height: int) -> set[NodeIndex]:
        """Return signers with a validated equivocation proof at ``height``."""
        return {p.signer for p in self.validated_at(EquivocationProof, height)}

    def dealings_at(self, completes_at: int) -> list[DealingMessage]:
        """Return validated dealings for the DKGs completed by the summary at ``completes_at``."""
        return self.validated_at(DealingMessage, completes_at)

    def latest_validated_cup(self) -> CatchUpPackage:
        """Return the highest validated CUP (possibly newer than the root)."""
        h = self._pool.validated.max_height(CatchUpPackage)
        if h is None:
            return self.cup()
        return self.validated_at(CatchUpPackage, h)[0]

    def shares_by(self, kind: type[A], height: int, signer: NodeIndex) -> list[A]:
        """Return validated shares of ``kind`` at ``height`` made by ``signer``."""
        return [s for s in self.validated_at(kind, height) if getattr(s, "signer", None) == signer]

"""Validator: check every unvalidated artifact before it enters the validated pool.

Theory of operation: each artifact type has a ``check_*`` rule that returns a
``Verdict``: VALID (move to validated), INVALID (permanent: drop, count it), DEFER
(transient: a dependency such as the parent block or the beacon is missing; retry on a
later tick) or USELESS (below the finalized height: drop silently). Cheap structural
checks run first; signature checks last. Shares on the same content are verified with
one batch verification (one pairing check when all are valid).

Spec: ICC paper §3 (honest replicas only act on valid artifacts: a valid block has a
notarized parent, the right rank and a valid signature); protocol.md §1.4 step 2
(validity), §1.6 (context rules), §1.7 (equivocation, timely validation), §2.1
(who signs what with which threshold).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable

import attrs

from icp.consensus.artifacts import (
    Block,
    BlockMetadata,
    BlockProposal,
    CatchUpPackage,
    CatchUpPackageShare,
    ConsensusArtifact,
    DataPayload,
    DealingMessage,
    DkgSummary,
    DkgTag,
    EquivocationProof,
    Finalization,
    FinalizationShare,
    Notarization,
    NotarizationShare,
    RandomBeacon,
    RandomBeaconShare,
    RandomTape,
    RandomTapeShare,
    SummaryPayload,
)
from icp.consensus.block_maker import (
    build_summary_payload,
    previous_summary_chain,
    undelivered_ancestors,
)
from icp.consensus.config import PERMITTED_DRIFT_AT_VALIDATOR
from icp.consensus.context import InvalidArtifact, ReplicaContext
from icp.consensus.delays import get_block_maker_delay
from icp.consensus.dkg import (
    dealings_on_chain,
    receiver_position,
    resharing_source,
    summary_of,
)
from icp.consensus.pool import (
    AddToValidated,
    ChangeAction,
    HandleInvalid,
    MoveToValidated,
    PoolReader,
    RemoveFromUnvalidated,
)
from icp.consensus.ranking import get_block_maker_rank, get_notarization_committee
from icp.types import Height, NodeIndex, Time


class Verdict(enum.Enum):
    """Outcome of checking one artifact."""

    VALID = "valid"
    INVALID = "invalid"
    DEFER = "defer"
    USELESS = "useless"


@attrs.frozen(slots=True)
class Check:
    """A verdict with a reason; for shares, the key to batch-verify against."""

    verdict: Verdict
    reason: str = ""
    public_key: bytes | None = None
    """If set, the artifact is VALID provided its signature verifies under this key."""


def _invalid(reason: str) -> Check:
    return Check(Verdict.INVALID, reason)


_DEFER = Check(Verdict.DEFER)
_USELESS = Check(Verdict.USELESS)
_VALID = Check(Verdict.VALID)

_RELAY_TYPES = (Notarization, Finalization, RandomBeacon, CatchUpPackage)


class Validator:
    """Move valid unvalidated artifacts to the validated pool; drop invalid ones.

    Spec: see module docstring.
    """

    def __init__(
        self, ctx: ReplicaContext, state_hash_of: Callable[[Height], bytes | None] | None = None
    ) -> None:
        self.ctx = ctx
        self.state_hash_of = state_hash_of

    # -- driver -------------------------------------------------------------------------

    def on_state_change(self, pool: PoolReader, now: Time) -> list[ChangeAction]:
        """Return the validation outcome of every unvalidated artifact that can be decided."""
        out: list[ChangeAction] = []
        batches: dict[tuple[type, bytes], list[tuple[bytes, bytes, bytes]]] = defaultdict(list)
        proposals_seen: dict[tuple[Height, NodeIndex], BlockProposal] = {}
        proven: set[tuple[Height, NodeIndex]] = set()
        for key, artifact in pool.unvalidated_artifacts():
            try:
                check = self.check(pool, artifact, now)
            except InvalidArtifact as exc:
                check = _invalid(str(exc))
            if check.verdict is Verdict.VALID and check.public_key is not None:
                message = artifact.signing_bytes()
                signature: bytes = artifact.signature  # type: ignore[union-attr]
                batches[(type(artifact), message)].append((key, check.public_key, signature))
            elif check.verdict is Verdict.VALID:
                out.append(MoveToValidated(key, relay=self._relay(pool, artifact)))
                if isinstance(artifact, BlockProposal):
                    out.extend(self._equivocation(pool, artifact, proposals_seen, proven))
            elif check.verdict is Verdict.INVALID:
                out.append(HandleInvalid(key, f"{type(artifact).__name__}: {check.reason}"))
            elif check.verdict is Verdict.USELESS:
                out.append(RemoveFromUnvalidated(key))
        for (kind, message), items in batches.items():
            bad = set(
                self.ctx.crypto.batch_verify(
                    [pk for _, pk, _ in items], message, [sig for _, _, sig in items]
                )
            )
            for position, (key, _, _) in enumerate(items):
                if position in bad:
                    out.append(HandleInvalid(key, f"{kind.__name__}: invalid signature share"))
                else:
                    out.append(MoveToValidated(key))
        return out

    def _relay(self, pool: PoolReader, artifact: ConsensusArtifact) -> bool:
        """Relay the first notarization / finalization / beacon / CUP at a height."""
        if not isinstance(artifact, _RELAY_TYPES):
            return False
        return not pool.validated_at(type(artifact), artifact.height)

    def _equivocation(
        self,
        pool: PoolReader,
        proposal: BlockProposal,
        seen: dict[tuple[Height, NodeIndex], BlockProposal],
        proven: set[tuple[Height, NodeIndex]],
    ) -> list[ChangeAction]:
        """Return an equivocation proof if ``proposal``'s signer already signed another block.

        Spec: protocol.md §1.6 EquivocationProof; §1.7 "Equivocation".
        """
        others = [p for p in pool.proposals_at(proposal.height) if p.signer == proposal.signer]
        key = (proposal.height, proposal.signer)
        if key in seen:
            others.append(seen[key])
        seen[key] = proposal
        for other in others:
            if other.block.block_hash() != proposal.block.block_hash():
                if proposal.signer in pool.equivocators_at(proposal.height) or key in proven:
                    return []
                proven.add(key)
                first, second = sorted((other, proposal), key=lambda p: p.block.block_hash())
                return [
                    AddToValidated(
                        EquivocationProof(
                            signer=proposal.signer,
                            version=proposal.block.version,
                            height=proposal.height,
                            subnet_id=proposal.subnet_id,
                            hash1=first.block.block_hash(),
                            signature1=first.signature,
                            hash2=second.block.block_hash(),
                            signature2=second.signature,
                        )
                    )
                ]
        return []

    # -- per-type rules -----------------------------------------------------------------

    def check(self, pool: PoolReader, artifact: ConsensusArtifact, now: Time) -> Check:
        """Return the verdict for one artifact (signature of shares checked by the caller)."""
        if isinstance(artifact, BlockProposal):
            return self.check_proposal(pool, artifact, now)
        if isinstance(artifact, NotarizationShare | FinalizationShare):
            return self.check_multi_share(pool, artifact)
        if isinstance(artifact, Notarization | Finalization):
            return self.check_multi(pool, artifact)
        if isinstance(artifact, RandomBeaconShare):
            return self.check_beacon_share(pool, artifact)
        if isinstance(artifact, RandomBeacon):
            return self.check_beacon(pool, artifact)
        if isinstance(artifact, RandomTapeShare | RandomTape):
            return self.check_tape(pool, artifact)
        if isinstance(artifact, CatchUpPackageShare):
            return self.check_cup_share(pool, artifact)
        if isinstance(artifact, CatchUpPackage):
            return self.check_cup(pool, artifact)
        if isinstance(artifact, EquivocationProof):
            return self.check_equivocation_proof(pool, artifact)
        return self.check_dealing(pool, artifact)

    def _signer_ok(self, signer: int) -> bool:
        return 0 <= signer < self.ctx.config.n

    def check_proposal(self, pool: PoolReader, proposal: BlockProposal, now: Time) -> Check:
        """Check a block proposal: parent, rank, context, timeliness, signature, payload.

        Spec: ICC paper §3.4 (valid block: notarized parent of round k-1, rank of its
        maker, valid signature and payload); protocol.md §1.6 (context >= parent's),
        §1.7 (a) (a rank-r block is not accepted before its block-maker delay).
        """
        block = proposal.block
        height = block.height
        if height <= pool.finalized_height():
            return _USELESS
        if proposal.subnet_id != self.ctx.membership.subnet_id:
            return _invalid("wrong subnet")
        if not self._signer_ok(proposal.signer):
            return _invalid("unknown signer")
        parent = pool.block(block.parent)
        if parent is None:
            return _DEFER
        if parent.height != height - 1:
            return _invalid("parent is not at height - 1")
        if not pool.is_notarized(block.parent, parent.height):
            return _DEFER
        beacon = pool.beacon_at(height - 1)
        if beacon is None:
            return _DEFER
        rank = get_block_maker_rank(beacon, proposal.signer, self.ctx.config.n)
        if rank is None or rank != block.rank:
            return _invalid(f"signer {proposal.signer} does not have rank {block.rank}")
        if not block.context.is_at_least(parent.context):
            return _invalid("context is behind the parent's")
        if block.context.registry_version > self.ctx.latest_registry_version():
            return _DEFER  # validated once this node's registry copy has that version
        if block.context.time > now + PERMITTED_DRIFT_AT_VALIDATOR:
            return _DEFER
        if not self._is_notarized_somewhere(pool, block):
            start = pool.round_start(height)
            if start is None or now < start + get_block_maker_delay(self.ctx.config, rank):
                return _DEFER
        metadata = BlockMetadata(block.version, height, proposal.subnet_id, block.block_hash())
        public_key = self.ctx.membership.nodes[proposal.signer].basic
        if not self.ctx.crypto.verify_basic(
            public_key, metadata.signing_bytes(), proposal.signature
        ):
            return _invalid("bad block-maker signature")
        return self.check_payload(pool, block, parent)

    def _is_notarized_somewhere(self, pool: PoolReader, block: Block) -> bool:
        """Return whether a notarization for ``block`` is already in the pool (catch-up)."""
        block_hash = block.block_hash()
        return any(
            n.content.block == block_hash
            for n in pool.pool.unvalidated.at(Notarization, block.height)
        )

    def check_payload(self, pool: PoolReader, block: Block, parent: Block) -> Check:
        """Check the DKG part (summary equals the recomputed one; dealings) and the batch.

        Spec: protocol.md §1.6 (summary blocks at summary heights carry the DKG summary
        and an empty batch), §3.1 (dealings verified publicly; 1 per block).
        """
        if self.ctx.config.is_summary_height(block.height):
            if not isinstance(block.payload, SummaryPayload):
                return _invalid("a summary height needs a summary block")
            expected = build_summary_payload(pool, self.ctx, parent, block.height)
            if expected is None:
                return _DEFER
            if expected != block.payload:
                return _invalid("DKG summary differs from the recomputed one")
            return _VALID
        if not isinstance(block.payload, DataPayload):
            return _invalid("a data height needs a data block")
        payload = block.payload
        if len(payload.dealings) > self.ctx.config.dkg_dealings_per_block:
            return _invalid("too many dealings")
        if payload.dealings:
            chain = previous_summary_chain(pool, self.ctx, parent)
            if chain is None:
                return _DEFER
            summary = summary_of(chain[-1])
            if summary is None:
                return _invalid("chain has no summary block")
            included = {(d.content.dkg_id, d.content.dealer) for d in dealings_on_chain(chain)}
            for dealing in payload.dealings:
                key = (dealing.content.dkg_id, dealing.content.dealer)
                if key in included:
                    return _invalid("dealing already on chain")
                included.add(key)
                verdict = self._dealing_valid(summary, dealing)
                if verdict is not None:
                    return verdict
        past = undelivered_ancestors(pool, self.ctx, parent)
        self.ctx.payload_builder.validate_batch(
            block.height, block.context.time, payload.batch, past
        )
        return _VALID

    def _dealing_valid(self, summary: DkgSummary, dealing: DealingMessage) -> Check | None:
        """Return None if ``dealing`` is valid for a config of ``summary``, else the verdict."""
        config = next((c for c in summary.configs if c.dkg_id == dealing.content.dkg_id), None)
        if config is None:
            return _invalid("dealing for an unknown DKG")
        if dealing.content.dealer not in config.dealers:
            return _invalid("dealer is not a dealer of this DKG")
        public_key = self.ctx.membership.nodes[dealing.content.dealer].basic
        if not self.ctx.crypto.verify_basic(public_key, dealing.signing_bytes(), dealing.signature):
            return _invalid("bad dealing signature")
        if self.ctx.dkg is None or not self.ctx.dkg.verify_dealing(
            config,
            dealing.content.dealer,
            dealing.content.dealing,
            resharing_source(summary, config),
        ):
            return _invalid("dealing does not verify")
        return None

    def check_dealing(self, pool: PoolReader, dealing: DealingMessage) -> Check:
        """Check a gossiped dealing against the DKG configs of its summary.

        Spec: protocol.md §3.1 (anyone can publicly verify a dealing).
        """
        start = Height(
            dealing.content.dkg_id.start_height - self.ctx.config.dkg_interval_length - 1
        )
        if start < self.ctx.config.interval_start(pool.finalized_height()):
            return _USELESS
        summary = self.ctx.summaries.get(start)
        if summary is None:
            return _DEFER
        verdict = self._dealing_valid(summary, dealing)
        return _VALID if verdict is None else verdict

    def _committee_key(self, pool: PoolReader, height: int, signer: int) -> Check:
        beacon = pool.beacon_at(height - 1)
        if beacon is None:
            return _DEFER
        if not self._signer_ok(signer) or signer not in get_notarization_committee(
            beacon, self.ctx.config.n
        ):
            return _invalid(f"signer {signer} is not in the notarization committee")
        return Check(Verdict.VALID, public_key=self.ctx.membership.nodes[signer].committee)

    def check_multi_share(
        self, pool: PoolReader, share: NotarizationShare | FinalizationShare
    ) -> Check:
        """Check a notarization or finalization share (signature batch-verified after).

        Spec: ICC paper §3.4-3.5; protocol.md §2.1 (committee signing key, committee).
        """
        if share.height <= pool.finalized_height():
            return _USELESS
        block = pool.block(share.content.block)
        if block is None:
            return _DEFER
        if block.height != share.height:
            return _invalid("share height differs from the block's")
        return self._committee_key(pool, share.height, share.signer)

    def check_multi(self, pool: PoolReader, artifact: Notarization | Finalization) -> Check:
        """Check a notarization or finalization: 2f + 1 distinct committee signers.

        Spec: ICC paper §3.4-3.5; protocol.md §2.1 (threshold c - f = 2f + 1).
        """
        height = artifact.height
        if height <= pool.finalized_height() and isinstance(artifact, Finalization):
            return _USELESS
        if height < pool.finalized_height():
            return _USELESS
        block = pool.block(artifact.content.block)
        if block is None:
            return _DEFER
        if block.height != height:
            return _invalid("height differs from the block's")
        signers = artifact.signers
        if list(signers) != sorted(set(signers)):
            return _invalid("signers must be sorted and distinct")
        if len(signers) < self.ctx.config.notarization_threshold:
            return _invalid("too few signers")
        beacon = pool.beacon_at(height - 1)
        if beacon is None:
            return _DEFER
        committee = get_notarization_committee(beacon, self.ctx.config.n)
        if any(s not in committee for s in signers):
            return _invalid("a signer is not in the notarization committee")
        keys = [self.ctx.membership.nodes[s].committee for s in signers]
        if not self.ctx.crypto.verify_multi(keys, artifact.signing_bytes(), artifact.signature):
            return _invalid("bad multi-signature")
        return _VALID

    def _threshold_share_key(self, height: Height, tag: DkgTag, signer: int) -> Check:
        transcript = self.ctx.transcript(height, tag)
        if transcript is None:
            return _DEFER
        position = receiver_position(transcript, NodeIndex(signer))
        if position is None:
            return _invalid(f"signer {signer} holds no share of the {tag.name} key")
        return Check(Verdict.VALID, public_key=transcript.public_key_shares[position])

    def _threshold_full(
        self, height: Height, tag: DkgTag, message: bytes, signature: bytes
    ) -> Check:
        transcript = self.ctx.transcript(height, tag)
        if transcript is None:
            return _DEFER
        if not self.ctx.crypto.verify_threshold(transcript.group_public_key, message, signature):
            return _invalid("bad threshold signature")
        return _VALID

    def check_beacon_share(self, pool: PoolReader, share: RandomBeaconShare) -> Check:
        """Check a beacon share: it extends beacon h - 1 and comes from a key holder.

        Spec: ICC paper §3.2; protocol.md §2.3.
        """
        if share.height <= pool.beacon_height():
            return _USELESS
        previous = pool.beacon_at(share.height - 1)
        if previous is None:
            return _DEFER
        if share.content.parent != previous.artifact_hash():
            return _invalid("beacon share does not extend the previous beacon")
        return self._threshold_share_key(share.height, DkgTag.LOW, share.signer)

    def check_beacon(self, pool: PoolReader, beacon: RandomBeacon) -> Check:
        """Check a beacon: it extends beacon h - 1 and the group signature verifies.

        Spec: ICC paper §3.2 (unique threshold signature); protocol.md INV-7.
        """
        if beacon.height <= pool.beacon_height():
            return _USELESS
        previous = pool.beacon_at(beacon.height - 1)
        if previous is None:
            return _DEFER
        if beacon.content.parent != previous.artifact_hash():
            return _invalid("beacon does not extend the previous beacon")
        return self._threshold_full(
            beacon.height, DkgTag.LOW, beacon.signing_bytes(), beacon.signature
        )

    def check_tape(self, pool: PoolReader, tape: RandomTapeShare | RandomTape) -> Check:
        """Check a random tape or tape share for a finalized height.

        Spec: protocol.md §2.3 (tape threshold-signed with the low key of its height).
        """
        if tape.height <= pool.cup_height() or pool.tape_at(tape.height) is not None:
            return _USELESS
        if tape.height > pool.finalized_height():
            return _DEFER
        if isinstance(tape, RandomTapeShare):
            return self._threshold_share_key(tape.height, DkgTag.LOW, tape.signer)
        return self._threshold_full(tape.height, DkgTag.LOW, tape.signing_bytes(), tape.signature)

    def check_cup_share(self, pool: PoolReader, share: CatchUpPackageShare) -> Check:
        """Check a CUP share: it names our finalized summary block, beacon and state hash.

        Spec: protocol.md §3.2 (CUP shares; high-threshold key of the interval).
        """
        height = share.height
        if height <= pool.latest_validated_cup().height:
            return _USELESS
        if not self.ctx.config.is_summary_height(height):
            return _invalid("CUP share not at a summary height")
        if height > pool.finalized_height():
            return _DEFER
        block = pool.finalized_block_at(height)
        beacon = pool.beacon_at(height)
        if block is None or beacon is None:
            return _DEFER
        if share.content.block != block or share.content.random_beacon != beacon:
            return _invalid("CUP share names another block or beacon")
        own_state = None if self.state_hash_of is None else self.state_hash_of(height)
        if own_state is not None and share.content.state_hash != own_state:
            return _invalid("CUP share names another state hash (divergence)")
        return self._threshold_share_key(height, DkgTag.HIGH, share.signer)

    def check_cup(self, pool: PoolReader, cup: CatchUpPackage) -> Check:
        """Check a CUP from a peer against the subnet's (constant) high-threshold key.

        Resharing keeps the group key, so a replica that is far behind can verify a CUP
        with the key from its own root CUP.

        Spec: protocol.md §3.2 (verify against the subnet public key), §3.1 (resharing).
        """
        if cup.height <= pool.latest_validated_cup().height:
            return _USELESS
        if not self.ctx.config.is_summary_height(cup.height) or not cup.content.block.is_summary():
            return _invalid("CUP not at a summary height")
        if cup.content.random_beacon.height != cup.height:
            return _invalid("CUP beacon height differs")
        subnet_key = pool.cup().summary().current_transcript(DkgTag.HIGH).group_public_key
        if cup.summary().current_transcript(DkgTag.HIGH).group_public_key != subnet_key:
            return _invalid("CUP changes the subnet public key")
        if not self.ctx.crypto.verify_threshold(subnet_key, cup.signing_bytes(), cup.signature):
            return _invalid("bad CUP signature")
        own = pool.finalized_block_at(cup.height)
        if own is not None and own != cup.content.block:
            return _invalid("CUP block differs from our finalized block")
        return _VALID

    def check_equivocation_proof(self, pool: PoolReader, proof: EquivocationProof) -> Check:
        """Check an equivocation proof: two valid signatures by one maker at one height.

        Spec: protocol.md §1.6 EquivocationProof.
        """
        if proof.height <= pool.finalized_height():
            return _USELESS
        if not self._signer_ok(proof.signer) or proof.subnet_id != self.ctx.membership.subnet_id:
            return _invalid("unknown signer or subnet")
        if proof.hash1 == proof.hash2:
            return _invalid("the two hashes are equal")
        public_key = self.ctx.membership.nodes[proof.signer].basic
        for metadata, signature in (
            (proof.metadata1(), proof.signature1),
            (proof.metadata2(), proof.signature2),
        ):
            if not self.ctx.crypto.verify_basic(public_key, metadata.signing_bytes(), signature):
                return _invalid("bad signature in equivocation proof")
        return _VALID

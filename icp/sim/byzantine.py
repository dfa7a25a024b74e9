"""Node behaviours for the simulator: honest, crashed and Byzantine strategies.

A behaviour sits between a replica and the network: it filters what the replica
receives, may rewrite what it sends (to whom, and what), and may inject artifacts of
its own signed with the node's real keys. Byzantine nodes never forge other nodes'
signatures (they cannot with real crypto).

Spec: ICC paper §2 (up to t < n/3 Byzantine parties that may deviate arbitrarily);
issue 6 (equivocating block maker, withholding shares, signing two blocks at a height,
invalid signatures, replaying old artifacts, silent/crashed node).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs

from icp.consensus.artifacts import (
    BlockProposal,
    CatchUpPackageShare,
    ConsensusArtifact,
    FinalizationContent,
    FinalizationShare,
    NotarizationContent,
    NotarizationShare,
    RandomBeaconShare,
    RandomTapeShare,
)
from icp.consensus.block_maker import sign_proposal
from icp.consensus.config import REPLICA_VERSION, TIME_ZERO
from icp.consensus.pool import AddToValidated, ChangeAction
from icp.consensus.replica import ConsensusReplica
from icp.types import Height, Time


@attrs.frozen(slots=True)
class Send:
    """An artifact to send; ``to`` None means every other node."""

    artifact: ConsensusArtifact
    to: tuple[int, ...] | None = None


class Behaviour:
    """Honest behaviour: receive everything, send what the replica produced."""

    name = "honest"
    honest = True
    """Whether the properties hold this node to the protocol (mutants say True)."""

    def runs(self, now: Time) -> bool:
        """Return whether the node is alive at ``now``."""
        return True

    def accepts(self, artifact: ConsensusArtifact) -> bool:
        """Return whether the node takes in ``artifact``."""
        return True

    def outgoing(
        self, replica: ConsensusReplica, now: Time, produced: Sequence[ConsensusArtifact]
    ) -> list[Send]:
        """Return what actually goes out after a tick."""
        return [Send(a) for a in produced]


class Honest(Behaviour):
    """The protocol as written."""


@attrs.define
class Crashed(Behaviour):
    """Silent from ``at`` on: receives nothing, sends nothing (a crash or a mute node)."""

    at: Time = TIME_ZERO
    name = "crashed"
    honest = False

    def runs(self, now: Time) -> bool:
        """Alive only before ``at``."""
        return now < self.at

    def accepts(self, artifact: ConsensusArtifact) -> bool:
        """A crashed node takes nothing in (checked at delivery time by the simulator)."""
        return True


class WithholdShares(Behaviour):
    """Never sends its shares (beacon, notarization, finalization, tape, CUP)."""

    name = "withhold-shares"
    honest = False
    _SHARES = (
        NotarizationShare,
        FinalizationShare,
        RandomBeaconShare,
        RandomTapeShare,
        CatchUpPackageShare,
    )

    def outgoing(
        self, replica: ConsensusReplica, now: Time, produced: Sequence[ConsensusArtifact]
    ) -> list[Send]:
        """Drop shares."""
        return [Send(a) for a in produced if not isinstance(a, self._SHARES)]


class EquivocatingBlockMaker(Behaviour):
    """Signs two different blocks for every proposal and sends each to half the peers."""

    name = "equivocating-maker"
    honest = False

    def outgoing(
        self, replica: ConsensusReplica, now: Time, produced: Sequence[ConsensusArtifact]
    ) -> list[Send]:
        """Split every own proposal into two conflicting ones."""
        n = replica.ctx.config.n
        out: list[Send] = []
        for artifact in produced:
            if isinstance(artifact, BlockProposal) and artifact.signer == replica.node:
                block = artifact.block
                twin_block = attrs.evolve(
                    block, context=attrs.evolve(block.context, time=Time(block.context.time + 1))
                )
                twin = sign_proposal(replica.ctx, twin_block)
                peers = [i for i in range(n) if i != replica.node]
                out.append(Send(artifact, tuple(peers[0::2])))
                out.append(Send(twin, tuple(peers[1::2])))
            else:
                out.append(Send(artifact))
        return out


@attrs.define
class DoubleSigner(Behaviour):
    """Notarization- and finalization-shares every valid block it sees (breaks the rules)."""

    name = "double-signer"
    honest = False
    signed: set[tuple[str, bytes]] = attrs.field(factory=set)

    def outgoing(
        self, replica: ConsensusReplica, now: Time, produced: Sequence[ConsensusArtifact]
    ) -> list[Send]:
        """Send the replica's output plus shares on every block above the finalized height."""
        out = [Send(a) for a in produced]
        reader = replica.reader
        ctx = replica.ctx
        for h in range(reader.finalized_height() + 1, reader.notarized_height() + 2):
            for proposal in reader.proposals_at(h):
                block_hash = proposal.block.block_hash()
                if ("n", block_hash) not in self.signed:
                    self.signed.add(("n", block_hash))
                    content = NotarizationContent(REPLICA_VERSION, Height(h), block_hash)
                    sig = ctx.crypto.sign_multi(ctx.secrets.committee, content.signing_bytes())
                    share = NotarizationShare(content, replica.node, sig)
                    replica.pool.apply(_add(share), now)
                    out.append(Send(share))
                if ("f", block_hash) not in self.signed:
                    self.signed.add(("f", block_hash))
                    fcontent = FinalizationContent(REPLICA_VERSION, Height(h), block_hash)
                    fsig = ctx.crypto.sign_multi(ctx.secrets.committee, fcontent.signing_bytes())
                    fshare = FinalizationShare(fcontent, replica.node, fsig)
                    replica.pool.apply(_add(fshare), now)
                    out.append(Send(fshare))
        return out


def _add(artifact: ConsensusArtifact) -> list[ChangeAction]:
    return [AddToValidated(artifact, broadcast=False)]


@attrs.define
class MutantNotaryFinalizer(DoubleSigner):
    """A MUTANT honest node: shares every block, ignoring the rank and D ⊆ {B} rules.

    Counted as honest by the property checks: it exists to show that the properties
    catch a real bug (agreement breaks under an equivocating block maker).
    """

    name = "mutant-notary-finalizer"
    honest = True


def _corrupt(signature: bytes) -> bytes:
    if not signature:
        return b"\x01"
    return bytes([signature[0] ^ 0x01]) + signature[1:]


class InvalidSignatures(Behaviour):
    """Sends every artifact with a corrupted signature."""

    name = "invalid-signatures"
    honest = False

    def outgoing(
        self, replica: ConsensusReplica, now: Time, produced: Sequence[ConsensusArtifact]
    ) -> list[Send]:
        """Flip a bit in every signature."""
        out: list[Send] = []
        for artifact in produced:
            signature = getattr(artifact, "signature", None)
            if isinstance(signature, bytes):
                out.append(Send(attrs.evolve(artifact, signature=_corrupt(signature))))  # type: ignore[arg-type]
            else:
                out.append(Send(artifact))
        return out


@attrs.define
class Replayer(Behaviour):
    """Behaves honestly but also re-sends random old artifacts it received."""

    rng: random.Random = attrs.field(factory=lambda: random.Random(0))
    per_tick: int = 3
    history: list[ConsensusArtifact] = attrs.field(factory=list)
    name = "replayer"
    honest = False

    def accepts(self, artifact: ConsensusArtifact) -> bool:
        """Remember (a bounded sample of) what arrives."""
        if len(self.history) < 5000:
            self.history.append(artifact)
        return True

    def outgoing(
        self, replica: ConsensusReplica, now: Time, produced: Sequence[ConsensusArtifact]
    ) -> list[Send]:
        """Send the output plus replays."""
        out = [Send(a) for a in produced]
        if self.history:
            for _ in range(self.per_tick):
                out.append(Send(self.history[self.rng.randrange(len(self.history))]))
        return out


@attrs.define
class EquivocatingDoubleSigner(DoubleSigner):
    """Equivocates as a block maker and shares every block it knows, its twins included.

    The strongest single-node attack on agreement that the simulator models: with f of
    them the protocol stays safe; with f + 1 colluding signers agreement can break.
    """

    name = "equivocating-double-signer"
    honest = False

    def outgoing(
        self, replica: ConsensusReplica, now: Time, produced: Sequence[ConsensusArtifact]
    ) -> list[Send]:
        """Split own proposals, keep the twins in the own pool, then double-sign."""
        split = EquivocatingBlockMaker().outgoing(replica, now, produced)
        for send in split:
            artifact = send.artifact
            if isinstance(artifact, BlockProposal) and artifact.signer == replica.node:
                replica.pool.apply(_add(artifact), now)
        signed = DoubleSigner.outgoing(self, replica, now, ())
        return split + signed


BYZANTINE_KINDS = (
    "crashed",
    "withhold-shares",
    "equivocating-maker",
    "double-signer",
    "invalid-signatures",
    "replayer",
    "equivocating-double-signer",
)


def make_behaviour(kind: str, rng: random.Random) -> Behaviour:
    """Return a fresh behaviour by name (``rng`` seeds strategies that need randomness)."""
    if kind == "honest":
        return Honest()
    if kind == "crashed":
        return Crashed(Time(0))
    if kind == "withhold-shares":
        return WithholdShares()
    if kind == "equivocating-maker":
        return EquivocatingBlockMaker()
    if kind == "double-signer":
        return DoubleSigner()
    if kind == "invalid-signatures":
        return InvalidSignatures()
    if kind == "replayer":
        return Replayer(random.Random(rng.getrandbits(64)))
    if kind == "equivocating-double-signer":
        return EquivocatingDoubleSigner()
    if kind == "mutant-notary-finalizer":
        return MutantNotaryFinalizer()
    raise ValueError(f"unknown behaviour {kind!r}")

"""The validator accepts what honest replicas make and rejects tampered artifacts."""

from __future__ import annotations

import attrs

from icp.consensus.artifacts import (
    Block,
    BlockProposal,
    CatchUpPackage,
    EquivocationProof,
    Notarization,
    NotarizationContent,
    NotarizationShare,
    RandomBeacon,
)
from icp.consensus.block_maker import sign_proposal
from icp.consensus.config import REPLICA_VERSION
from icp.consensus.genesis import make_replica
from icp.consensus.pool import HandleInvalid, MoveToValidated
from icp.consensus.ranking import get_block_maker_ranking
from icp.consensus.replica import ConsensusReplica
from icp.sim.simulator import Simulation
from icp.types import Height, NodeIndex, Rank, Time

from ._helpers import make_sim


def verdicts(replica: ConsensusReplica, artifact: object, now: Time) -> list[object]:
    replica.pool.insert_unvalidated(artifact)  # type: ignore[arg-type]
    key = artifact.artifact_hash()  # type: ignore[attr-defined]
    changes = replica.validator.on_state_change(replica.reader, now)
    return [c for c in changes if getattr(c, "artifact_hash", None) == key]


def fresh() -> tuple[Simulation, ConsensusReplica]:
    sim = make_sim(seed=3)
    assert sim.run_until_height(3, Time(30 * 10**9))
    return sim, sim.replicas[0]


def next_proposal(sim: Simulation, node: int) -> BlockProposal:
    """A valid proposal by ``node`` for the next height of replica 0 (any rank claims)."""
    reader = sim.replicas[0].reader
    parent = reader.notarized_blocks_at(reader.notarized_height())[0]
    ctx = sim.replicas[node].ctx
    block = attrs.evolve(parent, parent=parent.block_hash(), height=Height(parent.height + 1))
    return sign_proposal(ctx, block)


def test_proposal_with_a_wrong_rank_or_signature_is_rejected() -> None:
    sim, replica = fresh()
    reader = replica.reader
    height = reader.notarized_height() + 1
    beacon = reader.beacon_at(height - 1)
    assert beacon is not None
    ranking = get_block_maker_ranking(beacon, 4)
    outsider = next(i for i in range(4) if i not in ranking)
    bad_rank = next_proposal(sim, outsider)
    [verdict] = verdicts(replica, bad_rank, sim.now)
    assert isinstance(verdict, HandleInvalid) and "rank" in verdict.reason
    leader = ranking[0]
    good = next_proposal(sim, leader)
    good = attrs.evolve(good, block=attrs.evolve(good.block, rank=Rank(0)))
    good = sign_proposal(sim.replicas[leader].ctx, good.block)
    forged = attrs.evolve(good, signature=bytes(64))
    [verdict] = verdicts(replica, forged, Time(sim.now + 10**10))
    assert isinstance(verdict, HandleInvalid) and "signature" in verdict.reason


def test_equivocating_proposals_produce_a_proof() -> None:
    sim, replica = fresh()
    reader = replica.reader
    beacon = reader.beacon_at(reader.notarized_height())
    assert beacon is not None
    leader = get_block_maker_ranking(beacon, 4)[0]
    base = next_proposal(sim, leader).block
    one = sign_proposal(sim.replicas[leader].ctx, attrs.evolve(base, rank=Rank(0)))
    other_ctx = attrs.evolve(base.context, time=Time(base.context.time + 1))
    two = sign_proposal(
        sim.replicas[leader].ctx, attrs.evolve(base, rank=Rank(0), context=other_ctx)
    )
    later = Time(sim.now + 10**10)
    replica.pool.insert_unvalidated(one)
    replica.pool.insert_unvalidated(two)
    changes = replica.validator.on_state_change(replica.reader, later)
    replica.pool.apply(changes, later)
    proofs = replica.reader.validated_at(EquivocationProof, base.height)
    assert len(proofs) == 1 and proofs[0].signer == leader
    assert replica.reader.equivocators_at(base.height) == {leader}


def pending_block(sim: Simulation) -> tuple[ConsensusReplica, Block]:
    """Advance until replica 0 holds a validated proposal above its notarized height."""
    replica = sim.replicas[0]
    for _ in range(4000):
        reader = replica.reader
        proposals = reader.proposals_at(reader.notarized_height() + 1)
        if proposals:
            return replica, proposals[0].block
        sim.run_until(Time(sim.now + 1_000_000))
    raise AssertionError("no pending proposal")


def signed(sim: Simulation, node: int, content: NotarizationContent) -> NotarizationShare:
    ctx = sim.replicas[node].ctx
    signature = ctx.crypto.sign_multi(ctx.secrets.committee, content.signing_bytes())
    return NotarizationShare(content, NodeIndex(node), signature)


def test_bad_shares_are_caught_by_batch_verification() -> None:
    sim, _ = fresh()
    replica, block = pending_block(sim)
    content = NotarizationContent(REPLICA_VERSION, block.height, block.block_hash())
    good = signed(sim, 1, content)
    [verdict] = verdicts(replica, good, sim.now)
    assert isinstance(verdict, MoveToValidated)
    impostor = attrs.evolve(signed(sim, 1, content), signer=NodeIndex(2))
    [verdict] = verdicts(replica, impostor, sim.now)
    assert isinstance(verdict, HandleInvalid) and "signature" in verdict.reason
    stranger = attrs.evolve(good, signer=NodeIndex(9))
    [verdict] = verdicts(replica, stranger, sim.now)
    assert isinstance(verdict, HandleInvalid) and "committee" in verdict.reason


def test_notarization_needs_enough_valid_distinct_signers() -> None:
    sim, _ = fresh()
    replica, block = pending_block(sim)
    content = NotarizationContent(REPLICA_VERSION, block.height, block.block_hash())
    crypto = replica.ctx.crypto
    shares = [signed(sim, i, content) for i in range(4)]

    def notarization(signers: tuple[int, ...], sigs: list[bytes]) -> Notarization:
        return Notarization(content, tuple(NodeIndex(i) for i in signers), crypto.aggregate(sigs))

    too_few = notarization((0, 1), [shares[0].signature, shares[1].signature])
    assert "too few" in replica.validator.check(replica.reader, too_few, sim.now).reason
    unsorted = notarization((1, 0, 2), [s.signature for s in shares[:3]])
    assert "sorted" in replica.validator.check(replica.reader, unsorted, sim.now).reason
    wrong = notarization((0, 1, 3), [s.signature for s in shares[:3]])
    assert "multi-signature" in replica.validator.check(replica.reader, wrong, sim.now).reason
    right = notarization((0, 1, 2), [s.signature for s in shares[:3]])
    assert replica.validator.check(replica.reader, right, sim.now).verdict.value == "valid"


def test_beacon_and_cup_with_bad_signatures_are_rejected() -> None:
    sim = make_sim(seed=5)
    assert sim.run_until_height(12, Time(60 * 10**9))
    replica = sim.replicas[0]
    reader = replica.reader
    height = reader.beacon_height()
    current = reader.beacon_at(height)
    assert current is not None
    content = attrs.evolve(
        current.content, height=Height(height + 1), parent=current.artifact_hash()
    )
    nxt = RandomBeacon(content, bytes(48))  # well-formed but not a threshold signature
    [verdict] = verdicts(replica, nxt, sim.now)
    assert isinstance(verdict, HandleInvalid)
    cup = reader.latest_validated_cup()
    assert cup.height == 10 and cup.signature
    newcomer = make_replica(sim.setup, 2, replica.ctx.crypto)  # from genesis, knows nothing
    check = newcomer.validator.check_cup
    assert check(newcomer.reader, cup).verdict.value == "valid"
    forged = CatchUpPackage(cup.content, cup.signature[:-1] + bytes([cup.signature[-1] ^ 1]))
    assert "signature" in check(newcomer.reader, forged).reason
    other_state = attrs.evolve(cup, content=attrs.evolve(cup.content, state_hash=b"\x01" * 32))
    assert "signature" in check(newcomer.reader, other_state).reason

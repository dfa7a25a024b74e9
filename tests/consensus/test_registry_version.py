"""Blocks carry the block maker's latest registry version; validators wait for it.

Also the regression for ``undelivered_ancestors``: the payload builder sees every
block whose batch is not in the state yet, finalized or not.

Spec: protocol.md §1.6 (ValidationContext.registry_version = the block maker's latest
local registry version, non-decreasing along the chain; a validator needs that version
locally; payloads are checked against the past payloads since the state they build on).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import attrs

from icp.consensus.artifacts import BatchPayload, Block, BlockProposal
from icp.consensus.block_maker import (
    build_block,
    select_parent,
    sign_proposal,
    undelivered_ancestors,
)
from icp.consensus.pool import HandleInvalid, MoveToValidated
from icp.consensus.ranking import get_block_maker_ranking
from icp.consensus.replica import ConsensusReplica
from icp.consensus.validator import Validator, Verdict
from icp.sim.simulator import Simulation
from icp.types import Height, Rank, RegistryVersion, Time

from ._helpers import make_sim

SECOND = 10**9
LATER = 10 * SECOND
"""Far enough past ``sim.now`` for every block-maker delay to have passed."""


def fixed(version: int) -> Callable[[], RegistryVersion]:
    """A registry copy that holds versions up to ``version``."""
    return lambda: RegistryVersion(version)


def started(seed: int = 3, height: int = 3) -> Simulation:
    sim = make_sim(seed=seed)
    assert sim.run_until_height(height, Time(30 * SECOND))
    return sim


def tip(replica: ConsensusReplica) -> Block:
    parent = select_parent(replica.reader, replica.notarized_height())
    assert parent is not None
    return parent


def leader_proposal(sim: Simulation, version: int) -> BlockProposal:
    """The rank-0 proposal on replica 0's notarized tip, made with local ``version``."""
    reader = sim.replicas[0].reader
    beacon = reader.beacon_at(reader.notarized_height())
    assert beacon is not None
    leader = sim.replicas[get_block_maker_ranking(beacon, sim.config.n)[0]]
    ctx = attrs.evolve(leader.ctx, registry_version=fixed(version))
    block = build_block(reader, ctx, tip(sim.replicas[0]), Rank(0), sim.now)
    assert block is not None
    return sign_proposal(ctx, block)


def verdict_of(replica: ConsensusReplica, artifact: BlockProposal, now: Time) -> object | None:
    """Run the validator on the pool; return its change for ``artifact`` (None: deferred)."""
    replica.pool.insert_unvalidated(artifact)
    key = artifact.artifact_hash()
    changes = replica.validator.on_state_change(replica.reader, now)
    mine = [c for c in changes if getattr(c, "artifact_hash", None) == key]
    assert len(mine) <= 1
    return mine[0] if mine else None


# -- (a) block maker -----------------------------------------------------------------------


def test_the_block_maker_proposes_its_latest_local_registry_version() -> None:
    sim = started()
    replica = sim.replicas[0]
    parent = tip(replica)
    assert parent.context.registry_version == sim.config.registry_version == 1
    default = build_block(replica.reader, replica.ctx, parent, Rank(0), sim.now)
    assert default is not None and default.context.registry_version == 1
    for version in (1, 2, 7):
        ctx = attrs.evolve(replica.ctx, registry_version=fixed(version))
        assert ctx.latest_registry_version() == version
        block = build_block(replica.reader, ctx, parent, Rank(0), sim.now)
        assert block is not None
        assert block.context.registry_version == version
        assert block.context.is_at_least(parent.context)


# -- (c) a block maker behind the parent makes nothing ----------------------------------------


def test_a_block_maker_behind_the_parents_registry_version_makes_no_block() -> None:
    sim = started()
    replica = sim.replicas[0]
    at5 = attrs.evolve(replica.ctx, registry_version=fixed(5))
    parent = build_block(replica.reader, at5, tip(replica), Rank(0), sim.now)
    assert parent is not None and parent.context.registry_version == 5
    height = Height(parent.height + 1)
    if sim.config.is_summary_height(height):  # pragma: no cover - seed-dependent
        raise AssertionError("pick a seed whose next height is a data height")
    for behind in (1, 4):
        ctx = attrs.evolve(replica.ctx, registry_version=fixed(behind))
        assert build_block(replica.reader, ctx, parent, Rank(0), sim.now) is None
    for caught_up in (5, 6):
        ctx = attrs.evolve(replica.ctx, registry_version=fixed(caught_up))
        child = build_block(replica.reader, ctx, parent, Rank(0), sim.now)
        assert child is not None and child.context.registry_version == caught_up


# -- (b) a validator behind the proposal defers it ----------------------------------------------


def test_a_validator_defers_a_proposal_of_a_newer_registry_version_until_it_catches_up() -> None:
    sim = started()
    validator = sim.replicas[0]
    validator.ctx.registry_version = fixed(1)
    proposal = leader_proposal(sim, 3)
    assert proposal.block.context.registry_version == 3
    now = Time(sim.now + LATER)
    check = validator.validator.check(validator.reader, proposal, now)
    assert check.verdict is Verdict.DEFER, check
    assert verdict_of(validator, proposal, now) is None  # still unvalidated, not invalid
    validator.ctx.registry_version = fixed(2)
    assert verdict_of(validator, proposal, now) is None
    validator.ctx.registry_version = fixed(3)
    assert isinstance(verdict_of(validator, proposal, now), MoveToValidated)


def test_a_proposal_at_the_validators_version_or_below_is_valid() -> None:
    sim = started()
    validator = sim.replicas[0]
    validator.ctx.registry_version = fixed(4)
    now = Time(sim.now + LATER)
    for version in (1, 4):
        proposal = leader_proposal(sim, version)
        check = validator.validator.check(validator.reader, proposal, now)
        assert check.verdict is Verdict.VALID, (version, check)


def test_a_proposal_behind_its_parents_registry_version_is_invalid() -> None:
    sim = started()
    validator = sim.replicas[0]
    proposal = leader_proposal(sim, 1)
    block = proposal.block
    older = attrs.evolve(
        block, context=attrs.evolve(block.context, registry_version=RegistryVersion(0))
    )
    signer = sim.replicas[proposal.signer].ctx
    change = verdict_of(validator, sign_proposal(signer, older), Time(sim.now + LATER))
    assert isinstance(change, HandleInvalid) and "behind the parent" in change.reason


# -- (d) a running subnet across a registry change ----------------------------------------------


def registry_switches(replica: ConsensusReplica) -> list[tuple[int, int]]:
    """Return (height, version) where the delivered batches' registry version changes."""
    out: list[tuple[int, int]] = []
    previous = None
    for batch in replica.batches_delivered:
        if batch.registry_version != previous:
            out.append((batch.height, batch.registry_version))
            previous = batch.registry_version
    return out


def test_a_subnet_keeps_finalizing_across_staggered_registry_updates() -> None:
    """Nodes learn versions 2 and 3 at different times; every replica switches together.

    A node that learned a version first proposes it, the others defer that proposal
    until they learn it too (or notarize another block); the chain's version never
    goes down and every replica delivers the same batches.
    """
    sim = make_sim(seed=7)
    local = dict.fromkeys(sim.replicas, 1)
    for i, replica in sim.replicas.items():
        replica.ctx.registry_version = lambda i=i: RegistryVersion(local[i])
    assert sim.run_until_height(4, Time(30 * SECOND))
    for i in sim.replicas:  # version 2 reaches the nodes one by one
        local[i] = 2
        sim.run_until(Time(sim.now + 300 * 10**6))
    assert sim.run_until_height(sim.min_honest_finalized() + 3, Time(sim.now + 30 * SECOND))
    local[3] = 3  # version 3 reaches one node only for a while
    assert sim.run_until_height(sim.min_honest_finalized() + 4, Time(sim.now + 30 * SECOND))
    for i in sim.replicas:
        local[i] = 3
    assert sim.run_until_height(sim.min_honest_finalized() + 4, Time(sim.now + 30 * SECOND))
    switches = [registry_switches(r) for r in sim.replicas.values()]
    assert [v for _, v in switches[0]] == [1, 2, 3]
    assert all(s == switches[0] for s in switches[1:]), switches
    shortest = min(len(r.batches_delivered) for r in sim.replicas.values())
    reference = sim.replicas[0].batches_delivered[:shortest]
    for replica in sim.replicas.values():
        assert replica.batches_delivered[:shortest] == reference
        versions = [b.registry_version for b in replica.batches_delivered]
        assert versions == sorted(versions)


def test_a_node_left_behind_stalls_alone_and_resumes_when_it_catches_up() -> None:
    """Three nodes move to version 2; the fourth cannot validate their blocks until it has it.

    n = 4 tolerates f = 1, so the three keep finalizing; the lagging node finalizes
    nothing past the switch; once its copy reaches version 2 it catches up.
    """
    sim = make_sim(seed=9)
    local = dict.fromkeys(sim.replicas, 1)
    for i, replica in sim.replicas.items():
        replica.ctx.registry_version = lambda i=i: RegistryVersion(local[i])
    assert sim.run_until_height(3, Time(30 * SECOND))
    for i in (0, 1, 2):
        local[i] = 2
    laggard = sim.replicas[3]
    ahead = [sim.replicas[i] for i in (0, 1, 2)]
    deadline = Time(sim.now + 30 * SECOND)
    while min(r.finalized_height() for r in ahead) < 8 and sim.now < deadline:
        sim.run_until(Time(sim.now + 100 * 10**6))
    assert min(r.finalized_height() for r in ahead) >= 8
    [(switch, _)] = [s for s in registry_switches(ahead[0]) if s[1] == 2]
    assert laggard.finalized_height() < switch
    assert all(
        b.registry_version == 1 for b in laggard.batches_delivered
    )  # it never executed a block it could not read
    own = [
        p.block
        for h in range(switch, ahead[0].finalized_height() + 1)
        for p in ahead[0].reader.proposals_at(h)
        if p.signer == laggard.node
    ]
    assert all(b.context.registry_version == 1 and b.height == switch for b in own)
    local[3] = 2
    target = max(r.finalized_height() for r in ahead) + 2
    assert sim.run_until_height(target, Time(sim.now + 30 * SECOND))
    assert registry_switches(laggard) == registry_switches(ahead[0])
    reference = {b.height: b for b in ahead[0].batches_delivered}
    assert all(reference[b.height] == b for b in laggard.batches_delivered if b.height in reference)


# -- (e) undelivered_ancestors --------------------------------------------------------------------


@attrs.define
class RecordingBuilder:
    """An empty-batch payload builder that records the ``past`` it was given."""

    past: list[list[int]] = attrs.field(factory=list)

    def get_batch(self, height: Height, time: Time, past: Sequence[Block]) -> BatchPayload:
        self.past.append([b.height for b in past])
        return BatchPayload()

    def validate_batch(
        self, height: Height, time: Time, batch: BatchPayload, past: Sequence[Block]
    ) -> None:
        self.past.append([b.height for b in past])


def test_finalized_blocks_not_yet_delivered_are_in_past() -> None:
    """A batch waiting for its random tape is not in the state: its payload is ``past``.

    Regression: the payload builder used to get only blocks above the finalized height,
    so a node whose finalized batches waited for their tape proposed again ingress its
    peers had already inducted (and the subnet stalled rejecting it).
    """
    sim = started(seed=3, height=6)
    replica = sim.replicas[0]
    reader = replica.reader
    finalized = reader.finalized_height()
    assert replica.ctx.delivered_height == finalized == replica.delivered_height
    parent = tip(replica)
    above_finalized = list(range(parent.height, finalized, -1))
    assert [b.height for b in undelivered_ancestors(reader, replica.ctx, parent)] == above_finalized
    lagging = attrs.evolve(replica.ctx, delivered_height=Height(finalized - 3))
    expected = list(range(parent.height, finalized - 3, -1))
    got = undelivered_ancestors(reader, lagging, parent)
    assert [b.height for b in got] == expected
    assert got[0] == parent and all(a.parent == b.block_hash() for a, b in itertools.pairwise(got))
    no_routing = attrs.evolve(replica.ctx, delivered_height=None)
    assert [b.height for b in undelivered_ancestors(reader, no_routing, parent)] == above_finalized

    builder = RecordingBuilder()
    ctx = attrs.evolve(lagging, payload_builder=builder)
    block = build_block(reader, ctx, parent, Rank(0), sim.now)
    assert block is not None and builder.past == [expected]
    builder.past.clear()
    beacon = reader.beacon_at(parent.height)
    assert beacon is not None
    maker = sim.replicas[get_block_maker_ranking(beacon, sim.config.n)[0]].ctx
    proposal = sign_proposal(maker, block)
    check = Validator(ctx).check(reader, proposal, Time(sim.now + LATER))
    assert check.verdict is Verdict.VALID and builder.past == [expected]

"""Replica-level behaviour: batches, CUPs, purging, restarting from a CUP alone, DKG."""

from __future__ import annotations

import random

import attrs

from icp.consensus.artifacts import (
    BlockProposal,
    ConsensusArtifact,
    DkgTag,
    Notarization,
    RandomBeacon,
    RandomBeaconShare,
    RandomTape,
    RandomTapeShare,
)
from icp.consensus.crypto import CachingCrypto, RealCrypto, VerificationCache
from icp.consensus.dkg import to_threshold_public_key
from icp.consensus.genesis import make_replica
from icp.sim.byzantine import Behaviour
from icp.sim.simulator import Simulation
from icp.types import Height, Time

from ._helpers import FAST4, MS, make_sim

SECOND = 10**9


def test_honest_replicas_deliver_identical_consecutive_batches(sim_at_25: Simulation) -> None:
    batches = [r.batches_delivered for r in sim_at_25.replicas.values()]
    shortest = min(len(b) for b in batches)
    assert shortest >= 20
    for other in batches[1:]:
        assert other[:shortest] == batches[0][:shortest]
    heights = [b.height for b in batches[0]]
    assert heights == list(range(1, len(heights) + 1))
    assert [b.requires_checkpoint for b in batches[0][:20]].count(True) == 2  # heights 10, 20


def test_random_tape_is_the_low_threshold_signature(sim_at_25: Simulation) -> None:
    replica = sim_at_25.replicas[0]
    crypto = replica.ctx.crypto
    for batch in replica.batches_delivered[-3:]:
        transcript = replica.ctx.transcript(batch.height, DkgTag.LOW)
        assert transcript is not None
        from icp.consensus.artifacts import RandomTapeContent
        from icp.consensus.config import REPLICA_VERSION

        message = RandomTapeContent(REPLICA_VERSION, batch.height).signing_bytes()
        assert crypto.verify_threshold(transcript.group_public_key, message, batch.randomness)


def test_pools_are_purged_below_the_latest_cup(sim_at_25: Simulation) -> None:
    for replica in sim_at_25.replicas.values():
        reader = replica.reader
        assert reader.cup_height() == 20
        heights = {a.height for a in replica.pool.validated.by_hash.values()}
        assert min(heights) == 20
        assert not reader.proposals_at(15) and not reader.validated_at(Notarization, 19)
        assert reader.finalized_block_at(15) is None  # gone; the CUP replaces it


def test_a_replica_starts_from_a_cup_alone_and_catches_up() -> None:
    sim = make_sim(seed=11)
    assert sim.run_until_height(23, Time(60 * SECOND))
    cup = sim.replicas[0].reader.latest_validated_cup()
    assert cup.height == 20
    crypto = sim.replicas[0].ctx.crypto
    restarted = make_replica(sim.setup, 3, crypto, cup=cup, now=sim.now)
    assert restarted.reader.proposals_at(5) == [] and restarted.finalized_height() == 20
    sim.add_replica(3, restarted)
    assert sim.run_until_height(35, Time(sim.now + 60 * SECOND))
    assert restarted.finalized_height() >= 35
    assert restarted.batches_delivered[0].height > 20  # nothing at or before its CUP
    others = {b.height: b for b in sim.replicas[0].batches_delivered}
    assert all(others[b.height] == b for b in restarted.batches_delivered if b.height in others)
    assert restarted.reader.latest_validated_cup().height == 30


def test_a_lagging_replica_catches_up_via_a_newer_cup() -> None:
    sim = make_sim(seed=12)
    sim.network.partition([[0, 1, 2], [3]])
    while sim.replicas[0].finalized_height() < 32:
        sim.run_until(Time(sim.now + SECOND // 10))
    assert sim.replicas[3].finalized_height() == 0
    sim.network.heal()  # node 3 must now jump to a CUP >= 30 and continue from it
    target = sim.replicas[0].finalized_height() + 3
    assert sim.run_until_height(target, Time(sim.now + 60 * SECOND))
    lagger = sim.replicas[3]
    assert lagger.reader.cup_height() >= 30
    assert all(
        isinstance(a, BlockProposal) is False or a.height >= 30
        for a in lagger.pool.validated.by_hash.values()
    )


def test_dkg_refreshes_the_low_key_and_reshares_the_high_key() -> None:
    sim = make_sim(seed=13, with_dkg=True)
    assert sim.run_until_height(31, Time(120 * SECOND))
    replica = sim.replicas[2]
    summaries = replica.ctx.summaries
    lows = [
        summaries[h].current_transcript(DkgTag.LOW).group_public_key
        for h in map(Height, (0, 20, 30))
    ]
    highs = [summaries[h].current_transcript(DkgTag.HIGH) for h in map(Height, (0, 20, 30))]
    assert len(set(lows)) == 3  # a fresh beacon key every interval
    assert len({t.group_public_key for t in highs}) == 1  # the subnet key never changes
    assert len({t.public_key_shares for t in highs}) == 3  # ... but its shares do
    assert replica.dkg_failures == 0
    # the resharing made shares that really sign under the unchanged subnet key
    crypto = replica.ctx.crypto
    transcript = highs[-1]
    public = to_threshold_public_key(transcript)
    shares = {
        i: crypto.sign_threshold_share(sim.replicas[i].ctx.keys.shares[transcript.dkg_id], b"m")
        for i in range(3)
    }
    signature = crypto.combine_threshold(public, shares, b"m")
    assert crypto.verify_threshold(sim.setup.subnet_public_key(), b"m", signature)
    cup = replica.reader.latest_validated_cup()
    assert crypto.verify_threshold(
        sim.setup.subnet_public_key(), cup.signing_bytes(), cup.signature
    )


# -- retransmission (issue 6) -----------------------------------------------------------


def test_a_lagging_peer_is_helped_again_while_it_still_signals_it_lags() -> None:
    """A lost help is repeated: the helper does not assume the peer caught up."""
    config = attrs.evolve(FAST4, rebroadcast_interval=Time(500 * MS), dkg_interval_length=49)
    crypto = CachingCrypto(RealCrypto(), VerificationCache())
    sim = Simulation(config, crypto, random.Random(13))
    sim.network.partition([[0, 1, 2], [3]])
    while sim.replicas[0].finalized_height() < 3:
        sim.run_until(Time(sim.now + SECOND // 10))
    helper, lagger = sim.replicas[0], sim.replicas[3]
    assert lagger.finalized_height() == 0
    signal = lagger.reader.shares_by(RandomBeaconShare, 1, lagger.node)
    assert signal  # the lagger's own frontier: its share of beacon 1
    sent: list[ConsensusArtifact] = []
    tick = helper.tick

    def recording_tick(now: Time) -> list[ConsensusArtifact]:
        out = tick(now)
        sent.extend(out)
        return out

    helper.tick = recording_tick  # type: ignore[method-assign]

    def helped() -> bool:
        """Whether the helper sent beacon 1 (what the lagger needs) since last asked."""
        found = any(isinstance(a, RandomBeacon) and a.height == 1 for a in sent)
        sent.clear()
        return found

    helper.on_artifact(signal[0])
    sim.run_until(Time(sim.now + 100 * MS))
    assert helped()  # the first help (the partition loses it)
    sim.run_until(Time(sim.now + 1200 * MS))
    assert not helped()  # a silent peer is not helped blindly (it may have crashed)
    helper.on_artifact(signal[0])  # the lagger re-sends its frontier: still at height 0
    assert helper.reader.cup_height() == 0  # the help is still the blocks themselves
    sim.run_until(Time(sim.now + 100 * MS))
    assert helped()


def test_batch_delivery_resumes_after_every_tape_share_was_lost() -> None:
    """Tape shares are re-sent while delivery is stuck, so a missing tape is rebuilt."""
    sim = make_sim(seed=14)
    blocking = _DropTapes()
    sim.behaviours = {i: blocking for i in range(4)}
    sim.run_until(Time(SECOND))
    blocking.active = True  # every tape share (and tape) in flight is lost
    sim.run_until(Time(2 * SECOND))
    blocking.active = False
    stuck = {i: r.delivered_height for i, r in sim.replicas.items()}
    finalized = max(r.finalized_height() for r in sim.replicas.values())
    assert all(d < finalized for d in stuck.values())  # no replica could deliver
    deadline = Time(sim.now + 10 * SECOND)
    while sim.now < deadline and min(r.delivered_height for r in sim.replicas.values()) < (
        finalized + 3
    ):
        sim.run_until(Time(sim.now + SECOND // 10))
    delivered = [r.batches_delivered for r in sim.replicas.values()]
    assert min(len(b) for b in delivered) >= finalized + 3
    shortest = min(len(b) for b in delivered)
    assert all(b[:shortest] == delivered[0][:shortest] for b in delivered)


class _DropTapes(Behaviour):
    """Honest, but while ``active`` every incoming tape share and tape is lost."""

    def __init__(self) -> None:
        self.active = False

    def accepts(self, artifact: ConsensusArtifact) -> bool:
        return not (self.active and isinstance(artifact, RandomTape | RandomTapeShare))

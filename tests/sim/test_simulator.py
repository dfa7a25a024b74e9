"""Runs replay bit-exactly from their seed; Byzantine strategies do what they say."""

from __future__ import annotations

import random

import attrs

from icp.consensus.artifacts import EquivocationProof
from icp.consensus.config import MINIMAL
from icp.consensus.crypto import CachingCrypto, InsecureFastCrypto, VerificationCache
from icp.sim.byzantine import make_behaviour
from icp.sim.network import LinkModel
from icp.sim.simulator import Simulation
from icp.types import Time

MS = 1_000_000
CONFIG = attrs.evolve(MINIMAL, unit_delay=Time(200 * MS), initial_notary_delay=Time(50 * MS))
LOSSY = LinkModel(Time(5 * MS), Time(80 * MS), drop=0.1, duplicate=0.1)


def run(seed: int, faulty: str = "replayer") -> Simulation:
    rng = random.Random(seed)
    sim = Simulation(
        CONFIG,
        CachingCrypto(InsecureFastCrypto(), VerificationCache()),
        rng,
        behaviours={0: make_behaviour(faulty, rng)},
        link=LOSSY,
    )
    sim.run_until(Time(4000 * MS))
    return sim


def test_same_seed_same_trace_digest() -> None:
    a, b = run(42), run(42)
    assert a.trace.digest() == b.trace.digest()
    assert a.trace.finalized == b.trace.finalized
    assert a.trace.messages_sent == b.trace.messages_sent > 0
    assert run(43).trace.digest() != a.trace.digest()


def test_trace_records_finalized_chains_with_times() -> None:
    sim = run(7)
    for node in range(1, 4):
        heights = sim.trace.finalized[node]
        assert max(heights) >= 5
        times = [sim.trace.finalized_at[node][h] for h in sorted(heights)]
        assert times == sorted(times)


def test_equivocating_maker_gets_caught() -> None:
    sim = run(5, "equivocating-maker")
    proofs = [
        p
        for r in list(sim.replicas.values())[1:]
        for p in r.pool.validated.by_hash.values()
        if isinstance(p, EquivocationProof)
    ]
    assert proofs and all(p.signer == 0 for p in proofs)


def test_crashed_node_sends_nothing_and_the_rest_progress() -> None:
    sim = run(6, "crashed")
    assert sim.replicas[0].finalized_height() == 0
    assert min(sim.replicas[i].finalized_height() for i in (1, 2, 3)) >= 5


def test_invalid_signatures_are_rejected_by_everyone() -> None:
    sim = run(8, "invalid-signatures")
    assert all(sim.replicas[i].pool.invalid_count > 0 for i in (1, 2, 3))
    assert min(sim.replicas[i].finalized_height() for i in (1, 2, 3)) >= 5


def test_trace_digest_is_identical_across_processes() -> None:
    """Replay does not depend on the interpreter's hash seed (no set-order effects)."""
    import os
    import subprocess
    import sys

    code = (
        "import tests.sim.test_simulator as t\n"
        "print(t.run(42, 'equivocating-maker').trace.digest())"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": root}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        digests.add(result.stdout.strip())
    assert digests == {run(42, "equivocating-maker").trace.digest()}

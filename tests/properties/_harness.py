"""Shared harness of the consensus property tests: configs, schedules, runs, checks."""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs
from hypothesis import HealthCheck, settings

from icp.consensus.config import MINIMAL, ConsensusConfig
from icp.consensus.crypto import (
    CachingCrypto,
    ConsensusCrypto,
    InsecureFastCrypto,
    RealCrypto,
    VerificationCache,
)
from icp.sim.byzantine import make_behaviour
from icp.sim.network import LinkModel
from icp.sim.properties import PropertyMonitor, Violation
from icp.sim.simulator import Simulation
from icp.types import Time

CI_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    print_blob=True,
)
"""CI: a fixed set of generated schedules (derandomized, so CI is reproducible)."""
LONG_SETTINGS = settings(
    deadline=None, max_examples=10_000, suppress_health_check=list(HealthCheck), print_blob=True
)
"""The long sweep: random schedules; failures print the seed and schedule."""

MS = 1_000_000
SECOND = 1_000 * MS

STABLE_LINK = LinkModel(Time(10 * MS), Time(20 * MS), 0.0, 0.0)
"""After stabilization every message arrives within 30 ms (Delta_bnd)."""

LIVENESS_HEIGHTS = 3
LIVENESS_BOUND = Time(30 * SECOND)
"""Liveness as tested: within 30 s of virtual time after the network stabilizes, every
honest replica finalizes LIVENESS_HEIGHTS more heights and delivers their batches
(unit delay 200 ms, at most f faulty block makers ahead of an honest one,
certification not wired)."""


def test_config(n: int) -> ConsensusConfig:
    """A subnet of n nodes with short delays (a summary block every 10 heights)."""
    return attrs.evolve(
        MINIMAL,
        n=n,
        unit_delay=Time(200 * MS),
        initial_notary_delay=Time(50 * MS),
        rebroadcast_interval=Time(500 * MS),
    )


def crypto_for(real: bool) -> ConsensusCrypto:
    """Real crypto (cached per process) or the INSECURE fast mode for sweeps."""
    return CachingCrypto(RealCrypto() if real else InsecureFastCrypto(), VerificationCache())


@attrs.frozen
class Step:
    """One step of a generated schedule."""

    kind: str  # "run" | "partition" | "heal" | "links"
    millis: int = 0
    groups: tuple[tuple[int, ...], ...] = ()
    link: LinkModel | None = None


def build(
    n: int,
    faulty: Sequence[str],
    seed: int,
    *,
    real: bool = False,
    honest_kind: str = "honest",
    with_dkg: bool = False,
) -> Simulation:
    """Return a simulation whose first len(faulty) nodes behave as ``faulty``."""
    rng = random.Random(seed)
    behaviours = {i: make_behaviour(kind, rng) for i, kind in enumerate(faulty)}
    for i in range(len(faulty), n):
        behaviours[i] = make_behaviour(honest_kind, rng)
    return Simulation(
        test_config(n),
        crypto_for(real),
        rng,
        behaviours=behaviours,
        link=STABLE_LINK,
        with_dkg=with_dkg,
    )


def run_schedule(sim: Simulation, steps: Sequence[Step], monitor: PropertyMonitor) -> None:
    """Apply the steps, observing the honest replicas after each."""
    for step in steps:
        if step.kind == "run":
            sim.run_until(Time(sim.now + step.millis * MS))
        elif step.kind == "partition":
            sim.network.partition(step.groups)
        elif step.kind == "heal":
            sim.network.heal()
        elif step.kind == "links" and step.link is not None:
            sim.network.set_all(step.link)
        monitor.observe(sim)


def stabilize_and_check_liveness(sim: Simulation, monitor: PropertyMonitor) -> tuple[bool, str]:
    """Heal the network, bound delays, and check every honest replica makes progress."""
    sim.network.heal()
    sim.network.set_all(STABLE_LINK)
    start = sim.now
    deadline = Time(start + LIVENESS_BOUND)
    honest = [sim.replicas[i] for i in sim.honest_nodes()]
    target = max(r.finalized_height() for r in honest) + LIVENESS_HEIGHTS

    def reached() -> bool:
        return all(min(r.finalized_height(), r.delivered_height) >= target for r in honest)

    while sim.now < deadline and not reached():
        sim.run_until(Time(min(sim.now + 100 * MS, deadline)))
    monitor.observe(sim)
    heights = {
        i: (sim.replicas[i].finalized_height(), sim.replicas[i].delivered_height)
        for i in sim.honest_nodes()
    }
    return reached(), (
        f"target {target} by {deadline / SECOND:.1f}s, got (finalized, delivered) {heights}"
    )


def describe(violations: Sequence[Violation]) -> str:
    """Return a readable list of violations."""
    return "; ".join(f"{v.prop}: {v.detail}" for v in violations[:5])

"""The property monitor reports what it should, and only that."""

from __future__ import annotations

from icp.consensus.artifacts import Finalization, Notarization
from icp.sim.properties import PropertyMonitor
from icp.types import Time

from .test_simulator import MS, run


def test_an_honest_run_has_no_violations() -> None:
    sim = run(11)
    monitor = PropertyMonitor()
    for _ in range(20):
        sim.run_until(Time(sim.now + 100 * MS))
        monitor.observe(sim)
    assert monitor.violations() == []
    assert monitor.finalized and monitor.beacons and monitor.batches


def test_a_notarized_block_whose_parent_lost_its_proofs_is_reported() -> None:
    sim = run(11)
    replica = sim.replicas[1]
    pool = replica.pool
    reader = replica.reader
    low, top = reader.cup_height(), reader.notarized_height()
    assert top >= low + 2
    victim = top - 1  # above the CUP, below a notarized block
    proofs = [
        *reader.validated_at(Notarization, victim),
        *reader.validated_at(Finalization, victim),
    ]
    removed = [pool.validated.remove(p.artifact_hash()) for p in proofs]
    assert removed
    pool.version += 1  # readers memoise on the version
    monitor = PropertyMonitor()
    monitor.observe(sim)
    found = [v for v in monitor.violations() if v.prop == "notarized-parent"]
    assert found and all("node 1:" in v.detail for v in found)
    assert any(f" at {top} " in v.detail for v in found)

"""Fixtures for consensus unit tests: a small real-crypto subnet run to a known height."""

from __future__ import annotations

import pytest

from icp.sim.simulator import Simulation
from icp.types import Time

from ._helpers import MS, make_sim


@pytest.fixture(scope="module")
def sim_at_25() -> Simulation:
    """Four honest real-crypto replicas that finalized height 25 (CUPs at 10 and 20)."""
    sim = make_sim()
    assert sim.run_until_height(25, Time(60_000 * MS))
    return sim

"""Builders for consensus unit tests: small real-crypto subnets."""

from __future__ import annotations

import random

import attrs

from icp.consensus.config import MINIMAL, ConsensusConfig
from icp.consensus.crypto import CachingCrypto, RealCrypto, VerificationCache
from icp.sim.simulator import Simulation
from icp.types import Time

MS = 1_000_000

FAST4: ConsensusConfig = attrs.evolve(
    MINIMAL, unit_delay=Time(200 * MS), initial_notary_delay=Time(50 * MS)
)


def make_sim(seed: int = 1, *, with_dkg: bool = False, n: int = 4) -> Simulation:
    """A real-crypto simulation of ``n`` honest nodes."""
    crypto = CachingCrypto(RealCrypto(), VerificationCache())
    return Simulation(attrs.evolve(FAST4, n=n), crypto, random.Random(seed), with_dkg=with_dkg)

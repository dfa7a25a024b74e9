from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import attrs

from icp.consensus.config import MINIMAL
from icp.consensus.crypto import CachingCrypto, InsecureFastCrypto, VerificationCache
from icp.sim.byzantine import Crashed
from icp.sim.render import render_svg
from icp.sim.simulator import Simulation
from icp.types import Time

MS = 1_000_000


def test_render_shows_every_replica_and_the_finalized_heights() -> None:
    config = attrs.evolve(MINIMAL, unit_delay=Time(200 * MS), initial_notary_delay=Time(50 * MS))
    crypto = CachingCrypto(InsecureFastCrypto(), VerificationCache())
    sim = Simulation(config, crypto, random.Random(3), behaviours={1: Crashed(Time(0))})
    sim.run_until(Time(3000 * MS))
    svg = render_svg(sim)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    labels = [t.text or "" for t in root.iter(f"{ns}text")]
    assert any("node 1 (crashed)" in label for label in labels)
    filled = [r for r in root.iter(f"{ns}rect") if r.get("fill") != "none"]
    finalized = sum(len(v) - 1 for v in sim.trace.finalized.values())  # minus genesis
    assert len(filled) == finalized > 0

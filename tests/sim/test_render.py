"""Runs render as pictures that show what happened, stage by stage."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from pathlib import Path

import attrs

from icp.consensus.config import MINIMAL
from icp.consensus.crypto import CachingCrypto, InsecureFastCrypto, VerificationCache
from icp.sim.byzantine import Crashed, EquivocatingBlockMaker
from icp.sim.render import render_png, render_svg
from icp.sim.simulator import Simulation
from icp.types import Time

MS = 1_000_000


CONFIG = attrs.evolve(MINIMAL, unit_delay=Time(200 * MS), initial_notary_delay=Time(50 * MS))


def _equivocating_run() -> Simulation:
    crypto = CachingCrypto(InsecureFastCrypto(), VerificationCache())
    sim = Simulation(CONFIG, crypto, random.Random(5), behaviours={0: EquivocatingBlockMaker()})
    sim.run_until(Time(3000 * MS))
    return sim


def test_trace_stages_precede_finalization_at_every_height() -> None:
    sim = _equivocating_run()
    for node in (1, 2, 3):
        marks = sim.trace.stages[node]
        finalized = sim.trace.finalized_at[node]
        for height, at in finalized.items():
            if height == 0:
                continue
            for stage in ("beacon", "proposal", "notarized"):
                assert marks[(stage, height)] <= at, (node, stage, height)
    caught = {h for (stage, h) in sim.trace.stages[1] if stage == "equivocation"}
    assert caught, "the equivocating block maker was never caught"


def test_render_png_draws_the_replicas_stages_and_faults(tmp_path: Path) -> None:
    from matplotlib.image import imread

    sim = _equivocating_run()
    png = render_png(sim, tmp_path / "run.png", dpi=60)
    pixels = imread(str(png))
    rows, cols = pixels.shape[:2]
    assert rows > 200 and cols > 400
    rgb = pixels[..., :3]
    red = (rgb[..., 0] > 0.7) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)
    green = (rgb[..., 1] > 0.5) & (rgb[..., 0] < 0.3) & (rgb[..., 2] < 0.3)
    assert red.sum() > 20  # the faulty node's label and the equivocation crosses
    assert green.sum() > 20  # finalization stars


def test_render_shows_every_replica_and_the_finalized_heights() -> None:
    crypto = CachingCrypto(InsecureFastCrypto(), VerificationCache())
    sim = Simulation(CONFIG, crypto, random.Random(3), behaviours={1: Crashed(Time(0))})
    sim.run_until(Time(3000 * MS))
    svg = render_svg(sim)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    labels = [t.text or "" for t in root.iter(f"{ns}text")]
    assert any("node 1 (crashed)" in label for label in labels)
    filled = [r for r in root.iter(f"{ns}rect") if r.get("fill") != "none"]
    finalized = sum(len(v) - 1 for v in sim.trace.finalized.values())  # minus genesis
    assert len(filled) == finalized > 0

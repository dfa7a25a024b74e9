"""The property checks are not vacuous: real bugs and too many faults break them.

* A MUTANT honest notary/finalizer that shares every block (ignoring the rank rule and
  the "D ⊆ {B}" finalization rule) lets an equivocating block maker split the honest
  nodes: two blocks get finalized at one height and the agreement check fires.
* With f + 1 Byzantine signers (one more than tolerated) agreement breaks even with
  correct honest nodes — expected: the quorum-intersection argument needs > 2f honest
  shares in every quorum.
* The same attack with only f Byzantine nodes is harmless.

Spec: protocol.md §1.5 INV-3 (proof sketch: (n-f) - (n-2f) = f honest...); ICC §4.
"""

from __future__ import annotations

from icp.sim.properties import PropertyMonitor
from icp.types import Time

from ._harness import SECOND, build


def _agreement_broken(n: int, faulty: list[str], honest_kind: str, seeds: range) -> int | None:
    for seed in seeds:
        sim = build(n, faulty, seed, honest_kind=honest_kind)
        monitor = PropertyMonitor()
        for step in range(10):
            sim.run_until(Time((step + 1) * SECOND // 2))
            monitor.observe(sim)
        if any(v.prop in ("agreement", "chain") for v in monitor.violations()):
            return seed
    return None


def test_mutant_notary_breaks_agreement_under_an_equivocating_maker() -> None:
    seed = _agreement_broken(4, ["equivocating-maker"], "mutant-notary-finalizer", range(6))
    assert seed is not None, "the mutant went undetected: the properties would be vacuous"


def test_f_plus_one_byzantine_signers_break_agreement() -> None:
    faulty = ["equivocating-double-signer", "double-signer"]  # f + 1 = 2 for n = 4
    assert _agreement_broken(4, faulty, "honest", range(6)) is not None


def test_f_byzantine_signers_do_not() -> None:
    assert _agreement_broken(4, ["equivocating-double-signer"], "honest", range(6)) is None
    faulty = ["equivocating-double-signer", "double-signer"]  # f = 2 for n = 7
    assert _agreement_broken(7, faulty, "honest", range(2)) is None

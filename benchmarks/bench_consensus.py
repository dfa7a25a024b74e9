"""Benchmark consensus: finalized heights per second of an in-process subnet, real BLS.

Run: ``python benchmarks/bench_consensus.py [--quick]``.

For n = 4, 13 and 28 it runs a simulated subnet (real crypto, empty payloads, no
artificial delays: initial notary delay 0, 1 ms virtual network delay; the rank
delays pass in *virtual* time and cost no wall time) and reports finalized heights
per wall-clock second. The reference, measured in the same
run with the same library, is the crypto-bound limit: the signatures that one height
requires - one proposal (Ed25519 sign + verify), and for each of beacon, notarization,
finalization and random tape n share signatures, one batch verification of the n
shares, one combination (aggregate or Lagrange) and one verification of the result -
done once. The replicas share one verification cache (one process: each distinct
artifact is verified once), which is what makes that limit reachable. The ratio
heights/s ÷ limit says how close the protocol machinery gets to the crypto cost.
"""

from __future__ import annotations

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import attrs

from icp.consensus.config import MAINNET_LIKE
from icp.consensus.crypto import CachingCrypto, RealCrypto, VerificationCache
from icp.sim.network import LinkModel
from icp.sim.simulator import Simulation
from icp.types import Time


def crypto_cost_per_height(n: int, rounds: int = 3) -> float:
    """Return seconds for the crypto operations one height needs (best of ``rounds``)."""
    crypto = RealCrypto()
    f = (n - 1) // 3
    basic_sk, basic_pk = crypto.basic_keygen(b"bench")
    keys = [crypto.multi_keygen(bytes([i])) for i in range(n)]
    low, low_shares = crypto.deal_threshold(b"low", n, f + 1)
    best = float("inf")
    for r in range(rounds):
        message = b"height %d" % r
        start = time.perf_counter()
        sig = crypto.sign_basic(basic_sk, message)
        assert crypto.verify_basic(basic_pk, message, sig)
        for kind in (b"beacon", b"tape"):
            m = kind + message
            shares = [crypto.sign_threshold_share(s, m) for s in low_shares]
            assert crypto.batch_verify(list(low.public_key_shares), m, shares) == []
            combined = crypto.combine_threshold(low, dict(enumerate(shares)), m)
            assert crypto.verify_threshold(low.group_public_key, m, combined)
        for kind in (b"notarization", b"finalization"):
            m = kind + message
            shares = [crypto.sign_multi(sk, m) for sk, _ in keys]
            pks = [pk for _, pk in keys]
            assert crypto.batch_verify(pks, m, shares) == []
            quorum = 2 * f + 1
            aggregate = crypto.aggregate(shares[:quorum])
            assert crypto.verify_multi(pks[:quorum], m, aggregate)
        best = min(best, time.perf_counter() - start)
    return best


def heights_per_second(n: int, heights: int) -> tuple[float, int]:
    """Run an n-node subnet until every replica finalized ``heights``; return (h/s, h)."""
    config = attrs.evolve(MAINNET_LIKE, n=n, initial_notary_delay=Time(0))
    crypto = CachingCrypto(RealCrypto(), VerificationCache())
    sim = Simulation(
        config, crypto, random.Random(n), link=LinkModel(Time(1_000_000), Time(0), 0.0, 0.0)
    )
    start = time.perf_counter()
    ok = sim.run_until_height(heights, Time(10_000 * 10**9))
    elapsed = time.perf_counter() - start
    if not ok:
        raise SystemExit(f"n={n}: did not reach height {heights}")
    return sim.min_honest_finalized() / elapsed, sim.min_honest_finalized()


def main() -> None:
    quick = "--quick" in sys.argv
    print(f"{'n':>3} {'heights':>7} {'heights/s':>10} {'crypto limit/s':>15} {'ratio':>6}")
    for n, heights in ((4, 40), (13, 20), (28, 8)):
        if quick:
            heights = max(5, heights // 4)
        rate, reached = heights_per_second(n, heights)
        limit = 1.0 / crypto_cost_per_height(n)
        print(f"{n:>3} {reached:>7} {rate:>10.1f} {limit:>15.1f} {rate / limit:>6.2f}")


if __name__ == "__main__":
    main()

"""Benchmark the in-process IC: heights/s, update calls/s, query calls/s, XNet round trips/s.

Run: ``python benchmarks/bench_ic.py [--quick]``.

Setup: an NNS subnet of 1 node and application subnets of 4 nodes (real crypto: Ed25519,
BLS multi-signatures, threshold BLS; one shared verification cache, as in one process),
the Motoko counter and caller test canisters on wasmtime.

* heights/s of an idle 4-node subnet (consensus + execution of empty batches +
  certification), against the crypto-bound limit measured in the same run: the
  signatures one height needs once (proposal, beacon, notarization, finalization and
  tape shares with their batch verification and combination, plus the certification
  shares and their combination).  Ratio = how close the machinery gets to the crypto.
* CPU time per height split into consensus / execution / certification (timers
  around the replica's state machine and certifier).
* update calls/s: a burst of signed ``inc`` calls, submitted at once and run until all
  are replied in a certified state (goal >= 1,000/s).  Reference: the same number of
  ``inc`` executions directly on one canister with ``execute_message`` (4 replicas
  execute each call, so the floor is 4x that).
* query calls/s through ``InternetComputer.query`` (envelope parsing, signature check,
  execution, node signature) against bare ``execute_query`` on the same canister
  (goal >= 10,000/s).
* cross-subnet round trips/s: a burst of ``call_inc`` on a caller on subnet A that
  calls the counter on subnet B.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from icp.build import compile_motoko
from icp.candid import encode
from icp.candid.types import Text
from icp.consensus.crypto import RealCrypto
from icp.crypto.user_sig import Ed25519Identity, principal_of
from icp.execution.executor import IngressMessage, execute_message, execute_query
from icp.ic import InternetComputer, SubnetConfig, SubnetKind
from icp.replica import Replica
from icp.testing import call_content, envelope
from tests.ic.helpers import CANISTERS, create_canister, install

ALICE = Ed25519Identity.from_seed(b"\x0a" * 32)
NO_ARGS = encode([], [])


def crypto_cost_per_height(n: int, rounds: int = 3) -> float:
    """Return seconds for the signatures one height of an n-node subnet needs, done once."""
    crypto = RealCrypto()
    f = (n - 1) // 3
    basic_sk, basic_pk = crypto.basic_keygen(b"bench")
    keys = [crypto.multi_keygen(bytes([i])) for i in range(n)]
    low, low_shares = crypto.deal_threshold(b"low", n, f + 1)
    high, high_shares = crypto.deal_threshold(b"high", n, 2 * f + 1)
    best = float("inf")
    for r in range(rounds):
        message = b"height %d" % r
        start = time.process_time()
        assert crypto.verify_basic(basic_pk, message, crypto.sign_basic(basic_sk, message))
        for kind, public, shares_of in ((b"beacon", low, low_shares), (b"tape", low, low_shares),
                                        (b"certification", high, high_shares)):  # fmt: skip
            m = kind + message
            shares = [crypto.sign_threshold_share(s, m) for s in shares_of]
            assert crypto.batch_verify(list(public.public_key_shares), m, shares) == []
            chosen = dict(list(enumerate(shares))[: public.threshold])
            combined = crypto.combine_threshold(public, chosen, m)
            assert crypto.verify_threshold(public.group_public_key, m, combined)
        for kind in (b"notarization", b"finalization"):
            m = kind + message
            shares = [crypto.sign_multi(sk, m) for sk, _ in keys]
            pks = [pk for _, pk in keys]
            assert crypto.batch_verify(pks, m, shares) == []
            quorum = 2 * f + 1
            aggregate = crypto.aggregate(shares[:quorum])
            assert crypto.verify_multi(pks[:quorum], m, aggregate)
        best = min(best, time.process_time() - start)
    return best


class Split:
    """CPU time spent in the replicas' state machines and certifiers."""

    def __init__(self) -> None:
        self.execution = 0.0
        self.certification = 0.0
        self._originals: dict[str, Any] = {}

    def install(self) -> None:
        split = self
        on_batch = Replica._on_batch
        certify = Replica._certify
        self._originals = {"_on_batch": on_batch, "_certify": certify}

        def timed_batch(replica: Replica, batch: Any) -> bytes:
            start = time.process_time()
            try:
                return on_batch(replica, batch)
            finally:
                split.execution += time.process_time() - start

        def timed_certify(replica: Replica) -> list[Any]:
            start = time.process_time()
            try:
                return certify(replica)
            finally:
                split.certification += time.process_time() - start

        Replica._on_batch = timed_batch  # type: ignore[method-assign,assignment]
        Replica._certify = timed_certify  # type: ignore[method-assign,assignment]

    def remove(self) -> None:
        for name, fn in self._originals.items():
            setattr(Replica, name, fn)


def cpu(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def bench_heights(heights: int) -> None:
    nns_only = InternetComputer([SubnetConfig(SubnetKind.NNS, 1)], seed=1)
    split = Split()
    split.install()  # before the replicas bind their callbacks
    try:
        ic = InternetComputer([SubnetConfig(SubnetKind.NNS, 1), SubnetConfig()], seed=1)
        app = ic.applications[0]
        split.execution = split.certification = 0.0
        start_h = app.certified_height()
        total = cpu(lambda: ic.tick(heights))
        done = app.certified_height() - start_h
        execution, certification = split.execution, split.certification
    finally:
        split.remove()
    nns_cost = cpu(lambda: nns_only.tick(heights)) / heights
    per_height = total / done - nns_cost
    limit = crypto_cost_per_height(4)
    print(f"4-node subnet: {done} heights, {per_height * 1e3:.1f} ms CPU per height "
          f"({1 / per_height:.1f} heights/s)")  # fmt: skip
    print(f"  crypto-bound limit: {limit * 1e3:.1f} ms per height ({1 / limit:.1f} heights/s); "
          f"ratio heights/s / limit = {limit / per_height:.2f}")  # fmt: skip
    ex, ce = execution / done, certification / done
    print(f"  split per height: execution+commit {ex * 1e3:.1f} ms, certification "
          f"{ce * 1e3:.1f} ms, consensus (rest) {(per_height - ex - ce) * 1e3:.1f} ms")  # fmt: skip


def submit_burst(
    ic: InternetComputer, target: Any, method: str, arg: bytes, count: int
) -> list[bytes]:
    me = principal_of(ALICE)
    ids = []
    for i in range(count):
        content = call_content("call", me, target, method, arg, ic.time() + 120 * 10**9,
                               nonce=i.to_bytes(8, "big"))  # fmt: skip
        ids.append(ic.submit_call(envelope(content, ALICE), target))
    return ids


def wait_all(ic: InternetComputer, target: Any, ids: list[bytes]) -> None:
    for rid in ids:
        result = ic.wait_for(rid, target)
        assert result.status == "replied", result


def bench_updates_and_queries(calls: int, queries: int) -> None:
    ic = InternetComputer([SubnetConfig(SubnetKind.NNS, 1), SubnetConfig()], seed=2)
    app = ic.applications[0]
    counter = create_canister(ic, app)
    install(ic, counter, compile_motoko(CANISTERS / "counter"))
    elapsed = cpu(lambda: wait_all(ic, counter, submit_burst(ic, counter, "inc", NO_ARGS, calls)))
    state = app.replicas[0].certified()[0].canister(counter)
    assert state is not None
    env = ic.execution_environment(app)

    def direct() -> None:
        st = state
        assert st is not None
        for i in range(calls):
            message = IngressMessage(
                i.to_bytes(32, "big"), principal_of(ALICE).raw, counter.raw, "inc", NO_ARGS
            )
            st, _ = execute_message(st, message, ic.time(), env)

    reference = cpu(direct)
    print(f"update calls: {calls} in {elapsed:.2f} s CPU = {calls / elapsed:.0f}/s "
          f"(goal 1,000/s: ratio {calls / elapsed / 1000:.2f}); direct execution "
          f"{calls / reference:.0f}/s on one replica; ratio IC / (direct / 4 replicas) = "
          f"{(calls / elapsed) / (calls / reference / 4):.2f}")  # fmt: skip
    me = principal_of(ALICE)
    body = envelope(
        call_content("query", me, counter, "get", NO_ARGS, ic.time() + 120 * 10**9), ALICE
    )
    elapsed = cpu(lambda: [ic.query(body, counter) for _ in range(queries)])
    state = app.serving_replica().certified()[0].canister(counter)
    assert state is not None
    reference = cpu(lambda: [execute_query(state, me.raw, "get", NO_ARGS, ic.time(), env)
                             for _ in range(queries)])  # fmt: skip
    print(f"query calls: {queries / elapsed:.0f}/s (goal 10,000/s: ratio "
          f"{queries / elapsed / 10000:.2f}); bare execute_query {queries / reference:.0f}/s; "
          f"ratio {reference / elapsed:.2f}")  # fmt: skip


def bench_xnet(calls: int) -> None:
    ic = InternetComputer([SubnetConfig(SubnetKind.NNS, 1), SubnetConfig(), SubnetConfig()], seed=3)
    a, b = ic.applications
    caller = create_canister(ic, a)
    counter = create_canister(ic, b)
    install(ic, caller, compile_motoko(CANISTERS / "caller"))
    install(ic, counter, compile_motoko(CANISTERS / "counter"))
    arg = encode([Text], [counter.to_text()])
    virtual = ic.time()
    elapsed = cpu(lambda: wait_all(ic, caller, submit_burst(ic, caller, "call_inc", arg, calls)))
    virtual = ic.time() - virtual
    print(f"cross-subnet round trips: {calls} in {elapsed:.2f} s CPU = {calls / elapsed:.0f}/s "
          f"({virtual / 1e9:.1f} s of virtual time)")  # fmt: skip


def main() -> None:
    quick = "--quick" in sys.argv
    bench_heights(10 if quick else 40)
    bench_updates_and_queries(100 if quick else 1000, 200 if quick else 2000)
    bench_xnet(20 if quick else 200)


if __name__ == "__main__":
    main()

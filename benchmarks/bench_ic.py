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
* update calls/s: a burst of signed ``inc`` calls (signed by the client beforehand: its
  time is printed, not counted), submitted at once and run until each is replied in a
  certified state with its certificate (goal >= 1,000/s); the best of two bursts.
  Reference (the floor): the same number of ``inc`` executions directly on one
  canister with ``execute_message`` times 4 (every replica executes every call) plus
  one Ed25519 verification per call (each distinct message is verified once per
  process).
* query calls/s through ``InternetComputer.query`` (envelope parsing, signature check,
  execution or the replica's query cache, node signature per response) against bare
  ``execute_query`` on the same canister (goal >= 10,000/s): with the query cache on
  and off, anonymous and Ed25519-signed, one body sent again and again (as an agent
  re-sending an identical query does: parse and signature check are memoised per
  process) and a fresh body per query (a new nonce: parsed and verified every time).
* cross-subnet round trips/s: a burst of ``call_inc`` on a caller on subnet A that
  calls the counter on subnet B.
* ``add_subnet``: CPU and virtual time until every subnet has certified the registry
  version that adds a 4-node subnet, against dealing that subnet's keys alone.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from icp.build import compile_motoko
from icp.candid import encode
from icp.candid.types import Text
from icp.consensus.crypto import RealCrypto
from icp.consensus.genesis import make_subnet
from icp.crypto.user_sig import Ed25519Identity, principal_of
from icp.execution.executor import IngressMessage, execute_message, execute_query
from icp.ic import DEFAULT_CONSENSUS, InternetComputer, SubnetConfig, SubnetKind
from icp.principal import Principal
from icp.replica import Replica
from icp.testing import call_content, envelope
from tests.ic.helpers import CANISTERS, create_canister, install

ALICE = Ed25519Identity.from_seed(b"\x0a" * 32)
NO_ARGS = encode([], [])
BURSTS = 2


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


def signed_bodies(
    ic: InternetComputer, target: Any, method: str, arg: bytes, count: int, first_nonce: int = 0
) -> list[bytes]:
    """Return ``count`` distinct signed call envelopes (the client's work: not timed)."""
    me = principal_of(ALICE)
    expiry = ic.time() + 120 * 10**9
    contents = [
        call_content("call", me, target, method, arg, expiry, nonce=i.to_bytes(8, "big"))
        for i in range(first_nonce, first_nonce + count)
    ]
    return [envelope(content, ALICE) for content in contents]


def submit_burst(ic: InternetComputer, target: Any, bodies: list[bytes]) -> list[bytes]:
    return [ic.submit_call(body, target) for body in bodies]


def wait_all(ic: InternetComputer, target: Any, ids: list[bytes]) -> None:
    for rid in ids:
        result = ic.wait_for(rid, target)
        assert result.status == "replied", result


def bench_updates_and_queries(calls: int, queries: int) -> None:
    ic = InternetComputer([SubnetConfig(SubnetKind.NNS, 1), SubnetConfig()], seed=2)
    app = ic.applications[0]
    counter = create_canister(ic, app)
    install(ic, counter, compile_motoko(CANISTERS / "counter"))
    elapsed, client = float("inf"), 0.0
    for burst in range(BURSTS):  # CPU-time minimum: the machine may be shared
        start = time.process_time()
        bodies = signed_bodies(ic, counter, "inc", NO_ARGS, calls, first_nonce=burst * calls)
        client = time.process_time() - start

        def run(bodies: list[bytes] = bodies) -> None:
            wait_all(ic, counter, submit_burst(ic, counter, bodies))

        elapsed = min(elapsed, cpu(run))
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
    message = b"\x0aic-request" + bytes(32)
    signature = ALICE.sign(message)
    key = Ed25519PublicKey.from_public_bytes(ALICE.public_key_der()[-32:])
    verify = cpu(lambda: [key.verify(signature, message) for _ in range(calls)])
    floor = 4 * reference + verify
    print(f"update calls: {calls} in {elapsed:.2f} s CPU (best of {BURSTS} bursts) = "
          f"{calls / elapsed:.0f}/s "
          f"(goal 1,000/s: ratio {calls / elapsed / 1000:.2f}); client signing "
          f"{client:.2f} s not counted")  # fmt: skip
    print(f"  direct execution {calls / reference:.0f}/s on one replica; floor = 4 replicas "
          f"executing + one Ed25519 verification per call = {calls / floor:.0f}/s; "
          f"ratio IC / floor = {floor / elapsed:.2f}")  # fmt: skip
    bench_queries(ic, app, counter, env, queries)


def bench_queries(ic: InternetComputer, app: Any, counter: Any, env: Any, queries: int) -> None:
    """Print query rates: cached and uncached, anonymous and signed, reused or fresh bodies."""
    me, anon = principal_of(ALICE), Principal.anonymous()
    expiry = ic.time() + 120 * 10**9

    def body(sender: Any, identity: Any, nonce: int | None = None) -> bytes:
        content = call_content("query", sender, counter, "get", NO_ARGS, expiry)
        if nonce is not None:
            content["nonce"] = nonce.to_bytes(8, "big")
        return envelope(content, identity)

    def rate(bodies: list[bytes]) -> float:
        return len(bodies) / cpu(lambda: [ic.query(b, counter) for b in bodies])

    state = app.serving_replica().certified()[0].canister(counter)
    assert state is not None
    reference = queries / cpu(
        lambda: [
            execute_query(state, me.raw, "get", NO_ARGS, ic.time(), env) for _ in range(queries)
        ]
    )
    signed, anonymous = body(me, ALICE), body(anon, None)
    rows: list[tuple[str, float]] = []
    for caching in (True, False):
        ic.query_caching = caching
        label = "cached" if caching else "uncached (cache off)"
        base = 0 if caching else queries  # fresh bodies are never sent twice (client work)
        fresh_signed = [body(me, ALICE, base + i) for i in range(queries)]
        fresh_anonymous = [body(anon, None, base + i) for i in range(queries)]
        rows.append((f"{label}, signed, one body reused", rate([signed] * queries)))
        rows.append((f"{label}, anonymous, one body reused", rate([anonymous] * queries)))
        rows.append((f"{label}, signed, fresh body per query", rate(fresh_signed)))
        rows.append((f"{label}, anonymous, fresh body per query", rate(fresh_anonymous)))
    ic.query_caching = True
    print(f"query calls through InternetComputer.query (goal 10,000/s); bare execute_query "
          f"{reference:.0f}/s:")  # fmt: skip
    for label, value in rows:
        print(f"  {label:42s} {value:7.0f}/s  goal ratio {value / 10000:.2f}, "
              f"vs bare execute_query {value / reference:.2f}")  # fmt: skip


def bench_xnet(calls: int) -> None:
    ic = InternetComputer([SubnetConfig(SubnetKind.NNS, 1), SubnetConfig(), SubnetConfig()], seed=3)
    a, b = ic.applications
    caller = create_canister(ic, a)
    counter = create_canister(ic, b)
    install(ic, caller, compile_motoko(CANISTERS / "caller"))
    install(ic, counter, compile_motoko(CANISTERS / "counter"))
    arg = encode([Text], [counter.to_text()])
    virtual = ic.time()
    bodies = signed_bodies(ic, caller, "call_inc", arg, calls)
    elapsed = cpu(lambda: wait_all(ic, caller, submit_burst(ic, caller, bodies)))
    virtual = ic.time() - virtual
    print(f"cross-subnet round trips: {calls} in {elapsed:.2f} s CPU = {calls / elapsed:.0f}/s "
          f"({virtual / 1e9:.1f} s of virtual time)")  # fmt: skip


def bench_add_subnet() -> None:
    def network() -> InternetComputer:
        return InternetComputer([SubnetConfig(SubnetKind.NNS, 1), SubnetConfig()], seed=4)

    ic = network()
    heights = {s.subnet_id: s.certified_height() for s in ic.subnets}
    virtual = ic.time()
    elapsed = cpu(lambda: ic.add_subnet(SubnetConfig(SubnetKind.APPLICATION, 4)))
    virtual = ic.time() - virtual
    taken = max(s.certified_height() - heights[s.subnet_id] for s in ic.subnets[:-1])
    same = network()  # reference: the same network running as long without the change
    idle = cpu(lambda: same.advance_time(virtual))
    config = attrs.evolve(DEFAULT_CONSENSUS, n=4)
    dealing = cpu(lambda: make_subnet(config, RealCrypto(), b"\x07" * 32))
    print(f"add_subnet (4 nodes) on a running IC: {elapsed * 1e3:.0f} ms CPU, "
          f"{virtual / 1e9:.1f} s virtual, {taken} heights until every subnet certified the "
          f"new registry version; the unchanged IC runs as long in {idle * 1e3:.0f} ms "
          f"(ratio {elapsed / idle:.1f}x); dealing the keys {dealing * 1e3:.0f} ms")  # fmt: skip


def main() -> None:
    quick = "--quick" in sys.argv
    bench_add_subnet()
    bench_heights(10 if quick else 40)
    bench_updates_and_queries(100 if quick else 1000, 200 if quick else 2000)
    bench_xnet(20 if quick else 200)


if __name__ == "__main__":
    main()

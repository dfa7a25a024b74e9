"""Benchmark the certified state tree: full build vs incremental build per height.

Run: ``python benchmarks/bench_state.py [--quick]``.  The state has 10,000 request
statuses and 1,000 canisters (plus one XNet stream).  It prints, each with a ratio
measured in the same run:

* full build of the state tree from unshared maps vs the naive reference
  (``icp.crypto.hashtree.build`` over nested dicts of the same contents);
* incremental build of the next height (10 status changes, 2 canister changes,
  1 stream message) vs the full build  — the per-height certification cost;
* a witness for one request status (``icp.state.tree.witness``) vs the generic
  ``icp.crypto.hashtree.prune`` of the same tree;
* the checkpoint state hash (manifest) of the same state, for scale.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import attrs

from icp.crypto import hashtree
from icp.execution.canister import CanisterSettings, CanisterState
from icp.execution.executor import CanisterRequest
from icp.messaging.routing import CanisterIdRange, RoutingTable
from icp.principal import Principal
from icp.state.checkpoint import state_hash
from icp.state.ingress_history import IngressHistory, IngressStatus, RequestStatus
from icp.state.replicated_state import NetworkTopology, ReplicatedState, SubnetTopology
from icp.state.tree import (
    StateTreeBuilder,
    build_state_tree,
    canister_subtree,
    request_status_subtree,
    witness,
)
from icp.types import Height, Time

QUICK = "--quick" in sys.argv
STATUSES = 2_000 if QUICK else 10_000
CANISTERS = 200 if QUICK else 1_000
T0 = 1_700_000_000_000_000_000
SUBNET = Principal(hashlib.sha224(b"bench subnet").digest() + b"\x02")
REMOTE = Principal(hashlib.sha224(b"remote subnet").digest() + b"\x02")
KEY = bytes.fromhex("308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c05030201036100")


def best(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.2f} ms"


def rid(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(8, "big")).digest()


def make_state() -> ReplicatedState:
    topology = NetworkTopology(
        (SubnetTopology(SUBNET, KEY + bytes(96)),
         SubnetTopology(REMOTE, KEY + bytes(96))),
        RoutingTable(((CanisterIdRange.from_indices(0, 2**20 - 1), SUBNET),)),
    )  # fmt: skip
    replied = IngressStatus(RequestStatus.REPLIED, Time(T0), reply=b"DIDL\x00\x00")
    history = IngressHistory({rid(i): replied for i in range(STATUSES)})
    canisters = {
        Principal.from_canister_index(i).raw: CanisterState(
            Principal.from_canister_index(i).raw, CanisterSettings((b"\x01" * 29,)), 10**12,
            certified_data=i.to_bytes(32, "big"),
        )
        for i in range(CANISTERS)
    }  # fmt: skip
    return ReplicatedState(
        SUBNET, topology, Height(1), Time(T0), canisters=canisters, ingress_history=history
    )


def unshared(state: ReplicatedState) -> ReplicatedState:
    """The same contents in freshly built maps (no memoized hash trees)."""
    return attrs.evolve(
        state,
        canisters=dict(state.canisters.items()),
        ingress_history=IngressHistory(dict(state.ingress_history.entries.items())),
    )


def naive(state: ReplicatedState) -> hashtree.HashTree:
    """Reference: the same tree through hashtree.build over nested dicts."""
    return hashtree.build(
        {
            "canister": {k: canister_subtree(c) for k, c in state.canisters.items()},
            "request_status": {
                k: request_status_subtree(s) for k, s in state.ingress_history.entries.items()
            },
            "time": state.time,
        }
    )


def next_height(state: ReplicatedState, step: int) -> ReplicatedState:
    history = state.ingress_history
    for j in range(10):
        history = history.set_status(
            rid(10**6 + step * 10 + j), IngressStatus(RequestStatus.RECEIVED, Time(T0))
        )
    canisters = [
        attrs.evolve(state.canisters[Principal.from_canister_index(i).raw], certified_data=b"x")
        for i in (step % CANISTERS, (step * 7) % CANISTERS)
    ]
    stream = state.stream_to(REMOTE).push(CanisterRequest(b"a", b"b", "m", b"", 0, step))
    return (
        state.with_ingress_history(history)
        .with_canisters(canisters)
        .with_stream(REMOTE, stream)
        .at_height(Height(state.height + 1), Time(state.time + 1))
    )


def main() -> None:
    state = make_state()
    print(f"state: {STATUSES} request statuses, {CANISTERS} canisters")
    copies = [unshared(state) for _ in range(3)]
    it = iter(copies)
    full = best(lambda: build_state_tree(next(it)), repeat=3)
    reference = best(lambda: naive(state), repeat=3)
    print(f"full build (unshared maps)       {ms(full)}   vs naive: {full / reference:6.2f}x")
    print(f"naive hashtree.build (reference) {ms(reference)}")

    builder = StateTreeBuilder()
    builder.build(state)
    heights = [state]
    for step in range(8):
        heights.append(next_height(heights[-1], step))
    builder.build(heights[1])
    pending = iter(heights[2:])
    incremental = best(lambda: builder.build(next(pending)), repeat=5)
    print(
        f"incremental build (next height)  {ms(incremental)}   full / incremental = "
        f"{full / incremental:8.1f}x"
    )
    last = heights[6]
    assert builder.build(last).digest() == build_state_tree(unshared(last)).digest()

    tree = builder.build(last)
    paths: list[list[bytes | str]] = [["time"], ["request_status", rid(17)]]
    ours = best(lambda: witness(tree, paths))
    generic = best(lambda: hashtree.prune(tree, paths), repeat=3)
    print(f"witness for one request          {ms(ours)}   prune / witness = {generic / ours:8.1f}x")
    manifest = best(lambda: state_hash(state), repeat=2)
    print(
        f"checkpoint manifest hash         {ms(manifest)}   vs full build: {manifest / full:6.2f}x"
    )


if __name__ == "__main__":
    main()

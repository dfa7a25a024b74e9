"""State-tree properties: witnesses keep the root and agree with the full tree; certificates verify.

Owned by the state engineer (icp/state).
"""

from __future__ import annotations

import hashlib
from functools import cache

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from icp.crypto import hashtree
from icp.crypto.certificate import Certificate
from icp.state.certification import aggregate, certificate_for, certify
from icp.state.ingress_history import IngressHistory, IngressStatus, RequestStatus
from icp.state.replicated_state import ReplicatedState
from icp.state.tree import build_state_tree, witness
from icp.types import Height, Time
from tests.state.builders import (
    T0,
    USER,
    World,
    app_canister_id,
    empty_state,
    plain_canister,
    world,
)

STATUSES = [RequestStatus.RECEIVED, RequestStatus.PROCESSING, RequestStatus.DONE]


@cache
def the_world() -> World:
    return world()


@st.composite
def states(draw: st.DrawFn) -> ReplicatedState:
    state = empty_state(the_world(), height=draw(st.integers(1, 10**6)))
    history = IngressHistory()
    for i in draw(st.sets(st.integers(0, 200), max_size=30)):
        rid = hashlib.sha256(i.to_bytes(2, "big")).digest()
        status = draw(st.sampled_from(STATUSES))
        if draw(st.booleans()):
            entry = IngressStatus(
                RequestStatus.REPLIED, Time(T0), reply=draw(st.binary(max_size=8))
            )
        else:
            entry = IngressStatus(status, Time(T0))
        history = history.set_status(rid, entry)
    canisters = [
        plain_canister(app_canister_id(i), (USER.raw,))
        for i in draw(st.sets(st.integers(0, 50), max_size=8))
    ]
    return state.with_ingress_history(history).with_canisters(canisters)


def candidate_paths(state: ReplicatedState, tree: hashtree.HashTree) -> list[tuple[bytes, ...]]:
    """Every leaf path, their prefixes, and some absent paths next to them."""
    leaves = list(hashtree.list_paths(tree))
    out = set(leaves)
    for path in leaves:
        for cut in range(1, len(path)):
            out.add(path[:cut])
        out.add((*path[:-1], path[-1] + b"\x00"))  # absent neighbour
    out |= {(b"request_status", b"\x00" * 32), (b"canister", b"\xff"), (b"zzz",), (b"a",)}
    return sorted(out)


@settings(max_examples=40, deadline=None)
@given(states(), st.data())
def test_any_witness_keeps_the_root_and_agrees_with_the_full_tree(
    state: ReplicatedState, data: st.DataObject
) -> None:
    tree = build_state_tree(state)
    candidates = candidate_paths(state, tree)
    chosen = data.draw(st.lists(st.sampled_from(candidates), max_size=6))
    pruned = witness(tree, chosen)
    assert pruned.digest() == tree.digest()
    hashtree.check_well_formed(pruned)
    reference = hashtree.prune(tree, chosen)
    for path in candidates:
        got = hashtree.lookup_path(pruned, list(path))
        full = hashtree.lookup_path(tree, list(path))
        # a revealed answer is the full tree's answer; never a wrong Found/Absent
        assert got.status is hashtree.LookupStatus.UNKNOWN or got == full
        assert got == hashtree.lookup_path(reference, list(path))
    for path in chosen:
        assert hashtree.lookup_path(pruned, list(path)) == hashtree.lookup_path(tree, list(path))


@settings(max_examples=8, deadline=None)
@given(states(), st.data())
def test_certificates_verify_with_the_subnet_key(
    state: ReplicatedState, data: st.DataObject
) -> None:
    w = the_world()
    tree = build_state_tree(state)
    root = tree.digest()
    signers = data.draw(st.permutations(range(4)))[:3]
    certification = aggregate(
        w.app_key, [certify(Height(state.height), root, w.app_shares[i]) for i in signers]
    )
    paths = data.draw(st.lists(st.sampled_from(candidate_paths(state, tree)), max_size=3))
    cert = Certificate.from_cbor(certificate_for(state, certification, paths, tree=tree))
    cert.verify(w.app_key.to_der())  # the app key plays the root key (no delegation)
    assert cert.time() == state.time
    for path in paths:
        assert cert.lookup(list(path)) == hashtree.lookup_path(tree, list(path))


OPS = st.lists(
    st.tuples(st.sampled_from(["status", "canister", "drop", "push", "ack"]), st.integers(0, 40)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=30, deadline=None)
@given(OPS)
def test_incremental_builds_equal_fresh_builds(ops: list[tuple[str, int]]) -> None:
    from icp.execution.executor import CanisterRequest
    from icp.state.tree import StateTreeBuilder
    from tests.state.builders import NNS

    state = empty_state(the_world())
    builder = StateTreeBuilder()
    builder.build(state)
    for step, (op, n) in enumerate(ops):
        if op == "status":
            rid = hashlib.sha256(bytes([n])).digest()
            old = state.ingress_history.get(rid)
            if old is None or old.status is RequestStatus.RECEIVED:
                new = IngressStatus(
                    RequestStatus.RECEIVED if old is None else RequestStatus.PROCESSING, Time(T0)
                )
                state = state.with_ingress_history(state.ingress_history.set_status(rid, new))
        elif op == "canister":
            state = state.with_canister(
                attrs.evolve(plain_canister(app_canister_id(n)), certified_data=bytes([step]))
            )
        elif op == "drop":
            state = state.without_canister(app_canister_id(n).raw)
        elif op == "push":
            message = CanisterRequest(b"a", b"b", "m", bytes([n]), 0, step)
            state = state.with_stream(NNS, state.stream_to(NNS).push(message))
        else:
            stream = state.stream_to(NNS)
            upto = min(stream.header.end, stream.header.begin + n % 3)
            state = state.with_stream(NNS, stream.acknowledge(upto)[0])
        state = state.at_height(Height(state.height + 1), Time(state.time + 1))
        assert builder.build(state).digest() == build_state_tree(state).digest()

"""The certified state tree: paths and encodings of the interface spec, incremental builds."""

from __future__ import annotations

import hashlib

import attrs
import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icp.crypto import hashtree
from icp.crypto.certificate import decode_canister_ranges
from icp.crypto.hashing import leb128_unsigned
from icp.execution.executor import CanisterRequest
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.messaging.xnet import Stream
from icp.state.ingress_history import IngressHistory, IngressStatus, RequestStatus
from icp.state.pmap import PMap
from icp.state.replicated_state import ReplicatedState, SubnetMetrics
from icp.state.tree import (
    StateTreeBuilder,
    WitnessIndex,
    build_state_tree,
    stream_index_label,
    witness,
    witness_cbor_value,
)
from icp.types import Height, Time
from tests.state.builders import (
    APP,
    NNS,
    T0,
    USER,
    app_canister_id,
    empty_state,
    installed_canister,
    plain_canister,
    world,
)

RID = hashlib.sha256(b"request").digest()


def value(tree: hashtree.HashTree, *path: bytes | str) -> bytes:
    result = hashtree.lookup_path(tree, list(path))
    assert result.value is not None, (path, result.status)
    return result.value


@pytest.fixture(scope="module")
def engine() -> WasmtimeEngine:
    return WasmtimeEngine()


def request(i: int) -> CanisterRequest:
    return CanisterRequest(app_canister_id(1).raw, b"\x00" * 10, "m", bytes([i]), 0, i)


def test_paths_and_encodings(engine: WasmtimeEngine) -> None:
    w = world()
    canister = installed_canister(app_canister_id(1), engine)
    history = IngressHistory().set_status(
        RID, IngressStatus(RequestStatus.REPLIED, T0, reply=b"DIDL\x00\x00")
    )
    empty: Stream[CanisterRequest] = Stream()
    stream = empty.push(request(0)).push(request(1))
    state = (
        empty_state(w)
        .with_canister(canister)
        .with_ingress_history(history)
        .with_stream(NNS, stream)
        .with_metrics(SubnetMetrics(canister_state_bytes=5, consumed_cycles_total=2**70 + 3))
    )
    tree = build_state_tree(state)
    hashtree.check_well_formed(tree)
    assert value(tree, "time") == leb128_unsigned(T0)
    assert value(tree, "subnet", APP.raw, "public_key") == w.app_key.to_der()
    assert value(tree, "subnet", NNS.raw, "public_key") == w.nns_key.to_der()
    ranges = decode_canister_ranges(value(tree, "subnet", APP.raw, "canister_ranges"))
    assert ranges == [(app_canister_id(0).raw, app_canister_id(2**20 - 1).raw)]
    assert value(tree, "subnet", APP.raw, "canister_ranges")[:3] == b"\xd9\xd9\xf7"
    shard = value(tree, "canister_ranges", APP.raw, app_canister_id(0).raw)
    assert decode_canister_ranges(shard) == ranges
    for node, der in w.topology.subnet(APP).node_public_keys:
        assert value(tree, "subnet", APP.raw, "node", node.raw, "public_key") == der
    metrics = cbor2.loads(value(tree, "subnet", APP.raw, "metrics"))
    assert metrics == {
        "num_canisters": 1,
        "canister_state_bytes": 5,
        "consumed_cycles_total": {"low": 3, "high": 64},
        "update_transactions_total": 0,
    }
    absent = hashtree.lookup_path(tree, ["subnet", NNS.raw, "metrics"])
    assert absent.status is hashtree.LookupStatus.ABSENT  # metrics only for the own subnet
    assert value(tree, "request_status", RID, "status") == b"replied"
    assert value(tree, "request_status", RID, "reply") == b"DIDL\x00\x00"
    cid = app_canister_id(1).raw
    assert value(tree, "canister", cid, "certified_data") == b"certified!"
    assert value(tree, "canister", cid, "module_hash") == canister.module_hash
    assert list(cbor2.loads(value(tree, "canister", cid, "controllers"))) == [USER.raw]
    assert value(tree, "canister", cid, "metadata", "candid:service").startswith(b"service")
    assert value(tree, "canister", cid, "metadata", "secret") == b"hidden"
    header = cbor2.loads(value(tree, "streams", NNS.raw, "header"))
    assert header == {"begin": 0, "end": 2, "signals_end": 0, "reject_signals": ()}
    message = value(tree, "streams", NNS.raw, "messages", stream_index_label(1))
    assert StateTreeBuilder().codec.decode(message) == request(1)


def test_rejected_status_and_empty_canister_fields() -> None:
    w = world()
    history = IngressHistory().set_status(
        RID,
        IngressStatus(
            RequestStatus.REJECTED, T0, reject_code=5, reject_message="trap", error_code="IC0503"
        ),
    )
    state = (
        empty_state(w)
        .with_ingress_history(history)
        .with_canister(plain_canister(app_canister_id(2), (USER.raw, b"\x00", USER.raw)))
    )
    tree = build_state_tree(state)
    assert value(tree, "request_status", RID, "reject_code") == b"\x05"
    assert value(tree, "request_status", RID, "reject_message") == b"trap"
    assert value(tree, "request_status", RID, "error_code") == b"IC0503"
    cid = app_canister_id(2).raw
    assert list(cbor2.loads(value(tree, "canister", cid, "controllers"))) == [b"\x00", USER.raw]
    assert value(tree, "canister", cid, "certified_data") == b""
    missing = hashtree.lookup_path(tree, ["canister", cid, "module_hash"])
    assert missing.status is hashtree.LookupStatus.ABSENT


def _evolve(state: ReplicatedState, step: int) -> ReplicatedState:
    """One height of changes: statuses, canisters, streams (push and acknowledge)."""
    history = state.ingress_history
    for j in range(3):
        rid = hashlib.sha256(f"{step}-{j}".encode()).digest()
        history = history.set_status(rid, IngressStatus(RequestStatus.RECEIVED, Time(T0 + step)))
    state = state.with_ingress_history(history).at_height(
        Height(state.height + 1), Time(state.time + 1)
    )
    cid = app_canister_id(step % 4)
    old = state.canister(cid)
    canister = (
        plain_canister(cid)
        if old is None
        else attrs.evolve(old, certified_data=bytes([step]), cycles=old.cycles - 1)
    )
    state = state.with_canister(canister)
    stream = state.stream_to(NNS).push(request(step))
    if step % 3 == 2:
        stream, _ = stream.acknowledge(stream.header.begin + 1)
    return state.with_stream(NNS, stream)


def test_incremental_builder_agrees_with_fresh_builds() -> None:
    w = world()
    state = empty_state(w)
    builder = StateTreeBuilder()
    for step in range(12):
        state = _evolve(state, step)
        incremental = builder.build(state)
        fresh = build_state_tree(state)
        assert incremental.digest() == fresh.digest()
        assert incremental == fresh
    # a rebuilt (unshared) copy of the same contents has the same root hash
    copy = attrs.evolve(
        state,
        canisters=dict(state.canisters.items()),
        streams={k: v for k, v in state.streams.items()},
        ingress_history=IngressHistory(dict(state.ingress_history.entries.items())),
    )
    assert build_state_tree(copy).digest() == builder.build(state).digest()


def test_witness_reveals_what_was_asked_and_keeps_the_root() -> None:
    w = world()
    state = empty_state(w)
    for step in range(8):
        state = _evolve(state, step)
    tree = build_state_tree(state)
    rid = hashlib.sha256(b"3-1").digest()
    paths: list[list[bytes | str]] = [
        ["time"],
        ["request_status", rid],
        ["request_status", b"\x00" * 32, "status"],
    ]
    pruned = witness(tree, paths)
    assert pruned.digest() == tree.digest()
    assert value(pruned, "request_status", rid, "status") == b"received"
    assert hashtree.lookup_path(pruned, ["request_status", b"\x00" * 32, "status"]).status is (
        hashtree.LookupStatus.ABSENT
    )
    other = hashlib.sha256(b"4-1").digest()
    assert hashtree.lookup_path(pruned, ["request_status", other, "status"]).status is (
        hashtree.LookupStatus.UNKNOWN
    )
    assert len(hashtree.to_cbor(pruned)) < len(hashtree.to_cbor(tree)) / 2
    reference = hashtree.prune(tree, paths)
    more: list[list[bytes | str]] = [["request_status", other], ["subnet"], ["canister", b"zz"]]
    for path in [*paths, *more]:
        assert hashtree.lookup_path(pruned, path) == hashtree.lookup_path(reference, path)


_LABELS = st.binary(min_size=0, max_size=3)
_TREES = st.recursive(
    st.binary(max_size=4),
    lambda children: st.dictionaries(_LABELS, children, min_size=1, max_size=6),
    max_leaves=25,
)


@settings(max_examples=80, deadline=None)
@given(
    fields=st.dictionaries(_LABELS, _TREES, min_size=1, max_size=8),
    paths=st.lists(st.lists(_LABELS, max_size=4), max_size=5),
)
def test_witness_cbor_value_is_the_witness_encoded(
    fields: dict[bytes, object], paths: list[list[bytes]]
) -> None:
    tree = hashtree.build(fields)  # type: ignore[arg-type]
    typed: list[list[bytes | str]] = [list(p) for p in paths]
    expected = hashtree.to_cbor_value(witness(tree, typed))
    assert witness_cbor_value(tree, typed) == expected
    index = WitnessIndex(tree)
    for path in typed:  # an index filled by earlier witnesses gives the same answers
        one = [path]
        assert witness_cbor_value(tree, one, index) == hashtree.to_cbor_value(witness(tree, one))
    assert witness_cbor_value(tree, typed, index) == expected


def test_witness_cbor_value_of_a_state_tree() -> None:
    w = world()
    state = empty_state(w)
    for step in range(8):
        state = _evolve(state, step)
    tree = build_state_tree(state)
    paths: list[list[bytes | str]] = [
        ["time"],
        ["request_status", hashlib.sha256(b"3-1").digest()],
        ["request_status", b"\x00" * 32, "status"],
        ["subnet"],
    ]
    assert witness_cbor_value(tree, paths) == hashtree.to_cbor_value(witness(tree, paths))
    with pytest.raises(ValueError, match="another tree"):
        witness_cbor_value(tree, paths, WitnessIndex(build_state_tree(empty_state(w))))


def test_witness_through_map_levels_equals_the_generic_witness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = world()
    state = empty_state(w)
    for step in range(40):
        state = _evolve(state, step)
    tree = StateTreeBuilder().build(state)
    levels = (state.ingress_history.entries, state.canisters)
    index = WitnessIndex(tree, levels)
    fast_answers = []
    original = PMap.witness_value

    def counting(self: PMap[object], *args: object) -> list[object] | None:
        answer = original(self, *args)  # type: ignore[arg-type]
        fast_answers.append(answer is not None)
        return answer

    monkeypatch.setattr(PMap, "witness_value", counting)
    rids = list(state.ingress_history.entries)
    cases: list[list[list[bytes | str]]] = [[["time"], ["request_status", rid]] for rid in rids]
    cases += [[["request_status", rid, "status"]] for rid in rids[:10]]
    cases += [[["canister", app_canister_id(i).raw, "certified_data"]] for i in range(4)]
    cases += [
        [["request_status", b"\x00" * 32]],  # absent: the generic witness proves it
        [["request_status", rids[0]], ["request_status", rids[5]]],  # two keys: generic
        [["canister", app_canister_id(9).raw]],
    ]
    for paths in cases:
        expected = hashtree.to_cbor_value(witness(tree, paths))
        assert witness_cbor_value(tree, paths, index) == expected, paths
    assert fast_answers.count(True) >= len(rids) + 10 + 4  # the map path was taken
    assert fast_answers.count(False) >= 2  # and absent keys fell back

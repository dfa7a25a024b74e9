"""Certified XNet stream slices: served by the source, verified by the destination."""

from __future__ import annotations

import pytest

from icp.execution.executor import CanisterRequest
from icp.messaging.xnet import Stream, StreamError, check_slice
from icp.state.certification import aggregate, certify
from icp.state.replicated_state import ReplicatedState
from icp.state.stream_certification import (
    StreamSliceError,
    certified_stream_slice,
    verify_stream_slice,
)
from icp.state.tree import build_state_tree
from tests.state.builders import APP, NNS, World, app_canister_id, empty_state, world


def request(i: int) -> CanisterRequest:
    return CanisterRequest(app_canister_id(1).raw, b"\x00" * 10, "m", bytes([i]), i, i)


def source_state(w: World) -> ReplicatedState:
    stream: Stream[CanisterRequest] = Stream()
    for i in range(6):
        stream = stream.push(request(i))
    stream, _ = stream.acknowledge(2)  # messages 2..5 remain
    return empty_state(w, APP, 9).with_stream(NNS, stream.with_signals(3))


def test_slice_round_trip_and_checks() -> None:
    w = world()
    state = source_state(w)
    root = build_state_tree(state).digest()
    cert = aggregate(w.app_key, [certify(state.height, root, s) for s in w.app_shares[:3]])
    blob = certified_stream_slice(state, cert, NNS, 3, 2)
    got = verify_stream_slice(blob, w.app_key.to_der(), NNS, 3)
    assert got.slice.first == 3 and got.slice.messages == (request(3), request(4))
    assert got.slice.header.begin == 2 and got.slice.header.end == 6
    assert got.slice.header.signals_end == 3 and got.time == state.time
    check_slice(3, 0, got.slice)  # what the receiver's induction then checks
    tail = verify_stream_slice(
        certified_stream_slice(state, cert, NNS, 5, 10), w.app_key.to_der(), NNS, 5
    )
    assert tail.slice.messages == (request(5),)
    with pytest.raises(StreamSliceError, match="consecutive"):
        verify_stream_slice(blob, w.app_key.to_der(), NNS, 2)  # not what was asked for
    with pytest.raises(StreamSliceError, match="certificate"):
        verify_stream_slice(blob, w.nns_key.to_der(), NNS, 3)  # not the source's key
    with pytest.raises(StreamSliceError):
        verify_stream_slice(blob, w.app_key.to_der(), APP, 3)  # no stream to APP
    with pytest.raises(StreamError):
        certified_stream_slice(state, cert, NNS, 1, 2)  # already garbage-collected
    empty = verify_stream_slice(
        certified_stream_slice(state, cert, NNS, 6, 5), w.app_key.to_der(), NNS, 6
    )
    assert empty.slice.messages == ()

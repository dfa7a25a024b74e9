"""XNet streams deliver every message exactly once, in order, under any slicing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icp.messaging.xnet import Stream, StreamError, StreamHeader, StreamSlice, check_slice


def test_push_slice_acknowledge() -> None:
    s: Stream[str] = Stream()
    for m in "abcde":
        s = s.push(m)
    assert s.header.end == 5
    piece = s.slice(1, 2)
    assert piece.messages == ("b", "c") and piece.next_index == 3
    s, dropped = s.acknowledge(3)
    assert dropped == ("a", "b", "c") and s.header.begin == 3 and s.messages == ("d", "e")
    assert s.acknowledge(2) == (s, ())  # old signal: nothing happens
    with pytest.raises(StreamError, match="never sent"):
        s.acknowledge(9)


def test_backpressure_and_bad_headers() -> None:
    empty: Stream[int] = Stream()
    s = empty.push(1, limit=1)
    with pytest.raises(StreamError, match="back-pressure"):
        s.push(2, limit=1)
    with pytest.raises(StreamError):
        StreamHeader(begin=3, end=2)
    with pytest.raises(StreamError):
        StreamHeader(signals_end=2, reject_signals=(2,))
    with pytest.raises(StreamError, match="backwards"):
        s.with_signals(3).with_signals(2)


def test_check_slice_refuses_gaps_replays_and_backward_signals() -> None:
    s: Stream[int] = Stream()
    for i in range(4):
        s = s.push(i)
    check_slice(0, 0, s.slice(0, 2))
    with pytest.raises(StreamError, match="gap or replay"):
        check_slice(2, 0, s.slice(1, 2))
    forged = StreamSlice(StreamHeader(0, 1), 0, (0, 1))
    with pytest.raises(StreamError, match="past"):
        check_slice(0, 0, forged)
    with pytest.raises(StreamError, match="backwards"):
        check_slice(0, 5, s.slice(0, 1))


@given(
    st.integers(min_value=0, max_value=40),
    st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=40),
)
def test_exactly_once_in_order(n: int, slice_sizes: list[int]) -> None:
    sender: Stream[int] = Stream()
    for i in range(n):
        sender = sender.push(i)
    received: list[int] = []
    signals_end = 0
    for size in slice_sizes * (n + 1):
        if len(received) == n:
            break
        piece = sender.slice(max(signals_end, sender.header.begin), size)
        check_slice(len(received), 0, piece)
        received.extend(piece.messages)
        signals_end = len(received)
        sender, _ = sender.acknowledge(signals_end)
    assert received == list(range(n))
    assert sender.messages == ()

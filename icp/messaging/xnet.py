"""XNet streams: ordered, exactly-once message delivery between subnets.

Theory of operation.  For every destination subnet a subnet keeps one outgoing
*stream*: messages with consecutive indices ``[begin, end)`` plus a header.  The
header also carries ``signals_end`` — the index up to which this subnet has
inducted the *reverse* stream — and the ``reject_signals`` among those (messages
it could not take, e.g. because the canister moved).  Signals are piggy-backed
acknowledgements: when the sender sees the receiver's ``signals_end`` advance, it
garbage-collects the acknowledged messages (``begin`` advances) and turns the
rejected requests into reject responses for their callers.

The receiving subnet's block maker pulls a *slice* ``[from, to)`` of the stream
together with a certification of the sender's state (checked by the certification
code; see ``icp.state``) and inducts it in order: a slice must start exactly at the
next index the receiver expects, and signals never go backwards
(``check_slice``).  Nothing here is I/O; the stream is an immutable value.

Spec: protocol digest §4.3 (XNet streams, header fields begin / end / signals_end /
reject_signals, garbage collection, back-pressure); "The Internet Computer for
Geeks" §"Message routing".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Generic, TypeVar

import attrs

M = TypeVar("M")

DEFAULT_STREAM_MESSAGE_LIMIT: Final = 10_000
SYSTEM_SUBNET_STREAM_MSG_LIMIT: Final = 100
"""Back-pressure: messages a system subnet keeps in one outgoing stream (protocol §4.3)."""


class StreamError(ValueError):
    """A slice or signal that would break in-order, exactly-once delivery."""


@attrs.frozen
class StreamHeader:
    """The stream header: message indices and signals for the reverse stream.

    Spec: protocol digest §4.3.
    """

    begin: int = 0  # index of the first message still in the stream
    end: int = 0  # one past the last message
    signals_end: int = 0  # reverse-stream messages inducted so far
    reject_signals: tuple[int, ...] = ()  # reverse-stream indices < signals_end that were rejected

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.begin <= self.end:
            raise StreamError(
                f"stream header needs 0 <= begin <= end, got {self.begin}, {self.end}"
            )
        if any(not 0 <= i < self.signals_end for i in self.reject_signals):
            raise StreamError("reject signals must lie below signals_end")
        if list(self.reject_signals) != sorted(set(self.reject_signals)):
            raise StreamError("reject signals must be strictly increasing")


@attrs.frozen
class StreamSlice(Generic[M]):
    """Messages ``[first, first + len(messages))`` of a stream, with its header."""

    header: StreamHeader
    first: int
    messages: tuple[M, ...]

    @property
    def next_index(self) -> int:
        return self.first + len(self.messages)


@attrs.frozen
class Stream(Generic[M]):
    """One outgoing stream towards a destination subnet (an immutable value)."""

    header: StreamHeader = StreamHeader()
    messages: tuple[M, ...] = ()

    def __attrs_post_init__(self) -> None:
        if len(self.messages) != self.header.end - self.header.begin:
            raise StreamError("a stream holds exactly the messages [begin, end)")

    def push(self, message: M, *, limit: int = DEFAULT_STREAM_MESSAGE_LIMIT) -> Stream[M]:
        """Append ``message`` at index ``end``; refuse past the back-pressure ``limit``."""
        if len(self.messages) >= limit:
            raise StreamError(f"stream is full ({limit} messages): back-pressure")
        header = attrs.evolve(self.header, end=self.header.end + 1)
        return Stream(header, (*self.messages, message))

    def slice(self, start: int, max_messages: int) -> StreamSlice[M]:
        """Return up to ``max_messages`` messages starting at index ``start``."""
        if not self.header.begin <= start <= self.header.end:
            raise StreamError(
                f"slice start {start} is outside the stream [{self.header.begin}, "
                f"{self.header.end})"
            )
        offset = start - self.header.begin
        return StreamSlice(self.header, start, self.messages[offset : offset + max_messages])

    def acknowledge(self, signals_end: int) -> tuple[Stream[M], tuple[M, ...]]:
        """Drop messages below the receiver's ``signals_end``; return the dropped ones.

        The caller turns dropped *rejected* requests (see ``rejected_indices``) into
        reject responses.  Signals may not go backwards or beyond ``end``.
        """
        if signals_end < self.header.begin:
            return self, ()  # an old signal, already applied
        if signals_end > self.header.end:
            raise StreamError(
                f"signal {signals_end} acknowledges messages that were never sent "
                f"(stream end is {self.header.end})"
            )
        cut = signals_end - self.header.begin
        dropped, kept = self.messages[:cut], self.messages[cut:]
        return Stream(attrs.evolve(self.header, begin=signals_end), kept), dropped

    def with_signals(self, signals_end: int, rejected: Iterable[int] = ()) -> Stream[M]:
        """Record that the reverse stream was inducted up to ``signals_end``."""
        if signals_end < self.header.signals_end:
            raise StreamError("signals_end never goes backwards")
        merged = tuple(sorted(set(self.header.reject_signals) | set(rejected)))
        return Stream(
            attrs.evolve(self.header, signals_end=signals_end, reject_signals=merged),
            self.messages,
        )


def check_slice(expected_first: int, previous_signals_end: int, piece: StreamSlice[M]) -> None:
    """Check that ``piece`` continues the stream exactly where induction stopped.

    Spec: protocol digest §4.3 (validation: contiguity with what was already
    inducted; signals are monotone).
    """
    if piece.first != expected_first:
        raise StreamError(
            f"slice starts at index {piece.first} but the next expected message is "
            f"{expected_first} (gap or replay)"
        )
    if piece.next_index > piece.header.end:
        raise StreamError("slice holds messages past its header's end")
    if piece.header.signals_end < previous_signals_end:
        raise StreamError(
            f"slice signals_end {piece.header.signals_end} goes backwards from "
            f"{previous_signals_end}"
        )

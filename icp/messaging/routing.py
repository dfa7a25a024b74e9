"""The routing table: which subnet hosts which canister ids.

The NNS registry keeps a list of closed canister-id ranges ``[start, end]``, each
assigned to one subnet; ranges never overlap.  Message routing uses it to put an
outgoing message into the stream towards the destination's subnet, and the HTTP
layer uses it to find the subnet of an effective canister id.  New subnets get
ranges of ``2**20`` canister ids.

Spec: protocol digest §4.4 (routing table and canister migration); interface spec
§"Canister ranges" (``/subnet/<id>/canister_ranges``).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from typing import Final

import attrs

from icp.principal import Principal

CANISTER_IDS_PER_SUBNET: Final = 2**20
"""Size of the canister-id range a new subnet receives (protocol digest §4.4)."""


class RoutingError(ValueError):
    """Raised for an ill-formed routing table (overlap, empty or inverted range)."""


@attrs.frozen(order=True)
class CanisterIdRange:
    """A closed range ``[start, end]`` of canister ids, compared as raw bytes."""

    start: Principal
    end: Principal

    def __attrs_post_init__(self) -> None:
        if self.start > self.end:
            raise RoutingError(f"canister range {self.start}..{self.end} is inverted")

    def contains(self, canister_id: Principal) -> bool:
        return self.start <= canister_id <= self.end

    @classmethod
    def from_indices(cls, first: int, last: int) -> CanisterIdRange:
        """Return the range of canister ids with 64-bit indices ``first..last``."""
        return cls(Principal.from_canister_index(first), Principal.from_canister_index(last))

    def to_cbor_value(self) -> list[bytes]:
        """Return ``[start_bytes, end_bytes]`` as in ``/subnet/<id>/canister_ranges``."""
        return [self.start.bytes, self.end.bytes]


def _check_disjoint(entries: tuple[tuple[CanisterIdRange, Principal], ...]) -> None:
    for (previous, _), (current, _) in itertools.pairwise(entries):
        if current.start <= previous.end:
            raise RoutingError(
                f"canister ranges {previous.start}..{previous.end} and "
                f"{current.start}..{current.end} overlap"
            )


def _sorted_entries(
    entries: Iterable[tuple[CanisterIdRange, Principal]],
) -> tuple[tuple[CanisterIdRange, Principal], ...]:
    return tuple(sorted(entries))


@attrs.frozen
class RoutingTable:
    """Non-overlapping canister-id ranges, each mapped to the subnet that hosts it.

    Spec: protocol digest §4.4.
    """

    entries: tuple[tuple[CanisterIdRange, Principal], ...] = attrs.field(
        converter=_sorted_entries, factory=tuple
    )
    _starts: tuple[bytes, ...] = attrs.field(init=False, repr=False, eq=False)
    """Raw start ids of the ranges (principals order as their raw bytes)."""
    _ends: tuple[bytes, ...] = attrs.field(init=False, repr=False, eq=False)

    @_starts.default
    def _starts_default(self) -> tuple[bytes, ...]:
        _check_disjoint(self.entries)
        return tuple(r.start.raw for r, _ in self.entries)

    @_ends.default
    def _ends_default(self) -> tuple[bytes, ...]:
        return tuple(r.end.raw for r, _ in self.entries)

    def route(self, canister_id: Principal) -> Principal | None:
        """Return the subnet id hosting ``canister_id``, or ``None`` if no range holds it."""
        raw = canister_id.raw
        i = bisect.bisect_right(self._starts, raw) - 1
        if i >= 0 and raw <= self._ends[i]:
            return self.entries[i][1]
        return None

    def ranges_of(self, subnet_id: Principal) -> tuple[CanisterIdRange, ...]:
        """Return the ranges assigned to ``subnet_id``, in order."""
        return tuple(r for r, s in self.entries if s == subnet_id)

    def with_ranges(self, subnet_id: Principal, ranges: Iterable[CanisterIdRange]) -> RoutingTable:
        """Return a new table with ``ranges`` also assigned to ``subnet_id``."""
        return RoutingTable(self.entries + tuple((r, subnet_id) for r in ranges))

    def subnets(self) -> tuple[Principal, ...]:
        """Return the subnet ids in the table, each once, in range order."""
        return tuple(dict.fromkeys(s for _, s in self.entries))

"""Purger: drop artifacts the replica no longer needs.

Everything below the root CUP goes (blocks below the latest CUP are never needed again:
a lagging peer catches up from the CUP). Shares at or below the finalized height are
useless once their height is finalized (tape and CUP shares excepted).

Spec: protocol.md §3.2 (purge below the CUP height); dfinity/ic ``purger.rs``.
"""

from __future__ import annotations

from icp.consensus.pool import ChangeAction, PoolReader, PurgeBelow
from icp.types import Height, Time


class Purger:
    """Issue purge actions when the CUP or the finalized height advances."""

    def __init__(self) -> None:
        self._last: tuple[int, int] = (-1, -1)

    def on_state_change(self, pool: PoolReader, now: Time) -> list[ChangeAction]:
        """Return a purge when something new can be dropped."""
        marker = (pool.cup_height(), pool.finalized_height())
        if marker == self._last:
            return []
        self._last = marker
        return [
            PurgeBelow(pool.cup_height(), shares_only_up_to=Height(pool.finalized_height() - 1))
        ]

"""The replica-side query cache: answers a repeated query without executing it again.

Theory of operation.  A non-replicated query never changes state, so its result is a
function of the query (sender, canister, method, argument) and of what the execution
could observe: the canister's state, the state's time (``ic0.time``), the canister's
cycle balance and the data certificate.  The IC keeps, per replica, an LRU cache
keyed by ``(source, receiver, method_name, method_payload)`` whose entries record
the environment they were computed in (the state's batch time and, per evaluated
canister, its version and balance); an entry answers a later query only while
that environment is unchanged:

* the canister's ``version`` is the same (every executed update, response, heartbeat
  or timer, every install, upgrade, settings change, start and stop increments it);
* its cycle balance is the same;
* the batch time is the same, and (stricter than the IC, whose batch times grow
  with every height while ours may repeat) so is the certified height;
* the entry is at most ``QUERY_CACHE_MAX_EXPIRY`` old (600 s), and at most
  ``QUERY_CACHE_DATA_CERTIFICATE_EXPIRY`` old (60 s) when the query was given a data
  certificate.

Results that are system errors (canister not found, no such query method, trap,
instruction limit ...) are not cached, only replies and the canister's own rejects
(``IC0406``), as in the IC.

Where we differ on purpose: the IC relaxes the time and balance rules for a query
that, by its System API call counters, never called ``ic0.time`` or read its
balance (``QueryCache.push`` takes those facts); our execution layer does not
report the counters, so ``InternetComputer`` treats every entry as having read both: entries
live at most one certified height, which is never less correct.  Composite queries
are not cached (their call graph may evaluate other canisters, and the IC drops
entries whose nested calls failed).

Spec: dfinity/ic ``rs/execution_environment/src/query_handler/query_cache.rs``
(``EntryKey``, ``EntryEnv``, ``EntryValue::is_valid``; errors are not cached) and
``rs/config/src/execution_environment.rs`` (``QUERY_CACHE_CAPACITY`` = 200 MiB,
``QUERY_CACHE_MAX_EXPIRY_TIME`` = 600 s, ``QUERY_CACHE_DATA_CERTIFICATE_EXPIRY_TIME``
= 60 s).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

import attrs

from icp.execution.canister import CanisterState
from icp.execution.errors import ErrorCode
from icp.execution.system_api import Reject, Reply
from icp.types import NANOS_PER_SECOND

QUERY_CACHE_CAPACITY: Final = 200 * 1024 * 1024
"""Bytes of keys and results the cache holds (dfinity/ic ``QUERY_CACHE_CAPACITY``)."""

QUERY_CACHE_MAX_EXPIRY: Final = 600 * NANOS_PER_SECOND
"""How long an entry may answer at most (``QUERY_CACHE_MAX_EXPIRY_TIME``)."""

QUERY_CACHE_DATA_CERTIFICATE_EXPIRY: Final = 60 * NANOS_PER_SECOND
"""How long an entry computed with a data certificate may answer
(``QUERY_CACHE_DATA_CERTIFICATE_EXPIRY_TIME``)."""

_ENTRY_OVERHEAD: Final = 256
"""Bytes counted per entry on top of its key and result (bookkeeping)."""

QueryKey = tuple[bytes, bytes, str, bytes]
"""``(source, receiver, method_name, method_payload)``: the IC's ``EntryKey``."""


@attrs.frozen(slots=True)
class QueryEntry:
    """A cached result and the environment it was computed in (the IC's ``EntryValue``)."""

    batch_time: int
    height: int
    canister_version: int
    canister_balance: int
    result: Reply | Reject
    includes_data_certificate: bool
    ignore_batch_time: bool
    ignore_canister_balance: bool
    size: int


def is_cacheable(result: Reply | Reject) -> bool:
    """Return whether a query result may be cached: a reply or the canister's own reject.

    Spec: dfinity/ic ``QueryCache::push`` ("The result should not be saved if there
    were errors"; a canister's ``msg_reject`` is a result, not an error).
    """
    if isinstance(result, Reply):
        return True
    return result.error_code == ErrorCode.CANISTER_REJECTED_MESSAGE.text()


def _size(key: QueryKey, result: Reply | Reject) -> int:
    payload = result.data if isinstance(result, Reply) else result.message.encode()
    return _ENTRY_OVERHEAD + len(key[0]) + len(key[1]) + len(key[2]) + len(key[3]) + len(payload)


class QueryCache:
    """One replica's query cache (LRU by bytes), validated against the state it answers on.

    Spec: see module docstring.
    """

    def __init__(
        self,
        capacity: int = QUERY_CACHE_CAPACITY,
        *,
        max_expiry: int = QUERY_CACHE_MAX_EXPIRY,
        data_certificate_expiry: int = QUERY_CACHE_DATA_CERTIFICATE_EXPIRY,
    ) -> None:
        self.capacity = capacity
        self.max_expiry = max_expiry
        self.data_certificate_expiry = data_certificate_expiry
        self._entries: OrderedDict[QueryKey, QueryEntry] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.invalidated = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _is_valid(self, entry: QueryEntry, canister: CanisterState, now: int, height: int) -> bool:
        """Return whether ``entry`` still answers for ``canister`` at batch time ``now``.

        Spec: dfinity/ic ``EntryValue::is_valid`` (with time and balance never ignored).
        """
        age = now - entry.batch_time
        expired = age > self.max_expiry or (
            entry.includes_data_certificate and age > self.data_certificate_expiry
        )
        same_time = entry.batch_time == now and entry.height == height
        return (
            not expired
            and (same_time or entry.ignore_batch_time)
            and entry.canister_version == canister.version
            and (entry.canister_balance == canister.cycles or entry.ignore_canister_balance)
        )

    def get(
        self, key: QueryKey, canister: CanisterState, now: int, height: int
    ) -> Reply | Reject | None:
        """Return the cached result of ``key`` if valid for ``canister`` in the state at
        ``height`` with batch time ``now``; an entry that is no longer valid is dropped.
        """
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if not self._is_valid(entry, canister, now, height):
            self._drop(key)
            self.invalidated += 1
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.result

    def push(
        self,
        key: QueryKey,
        result: Reply | Reject,
        canister: CanisterState,
        now: int,
        height: int,
        *,
        includes_data_certificate: bool,
        reads_time: bool = True,
        reads_balance: bool = True,
    ) -> None:
        """Remember ``result`` computed on ``canister`` in the state at ``height`` (batch
        time ``now``), if cacheable.

        ``reads_time`` / ``reads_balance``: whether the execution called ``ic0.time`` /
        read its cycle balance (the IC's System API call counters); if not, changes of
        the batch time / balance do not invalidate the entry.  Our callers do not know
        and keep the defaults (True), which is always safe.

        Least recently used entries are evicted beyond the capacity in bytes.
        """
        if not is_cacheable(result):
            return
        size = _size(key, result)
        if size > self.capacity:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = QueryEntry(
            now,
            height,
            canister.version,
            canister.cycles,
            result,
            includes_data_certificate,
            not reads_time,
            not reads_balance,
            size,
        )
        self._bytes += size
        while self._bytes > self.capacity:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def _drop(self, key: QueryKey) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
        self._bytes = 0


__all__ = [
    "QUERY_CACHE_CAPACITY",
    "QUERY_CACHE_DATA_CERTIFICATE_EXPIRY",
    "QUERY_CACHE_MAX_EXPIRY",
    "QueryCache",
    "QueryEntry",
    "QueryKey",
    "is_cacheable",
]

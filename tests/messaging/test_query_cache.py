"""The replica-side query cache: the IC's validity rules, errors not cached, LRU by bytes."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icp.execution.canister import CanisterSettings, CanisterState
from icp.execution.errors import ErrorCode
from icp.execution.system_api import Reject, Reply
from icp.messaging.query_cache import (
    QUERY_CACHE_DATA_CERTIFICATE_EXPIRY,
    QUERY_CACHE_MAX_EXPIRY,
    QueryCache,
    QueryKey,
    is_cacheable,
)

T = 1_700_000_000 * 10**9
CANISTER = CanisterState(b"\x00" * 9 + b"\x01", CanisterSettings(controllers=()), cycles=10**12)
KEY: QueryKey = (b"\x04", CANISTER.canister_id, "get", b"DIDL\x00\x00")
REPLY = Reply(b"DIDL\x00\x01\x7d\x01")


def cached(cache: QueryCache, canister: CanisterState = CANISTER, now: int = T, h: int = 5) -> bool:
    return cache.get(KEY, canister, now, h) is not None


def test_an_entry_answers_while_the_environment_is_unchanged() -> None:
    cache = QueryCache()
    assert not cached(cache)
    cache.push(KEY, REPLY, CANISTER, T, 5, includes_data_certificate=False)
    assert cache.get(KEY, CANISTER, T, 5) == REPLY
    assert cache.get((b"\x05", *KEY[1:]), CANISTER, T, 5) is None  # another source
    assert cache.get((*KEY[:3], b"DIDL\x00\x01\x7d\x02"), CANISTER, T, 5) is None  # other arg
    assert (cache.hits, cache.misses) == (1, 3)


@pytest.mark.parametrize(
    ("canister", "now", "height"),
    [
        (attrs.evolve(CANISTER, version=CANISTER.version + 1), T, 5),  # executed something
        (attrs.evolve(CANISTER, cycles=CANISTER.cycles - 1), T, 5),  # balance changed
        (CANISTER, T + 1, 5),  # batch time changed (we never ignore it)
        (CANISTER, T, 6),  # another certified state
    ],
)
def test_any_change_of_the_environment_invalidates(
    canister: CanisterState, now: int, height: int
) -> None:
    cache = QueryCache()
    cache.push(KEY, REPLY, CANISTER, T, 5, includes_data_certificate=False)
    assert not cached(cache, canister, now, height)
    assert cache.invalidated == 1 and len(cache) == 0  # an invalid entry is dropped
    assert not cached(cache)  # ... for good


def test_entries_that_ignore_time_still_expire() -> None:
    cache = QueryCache(max_expiry=10, data_certificate_expiry=5)
    for includes, lifetime in ((False, 10), (True, 5)):
        cache.push(KEY, REPLY, CANISTER, T, 5, includes_data_certificate=includes, reads_time=False)
        assert cached(cache, now=T + lifetime, h=9)  # time and height may move on ...
        assert not cached(cache, now=T + lifetime + 1, h=9)  # ... up to the expiry
    cache.push(KEY, REPLY, CANISTER, T, 5, includes_data_certificate=False, reads_balance=False)
    assert cached(cache, attrs.evolve(CANISTER, cycles=1))  # the balance was not read
    assert not cached(cache, attrs.evolve(CANISTER, version=7))  # the version always counts
    assert QUERY_CACHE_MAX_EXPIRY == 600 * 10**9
    assert QUERY_CACHE_DATA_CERTIFICATE_EXPIRY == 60 * 10**9


def test_only_replies_and_canister_rejects_are_cached() -> None:
    own_reject = Reject(4, "no", ErrorCode.CANISTER_REJECTED_MESSAGE.text())
    trap = Reject(5, "trapped", ErrorCode.CANISTER_CALLED_TRAP.text())
    missing = Reject(3, "gone", ErrorCode.CANISTER_NOT_FOUND.text())
    assert is_cacheable(REPLY) and is_cacheable(own_reject)
    assert not is_cacheable(trap) and not is_cacheable(missing)
    cache = QueryCache()
    cache.push(KEY, trap, CANISTER, T, 5, includes_data_certificate=False)
    assert len(cache) == 0
    cache.push(KEY, own_reject, CANISTER, T, 5, includes_data_certificate=False)
    assert cache.get(KEY, CANISTER, T, 5) == own_reject


def test_least_recently_used_entries_go_first_beyond_the_capacity() -> None:
    keys = [(b"\x04", CANISTER.canister_id, "get", bytes([i])) for i in range(3)]
    one = QueryCache()
    one.push(keys[0], REPLY, CANISTER, T, 5, includes_data_certificate=False)
    entry_size = one._bytes
    cache = QueryCache(capacity=2 * entry_size)
    for key in keys[:2]:
        cache.push(key, REPLY, CANISTER, T, 5, includes_data_certificate=False)
    assert cache.get(keys[0], CANISTER, T, 5) == REPLY  # keys[0] is now the most recent
    cache.push(keys[2], REPLY, CANISTER, T, 5, includes_data_certificate=False)
    assert len(cache) == 2
    assert cache.get(keys[1], CANISTER, T, 5) is None  # evicted
    assert cache.get(keys[0], CANISTER, T, 5) == REPLY
    huge = QueryCache(capacity=10)
    huge.push(keys[0], REPLY, CANISTER, T, 5, includes_data_certificate=False)
    assert len(huge) == 0  # an entry larger than the whole cache is not kept


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(["query", "version", "cycles", "time", "height", "other_key"]),
        min_size=1,
        max_size=40,
    )
)
def test_the_cache_answers_exactly_when_nothing_it_depends_on_changed(steps: list[str]) -> None:
    """Model: the cache answers iff version, balance, time and height are unchanged."""
    cache = QueryCache()
    canister, now, height = CANISTER, T, 5
    pushed_in: dict[QueryKey, tuple[int, int, int, int]] = {}  # environment of each entry
    key = KEY
    for step in steps:
        if step == "version":
            canister = attrs.evolve(canister, version=canister.version + 1)
        elif step == "cycles":
            canister = attrs.evolve(canister, cycles=canister.cycles - 7)
        elif step == "time":
            now += 1
        elif step == "height":
            height += 1
        elif step == "other_key":
            key = (b"\x05", *KEY[1:]) if key == KEY else KEY
        else:
            environment = (canister.version, canister.cycles, now, height)
            answer = Reply(repr(environment).encode())  # the "execution" reads all of it
            hit = cache.get(key, canister, now, height)
            if pushed_in.get(key) == environment:
                assert hit == answer  # unchanged: answered from the cache
            else:
                assert hit is None  # anything changed (or never asked): executed again
                cache.push(key, answer, canister, now, height, includes_data_certificate=True)
                pushed_in[key] = environment

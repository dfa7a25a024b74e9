"""Queries: served from certified state only, the replica-side query cache and its rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from icp import Principal
from icp.candid import decode, encode
from icp.candid.types import Nat
from icp.crypto.hashing import cbor_decode as _cbor_decode
from icp.crypto.user_sig import principal_of
from icp.execution.system_api import Reply
from icp.ic import InternetComputer
from icp.replica import Replica
from icp.state.ingress_history import RequestStatus
from icp.testing import call_content, envelope
from tests.ic.helpers import ALICE, BOB, call, create_canister, install

NO_ARGS = encode([], [])
ANON = Principal.anonymous()


def cbor_decode(data: bytes) -> Any:
    """Decode CBOR (typed loosely for tests)."""
    return _cbor_decode(data)


@pytest.fixture(scope="module")
def counter(motoko: Callable[[str], bytes]) -> tuple[InternetComputer, Principal]:
    ic = InternetComputer(seed=21)
    cid = create_canister(ic, ic.applications[0])
    install(ic, cid, motoko("counter"))
    return ic, cid


def get(ic: InternetComputer, cid: Principal, identity: Any = ALICE) -> tuple[int, bytes]:
    """Return the counter's value from a query and the node id that signed the answer."""
    sender = ANON if identity is None else principal_of(identity)
    content = call_content("query", sender, cid, "get", NO_ARGS, ic.time() + 60 * 10**9)
    answer = cbor_decode(ic.query(envelope(content, identity), cid))
    assert answer["status"] == "replied", answer
    value: int = decode(answer["reply"]["arg"], [Nat])[0]
    return value, answer["signatures"][0]["identity"]


def replica_of(ic: InternetComputer, node_id: bytes) -> Replica:
    return next(r for s in ic.subnets for r in s.replicas if r.node_id.raw == node_id)


def status_in_certified(replica: Replica, rid: bytes) -> RequestStatus | None:
    state, _ = replica.certified()
    entry = state.ingress_history.get(rid)
    return None if entry is None else entry.status


def test_queries_never_see_executed_but_uncertified_memory(
    counter: tuple[InternetComputer, Principal],
) -> None:
    """Wasm memory is shared by the states of h and h+1: a query must not read h+1's.

    Run the IC in small steps until the serving replica has executed an ``inc`` that
    its certified state does not contain yet; the query must still answer a value
    consistent with the certified state of the replica that signed the answer.
    """
    ic, cid = counter
    app = ic.applications[0]
    before = decode(call(ic, cid, "inc", NO_ARGS).reply or b"", [Nat])[0]
    content = call_content("call", principal_of(ALICE), cid, "inc", NO_ARGS, ic.time() + 60 * 10**9)
    rid = ic.submit_call(envelope(content, ALICE), cid)
    for _ in range(5000):
        ic.run_until(ic.now + 10**6)
        serving = app.serving_replica()
        executed = serving.state.latest_state.ingress_history.get(rid)
        if executed is not None and status_in_certified(serving, rid) is not RequestStatus.REPLIED:
            break
    else:
        pytest.fail("never saw the executed-but-uncertified window")
    assert executed.status is RequestStatus.REPLIED  # the memory already holds before + 1
    value, node = get(ic, cid)
    answering = replica_of(ic, node)
    certified_replied = status_in_certified(answering, rid) is RequestStatus.REPLIED
    assert value == (before + 1 if certified_replied else before)
    # the PocketIC entry point (run_query) obeys the same rule
    response = ic.run_query(app.serving_replica(), principal_of(ALICE), cid, "get", NO_ARGS)
    assert isinstance(response, Reply)
    assert decode(response.data, [Nat])[0] in (before, before + 1)


def test_query_cache_hits_and_is_invalidated_by_an_update(
    counter: tuple[InternetComputer, Principal],
) -> None:
    ic, cid = counter
    ic.tick(1)
    first, node = get(ic, cid)
    cache = replica_of(ic, node).query_cache
    hits = cache.hits
    assert get(ic, cid) == (first, node)
    assert cache.hits == hits + 1  # the second identical query was answered from the cache
    # another sender is another cache key (the IC keys by source)
    assert get(ic, cid, BOB)[0] == first
    assert cache.hits == hits + 1
    # an update changes the canister (its version): the next query sees the new value
    assert decode(call(ic, cid, "inc", NO_ARGS).reply or b"", [Nat]) == [first + 1]
    value, node = get(ic, cid)
    assert value == first + 1
    # a new certified height (new batch time) invalidates as well, with the same answer
    cache = replica_of(ic, node).query_cache
    invalidated = cache.invalidated
    ic.tick(1)
    assert get(ic, cid)[0] == first + 1
    assert cache.invalidated >= invalidated


def test_query_cache_can_be_disabled_and_anonymous_queries_work(
    counter: tuple[InternetComputer, Principal],
) -> None:
    ic, cid = counter
    cached = get(ic, cid, None)[0]
    ic.query_caching = False
    try:
        hits = sum(r.query_cache.hits for r in ic.applications[0].replicas)
        assert get(ic, cid, None)[0] == cached
        assert get(ic, cid)[0] == cached
        assert sum(r.query_cache.hits for r in ic.applications[0].replicas) == hits
    finally:
        ic.query_caching = True

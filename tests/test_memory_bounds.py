"""Memory stays bounded under a steady workload: what a replica keeps does not grow with time.

Structural checks, not RSS: after every round of the same workload the retained
structures (delivered batches, finalized-chain records, DKG summaries, ingress pool,
envelope and authentication memos, ingress history, consensus pool) stay below bounds
that depend on the retention constants and the per-round workload, never on how many
rounds ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import icp.replica
from icp.build import compile_motoko
from icp.candid import encode
from icp.crypto.user_sig import principal_of
from icp.ic import DEFAULT_CONSENSUS, InternetComputer, SubnetConfig, SubnetKind
from icp.messaging.ingress import (
    MAX_INGRESS_TTL,
    PERMITTED_DRIFT,
    CachingAuthenticator,
    EnvelopeCache,
    SignedIngress,
)
from icp.principal import Principal
from icp.testing import call_content, envelope
from icp.types import NANOS_PER_SECOND, Time
from tests.ic.helpers import ALICE, CANISTERS, create_canister, install

SECOND = NANOS_PER_SECOND
NO_ARGS = encode([], [])
T0 = 1_700_000_000 * SECOND
COUNTER = Principal(b"\x80\x00\x00\x00\x00\x10\x00\x00\x01\x01")  # first app canister


def signed_call(expiry: int, nonce: int) -> bytes:
    """Return a signed update-call envelope to the counter, unique per ``nonce``."""
    content = call_content("call", principal_of(ALICE), COUNTER, "inc", NO_ARGS, expiry)
    content["nonce"] = nonce.to_bytes(8, "big")
    return envelope(content, ALICE)


def signed_query(expiry: int, nonce: int) -> bytes:
    """Return a signed query envelope to the counter, unique per ``nonce``."""
    content = call_content("query", principal_of(ALICE), COUNTER, "get", NO_ARGS, expiry)
    content["nonce"] = nonce.to_bytes(8, "big")
    return envelope(content, ALICE)


# --- the memos forget expired requests ---------------------------------------------------


def test_envelope_cache_forgets_the_envelopes_of_expired_requests() -> None:
    cache = EnvelopeCache()
    early = [signed_call(T0 + 10 * SECOND, i) for i in range(5)]
    late = [signed_call(T0 + 100 * SECOND, i) for i in range(5, 8)]
    queries = [signed_query(T0 + 10 * SECOND, i) for i in range(3)]
    parsed = [cache.parse_call(body) for body in early + late]
    for body in queries:
        cache.parse_request(body)
    assert len(cache) == 11
    cache.purge_expired(Time(T0 + 10 * SECOND + PERMITTED_DRIFT))  # expiry == cutoff: kept
    assert len(cache) == 11
    cache.purge_expired(Time(T0 + 11 * SECOND + PERMITTED_DRIFT))
    assert len(cache) == 3  # only the late calls remain
    misses = cache.misses
    assert cache.parse_call(late[0]) is parsed[5] and cache.misses == misses
    assert cache.parse_call(early[0]) == parsed[0]  # re-parsed: same outcome
    assert cache.misses == misses + 1


def test_envelope_cache_heap_stays_bounded_when_entries_are_evicted_by_count() -> None:
    cache = EnvelopeCache(max_entries=4)
    far = T0 + 10**6 * SECOND  # never purged by time: only the count bound evicts
    for i in range(300):
        cache.parse_call(signed_call(far, i))
    memo = cache._calls
    assert len(memo.entries) == 4
    assert len(memo.expiries) <= 2 * 4 + 64 + 1


def test_caching_authenticator_forgets_verifications_of_expired_requests() -> None:
    cache = EnvelopeCache()
    auth = CachingAuthenticator()
    now = Time(T0)
    for i in range(20):
        message: SignedIngress = cache.parse_call(signed_call(T0 + 5 * SECOND, i))
        auth(message, now)
    assert len(auth) == 20
    later = Time(T0 + 6 * SECOND + PERMITTED_DRIFT)
    auth(cache.parse_call(signed_call(later + 5 * SECOND, 99)), later)
    assert len(auth) == 1
    hits = auth.hits
    auth(cache.parse_call(signed_call(later + 5 * SECOND, 99)), later)
    assert auth.hits == hits + 1  # a live request is still answered from the memo


# --- a running IC ------------------------------------------------------------------------

KEEP = 8
ROUNDS = 5
CALLS = 4
HEIGHTS_PER_ROUND = 30


def retained(ic: InternetComputer) -> dict[str, int]:
    """Return the largest size of each retained structure over every replica."""
    sizes: dict[str, int] = {}

    def note(name: str, value: int) -> None:
        sizes[name] = max(sizes.get(name, 0), value)

    for subnet in ic.subnets:
        for replica in subnet.replicas:
            consensus = replica.consensus
            note("batches", len(consensus.batches))
            note("finalized_log", len(consensus.finalized_log))
            note("finalized_parents", len(consensus.finalized_parents))
            note("state_hashes", len(consensus.state_hashes))
            note("summaries", len(consensus.ctx.summaries))
            note("key_shares", len(consensus.ctx.keys.shares))
            note("pool", len(consensus.pool.validated.by_hash))
            note("pool_unvalidated", len(consensus.pool.unvalidated.by_hash))
            note("ingress_pool", len(replica.ingress_pool))
            note("ingress_history", len(replica.state.latest_state.ingress_history))
            note("height", replica.state.latest_height)
    note("envelopes", len(ic.envelopes))
    assert ic.authenticate is not None
    note("authenticated", len(ic.authenticate))
    return sizes


def test_a_steady_workload_keeps_what_replicas_retain_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(icp.replica, "KEEP_DELIVERED_HEIGHTS", KEEP)
    ic = InternetComputer(
        [SubnetConfig(SubnetKind.NNS, 1), SubnetConfig(SubnetKind.APPLICATION, 1)], seed=5
    )
    app = ic.applications[0]
    cid = create_canister(ic, app)
    assert cid == COUNTER
    install(ic, cid, compile_motoko(Path(CANISTERS / "counter")))
    interval = DEFAULT_CONSENSUS.dkg_interval_length + 1
    # kept heights: >= min(CUP, delivered - KEEP); the CUP lags the delivered height by
    # less than two intervals (it is made once the summary height is executed)
    heights = KEEP + 2 * interval + 1
    bounds = {
        "batches": heights,
        "finalized_log": heights,
        "finalized_parents": heights,
        "state_hashes": heights // interval + 1,
        "summaries": heights // interval + 3,
        "key_shares": 2 * (heights // interval + 3),
        "pool": 40 * interval,
        "pool_unvalidated": 40 * interval,
        # requests of a round expired: only the setup's two calls (created, installed
        # with a longer expiry) may still be remembered, never the rounds' requests
        "ingress_pool": 0,
        "ingress_history": 2,
        "envelopes": 2,
        "authenticated": 2 * CALLS + 2,
    }
    history: list[dict[str, int]] = []
    nonce = 0
    for _ in range(ROUNDS):
        expiry = ic.time() + 20 * SECOND
        for _ in range(CALLS):
            nonce += 1
            result = ic.call_and_wait(signed_call(expiry, nonce), cid)
            assert result.status == "replied", result
            ic.query(signed_query(expiry, nonce), cid)
        # let every request of the round expire, then keep the IC running (a verified
        # query is remembered for the longest expiry acceptable when it was checked)
        ic.set_time(ic.time() + MAX_INGRESS_TTL + 2 * PERMITTED_DRIFT + SECOND)
        ic.tick(HEIGHTS_PER_ROUND)
        history.append(retained(ic))
    assert history[-1]["height"] >= history[0]["height"] + (ROUNDS - 1) * HEIGHTS_PER_ROUND
    assert history[-1]["height"] > 3 * heights  # enough heights to show the bounds
    for sizes in history:
        over = {name: (sizes[name], bound) for name, bound in bounds.items() if sizes[name] > bound}
        assert not over, over

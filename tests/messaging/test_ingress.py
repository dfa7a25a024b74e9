"""Ingress envelopes: parsing, typed errors for bad input, expiry window, pool and selection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icp import Principal
from icp.crypto.errors import AuthenticationError
from icp.crypto.hashing import cbor_encode, request_id
from icp.crypto.user_sig import Ed25519Identity, delegate, sign_request
from icp.messaging.ingress import (
    MAX_INGRESS_TTL,
    PERMITTED_DRIFT,
    CachingAuthenticator,
    EnvelopeCache,
    IngressError,
    IngressLimits,
    IngressPool,
    SignedIngress,
    authenticate_ingress,
    check_ingress,
    is_expiry_valid,
    parse_call_envelope,
    select_ingress,
)
from icp.types import Time

NOW = Time(1_700_000_000 * 10**9)
CANISTER = Principal.from_canister_index(1)


def content(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "request_type": "call",
        "sender": b"\x04",
        "ingress_expiry": NOW + 60 * 10**9,
        "canister_id": CANISTER.bytes,
        "method_name": "inc",
        "arg": b"DIDL\x00\x00",
    }
    base.update(overrides)
    return base


def never_called(_message: SignedIngress, _now: Time) -> None:
    raise AssertionError("anonymous requests carry no signature to check")


def test_parse_anonymous_call() -> None:
    c = content(nonce=b"n")
    message = parse_call_envelope(cbor_encode({"content": c}))
    assert message.sender == Principal.anonymous()
    assert message.canister_id == CANISTER
    assert message.message_id == request_id(c)
    check_ingress(message, NOW, never_called)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"\xff\x00", "not valid CBOR"),
        (cbor_encode([1, 2]), "'content' map"),
        (cbor_encode({"content": content(request_type="query")}), "request_type"),
        (cbor_encode({"content": {k: v for k, v in content().items() if k != "arg"}}), "'arg'"),
        (cbor_encode({"content": content(ingress_expiry=-1)}), "nat"),
        (cbor_encode({"content": content(sender=b"\x00" * 30)}), "not a principal"),
        (cbor_encode({"content": content(method_name=b"inc")}), "text"),
        (cbor_encode({"content": content(nonce=b"x" * 33)}), "nonce"),
        (cbor_encode({"content": content(), "sender_delegation": [{"x": 1}]}), "delegation"),
        (cbor_encode({"content": content(extra=True)}), "cannot be hashed"),
    ],
)
def test_malformed_envelopes_say_what_is_wrong(body: bytes, fragment: str) -> None:
    with pytest.raises(IngressError, match=fragment) as info:
        parse_call_envelope(body)
    assert info.value.http_status == 400


def test_oversized_request_is_413() -> None:
    body = cbor_encode({"content": content(arg=b"x" * 2000)})
    with pytest.raises(IngressError) as info:
        parse_call_envelope(body, limits=IngressLimits(max_message_bytes=1000))
    assert info.value.http_status == 413


def test_expiry_window_boundaries() -> None:
    assert is_expiry_valid(NOW + MAX_INGRESS_TTL + PERMITTED_DRIFT, NOW)
    assert not is_expiry_valid(NOW + MAX_INGRESS_TTL + PERMITTED_DRIFT + 1, NOW)
    assert is_expiry_valid(NOW - PERMITTED_DRIFT, NOW)
    assert not is_expiry_valid(NOW - PERMITTED_DRIFT - 1, NOW)
    expired = parse_call_envelope(cbor_encode({"content": content(ingress_expiry=NOW - 10**12)}))
    with pytest.raises(IngressError, match="expired"):
        check_ingress(expired, NOW, never_called)


def signed_call(identity: Ed25519Identity, **overrides: object) -> tuple[dict[str, object], bytes]:
    sender = Principal.self_authenticating(identity.public_key_der())
    c = content(sender=sender.bytes, **overrides)
    envelope: dict[str, object] = {
        "content": c,
        "sender_pubkey": identity.public_key_der(),
        "sender_sig": sign_request(identity, request_id(c)),
    }
    return envelope, cbor_encode(envelope)


def test_real_signatures_are_checked() -> None:
    alice = Ed25519Identity.from_seed(b"a" * 32)
    envelope, body = signed_call(alice)
    check_ingress(parse_call_envelope(body), NOW)  # the default authenticator is the real one

    tampered = dict(envelope, content=content(sender=envelope["content"]["sender"], arg=b"!"))  # type: ignore[index]
    with pytest.raises(IngressError, match="signature check failed"):
        check_ingress(parse_call_envelope(cbor_encode(tampered)), NOW)

    mallory = Ed25519Identity.from_seed(b"m" * 32)
    stolen = dict(envelope, sender_pubkey=mallory.public_key_der())
    with pytest.raises(IngressError, match="self-authenticating"):
        check_ingress(parse_call_envelope(cbor_encode(stolen)), NOW)


def test_delegation_chain_and_targets() -> None:
    alice = Ed25519Identity.from_seed(b"a" * 32)
    session = Ed25519Identity.from_seed(b"s" * 32)
    sender = Principal.self_authenticating(alice.public_key_der())
    expiry = NOW + 30 * 10**9  # the delegation ends before the request does

    def body(targets: list[Principal] | None) -> bytes:
        c = content(sender=sender.bytes)
        chain = [delegate(alice, session.public_key_der(), expiry, targets).to_cbor_value()]
        return cbor_encode(
            {
                "content": c,
                "sender_pubkey": alice.public_key_der(),
                "sender_delegation": chain,
                "sender_sig": sign_request(session, request_id(c)),
            }
        )

    check_ingress(parse_call_envelope(body(None)), NOW)
    check_ingress(parse_call_envelope(body([CANISTER])), NOW)
    with pytest.raises(IngressError, match="signature check failed"):
        check_ingress(parse_call_envelope(body([Principal.from_canister_index(99)])), NOW)
    with pytest.raises(IngressError, match="signature check failed"):
        check_ingress(parse_call_envelope(body(None)), Time(expiry + 1))


def test_caching_authenticator_verifies_once_and_never_caches_failures() -> None:
    alice = Ed25519Identity.from_seed(b"a" * 32)
    envelope, body = signed_call(alice)
    calls: list[bytes] = []

    def counting(message: SignedIngress, now: Time) -> None:
        calls.append(message.message_id)
        authenticate_ingress(message, now)

    cache = CachingAuthenticator(counting)
    message = parse_call_envelope(body)
    for _ in range(3):
        check_ingress(message, NOW, cache)
    assert len(calls) == 1 and cache.hits == 2
    forged = dict(envelope, sender_sig=bytes(64))
    bad = parse_call_envelope(cbor_encode(forged))
    assert bad.message_id == message.message_id  # same request, another signature
    for _ in range(2):
        with pytest.raises(IngressError, match="signature check failed"):
            check_ingress(bad, NOW, cache)
    assert len(calls) == 3  # each failing check verified again


def test_caching_authenticator_honours_delegation_expiry() -> None:
    alice = Ed25519Identity.from_seed(b"a" * 32)
    session = Ed25519Identity.from_seed(b"s" * 32)
    sender = Principal.self_authenticating(alice.public_key_der())
    expiry = NOW + 30 * 10**9
    c = content(sender=sender.bytes)
    body = cbor_encode(
        {
            "content": c,
            "sender_pubkey": alice.public_key_der(),
            "sender_delegation": [
                delegate(alice, session.public_key_der(), expiry).to_cbor_value()
            ],
            "sender_sig": sign_request(session, request_id(c)),
        }
    )
    cache = CachingAuthenticator()
    message = parse_call_envelope(body)
    check_ingress(message, NOW, cache)
    check_ingress(message, Time(expiry), cache)  # still valid at the expiration itself
    assert cache.hits == 1
    with pytest.raises(IngressError, match="signature check failed"):
        check_ingress(message, Time(expiry + 1), cache)  # the memo does not outlive it
    # the request-level form (query, read_state) follows the same rule
    kwargs = {
        "sender_pubkey": alice.public_key_der(),
        "sender_sig": sign_request(session, request_id(c)),
        "sender_delegation": message.sender_delegation,
        "target": CANISTER,
    }
    cache.authenticate_request(sender, request_id(c), NOW, **kwargs)  # type: ignore[arg-type]
    cache.authenticate_request(sender, request_id(c), NOW, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError, match="expired"):
        cache.authenticate_request(sender, request_id(c), expiry + 1, **kwargs)  # type: ignore[arg-type]


def test_envelope_cache_parses_once_per_envelope_and_limits() -> None:
    cache = EnvelopeCache(max_entries=2)
    body = cbor_encode({"content": content(nonce=b"1")})
    first = cache.parse_call(body)
    assert cache.parse_call(body) is first and cache.hits == 1
    assert first == parse_call_envelope(body)
    with pytest.raises(IngressError) as info:  # other limits: parsed again, and refused
        cache.parse_call(body, IngressLimits(max_message_bytes=10))
    assert info.value.http_status == 413
    with pytest.raises(IngressError):  # malformed input is never cached
        cache.parse_call(b"\xff")
    for n in range(2, 5):
        cache.parse_call(cbor_encode({"content": content(nonce=bytes([n]))}))
    misses = cache.misses
    cache.parse_call(body)  # evicted (bounded memo): parsed again
    assert cache.misses == misses + 1


def test_non_anonymous_needs_key_and_signature_and_anonymous_needs_none() -> None:
    user = Principal.self_authenticating(b"k")
    unsigned = parse_call_envelope(cbor_encode({"content": content(sender=user.bytes)}))
    with pytest.raises(IngressError, match="needs sender_pubkey"):
        check_ingress(unsigned, NOW, never_called)
    anon_with_key = parse_call_envelope(
        cbor_encode({"content": content(), "sender_pubkey": b"k", "sender_sig": b"s"})
    )
    with pytest.raises(IngressError, match="anonymous"):
        check_ingress(anon_with_key, NOW, never_called)


def make(canister: int, nonce: int, size_pad: int = 0, expiry: int = 60) -> SignedIngress:
    c = content(
        canister_id=Principal.from_canister_index(canister).bytes,
        nonce=nonce.to_bytes(8, "big"),
        arg=b"x" * size_pad,
        ingress_expiry=NOW + expiry * 10**9,
    )
    return parse_call_envelope(cbor_encode({"content": c}))


def test_pool_dedups_and_purges_expired() -> None:
    pool = IngressPool()
    a, b = make(1, 1, expiry=1), make(1, 2, expiry=200)
    assert pool.add(a) and not pool.add(a) and pool.add(b)
    assert len(pool) == 2
    assert pool.purge_expired(Time(NOW + 100 * 10**9)) == 1
    assert a.message_id not in pool and b.message_id in pool


def test_selection_respects_limits_dedup_and_fairness() -> None:
    hog = [make(1, i) for i in range(50)]
    others = [make(c, 0) for c in range(2, 6)]
    limits = IngressLimits(max_messages_per_block=8)
    chosen = select_ingress(hog + others, NOW, lambda _mid: False, b"seed", limits=limits)
    assert len(chosen) == 8
    # round-robin: every canister with pending messages gets one before the hog gets a second
    assert {m.canister_id for m in chosen} == {
        Principal.from_canister_index(c) for c in range(1, 6)
    }
    included = {hog[0].message_id}
    again = select_ingress(hog[:2], NOW, included.__contains__, b"seed")
    assert [m.message_id for m in again] == [hog[1].message_id]


@given(
    st.lists(st.tuples(st.integers(1, 4), st.integers(0, 300)), min_size=0, max_size=30),
    st.integers(min_value=500, max_value=5000),
    st.integers(min_value=1, max_value=10),
)
def test_selection_never_exceeds_limits(
    specs: list[tuple[int, int]], max_bytes: int, max_count: int
) -> None:
    messages = [make(c, i, pad) for i, (c, pad) in enumerate(specs)]
    limits = IngressLimits(max_messages_per_block=max_count, max_bytes_per_block=max_bytes)
    chosen = select_ingress(messages, NOW, lambda _mid: False, b"s", limits=limits)
    assert len(chosen) <= max_count
    assert sum(m.size for m in chosen) <= max_bytes
    assert len({m.message_id for m in chosen}) == len(chosen)
    # nothing that fits was left out while there was room for it
    if len(chosen) < max_count:
        used = sum(m.size for m in chosen)
        chosen_ids = {m.message_id for m in chosen}
        assert all(used + m.size > max_bytes for m in messages if m.message_id not in chosen_ids)


def test_envelope_cache_accepts_any_bytes_like_body() -> None:
    cache = EnvelopeCache()
    body = cbor_encode({"content": content(nonce=b"b")})
    assert cache.parse_call(bytearray(body)) == cache.parse_call(memoryview(body))
    envelope, rid = cache.parse_request(bytearray(body))
    assert rid == request_id(content(nonce=b"b")) and envelope["content"]


def test_envelope_cache_is_bounded_in_bytes() -> None:
    bodies = [cbor_encode({"content": content(arg=bytes([n]) * 400)}) for n in range(6)]
    cache = EnvelopeCache(max_bytes=3 * len(bodies[0]))
    for body in bodies:
        cache.parse_call(body)
    misses = cache.misses
    cache.parse_call(bodies[-1])  # among the newest three: kept
    assert cache.misses == misses
    cache.parse_call(bodies[0])  # evicted to stay within the byte budget
    assert cache.misses == misses + 1
    huge = cbor_encode({"content": content(arg=b"x" * 5000)})
    cache.parse_call(huge)
    cache.parse_call(huge)  # larger than the whole budget: never kept
    assert cache.misses == misses + 3

from __future__ import annotations

import pytest

from icp.consensus.crypto import (
    CachingCrypto,
    InsecureFastCrypto,
    RealCrypto,
    VerificationCache,
)
from icp.crypto.errors import CryptoError


def test_real_basic_and_multi_signatures() -> None:
    crypto = RealCrypto()
    sk, pk = crypto.basic_keygen(b"a")
    sig = crypto.sign_basic(sk, b"m")
    assert crypto.verify_basic(pk, b"m", sig)
    assert not crypto.verify_basic(pk, b"x", sig)
    assert not crypto.verify_basic(pk, b"m", b"garbage")
    keys = [crypto.multi_keygen(bytes([i])) for i in range(4)]
    shares = [crypto.sign_multi(k, b"m") for k, _ in keys]
    shares[2] = crypto.sign_multi(keys[2][0], b"other")
    assert crypto.batch_verify([p for _, p in keys], b"m", shares) == [2]
    good = [s for i, s in enumerate(shares) if i != 2]
    pks = [p for i, (_, p) in enumerate(keys) if i != 2]
    assert crypto.verify_multi(pks, b"m", crypto.aggregate(good))
    assert not crypto.verify_multi([p for _, p in keys], b"m", crypto.aggregate(good))


def test_real_threshold_signatures_are_unique() -> None:
    crypto = RealCrypto()
    public, shares = crypto.deal_threshold(b"seed", 4, 2)
    sigs = {s.index: crypto.sign_threshold_share(s, b"m") for s in shares}
    a = crypto.combine_threshold(public, {0: sigs[0], 1: sigs[1]}, b"m")
    b = crypto.combine_threshold(public, {2: sigs[2], 3: sigs[3]}, b"m")
    assert a == b and crypto.verify_threshold(public.group_public_key, b"m", a)


def test_secret_keys_do_not_cross_facades() -> None:
    sk, _ = InsecureFastCrypto().basic_keygen(b"a")
    with pytest.raises(TypeError):
        RealCrypto().sign_basic(sk, b"m")


def test_insecure_fast_crypto_is_labelled_and_checks_logic() -> None:
    crypto = InsecureFastCrypto()
    assert not crypto.is_secure and RealCrypto().is_secure
    public, _ = crypto.deal_threshold(b"s", 4, 2)
    sig = crypto.combine_threshold(public, {0: b"", 1: b""}, b"m")
    assert crypto.verify_threshold(public.group_public_key, b"m", sig)
    with pytest.raises(CryptoError):
        crypto.combine_threshold(public, {0: b""}, b"m")
    sk, pk = crypto.multi_keygen(b"k")
    assert crypto.batch_verify([pk], b"m", [b"\x00" * 48]) == [0]
    assert crypto.batch_verify([pk], b"m", [crypto.sign_multi(sk, b"m")]) == []


def test_caching_crypto_verifies_each_input_once_with_the_same_answer() -> None:
    cache = VerificationCache()
    crypto = CachingCrypto(RealCrypto(), cache)
    keys = [crypto.multi_keygen(bytes([i])) for i in range(3)]
    shares = [crypto.sign_multi(k, b"m") for k, _ in keys]
    shares[1] = b"\x00" * 48
    first = crypto.batch_verify([p for _, p in keys], b"m", shares)
    misses = cache.misses
    second = crypto.batch_verify([p for _, p in keys], b"m", shares)
    assert first == second == [1]
    assert cache.misses == misses and cache.hits >= 3

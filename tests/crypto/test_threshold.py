"""Tests for icp.crypto.threshold: trusted dealing, shares, combination, errors."""

from __future__ import annotations

import itertools

import pytest

from icp.crypto import bls, threshold
from icp.crypto.errors import ThresholdError

MSG = b"random beacon content"


@pytest.fixture(scope="module")
def key() -> tuple[threshold.ThresholdPublicKey, list[threshold.ThresholdSecretShare]]:
    return threshold.deal_trusted(b"genesis", 7, 3)


def test_every_t_subset_combines_to_the_same_valid_signature(
    key: tuple[threshold.ThresholdPublicKey, list[threshold.ThresholdSecretShare]],
) -> None:
    pk, shares = key
    sig_shares = {s.index: threshold.sign_share(s, MSG) for s in shares}
    results = {
        threshold.combine(pk, {i: sig_shares[i] for i in subset})
        for subset in itertools.combinations(range(7), 3)
    }
    assert len(results) == 1
    (sig,) = results
    assert threshold.verify(pk, MSG, sig)
    assert not threshold.verify(pk, b"other", sig)


def test_group_key_is_secret_at_zero(
    key: tuple[threshold.ThresholdPublicKey, list[threshold.ThresholdSecretShare]],
) -> None:
    pk, shares = key
    xs = [1, 2, 3]
    lambdas = threshold.lagrange_coefficients_at_zero(xs)
    secret = sum(lam * shares[x - 1].scalar for lam, x in zip(lambdas, xs, strict=True))
    assert bls.BlsSecretKey(secret % bls.CURVE_ORDER).public_key() == pk.group_public_key


def test_shares_verify_against_their_own_key_share(
    key: tuple[threshold.ThresholdPublicKey, list[threshold.ThresholdSecretShare]],
) -> None:
    pk, shares = key
    s2 = threshold.sign_share(shares[2], MSG)
    assert threshold.verify_share(pk, 2, MSG, s2)
    assert not threshold.verify_share(pk, 3, MSG, s2)
    assert not threshold.verify_share(pk, 7, MSG, s2)
    assert not threshold.verify_share(pk, -1, MSG, s2)


def test_too_few_shares_raises(
    key: tuple[threshold.ThresholdPublicKey, list[threshold.ThresholdSecretShare]],
) -> None:
    pk, shares = key
    two = {s.index: threshold.sign_share(s, MSG) for s in shares[:2]}
    with pytest.raises(ThresholdError, match="need 3"):
        threshold.combine(pk, two)


def test_unknown_signer_is_named(
    key: tuple[threshold.ThresholdPublicKey, list[threshold.ThresholdSecretShare]],
) -> None:
    pk, shares = key
    sigs = {s.index: threshold.sign_share(s, MSG) for s in shares[:3]}
    sigs[9] = sigs[0]
    with pytest.raises(ThresholdError) as info:
        threshold.combine(pk, sigs)
    assert info.value.invalid_signers == (9,)


def test_combine_verified_names_bad_signer_and_can_skip(
    key: tuple[threshold.ThresholdPublicKey, list[threshold.ThresholdSecretShare]],
) -> None:
    pk, shares = key
    sigs = {s.index: threshold.sign_share(s, MSG) for s in shares[:5]}
    sigs[1] = threshold.sign_share(shares[1], b"other")
    # plain combine takes indices 0,1,2 and yields a wrong signature silently
    assert not threshold.verify(pk, MSG, threshold.combine(pk, sigs))
    with pytest.raises(ThresholdError, match=r"signers \[1\]") as info:
        threshold.combine_verified(pk, MSG, sigs)
    assert info.value.invalid_signers == (1,)
    sig = threshold.combine_verified(pk, MSG, sigs, skip_invalid=True)
    assert threshold.verify(pk, MSG, sig)
    del sigs[4], sigs[3]
    with pytest.raises(ThresholdError, match="valid signature shares") as info:
        threshold.combine_verified(pk, MSG, sigs, skip_invalid=True)
    assert info.value.invalid_signers == (1,)


def test_malformed_share_is_named(
    key: tuple[threshold.ThresholdPublicKey, list[threshold.ThresholdSecretShare]],
) -> None:
    pk, shares = key
    sigs = {s.index: threshold.sign_share(s, MSG) for s in shares[:3]}
    sigs[2] = b"\x00" * 48
    with pytest.raises(ThresholdError, match="signer 2"):
        threshold.combine(pk, sigs)


def test_combine_uses_lowest_indices(
    key: tuple[threshold.ThresholdPublicKey, list[threshold.ThresholdSecretShare]],
) -> None:
    pk, shares = key
    sigs = {s.index: threshold.sign_share(s, MSG) for s in shares[:3]}
    sigs[6] = b"garbage"  # never looked at: only the 3 lowest indices are combined
    assert threshold.verify(pk, MSG, threshold.combine(pk, sigs))


def test_deal_parameters_checked() -> None:
    with pytest.raises(ThresholdError):
        threshold.deal_trusted(b"s", 3, 4)
    with pytest.raises(ThresholdError):
        threshold.deal_trusted(b"s", 3, 0)
    with pytest.raises(ThresholdError):
        threshold.lagrange_coefficients_at_zero([1, 1])


def test_one_of_one_is_plain_bls() -> None:
    pk, (share,) = threshold.deal_trusted(b"solo", 1, 1)
    sig = threshold.combine(pk, {0: threshold.sign_share(share, MSG)})
    assert bls.verify(pk.group_public_key, MSG, sig)
    assert pk.to_der().endswith(pk.group_public_key)

"""Tests for icp.crypto.multisig: aggregation, multi-signature verification, batch verify."""

from __future__ import annotations

import pytest

from icp.crypto import bls, multisig
from icp.crypto.errors import InvalidSignatureError

MSG = b"notarization content"


def _committee(n: int) -> tuple[list[bls.BlsSecretKey], list[bytes]]:
    pairs = [bls.keygen(f"node-{i}".encode()) for i in range(n)]
    return [sk for sk, _ in pairs], [pk for _, pk in pairs]


def test_aggregate_verifies_against_signer_set_only() -> None:
    sks, pks = _committee(5)
    sigs = [bls.sign(sk, MSG) for sk in sks[:4]]
    agg = multisig.aggregate(sigs)
    assert multisig.verify_multi(pks[:4], MSG, agg)
    assert not multisig.verify_multi(pks[:3], MSG, agg)
    assert not multisig.verify_multi(pks[1:5], MSG, agg)
    assert not multisig.verify_multi(pks[:4], b"other", agg)
    assert not multisig.verify_multi([], MSG, agg)
    assert not multisig.verify_multi(pks[:4], MSG, b"\x00" * 48)


def test_aggregate_order_independent() -> None:
    sks, _ = _committee(3)
    sigs = [bls.sign(sk, MSG) for sk in sks]
    assert multisig.aggregate(sigs) == multisig.aggregate(sigs[::-1])


def test_aggregate_rejects_bad_input() -> None:
    with pytest.raises(InvalidSignatureError):
        multisig.aggregate([])
    sks, _ = _committee(2)
    with pytest.raises(InvalidSignatureError, match="#1"):
        multisig.aggregate([bls.sign(sks[0], MSG), b"\x01" * 48])


def test_keys_summing_to_identity_are_rejected() -> None:
    _, pk = bls.keygen(b"a")
    neg = bytes((-bls.decode_g2(pk)).compress())
    assert not multisig.verify_multi([pk, neg], MSG, bls.sign(bls.keygen(b"z")[0], MSG))


def test_batch_verify_all_valid() -> None:
    sks, pks = _committee(8)
    sigs = [bls.sign(sk, MSG) for sk in sks]
    assert multisig.batch_verify(pks, MSG, sigs) == []


@pytest.mark.parametrize("bad", [[0], [7], [2, 5], [0, 1, 2, 3, 4, 5, 6, 7]])
def test_batch_verify_finds_exactly_the_invalid_shares(bad: list[int]) -> None:
    sks, pks = _committee(8)
    sigs = [bls.sign(sk, MSG) for sk in sks]
    for i in bad:
        sigs[i] = bls.sign(sks[i], b"wrong message")
    assert multisig.batch_verify(pks, MSG, sigs) == bad


def test_batch_verify_cancelling_errors_are_caught() -> None:
    # Shares σ0 + D and σ1 − D sum to a valid aggregate; the random combination catches it.
    sks, pks = _committee(2)
    s0 = bls.decode_g1(bls.sign(sks[0], MSG))
    s1 = bls.decode_g1(bls.sign(sks[1], MSG))
    d = bls.hash_to_g1(b"offset")
    forged = [bytes((s0 + d).compress()), bytes((s1 + (-d)).compress())]
    assert multisig.verify_multi(pks, MSG, multisig.aggregate(forged))
    assert multisig.batch_verify(pks, MSG, forged) == [0, 1]


def test_batch_verify_malformed_and_length_mismatch() -> None:
    sks, pks = _committee(3)
    sigs = [bls.sign(sk, MSG) for sk in sks]
    sigs[1] = b"garbage"
    assert multisig.batch_verify(pks, MSG, sigs) == [1]
    with pytest.raises(ValueError):
        multisig.batch_verify(pks, MSG, sigs[:2])

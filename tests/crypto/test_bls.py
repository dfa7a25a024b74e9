"""Tests for icp.crypto.bls: KeyGen, sign/verify, point validation, DER, PoP."""

from __future__ import annotations

import pytest

from icp.crypto import bls
from icp.crypto.errors import InvalidKeyError, InvalidSignatureError

P = int(
    "1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab",
    16,
)


def _g1_point_off_subgroup() -> bytes:
    """Return a compressed point on y² = x³ + 4 over Fp that is not in the r-order subgroup."""
    x = 5
    while True:
        rhs = (x**3 + 4) % P
        y = pow(rhs, (P + 1) // 4, P)  # p ≡ 3 (mod 4)
        if y * y % P == rhs:
            data = bytearray(x.to_bytes(48, "big"))
            data[0] |= 0x80
            return bytes(data)
        x += 1


def test_ietf_keygen_matches_eip2333_vector() -> None:
    # EIP-2333 test case 0: derive_master_SK(seed) is draft-04+ KeyGen (HKDF_mod_r).
    seed = bytes.fromhex(
        "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"
    )
    assert (
        bls.keygen_scalar(seed)
        == 6083874454709270928345386274498605044986640685124978867557563392430687146096
    )


def test_hash_to_g1_matches_rfc9380_vector() -> None:
    # RFC 9380 appendix J.9.1, msg = "" (same suite as the IC, test DST).
    point = bls.hash_to_g1(b"", b"QUUX-V01-CS02-with-BLS12381G1_XMD:SHA-256_SSWU_RO_").compress()
    x = bytes([point[0] & 0x1F]) + point[1:]
    assert x.hex() == (
        "052926add2207b76ca4fa57a8734416c8dc95e24501772c814278700eed6d1e4e8cf62d9c09db0fac349612b759e79a1"
    )


def test_keygen_is_deterministic_and_seed_dependent() -> None:
    sk1, pk1 = bls.keygen(b"seed-1")
    sk2, pk2 = bls.keygen(b"seed-1")
    _, pk3 = bls.keygen(b"seed-2")
    assert sk1 == sk2 and pk1 == pk2 and pk1 != pk3
    assert len(pk1) == 96


def test_secret_key_repr_hides_scalar() -> None:
    sk, _ = bls.keygen(b"secret")
    assert str(sk.scalar) not in repr(sk)
    assert hex(sk.scalar)[2:] not in repr(sk)


def test_sign_verify_roundtrip_and_failures() -> None:
    sk, pk = bls.keygen(b"k")
    sig = bls.sign(sk, b"message")
    assert len(sig) == 48
    assert bls.verify(pk, b"message", sig)
    assert not bls.verify(pk, b"other", sig)
    _, other_pk = bls.keygen(b"other")
    assert not bls.verify(other_pk, b"message", sig)
    flipped = bytes([sig[0]]) + bytes([sig[1] ^ 1]) + sig[2:]
    assert not bls.verify(pk, b"message", flipped)


@pytest.mark.parametrize(
    "bad_sig",
    [b"", b"\x00" * 48, b"\xc0" + bytes(47), b"\x01" * 47, b"\xff" * 48],
    ids=["empty", "zeros", "identity", "short", "ones"],
)
def test_verify_rejects_malformed_signatures(bad_sig: bytes) -> None:
    _, pk = bls.keygen(b"k")
    assert bls.verify(pk, b"m", bad_sig) is False


def test_identity_key_and_signature_are_rejected() -> None:
    # With pk = identity and sig = identity the pairing equation holds trivially.
    identity_sig = b"\xc0" + bytes(47)
    identity_pk = b"\xc0" + bytes(95)
    assert bls.pairings_equal(
        bls.g1_identity(), bls.g2_generator(), bls.hash_to_g1(b"m"), bls.g2_identity()
    )
    assert not bls.verify(identity_pk, b"m", identity_sig)
    with pytest.raises(InvalidKeyError, match="identity"):
        bls.decode_g2(identity_pk)
    with pytest.raises(InvalidSignatureError, match="identity"):
        bls.decode_g1(identity_sig)


def test_point_outside_subgroup_is_rejected() -> None:
    data = _g1_point_off_subgroup()
    with pytest.raises(InvalidSignatureError, match="NOT_IN_GROUP"):
        bls.decode_g1(data)
    _, pk = bls.keygen(b"k")
    assert not bls.verify(pk, b"m", data)


def test_point_off_curve_is_rejected() -> None:
    x = 5
    while pow((x**3 + 4) % P, (P - 1) // 2, P) == 1:  # find x with no y on the curve
        x += 1
    data = bytearray(x.to_bytes(48, "big"))
    data[0] |= 0x80
    with pytest.raises(InvalidSignatureError):
        bls.decode_g1(bytes(data))


def test_der_roundtrip_and_mainnet_root_key() -> None:
    root = bytes.fromhex(
        "308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c05030201036100814c0e6ec71fab"
        "583b08bd81373c255c3c371b2e84863c98a4f1e08b74235d14fb5d9c0cd546d9685f913a0c0b2cc5341583bf"
        "4b4392e467db96d65b9bb4cb717112f8472e0d5a4d14505ffd7484b01291091c5f87b98883463f98091a0baaae"
    )
    pk = bls.public_key_from_der(root)
    assert len(pk) == 96 and bls.public_key_to_der(pk) == root
    with pytest.raises(InvalidKeyError):
        bls.public_key_from_der(root[:-1])
    with pytest.raises(InvalidKeyError):
        bls.public_key_from_der(b"\x00" + root[1:])
    with pytest.raises(InvalidKeyError):
        bls.public_key_to_der(pk[:-1])


def test_proof_of_possession() -> None:
    sk, pk = bls.keygen(b"pop")
    proof = bls.prove_possession(sk)
    assert bls.verify_possession(pk, proof)
    _, other = bls.keygen(b"other")
    assert not bls.verify_possession(other, proof)
    # A PoP is not a signature on the key under the signing DST (domain separation).
    assert not bls.verify(pk, pk, proof)


def test_secret_key_range_is_checked() -> None:
    with pytest.raises(InvalidKeyError):
        bls.BlsSecretKey(0)
    with pytest.raises(InvalidKeyError):
        bls.BlsSecretKey(bls.CURVE_ORDER)

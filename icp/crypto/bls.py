"""BLS12-381 signatures in the IC's "minimal-signature-size" variant.

Theory of operation: a secret key is a scalar ``x`` mod the group order ``r``; the public
key is ``x·g2`` in G2 (96-byte compressed) and a signature on ``m`` is ``x·H(m)`` in G1
(48-byte compressed), where ``H`` is the IETF hash-to-curve suite whose DST is
``BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_``.  Verification is the pairing equation
``e(σ, g2) == e(H(m), pk)``.  All curve and pairing arithmetic is done by ``pyblst``
(the ``blst`` library); this module only validates encodings and wires the calls.

Points that fail to decode, lie off the curve or outside the prime-order subgroup are
rejected by ``blst``'s ``uncompress``; the identity point is rejected here, since it would
make every signature verify under the identity key.

Spec: interface spec §"Certification" (BLS, min-sig, DST, DER OIDs);
``shared/spec/interface.md`` §2.2; ``shared/spec/protocol.md`` §2.1;
IETF draft-irtf-cfrg-bls-signature-05 §2.3 (KeyGen), §3.1 (basic scheme).
"""

from __future__ import annotations

import functools
import hashlib
from typing import Final, Protocol, cast

import attrs
import pyblst
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from icp.crypto.errors import InvalidKeyError, InvalidSignatureError
from icp.crypto.hashing import hash_with_domain

DST_SIG: Final = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_"
"""Hash-to-G1 domain separation tag of the IC's certificates and threshold signatures."""

DST_POP: Final = b"BLS_POP_BLS12381G1_XMD:SHA-256_SSWU_RO_POP_"
"""Proof-of-possession DST of the IETF PoP ciphersuite (min-sig)."""

CURVE_ORDER: Final = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
"""``r``: the prime order of G1, G2 and GT; scalars live in Z/rZ."""

SIGNATURE_SIZE: Final = 48
PUBLIC_KEY_SIZE: Final = 96

DER_PREFIX: Final = bytes.fromhex(
    "308182301d060d2b0601040182dc7c0503010201060c2b0601040182dc7c05030201036100"
)
"""SubjectPublicKeyInfo prefix (OIDs 1.3.6.1.4.1.44668.5.3.1.2.1 / .5.3.2.1) of IC BLS keys."""

G1_GENERATOR: Final = bytes.fromhex(
    "97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"
)
G2_GENERATOR: Final = bytes.fromhex(
    "93e02b6052719f607dacd3a088274f65596bd0d09920b61ab5da61bbdc7f5049334cf11213945d57e5ac7d055d042b7e"
    "024aa2b2f08f0a91260805272dc51051c6e47ad4fa403b02b4510b647ae3d1770bac0326a805bbefd48056c8c121bdb8"
)
_IDENTITY_G1: Final = b"\xc0" + bytes(47)
_IDENTITY_G2: Final = b"\xc0" + bytes(95)
_KEYGEN_SALT: Final = b"BLS-SIG-KEYGEN-SALT-"
_SHORT_SEED_DOMAIN: Final = b"icp-bls-keygen-seed"


class G1Point(Protocol):
    """Typed view of ``pyblst.BlstP1Element`` (a point of G1; immutable)."""

    def __add__(self, other: G1Point, /) -> G1Point: ...
    def __neg__(self) -> G1Point: ...
    def __eq__(self, other: object, /) -> bool: ...
    def scalar_mul(self, scalar: int, /) -> G1Point: ...
    def compress(self) -> bytes: ...


class G2Point(Protocol):
    """Typed view of ``pyblst.BlstP2Element`` (a point of G2; immutable)."""

    def __add__(self, other: G2Point, /) -> G2Point: ...
    def __neg__(self) -> G2Point: ...
    def __eq__(self, other: object, /) -> bool: ...
    def scalar_mul(self, scalar: int, /) -> G2Point: ...
    def compress(self) -> bytes: ...


def g1_identity() -> G1Point:
    """Return the identity (point at infinity) of G1."""
    return cast(G1Point, pyblst.BlstP1Element())


def g2_identity() -> G2Point:
    """Return the identity (point at infinity) of G2."""
    return cast(G2Point, pyblst.BlstP2Element())


def _uncompress_g1(data: bytes) -> G1Point:
    return cast(G1Point, pyblst.BlstP1Element.uncompress(data))


def _uncompress_g2(data: bytes) -> G2Point:
    return cast(G2Point, pyblst.BlstP2Element.uncompress(data))


def pairings_equal(a: G1Point, b: G2Point, c: G1Point, d: G2Point) -> bool:
    """Return whether ``e(a, b) == e(c, d)`` (two Miller loops, one final exponentiation)."""
    return bool(pyblst.final_verify(pyblst.miller_loop(a, b), pyblst.miller_loop(c, d)))


@attrs.frozen(slots=True)
class BlsSecretKey:
    """A BLS12-381 secret scalar (0 < scalar < r); its repr never shows the scalar."""

    scalar: int = attrs.field(repr=False)

    @scalar.validator
    def _check(self, _attribute: object, value: int) -> None:
        if not 0 < value < CURVE_ORDER:
            raise InvalidKeyError("a BLS secret key is a scalar in [1, r)")

    def public_key(self) -> bytes:
        """Return the 96-byte compressed G2 public key ``scalar·g2``."""
        return bytes(g2_generator().scalar_mul(self.scalar).compress())


@functools.cache
def g1_generator() -> G1Point:
    """Return the standard generator of G1 (decoded once; points are immutable)."""
    return _uncompress_g1(G1_GENERATOR)


@functools.cache
def g2_generator() -> G2Point:
    """Return the standard generator of G2 (decoded once; points are immutable)."""
    return _uncompress_g2(G2_GENERATOR)


def decode_g1(data: bytes) -> G1Point:
    """Decode a 48-byte compressed G1 point; reject bad encodings, non-subgroup and identity.

    Raises ``InvalidSignatureError`` (G1 points are signatures in min-sig).
    """
    if len(data) != SIGNATURE_SIZE:
        raise InvalidSignatureError(f"a G1 point is {SIGNATURE_SIZE} bytes, got {len(data)}")
    if bytes(data) == _IDENTITY_G1:
        raise InvalidSignatureError("the G1 identity point is not a valid signature")
    try:
        return _uncompress_g1(bytes(data))
    except ValueError as exc:
        raise InvalidSignatureError(f"invalid G1 point: {exc}") from None


def decode_g2(data: bytes) -> G2Point:
    """Decode a 96-byte compressed G2 point; reject bad encodings, non-subgroup and identity.

    Raises ``InvalidKeyError`` (G2 points are public keys in min-sig).
    """
    if len(data) != PUBLIC_KEY_SIZE:
        raise InvalidKeyError(f"a G2 point is {PUBLIC_KEY_SIZE} bytes, got {len(data)}")
    if bytes(data) == _IDENTITY_G2:
        raise InvalidKeyError("the G2 identity point is not a valid public key")
    try:
        return _uncompress_g2(bytes(data))
    except ValueError as exc:
        raise InvalidKeyError(f"invalid G2 point: {exc}") from None


def hash_to_g1(message: bytes, dst: bytes = DST_SIG) -> G1Point:
    """Hash ``message`` to G1 with the IETF SSWU random-oracle suite under ``dst``."""
    return cast(G1Point, pyblst.BlstP1Element.hash_to_group(bytes(message), dst))


def keygen_scalar(ikm: bytes, key_info: bytes = b"") -> int:
    """Derive a secret scalar from ``ikm`` (≥ 32 bytes) with the IETF BLS KeyGen (HKDF-SHA256).

    Spec: draft-irtf-cfrg-bls-signature-05 §2.3.
    """
    if len(ikm) < 32:
        raise InvalidKeyError("KeyGen needs at least 32 bytes of input keying material")
    salt = _KEYGEN_SALT
    while True:
        salt = hashlib.sha256(salt).digest()
        okm = HKDF(
            algorithm=hashes.SHA256(), length=48, salt=salt, info=key_info + (48).to_bytes(2, "big")
        ).derive(ikm + b"\x00")
        scalar = int.from_bytes(okm, "big") % CURVE_ORDER
        if scalar != 0:
            return scalar


def keygen(seed: bytes) -> tuple[BlsSecretKey, bytes]:
    """Derive a key pair deterministically from ``seed``; return (secret key, 96-byte pk).

    Seeds of 32 bytes or more are used as IETF KeyGen input keying material directly;
    shorter seeds (convenient in tests) are first hashed with a domain separator, so
    they are only as strong as the seed's own entropy.
    Spec: draft-irtf-cfrg-bls-signature-05 §2.3 (KeyGen).
    """
    ikm = bytes(seed) if len(seed) >= 32 else hash_with_domain(_SHORT_SEED_DOMAIN, bytes(seed))
    sk = BlsSecretKey(keygen_scalar(ikm))
    return sk, sk.public_key()


def sign(sk: BlsSecretKey, message: bytes) -> bytes:
    """Return the 48-byte min-sig signature ``sk·H(message)``.

    Spec: interface spec §"Certification" (BLS signature scheme).
    """
    return bytes(hash_to_g1(message).scalar_mul(sk.scalar).compress())


def pairing_check(sig: G1Point, pk: G2Point, hashed: G1Point) -> bool:
    """Return whether ``e(sig, g2) == e(hashed, pk)`` (the BLS verification equation)."""
    return pairings_equal(sig, g2_generator(), hashed, pk)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is a valid signature on ``message`` under ``public_key``.

    Malformed, identity, off-curve and non-subgroup inputs give ``False``, never an error.
    Spec: interface spec §"Certification"; IETF BLS §3.1 CoreVerify.
    """
    try:
        sig = decode_g1(signature)
        pk = decode_g2(public_key)
    except (InvalidKeyError, InvalidSignatureError):
        return False
    return pairing_check(sig, pk, hash_to_g1(message))


def public_key_to_der(pk: bytes) -> bytes:
    """Wrap a 96-byte public key in the IC's DER SubjectPublicKeyInfo (133 bytes).

    Spec: interface spec §"Certification" (DER encoding of BLS keys).
    """
    if len(pk) != PUBLIC_KEY_SIZE:
        raise InvalidKeyError(f"a BLS public key is {PUBLIC_KEY_SIZE} bytes, got {len(pk)}")
    return DER_PREFIX + bytes(pk)


def public_key_from_der(der: bytes) -> bytes:
    """Return the 96-byte key inside an IC BLS DER SubjectPublicKeyInfo; check the OID prefix.

    Raises ``InvalidKeyError`` if the prefix, length or point is wrong.
    Spec: interface spec §"Certification" (DER encoding of BLS keys).
    """
    der = bytes(der)
    if len(der) != len(DER_PREFIX) + PUBLIC_KEY_SIZE or not der.startswith(DER_PREFIX):
        raise InvalidKeyError("not a DER-encoded IC BLS12-381 G2 public key")
    pk = der[len(DER_PREFIX) :]
    decode_g2(pk)
    return pk


def prove_possession(sk: BlsSecretKey) -> bytes:
    """Return a proof of possession: a signature on the public key under the PoP DST.

    The IC registers each node's committee-signing key with such a proof, which stops
    rogue-key attacks on multi-signatures.
    Spec: IETF BLS §3.3.2 PopProve; ``shared/spec/protocol.md`` §2.1 (multi-signatures).
    """
    return bytes(hash_to_g1(sk.public_key(), DST_POP).scalar_mul(sk.scalar).compress())


def verify_possession(public_key: bytes, proof: bytes) -> bool:
    """Return whether ``proof`` is a valid proof of possession for ``public_key``.

    Spec: IETF BLS §3.3.3 PopVerify.
    """
    try:
        sig = decode_g1(proof)
        pk = decode_g2(public_key)
    except (InvalidKeyError, InvalidSignatureError):
        return False
    return pairing_check(sig, pk, hash_to_g1(bytes(public_key), DST_POP))

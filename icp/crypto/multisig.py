"""BLS multi-signatures: notarization and finalization signatures of a signer set.

Theory of operation: each committee member signs the *same* message with its own node
BLS key (``icp.crypto.bls.sign``).  The multi-signature is the sum of the individual G1
signatures and verifies against the sum of the signers' G2 public keys, because
``Σ xᵢ·H(m) = (Σ xᵢ)·H(m)``.  The artifact that carries it lists its signers.

Batch verification of many shares on one message uses a random linear combination:
``e(Σ cᵢ·σᵢ, g2) == e(H(m), Σ cᵢ·pkᵢ)`` with 128-bit coefficients ``cᵢ`` derived by
hashing every input (Fiat–Shamir, so the check is deterministic and needs no RNG, yet
a forger cannot pick shares whose errors cancel).  That is one pairing check for the
batch; only when it fails do we bisect to find the invalid shares.

Where we differ from the IC: the IC's multi-signature crate hashes with the IETF
proof-of-possession ciphersuite DST (``..._POP_``) and registers every key with a proof
of possession; here individual shares are plain ``bls.sign`` signatures (``..._NUL_``
DST, the same as threshold signatures) so one signing path serves both, and rogue-key
protection is available through ``bls.prove_possession`` / ``bls.verify_possession`` at
key registration time.

Spec: ``shared/spec/protocol.md`` §2.1 (multi-signatures for notarization/finalization);
Boneh–Drijvers–Neven, "Compact multi-signatures for smaller blockchains" (2018).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from icp.crypto import bls
from icp.crypto.errors import InvalidKeyError, InvalidSignatureError
from icp.crypto.hashing import hash_with_domain

_BATCH_DOMAIN: Final = b"icp-bls-batch-verify"


def aggregate(signatures: Sequence[bytes]) -> bytes:
    """Return the sum of the given 48-byte signatures (the multi-signature).

    Raises ``InvalidSignatureError`` for an empty list or a malformed signature.
    Spec: ``shared/spec/protocol.md`` §2.1 (aggregation = sum of G1 points).
    """
    if not signatures:
        raise InvalidSignatureError("cannot aggregate an empty list of signatures")
    total = bls.g1_identity()
    for position, sig in enumerate(signatures):
        try:
            total = total + bls.decode_g1(sig)
        except InvalidSignatureError as exc:
            raise InvalidSignatureError(f"signature #{position}: {exc}") from None
    return bytes(total.compress())


def aggregate_public_keys(public_keys: Sequence[bytes]) -> bls.G2Point:
    """Return the sum of the given public keys as a G2 point.

    Raises ``InvalidKeyError`` for an empty list or a malformed key.
    """
    if not public_keys:
        raise InvalidKeyError("cannot aggregate an empty list of public keys")
    total = bls.g2_identity()
    for pk in public_keys:
        total = total + bls.decode_g2(pk)
    return total


def verify_multi(public_keys: Sequence[bytes], message: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is a multi-signature on ``message`` by all ``public_keys``.

    Malformed inputs and an empty signer set give ``False``.
    Spec: ``shared/spec/protocol.md`` §2.1.
    """
    try:
        sig = bls.decode_g1(signature)
        apk = aggregate_public_keys(public_keys)
    except (InvalidKeyError, InvalidSignatureError):
        return False
    if apk == bls.g2_identity():  # keys summing to the identity would accept anything
        return False
    return bls.pairing_check(sig, apk, bls.hash_to_g1(message))


def _coefficients(message: bytes, keys: Sequence[bytes], sigs: Sequence[bytes]) -> list[int]:
    seed = hash_with_domain(_BATCH_DOMAIN, message, *keys, *sigs)
    return [
        int.from_bytes(hash_with_domain(_BATCH_DOMAIN, seed, i.to_bytes(4, "big"))[:16], "big") | 1
        for i in range(len(sigs))
    ]


def batch_check(
    points: Sequence[tuple[bls.G2Point, bls.G1Point]], hashed: bls.G1Point, coefficients: list[int]
) -> bool:
    """Return whether ``e(Σ cᵢσᵢ, g2) == e(H(m), Σ cᵢpkᵢ)`` for (pkᵢ, σᵢ) in ``points``."""
    sig_sum = bls.g1_identity()
    pk_sum = bls.g2_identity()
    for (pk, sig), c in zip(points, coefficients, strict=True):
        sig_sum = sig_sum + sig.scalar_mul(c)
        pk_sum = pk_sum + pk.scalar_mul(c)
    return bls.pairings_equal(sig_sum, bls.g2_generator(), hashed, pk_sum)


def find_invalid(
    points: Sequence[tuple[bls.G2Point, bls.G1Point]], hashed: bls.G1Point, coefficients: list[int]
) -> list[int]:
    """Return positions in ``points`` whose share fails, bisecting batches that fail.

    One pairing check when all are valid; about 2·k·log(n) checks for k invalid shares.
    """
    if not points:
        return []
    if batch_check(points, hashed, coefficients):
        return []
    if len(points) == 1:
        return [0]
    mid = len(points) // 2
    left = find_invalid(points[:mid], hashed, coefficients[:mid])
    right = find_invalid(points[mid:], hashed, coefficients[mid:])
    return left + [mid + i for i in right]


def batch_verify(
    public_keys: Sequence[bytes], message: bytes, signatures: Sequence[bytes]
) -> list[int]:
    """Verify many signature shares on one message; return the indices of INVALID shares.

    ``signatures[i]`` is checked against ``public_keys[i]``.  Malformed keys or
    signatures count as invalid.  All valid: one pairing check.
    Spec: ``shared/spec/protocol.md`` §2.1; batch verification by random linear
    combination (Bellare–Garay–Rabin small-exponent test).
    """
    if len(public_keys) != len(signatures):
        raise ValueError("batch_verify needs one public key per signature")
    invalid: list[int] = []
    decoded: list[tuple[bls.G2Point, bls.G1Point]] = []
    positions: list[int] = []
    for i, (pk, sig) in enumerate(zip(public_keys, signatures, strict=True)):
        try:
            decoded.append((bls.decode_g2(pk), bls.decode_g1(sig)))
            positions.append(i)
        except (InvalidKeyError, InvalidSignatureError):
            invalid.append(i)
    coefficients = _coefficients(
        message,
        [bytes(public_keys[i]) for i in positions],
        [bytes(signatures[i]) for i in positions],
    )
    bad = find_invalid(decoded, bls.hash_to_g1(message), coefficients)
    invalid.extend(positions[j] for j in bad)
    return sorted(invalid)

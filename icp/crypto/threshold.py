"""t-of-n threshold BLS signatures (random beacon, random tape, CUPs, state certification).

Theory of operation: a secret polynomial ``f`` of degree ``t-1`` over Z/rZ is shared so
that node ``i`` (0-based) holds ``f(i+1)``; the group public key is ``f(0)·g2`` and node
``i``'s public key share is ``f(i+1)·g2``.  A signature share is a plain BLS signature
with the secret share; any ``t`` shares combine, by Lagrange interpolation at 0 in the
exponent, into ``f(0)·H(m)`` — the unique group signature, whichever shares were used.
Interpolation and polynomial evaluation are the only arithmetic done here (mod r);
everything on the curve is done by ``pyblst``.

Keys come from a trusted dealer (``deal_trusted``, for tests and genesis) or from the
NIDKG (``icp.crypto.nidkg``), which produces the same types.

Spec: ``shared/spec/protocol.md`` §2.1 (threshold BLS: shares verify against the
commitment evaluated at index + 1; combination by Lagrange interpolation); IC interface
spec §"Certification" (min-sig BLS).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from icp.crypto import bls, multisig
from icp.crypto.errors import InvalidKeyError, InvalidSignatureError, ThresholdError
from icp.crypto.hashing import hash_with_domain

R: Final = bls.CURVE_ORDER
_DEAL_DOMAIN: Final = b"icp-threshold-trusted-deal"


@attrs.frozen(slots=True)
class ThresholdPublicKey:
    """The public side of a threshold key: group key, one key share per node, threshold."""

    group_public_key: bytes  # 96-byte G2 point f(0)·g2
    public_key_shares: tuple[bytes, ...]  # index i = node i: f(i+1)·g2
    threshold: int = attrs.field()  # number of shares needed to sign

    @threshold.validator
    def _check(self, _attribute: object, value: int) -> None:
        if not 1 <= value <= len(self.public_key_shares):
            raise ThresholdError(
                f"threshold {value} must be in [1, {len(self.public_key_shares)}] (number of nodes)"
            )

    @property
    def n(self) -> int:
        """Return the number of nodes holding shares."""
        return len(self.public_key_shares)

    def to_der(self) -> bytes:
        """Return the group public key as IC DER (the subnet's public key)."""
        return bls.public_key_to_der(self.group_public_key)


@attrs.frozen(slots=True)
class ThresholdSecretShare:
    """Node ``index``'s secret share ``f(index+1)``; its repr never shows the scalar."""

    index: int  # node index, 0-based; evaluation point index + 1
    scalar: int = attrs.field(repr=False)

    @scalar.validator
    def _check(self, _attribute: object, value: int) -> None:
        if not 0 <= value < R:
            raise ThresholdError("a secret share is a scalar in [0, r)")


def evaluate_polynomial(coefficients: Sequence[int], x: int) -> int:
    """Return ``Σ coefficients[k]·x^k mod r`` (Horner's rule)."""
    acc = 0
    for c in reversed(coefficients):
        acc = (acc * x + c) % R
    return acc


def lagrange_coefficients_at_zero(xs: Sequence[int]) -> list[int]:
    """Return λⱼ = Πₘ≠ⱼ xₘ/(xₘ − xⱼ) mod r for distinct nonzero evaluation points ``xs``.

    Spec: Shamir secret sharing; ``shared/spec/protocol.md`` §2.1 and §3.1 (resharing).
    """
    if len(set(xs)) != len(xs) or any(x % R == 0 for x in xs):
        raise ThresholdError("Lagrange interpolation needs distinct nonzero points")
    out = []
    for j, xj in enumerate(xs):
        num, den = 1, 1
        for m, xm in enumerate(xs):
            if m != j:
                num = num * xm % R
                den = den * (xm - xj) % R
        out.append(num * pow(den, -1, R) % R)
    return out


def public_key_from_coefficients(
    commitments: Sequence[bls.G2Point], n: int, threshold: int
) -> ThresholdPublicKey:
    """Build a ``ThresholdPublicKey`` from G2 commitments Aₖ = aₖ·g2 to a polynomial.

    Node i's key share is Σₖ (i+1)^k·Aₖ.
    """
    shares = tuple(bytes(evaluate_commitment(commitments, i + 1).compress()) for i in range(n))
    return ThresholdPublicKey(bytes(commitments[0].compress()), shares, threshold)


def evaluate_commitment(commitments: Sequence[bls.G2Point], x: int) -> bls.G2Point:
    """Return Σₖ x^k·Aₖ: the public image f(x)·g2 of the committed polynomial."""
    acc = bls.g2_identity()
    power = 1
    for a in commitments:
        acc = acc + a.scalar_mul(power)
        power = power * x % R
    return acc


def deal_trusted(
    seed: bytes, n: int, t: int
) -> tuple[ThresholdPublicKey, list[ThresholdSecretShare]]:
    """Deal a t-of-n threshold key from ``seed`` as a trusted dealer (tests, genesis).

    The polynomial coefficients are derived from ``seed`` with SHA-512 (512 bits mod r).
    Spec: ``shared/spec/protocol.md`` §2.1; on the real IC keys come only from NIDKG.
    """
    if not 1 <= t <= n:
        raise ThresholdError(f"need 1 <= t <= n, got t={t}, n={n}")
    coefficients = [_derive_scalar(seed, k) for k in range(t)]
    g2 = bls.g2_generator()
    commitments = [g2.scalar_mul(a) for a in coefficients]
    pk = public_key_from_coefficients(commitments, n, t)
    shares = [ThresholdSecretShare(i, evaluate_polynomial(coefficients, i + 1)) for i in range(n)]
    return pk, shares


def _derive_scalar(seed: bytes, k: int) -> int:
    digest = hashlib.sha512(hash_with_domain(_DEAL_DOMAIN, seed, k.to_bytes(4, "big"))).digest()
    scalar = int.from_bytes(digest, "big") % R
    return scalar or 1


def sign_share(share: ThresholdSecretShare, message: bytes) -> bytes:
    """Return node ``share.index``'s 48-byte signature share on ``message``."""
    return bytes(bls.hash_to_g1(message).scalar_mul(share.scalar).compress())


def verify_share(
    pk: ThresholdPublicKey, index: int, message: bytes, signature_share: bytes
) -> bool:
    """Return whether ``signature_share`` is node ``index``'s valid share on ``message``.

    Spec: ``shared/spec/protocol.md`` §2.1 (shares verify against per-node key shares).
    """
    if not 0 <= index < pk.n:
        return False
    return bls.verify(pk.public_key_shares[index], message, signature_share)


def _chosen(pk: ThresholdPublicKey, shares: Mapping[int, bytes]) -> list[int]:
    for index in shares:
        if not 0 <= index < pk.n:
            raise ThresholdError(f"signer {index} is not a node of this key (n={pk.n})", (index,))
    if len(shares) < pk.threshold:
        raise ThresholdError(
            f"need {pk.threshold} signature shares, got {len(shares)} (signers {sorted(shares)})"
        )
    return sorted(shares)[: pk.threshold]


def combine(pk: ThresholdPublicKey, shares: Mapping[int, bytes]) -> bytes:
    """Combine signature shares (node index → share) into the group signature.

    Uses exactly ``pk.threshold`` shares, the lowest indices.  Does not verify shares
    (see ``combine_verified``); a malformed share raises ``ThresholdError`` naming it.
    Raises ``ThresholdError`` if fewer than ``pk.threshold`` shares are given.
    Spec: ``shared/spec/protocol.md`` §2.1 (Lagrange interpolation in the exponent).
    """
    chosen = _chosen(pk, shares)
    lambdas = lagrange_coefficients_at_zero([i + 1 for i in chosen])
    total = bls.g1_identity()
    for index, lam in zip(chosen, lambdas, strict=True):
        try:
            point = bls.decode_g1(shares[index])
        except InvalidSignatureError as exc:
            raise ThresholdError(f"signature share of signer {index}: {exc}", (index,)) from None
        total = total + point.scalar_mul(lam)
    return bytes(total.compress())


def find_invalid_shares(
    pk: ThresholdPublicKey, message: bytes, shares: Mapping[int, bytes]
) -> list[int]:
    """Return the signers whose shares are invalid (one pairing check if all are valid)."""
    unknown = [i for i in shares if not 0 <= i < pk.n]
    known = sorted(i for i in shares if 0 <= i < pk.n)
    bad = multisig.batch_verify(
        [pk.public_key_shares[i] for i in known], message, [shares[i] for i in known]
    )
    return sorted(unknown + [known[j] for j in bad])


def combine_verified(
    pk: ThresholdPublicKey,
    message: bytes,
    shares: Mapping[int, bytes],
    *,
    skip_invalid: bool = False,
) -> bytes:
    """Verify the shares (batched), then combine them into the group signature.

    With ``skip_invalid=False`` any invalid share raises ``ThresholdError`` whose
    ``invalid_signers`` names the bad signers; with ``skip_invalid=True`` they are
    dropped and the rest are combined if at least ``pk.threshold`` remain.
    Spec: ``shared/spec/protocol.md`` §2.1.
    """
    bad = find_invalid_shares(pk, message, shares)
    if bad and not skip_invalid:
        raise ThresholdError(f"invalid signature shares from signers {bad}", tuple(bad))
    good = {i: s for i, s in shares.items() if i not in bad}
    if len(good) < pk.threshold:
        raise ThresholdError(
            f"need {pk.threshold} valid signature shares, got {len(good)}"
            + (f" (invalid: signers {bad})" if bad else ""),
            tuple(bad),
        )
    return combine(pk, good)


def verify(pk: ThresholdPublicKey, message: bytes, signature: bytes) -> bool:
    """Return whether ``signature`` is the group signature on ``message``.

    Spec: IC interface spec §"Certification" (verification against the subnet key).
    """
    return bls.verify(pk.group_public_key, message, signature)


def check_public_key(pk: ThresholdPublicKey) -> None:
    """Raise ``InvalidKeyError`` unless every key in ``pk`` is a valid G2 point."""
    bls.decode_g2(pk.group_public_key)
    for i, share in enumerate(pk.public_key_shares):
        try:
            bls.decode_g2(share)
        except InvalidKeyError as exc:
            raise InvalidKeyError(f"public key share of node {i}: {exc}") from None

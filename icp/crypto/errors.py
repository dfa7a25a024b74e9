"""Typed errors raised by ``icp.crypto``.

Every error carries a human-readable reason; callers branch on the class.
Spec: STYLE.md §6 (typed errors); interface spec §"Certification" (certificate
verification failures are reported with a reason).
"""

from __future__ import annotations


class CryptoError(ValueError):
    """Base class of every error raised by ``icp.crypto`` on bad input or a failed check."""


class InvalidKeyError(CryptoError):
    """A public or secret key is malformed, off the curve, outside the subgroup or the identity."""


class InvalidSignatureError(CryptoError):
    """A signature is malformed or does not verify."""


class ThresholdError(CryptoError):
    """A threshold operation failed: too few shares, an unknown signer or an invalid share.

    ``invalid_signers`` lists the node indices whose shares were found invalid (empty when
    the failure is not attributable to a signer, e.g. too few shares).
    """

    def __init__(self, message: str, invalid_signers: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.invalid_signers = invalid_signers


class NidkgError(CryptoError):
    """A NIDKG dealing or transcript is invalid.

    ``dealer`` names the dealer whose dealing was rejected (``None`` if not attributable).
    """

    def __init__(self, message: str, dealer: int | None = None) -> None:
        super().__init__(message)
        self.dealer = dealer


class HashTreeError(CryptoError):
    """A hash tree is malformed (bad CBOR, bad node shape, unsorted labels)."""


class CertificateError(CryptoError):
    """A certificate failed to decode or verify; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthenticationError(CryptoError):
    """A request signature, sender key or delegation chain failed to authenticate."""

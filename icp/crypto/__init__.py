"""icp.crypto: chain-key cryptography as thin typed wrappers over native libraries.

Modules: ``hashing`` (domain-separated hashes, request ids), ``bls`` (BLS12-381 min-sig),
``multisig`` (multi-signatures, batch verification), ``threshold`` (t-of-n threshold BLS),
``nidkg`` (non-interactive DKG and resharing), ``hashtree`` (IC hash trees),
``certificate`` (IC certificates and NNS delegations), ``user_sig`` (user signatures,
sender delegations).

Spec: IC interface spec §"Certification", §"Authentication"; ``shared/spec/protocol.md`` §2–3.
"""

from icp.crypto.errors import (
    AuthenticationError,
    CertificateError,
    CryptoError,
    HashTreeError,
    InvalidKeyError,
    InvalidSignatureError,
    NidkgError,
    ThresholdError,
)

__all__ = [
    "AuthenticationError",
    "CertificateError",
    "CryptoError",
    "HashTreeError",
    "InvalidKeyError",
    "InvalidSignatureError",
    "NidkgError",
    "ThresholdError",
]

"""Non-interactive distributed key generation (NIDKG) and resharing, simplified.

Theory of operation (in the spirit of Groth 2021, as used by the IC):

* Every receiver has a *DKG encryption key* ``X = x·g1`` (``encryption_keygen``).
* A dealer picks a random polynomial ``f`` of degree ``t-1`` (for resharing: with
  ``f(0)`` = its current secret share) and publishes one ``Dealing``: the G2
  commitments ``Aₖ = aₖ·g2``, an ephemeral ``R = ρ·g1`` and, for each receiver ``i``,
  the ciphertext ``cᵢ = f(i+1) + H(ρ·Xᵢ, context) mod r`` (hashed ElGamal of a scalar),
  plus a proof of possession of ``f(0)`` (a BLS signature with ``f(0)`` on the dealing
  context, verifying under ``A₀``).
* ``verify_dealing`` is the *public* check anyone can run: well-formed points and sizes,
  the proof of possession and, for resharing, ``A₀`` = the dealer's old public key share.
* Each receiver decrypts its share and checks it against the commitments
  (``f(i+1)·g2 == Σₖ (i+1)^k·Aₖ``).  If the check fails it publishes a ``Complaint``
  with ``K = x·R`` and a Chaum–Pedersen proof that ``log_g1 X = log_R K``; anyone can
  then decrypt that one share and confirm the dealing is bad, without learning ``x``.
* ``create_transcript`` drops dealings with a justified complaint and combines the
  rest (at least ``config.min_dealings``): a fresh key sums them; a resharing combines
  the lowest ``old threshold`` dealers with Lagrange coefficients at 0, so the group
  public key stays the same while the committee, its size and threshold may change.
  ``decrypt_share`` then gives each receiver its ``ThresholdSecretShare``; the
  transcript's ``public_key`` is a ``ThresholdPublicKey`` usable by ``icp.crypto.threshold``.

What is publicly verifiable, ours versus the IC's.  The IC's dealings carry NIZK proofs
of correct sharing and of correct chunking for a *forward-secure*, chunked ElGamal
encryption in the exponent, so anyone can check every encrypted share against the
commitments before the dealing is accepted, and no complaint round exists.  Here the
public check covers the commitments, the proof of possession and the resharing link,
but *not* that each ciphertext encrypts the committed share: that is checked by the
receiver, and a bad share becomes publicly provable only through a complaint (which
reveals that single share).  We also have no key evolution (no forward secrecy: a
later leak of ``x`` reveals past shares) and no proof of possession for encryption
keys.  We simplified because the chunked encryption, its two NIZKs and the
binary-tree key evolution are several thousand lines of delicate code in the IC
(rs/crypto/internal/crypto_lib/fs_ni_dkg) with no well-kept Python library to wrap,
while the protocol-level behaviour consensus needs — one dealing per dealer, public
filtering, deterministic transcripts, resharing that keeps the public key, exclusion
of bad dealings — is the same.

Spec: J. Groth, "Non-interactive distributed key generation and key resharing",
IACR ePrint 2021/339; ``shared/spec/protocol.md`` §3.1; Chaum–Pedersen (CRYPTO '92).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from icp.crypto import bls, threshold
from icp.crypto.errors import (
    InvalidKeyError,
    InvalidSignatureError,
    NidkgError,
    ThresholdError,
)
from icp.crypto.hashing import EncodingError, cbor_decode, cbor_encode, hash_with_domain
from icp.crypto.threshold import ThresholdPublicKey, ThresholdSecretShare

R: Final = bls.CURVE_ORDER
DEALING_DOMAIN: Final = b"dealing_content_non_interactive"
"""The IC's domain for NI-DKG dealing contents (protocol.md §2.2); used for the PoP."""
_PAD_DOMAIN: Final = b"icp-nidkg-share-pad"
_DLEQ_DOMAIN: Final = b"icp-nidkg-complaint-dleq"
_SEED_DOMAIN: Final = b"icp-nidkg-dealing-seed"
_ENC_KEY_DOMAIN: Final = b"icp-nidkg-encryption-key"
_POP_DST: Final = b"BLS_POP_BLS12381G1_XMD:SHA-256_SSWU_RO_NIDKG_DEALING_"


def _scalar(domain: bytes, *parts: bytes) -> int:
    """Hash to a scalar mod r (512 bits reduced: negligible bias)."""
    return int.from_bytes(hashlib.sha512(hash_with_domain(domain, *parts)).digest(), "big") % R


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


# ---------------------------------------------------------------------------- keys


@attrs.frozen(slots=True)
class EncryptionSecretKey:
    """A receiver's DKG decryption key ``x`` (repr hidden)."""

    scalar: int = attrs.field(repr=False)

    def public_key(self) -> bytes:
        """Return ``x·g1`` (48 bytes)."""
        return bytes(bls.g1_generator().scalar_mul(self.scalar).compress())


def encryption_keygen(seed: bytes) -> tuple[EncryptionSecretKey, bytes]:
    """Derive a DKG encryption key pair from ``seed``; return (secret, 48-byte public key).

    Spec: protocol.md §3.1 (each node registers a DKG dealing encryption key).
    """
    x = _scalar(_ENC_KEY_DOMAIN, bytes(seed)) or 1
    sk = EncryptionSecretKey(x)
    return sk, sk.public_key()


# ---------------------------------------------------------------------------- config and artifacts


@attrs.frozen(slots=True)
class NidkgConfig:
    """One DKG run: who deals, who receives (their encryption keys), the new threshold.

    ``dkg_id`` names the run (subnet, tag, start height) and is bound into every
    dealing, so dealings cannot be replayed across runs.  With ``resharing`` set the
    dealers are the nodes of that (old) key, in its node order.
    """

    dkg_id: bytes = attrs.field(converter=bytes)
    n_dealers: int
    receiver_keys: tuple[bytes, ...]  # receiver i's 48-byte encryption public key
    threshold: int  # threshold of the key being created
    resharing: ThresholdPublicKey | None = None

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.threshold <= len(self.receiver_keys):
            raise NidkgError(
                f"threshold {self.threshold} must be in [1, {len(self.receiver_keys)}] receivers"
            )
        if self.resharing is not None and self.resharing.n != self.n_dealers:
            raise NidkgError("resharing: the dealers are exactly the nodes of the old key")
        if self.n_dealers < self.min_dealings:
            raise NidkgError(
                f"{self.n_dealers} dealers cannot provide {self.min_dealings} dealings"
            )

    @property
    def n_receivers(self) -> int:
        """Return the number of receivers."""
        return len(self.receiver_keys)

    @property
    def min_dealings(self) -> int:
        """Return how many valid dealings a transcript needs.

        Fresh key: f+1 with f = ⌊(n_dealers−1)/3⌋, so at least one honest dealer
        contributes; resharing: the old threshold.
        Spec: protocol.md §3.1.
        """
        if self.resharing is not None:
            return self.resharing.threshold
        return (self.n_dealers - 1) // 3 + 1


@attrs.frozen(slots=True)
class Dealing:
    """One dealer's public contribution: commitments, encrypted shares, proof of possession."""

    dealer: int  # dealer index
    commitments: tuple[bytes, ...]  # Aₖ = aₖ·g2, k = 0..t-1 (96 bytes each)
    ephemeral: bytes  # R = ρ·g1 (48 bytes)
    ciphertexts: tuple[bytes, ...]  # receiver i: 32-byte (f(i+1) + pad) mod r
    pop: bytes  # a₀·H_pop(context) (48 bytes), verifies under A₀


def encode_dealing(dealing: Dealing) -> bytes:
    """Serialize a dealing as canonical CBOR (for blocks and the wire)."""
    return cbor_encode(
        {
            "dealer": dealing.dealer,
            "commitments": list(dealing.commitments),
            "ephemeral": dealing.ephemeral,
            "ciphertexts": list(dealing.ciphertexts),
            "pop": dealing.pop,
        },
        self_describe=False,
    )


def decode_dealing(data: bytes) -> Dealing:
    """Parse ``encode_dealing`` output; raise ``NidkgError`` on malformed bytes."""
    try:
        value = cbor_decode(bytes(data))
    except EncodingError as exc:
        raise NidkgError(f"malformed dealing: {exc}") from None
    if not isinstance(value, Mapping):
        raise NidkgError("a dealing is a CBOR map")
    dealer = value.get("dealer")
    commitments = value.get("commitments")
    ciphertexts = value.get("ciphertexts")
    ephemeral, pop = value.get("ephemeral"), value.get("pop")
    if (
        not isinstance(dealer, int)
        or isinstance(dealer, bool)
        or not isinstance(commitments, Sequence)
        or not isinstance(ciphertexts, Sequence)
        or not all(isinstance(c, bytes) for c in (*commitments, *ciphertexts))
        or not isinstance(ephemeral, bytes)
        or not isinstance(pop, bytes)
    ):
        raise NidkgError("a dealing is {dealer, commitments, ephemeral, ciphertexts, pop}")
    return Dealing(dealer, tuple(commitments), ephemeral, tuple(ciphertexts), pop)


@attrs.frozen(slots=True)
class Complaint:
    """A receiver's publicly checkable claim that its share in a dealing is wrong."""

    dealer: int
    receiver: int
    shared_secret: bytes  # K = x·R (48 bytes)
    proof: bytes  # Chaum–Pedersen (c, z), 64 bytes: log_g1 X = log_R K


@attrs.frozen(slots=True)
class Transcript:
    """The outcome of a DKG: the threshold public key and the dealings that make it up."""

    dkg_id: bytes
    public_key: ThresholdPublicKey
    dealings: tuple[Dealing, ...]  # included dealings, by dealer index
    coefficients: tuple[int, ...] = attrs.field(repr=False)  # 1 (fresh) or λ (resharing)


# ---------------------------------------------------------------------------- dealing


def _pop_message(config: NidkgConfig, dealer: int, commitments: Sequence[bytes]) -> bytes:
    return hash_with_domain(DEALING_DOMAIN, config.dkg_id, _u32(dealer), *commitments)


def _pad(dkg_id: bytes, dealer: int, receiver: int, ephemeral: bytes, shared: bytes) -> int:
    return _scalar(_PAD_DOMAIN, dkg_id, _u32(dealer), _u32(receiver), ephemeral, shared)


def create_dealing(
    config: NidkgConfig,
    dealer_index: int,
    seed: bytes,
    reshared_share: ThresholdSecretShare | None = None,
) -> Dealing:
    """Create dealer ``dealer_index``'s dealing for ``config``; randomness comes from ``seed``.

    For a resharing config, ``reshared_share`` (the dealer's share of the old key) is
    the constant term of the dealt polynomial.
    Spec: Groth 2021 §4 (dealing); protocol.md §3.1.
    """
    if not 0 <= dealer_index < config.n_dealers:
        raise NidkgError(f"dealer {dealer_index} is not a dealer of this DKG", dealer_index)
    if (config.resharing is None) != (reshared_share is None):
        raise NidkgError("a resharing dealing needs the dealer's old share (and only then)")
    if reshared_share is not None and reshared_share.index != dealer_index:
        raise NidkgError("the reshared share must be the dealer's own", dealer_index)
    base = hash_with_domain(_SEED_DOMAIN, bytes(seed), config.dkg_id, _u32(dealer_index))
    coefficients = [_scalar(_SEED_DOMAIN, base, _u32(k)) for k in range(config.threshold)]
    if reshared_share is not None:
        coefficients[0] = reshared_share.scalar
    coefficients[0] = coefficients[0] or 1
    rho = _scalar(_SEED_DOMAIN, base, b"ephemeral") or 1
    g2 = bls.g2_generator()
    commitments = tuple(bytes(g2.scalar_mul(a).compress()) for a in coefficients)
    ephemeral = bytes(bls.g1_generator().scalar_mul(rho).compress())
    ciphertexts = []
    for i, key in enumerate(config.receiver_keys):
        try:
            shared = bytes(bls.decode_g1(key).scalar_mul(rho).compress())
        except InvalidSignatureError as exc:
            raise NidkgError(f"encryption key of receiver {i}: {exc}") from None
        share = threshold.evaluate_polynomial(coefficients, i + 1)
        c = (share + _pad(config.dkg_id, dealer_index, i, ephemeral, shared)) % R
        ciphertexts.append(c.to_bytes(32, "big"))
    pop_hash = bls.hash_to_g1(_pop_message(config, dealer_index, commitments), _POP_DST)
    pop = bytes(pop_hash.scalar_mul(coefficients[0]).compress())
    return Dealing(dealer_index, commitments, ephemeral, tuple(ciphertexts), pop)


def verify_dealing(config: NidkgConfig, dealing: Dealing) -> None:
    """Run the public checks on ``dealing``; raise ``NidkgError`` naming the dealer if bad.

    Checks: dealer index, number and validity of commitments (G2, not identity) and
    of ciphertexts, the ephemeral key, the proof of possession of the constant term,
    and for resharing that ``A₀`` is the dealer's public key share of the old key.
    Does NOT check that each ciphertext encrypts the committed share (see module doc).
    Spec: Groth 2021 §4 (dealing verification), simplified as documented above.
    """
    d = dealing.dealer
    if not 0 <= d < config.n_dealers:
        raise NidkgError(f"dealer {d} is not a dealer of this DKG", d)
    if len(dealing.commitments) != config.threshold:
        raise NidkgError(
            f"dealer {d}: {len(dealing.commitments)} commitments, expected {config.threshold}", d
        )
    if len(dealing.ciphertexts) != config.n_receivers:
        raise NidkgError(
            f"dealer {d}: {len(dealing.ciphertexts)} ciphertexts, expected {config.n_receivers}", d
        )
    if any(len(c) != 32 or int.from_bytes(c, "big") >= R for c in dealing.ciphertexts):
        raise NidkgError(f"dealer {d}: a ciphertext is not a 32-byte scalar", d)
    try:
        a0 = bls.decode_g2(dealing.commitments[0])
        for c in dealing.commitments[1:]:
            bls.decode_g2(c)
        bls.decode_g1(dealing.ephemeral)
        pop = bls.decode_g1(dealing.pop)
    except (InvalidKeyError, InvalidSignatureError) as exc:
        raise NidkgError(f"dealer {d}: invalid point: {exc}", d) from None
    pop_hash = bls.hash_to_g1(_pop_message(config, d, dealing.commitments), _POP_DST)
    if not bls.pairing_check(pop, a0, pop_hash):
        raise NidkgError(f"dealer {d}: invalid proof of possession of the constant term", d)
    if (
        config.resharing is not None
        and dealing.commitments[0] != config.resharing.public_key_shares[d]
    ):
        raise NidkgError(f"dealer {d}: resharing dealing does not commit to its old key share", d)


# ---------------------------------------------------------------------------- receivers


def _decrypt(dkg_id: bytes, dealing: Dealing, receiver: int, shared: bytes) -> int:
    c = int.from_bytes(dealing.ciphertexts[receiver], "big")
    return (c - _pad(dkg_id, dealing.dealer, receiver, dealing.ephemeral, shared)) % R


def _share_matches(dealing: Dealing, receiver: int, share: int) -> bool:
    commitments = [bls.decode_g2(c) for c in dealing.commitments]
    expected = threshold.evaluate_commitment(commitments, receiver + 1)
    return bool(bls.g2_generator().scalar_mul(share) == expected)


def _shared_secret(dealing: Dealing, key: EncryptionSecretKey) -> bytes:
    return bytes(bls.decode_g1(dealing.ephemeral).scalar_mul(key.scalar).compress())


def decrypt_dealing_share(
    dkg_id: bytes, dealing: Dealing, receiver_index: int, key: EncryptionSecretKey
) -> int:
    """Decrypt receiver ``receiver_index``'s share of ``dealing`` and check it.

    Raises ``NidkgError`` naming the dealer if the share does not match the commitments
    (the receiver should then publish ``create_complaint``).
    """
    if not 0 <= receiver_index < len(dealing.ciphertexts):
        raise NidkgError(f"receiver {receiver_index} is not a receiver of this DKG")
    share = _decrypt(dkg_id, dealing, receiver_index, _shared_secret(dealing, key))
    if not _share_matches(dealing, receiver_index, share):
        raise NidkgError(
            f"dealer {dealing.dealer}: share of receiver {receiver_index} does not match "
            "the commitments",
            dealing.dealer,
        )
    return share


def _dleq_challenge(
    context: bytes, public: bytes, ephemeral: bytes, shared: bytes, t1: bytes, t2: bytes
) -> int:
    return _scalar(_DLEQ_DOMAIN, context, public, ephemeral, shared, t1, t2)


def create_complaint(
    config: NidkgConfig, dealing: Dealing, receiver_index: int, key: EncryptionSecretKey
) -> Complaint:
    """Return a complaint proving (without revealing ``key``) what receiver's share is.

    Spec: Chaum–Pedersen proof of discrete-log equality, made non-interactive with
    Fiat–Shamir; the nonce is derived from the key and the dealing (no RNG needed).
    """
    g1 = bls.g1_generator()
    ephemeral = bls.decode_g1(dealing.ephemeral)
    shared = bytes(ephemeral.scalar_mul(key.scalar).compress())
    context = config.dkg_id + _u32(dealing.dealer) + _u32(receiver_index)
    k = _scalar(_DLEQ_DOMAIN, key.scalar.to_bytes(32, "big"), context, dealing.ephemeral) or 1
    t1 = bytes(g1.scalar_mul(k).compress())
    t2 = bytes(ephemeral.scalar_mul(k).compress())
    c = _dleq_challenge(context, key.public_key(), dealing.ephemeral, shared, t1, t2)
    z = (k + c * key.scalar) % R
    proof = c.to_bytes(32, "big") + z.to_bytes(32, "big")
    return Complaint(dealing.dealer, receiver_index, shared, proof)


def verify_complaint(config: NidkgConfig, dealing: Dealing, complaint: Complaint) -> bool:
    """Return True iff ``complaint`` proves that ``dealing`` gave its receiver a wrong share.

    Checks the Chaum–Pedersen proof that ``K = x·R`` for the receiver's registered key
    ``X = x·g1``, decrypts that one share with ``K`` and compares it with the
    commitments.  A false complaint (valid share, bad proof, wrong dealer) gives False.
    """
    i = complaint.receiver
    if complaint.dealer != dealing.dealer or not 0 <= i < config.n_receivers:
        return False
    if len(complaint.proof) != 64:
        return False
    try:
        public = bls.decode_g1(config.receiver_keys[i])
        ephemeral = bls.decode_g1(dealing.ephemeral)
        shared = bls.decode_g1(complaint.shared_secret)
    except InvalidSignatureError:
        return False
    c = int.from_bytes(complaint.proof[:32], "big")
    z = int.from_bytes(complaint.proof[32:], "big")
    if c >= R or z >= R:
        return False
    t1 = bls.g1_generator().scalar_mul(z) + (-public.scalar_mul(c))
    t2 = ephemeral.scalar_mul(z) + (-shared.scalar_mul(c))
    context = config.dkg_id + _u32(dealing.dealer) + _u32(i)
    expected = _dleq_challenge(
        context,
        config.receiver_keys[i],
        dealing.ephemeral,
        complaint.shared_secret,
        bytes(t1.compress()),
        bytes(t2.compress()),
    )
    if expected != c:
        return False
    share = _decrypt(config.dkg_id, dealing, i, complaint.shared_secret)
    return not _share_matches(dealing, i, share)


# ---------------------------------------------------------------------------- transcripts


def create_transcript(
    config: NidkgConfig,
    dealings: Mapping[int, Dealing],
    complaints: Sequence[Complaint] = (),
) -> Transcript:
    """Combine verified dealings into a transcript; exclude bad and complained-about ones.

    Every dealing is publicly verified (invalid ones are dropped, as a block maker would
    never include them); dealings with a justified complaint are dropped.  A fresh key
    sums all remaining dealings; a resharing uses the ``config.min_dealings`` lowest
    dealers with Lagrange coefficients at 0, so the group key is unchanged.  Raises
    ``NidkgError`` if fewer than ``config.min_dealings`` dealings remain.
    Spec: Groth 2021 §4–5; protocol.md §3.1 (transcripts, resharing).
    """
    valid: dict[int, Dealing] = {}
    for index, dealing in sorted(dealings.items()):
        if dealing.dealer != index:
            continue
        try:
            verify_dealing(config, dealing)
        except NidkgError:
            continue
        valid[index] = dealing
    for complaint in complaints:
        dealing_or_none = valid.get(complaint.dealer)
        if dealing_or_none is not None and verify_complaint(config, dealing_or_none, complaint):
            del valid[complaint.dealer]
    if len(valid) < config.min_dealings:
        raise NidkgError(
            f"need {config.min_dealings} valid dealings, have {len(valid)} "
            f"(dealers {sorted(valid)})"
        )
    if config.resharing is None:
        chosen = sorted(valid)
        coefficients = [1] * len(chosen)
    else:
        chosen = sorted(valid)[: config.min_dealings]
        coefficients = threshold.lagrange_coefficients_at_zero([j + 1 for j in chosen])
    combined = [bls.g2_identity() for _ in range(config.threshold)]
    for dealer, lam in zip(chosen, coefficients, strict=True):
        for k, commitment in enumerate(valid[dealer].commitments):
            combined[k] = combined[k] + bls.decode_g2(commitment).scalar_mul(lam)
    try:
        public_key = threshold.public_key_from_coefficients(
            combined, config.n_receivers, config.threshold
        )
    except ThresholdError as exc:  # pragma: no cover - sizes are checked above
        raise NidkgError(str(exc)) from None
    if (
        config.resharing is not None
        and public_key.group_public_key != config.resharing.group_public_key
    ):
        raise NidkgError("resharing did not preserve the group public key")  # pragma: no cover
    return Transcript(
        config.dkg_id,
        public_key,
        tuple(valid[d] for d in chosen),
        tuple(coefficients),
    )


def decrypt_share(
    transcript: Transcript,
    receiver_index: int,
    key: EncryptionSecretKey,
) -> ThresholdSecretShare:
    """Return receiver ``receiver_index``'s secret share of the transcript's key.

    Raises ``NidkgError`` naming the dealer whose share fails its commitments (that
    dealing should have been excluded by a complaint).
    Spec: Groth 2021 §4 (share decryption and combination).
    """
    total = 0
    for dealing, coefficient in zip(transcript.dealings, transcript.coefficients, strict=True):
        total = (
            total
            + coefficient * decrypt_dealing_share(transcript.dkg_id, dealing, receiver_index, key)
        ) % R
    return ThresholdSecretShare(receiver_index, total)

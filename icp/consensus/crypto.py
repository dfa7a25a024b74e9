"""The crypto façade consensus signs and verifies through.

Theory of operation: consensus never calls a signature library directly. It holds a
``ConsensusCrypto`` chosen by the caller:

* ``RealCrypto`` (the default everywhere): Ed25519 basic signatures for block proposals
  and dealings (``cryptography``), BLS12-381 multi-signatures for notarization and
  finalization (``icp.crypto.multisig``), threshold BLS for beacon, tape and CUP
  (``icp.crypto.threshold``).
* ``CachingCrypto`` wraps another façade with a ``VerificationCache``: verification is a
  pure function of (key, message, signature), so an in-process subnet may share one cache
  and verify each distinct artifact once per process.  Keep it off across processes:
  a cache is only as trustworthy as the process that filled it.
* ``InsecureFastCrypto``: **INSECURE**. "Signatures" are hashes of the public key and
  the message; anyone can forge them.  It exists only for very large hypothesis sweeps
  of the simulator (Byzantine strategies there never forge) and is never used by
  end-to-end tests, benchmarks, the CLI or the HTTP server.

Secret keys are opaque to consensus (``SecretKey``); a façade only accepts the keys it
generated itself.

Spec: STYLE.md §5 (crypto behind a small façade); protocol.md §2.1 (schemes and the
threshold table).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Final, Protocol

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from icp.crypto import bls, multisig, threshold
from icp.crypto.errors import CryptoError
from icp.crypto.threshold import ThresholdPublicKey, ThresholdSecretShare

SecretKey = object
"""An opaque secret key handle, produced and consumed by one façade."""


class ConsensusCrypto(Protocol):
    """Signing and verification as consensus needs them.

    Spec: protocol.md §2.1 (basic / multi / threshold signatures and who uses which).
    """

    @property
    def is_secure(self) -> bool:
        """Whether signatures are unforgeable (False only for ``InsecureFastCrypto``)."""
        ...

    def basic_keygen(self, seed: bytes) -> tuple[SecretKey, bytes]:
        """Return a node signing key pair (secret handle, public key)."""
        ...

    def sign_basic(self, secret_key: SecretKey, message: bytes) -> bytes:
        """Return a basic signature (block proposals, dealings)."""
        ...

    def verify_basic(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """Return whether a basic signature is valid."""
        ...

    def multi_keygen(self, seed: bytes) -> tuple[SecretKey, bytes]:
        """Return a committee signing key pair for multi-signatures."""
        ...

    def sign_multi(self, secret_key: SecretKey, message: bytes) -> bytes:
        """Return one multi-signature share (an individual signature)."""
        ...

    def batch_verify(
        self, public_keys: Sequence[bytes], message: bytes, signatures: Sequence[bytes]
    ) -> list[int]:
        """Return the positions of INVALID shares among same-message shares."""
        ...

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        """Return the multi-signature of the given shares."""
        ...

    def verify_multi(self, public_keys: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        """Return whether a multi-signature by all ``public_keys`` is valid."""
        ...

    def deal_threshold(
        self, seed: bytes, n: int, t: int
    ) -> tuple[ThresholdPublicKey, list[ThresholdSecretShare]]:
        """Deal a t-of-n threshold key as a trusted dealer (genesis only)."""
        ...

    def sign_threshold_share(self, share: ThresholdSecretShare, message: bytes) -> bytes:
        """Return a threshold signature share."""
        ...

    def combine_threshold(
        self, public_key: ThresholdPublicKey, shares: Mapping[int, bytes], message: bytes
    ) -> bytes:
        """Combine >= threshold verified shares on ``message`` into the group signature."""
        ...

    def verify_threshold(self, group_public_key: bytes, message: bytes, signature: bytes) -> bool:
        """Return whether a group signature is valid."""
        ...


@attrs.frozen(slots=True)
class _Ed25519Key:
    key: Ed25519PrivateKey = attrs.field(repr=False)


class RealCrypto:
    """Real signatures: Ed25519 (basic), BLS12-381 multi-signatures and threshold BLS.

    Spec: protocol.md §2.1.
    """

    @property
    def is_secure(self) -> bool:
        """Real crypto is secure."""
        return True

    def basic_keygen(self, seed: bytes) -> tuple[SecretKey, bytes]:
        """Derive an Ed25519 key pair from ``seed`` (SHA-256 of it is the private seed)."""
        key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"icp-basic" + seed).digest())
        return _Ed25519Key(key), key.public_key().public_bytes_raw()

    def sign_basic(self, secret_key: SecretKey, message: bytes) -> bytes:
        """Return an Ed25519 signature."""
        if not isinstance(secret_key, _Ed25519Key):
            raise TypeError("RealCrypto.sign_basic needs a key from RealCrypto.basic_keygen")
        return secret_key.key.sign(message)

    def verify_basic(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """Return whether an Ed25519 signature verifies (False on malformed input)."""
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def multi_keygen(self, seed: bytes) -> tuple[SecretKey, bytes]:
        """Derive a BLS committee signing key pair."""
        return bls.keygen(hashlib.sha256(b"icp-committee" + seed).digest())

    def sign_multi(self, secret_key: SecretKey, message: bytes) -> bytes:
        """Return a BLS signature share."""
        if not isinstance(secret_key, bls.BlsSecretKey):
            raise TypeError("RealCrypto.sign_multi needs a key from RealCrypto.multi_keygen")
        return bls.sign(secret_key, message)

    def batch_verify(
        self, public_keys: Sequence[bytes], message: bytes, signatures: Sequence[bytes]
    ) -> list[int]:
        """Return invalid positions (one pairing check when all are valid)."""
        return multisig.batch_verify(public_keys, message, signatures)

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        """Return the sum of the signatures."""
        return multisig.aggregate(signatures)

    def verify_multi(self, public_keys: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        """Return whether the multi-signature verifies."""
        return multisig.verify_multi(public_keys, message, signature)

    def deal_threshold(
        self, seed: bytes, n: int, t: int
    ) -> tuple[ThresholdPublicKey, list[ThresholdSecretShare]]:
        """Deal a threshold key as a trusted dealer."""
        return threshold.deal_trusted(seed, n, t)

    def sign_threshold_share(self, share: ThresholdSecretShare, message: bytes) -> bytes:
        """Return a threshold signature share."""
        return threshold.sign_share(share, message)

    def combine_threshold(
        self, public_key: ThresholdPublicKey, shares: Mapping[int, bytes], message: bytes
    ) -> bytes:
        """Combine shares by Lagrange interpolation in the exponent (message unused)."""
        return threshold.combine(public_key, shares)

    def verify_threshold(self, group_public_key: bytes, message: bytes, signature: bytes) -> bool:
        """Return whether the group signature verifies."""
        return bls.verify(group_public_key, message, signature)


_INSECURE: Final = b"INSECURE-FAST-CRYPTO"


def _insecure_sig(public_key: bytes, message: bytes, length: int = 48) -> bytes:
    digest = hashlib.sha256(_INSECURE + public_key + hashlib.sha256(message).digest()).digest()
    return (digest * 2)[:length]


def _insecure_pk(secret: bytes, length: int) -> bytes:
    return (hashlib.sha256(_INSECURE + b"pk" + secret).digest() * 3)[:length]


@attrs.frozen(slots=True)
class _InsecureKey:
    public_key: bytes


class InsecureFastCrypto:
    """INSECURE hash-based stand-in for signatures, ONLY for large simulator sweeps.

    A "signature" is SHA-256 of the public key and the message, so anyone can compute
    it: it checks the protocol logic (who signed what, thresholds, uniqueness of group
    signatures), not unforgeability. Never use it outside ``tests/properties`` sweeps.
    """

    @property
    def is_secure(self) -> bool:
        """This façade is NOT secure."""
        return False

    def basic_keygen(self, seed: bytes) -> tuple[SecretKey, bytes]:
        """Return an insecure key pair."""
        pk = _insecure_pk(b"basic" + seed, 32)
        return _InsecureKey(pk), pk

    def sign_basic(self, secret_key: SecretKey, message: bytes) -> bytes:
        """Return the insecure signature."""
        if not isinstance(secret_key, _InsecureKey):
            raise TypeError("InsecureFastCrypto needs its own keys")
        return _insecure_sig(secret_key.public_key, message, 64)

    def verify_basic(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """Recompute and compare."""
        return signature == _insecure_sig(public_key, message, 64)

    def multi_keygen(self, seed: bytes) -> tuple[SecretKey, bytes]:
        """Return an insecure key pair."""
        pk = _insecure_pk(b"multi" + seed, 96)
        return _InsecureKey(pk), pk

    def sign_multi(self, secret_key: SecretKey, message: bytes) -> bytes:
        """Return the insecure signature."""
        if not isinstance(secret_key, _InsecureKey):
            raise TypeError("InsecureFastCrypto needs its own keys")
        return _insecure_sig(secret_key.public_key, message)

    def batch_verify(
        self, public_keys: Sequence[bytes], message: bytes, signatures: Sequence[bytes]
    ) -> list[int]:
        """Return the positions whose signature does not match."""
        return [
            i
            for i, (pk, sig) in enumerate(zip(public_keys, signatures, strict=True))
            if sig != _insecure_sig(pk, message)
        ]

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        """Hash the concatenated shares (order-sensitive: callers sort by signer)."""
        return hashlib.sha256(_INSECURE + b"".join(signatures)).digest() + bytes(16)

    def verify_multi(self, public_keys: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        """Recompute the aggregate of the signers' signatures."""
        if not public_keys:
            return False
        return signature == self.aggregate([_insecure_sig(pk, message) for pk in public_keys])

    def deal_threshold(
        self, seed: bytes, n: int, t: int
    ) -> tuple[ThresholdPublicKey, list[ThresholdSecretShare]]:
        """Return an insecure "threshold key" whose shares are hash-derived."""
        scalars = [
            int.from_bytes(hashlib.sha256(_INSECURE + seed + i.to_bytes(4, "big")).digest()[:30])
            + 1
            for i in range(n)
        ]
        shares = [ThresholdSecretShare(i, s) for i, s in enumerate(scalars)]
        pk = ThresholdPublicKey(
            _insecure_pk(b"group" + seed, 96),
            tuple(_insecure_pk(s.to_bytes(32, "big"), 96) for s in scalars),
            t,
        )
        return pk, shares

    def sign_threshold_share(self, share: ThresholdSecretShare, message: bytes) -> bytes:
        """Return the insecure share (derived from the share's public key)."""
        return _insecure_sig(_insecure_pk(share.scalar.to_bytes(32, "big"), 96), message)

    def combine_threshold(
        self, public_key: ThresholdPublicKey, shares: Mapping[int, bytes], message: bytes
    ) -> bytes:
        """Return the unique insecure group signature if >= threshold shares are given."""
        if len(shares) < public_key.threshold:
            raise CryptoError(f"need {public_key.threshold} shares, got {len(shares)}")
        return _insecure_sig(public_key.group_public_key, message)

    def verify_threshold(self, group_public_key: bytes, message: bytes, signature: bytes) -> bool:
        """Recompute and compare."""
        return signature == _insecure_sig(group_public_key, message)


class VerificationCache:
    """Bounded memo of verification outcomes keyed by (kind, keys, message, signature).

    Also memoises the results of aggregation and threshold combination, which are pure
    functions of their inputs too.

    Share one instance across the replicas of ONE process only.

    Its use is that the replicas of a process verify each artifact once, not once per
    replica; they all see an artifact within a few heights, so the memo only needs a
    recent window: the oldest entries are evicted first.  The default holds about
    1,800 idle heights of a 4-node subnet (~37 verifications per height) or 900 update
    calls (~73 each), some 16 MB; a larger cap only costs memory (at 500,000 entries
    it was ~120 MB).
    """

    def __init__(self, max_entries: int = 65_536) -> None:
        self._entries: OrderedDict[bytes, bool] = OrderedDict()
        self._results: OrderedDict[bytes, bytes] = OrderedDict()
        self._max = max_entries
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(kind: bytes, public_keys: Sequence[bytes], message: bytes, signature: bytes) -> bytes:
        """Return the cache key of one verification."""
        h = hashlib.sha256(kind)
        for pk in public_keys:
            h.update(pk)
        h.update(hashlib.sha256(message).digest())
        h.update(signature)
        return h.digest()

    def get(self, key: bytes) -> bool | None:
        """Return the cached outcome, if any."""
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def get_bytes(self, key: bytes) -> bytes | None:
        """Return a cached result of a pure computation (aggregation, combination)."""
        return self._results.get(key)

    def put_bytes(self, key: bytes, value: bytes) -> None:
        """Record a pure computation's result, evicting the oldest when full."""
        self._results[key] = value
        if len(self._results) > self._max // 4:
            self._results.popitem(last=False)

    def put(self, key: bytes, value: bool) -> None:
        """Record an outcome, evicting the oldest entry when full."""
        self._entries[key] = value
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)


class CachingCrypto:
    """A façade that consults a ``VerificationCache`` before verifying with ``inner``.

    Verification results are pure functions of their inputs, so sharing them between
    replicas of one process changes speed only, never outcomes.
    """

    def __init__(self, inner: ConsensusCrypto, cache: VerificationCache) -> None:
        self.inner = inner
        self.cache = cache

    @property
    def is_secure(self) -> bool:
        """Secure iff the inner façade is."""
        return self.inner.is_secure

    def basic_keygen(self, seed: bytes) -> tuple[SecretKey, bytes]:
        """Delegate."""
        return self.inner.basic_keygen(seed)

    def sign_basic(self, secret_key: SecretKey, message: bytes) -> bytes:
        """Delegate."""
        return self.inner.sign_basic(secret_key, message)

    def verify_basic(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """Verify once, then answer from the cache."""
        key = VerificationCache.key(b"basic", (public_key,), message, signature)
        cached = self.cache.get(key)
        if cached is None:
            cached = self.inner.verify_basic(public_key, message, signature)
            self.cache.put(key, cached)
        return cached

    def multi_keygen(self, seed: bytes) -> tuple[SecretKey, bytes]:
        """Delegate."""
        return self.inner.multi_keygen(seed)

    def sign_multi(self, secret_key: SecretKey, message: bytes) -> bytes:
        """Delegate."""
        return self.inner.sign_multi(secret_key, message)

    def batch_verify(
        self, public_keys: Sequence[bytes], message: bytes, signatures: Sequence[bytes]
    ) -> list[int]:
        """Batch-verify only the shares the cache does not know."""
        invalid: list[int] = []
        todo: list[int] = []
        keys: list[bytes] = []
        for i, (pk, sig) in enumerate(zip(public_keys, signatures, strict=True)):
            key = VerificationCache.key(b"share", (pk,), message, sig)
            keys.append(key)
            cached = self.cache.get(key)
            if cached is None:
                todo.append(i)
            elif not cached:
                invalid.append(i)
        if todo:
            bad = set(
                self.inner.batch_verify(
                    [public_keys[i] for i in todo], message, [signatures[i] for i in todo]
                )
            )
            for j, i in enumerate(todo):
                self.cache.put(keys[i], j not in bad)
                if j in bad:
                    invalid.append(i)
        return sorted(invalid)

    def aggregate(self, signatures: Sequence[bytes]) -> bytes:
        """Aggregate once per distinct input (a pure function), then answer from the cache."""
        key = VerificationCache.key(b"aggregate", signatures, b"", b"")
        cached = self.cache.get_bytes(key)
        if cached is None:
            cached = self.inner.aggregate(signatures)
            self.cache.put_bytes(key, cached)
        return cached

    def verify_multi(self, public_keys: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        """Verify once, then answer from the cache."""
        key = VerificationCache.key(b"multi", public_keys, message, signature)
        cached = self.cache.get(key)
        if cached is None:
            cached = self.inner.verify_multi(public_keys, message, signature)
            self.cache.put(key, cached)
        return cached

    def deal_threshold(
        self, seed: bytes, n: int, t: int
    ) -> tuple[ThresholdPublicKey, list[ThresholdSecretShare]]:
        """Delegate."""
        return self.inner.deal_threshold(seed, n, t)

    def sign_threshold_share(self, share: ThresholdSecretShare, message: bytes) -> bytes:
        """Delegate."""
        return self.inner.sign_threshold_share(share, message)

    def combine_threshold(
        self, public_key: ThresholdPublicKey, shares: Mapping[int, bytes], message: bytes
    ) -> bytes:
        """Combine once per distinct input (a pure function), then answer from the cache."""
        parts = [public_key.group_public_key, *public_key.public_key_shares]
        for index in sorted(shares):
            parts += [index.to_bytes(4, "big"), shares[index]]
        key = VerificationCache.key(b"combine", parts, message, b"")
        cached = self.cache.get_bytes(key)
        if cached is None:
            cached = self.inner.combine_threshold(public_key, shares, message)
            self.cache.put_bytes(key, cached)
        return cached

    def verify_threshold(self, group_public_key: bytes, message: bytes, signature: bytes) -> bool:
        """Verify once, then answer from the cache."""
        key = VerificationCache.key(b"threshold", (group_public_key,), message, signature)
        cached = self.cache.get(key)
        if cached is None:
            cached = self.inner.verify_threshold(group_public_key, message, signature)
            self.cache.put(key, cached)
        return cached

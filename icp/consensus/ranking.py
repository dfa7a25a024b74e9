"""Beacon-derived randomness: block-maker ranks and committees.

The beacon of height h - 1 seeds a ChaCha20 RNG per purpose; shuffling the sorted node
list with it gives the block-maker ranking of height h (only the first f + 1 nodes get a
rank) and the notarization committee (the first 3f + 1 nodes).

The RNG follows dfinity/ic: seed = SHA-256(crypto_hash(beacon) || purpose byte),
``rand_chacha::ChaCha20Rng::from_seed`` (ChaCha20 keystream, zero nonce, little-endian
u32 words) and ``rand 0.8``'s ``SliceRandom::shuffle`` (Fisher-Yates from the back with
``gen_range`` by widening multiply and rejection). Our beacon hash is over our own
encoding, so rankings are not bit-identical with mainnet's.

Spec: protocol.md §1.2 "Ranking / committee derivation"; ICC paper §3.3 (ranks from the
random beacon).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from icp.consensus.artifacts import RandomBeacon
from icp.consensus.config import get_committee_size, get_faults_tolerated
from icp.types import NodeIndex, Rank


class RandomnessPurpose(enum.IntEnum):
    """Purpose byte appended to the beacon hash.

    Spec: protocol.md §1.2 (1 CommitteeSampling, 2 BlockmakerRanking, 3 DkgCommitteeSampling).
    """

    COMMITTEE_SAMPLING = 1
    BLOCKMAKER_RANKING = 2
    DKG_COMMITTEE_SAMPLING = 3


class ChaCha20Rng:
    """ChaCha20 keystream as a u32 source, like ``rand_chacha::ChaCha20Rng``.

    Spec: protocol.md §1.2 (RNG = ChaCha20Rng::from_seed(seed)).
    """

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise ValueError("a ChaCha20 seed is 32 bytes")
        self._stream = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor()
        self._buffer = b""
        self._pos = 0

    def next_u32(self) -> int:
        """Return the next little-endian 32-bit word of the keystream."""
        if self._pos + 4 > len(self._buffer):
            self._buffer = self._stream.update(bytes(256))
            self._pos = 0
        word = int.from_bytes(self._buffer[self._pos : self._pos + 4], "little")
        self._pos += 4
        return word

    def gen_index(self, bound: int) -> int:
        """Return a uniform integer in [0, bound) as rand 0.8's ``gen_range`` for u32.

        Widening multiply; reject when the low word exceeds the zone.
        """
        if not 0 < bound <= 0xFFFFFFFF:
            raise ValueError("bound must be in (0, 2**32)")
        zone = ((bound << (32 - bound.bit_length())) & 0xFFFFFFFF) - 1
        while True:
            product = self.next_u32() * bound
            if product & 0xFFFFFFFF <= zone:
                return product >> 32


def shuffle(items: Sequence[NodeIndex], rng: ChaCha20Rng) -> list[NodeIndex]:
    """Return ``items`` shuffled like rand 0.8's ``SliceRandom::shuffle``."""
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = rng.gen_index(i + 1)
        out[i], out[j] = out[j], out[i]
    return out


def purpose_seed(beacon: RandomBeacon, purpose: RandomnessPurpose) -> bytes:
    """Return SHA-256(crypto_hash(beacon) || purpose byte).

    Spec: protocol.md §1.2 (seed0 = beacon hash; seed = SHA-256(seed0 || purpose_byte)).
    """
    return hashlib.sha256(beacon.artifact_hash() + bytes([int(purpose)])).digest()


@lru_cache(maxsize=4096)
def _shuffled(seed: bytes, n: int) -> tuple[NodeIndex, ...]:
    return tuple(shuffle([NodeIndex(i) for i in range(n)], ChaCha20Rng(seed)))


@lru_cache(maxsize=1024)
def get_block_maker_ranking(beacon: RandomBeacon, n: int) -> tuple[NodeIndex, ...]:
    """Return the f + 1 block makers of the height after ``beacon``, by rank.

    Spec: protocol.md §1.2 (only indices 0..f of the BlockmakerRanking shuffle get a rank).
    """
    order = _shuffled(purpose_seed(beacon, RandomnessPurpose.BLOCKMAKER_RANKING), n)
    return order[: get_faults_tolerated(n) + 1]


def get_block_maker_rank(beacon: RandomBeacon, node: NodeIndex, n: int) -> Rank | None:
    """Return ``node``'s rank at the height after ``beacon``, or None if it has none.

    Spec: ICC paper §3.3; protocol.md §1.2.
    """
    ranking = get_block_maker_ranking(beacon, n)
    return Rank(ranking.index(node)) if node in ranking else None


@lru_cache(maxsize=1024)
def get_notarization_committee(beacon: RandomBeacon, n: int) -> frozenset[NodeIndex]:
    """Return the notarization committee of the height after ``beacon`` (3f + 1 nodes).

    Spec: protocol.md §1.2 (first c = 3f+1 nodes of the CommitteeSampling shuffle).
    """
    order = _shuffled(purpose_seed(beacon, RandomnessPurpose.COMMITTEE_SAMPLING), n)
    return frozenset(order[: get_committee_size(n)])

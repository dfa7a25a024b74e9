from __future__ import annotations

from collections import Counter

from icp.consensus.artifacts import RandomBeacon, RandomBeaconContent
from icp.consensus.ranking import (
    ChaCha20Rng,
    get_block_maker_rank,
    get_block_maker_ranking,
    get_notarization_committee,
    shuffle,
)
from icp.types import Height, NodeIndex


def beacon(i: int) -> RandomBeacon:
    return RandomBeacon(RandomBeaconContent("v", Height(i), bytes(32)), i.to_bytes(48, "big"))


def test_chacha20_rng_matches_the_zero_key_keystream() -> None:
    # rand_chacha's `test_chacha_true_values_a`: ChaCha20Rng::from_seed([0; 32]).
    rng = ChaCha20Rng(bytes(32))
    words = [rng.next_u32() for _ in range(8)]
    assert words == [
        0xADE0B876, 0x903DF1A0, 0xE56A5D40, 0x28BD8653,
        0xB819D2BD, 0x1AED8DA0, 0xCCEF36A8, 0xC70D778B,
    ]  # fmt: skip


def test_gen_index_stays_in_range_and_covers_it() -> None:
    rng = ChaCha20Rng(b"\x07" * 32)
    seen = Counter(rng.gen_index(7) for _ in range(7000))
    assert set(seen) == set(range(7))
    assert all(800 < count < 1200 for count in seen.values())


def test_shuffle_is_a_deterministic_permutation() -> None:
    items = [NodeIndex(i) for i in range(13)]
    a = shuffle(items, ChaCha20Rng(b"\x01" * 32))
    b = shuffle(items, ChaCha20Rng(b"\x01" * 32))
    c = shuffle(items, ChaCha20Rng(b"\x02" * 32))
    assert a == b and sorted(a) == items and a != c


def test_ranking_has_f_plus_one_makers_and_committee_3f_plus_one() -> None:
    for n, f in ((4, 1), (7, 2), (13, 4), (14, 4)):
        ranking = get_block_maker_ranking(beacon(n), n)
        assert len(ranking) == f + 1 and len(set(ranking)) == f + 1
        assert len(get_notarization_committee(beacon(n), n)) == 3 * f + 1
        for rank, node in enumerate(ranking):
            assert get_block_maker_rank(beacon(n), node, n) == rank
        outsiders = set(range(n)) - set(ranking)
        assert all(get_block_maker_rank(beacon(n), NodeIndex(o), n) is None for o in outsiders)


def test_leaders_rotate_with_the_beacon() -> None:
    leaders = Counter(get_block_maker_ranking(beacon(i), 13)[0] for i in range(400))
    assert len(leaders) == 13  # every node leads sometimes

from __future__ import annotations

from icp.consensus.config import MAINNET_LIKE, MILLIS
from icp.consensus.delays import get_block_maker_delay, get_notary_delay
from icp.types import Height, Rank


def test_block_maker_delay_is_unit_delay_times_rank() -> None:
    assert get_block_maker_delay(MAINNET_LIKE, Rank(0)) == 0
    assert get_block_maker_delay(MAINNET_LIKE, Rank(3)) == 3000 * MILLIS


def test_notary_delay_follows_the_ic_formula() -> None:
    h = Height
    assert get_notary_delay(MAINNET_LIKE, Rank(0), h(10), h(10)) == 300 * MILLIS
    assert get_notary_delay(MAINNET_LIKE, Rank(1), h(10), h(10)) == 1300 * MILLIS
    # finality gap 2: the rank term grows by 1.5^2
    assert get_notary_delay(MAINNET_LIKE, Rank(1), h(12), h(10)) == 2550 * MILLIS
    # rank 0 is never backed off by the finality gap
    assert get_notary_delay(MAINNET_LIKE, Rank(0), h(15), h(10)) == 300 * MILLIS


def test_notary_delay_certification_backlog_and_hard_stop() -> None:
    h = Height
    # finalized - certified = 3 > 1: add 2000 ms per height of backlog
    assert get_notary_delay(MAINNET_LIKE, Rank(0), h(13), h(13), h(10)) == (300 + 6000) * MILLIS
    assert get_notary_delay(MAINNET_LIKE, Rank(0), h(80), h(80), h(10)) is None


def test_delta_ntry_is_at_least_delta_prop() -> None:
    for rank in range(5):
        r = Rank(rank)
        notary = get_notary_delay(MAINNET_LIKE, r, Height(1), Height(1))
        assert notary is not None and notary >= get_block_maker_delay(MAINNET_LIKE, r)

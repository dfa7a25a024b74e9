"""Delay functions: when a block maker proposes and when a notary may support a rank.

Spec: ICC paper §3.3 (Delta_prop, Delta_ntry); protocol.md §1.3 and §1.7 (a), (b)
(dfinity/ic ``get_block_maker_delay`` and ``get_adjusted_notary_delay_from_settings``).
"""

from __future__ import annotations

import math
import struct
from typing import Final

from icp.consensus.config import MILLIS, ConsensusConfig
from icp.types import Height, Rank, Time

ACCEPTABLE_NOTARIZATION_CERTIFICATION_GAP: Final = 70
ACCEPTABLE_FINALIZATION_CERTIFICATION_GAP: Final = 1
BACKLOG_DELAY_MILLIS: Final = 2000


def _f32(value: float) -> float:
    """Round ``value`` to IEEE single precision (the IC computes the delay in f32)."""
    if value > 3.4e38:
        return math.inf
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def get_block_maker_delay(config: ConsensusConfig, rank: Rank) -> Time:
    """Return Delta_prop(rank) = unit_delay * rank.

    Spec: protocol.md §1.7 (a); ICC paper §3.3 (Delta_prop is non-decreasing in rank).
    """
    return Time(config.unit_delay * rank)


def get_notary_delay(
    config: ConsensusConfig,
    rank: Rank,
    notarized_height: Height,
    finalized_height: Height,
    certified_height: Height | None = None,
) -> Time | None:
    """Return Delta_ntry(rank) in ns, or None when the notary must not notarize at all.

    d = initial_notary_delay + unit_delay * rank * 1.5^(N - F) (f32 arithmetic, in ms),
    plus 2000 ms per height of certification backlog (F - C > 1); no notarization while
    N - C >= 70. ``certified_height`` None means no certifier is wired (C = F).

    Spec: protocol.md §1.7 (b); ICC paper §3.3 (Delta_ntry(r) >= Delta_prop(r)).
    """
    certified = finalized_height if certified_height is None else certified_height
    if notarized_height - certified >= ACCEPTABLE_NOTARIZATION_CERTIFICATION_GAP:
        return None
    finality_gap = notarized_height - finalized_height
    initial_ms = _f32(config.initial_notary_delay / MILLIS)
    rank_ms = _f32(config.unit_delay * rank / MILLIS)
    growth = _f32(1.5**finality_gap) if finality_gap < 220 else math.inf
    scaled = _f32(rank_ms * growth) if rank_ms else 0.0
    total = _f32(initial_ms + scaled)
    delay_ms = int(total) if math.isfinite(total) else 2**63
    cert_gap = max(finalized_height - certified, 0)
    if cert_gap > ACCEPTABLE_FINALIZATION_CERTIFICATION_GAP:
        delay_ms += BACKLOG_DELAY_MILLIS * cert_gap
    return Time(delay_ms * MILLIS)

"""Subnet consensus parameters, fault thresholds and the presets.

Presets are plain data (``MINIMAL``, ``MAINNET_LIKE``) passed into the replica and the
simulator; nothing reads a global configuration.

Spec: protocol.md §"Key constants" 1-4 and §1.7 (dfinity/ic rs/limits, ic-prep
``subnet_configuration.rs``, ``rs/consensus/utils/src/membership.rs``).
"""

from __future__ import annotations

from typing import Final

import attrs

from icp.types import NANOS_PER_SECOND, Height, RegistryVersion, Time

REPLICA_VERSION: Final = "icp-0.1.0"
"""Replica version string carried in every signed consensus content."""

PERMITTED_DRIFT_AT_VALIDATOR: Final = Time(30 * NANOS_PER_SECOND)
"""How far ahead of the local clock a block's time may be (protocol.md §1.7)."""

MILLIS: Final = 1_000_000
"""Nanoseconds per millisecond."""

TIME_ZERO: Final = Time(0)
"""The epoch: the default genesis time of simulated subnets."""
REGISTRY_VERSION_ONE: Final = RegistryVersion(1)
DEFAULT_REBROADCAST: Final = Time(2 * NANOS_PER_SECOND)


def get_faults_tolerated(n: int) -> int:
    """Return f = floor((n - 1) / 3), the number of Byzantine nodes a subnet of n tolerates.

    Spec: protocol.md §"Key constants" 1 (membership.rs ``get_faults_tolerated``; n = 0 as 1).
    """
    return (max(n, 1) - 1) // 3


def get_committee_size(n: int) -> int:
    """Return c = 3f + 1, the notarization committee size.

    Spec: protocol.md §"Key constants" 1 (``get_committee_size``).
    """
    return 3 * get_faults_tolerated(n) + 1


def notarization_threshold(n: int) -> int:
    """Return the multi-signature threshold c - f = 2f + 1 for notarization/finalization.

    Spec: protocol.md §2.1 threshold table; ICC paper §3 (quorum n - t).
    """
    return get_committee_size(n) - get_faults_tolerated(n)


def low_threshold(n: int) -> int:
    """Return the low NI-DKG threshold f + 1 (random beacon, random tape).

    Spec: protocol.md §3.1 (``threshold_for_subnet_of_size``, LowThreshold).
    """
    return get_faults_tolerated(n) + 1


def high_threshold(n: int) -> int:
    """Return the high NI-DKG threshold c - f = 2f + 1 (catch-up packages, certification).

    Spec: protocol.md §3.1 (HighThreshold).
    """
    return get_committee_size(n) - get_faults_tolerated(n)


@attrs.frozen(slots=True)
class ConsensusConfig:
    """The consensus parameters of one subnet (a SubnetRecord's consensus fields).

    Spec: protocol.md §1.7 timing table; §3.1 ``dkg_interval_length``.
    """

    n: int
    """Number of nodes in the subnet."""
    unit_delay: Time
    """Per-rank delay in ns (block maker waits unit_delay*rank)."""
    initial_notary_delay: Time
    """Notary delay for a rank-0 block, in ns."""
    dkg_interval_length: int
    """L: a summary block every L + 1 heights."""
    dkg_dealings_per_block: int = 1
    """How many NI-DKG dealings a data block may carry (IC: 1)."""
    registry_version: RegistryVersion = REGISTRY_VERSION_ONE
    """The (static) registry version the subnet runs at."""
    rebroadcast_interval: Time = DEFAULT_REBROADCAST
    """Stall time after which a replica re-sends its frontier artifacts (not an IC constant)."""

    def __attrs_post_init__(self) -> None:
        if self.n < 1:
            raise ValueError("a subnet needs at least one node")
        if self.dkg_interval_length < 1:
            raise ValueError("dkg_interval_length must be at least 1")
        if self.unit_delay < 0 or self.initial_notary_delay < 0:
            raise ValueError("delays must be non-negative")

    @property
    def f(self) -> int:
        """Faults tolerated."""
        return get_faults_tolerated(self.n)

    @property
    def notarization_threshold(self) -> int:
        """2f + 1 shares make a notarization or finalization."""
        return notarization_threshold(self.n)

    @property
    def low_threshold(self) -> int:
        """f + 1 shares make a beacon or tape."""
        return low_threshold(self.n)

    @property
    def high_threshold(self) -> int:
        """2f + 1 shares make a catch-up package."""
        return high_threshold(self.n)

    def is_summary_height(self, height: Height) -> bool:
        """Return whether ``height`` carries a DKG summary block (0, L+1, 2(L+1), ...).

        Spec: protocol.md §3.1 "Heights of summary blocks".
        """
        return height % (self.dkg_interval_length + 1) == 0

    def interval_start(self, height: Height) -> Height:
        """Return the summary height of the DKG interval containing ``height``."""
        return Height(height - height % (self.dkg_interval_length + 1))


MINIMAL: Final = ConsensusConfig(
    n=4,
    unit_delay=Time(1000 * MILLIS),
    initial_notary_delay=Time(300 * MILLIS),
    dkg_interval_length=9,
)
"""4 nodes (f = 1) and a short DKG interval: a summary block and CUP every 10 heights."""

MAINNET_LIKE: Final = ConsensusConfig(
    n=13,
    unit_delay=Time(1000 * MILLIS),
    initial_notary_delay=Time(300 * MILLIS),
    dkg_interval_length=499,
)
"""13 nodes (f = 4), app-subnet delays (~1 s blocks) and the IC's DKG interval 499.

Spec: protocol.md §1.7 timing table (app subnet <= 13 nodes).
"""

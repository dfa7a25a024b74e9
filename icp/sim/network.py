"""A seeded virtual network: per-link delays, drops, duplication, reordering, partitions.

Theory of operation: ``transmit(src, dst, now)`` returns the virtual times at which a
message sent now arrives (none if dropped, two if duplicated). Delays are drawn per
message from the link's model, so messages on a link reorder whenever the jitter exceeds
their spacing. A partition drops every message between different groups until
``heal()``. All randomness comes from the ``random.Random`` passed in.

Spec: ICC paper §2 (asynchronous network with eventual delivery; partial synchrony:
after some time every message between honest parties arrives within Delta_bnd).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Final

import attrs

from icp.types import Time

DEFAULT_DELAY: Final = Time(10_000_000)
NO_JITTER: Final = Time(0)


@attrs.frozen(slots=True)
class LinkModel:
    """How one directed link behaves."""

    delay: Time = DEFAULT_DELAY
    """Minimum one-way delay in ns."""
    jitter: Time = NO_JITTER
    """Extra delay drawn uniformly from [0, jitter] ns (reordering)."""
    drop: float = 0.0
    """Probability that a message is lost."""
    duplicate: float = 0.0
    """Probability that a message arrives twice."""

    def __attrs_post_init__(self) -> None:
        if self.delay < 0 or self.jitter < 0:
            raise ValueError("delays must be non-negative")
        if not (0.0 <= self.drop <= 1.0 and 0.0 <= self.duplicate <= 1.0):
            raise ValueError("probabilities must be in [0, 1]")


class Network:
    """Directed links between ``n`` nodes with a default model and overrides."""

    def __init__(self, n: int, rng: random.Random, default: LinkModel | None = None) -> None:
        self.n = n
        self.rng = rng
        self.default = default or LinkModel()
        self.links: dict[tuple[int, int], LinkModel] = {}
        self.groups: list[frozenset[int]] | None = None

    def set_link(self, src: int, dst: int, model: LinkModel) -> None:
        """Override the model of the link src -> dst."""
        self.links[(src, dst)] = model

    def set_all(self, model: LinkModel) -> None:
        """Use ``model`` for every link (clears overrides)."""
        self.default = model
        self.links.clear()

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Split the nodes into groups that cannot talk to each other."""
        self.groups = [frozenset(g) for g in groups]

    def heal(self) -> None:
        """Remove the partition."""
        self.groups = None

    def connected(self, src: int, dst: int) -> bool:
        """Return whether src and dst are in the same partition group."""
        if self.groups is None:
            return True
        return any(src in g and dst in g for g in self.groups)

    def transmit(self, src: int, dst: int, now: Time) -> list[Time]:
        """Return the arrival times of a message sent now from src to dst."""
        if not self.connected(src, dst):
            return []
        model = self.links.get((src, dst), self.default)
        if model.drop and self.rng.random() < model.drop:
            return []
        copies = 2 if model.duplicate and self.rng.random() < model.duplicate else 1
        out = []
        for _ in range(copies):
            extra = self.rng.randint(0, model.jitter) if model.jitter else 0
            out.append(Time(now + model.delay + extra))
        return out

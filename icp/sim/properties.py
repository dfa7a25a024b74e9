"""Safety properties of a simulated run, checked from the outside.

``PropertyMonitor.observe(sim)`` is called as often as the caller likes (pools are
purged below CUPs, so observing regularly sees more); ``violations()`` lists every
property that failed, with enough detail to debug it:

* agreement: no two honest replicas finalized different blocks at one height;
* chain: every honest replica's finalized blocks form one chain (each finalized block's
  parent is the finalized block one height below), so finalized chains are prefixes of
  one another;
* notarized parent: every notarized block an honest replica holds above its CUP has
  its parent notarized in the same pool, or the parent is the CUP block (INV-1).  The
  check is local to one pool at one instant because pools are purged below the CUP: a
  block at the CUP height may outlive its parent, and an observer that looks only now
  and then cannot tell "purged" from "never notarized" (the long sweep's seed 9616 was
  such a false report; looking every millisecond saw the parent notarized);
* beacon uniqueness: all honest replicas hold the same beacon at each height (INV-7);
* batches: honest replicas delivered identical batches at every height both delivered.

Spec: protocol.md §1.5 (INV-1, INV-3, INV-4, INV-7); ICC paper §4 (safety).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from icp.consensus.pool import PoolReader
from icp.consensus.replica import Batch
from icp.sim.simulator import Simulation
from icp.types import Height


@attrs.frozen(slots=True)
class Violation:
    """One failed property."""

    prop: str
    detail: str


@attrs.define
class PropertyMonitor:
    """Accumulates observations of honest replicas and reports violations."""

    finalized: dict[int, tuple[int, bytes]] = attrs.field(factory=dict)
    """height -> (first node seen, block hash)."""
    beacons: dict[int, bytes] = attrs.field(factory=dict)
    batches: dict[int, Batch] = attrs.field(factory=dict)
    found: list[Violation] = attrs.field(factory=list)

    def observe(self, sim: Simulation) -> None:
        """Record what the honest replicas hold now and check agreement-type properties."""
        for node in sim.honest_nodes():
            replica = sim.replicas[node]
            self._observe_finalized(node, replica.finalized_log, replica.finalized_parents)
            reader = replica.reader
            self._observe_notarized(node, reader)
            for h in range(reader.cup_height(), reader.beacon_height() + 1):
                beacon = reader.beacon_at(h)
                if beacon is None:
                    continue
                known = self.beacons.setdefault(h, beacon.signature)
                if known != beacon.signature:
                    self.found.append(Violation("beacon-unique", f"height {h} node {node}"))
            for batch in replica.batches_delivered:
                seen = self.batches.setdefault(batch.height, batch)
                if seen != batch:
                    self.found.append(
                        Violation("batches", f"height {batch.height} node {node} differs")
                    )

    def _observe_finalized(
        self, node: int, log: Mapping[Height, bytes], parents: Mapping[Height, bytes]
    ) -> None:
        for height, block_hash in log.items():
            first = self.finalized.setdefault(height, (node, block_hash))
            if first[1] != block_hash:
                self.found.append(
                    Violation(
                        "agreement",
                        f"height {height}: node {first[0]} finalized {first[1].hex()[:12]}, "
                        f"node {node} finalized {block_hash.hex()[:12]}",
                    )
                )
            below = log.get(Height(height - 1))
            parent = parents.get(height)
            if below is not None and parent is not None and parent != below:
                self.found.append(
                    Violation(
                        "chain", f"node {node}: finalized {height} does not extend {height - 1}"
                    )
                )

    def _observe_notarized(self, node: int, reader: PoolReader) -> None:
        # notarized = validated notarization or finalization (honest nodes finalize only
        # notarized blocks), or the CUP block at the CUP height
        low = reader.cup_height()
        below = {block.block_hash() for block in reader.notarized_blocks_at(low)}
        for h in range(low + 1, reader.notarized_height() + 1):
            here = reader.notarized_blocks_at(h)
            for block in here:
                if block.parent not in below:
                    self.found.append(
                        Violation(
                            "notarized-parent",
                            f"node {node}: block {block.block_hash().hex()[:12]} at {h} "
                            "has no notarized parent in its pool",
                        )
                    )
            below = {block.block_hash() for block in here}

    def violations(self) -> list[Violation]:
        """Return every violation found, each once."""
        return list(dict.fromkeys(self.found))

"""Deterministic discrete-event simulation of a subnet.

Theory of operation: one event queue ordered by (virtual time, sequence number) holds
message deliveries and replica ticks. A delivery puts the artifact into the receiver's
unvalidated pool and schedules a tick of the receiver at the next multiple of
``tick_granularity``; every replica also ticks every ``timer_interval`` so that
delays expire. After a tick the node's behaviour decides what is sent; the network
decides when (and whether) each copy arrives. Everything random comes from
``random.Random`` instances derived from the seed, so a run is replayed bit-exactly from
its seed: ``Trace.digest()`` is identical for identical seeds.

Spec: DESIGN.md "Pure core, I/O at the edges" (the simulator drives the same sans-I/O
components as the real transport); ICC paper §2 (network model).
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable, Mapping
from typing import Final

import attrs

from icp.consensus.artifacts import ConsensusArtifact
from icp.consensus.config import ConsensusConfig
from icp.consensus.crypto import ConsensusCrypto
from icp.consensus.genesis import SubnetSetup, make_replica, make_subnet
from icp.consensus.nidkg_backend import NidkgBackend
from icp.consensus.replica import ConsensusReplica
from icp.sim.byzantine import Behaviour, Honest
from icp.sim.network import LinkModel, Network
from icp.types import Height, Time

MILLIS = 1_000_000
DEFAULT_GRANULARITY: Final = Time(5 * MILLIS)
DEFAULT_TIMER: Final = Time(50 * MILLIS)


@attrs.define
class Trace:
    """What a run produced: finalized blocks per replica, timestamps, messages sent.

    The digest covers every event in order, so two runs agree on it only if they
    agree on everything.
    """

    finalized: dict[int, dict[int, bytes]] = attrs.field(factory=dict)
    """node -> height -> block hash."""
    finalized_at: dict[int, dict[int, int]] = attrs.field(factory=dict)
    """node -> height -> virtual time (ns) the replica saw it finalized."""
    stages: dict[int, dict[tuple[str, int], int]] = attrs.field(factory=dict)
    """node -> (stage, height) -> virtual time the replica first held it validated.

    Stages: ``beacon``, ``proposal``, ``notarized``, ``equivocation`` (a proof that the
    height's block maker equivocated); ``finalized_at`` has the finalizations.  Not part
    of the digest (it is derived from the same events)."""
    messages_sent: int = 0
    messages_delivered: int = 0
    _hasher: object = attrs.field(factory=hashlib.sha256, repr=False)

    def record(self, *fields: object) -> None:
        """Feed one event into the digest."""
        self._hasher.update(repr(fields).encode())  # type: ignore[attr-defined]

    def digest(self) -> str:
        """Return the hex digest of every event so far."""
        return str(self._hasher.hexdigest())  # type: ignore[attr-defined]


class Simulation:
    """A subnet of replicas on a virtual network.

    ``crypto`` is shared by all replicas of this process (wrap it in ``CachingCrypto``
    to verify each artifact once per process).
    """

    def __init__(
        self,
        config: ConsensusConfig,
        crypto: ConsensusCrypto,
        rng: random.Random,
        *,
        behaviours: Mapping[int, Behaviour] | None = None,
        link: LinkModel | None = None,
        setup: SubnetSetup | None = None,
        with_dkg: bool = False,
        tick_granularity: Time = DEFAULT_GRANULARITY,
        timer_interval: Time = DEFAULT_TIMER,
        on_batch: Callable[[int], Callable[..., bytes | None]] | None = None,
    ) -> None:
        if with_dkg and not crypto.is_secure:
            raise ValueError("NI-DKG needs real threshold keys: use RealCrypto with with_dkg")
        self.config = config
        self.crypto = crypto
        self.rng = rng
        self.setup = setup or make_subnet(
            config, crypto, rng.getrandbits(256).to_bytes(32, "big"), with_dkg=with_dkg
        )
        dkg = NidkgBackend(self.setup.membership) if with_dkg else None
        self.network = Network(config.n, random.Random(rng.getrandbits(64)), link)
        self.behaviours: dict[int, Behaviour] = {
            i: (behaviours or {}).get(i, Honest()) for i in range(config.n)
        }
        self.replicas: dict[int, ConsensusReplica] = {
            i: make_replica(
                self.setup,
                i,
                crypto,
                dkg=dkg,
                on_batch=None if on_batch is None else on_batch(i),
            )
            for i in range(config.n)
        }
        self.tick_granularity = tick_granularity
        self.timer_interval = timer_interval
        self.now = Time(0)
        self.trace = Trace()
        self._queue: list[tuple[int, int, int, int, ConsensusArtifact | None]] = []
        self._seq = 0
        self._pending_tick: dict[int, int] = {}
        self._stage_cursor: dict[int, dict[str, int]] = {}
        for i in range(config.n):
            self._schedule_tick(i, Time(0))
            self._push(Time(self.timer_interval), 1, i, None)

    # -- queue --------------------------------------------------------------------------

    def _push(self, at: Time, kind: int, node: int, artifact: ConsensusArtifact | None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, node, artifact))

    def _schedule_tick(self, node: int, at: Time) -> None:
        g = self.tick_granularity
        at = Time(-(-at // g) * g) if g > 0 else at
        if self._pending_tick.get(node) == at:
            return
        self._pending_tick[node] = at
        self._push(at, 0, node, None)

    # -- control ------------------------------------------------------------------------

    def add_replica(self, node: int, replica: ConsensusReplica) -> None:
        """Replace node ``node``'s replica (e.g. one restarted from a CUP)."""
        self.replicas[node] = replica
        self._schedule_tick(node, self.now)

    def honest_nodes(self) -> list[int]:
        """Return the nodes the properties hold to the protocol."""
        return [i for i, b in self.behaviours.items() if b.honest]

    def run_until(self, until: Time) -> None:
        """Process events up to virtual time ``until``."""
        while self._queue and self._queue[0][0] <= until:
            at, _, kind, node, artifact = heapq.heappop(self._queue)
            self.now = Time(at)
            behaviour = self.behaviours[node]
            if kind == 2:
                if (
                    artifact is not None
                    and behaviour.runs(self.now)
                    and behaviour.accepts(artifact)
                ):
                    self.trace.messages_delivered += 1
                    self.replicas[node].on_artifact(artifact)
                    self._schedule_tick(node, self.now)
            elif kind == 1:
                self._push(Time(at + self.timer_interval), 1, node, None)
                self._tick(node)
            else:
                if self._pending_tick.get(node) == at:
                    del self._pending_tick[node]
                self._tick(node)
        self.now = max(self.now, until)

    def run_until_height(self, height: int, max_time: Time) -> bool:
        """Run until every honest live replica finalized ``height`` (or ``max_time``)."""
        step = Time(100 * MILLIS)
        while self.now < max_time:
            self.run_until(Time(min(self.now + step, max_time)))
            if self.min_honest_finalized() >= height:
                return True
        return self.min_honest_finalized() >= height

    def min_honest_finalized(self) -> int:
        """Return the lowest finalized height among honest replicas."""
        return min(self.replicas[i].finalized_height() for i in self.honest_nodes())

    # -- internals ----------------------------------------------------------------------

    def _tick(self, node: int) -> None:
        behaviour = self.behaviours[node]
        if not behaviour.runs(self.now):
            return
        replica = self.replicas[node]
        produced = replica.tick(self.now)
        self._record_finalized(node, replica)
        self._record_stages(node, replica)
        for send in behaviour.outgoing(replica, self.now, produced):
            recipients = send.to if send.to is not None else range(self.config.n)
            key = send.artifact.artifact_hash()
            self.trace.messages_sent += 1
            self.trace.record("send", self.now, node, key)
            for dst in recipients:
                if dst == node:
                    continue
                for arrival in self.network.transmit(node, dst, self.now):
                    self._push(arrival, 2, dst, send.artifact)

    def _record_finalized(self, node: int, replica: ConsensusReplica) -> None:
        seen = self.trace.finalized.setdefault(node, {})
        times = self.trace.finalized_at.setdefault(node, {})
        for height, block_hash in replica.finalized_log.items():
            if height not in seen:
                seen[height] = block_hash
                times[height] = self.now
                self.trace.record("final", self.now, node, height, block_hash)

    def _record_stages(self, node: int, replica: ConsensusReplica) -> None:
        reader = replica.reader
        marks = self.trace.stages.setdefault(node, {})
        cursor = self._stage_cursor.setdefault(node, {})
        low = int(reader.cup_height())
        present: dict[str, Callable[[int], bool]] = {
            "beacon": lambda h: reader.beacon_at(h) is not None,
            "proposal": lambda h: bool(reader.proposals_at(h)),
            "notarized": lambda h: h <= reader.notarized_height(),
        }
        for stage, holds in present.items():
            h = max(cursor.get(stage, 1), low + 1)
            while holds(h):
                marks.setdefault((stage, h), self.now)
                h += 1
            cursor[stage] = h
        for h in range(int(reader.finalized_height()) + 1, cursor["proposal"]):
            if ("equivocation", h) not in marks and reader.equivocators_at(h):
                marks[("equivocation", h)] = self.now


def finalized_heights(sim: Simulation) -> dict[int, Height]:
    """Return each replica's finalized height."""
    return {i: r.finalized_height() for i, r in sim.replicas.items()}

"""The replicated state of one subnet at one height, as an immutable value.

Theory of operation.  After executing the batch of height ``h`` every replica of a
subnet holds the same ``ReplicatedState``: the batch time, every canister's state, the
ingress history (request statuses), the outgoing XNet streams (one per destination
subnet) and the subnet metadata that the certified state tree publishes (own and
other subnets' public keys, node keys and canister ranges, taken from the registry).
It is a value: deriving the next height's state (``with_canister``,
``with_ingress_history``, ``with_stream``, ``at_height``) returns a new state that
shares everything unchanged with the old one.  The big collections are persistent
maps (``PMap``), so an update copies O(log n) nodes — no canister memory is copied.

Canister *runtimes* (live Wasm instances and stable memory) are owned by the
execution layer and changed only inside its transactions; the state holds them by
reference, like the IC's copy-on-write page maps.

Spec: protocol digest §4.1 (pipeline per height: message routing → execution →
state manager commits the state of height h), §4.7 (certified parts of the state);
interface spec §"The system state tree" (``shared/spec/interface.md`` §2.3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from icp.execution.canister import CanisterState
from icp.messaging.queues import MessagingState
from icp.messaging.routing import CanisterIdRange, RoutingTable
from icp.messaging.xnet import Stream
from icp.nns.registry import Registry
from icp.principal import Principal
from icp.state.ingress_history import IngressHistory
from icp.state.pmap import PMap
from icp.types import Height, Time

ED25519_DER_PREFIX: Final = bytes.fromhex("302a300506032b6570032100")
"""RFC 8410 SubjectPublicKeyInfo prefix of a node's Ed25519 signing key (12 bytes)."""


class StateError(ValueError):
    """Raised for an inconsistent replicated state (unknown subnet, bad key encoding...)."""


def _node_keys(
    value: Mapping[Principal, bytes] | Iterable[tuple[Principal, bytes]],
) -> tuple[tuple[Principal, bytes], ...]:
    pairs = value.items() if isinstance(value, Mapping) else value
    out = tuple(sorted((p, bytes(k)) for p, k in pairs))
    for node_id, key in out:
        if len(key) != 44 or not key.startswith(ED25519_DER_PREFIX):
            raise StateError(
                f"node {node_id} key must be a 44-byte DER Ed25519 key (RFC 8410), "
                f"got {len(key)} bytes"
            )
    return out


@attrs.frozen
class SubnetTopology:
    """What the state tree says about one subnet: its threshold key and its nodes.

    Spec: interface spec §"Subnet information" (``/subnet/<id>/public_key``,
    ``/subnet/<id>/node/<node_id>/public_key``).
    """

    subnet_id: Principal
    public_key_der: bytes  # 133-byte DER BLS key (threshold key of the subnet)
    node_public_keys: tuple[tuple[Principal, bytes], ...] = attrs.field(
        default=(), converter=_node_keys
    )  # (node id, DER Ed25519 key), sorted by node id


def _sorted_subnets(subnets: Iterable[SubnetTopology]) -> tuple[SubnetTopology, ...]:
    out = tuple(sorted(subnets, key=lambda t: t.subnet_id))
    ids = [t.subnet_id for t in out]
    if len(set(ids)) != len(ids):
        raise StateError("a subnet appears twice in the network topology")
    return out


@attrs.frozen
class NetworkTopology:
    """All subnets and the routing table, as the registry version of the state says.

    Spec: protocol digest §4.4 (routing table), §3.4 (the NNS subnet's key is the root key).
    """

    subnets: tuple[SubnetTopology, ...] = attrs.field(converter=_sorted_subnets)
    routing_table: RoutingTable = attrs.Factory(RoutingTable)
    nns_subnet_id: Principal | None = None

    def subnet(self, subnet_id: Principal) -> SubnetTopology:
        """Return one subnet's record; raise ``StateError`` if unknown."""
        for record in self.subnets:
            if record.subnet_id == subnet_id:
                return record
        raise StateError(f"subnet {subnet_id} is not in the network topology")

    def canister_ranges(self, subnet_id: Principal) -> tuple[CanisterIdRange, ...]:
        """Return the canister-id ranges the routing table assigns to ``subnet_id``."""
        return self.routing_table.ranges_of(subnet_id)

    @classmethod
    def from_registry(cls, registry: Registry, version: int | None = None) -> NetworkTopology:
        """Return the network as ``registry`` says at ``version`` (default: latest).

        Each listed subnet with its threshold key and its members' signing keys, the
        routing table and the NNS subnet id.
        Spec: protocol digest §6.1 (replicas read the registry at a version), §4.4.
        """
        subnets = [
            SubnetTopology(
                subnet_id,
                registry.threshold_key(subnet_id, version),
                (
                    (node_id, registry.node_signing_key(node_id, version))
                    for node_id in registry.subnet_record(subnet_id, version).membership
                ),
            )
            for subnet_id in registry.subnet_ids(version)
        ]
        table = RoutingTable(
            (CanisterIdRange(e.start, e.end), e.subnet_id)
            for e in registry.routing_table(version).entries
        )
        return cls(tuple(subnets), table, registry.nns_subnet_id(version))


@attrs.frozen
class SubnetMetrics:
    """The values of ``/subnet/<id>/metrics`` (maintained by message routing).

    Spec: interface spec §"Subnet metrics" (num_canisters, canister_state_bytes,
    consumed_cycles_total, update_transactions_total).
    """

    canister_state_bytes: int = 0
    consumed_cycles_total: int = 0
    update_transactions_total: int = 0


def _canisters(value: Mapping[bytes, CanisterState]) -> PMap[CanisterState]:
    return value if isinstance(value, PMap) else PMap(value)


def _streams(value: Mapping[Any, Stream[Any]]) -> PMap[Stream[Any]]:
    if isinstance(value, PMap):
        return value
    return PMap({k.raw if isinstance(k, Principal) else bytes(k): v for k, v in value.items()})


@attrs.frozen
class ReplicatedState:
    """One subnet's state after executing the batch of ``height``.

    Spec: protocol digest §4.1, §4.7; interface spec §"The system state tree".
    """

    subnet_id: Principal
    topology: NetworkTopology
    height: Height = attrs.field(default=Height(0))
    time: Time = attrs.field(default=Time(0))  # batch time of the block at ``height`` (ns)
    canisters: PMap[CanisterState] = attrs.field(factory=PMap, converter=_canisters)
    ingress_history: IngressHistory = attrs.Factory(IngressHistory)
    streams: PMap[Stream[Any]] = attrs.field(factory=PMap, converter=_streams)
    # destination subnet id (raw bytes) → outgoing stream
    metrics: SubnetMetrics = SubnetMetrics()
    messaging: MessagingState = attrs.Factory(MessagingState)  # input queues, scheduler state

    def __attrs_post_init__(self) -> None:
        self.topology.subnet(self.subnet_id)  # own subnet must be known

    # ------------------------------------------------------------------ reading

    @property
    def own_subnet(self) -> SubnetTopology:
        """Return this subnet's topology record."""
        return self.topology.subnet(self.subnet_id)

    def canister(self, canister_id: Principal | bytes) -> CanisterState | None:
        """Return a canister's state, or None if this subnet has no such canister."""
        raw = canister_id.raw if isinstance(canister_id, Principal) else bytes(canister_id)
        return self.canisters.get(raw)

    def stream_to(self, subnet_id: Principal) -> Stream[Any]:
        """Return the outgoing stream towards ``subnet_id`` (empty if none yet)."""
        return self.streams.get(subnet_id.raw, Stream())

    def hosts(self, canister_id: Principal) -> bool:
        """Return whether the routing table assigns ``canister_id`` to this subnet."""
        return self.topology.routing_table.route(canister_id) == self.subnet_id

    # ------------------------------------------------------------------ deriving

    def at_height(self, height: Height, time: Time) -> ReplicatedState:
        """Return the state relabelled for the next batch (height and batch time).

        Raises ``StateError`` if height or time would go backwards.
        Spec: protocol digest §4.1 (batches in height order; batch time = block time).
        """
        if height < self.height or time < self.time:
            raise StateError(
                f"state cannot go back from height {self.height} / time {self.time} "
                f"to {height} / {time}"
            )
        return attrs.evolve(self, height=height, time=time)

    def with_canister(self, canister: CanisterState) -> ReplicatedState:
        """Return the state with ``canister`` added or replaced (O(log n), shared)."""
        return attrs.evolve(self, canisters=self.canisters.set(canister.canister_id, canister))

    def with_canisters(self, canisters: Iterable[CanisterState]) -> ReplicatedState:
        """Return the state with every canister in ``canisters`` added or replaced."""
        return attrs.evolve(
            self, canisters=self.canisters.update((c.canister_id, c) for c in canisters)
        )

    def without_canister(self, canister_id: bytes) -> ReplicatedState:
        """Return the state with a canister removed (deleted or migrated away)."""
        return attrs.evolve(self, canisters=self.canisters.remove(canister_id))

    def with_ingress_history(self, history: IngressHistory) -> ReplicatedState:
        """Return the state with a new ingress history."""
        return attrs.evolve(self, ingress_history=history)

    def with_stream(self, subnet_id: Principal, stream: Stream[Any]) -> ReplicatedState:
        """Return the state with the outgoing stream towards ``subnet_id`` replaced."""
        return attrs.evolve(self, streams=self.streams.set(subnet_id.raw, stream))

    def with_topology(self, topology: NetworkTopology) -> ReplicatedState:
        """Return the state with a new registry view (keys, nodes, routing table)."""
        return attrs.evolve(self, topology=topology)

    def with_metrics(self, metrics: SubnetMetrics) -> ReplicatedState:
        """Return the state with new subnet metrics."""
        return attrs.evolve(self, metrics=metrics)

    def with_messaging(self, messaging: MessagingState) -> ReplicatedState:
        """Return the state with new input queues / scheduler bookkeeping."""
        return attrs.evolve(self, messaging=messaging)

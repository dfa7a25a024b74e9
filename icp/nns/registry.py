"""The registry: versioned key -> record store that says what the network is.

Theory of operation.  The IC's registry (a canister on the NNS subnet) holds
versioned records: every applied batch of mutations is atomic, is checked against
global invariants, and bumps the registry version by one.  Replicas keep a local copy
and read it *at a version*: consensus pins one registry version per block
(``ValidationContext.registry_version``), so every replica of a subnet executes the
block with the same view of the network, and a change (a new subnet, a new routing
table) takes effect in each subnet at the first block that carries the new version.

``Registry`` is that store as an immutable value: ``apply`` returns the registry one
version later, or raises ``RegistryError`` if the result breaks an invariant;
``get(key, version)`` reads a record as it was at ``version``.  Versions start at 1
(the genesis records of the subnets an IC starts with).  Keys are the IC's key
strings (``subnet_list``, ``subnet_record_<id>``, ``routing_table``, ...); values are
typed records with the fields this implementation uses.

Where we differ on purpose: the IC stores protobuf values; we store frozen records
and persist them as CBOR (``encode``/``decode``).  ``SubnetRecord`` has only the
consensus parameters we run (unit delay, initial notary delay, DKG interval length),
the subnet's threshold key is a plain DER record instead of an NI-DKG transcript, and
``CatchUpPackageContentsRecord`` carries only the genesis height and time.  The
routing table is one ``routing_table`` record, as the IC kept it until it started
sharding it into ``canister_ranges_<first canister id>`` records.

Spec: protocol digest §6.1 (registry model: versioned records, one version per
mutation batch, invariants), §4.4 (routing table record), §1.6 (registry version in
the validation context); dfinity/ic ``rs/registry/keys`` (key strings).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar, Final, TypeVar

import attrs

from icp.crypto.hashing import EncodingError, cbor_decode, cbor_encode
from icp.principal import Principal
from icp.types import RegistryVersion

SUBNET_LIST_KEY: Final = "subnet_list"
ROUTING_TABLE_KEY: Final = "routing_table"
NNS_SUBNET_ID_KEY: Final = "nns_subnet_id"
NODE_SIGNING_PURPOSE: Final = 1
"""``KeyPurpose::NodeSigning`` in ``crypto_record_<node_id>_<purpose>`` keys."""


def subnet_record_key(subnet_id: Principal) -> str:
    """Return ``subnet_record_<subnet id>`` (dfinity/ic ``make_subnet_record_key``)."""
    return f"subnet_record_{subnet_id.to_text()}"


def threshold_key_key(subnet_id: Principal) -> str:
    """Return ``crypto_threshold_signing_public_key_<subnet id>``."""
    return f"crypto_threshold_signing_public_key_{subnet_id.to_text()}"


def node_signing_key_key(node_id: Principal) -> str:
    """Return ``crypto_record_<node id>_1`` (the node's Ed25519 signing key)."""
    return f"crypto_record_{node_id.to_text()}_{NODE_SIGNING_PURPOSE}"


def cup_contents_key(subnet_id: Principal) -> str:
    """Return ``catch_up_package_contents_<subnet id>``."""
    return f"catch_up_package_contents_{subnet_id.to_text()}"


class RegistryError(ValueError):
    """A mutation batch the registry refuses: it would break a global invariant.

    Spec: protocol digest §6.1 ("global invariants checked on every mutation").
    """


class SubnetType(enum.Enum):
    """``SubnetRecord.subnet_type`` (the IC's ``SubnetType`` names)."""

    APPLICATION = "application"
    SYSTEM = "system"


def _principals(value: Iterable[Principal]) -> tuple[Principal, ...]:
    return tuple(value)


def _blob(value: object) -> bytes:
    """Return a decoded CBOR byte string; raise ``TypeError`` for anything else."""
    if not isinstance(value, bytes | bytearray):
        raise TypeError(f"expected a byte string, got {type(value).__name__}")
    return bytes(value)


def _int(value: object) -> int:
    """Return a decoded CBOR unsigned integer; raise ``TypeError`` for anything else."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected an unsigned integer, got {value!r}")
    return value


def _principal(value: object) -> Principal:
    return Principal(_blob(value))


@attrs.frozen
class SubnetListRecord:
    """``subnet_list``: every subnet's id, in creation order."""

    TAG: ClassVar[str] = "subnet_list"
    subnets: tuple[Principal, ...] = attrs.field(converter=_principals)

    def to_cbor(self) -> Any:
        """Return the CBOR-encodable value."""
        return [p.raw for p in self.subnets]

    @classmethod
    def from_cbor(cls, value: Any) -> SubnetListRecord:
        """Inverse of ``to_cbor``."""
        return cls(_principal(v) for v in value)


@attrs.frozen
class SubnetRecord:
    """``subnet_record_<id>``: a subnet's members, type and consensus parameters.

    Spec: protocol digest §6.1 (SubnetRecord: membership = ordered node ids,
    subnet_type, unit_delay_millis, initial_notary_delay_millis, dkg_interval_length).
    """

    TAG: ClassVar[str] = "subnet_record"
    membership: tuple[Principal, ...] = attrs.field(converter=_principals)
    subnet_type: SubnetType
    unit_delay_millis: int
    initial_notary_delay_millis: int
    dkg_interval_length: int

    def to_cbor(self) -> Any:
        """Return the CBOR-encodable value."""
        return [
            [p.raw for p in self.membership],
            self.subnet_type.value,
            self.unit_delay_millis,
            self.initial_notary_delay_millis,
            self.dkg_interval_length,
        ]

    @classmethod
    def from_cbor(cls, value: Any) -> SubnetRecord:
        """Inverse of ``to_cbor``."""
        members, kind, unit, notary, interval = value
        return cls(
            (_principal(m) for m in members),
            SubnetType(kind),
            _int(unit),
            _int(notary),
            _int(interval),
        )


@attrs.frozen
class PublicKeyRecord:
    """A DER public key: a subnet's threshold key or a node's signing key."""

    TAG: ClassVar[str] = "public_key"
    der: bytes

    def to_cbor(self) -> Any:
        """Return the CBOR-encodable value."""
        return self.der

    @classmethod
    def from_cbor(cls, value: Any) -> PublicKeyRecord:
        """Inverse of ``to_cbor``."""
        return cls(_blob(value))


@attrs.frozen(order=True)
class RoutingTableEntry:
    """One closed canister-id range ``[start, end]`` and the subnet that hosts it."""

    start: Principal
    end: Principal
    subnet_id: Principal


def _entries(value: Iterable[RoutingTableEntry]) -> tuple[RoutingTableEntry, ...]:
    return tuple(sorted(value))


@attrs.frozen
class RoutingTableRecord:
    """``routing_table``: which subnet hosts which canister-id ranges.

    Spec: protocol digest §4.4 (list of (range, subnet), non-overlapping).
    """

    TAG: ClassVar[str] = "routing_table"
    entries: tuple[RoutingTableEntry, ...] = attrs.field(converter=_entries)

    def to_cbor(self) -> Any:
        """Return the CBOR-encodable value."""
        return [[e.start.raw, e.end.raw, e.subnet_id.raw] for e in self.entries]

    @classmethod
    def from_cbor(cls, value: Any) -> RoutingTableRecord:
        """Inverse of ``to_cbor``."""
        return cls(
            RoutingTableEntry(_principal(s), _principal(e), _principal(n)) for s, e, n in value
        )


@attrs.frozen
class SubnetIdRecord:
    """``nns_subnet_id``: the NNS subnet (its threshold key is the IC root key)."""

    TAG: ClassVar[str] = "subnet_id"
    subnet_id: Principal

    def to_cbor(self) -> Any:
        """Return the CBOR-encodable value."""
        return self.subnet_id.raw

    @classmethod
    def from_cbor(cls, value: Any) -> SubnetIdRecord:
        """Inverse of ``to_cbor``."""
        return cls(_principal(value))


@attrs.frozen
class CatchUpPackageContentsRecord:
    """``catch_up_package_contents_<id>``: where a new subnet's chain starts.

    The IC's record holds the initial NI-DKG transcripts too; ours the height and
    time of the genesis block (the keys are dealt from the IC's seed).
    """

    TAG: ClassVar[str] = "cup_contents"
    height: int
    time: int

    def to_cbor(self) -> Any:
        """Return the CBOR-encodable value."""
        return [self.height, self.time]

    @classmethod
    def from_cbor(cls, value: Any) -> CatchUpPackageContentsRecord:
        """Inverse of ``to_cbor``."""
        height, time = value
        return cls(_int(height), _int(time))


RegistryValue = (
    SubnetListRecord
    | SubnetRecord
    | PublicKeyRecord
    | RoutingTableRecord
    | SubnetIdRecord
    | CatchUpPackageContentsRecord
)
_RECORD_TYPES: Final[dict[str, Any]] = {
    cls.TAG: cls
    for cls in (
        SubnetListRecord,
        SubnetRecord,
        PublicKeyRecord,
        RoutingTableRecord,
        SubnetIdRecord,
        CatchUpPackageContentsRecord,
    )
}


@attrs.frozen
class RegistryMutation:
    """Set ``key`` to ``value`` (None: delete it)."""

    key: str
    value: RegistryValue | None


def upsert(key: str, value: RegistryValue) -> RegistryMutation:
    """Return the mutation that sets ``key`` to ``value``."""
    return RegistryMutation(key, value)


@attrs.frozen
class Registry:
    """The registry's records at every version, as an immutable value.

    ``changes[v - 1]`` is the mutation batch that made version ``v``.
    Spec: protocol digest §6.1.
    """

    changes: tuple[tuple[RegistryMutation, ...], ...] = ()

    @property
    def latest_version(self) -> RegistryVersion:
        """The newest version (0: empty registry)."""
        return RegistryVersion(len(self.changes))

    def get(self, key: str, version: int | None = None) -> RegistryValue | None:
        """Return ``key``'s record at ``version`` (default: latest); None if absent.

        Raises ``RegistryError`` for a version the registry does not have yet.
        """
        version = self._version(version)
        for batch in reversed(self.changes[:version]):
            for mutation in reversed(batch):
                if mutation.key == key:
                    return mutation.value
        return None

    def _version(self, version: int | None) -> int:
        if version is None:
            return self.latest_version
        if not 0 <= version <= self.latest_version:
            raise RegistryError(
                f"registry version {version} is not known (latest: {self.latest_version})"
            )
        return version

    def apply(self, mutations: Sequence[RegistryMutation]) -> Registry:
        """Return the registry one version later, with ``mutations`` applied atomically.

        Raises ``RegistryError`` (and changes nothing) if the batch is empty or the
        result breaks an invariant.
        Spec: protocol digest §6.1.
        """
        if not mutations:
            raise RegistryError("a mutation batch must change something")
        applied = Registry((*self.changes, tuple(mutations)))
        check_invariants(applied)
        return applied

    # -- typed reads ----------------------------------------------------------------------

    def subnet_ids(self, version: int | None = None) -> tuple[Principal, ...]:
        """Return every subnet's id at ``version``, in creation order."""
        record = self.get(SUBNET_LIST_KEY, version)
        return record.subnets if isinstance(record, SubnetListRecord) else ()

    def subnet_record(self, subnet_id: Principal, version: int | None = None) -> SubnetRecord:
        """Return a subnet's record; raise ``RegistryError`` if it has none."""
        return _typed(self.get(subnet_record_key(subnet_id), version), SubnetRecord, subnet_id)

    def threshold_key(self, subnet_id: Principal, version: int | None = None) -> bytes:
        """Return a subnet's threshold public key (DER)."""
        key = threshold_key_key(subnet_id)
        return _typed(self.get(key, version), PublicKeyRecord, key).der

    def node_signing_key(self, node_id: Principal, version: int | None = None) -> bytes:
        """Return a node's Ed25519 signing key (DER)."""
        key = node_signing_key_key(node_id)
        return _typed(self.get(key, version), PublicKeyRecord, key).der

    def routing_table(self, version: int | None = None) -> RoutingTableRecord:
        """Return the routing table (empty if none was set)."""
        record = self.get(ROUTING_TABLE_KEY, version)
        return record if isinstance(record, RoutingTableRecord) else RoutingTableRecord(())

    def nns_subnet_id(self, version: int | None = None) -> Principal | None:
        """Return the NNS subnet's id (None: not set)."""
        record = self.get(NNS_SUBNET_ID_KEY, version)
        return record.subnet_id if isinstance(record, SubnetIdRecord) else None

    def cup_contents(
        self, subnet_id: Principal, version: int | None = None
    ) -> CatchUpPackageContentsRecord:
        """Return where a subnet's chain starts."""
        key = cup_contents_key(subnet_id)
        return _typed(self.get(key, version), CatchUpPackageContentsRecord, key)

    # -- persistence ----------------------------------------------------------------------

    def encode(self) -> bytes:
        """Return the whole change log as CBOR (what ``decode`` reads back)."""
        return cbor_encode(
            [
                [
                    [m.key, None if m.value is None else m.value.TAG]
                    + ([] if m.value is None else [m.value.to_cbor()])
                    for m in batch
                ]
                for batch in self.changes
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> Registry:
        """Read a change log written by ``encode``; raise ``RegistryError`` if malformed.

        Every version is checked against the invariants again.
        """
        try:
            raw: Any = cbor_decode(data, max_bytes=len(data))
            registry = cls()
            for batch in raw:
                mutations = []
                for entry in batch:
                    key, tag = entry[0], entry[1]
                    if not isinstance(key, str):
                        raise TypeError(f"a registry key must be text, got {key!r}")
                    value = None if tag is None else _RECORD_TYPES[tag].from_cbor(entry[2])
                    mutations.append(RegistryMutation(key, value))
                registry = registry.apply(mutations)
        except (EncodingError, KeyError, IndexError, TypeError, ValueError) as exc:
            if isinstance(exc, RegistryError):
                raise
            raise RegistryError(f"malformed registry change log: {exc}") from None
        return registry

    def records(self, version: int | None = None) -> Iterator[tuple[str, RegistryValue]]:
        """Yield every ``(key, record)`` present at ``version``, by key."""
        version = self._version(version)
        latest: dict[str, RegistryValue | None] = {}
        for batch in self.changes[:version]:
            for mutation in batch:
                latest[mutation.key] = mutation.value
        for key in sorted(latest):
            value = latest[key]
            if value is not None:
                yield key, value


_R = TypeVar("_R")


def _typed(value: object, kind: type[_R], what: object) -> _R:
    if not isinstance(value, kind):
        raise RegistryError(f"the registry has no {kind.__name__} for {what}")
    return value


def check_invariants(registry: Registry) -> None:
    """Raise ``RegistryError`` unless the latest version is consistent.

    Every listed subnet has a subnet record and a threshold key; every member node has
    a signing key and belongs to one subnet only; routing-table ranges are well formed,
    do not overlap and name listed subnets; the NNS subnet is listed.
    Spec: protocol digest §6.1 (invariant examples).
    """
    subnets = registry.subnet_ids()
    if len(set(subnets)) != len(subnets):
        raise RegistryError("a subnet is listed twice in subnet_list")
    owner: dict[Principal, Principal] = {}
    for subnet_id in subnets:
        record = registry.subnet_record(subnet_id)
        registry.threshold_key(subnet_id)
        if not record.membership:
            raise RegistryError(f"subnet {subnet_id} has no nodes")
        for node_id in record.membership:
            registry.node_signing_key(node_id)
            if node_id in owner:
                raise RegistryError(
                    f"node {node_id} is in subnet {owner[node_id]} and in subnet {subnet_id}"
                )
            owner[node_id] = subnet_id
    previous: RoutingTableEntry | None = None
    for entry in registry.routing_table().entries:
        if entry.start > entry.end:
            raise RegistryError(f"routing table range {entry.start}..{entry.end} is inverted")
        if entry.subnet_id not in subnets:
            raise RegistryError(f"routing table names unknown subnet {entry.subnet_id}")
        if previous is not None and entry.start <= previous.end:
            raise RegistryError(
                f"routing table ranges {previous.start}..{previous.end} and "
                f"{entry.start}..{entry.end} overlap"
            )
        previous = entry
    nns = registry.nns_subnet_id()
    if nns is not None and nns not in subnets:
        raise RegistryError(f"the NNS subnet {nns} is not in subnet_list")


__all__ = [
    "CatchUpPackageContentsRecord",
    "PublicKeyRecord",
    "Registry",
    "RegistryError",
    "RegistryMutation",
    "RegistryValue",
    "RoutingTableEntry",
    "RoutingTableRecord",
    "SubnetIdRecord",
    "SubnetListRecord",
    "SubnetRecord",
    "SubnetType",
    "check_invariants",
    "cup_contents_key",
    "node_signing_key_key",
    "subnet_record_key",
    "threshold_key_key",
    "upsert",
]

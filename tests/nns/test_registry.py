"""The registry: versioned reads, deletion, every invariant, the CBOR change log, topology.

Spec: protocol digest §6.1 (versioned records, one version per mutation batch, global
invariants), §4.4 (routing table: non-overlapping ranges naming known subnets).
"""

from __future__ import annotations

import hashlib

import pytest

from icp.crypto.hashing import cbor_encode
from icp.messaging.routing import CanisterIdRange
from icp.nns.registry import (
    NNS_SUBNET_ID_KEY,
    ROUTING_TABLE_KEY,
    SUBNET_LIST_KEY,
    CatchUpPackageContentsRecord,
    PublicKeyRecord,
    Registry,
    RegistryError,
    RegistryMutation,
    RoutingTableEntry,
    RoutingTableRecord,
    SubnetIdRecord,
    SubnetListRecord,
    SubnetRecord,
    SubnetType,
    cup_contents_key,
    node_signing_key_key,
    subnet_record_key,
    threshold_key_key,
    upsert,
)
from icp.principal import Principal
from icp.state.replicated_state import ED25519_DER_PREFIX, NetworkTopology

# -- builders ------------------------------------------------------------------------------


def node_key(tag: str) -> bytes:
    """A 44-byte DER Ed25519 key (RFC 8410 prefix + 32 bytes) derived from ``tag``."""
    return ED25519_DER_PREFIX + hashlib.sha256(tag.encode()).digest()


def node_id(tag: str) -> Principal:
    return Principal.self_authenticating(node_key(tag))


def subnet_id(tag: str) -> Principal:
    return Principal.self_authenticating(threshold_der(tag))


def threshold_der(tag: str) -> bytes:
    return b"threshold-key-" + tag.encode()


def canister(index: int) -> Principal:
    return Principal.from_canister_index(index)


def entry(first: int, last: int, subnet: str) -> RoutingTableEntry:
    return RoutingTableEntry(canister(first), canister(last), subnet_id(subnet))


def route(registry: Registry, version: int, canister_id: Principal) -> Principal | None:
    """The subnet the registry's routing table at ``version`` assigns ``canister_id`` to."""
    return NetworkTopology.from_registry(registry, version).routing_table.route(canister_id)


def subnet_records(
    tag: str, nodes: int = 2, *, kind: SubnetType = SubnetType.APPLICATION
) -> list[RegistryMutation]:
    """Record, threshold key, member signing keys and CUP contents of subnet ``tag``."""
    members = [f"{tag}-node-{i}" for i in range(nodes)]
    sid = subnet_id(tag)
    return [
        upsert(
            subnet_record_key(sid), SubnetRecord((node_id(m) for m in members), kind, 1000, 300, 9)
        ),
        upsert(threshold_key_key(sid), PublicKeyRecord(threshold_der(tag))),
        *(upsert(node_signing_key_key(node_id(m)), PublicKeyRecord(node_key(m))) for m in members),
        upsert(cup_contents_key(sid), CatchUpPackageContentsRecord(0, 42)),
    ]


def listing(*tags: str) -> RegistryMutation:
    return upsert(SUBNET_LIST_KEY, SubnetListRecord(subnet_id(t) for t in tags))


def table(*entries: RoutingTableEntry) -> RegistryMutation:
    return upsert(ROUTING_TABLE_KEY, RoutingTableRecord(entries))


def two_subnets() -> Registry:
    """Version 1: an NNS subnet ``nns`` (ids 0..9) and an application subnet ``app``."""
    return Registry().apply(
        [
            *subnet_records("nns", 3, kind=SubnetType.SYSTEM),
            *subnet_records("app", 2),
            listing("nns", "app"),
            table(entry(0, 9, "nns"), entry(100, 199, "app")),
            upsert(NNS_SUBNET_ID_KEY, SubnetIdRecord(subnet_id("nns"))),
        ]
    )


def rejected(registry: Registry, mutations: list[RegistryMutation], words: str) -> None:
    """Assert ``apply`` refuses ``mutations`` with a reason containing ``words``."""
    with pytest.raises(RegistryError, match=words):
        registry.apply(mutations)


# -- versions and reads --------------------------------------------------------------------


def test_versions_start_at_one_and_each_batch_adds_one() -> None:
    empty = Registry()
    assert empty.latest_version == 0
    assert empty.subnet_ids() == () and empty.nns_subnet_id() is None
    v1 = two_subnets()
    assert v1.latest_version == 1
    v2 = v1.apply([table(entry(0, 9, "nns"), entry(100, 299, "app"))])
    assert v2.latest_version == 2
    assert v1.latest_version == 1  # apply returned a new value; v1 is unchanged


def test_reads_at_an_older_version_see_the_records_of_that_version() -> None:
    v1 = two_subnets()
    v2 = v1.apply([table(entry(0, 9, "nns"), entry(100, 299, "app"))])
    v3 = v2.apply(
        [
            *subnet_records("third"),
            listing("nns", "app", "third"),
            table(*v2.routing_table().entries, entry(300, 399, "third")),
        ]
    )
    assert route(v3, 1, canister(250)) is None
    assert route(v3, 2, canister(250)) == subnet_id("app")
    assert route(v3, 3, canister(350)) == subnet_id("third")
    assert v3.routing_table(0) == RoutingTableRecord(())
    assert v3.subnet_ids(1) == v3.subnet_ids(2) == (subnet_id("nns"), subnet_id("app"))
    assert v3.subnet_ids() == (subnet_id("nns"), subnet_id("app"), subnet_id("third"))
    with pytest.raises(RegistryError, match="no SubnetRecord"):
        v3.subnet_record(subnet_id("third"), 2)
    assert v3.subnet_record(subnet_id("third"), 3).membership == (
        node_id("third-node-0"),
        node_id("third-node-1"),
    )
    assert v3.threshold_key(subnet_id("app"), 1) == threshold_der("app")
    assert v3.node_signing_key(node_id("app-node-1"), 1) == node_key("app-node-1")
    assert v3.cup_contents(subnet_id("third")) == CatchUpPackageContentsRecord(0, 42)
    assert v3.nns_subnet_id(1) == subnet_id("nns")
    assert dict(v3.records(1)) == dict(v1.records())
    assert dict(v3.records(0)) == {}
    assert ROUTING_TABLE_KEY in dict(v3.records(2))


def test_a_later_mutation_of_a_key_in_the_same_batch_wins() -> None:
    v1 = two_subnets()
    v2 = v1.apply([table(entry(0, 1, "nns")), table(entry(0, 9, "nns"), entry(100, 150, "app"))])
    assert v2.routing_table() == RoutingTableRecord((entry(0, 9, "nns"), entry(100, 150, "app")))
    assert dict(v2.records())[ROUTING_TABLE_KEY] == v2.routing_table()


def test_deleting_a_record_hides_it_from_that_version_on_only() -> None:
    v1 = two_subnets()
    extra = "some_unrelated_key"
    v2 = v1.apply([upsert(extra, PublicKeyRecord(b"x"))])
    v3 = v2.apply([RegistryMutation(extra, None)])
    assert v3.get(extra, 2) == PublicKeyRecord(b"x")
    assert v3.get(extra, 3) is None and v3.get(extra) is None
    assert v3.get(extra, 1) is None
    assert extra in dict(v3.records(2)) and extra not in dict(v3.records(3))
    v4 = v3.apply([upsert(extra, PublicKeyRecord(b"y"))])  # re-added later
    assert v4.get(extra) == PublicKeyRecord(b"y") and v4.get(extra, 3) is None
    # Removing a subnet: delete its records, list and routes together.
    v5 = v4.apply(
        [
            *(RegistryMutation(m.key, None) for m in subnet_records("app")),
            listing("nns"),
            table(entry(0, 9, "nns")),
        ]
    )
    assert v5.subnet_ids() == (subnet_id("nns"),)
    with pytest.raises(RegistryError):
        v5.subnet_record(subnet_id("app"))
    assert v5.subnet_record(subnet_id("app"), 4).membership[0] == node_id("app-node-0")


def test_an_unknown_version_is_an_error() -> None:
    v1 = two_subnets()
    for version in (2, 17, -1):
        with pytest.raises(RegistryError, match="not known"):
            v1.get(SUBNET_LIST_KEY, version)
        with pytest.raises(RegistryError, match="not known"):
            list(v1.records(version))
    with pytest.raises(RegistryError, match="not known"):
        v1.routing_table(2)
    with pytest.raises(RegistryError, match="not known"):
        NetworkTopology.from_registry(v1, 2)


# -- invariants ----------------------------------------------------------------------------


def test_an_empty_batch_is_refused() -> None:
    rejected(Registry(), [], "must change something")
    rejected(two_subnets(), [], "must change something")


def test_overlapping_ranges_are_refused() -> None:
    v1 = two_subnets()
    rejected(v1, [table(entry(0, 100, "nns"), entry(100, 199, "app"))], "overlap")
    rejected(v1, [table(entry(0, 9, "nns"), entry(5, 6, "app"))], "overlap")  # nested
    rejected(v1, [table(entry(0, 9, "nns"), entry(0, 9, "app"))], "overlap")  # identical
    # Adjacent is fine.
    assert v1.apply([table(entry(0, 99, "nns"), entry(100, 199, "app"))]).latest_version == 2


def test_an_inverted_range_is_refused() -> None:
    rejected(two_subnets(), [table(entry(9, 0, "nns"))], "inverted")


def test_a_route_to_an_unknown_subnet_is_refused() -> None:
    v1 = two_subnets()
    rejected(v1, [table(entry(0, 9, "nns"), entry(200, 299, "ghost"))], "unknown subnet")
    # Unlisting a subnet that still has routes is refused too.
    rejected(v1, [listing("nns")], "unknown subnet")


def test_a_node_in_two_subnets_is_refused() -> None:
    v1 = two_subnets()
    shared = node_id("app-node-0")
    record = SubnetRecord((node_id("x-node-0"), shared), SubnetType.APPLICATION, 1000, 300, 9)
    rejected(
        v1,
        [
            *subnet_records("x"),
            upsert(subnet_record_key(subnet_id("x")), record),
            listing("nns", "app", "x"),
        ],
        "is in subnet",
    )


def test_a_listed_subnet_needs_a_record_and_a_threshold_key() -> None:
    v1 = two_subnets()
    records = subnet_records("x")
    without_record = [m for m in records if not m.key.startswith("subnet_record_")]
    rejected(v1, [*without_record, listing("nns", "app", "x")], "no SubnetRecord")
    without_key = [m for m in records if not m.key.startswith("crypto_threshold")]
    rejected(v1, [*without_key, listing("nns", "app", "x")], "no PublicKeyRecord")
    # Deleting an existing subnet's threshold key or record is refused as well.
    rejected(v1, [RegistryMutation(threshold_key_key(subnet_id("app")), None)], "no PublicKey")
    rejected(v1, [RegistryMutation(subnet_record_key(subnet_id("app")), None)], "no SubnetRecord")
    # The records alone, unlisted, are fine.
    assert v1.apply(records).latest_version == 2


def test_a_member_needs_a_signing_key() -> None:
    v1 = two_subnets()
    rejected(
        v1,
        [RegistryMutation(node_signing_key_key(node_id("app-node-1")), None)],
        "no PublicKeyRecord",
    )
    without = [m for m in subnet_records("x") if m.key != node_signing_key_key(node_id("x-node-1"))]
    rejected(v1, [*without, listing("nns", "app", "x")], "no PublicKeyRecord")


def test_a_subnet_without_nodes_is_refused() -> None:
    v1 = two_subnets()
    empty = SubnetRecord((), SubnetType.APPLICATION, 1000, 300, 9)
    rejected(v1, [upsert(subnet_record_key(subnet_id("app")), empty)], "no nodes")


def test_the_nns_subnet_must_be_listed() -> None:
    v1 = two_subnets()
    rejected(v1, [upsert(NNS_SUBNET_ID_KEY, SubnetIdRecord(subnet_id("ghost")))], "NNS subnet")
    rejected(Registry(), [upsert(NNS_SUBNET_ID_KEY, SubnetIdRecord(subnet_id("nns")))], "NNS")
    # Pointing the NNS id at another listed subnet is allowed.
    assert v1.apply([upsert(NNS_SUBNET_ID_KEY, SubnetIdRecord(subnet_id("app")))]).nns_subnet_id()


def test_a_subnet_listed_twice_is_refused() -> None:
    v1 = two_subnets()
    rejected(v1, [listing("nns", "app", "nns")], "listed twice")


def test_a_refused_batch_changes_nothing() -> None:
    v1 = two_subnets()
    before = v1.encode()
    rejected(v1, [table(entry(0, 9, "nns"), entry(5, 6, "app"))], "overlap")
    assert v1.latest_version == 1 and v1.encode() == before


# -- persistence ---------------------------------------------------------------------------


def test_the_change_log_round_trips_with_deletions() -> None:
    v1 = two_subnets()
    v2 = v1.apply([upsert("k", PublicKeyRecord(b"x"))])
    v3 = v2.apply([RegistryMutation("k", None)])
    decoded = Registry.decode(v3.encode())
    assert decoded == v3
    assert decoded.get("k", 2) == PublicKeyRecord(b"x") and decoded.get("k") is None
    assert Registry.decode(Registry().encode()) == Registry()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\x00garbage",
        cbor_encode(7),
        cbor_encode([[["k", "no-such-tag", b"x"]]]),
        cbor_encode([[["k", "public_key"]]]),  # value missing
        cbor_encode([[["k", "subnet_record", [1, 2]]]]),  # wrong arity
        cbor_encode([[["k", "subnet_record", [[], "martian", 1, 2, 3]]]]),  # bad enum
        cbor_encode([[]]),  # an empty batch
        cbor_encode([[[SUBNET_LIST_KEY, "subnet_list", [b"\x01"]]]]),  # breaks an invariant
    ],
    ids=[
        "empty",
        "garbage",
        "not-a-list",
        "unknown-tag",
        "missing-value",
        "wrong-arity",
        "bad-enum",
        "empty-batch",
        "invariant",
    ],
)
def test_malformed_change_logs_raise_registry_error(data: bytes) -> None:
    with pytest.raises(RegistryError):
        Registry.decode(data)


def test_a_truncated_change_log_is_refused() -> None:
    data = two_subnets().encode()
    for cut in (1, len(data) // 2, len(data) - 1):
        with pytest.raises(RegistryError):
            Registry.decode(data[:cut])


# -- network topology ----------------------------------------------------------------------


def test_topology_from_a_two_subnet_registry() -> None:
    v1 = two_subnets()
    v2 = v1.apply([table(entry(0, 9, "nns"), entry(100, 299, "app"))])
    topology = NetworkTopology.from_registry(v2, 1)
    assert {s.subnet_id for s in topology.subnets} == {subnet_id("nns"), subnet_id("app")}
    assert topology.nns_subnet_id == subnet_id("nns")
    nns = topology.subnet(subnet_id("nns"))
    assert nns.public_key_der == threshold_der("nns")
    assert dict(nns.node_public_keys) == {
        node_id(f"nns-node-{i}"): node_key(f"nns-node-{i}") for i in range(3)
    }
    assert topology.canister_ranges(subnet_id("app")) == (CanisterIdRange.from_indices(100, 199),)
    assert topology.routing_table.route(canister(5)) == subnet_id("nns")
    assert topology.routing_table.route(canister(250)) is None
    latest = NetworkTopology.from_registry(v2)
    assert latest == NetworkTopology.from_registry(v2, 2) != topology
    assert latest.routing_table.route(canister(250)) == subnet_id("app")
    assert latest.subnets == topology.subnets  # only the routing table changed
    assert NetworkTopology.from_registry(Registry.decode(v2.encode()), 1) == topology


@pytest.mark.parametrize("value", [3, 2**63, 2**40], ids=["small-int", "huge-int", "alloc-bomb"])
def test_an_integer_where_key_bytes_belong_is_malformed(value: int) -> None:
    with pytest.raises(RegistryError, match="byte string"):
        Registry.decode(cbor_encode([[["k", "public_key", value]]]))


def test_a_key_that_is_not_text_is_malformed() -> None:
    with pytest.raises(RegistryError, match="key must be text"):
        Registry.decode(cbor_encode([[[5, None]]]))

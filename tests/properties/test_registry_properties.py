"""Registry properties: versioned reads replay the change log; refusals are exact and pure.

Random sequences of mutation batches (add a subnet with a random range, move a range,
replace the routing table, remove a subnet, delete and re-add records, write a key
twice in one batch, repoint the NNS id, delete a member's key, empty batches) are
applied one by one.  An independent,
naive oracle (a plain dict replay and invariant checks written from the spec, not from
``check_invariants``) predicts whether each batch is accepted.  Then:

* ``apply`` accepts exactly the batches the oracle accepts; a refused batch raises
  ``RegistryError`` and leaves the registry value unchanged;
* for every version v and every key ever written, ``get(k, v)`` and ``records(v)``
  equal the naive replay of batches 1..v;
* ``Registry.decode(r.encode()) == r``.

Spec: protocol digest §6.1 (versioned records, atomic batches, global invariants),
§4.4 (routing table: non-overlapping ranges naming subnets).
"""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from icp.nns.registry import (
    NNS_SUBNET_ID_KEY,
    ROUTING_TABLE_KEY,
    SUBNET_LIST_KEY,
    CatchUpPackageContentsRecord,
    PublicKeyRecord,
    Registry,
    RegistryError,
    RegistryMutation,
    RegistryValue,
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
from icp.state.replicated_state import ED25519_DER_PREFIX

TAGS = 4
NODES = 2

Model = dict[str, RegistryValue]

# -- identities ----------------------------------------------------------------------------


def _node_key(tag: int, i: int) -> bytes:
    return ED25519_DER_PREFIX + hashlib.sha256(f"node-{tag}-{i}".encode()).digest()


def _node(tag: int, i: int) -> Principal:
    return Principal.self_authenticating(_node_key(tag, i))


def _threshold(tag: int) -> bytes:
    return f"threshold-{tag}".encode()


def _subnet(tag: int) -> Principal:
    return Principal.self_authenticating(_threshold(tag))


def _entry(start: int, length: int, tag: int) -> RoutingTableEntry:
    return RoutingTableEntry(
        Principal.from_canister_index(start),
        Principal.from_canister_index(start + length),
        _subnet(tag),
    )


def _subnet_keys(tag: int) -> list[str]:
    sid = _subnet(tag)
    return [
        subnet_record_key(sid),
        threshold_key_key(sid),
        *(node_signing_key_key(_node(tag, i)) for i in range(NODES)),
        cup_contents_key(sid),
    ]


# -- the naive oracle ----------------------------------------------------------------------


def replay(batches: list[list[RegistryMutation]]) -> Model:
    """Return the records after ``batches``, by applying each mutation in order."""
    model: dict[str, RegistryValue | None] = {}
    for batch in batches:
        for mutation in batch:
            model[mutation.key] = mutation.value
    return {k: v for k, v in model.items() if v is not None}


def violations(model: Model) -> list[str]:
    """Return every invariant ``model`` breaks (spec §6.1), checked the simple way."""
    found: list[str] = []
    listed_record = model.get(SUBNET_LIST_KEY)
    listed = list(listed_record.subnets) if isinstance(listed_record, SubnetListRecord) else []
    if len(listed) != len(set(listed)):
        found.append("duplicate subnet")
    owners: dict[Principal, set[Principal]] = {}
    for sid in set(listed):
        record = model.get(subnet_record_key(sid))
        if not isinstance(record, SubnetRecord):
            found.append("no subnet record")
            continue
        if not isinstance(model.get(threshold_key_key(sid)), PublicKeyRecord):
            found.append("no threshold key")
        if not record.membership:
            found.append("no nodes")
        for node in record.membership:
            owners.setdefault(node, set()).add(sid)
            if not isinstance(model.get(node_signing_key_key(node)), PublicKeyRecord):
                found.append("no signing key")
    if any(len(subnets) > 1 for subnets in owners.values()):
        found.append("node in two subnets")
    table = model.get(ROUTING_TABLE_KEY)
    entries = list(table.entries) if isinstance(table, RoutingTableRecord) else []
    for i, a in enumerate(entries):
        if a.start > a.end:
            found.append("inverted range")
        if a.subnet_id not in listed:
            found.append("route to unknown subnet")
        for b in entries[i + 1 :]:
            if a.start <= b.end and b.start <= a.end:
                found.append("overlap")
    nns = model.get(NNS_SUBNET_ID_KEY)
    if isinstance(nns, SubnetIdRecord) and nns.subnet_id not in listed:
        found.append("NNS not listed")
    return found


# -- operations: plain data, interpreted against the current records -------------------------

OPS = st.one_of(
    st.tuples(
        st.just("add"),
        st.integers(0, TAGS - 1),
        st.integers(0, 120),
        st.integers(0, 30),
        st.booleans(),
    ),
    st.tuples(st.just("move"), st.integers(0, 7), st.integers(0, TAGS - 1)),
    st.tuples(
        st.just("ranges"),
        st.lists(
            st.tuples(st.integers(0, 120), st.integers(0, 30), st.integers(0, TAGS - 1)),
            max_size=4,
        ),
    ),
    st.tuples(st.just("remove"), st.integers(0, TAGS - 1), st.booleans()),
    st.tuples(st.just("extra"), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("twice"), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("nodekey"), st.integers(0, TAGS - 1), st.integers(0, NODES - 1)),
    st.tuples(st.just("nns"), st.integers(0, TAGS - 1)),
    st.just(("empty",)),
)


def _listed(model: Model) -> list[Principal]:
    record = model.get(SUBNET_LIST_KEY)
    return list(record.subnets) if isinstance(record, SubnetListRecord) else []


def _entries(model: Model) -> list[RoutingTableEntry]:
    record = model.get(ROUTING_TABLE_KEY)
    return list(record.entries) if isinstance(record, RoutingTableRecord) else []


def _tag_of(sid: Principal) -> int:
    return next(t for t in range(TAGS) if _subnet(t) == sid)


def batch_for(op: tuple[Any, ...], model: Model) -> list[RegistryMutation]:
    """Return the mutation batch ``op`` stands for, given the current records."""
    kind = op[0]
    if kind == "add":
        _, tag, start, length, share = op
        members = [_node(tag, i) for i in range(NODES)]
        others = [sid for sid in _listed(model) if sid != _subnet(tag)]
        if share and others:  # borrow a node of another listed subnet
            members[-1] = _node(_tag_of(others[0]), 0)
        sid = _subnet(tag)
        record = SubnetRecord(members, SubnetType.APPLICATION, 1000, 300, 9)
        return [
            upsert(subnet_record_key(sid), record),
            upsert(threshold_key_key(sid), PublicKeyRecord(_threshold(tag))),
            *(
                upsert(node_signing_key_key(_node(tag, i)), PublicKeyRecord(_node_key(tag, i)))
                for i in range(NODES)
            ),
            upsert(cup_contents_key(sid), CatchUpPackageContentsRecord(0, tag)),
            upsert(SUBNET_LIST_KEY, SubnetListRecord([*_listed(model), sid])),
            upsert(
                ROUTING_TABLE_KEY,
                RoutingTableRecord([*_entries(model), _entry(start, length, tag)]),
            ),
        ]
    if kind == "move":
        _, index, tag = op
        entries = _entries(model)
        if not entries:
            return []
        i = index % len(entries)
        entries[i] = RoutingTableEntry(entries[i].start, entries[i].end, _subnet(tag))
        return [upsert(ROUTING_TABLE_KEY, RoutingTableRecord(entries))]
    if kind == "ranges":
        table = RoutingTableRecord(_entry(s, n, t) for s, n, t in op[1])
        return [upsert(ROUTING_TABLE_KEY, table)]
    if kind == "remove":
        _, tag, drop_routes = op
        sid = _subnet(tag)
        batch = [RegistryMutation(key, None) for key in _subnet_keys(tag)]
        batch.append(
            upsert(SUBNET_LIST_KEY, SubnetListRecord(s for s in _listed(model) if s != sid))
        )
        if drop_routes:
            kept = [e for e in _entries(model) if e.subnet_id != sid]
            batch.append(upsert(ROUTING_TABLE_KEY, RoutingTableRecord(kept)))
        return batch
    if kind == "extra":
        _, index, present = op
        value = PublicKeyRecord(f"extra-{index}".encode()) if present else None
        return [RegistryMutation(f"extra_{index}", value)]
    if kind == "twice":  # two writes of one key in a batch: the later one counts
        _, index, delete_last = op
        first = PublicKeyRecord(f"first-{index}".encode())
        last = None if delete_last else PublicKeyRecord(f"last-{index}".encode())
        return [upsert(f"extra_{index}", first), RegistryMutation(f"extra_{index}", last)]
    if kind == "nodekey":
        _, tag, i = op
        return [RegistryMutation(node_signing_key_key(_node(tag, i)), None)]
    if kind == "nns":
        return [upsert(NNS_SUBNET_ID_KEY, SubnetIdRecord(_subnet(op[1])))]
    return []


GENESIS: list[tuple[Any, ...]] = [("add", 0, 0, 20, False), ("add", 1, 50, 20, False), ("nns", 0)]
"""Two listed subnets and an NNS id first, so later moves and deletions bite."""

# -- the properties ------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.lists(OPS, min_size=1, max_size=12))
def test_apply_agrees_with_a_naive_replay_and_oracle(ops: list[tuple[Any, ...]]) -> None:
    registry = Registry()
    accepted: list[list[RegistryMutation]] = []
    keys: set[str] = set()
    for op in [*GENESIS, *ops]:
        batch = batch_for(op, replay(accepted))
        keys.update(m.key for m in batch)
        predicted = violations(replay([*accepted, batch])) if batch else ["empty batch"]
        before = registry
        before_log = registry.encode()
        try:
            registry = registry.apply(batch)
        except RegistryError as exc:
            assert predicted, f"{op} refused ({exc}) but the oracle finds no violation"
            assert registry is before and registry.encode() == before_log
            assert registry.latest_version == len(accepted)
            continue
        assert not predicted, f"{op} accepted but the oracle finds {predicted}"
        accepted.append(batch)
        assert registry.latest_version == len(accepted)
        assert before.latest_version == len(accepted) - 1  # the old value is untouched
    for version in range(len(accepted) + 1):
        naive = replay(accepted[:version])
        for key in keys:
            assert registry.get(key, version) == naive.get(key), (key, version)
        assert list(registry.records(version)) == sorted(naive.items())
        assert sorted(registry.subnet_ids(version)) == sorted(_listed(naive))
    assert Registry.decode(registry.encode()) == registry


@settings(max_examples=60, deadline=None)
@given(st.lists(OPS, min_size=1, max_size=8))
def test_decode_rechecks_every_version(ops: list[tuple[Any, ...]]) -> None:
    """A log whose versions would not all pass ``apply`` is refused by ``decode``."""
    batches: list[list[RegistryMutation]] = []
    for op in [*GENESIS, *ops]:
        batch = batch_for(op, replay(batches))
        if batch:
            batches.append(batch)
    if not batches:
        return
    log = Registry(tuple(tuple(b) for b in batches))  # built without the checks
    first_bad = next(
        (v for v in range(1, len(batches) + 1) if violations(replay(batches[:v]))), None
    )
    if first_bad is None:
        assert Registry.decode(log.encode()) == log
        return
    try:
        Registry.decode(log.encode())
    except RegistryError:
        pass
    else:
        raise AssertionError(f"decode accepted a log whose version {first_bad} is invalid")
    valid_prefix = Registry(log.changes[: first_bad - 1])
    assert Registry.decode(valid_prefix.encode()) == valid_prefix

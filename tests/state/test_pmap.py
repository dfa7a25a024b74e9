"""The persistent treap map: mapping semantics, sharing, canonical shape, hash trees."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from icp.crypto import hashtree
from icp.state.pmap import PMap, depth

keys = st.binary(min_size=0, max_size=6)
ops = st.lists(st.tuples(st.booleans(), keys, st.integers(0, 9)), max_size=60)


def leaf(v: object) -> hashtree.HashTree:
    return hashtree.Leaf(str(v).encode())


@settings(max_examples=150, deadline=None)
@given(ops)
def test_behaves_like_a_dict_and_shape_is_canonical(
    operations: list[tuple[bool, bytes, int]],
) -> None:
    m: PMap[int] = PMap()
    model: dict[bytes, int] = {}
    history = [m]
    for is_set, k, v in operations:
        if is_set:
            m, model[k] = m.set(k, v), v
        else:
            m = m.remove(k)
            model.pop(k, None)
        history.append(m)
        assert len(m) == len(model)
    assert list(m.items()) == sorted(model.items())
    assert m == model
    # the same contents built at once give the same tree: shape depends on contents only
    fresh = PMap(model)
    assert m.hash_tree(leaf).digest() == fresh.hash_tree(leaf).digest()
    # older versions are untouched
    assert len(history[0]) == 0


@given(st.dictionaries(keys, st.integers(), max_size=40), keys)
def test_items_from_and_min_key(model: dict[bytes, int], start: bytes) -> None:
    m = PMap(model)
    assert list(m.items_from(start)) == [(k, v) for k, v in sorted(model.items()) if k >= start]
    assert m.min_key() == (min(model) if model else None)


def test_set_same_value_returns_self_and_shares_structure() -> None:
    m = PMap({bytes([i]): i for i in range(100)})
    value = m[b"\x05"]
    assert m.set(b"\x05", value) is m
    assert m.remove(b"absent") is m
    assert b"\x05" in m and b"absent" not in m and 5 not in m  # type: ignore[comparison-overlap]


def test_hash_tree_is_well_formed_and_looks_up() -> None:
    m = PMap({bytes([i, j]): i * j for i in range(20) for j in range(20)})
    tree = m.hash_tree(leaf)
    hashtree.check_well_formed(tree)
    assert hashtree.lookup_path(tree, [bytes([3, 4])]).value == b"12"
    assert hashtree.lookup_path(tree, [b"\xff"]).status is hashtree.LookupStatus.ABSENT


def test_update_rehashes_only_a_path() -> None:
    calls: list[object] = []

    def counting(v: object) -> hashtree.HashTree:
        calls.append(v)
        return leaf(v)

    m = PMap({i.to_bytes(4, "big"): i for i in range(5000)})
    m.hash_tree(counting)
    assert len(calls) == 5000
    calls.clear()
    m2 = m.set((77).to_bytes(4, "big"), -1).set(b"\xff" * 4, 9)
    m2.hash_tree(counting)
    assert sorted(map(str, calls)) == ["-1", "9"]
    assert depth(m2) < 60


def test_a_different_value_function_is_not_served_from_the_memo() -> None:
    m = PMap({b"a": 1})
    t1 = m.hash_tree(leaf)
    t2 = m.hash_tree(lambda v: hashtree.Leaf(b"other"))
    assert t1.digest() != t2.digest()


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(keys, st.integers(0, 9), max_size=30),
    st.lists(st.tuples(keys, st.integers(0, 9)), max_size=30),
)
def test_bulk_update_equals_one_set_at_a_time_and_leaves_the_original_alone(
    start: dict[bytes, int], changes: list[tuple[bytes, int]]
) -> None:
    base: PMap[int] = PMap(start)
    before = list(base.items())
    base_digest = base.hash_tree(leaf).digest()  # memos on the shared nodes
    one_by_one = base
    for k, v in changes:
        one_by_one = one_by_one.set(k, v)
    bulk = base.update(changes)
    assert list(bulk.items()) == list(one_by_one.items()) and len(bulk) == len(one_by_one)
    assert bulk.hash_tree(leaf).digest() == one_by_one.hash_tree(leaf).digest()
    assert bulk.hash_tree(leaf).digest() == PMap(dict(bulk.items())).hash_tree(leaf).digest()
    assert depth(bulk) == depth(PMap(dict(bulk.items())))
    # the original map (and its memoized hashes) is unchanged: nothing shared was mutated
    assert list(base.items()) == before
    assert base.hash_tree(leaf).digest() == base_digest == PMap(start).hash_tree(leaf).digest()
    assert base.update([]) is base


def test_bulk_update_of_a_large_map_shares_and_rehashes_little() -> None:
    base: PMap[int] = PMap((i.to_bytes(4, "big"), i) for i in range(0, 4000, 2))
    base.hash_tree(leaf)  # memoize every node's hash tree
    changes = [(i.to_bytes(4, "big"), -i) for i in range(1, 400, 4)]  # 100 new keys
    changes += [(i.to_bytes(4, "big"), -i) for i in range(0, 40, 2)]  # 20 replaced values
    bulk = base.update(changes)
    reference: dict[bytes, int] = dict(base.items())
    reference.update(changes)
    assert list(bulk.items()) == sorted(reference.items())
    assert bulk.hash_tree(leaf).digest() == PMap(reference).hash_tree(leaf).digest()
    # most nodes are still the old map's (with their memos); only paths were copied
    old_nodes = {id(n) for n in base._nodes()}
    shared = sum(1 for n in bulk._nodes() if id(n) in old_nodes)
    assert shared > len(base) - 120 * 14

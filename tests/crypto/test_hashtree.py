"""Tests for icp.crypto.hashtree: spec vector, CBOR, lookups, building and pruning."""

from __future__ import annotations

import pytest

from icp.crypto import hashtree as ht
from icp.crypto.errors import HashTreeError
from icp.crypto.hashing import sha256

# interface spec §"Certification" example (shared/spec/interface.md §2.1)
SPEC_TREE = bytes.fromhex(
    "8301830183024161830183018302417882034568656c6c6f810083024179820345776f726c6483024162"
    "820344676f6f648301830241638100830241648203476d6f726e696e67"
)
SPEC_ROOT = "eb5c5b2195e62d996b84c9bcc8259d19a83786a2f59e0878cec84c811f669aa0"
SPEC_PRUNED = bytes.fromhex(
    "83018301830241618301820458201b4feff9bef8131788b0c9dc6dbad6e81e524249c879e9f10f71ce3749"
    "f5a63883024179820345776f726c6483024162820458207b32ac0c6ba8ce35ac82c255fc7906f7fc130dab"
    "2a090f80fe12f9c2cae83ba6830182045820ec8324b8a1f1ac16bd2e806edba78006479c9877fed4eb464a"
    "25485465af601d830241648203476d6f726e696e67"
)
F, A, U, E = (
    ht.LookupStatus.FOUND,
    ht.LookupStatus.ABSENT,
    ht.LookupStatus.UNKNOWN,
    ht.LookupStatus.ERROR,
)


def test_spec_vector_decodes_to_the_expected_tree_and_root() -> None:
    tree = ht.from_cbor(SPEC_TREE)
    expected = ht.Fork(
        ht.Fork(
            ht.Labeled(
                b"a",
                ht.Fork(
                    ht.Fork(ht.Labeled(b"x", ht.Leaf(b"hello")), ht.Empty()),
                    ht.Labeled(b"y", ht.Leaf(b"world")),
                ),
            ),
            ht.Labeled(b"b", ht.Leaf(b"good")),
        ),
        ht.Fork(ht.Labeled(b"c", ht.Empty()), ht.Labeled(b"d", ht.Leaf(b"morning"))),
    )
    assert tree == expected
    assert ht.digest(tree).hex() == SPEC_ROOT
    assert ht.to_cbor(tree) == SPEC_TREE


def test_node_digests_use_length_prefixed_domains() -> None:
    assert ht.Empty().digest() == sha256(b"\x11ic-hashtree-empty")
    assert ht.Leaf(b"v").digest() == sha256(b"\x10ic-hashtree-leafv")
    leaf = ht.Leaf(b"v")
    assert ht.Labeled(b"l", leaf).digest() == sha256(b"\x13ic-hashtree-labeledl" + leaf.digest())
    fork = ht.Fork(leaf, ht.Empty())
    assert fork.digest() == sha256(b"\x10ic-hashtree-fork" + leaf.digest() + ht.Empty().digest())


def test_spec_pruning_reproduces_the_spec_witness_byte_for_byte() -> None:
    tree = ht.from_cbor(SPEC_TREE)
    pruned = ht.prune(tree, [["a", "y"], ["d"], ["ax"]])
    assert ht.to_cbor(pruned) == SPEC_PRUNED
    assert ht.digest(pruned).hex() == SPEC_ROOT


@pytest.mark.parametrize(
    ("path", "status", "value"),
    [
        (["a", "a"], U, None),
        (["a", "y"], F, b"world"),
        (["aa"], A, None),
        (["ax"], A, None),
        (["b"], U, None),
        (["bb"], U, None),
        (["d"], F, b"morning"),
        (["e"], A, None),
    ],
)
def test_spec_lookups_in_pruned_tree(
    path: list[str], status: ht.LookupStatus, value: bytes | None
) -> None:
    result = ht.lookup_path(ht.from_cbor(SPEC_PRUNED), path)
    assert result == ht.LookupResult(status, value)


def test_lookup_end_of_path_semantics() -> None:
    tree = ht.from_cbor(SPEC_TREE)
    assert ht.lookup_path(tree, ["c"]).status is A  # Empty at end of path
    assert ht.lookup_path(tree, ["a"]).status is E  # inner node at end of path
    assert ht.lookup_path(tree, []).status is E
    assert ht.lookup_path(tree, ["b", "x"]).status is A  # below a leaf
    assert ht.lookup_path(ht.Pruned(bytes(32)), []).status is U
    assert ht.lookup_path(ht.Empty(), ["x"]).status is A


def test_agent_js_lookup_tree() -> None:
    # the tree of agent-js certificate.test.ts "lookup_path and find_label"
    p1 = ht.Pruned(
        bytes.fromhex("1b842dfc254abb83e61bcdd7b7c24492322a2e1b006e6d20b88bedd147c248fc")
    )
    p2 = ht.Pruned(
        bytes.fromhex("5ec92bd71f697eee773919200a9718c4719495a4c6bba52acc408bd79b4bf57f")
    )
    tree = ht.Fork(
        ht.Fork(
            ht.Fork(ht.Labeled(b"a", p1), ht.Labeled(b"c", ht.Leaf(b"hello"))),
            ht.Labeled(b"d", ht.Fork(ht.Labeled(b"1", ht.Leaf(b"42")), p2)),
        ),
        ht.Fork(ht.Labeled(b"e", ht.Leaf(b"world")), ht.Labeled(b"g", ht.Empty())),
    )
    assert ht.lookup_path(tree, ["a"]).status is U
    assert ht.lookup_path(tree, ["a", "1"]).status is U
    assert ht.lookup_path(tree, ["b"]).status is A
    assert ht.lookup_path(tree, ["c"]) == ht.LookupResult(F, b"hello")
    assert ht.lookup_path(tree, ["d", "1"]) == ht.LookupResult(F, b"42")
    assert ht.lookup_path(tree, ["d", "2"]).status is U
    assert ht.lookup_path(tree, ["e"]) == ht.LookupResult(F, b"world")
    assert ht.lookup_path(tree, ["f"]).status is A
    assert ht.lookup_path(tree, ["g", "1"]).status is A
    # agent-js answers Found([Empty]) for ["g"]; the spec's lookup_path says Absent.
    assert ht.lookup_path(tree, ["g"]).status is A
    assert ht.lookup_subtree(tree, ["g"]) == ht.SubtreeResult(F, ht.Empty())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        bytes.fromhex("80"),  # []
        bytes.fromhex("8105"),  # [5]
        bytes.fromhex("820100"),  # [1, 0] fork with one child
        bytes.fromhex("830243616263"),  # labeled with missing subtree
        bytes.fromhex("8203" + "01"),  # leaf holding an int
        bytes.fromhex("820443000102"),  # pruned with 3-byte hash
        bytes.fromhex("a0"),  # a map
        bytes.fromhex("83018100"),  # truncated
    ],
)
def test_malformed_cbor_raises_typed_error(data: bytes) -> None:
    with pytest.raises(HashTreeError):
        ht.from_cbor(data)


def test_too_deep_tree_is_rejected() -> None:
    data = bytes.fromhex("830241" + "61") * 300 + bytes.fromhex("8100")
    with pytest.raises(HashTreeError, match="deeper"):
        ht.from_cbor(data)


def test_build_sorts_labels_and_encodes_values() -> None:
    tree = ht.build({"z": 5, b"a": "text", "m": {"x": b"\x00"}, "e": {}})
    assert [n.label for n in ht.flatten_forks(tree) if isinstance(n, ht.Labeled)] == [
        b"a",
        b"e",
        b"m",
        b"z",
    ]
    assert ht.lookup_path(tree, ["z"]).value == b"\x05"
    assert ht.lookup_path(tree, ["a"]).value == b"text"
    assert ht.lookup_path(tree, ["m", "x"]).value == b"\x00"
    assert ht.lookup_path(tree, ["e"]).status is A
    assert ht.lookup_path(tree, ["b"]).status is A
    ht.check_well_formed(tree)
    assert ht.build({"t": 624485}).digest() == ht.build({"t": b"\xe5\x8e\x26"}).digest()


def test_build_is_balanced() -> None:
    tree = ht.build({f"k{i:03}": i for i in range(100)})

    def depth(t: ht.HashTree) -> int:
        return 1 + max(depth(t.left), depth(t.right)) if isinstance(t, ht.Fork) else 0

    assert depth(tree) == 7  # ceil(log2(100))


def test_build_rejects_bad_values() -> None:
    with pytest.raises(HashTreeError):
        ht.build({"a": 1.5})  # type: ignore[dict-item]
    with pytest.raises(HashTreeError):
        ht.build({"a": -1})
    with pytest.raises(HashTreeError, match="duplicate"):
        ht.build({"a": 1, b"a": 2})


def test_well_formedness_check() -> None:
    with pytest.raises(HashTreeError, match="increasing"):
        ht.check_well_formed(ht.Fork(ht.Labeled(b"b", ht.Empty()), ht.Labeled(b"a", ht.Empty())))
    with pytest.raises(HashTreeError, match="mixed"):
        ht.check_well_formed(ht.Fork(ht.Labeled(b"b", ht.Empty()), ht.Leaf(b"v")))
    ht.check_well_formed(ht.from_cbor(SPEC_TREE))


def test_prune_keeps_absence_provable_at_edges() -> None:
    tree = ht.build({"b": 1, "d": 2, "f": {"x": 1}})
    for missing in (["a"], ["c"], ["g"], ["f", "a"], ["f", "y"], ["d", "z"]):
        pruned = ht.prune(tree, [missing])
        assert pruned.digest() == tree.digest()
        assert ht.lookup_path(pruned, missing).status is A, missing
    pruned = ht.prune(tree, [["f"]])
    assert ht.lookup_path(pruned, ["f", "x"]).value == b"\x01"
    assert ht.lookup_path(pruned, ["b"]).status is U
    assert isinstance(ht.prune(tree, []), ht.Pruned)


def test_labeled_helper_and_list_paths() -> None:
    tree = ht.labeled("canister", b"\x01", "certified_data", ht.Leaf(b"data"))
    assert ht.lookup_path(tree, ["canister", b"\x01", "certified_data"]).value == b"data"
    assert list(ht.list_paths(ht.build({"a": {"b": 1, "c": 2}, "d": 3}))) == [
        (b"a", b"b"),
        (b"a", b"c"),
        (b"d",),
    ]


def test_lookup_in_large_level_and_next_to_pruned_nodes() -> None:
    tree = ht.build({i.to_bytes(2, "big"): i for i in range(0, 2000, 2)})
    assert ht.lookup_path(tree, [(1000).to_bytes(2, "big")]).value == ht.leaf_bytes(1000)
    assert ht.lookup_path(tree, [(1001).to_bytes(2, "big")]).status is A
    assert ht.lookup_path(tree, [(5000).to_bytes(2, "big")]).status is A
    partly = ht.Fork(ht.Pruned(bytes(32)), ht.Labeled(b"b", ht.Leaf(b"v")))
    assert ht.lookup_path(partly, ["b"]) == ht.LookupResult(F, b"v")
    assert ht.lookup_path(partly, ["a"]).status is U
    assert ht.lookup_path(partly, ["c"]).status is A

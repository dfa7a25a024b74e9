"""Properties of IC hash trees (icp.crypto.hashtree): pruning keeps the digest and lookups.

Spec: interface spec §"Certification" (pruned trees, lookup); shared/spec/interface.md §2.1.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from icp.crypto import hashtree as ht

labels = st.binary(min_size=0, max_size=3)
values = st.one_of(st.binary(max_size=8), st.integers(0, 2**40), st.text(max_size=5))
trees = st.recursive(
    values,
    lambda children: st.dictionaries(labels, children, max_size=5),
    max_leaves=25,
)
paths = st.lists(st.lists(labels, min_size=1, max_size=4), max_size=5)


@settings(max_examples=80, deadline=None)
@given(trees, paths, paths)
def test_pruned_witness_answers_requested_paths_like_the_full_tree(
    value: object, requested: list[list[bytes]], others: list[list[bytes]]
) -> None:
    tree = ht.build(value)  # type: ignore[arg-type]
    witness = ht.prune(tree, requested)
    assert witness.digest() == tree.digest()
    assert ht.from_cbor(ht.to_cbor(witness)) == witness
    for path in requested:
        assert ht.lookup_path(witness, path) == ht.lookup_path(tree, path)
    for path in others:  # anything else is either answered correctly or Unknown
        got = ht.lookup_path(witness, path)
        assert got == ht.lookup_path(tree, path) or got.status is ht.LookupStatus.UNKNOWN


@settings(max_examples=60, deadline=None)
@given(trees)
def test_built_trees_are_well_formed_and_roundtrip(value: object) -> None:
    tree = ht.build(value)  # type: ignore[arg-type]
    ht.check_well_formed(tree)
    assert ht.from_cbor(ht.to_cbor(tree)) == tree
    for path in ht.list_paths(tree):
        assert ht.lookup_path(tree, path).status is ht.LookupStatus.FOUND

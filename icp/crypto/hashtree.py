"""IC hash trees: construction, CBOR, digests, lookups and pruned witnesses.

Theory of operation: a hash tree is built from five node kinds — ``Empty``, ``Fork``,
``Labeled``, ``Leaf`` and ``Pruned`` — and its root digest commits to every value in
it.  Forks carry no label: flattening the forks below a labeled level gives the list of
that level's children, whose labels must be strictly increasing.  Replacing any subtree
by ``Pruned(digest)`` leaves the root digest unchanged, which is how certificates reveal
only the requested paths (a *witness*) while still being verifiable against one
signature on the root.  Lookups in a pruned tree answer Found / Absent / Unknown /
Error exactly as the interface spec's ``lookup_path`` does: a label is *provably*
absent only when its two neighbours are both present and adjacent.

Every node caches its digest (computed once from its children's cached digests), so
building or decoding a tree hashes each node exactly once.

Spec: interface spec §"Certification" → "Encoding of certificates", "Lookup";
``shared/spec/interface.md`` §2.1 (node CBOR, domain separators, lookup semantics,
test vector).
"""

from __future__ import annotations

import bisect
import enum
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Final, TypeAlias

import attrs
import cbor2

from icp.crypto.errors import HashTreeError
from icp.crypto.hashing import (
    EncodingError,
    cbor_decode,
    hash_with_domain,
    leb128_unsigned,
)

EMPTY_DOMAIN: Final = b"ic-hashtree-empty"
FORK_DOMAIN: Final = b"ic-hashtree-fork"
LABELED_DOMAIN: Final = b"ic-hashtree-labeled"
LEAF_DOMAIN: Final = b"ic-hashtree-leaf"
MAX_DEPTH: Final = 256
"""Deepest tree we decode; real state trees are far shallower (balanced forks)."""

_EMPTY_DIGEST: Final = hash_with_domain(EMPTY_DOMAIN)


def _set_digest(node: object, value: bytes) -> None:
    object.__setattr__(node, "_digest", value)


@attrs.frozen(slots=True)
class Empty:
    """The empty tree (no children, no value)."""

    _digest: bytes = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        _set_digest(self, _EMPTY_DIGEST)

    def digest(self) -> bytes:
        """Return ``H(domain_sep("ic-hashtree-empty"))``."""
        return self._digest


@attrs.frozen(slots=True)
class Fork:
    """An unlabeled binary node joining two subtrees of the same labeled level."""

    left: HashTree
    right: HashTree
    _digest: bytes = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        _set_digest(self, hash_with_domain(FORK_DOMAIN, self.left.digest(), self.right.digest()))

    def digest(self) -> bytes:
        """Return ``H(domain_sep("ic-hashtree-fork") || digest(left) || digest(right))``."""
        return self._digest


@attrs.frozen(slots=True)
class Labeled:
    """A subtree under a label (raw bytes)."""

    label: bytes = attrs.field(converter=bytes)
    subtree: HashTree
    _digest: bytes = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        _set_digest(self, hash_with_domain(LABELED_DOMAIN, self.label, self.subtree.digest()))

    def digest(self) -> bytes:
        """Return ``H(domain_sep("ic-hashtree-labeled") || label || digest(subtree))``."""
        return self._digest


@attrs.frozen(slots=True)
class Leaf:
    """A value (raw bytes)."""

    value: bytes = attrs.field(converter=bytes)
    _digest: bytes = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        _set_digest(self, hash_with_domain(LEAF_DOMAIN, self.value))

    def digest(self) -> bytes:
        """Return ``H(domain_sep("ic-hashtree-leaf") || value)``."""
        return self._digest


@attrs.frozen(slots=True)
class Pruned:
    """A subtree replaced by its 32-byte digest."""

    hash: bytes = attrs.field(converter=bytes)

    @hash.validator
    def _check(self, _attribute: object, value: bytes) -> None:
        if len(value) != 32:
            raise HashTreeError(f"a pruned node holds a 32-byte hash, got {len(value)} bytes")

    def digest(self) -> bytes:
        """Return the stored hash."""
        return self.hash


HashTree: TypeAlias = Empty | Fork | Labeled | Leaf | Pruned
Path: TypeAlias = Sequence[bytes | str]

EMPTY: Final = Empty()


def digest(tree: HashTree) -> bytes:
    """Return the root hash (``reconstruct``) of ``tree``.

    Spec: interface spec §"Certification" (reconstruct).
    """
    return tree.digest()


# ---------------------------------------------------------------------------- CBOR


def to_cbor_value(tree: HashTree) -> list[object]:
    """Return the CBOR data model of ``tree``: nested arrays ``[tag, ...]``."""
    if isinstance(tree, Empty):
        return [0]
    if isinstance(tree, Fork):
        return [1, to_cbor_value(tree.left), to_cbor_value(tree.right)]
    if isinstance(tree, Labeled):
        return [2, tree.label, to_cbor_value(tree.subtree)]
    if isinstance(tree, Leaf):
        return [3, tree.value]
    return [4, tree.hash]


def to_cbor(tree: HashTree) -> bytes:
    """Encode ``tree`` as CBOR (no self-describe tag: trees are embedded in certificates).

    Spec: ``shared/spec/interface.md`` §2.1.
    """
    return bytes(cbor2.dumps(to_cbor_value(tree)))


def from_cbor_value(value: object, depth: int = 0) -> HashTree:
    """Build a tree from its decoded CBOR data model; raise ``HashTreeError`` if malformed."""
    if depth > MAX_DEPTH:
        raise HashTreeError(f"hash tree deeper than {MAX_DEPTH}")
    if not isinstance(value, list | tuple) or not value or not isinstance(value[0], int):
        raise HashTreeError(f"a hash tree node is a non-empty array with a tag, got {value!r:.60}")
    tag, args = value[0], value[1:]
    arity = {0: 0, 1: 2, 2: 2, 3: 1, 4: 1}.get(tag)
    if arity is None:
        raise HashTreeError(f"unknown hash tree node tag {tag}")
    if len(args) != arity:
        raise HashTreeError(f"hash tree node {tag} takes {arity} fields, got {len(args)}")
    if tag == 0:
        return EMPTY
    if tag == 1:
        return Fork(from_cbor_value(args[0], depth + 1), from_cbor_value(args[1], depth + 1))
    if not isinstance(args[0], bytes):
        raise HashTreeError(
            f"hash tree node {tag} needs a byte string, got {type(args[0]).__name__}"
        )
    if tag == 2:
        return Labeled(args[0], from_cbor_value(args[1], depth + 1))
    if tag == 3:
        return Leaf(args[0])
    return Pruned(args[0])


def from_cbor(data: bytes) -> HashTree:
    """Decode a CBOR-encoded hash tree (an outer tag 55799 is allowed).

    Raises ``HashTreeError`` on malformed CBOR or a malformed node.
    Spec: ``shared/spec/interface.md`` §2.1.
    """
    try:
        value = cbor_decode(bytes(data))
    except EncodingError as exc:
        raise HashTreeError(str(exc)) from None
    return from_cbor_value(value)


# ---------------------------------------------------------------------------- lookup


class LookupStatus(enum.Enum):
    """Outcome of a lookup (interface spec ``lookup_path`` results)."""

    FOUND = "found"
    ABSENT = "absent"
    UNKNOWN = "unknown"
    ERROR = "error"


@attrs.frozen(slots=True)
class LookupResult:
    """A lookup outcome; ``value`` is the leaf value when ``status`` is FOUND."""

    status: LookupStatus
    value: bytes | None = None


@attrs.frozen(slots=True)
class SubtreeResult:
    """A subtree lookup outcome; ``subtree`` is set when ``status`` is FOUND."""

    status: LookupStatus
    subtree: HashTree | None = None


ABSENT: Final = LookupResult(LookupStatus.ABSENT)
UNKNOWN: Final = LookupResult(LookupStatus.UNKNOWN)
ERROR: Final = LookupResult(LookupStatus.ERROR)


def _label(label: bytes | str) -> bytes:
    return label.encode("utf-8") if isinstance(label, str) else bytes(label)


def flatten_forks(tree: HashTree) -> list[HashTree]:
    """Return the children of a labeled level: forks flattened, ``Empty`` dropped."""
    out: list[HashTree] = []
    stack: list[HashTree] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Fork):
            stack.append(node.right)
            stack.append(node.left)
        elif not isinstance(node, Empty):
            out.append(node)
    return out


def _first_label(tree: HashTree) -> bytes | None:
    """Return the leftmost label of a level, or None if a non-labeled node comes first."""
    stack: list[HashTree] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Fork):
            stack.append(node.right)
            stack.append(node.left)
        elif isinstance(node, Labeled):
            return node.label
        elif not isinstance(node, Empty):
            return None
    return None


def _descend(wanted: bytes, tree: HashTree) -> HashTree | None:
    """Find ``wanted`` by binary descent through sorted forks (O(depth²)); None if not found.

    Only a fast path: any other outcome is decided by the spec's linear algorithm.
    """
    node = tree
    while isinstance(node, Fork):
        pivot = _first_label(node.right)
        if pivot is None:
            return None
        node = node.right if wanted >= pivot else node.left
    if isinstance(node, Labeled) and node.label == wanted:
        return node.subtree
    return None


def find_label(label: bytes | str, tree: HashTree) -> SubtreeResult:
    """Find ``label`` among the children of ``tree``'s level.

    Spec: interface spec §"Lookup" (find_label): Absent only between two adjacent
    present labels, before the first, after the last, or in ``[]`` / ``[Leaf]``.
    """
    wanted = _label(label)
    found = _descend(wanted, tree)
    if found is not None:
        return SubtreeResult(LookupStatus.FOUND, found)
    nodes = flatten_forks(tree)
    previous: HashTree | None = None
    for node in nodes:
        if isinstance(node, Labeled):
            if node.label == wanted:
                return SubtreeResult(LookupStatus.FOUND, node.subtree)
            if node.label > wanted:
                if previous is None or isinstance(previous, Labeled):
                    return SubtreeResult(LookupStatus.ABSENT)
                return SubtreeResult(LookupStatus.UNKNOWN)
        previous = node
    if (
        not nodes
        or isinstance(previous, Labeled)
        or (len(nodes) == 1 and isinstance(previous, Leaf))
    ):
        return SubtreeResult(LookupStatus.ABSENT)
    return SubtreeResult(LookupStatus.UNKNOWN)


def lookup_subtree(tree: HashTree, path: Path) -> SubtreeResult:
    """Return the subtree at ``path`` (Found), or why not (Absent / Unknown).

    Spec: interface spec §"Lookup" (lookup_subtree).
    """
    node = tree
    for label in path:
        result = find_label(label, node)
        if result.subtree is None:
            return result
        node = result.subtree
    return SubtreeResult(LookupStatus.FOUND, node)


def lookup_path(tree: HashTree, path: Path) -> LookupResult:
    """Look up the value at ``path``: Found v / Absent / Unknown / Error.

    At the end of the path: Empty → Absent, Leaf → Found, Pruned → Unknown, an inner
    node → Error.
    Spec: interface spec §"Lookup" (lookup_path); ``shared/spec/interface.md`` §2.1.
    """
    result = lookup_subtree(tree, path)
    if result.status is not LookupStatus.FOUND:
        return LookupResult(result.status)
    node = result.subtree
    if isinstance(node, Leaf):
        return LookupResult(LookupStatus.FOUND, node.value)
    if isinstance(node, Empty):
        return ABSENT
    if isinstance(node, Pruned):
        return UNKNOWN
    return ERROR


def list_paths(tree: HashTree, prefix: tuple[bytes, ...] = ()) -> Iterator[tuple[bytes, ...]]:
    """Yield the path of every leaf visible in ``tree`` (pruned parts are skipped)."""
    for node in flatten_forks(tree):
        if isinstance(node, Leaf):
            yield prefix
        elif isinstance(node, Labeled):
            yield from list_paths(node.subtree, (*prefix, node.label))


def check_well_formed(tree: HashTree, depth: int = 0) -> None:
    """Raise ``HashTreeError`` unless labels increase strictly at every level and leaves
    are not mixed with labeled nodes.

    Spec: interface spec §"Certification" (well-formed trees).
    """
    if depth > MAX_DEPTH:
        raise HashTreeError(f"hash tree deeper than {MAX_DEPTH}")
    nodes = flatten_forks(tree)
    labels = [n.label for n in nodes if isinstance(n, Labeled)]
    if any(a >= b for a, b in itertools.pairwise(labels)):
        raise HashTreeError("labels are not strictly increasing")
    if labels and any(isinstance(n, Leaf) for n in nodes):
        raise HashTreeError("a leaf is mixed with labeled nodes")
    if sum(isinstance(n, Leaf) for n in nodes) > 1:
        raise HashTreeError("more than one leaf at one level")
    for node in nodes:
        if isinstance(node, Labeled):
            check_well_formed(node.subtree, depth + 1)


# ---------------------------------------------------------------------------- building


Value: TypeAlias = "bytes | str | int | HashTree | Mapping[bytes | str, Value]"


def leaf_bytes(value: bytes | str | int) -> bytes:
    """Encode a leaf value: blob as is, text as UTF-8, nat as unsigned LEB128.

    Spec: interface spec §"State tree" (encoding of values).
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HashTreeError(f"cannot store {value!r:.40} in a leaf (blob, text or nat)")
    return leb128_unsigned(value)


def fork_balanced(nodes: Sequence[HashTree]) -> HashTree:
    """Join ``nodes`` (in order) with a balanced binary tree of forks; ``[]`` → Empty."""
    if not nodes:
        return EMPTY
    if len(nodes) == 1:
        return nodes[0]
    mid = (len(nodes) + 1) // 2
    return Fork(fork_balanced(nodes[:mid]), fork_balanced(nodes[mid:]))


def build(value: Value) -> HashTree:
    """Build a tree from nested mappings (labels → values); labels are sorted bytewise.

    A mapping becomes a labeled level joined by balanced forks; bytes/str/int become
    leaves; an existing ``HashTree`` is used as is.
    Spec: interface spec §"State tree" (labels are sorted; values are blobs, text, nats).
    """
    if isinstance(value, Empty | Fork | Labeled | Leaf | Pruned):
        return value
    if isinstance(value, Mapping):
        items = sorted((_label(k), v) for k, v in value.items())
        for (a, _), (b, _) in itertools.pairwise(items):
            if a == b:
                raise HashTreeError(f"duplicate label {a!r}")
        return fork_balanced([Labeled(k, build(v)) for k, v in items])
    return Leaf(leaf_bytes(value))


def labeled(*path_and_subtree: bytes | str | HashTree) -> HashTree:
    """Return ``Labeled(p0, Labeled(p1, ... subtree))`` for a path and a final subtree."""
    *path, subtree = path_and_subtree
    if not isinstance(subtree, Empty | Fork | Labeled | Leaf | Pruned):
        raise HashTreeError("the last argument of labeled() must be a HashTree")
    node: HashTree = subtree
    for label in reversed(path):
        if not isinstance(label, bytes | str):
            raise HashTreeError("labels are bytes or str")
        node = Labeled(_label(label), node)
    return node


# ---------------------------------------------------------------------------- pruning


def prune(tree: HashTree, paths: Iterable[Path]) -> HashTree:
    """Return a witness of ``tree`` that reveals exactly what ``paths`` need.

    For each path: if it exists, everything below its end is kept; if some label on it
    is absent, the neighbouring labels (kept as ``Labeled(label, Pruned)``) are kept so
    that its absence stays provable.  Everything else becomes ``Pruned``; ``Empty``
    nodes are kept as they are (they are needed for absence proofs and cost nothing).
    The root digest is unchanged.
    Spec: interface spec §"Certification" (pruned trees, lookup semantics).
    """
    normalized = [tuple(_label(label) for label in path) for path in paths]
    return _prune_level(tree, normalized)


def _prune_level(tree: HashTree, paths: list[tuple[bytes, ...]]) -> HashTree:
    if any(len(p) == 0 for p in paths):
        return tree
    if not paths:
        return tree if isinstance(tree, Empty | Pruned) else Pruned(tree.digest())
    nodes = flatten_forks(tree)
    keep: dict[int, list[tuple[bytes, ...]]] = {}
    present = [(n.label, i) for i, n in enumerate(nodes) if isinstance(n, Labeled)]
    present_labels = [label for label, _ in present]
    for path in paths:
        head, tail = path[0], path[1:]
        pos = bisect.bisect_left(present_labels, head)
        if pos < len(present) and present_labels[pos] == head:
            keep.setdefault(present[pos][1], []).append(tail)
        elif len(nodes) == 1 and isinstance(nodes[0], Leaf):
            keep.setdefault(0, []).append(())
        else:  # absent: keep both neighbours so that the absence stays provable
            for j in (pos - 1, pos):
                if 0 <= j < len(present):
                    keep.setdefault(present[j][1], [])
    counter = iter(range(len(nodes)))
    return _rebuild(tree, keep, counter)


def _rebuild(
    tree: HashTree, keep: dict[int, list[tuple[bytes, ...]]], counter: Iterator[int]
) -> HashTree:
    if isinstance(tree, Empty):
        return tree
    if isinstance(tree, Fork):
        left = _rebuild(tree.left, keep, counter)
        right = _rebuild(tree.right, keep, counter)
        if (
            _opaque(left)
            and _opaque(right)
            and not (isinstance(left, Empty) and isinstance(right, Empty))
        ):
            return Pruned(tree.digest())
        return Fork(left, right)
    index = next(counter)
    if index not in keep:
        return tree if isinstance(tree, Pruned) else Pruned(tree.digest())
    if isinstance(tree, Labeled):
        return Labeled(tree.label, _prune_level(tree.subtree, keep[index]))
    return tree


def _opaque(tree: HashTree) -> bool:
    """Return whether ``tree`` reveals nothing a lookup could use (pruned or empty)."""
    return isinstance(tree, Pruned | Empty)

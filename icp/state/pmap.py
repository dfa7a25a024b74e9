"""A persistent sorted map (a treap with hash priorities) for replicated state.

Theory of operation.  A *treap* is a binary search tree on keys that is also a heap
on priorities.  Here a key's priority is a hash of the key, so for a given set of
keys there is exactly one treap: the shape is a function of the contents, not of
the order of insertions.  That gives the two things the replicated state needs:

* **Structural sharing.**  ``set``/``remove`` copy only the O(log n) nodes on the
  path to the key and return a new map; the old map is unchanged and shares every
  other node.  Deriving the next height's state costs what changed, not what exists.
* **Incremental, canonical hash trees.**  The map's nodes double as the fork
  structure of a hash-tree level (``hash_tree``): node = ``left · Labeled(key, f(v))
  · right``.  Each node memoizes its hash tree, so after a few updates only the
  copied path is re-hashed, and because the shape is canonical every replica that
  holds the same contents gets the same root hash whatever its update history.

Keys are bytes (labels of the state tree) compared bytewise.  Expected depth is
about ``2 ln n`` (≈ 27 for 600,000 ingress-history entries); priorities come from
BLAKE2b, so grinding keys into a deep treap costs an attacker hash work per level.

Spec: the interface spec allows any fork structure whose flattening lists labels in
increasing order (§"Certification", well-formed trees; ``shared/spec/interface.md``
§2.1); the IC's own state manager likewise shares structure between heights
(protocol digest §4.7).  Treaps: Seidel & Aragon, "Randomized search trees" (1996).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, ValuesView
from typing import Any, Generic, TypeVar

from icp.crypto import hashtree
from icp.crypto.hashtree import HashTree

V = TypeVar("V")
ValueTree = Callable[[Any], HashTree]
"""How a value becomes the subtree under its label (must be a pure, stable function)."""


def _priority(key: bytes) -> bytes:
    # 8 hash bytes, then the key itself: a strict total order on priorities.
    return hashlib.blake2b(key, digest_size=8).digest() + key


class _Node:
    """One treap node; immutable except for the memoized hash tree."""

    __slots__ = ("ht", "ht_fn", "key", "left", "prio", "right", "value", "vt", "vt_fn")

    def __init__(
        self, key: bytes, value: object, prio: bytes, left: _Node | None, right: _Node | None
    ) -> None:
        self.key = key
        self.value = value
        self.prio = prio
        self.left = left
        self.right = right
        self.ht: HashTree | None = None  # memo: this node's whole subtree
        self.ht_fn: ValueTree | None = None
        self.vt: HashTree | None = None  # memo: Labeled(key, value_tree(value))
        self.vt_fn: ValueTree | None = None


def _with(node: _Node, left: _Node | None, right: _Node | None) -> _Node:
    """Copy ``node`` with other children; the value's subtree memo carries over."""
    out = _Node(node.key, node.value, node.prio, left, right)
    out.vt, out.vt_fn = node.vt, node.vt_fn
    return out


def _insert(node: _Node | None, key: bytes, value: object, prio: bytes) -> _Node:
    if node is None:
        return _Node(key, value, prio, None, None)
    if key == node.key:
        return _Node(key, value, node.prio, node.left, node.right)
    if key < node.key:
        left = _insert(node.left, key, value, prio)
        if left.prio > node.prio:  # rotate right
            return _with(left, left.left, _with(node, left.right, node.right))
        return _with(node, left, node.right)
    right = _insert(node.right, key, value, prio)
    if right.prio > node.prio:  # rotate left
        return _with(right, _with(node, node.left, right.left), right.right)
    return _with(node, node.left, right)


def _own(node: _Node, left: _Node | None, right: _Node | None, fresh: set[int]) -> _Node:
    """Give ``node`` these children: in place if this bulk update made it, else a copy."""
    if node.left is left and node.right is right:
        return node  # unchanged: keep it (and its memoized hash tree)
    if id(node) in fresh:
        node.left, node.right = left, right
        node.ht = node.ht_fn = None  # the subtree changed; the value's memo still holds
        return node
    out = _with(node, left, right)
    fresh.add(id(out))
    return out


def _build_fresh(items: list[tuple[bytes, object]], fresh: set[int]) -> _Node | None:
    """``_build_sorted`` whose nodes belong to the bulk update ``fresh``."""
    root = _build_sorted(items)
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        fresh.add(id(node))
        stack.extend(child for child in (node.left, node.right) if child is not None)
    return root


def _split(
    node: _Node | None, key: bytes, fresh: set[int]
) -> tuple[_Node | None, _Node | None, _Node | None]:
    """Split a treap into keys < ``key``, keys > ``key``, and the node holding ``key``."""
    if node is None:
        return None, None, None
    if key < node.key:
        left, right, found = _split(node.left, key, fresh)
        return left, _own(node, right, node.right, fresh), found
    if key > node.key:
        left, right, found = _split(node.right, key, fresh)
        return _own(node, node.left, left, fresh), right, found
    return node.left, node.right, node


def _union(old: _Node | None, new: _Node | None, fresh: set[int]) -> _Node | None:
    """Join treap ``old`` with treap ``new`` (this update's nodes); ``new``'s values win.

    Expected O(m log(n/m + 1)) for m new and n old keys: each old node on the
    boundaries of the new keys is copied once, the rest is shared.
    """
    if old is None:
        return new
    if new is None:
        return old
    if old.prio > new.prio:  # the old root stays on top
        left, right, found = _split(new, old.key, fresh)
        left = _union(old.left, left, fresh)
        right = _union(old.right, right, fresh)
        if found is not None:  # the key is set again: the new value wins
            node = _Node(old.key, found.value, old.prio, left, right)
            fresh.add(id(node))
            return node
        return _own(old, left, right, fresh)
    left, right, _ = _split(old, new.key, fresh)  # an old node with new's key is replaced
    return _own(new, _union(left, new.left, fresh), _union(right, new.right, fresh), fresh)


def _merge(a: _Node | None, b: _Node | None) -> _Node | None:
    """Join two treaps whose keys are all smaller in ``a`` than in ``b``."""
    if a is None:
        return b
    if b is None:
        return a
    if a.prio > b.prio:
        return _with(a, a.left, _merge(a.right, b))
    return _with(b, _merge(a, b.left), b.right)


def _remove(node: _Node | None, key: bytes) -> _Node | None:
    if node is None:
        return None
    if key == node.key:
        return _merge(node.left, node.right)
    if key < node.key:
        left = _remove(node.left, key)
        return node if left is node.left else _with(node, left, node.right)
    right = _remove(node.right, key)
    return node if right is node.right else _with(node, node.left, right)


def _build_sorted(items: list[tuple[bytes, object]]) -> _Node | None:
    """Build the treap of sorted, distinct keys in O(n) (Cartesian-tree construction)."""
    stack: list[_Node] = []
    for key, value in items:
        node = _Node(key, value, _priority(key), None, None)
        last: _Node | None = None
        while stack and stack[-1].prio < node.prio:
            last = stack.pop()
        node.left = last
        if stack:
            stack[-1].right = node
        stack.append(node)
    return stack[0] if stack else None


class PMap(Mapping[bytes, V], Generic[V]):
    """An immutable sorted map from bytes to values with O(log n) persistent updates.

    Iteration is in increasing key order.  Equality is by contents.
    """

    __slots__ = ("_len", "_root")

    def __init__(self, items: Mapping[bytes, V] | Iterable[tuple[bytes, V]] = ()) -> None:
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        merged = dict((bytes(k), v) for k, v in pairs)
        self._root = _build_sorted(sorted(merged.items()))
        self._len = len(merged)

    @classmethod
    def _of(cls, root: _Node | None, length: int) -> PMap[V]:
        out: PMap[V] = cls.__new__(cls)
        out._root = root
        out._len = length
        return out

    # ------------------------------------------------------------ Mapping

    def __getitem__(self, key: bytes) -> V:
        node = self._root
        while node is not None:
            if key == node.key:
                return node.value  # type: ignore[return-value]
            node = node.left if key < node.key else node.right
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes):
            return False
        node = self._root
        while node is not None:
            if key == node.key:
                return True
            node = node.left if key < node.key else node.right
        return False

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[bytes]:
        for node in self._nodes():
            yield node.key

    def _nodes(self) -> Iterator[_Node]:
        stack: list[_Node] = []
        node = self._root
        while stack or node is not None:
            while node is not None:
                stack.append(node)
                node = node.left
            node = stack.pop()
            yield node
            node = node.right

    def items(self) -> ItemsView[bytes, V]:
        return _Items(self)

    def values(self) -> ValuesView[V]:
        return _Values(self)

    def items_from(self, start: bytes) -> Iterator[tuple[bytes, V]]:
        """Yield ``(key, value)`` for keys ``>= start`` in increasing order."""
        stack: list[_Node] = []
        node = self._root
        while node is not None:  # descend to start, remembering where to resume
            if node.key >= start:
                stack.append(node)
                node = node.left
            else:
                node = node.right
        while stack:
            node = stack.pop()
            yield node.key, node.value  # type: ignore[misc]
            child = node.right
            while child is not None:
                stack.append(child)
                child = child.left

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        if isinstance(other, PMap) and other._root is self._root:
            return True
        return len(self) == len(other) and all(
            k in other and other[k] == v for k, v in self.items()
        )

    def __hash__(self) -> int:  # immutable, but values may be unhashable
        raise TypeError("PMap is not hashable")

    def __repr__(self) -> str:
        shown = ", ".join(f"{k!r}: {v!r}" for k, v in list(self.items())[:3])
        more = ", ..." if len(self) > 3 else ""
        return f"PMap({{{shown}{more}}})"

    # ------------------------------------------------------------ updates

    def set(self, key: bytes, value: V) -> PMap[V]:
        """Return the map with ``key`` bound to ``value`` (self if already so bound)."""
        key = bytes(key)
        node = self._root
        while node is not None:
            if key == node.key:
                if node.value is value:
                    return self
                return PMap._of(_insert(self._root, key, value, node.prio), self._len)
            node = node.left if key < node.key else node.right
        return PMap._of(_insert(self._root, key, value, _priority(key)), self._len + 1)

    def remove(self, key: bytes) -> PMap[V]:
        """Return the map without ``key`` (self if absent)."""
        if key not in self:
            return self
        return PMap._of(_remove(self._root, key), self._len - 1)

    def update(self, changes: Mapping[bytes, V] | Iterable[tuple[bytes, V]]) -> PMap[V]:
        """Return the map with every ``(key, value)`` of ``changes`` set (later pairs win).

        One bulk update copies each shared node at most once: the top of the treap,
        on every inserted key's path, is not copied again per key.
        """
        pairs = changes.items() if isinstance(changes, Mapping) else changes
        merged = {bytes(key): value for key, value in pairs}
        if not merged:
            return self
        added = sum(1 for key in merged if key not in self)
        fresh: set[int] = set()
        batch = _build_fresh(sorted(merged.items()), fresh)
        return PMap._of(_union(self._root, batch, fresh), self._len + added)

    def min_key(self) -> bytes | None:
        """Return the smallest key, or None when empty."""
        node = self._root
        if node is None:
            return None
        while node.left is not None:
            node = node.left
        return node.key

    # ------------------------------------------------------------ hash trees

    def hash_tree(self, value_tree: ValueTree) -> HashTree:
        """Return this map as one hash-tree level: ``Labeled(key, value_tree(value))``.

        Memoized per node: after an update only the copied path is re-hashed.
        ``value_tree`` must be a pure function and the same object across calls
        (a memo made with another function is recomputed, never reused).
        Spec: interface spec §"Certification" (well-formed trees; labels sorted).
        """
        if self._root is None:
            return hashtree.EMPTY
        return _node_tree(self._root, value_tree)

    def root_hash_tree(self) -> HashTree | None:
        """Return the memoized hash tree of the whole map (None if not built yet)."""
        return None if self._root is None else self._root.ht

    def witness_value(
        self, tree: HashTree, key: bytes, reveal: Callable[[HashTree], list[object]]
    ) -> list[object] | None:
        """Return the CBOR of ``tree`` (this map's hash tree) pruned to reveal ``key``.

        ``reveal(subtree)`` gives the CBOR of the revealed value's subtree.  The key
        is found by the treap's key order (no label scans); the result is exactly
        what the generic witness gives.  Returns None when ``key`` is absent (an
        absence proof reveals neighbours: left to the generic witness) or ``tree``
        is not this map's hash tree.
        Spec: interface spec §"Certification" (pruned trees).
        """
        node = self._root
        if node is None or node.ht is not tree:
            return None
        return _witness(node, tree, key, reveal)


def _opaque(tree: HashTree) -> list[object]:
    return [4, tree.digest()]


def _witness(
    node: _Node, tree: HashTree, key: bytes, reveal: Callable[[HashTree], list[object]]
) -> list[object] | None:
    """Witness ``key`` in ``tree``, the hash tree made by ``_node_tree`` for ``node``.

    ``_node_tree`` shapes a node as ``Fork(Fork(left, labeled), right)`` (without the
    forks of absent children); the children's trees are taken from ``tree`` itself.
    """
    inner, right = (tree.left, tree.right) if node.right is not None else (tree, None)  # type: ignore[union-attr]
    left, labeled = (inner.left, inner.right) if node.left is not None else (None, inner)  # type: ignore[union-attr]
    if not isinstance(labeled, hashtree.Labeled) or labeled.label != node.key:
        return None
    if key == node.key:
        middle: list[object] = [2, node.key, reveal(labeled.subtree)]
        inner_value = middle if left is None else [1, _opaque(left), middle]
    elif key < node.key:
        if node.left is None or left is None:
            return None
        below = _witness(node.left, left, key, reveal)
        if below is None:
            return None
        inner_value = [1, below, _opaque(labeled)]
    else:
        if node.right is None or right is None:
            return None
        below = _witness(node.right, right, key, reveal)
        return None if below is None else [1, _opaque(inner), below]
    return inner_value if right is None else [1, inner_value, _opaque(right)]


class _Items(ItemsView[bytes, V]):
    _mapping: PMap[V]

    def __iter__(self) -> Iterator[tuple[bytes, V]]:
        for node in self._mapping._nodes():
            yield node.key, node.value  # type: ignore[misc]


class _Values(ValuesView[V]):
    _mapping: PMap[V]

    def __iter__(self) -> Iterator[V]:
        for node in self._mapping._nodes():
            yield node.value  # type: ignore[misc]


def _node_tree(node: _Node, value_tree: ValueTree) -> HashTree:
    if node.ht is not None and node.ht_fn is value_tree:
        return node.ht
    if node.vt is None or node.vt_fn is not value_tree:
        node.vt = hashtree.Labeled(node.key, value_tree(node.value))
        node.vt_fn = value_tree
    tree: HashTree = node.vt
    if node.left is not None:
        tree = hashtree.Fork(_node_tree(node.left, value_tree), tree)
    if node.right is not None:
        tree = hashtree.Fork(tree, _node_tree(node.right, value_tree))
    node.ht = tree
    node.ht_fn = value_tree
    return tree


def depth(m: PMap[Any]) -> int:
    """Return the height of the treap (for tests and benchmarks)."""

    def go(node: _Node | None) -> int:
        return 0 if node is None else 1 + max(go(node.left), go(node.right))

    return go(m._root)

"""The certified state tree of a replicated state, built incrementally, and witnesses.

Theory of operation.  ``StateTreeBuilder.build(state)`` returns the IC's state tree::

    /canister/<cid>/{certified_data, controllers, metadata/<name>, module_hash}
    /canister_ranges/<subnet_id>/<lower_bound>        (sharded layout)
    /request_status/<request_id>/{status, reply, reject_code, reject_message, error_code}
    /streams/<subnet_id>/{header, messages/<index>}
    /subnet/<subnet_id>/{canister_ranges, metrics, node/<node_id>/public_key, public_key}
    /time

Labels are raw bytes (principals as their bytes, request ids as 32 bytes, stream
indices as 8-byte big-endian so that label order is index order); leaves hold blobs
as is, text as UTF-8 and nats as LEB128.

The big levels — ``/canister`` and ``/request_status`` — are the persistent maps of
the state (``PMap``): their fork structure is the map's canonical treap and each
node memoizes its hash tree, so a new height re-hashes only the paths to what
changed.  Stream message levels are kept as persistent maps in the builder and
updated by the stream's index delta; the subnet/topology part is memoized per
topology value.  A fresh builder (or ``build_state_tree``) gives the same tree,
so replicas with different histories agree on the root hash.

``witness(tree, paths)`` prunes a tree to what ``paths`` need (the same result as
``icp.crypto.hashtree.prune`` for lookups and root hash), but descends sorted forks,
so it costs O(|paths| · depth²) instead of O(size of every visited level).

Spec: interface spec §"The system state tree", §"Canister ranges", §"Certification"
(``shared/spec/interface.md`` §2.1, §2.3); protocol digest §3.3, §4.7.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import attrs

from icp.crypto import hashtree
from icp.crypto.hashing import cbor_encode
from icp.crypto.hashtree import Empty, Fork, HashTree, Labeled, Leaf, Path, Pruned
from icp.execution.canister import CanisterState
from icp.messaging.routing import CanisterIdRange
from icp.messaging.xnet import Stream, StreamHeader
from icp.state.codec import Codec, state_codec
from icp.state.ingress_history import IngressStatus
from icp.state.pmap import PMap
from icp.state.replicated_state import NetworkTopology, ReplicatedState, SubnetMetrics

CANISTER_RANGES_SHARD_SIZE: Final = 64
"""Ranges per leaf of the sharded ``/canister_ranges/<subnet_id>/<lower_bound>`` layout."""

METADATA_PREFIXES: Final = ("icp:public ", "icp:private ")


# ---------------------------------------------------------------------------- values


def encode_canister_ranges(ranges: Sequence[CanisterIdRange]) -> bytes:
    """Return ``55799([[lo, hi], ...])`` for closed canister-id ranges.

    Spec: interface spec §"Subnet information" (``canister_ranges``).
    """
    return cbor_encode([r.to_cbor_value() for r in ranges])


def encode_controllers(controllers: Iterable[bytes]) -> bytes:
    """Return ``55799([principal, ...])`` (sorted, without duplicates).

    Spec: interface spec §"Canister information" (``controllers``).
    """
    return cbor_encode(sorted(set(bytes(c) for c in controllers)))


def metadata_sections(canister: CanisterState) -> dict[str, tuple[bool, bytes]]:
    """Return ``name → (is_public, content)`` for the module's ``icp:*`` custom sections.

    Spec: interface spec §"Canister information" (``metadata/<name>``).
    """
    if canister.runtime is None:
        return {}
    out: dict[str, tuple[bool, bytes]] = {}
    for section, content in canister.runtime.custom_sections().items():
        for prefix in METADATA_PREFIXES:
            if section.startswith(prefix):
                out[section[len(prefix) :]] = (prefix == "icp:public ", bytes(content))
    return out


def canister_subtree(canister: CanisterState) -> HashTree:
    """Return the subtree under ``/canister/<cid>``.

    Spec: interface spec §"Canister information".
    """
    fields: dict[bytes | str, hashtree.Value] = {
        "certified_data": canister.certified_data,
        "controllers": encode_controllers(canister.settings.controllers),
    }
    module_hash = canister.module_hash
    if module_hash is not None:
        fields["module_hash"] = module_hash
    metadata = metadata_sections(canister)
    if metadata:
        fields["metadata"] = {name: content for name, (_, content) in metadata.items()}
    return hashtree.build(fields)


def request_status_subtree(status: IngressStatus) -> HashTree:
    """Return the subtree under ``/request_status/<request_id>``.

    The subtree is a pure function of the status fields it reveals, so it is built
    once per distinct content in a process (every replica records the same statuses;
    every ``received`` status with the same fields has the same subtree).
    Spec: interface spec §"Request status" (``shared/spec/interface.md`` §1.8).
    """
    fields = tuple(status.tree_fields().items())
    if status.reply is not None and len(status.reply) > _MEMO_MAX_BYTES:
        return _build_fields(fields)  # large replies are not kept in the memo
    return _fields_subtree(fields)


_MEMO_MAX_BYTES: Final = 1024
"""Largest reply whose request-status subtree is memoised (bounds the memo's memory)."""


def _build_fields(fields: tuple[tuple[str, bytes | int | str], ...]) -> HashTree:
    return hashtree.build(dict(fields))


_fields_subtree = functools.lru_cache(maxsize=8192)(_build_fields)


def stream_index_label(index: int) -> bytes:
    """Return the label of stream message ``index``: 8-byte big-endian."""
    return index.to_bytes(8, "big")


def encode_stream_header(header: StreamHeader) -> bytes:
    """Return the canonical CBOR of a stream header (the ``header`` leaf)."""
    return cbor_encode(
        {
            "begin": header.begin,
            "end": header.end,
            "signals_end": header.signals_end,
            "reject_signals": list(header.reject_signals),
        }
    )


def encode_metrics(num_canisters: int, metrics: SubnetMetrics) -> bytes:
    """Return the CBOR map of ``/subnet/<id>/metrics``.

    Spec: interface spec §"Subnet metrics" (consumed_cycles_total as {low, high}).
    """
    total = metrics.consumed_cycles_total
    consumed: dict[str, int] = {"low": total & (2**64 - 1)}
    if total >> 64:
        consumed["high"] = total >> 64
    return cbor_encode(
        {
            "num_canisters": num_canisters,
            "canister_state_bytes": metrics.canister_state_bytes,
            "consumed_cycles_total": consumed,
            "update_transactions_total": metrics.update_transactions_total,
        }
    )


def _ranges_shards(ranges: Sequence[CanisterIdRange]) -> dict[bytes | str, hashtree.Value]:
    shards: dict[bytes | str, hashtree.Value] = {}
    for i in range(0, len(ranges), CANISTER_RANGES_SHARD_SIZE):
        shard = ranges[i : i + CANISTER_RANGES_SHARD_SIZE]
        shards[shard[0].start.raw] = encode_canister_ranges(shard)
    return shards


def topology_subtrees(topology: NetworkTopology) -> tuple[HashTree, HashTree]:
    """Return the ``/subnet`` level (without metrics) and the ``/canister_ranges`` level.

    Spec: interface spec §"Subnet information", §"Canister ranges".
    """
    subnets: dict[bytes | str, hashtree.Value] = {}
    sharded: dict[bytes | str, hashtree.Value] = {}
    for record in topology.subnets:
        ranges = topology.canister_ranges(record.subnet_id)
        entry: dict[bytes | str, hashtree.Value] = {
            "public_key": record.public_key_der,
            "canister_ranges": encode_canister_ranges(ranges),
        }
        if record.node_public_keys:
            entry["node"] = {node.raw: {"public_key": key} for node, key in record.node_public_keys}
        subnets[record.subnet_id.raw] = entry
        if ranges:
            sharded[record.subnet_id.raw] = _ranges_shards(ranges)
    return hashtree.build(subnets), hashtree.build(sharded)


# ---------------------------------------------------------------------------- builder


@attrs.define
class _StreamMemo:
    stream: Stream[Any]
    messages: PMap[Any]
    subtree: HashTree


class StateTreeBuilder:
    """Build certified state trees, reusing the work done for earlier heights.

    A builder is a cache, not state: any builder (or a fresh one) returns the same
    tree for the same ``ReplicatedState``.  Keep one per replica.
    Spec: interface spec §"The system state tree"; protocol digest §4.7.
    """

    def __init__(self, codec: Codec | None = None) -> None:
        self.codec = codec if codec is not None else state_codec()
        self._topology: tuple[NetworkTopology, HashTree, HashTree] | None = None
        self._streams: dict[bytes, _StreamMemo] = {}
        self._message_leaf = self._encode_message_leaf

    def _encode_message_leaf(self, message: object) -> HashTree:
        return Leaf(self.codec.encode(message))

    def build(self, state: ReplicatedState) -> HashTree:
        """Return the full certified state tree of ``state``.

        Spec: interface spec §"The system state tree".
        """
        subnet_level, ranges_level = self._topology_trees(state.topology)
        subnet_level = self._with_metrics(subnet_level, state)
        root: dict[bytes | str, hashtree.Value] = {
            "canister": state.canisters.hash_tree(canister_subtree),
            "request_status": state.ingress_history.entries.hash_tree(request_status_subtree),
            "streams": self._streams_tree(state),
            "subnet": subnet_level,
            "time": state.time,
        }
        if not isinstance(ranges_level, Empty):
            root["canister_ranges"] = ranges_level
        return hashtree.build(root)

    def _topology_trees(self, topology: NetworkTopology) -> tuple[HashTree, HashTree]:
        memo = self._topology
        if memo is not None and memo[0] is topology:
            return memo[1], memo[2]
        subnets, ranges = topology_subtrees(topology)
        self._topology = (topology, subnets, ranges)
        return subnets, ranges

    @staticmethod
    def _with_metrics(subnet_level: HashTree, state: ReplicatedState) -> HashTree:
        """Insert ``/subnet/<own id>/metrics`` into the memoized subnet level."""
        own = state.subnet_id.raw
        metrics = Leaf(encode_metrics(len(state.canisters), state.metrics))
        children = hashtree.flatten_forks(subnet_level)
        out: list[HashTree] = []
        for child in children:
            if isinstance(child, Labeled) and child.label == own:
                fields = [
                    c for c in hashtree.flatten_forks(child.subtree) if isinstance(c, Labeled)
                ]
                fields.append(Labeled(b"metrics", metrics))
                fields.sort(key=lambda c: c.label)
                child = Labeled(own, hashtree.fork_balanced(fields))
            out.append(child)
        return hashtree.fork_balanced(out)

    def _streams_tree(self, state: ReplicatedState) -> HashTree:
        memos: dict[bytes, _StreamMemo] = {}
        level: list[HashTree] = []
        for subnet, stream in state.streams.items():
            memo = self._stream_memo(subnet, stream)
            memos[subnet] = memo
            level.append(Labeled(subnet, memo.subtree))
        self._streams = memos
        return hashtree.fork_balanced(level)

    def _stream_memo(self, subnet: bytes, stream: Stream[Any]) -> _StreamMemo:
        old = self._streams.get(subnet)
        if old is not None and old.stream is stream:
            return old
        messages = self._messages_map(old, stream)
        subtree = hashtree.build(
            {
                "header": encode_stream_header(stream.header),
                "messages": messages.hash_tree(self._message_leaf),
            }
        )
        return _StreamMemo(stream, messages, subtree)

    @staticmethod
    def _messages_map(old: _StreamMemo | None, stream: Stream[Any]) -> PMap[Any]:
        """Derive the index → message map from the previous one when it is a prefix."""
        begin, end = stream.header.begin, stream.header.end
        if old is not None:
            o_begin, o_end = old.stream.header.begin, old.stream.header.end
            lo, hi = max(begin, o_begin), min(end, o_end)
            if begin >= o_begin and end >= o_end and lo <= hi:
                new_part = stream.messages[lo - begin : hi - begin]
                old_part = old.stream.messages[lo - o_begin : hi - o_begin]
                if all(a is b for a, b in zip(new_part, old_part, strict=True)):
                    out = old.messages
                    for index in range(o_begin, begin):
                        out = out.remove(stream_index_label(index))
                    for index in range(o_end, end):
                        out = out.set(stream_index_label(index), stream.messages[index - begin])
                    return out
        return PMap((stream_index_label(begin + i), m) for i, m in enumerate(stream.messages))


def build_state_tree(state: ReplicatedState) -> HashTree:
    """Return the certified state tree of ``state`` (a one-off build).

    Spec: interface spec §"The system state tree".
    """
    return StateTreeBuilder().build(state)


# ---------------------------------------------------------------------------- witnesses


def _label(label: bytes | str) -> bytes:
    return label.encode("utf-8") if isinstance(label, str) else bytes(label)


def _edge_label(tree: HashTree, *, last: bool) -> bytes | None:
    node = tree
    while isinstance(node, Fork):
        node = node.right if last else node.left
    return node.label if isinstance(node, Labeled) else None


EdgeLabel = Callable[[HashTree, bool], "bytes | None"]
"""``(subtree, last) -> its first (last=False) or last label``, None if irregular."""


def _plain_edge(tree: HashTree, last: bool) -> bytes | None:
    return _edge_label(tree, last=last)


class WitnessIndex:
    """Memoised facts about one tree, for witnessing that tree often.

    A certificate per request witnesses the same certified tree again and again.  The
    index remembers the first/last labels of forks once found, and knows which levels
    are persistent maps (``levels``: the state's ``PMap``s whose hash trees are
    levels of ``tree``), so a single label is found there by the map's own key order
    instead of by fork pivots.  Keys are node identities, so the index keeps its tree
    (and the maps) alive.
    Spec: interface spec §"Certification" (witnesses; the answers equal ``witness``'s).
    """

    __slots__ = ("_edges", "_levels", "tree")

    def __init__(self, tree: HashTree, levels: Iterable[PMap[Any]] = ()) -> None:
        self.tree = tree
        self._edges: dict[tuple[int, bool], bytes | None] = {}
        self._levels: dict[int, tuple[HashTree, PMap[Any]]] = {}
        for level in levels:
            root = level.root_hash_tree()
            if root is not None:
                self._levels[id(root)] = (root, level)

    def edge(self, node: HashTree, last: bool) -> bytes | None:
        """Return the first (``last=False``) or last label under ``node``."""
        key = (id(node), last)
        try:
            return self._edges[key]
        except KeyError:
            label = self._edges[key] = _edge_label(node, last=last)
            return label

    def level(self, tree: HashTree) -> PMap[Any] | None:
        """Return the map whose hash tree ``tree`` is, if it is one of ``levels``."""
        known = self._levels.get(id(tree))
        return known[1] if known is not None and known[0] is tree else None


class _Plain:
    """No index: fork pivots are looked up each time, no map levels are known."""

    @staticmethod
    def edge(node: HashTree, last: bool) -> bytes | None:
        return _edge_label(node, last=last)

    @staticmethod
    def level(tree: HashTree) -> PMap[Any] | None:
        del tree
        return None


_PLAIN: Final = _Plain()


class _Irregular(Exception):
    """A level that is not a plain sorted fork tree of labeled nodes."""


def _search(
    tree: HashTree, wanted: bytes, edge: EdgeLabel = _plain_edge
) -> tuple[bool, bytes | None, bytes | None]:
    """Return (found, predecessor, successor) of ``wanted`` among a level's labels."""
    pred: bytes | None = None
    succ: bytes | None = None
    node = tree
    while isinstance(node, Fork):
        pivot = edge(node.right, False)
        if pivot is None:
            raise _Irregular
        if wanted >= pivot:
            left_last = edge(node.left, True)
            if left_last is None:
                raise _Irregular
            pred = left_last
            node = node.right
        else:
            succ = pivot
            node = node.left
    if not isinstance(node, Labeled):
        raise _Irregular
    if node.label == wanted:
        return True, None, None
    if node.label < wanted:
        return False, node.label, succ
    return False, pred, node.label


def witness(tree: HashTree, paths: Iterable[Path]) -> HashTree:
    """Return ``tree`` pruned to reveal exactly what ``paths`` need (same root hash).

    Existing paths are revealed with everything below them; for an absent label its
    two neighbours are revealed (as ``Labeled(label, Pruned)``) so that absence stays
    provable, as ``icp.crypto.hashtree.prune`` does.
    Spec: interface spec §"Certification" (pruned trees and ``lookup_path``).
    """
    normalized = [tuple(_label(label) for label in path) for path in paths]
    return _witness(tree, normalized)


def _opaque(tree: HashTree) -> HashTree:
    return tree if isinstance(tree, Empty | Pruned) else Pruned(tree.digest())


def _witness(tree: HashTree, paths: list[tuple[bytes, ...]]) -> HashTree:
    if any(len(p) == 0 for p in paths):
        return tree
    if not paths:
        return _opaque(tree)
    if isinstance(tree, Empty | Pruned | Leaf):
        return tree
    reveal: dict[bytes, list[tuple[bytes, ...]]] = {}
    try:
        for path in paths:
            head, tail = path[0], path[1:]
            found, pred, succ = _search(tree, head)
            if found:
                reveal.setdefault(head, []).append(tail)
            else:
                for neighbour in (pred, succ):
                    if neighbour is not None:
                        reveal.setdefault(neighbour, [])
        return _reveal(tree, sorted(reveal), reveal)
    except _Irregular:
        return hashtree.prune(tree, paths)


def _reveal(
    tree: HashTree, labels: list[bytes], reveal: dict[bytes, list[tuple[bytes, ...]]]
) -> HashTree:
    if not labels:
        return _opaque(tree)
    if isinstance(tree, Fork):
        pivot = _edge_label(tree.right, last=False)
        if pivot is None:
            raise _Irregular
        cut = bisect.bisect_left(labels, pivot)
        return Fork(
            _reveal(tree.left, labels[:cut], reveal), _reveal(tree.right, labels[cut:], reveal)
        )
    if isinstance(tree, Labeled) and labels == [tree.label]:
        return Labeled(tree.label, _witness(tree.subtree, reveal[tree.label]))
    raise _Irregular


def witness_cbor_value(
    tree: HashTree, paths: Iterable[Path], index: WitnessIndex | None = None
) -> list[object]:
    """Return ``hashtree.to_cbor_value(witness(tree, paths))`` without building the witness.

    A certificate only needs the witness's CBOR; emitting it directly skips creating
    (and hashing) the pruned tree's nodes.  ``index`` (of this ``tree``) memoises fork
    pivots across calls.
    Spec: interface spec §"Certification" (pruned trees; CBOR encoding of hash trees).
    """
    if index is not None and index.tree is not tree:
        raise ValueError("the witness index belongs to another tree")
    normalized = [tuple(_label(label) for label in path) for path in paths]
    return _witness_value(tree, normalized, index if index is not None else _PLAIN)


def _opaque_value(tree: HashTree) -> list[object]:
    if isinstance(tree, Empty):
        return [0]
    return [4, tree.hash if isinstance(tree, Pruned) else tree.digest()]


def _witness_value(
    tree: HashTree, paths: list[tuple[bytes, ...]], ctx: WitnessIndex | _Plain
) -> list[object]:
    if any(len(p) == 0 for p in paths):
        return hashtree.to_cbor_value(tree)
    if not paths:
        return _opaque_value(tree)
    if isinstance(tree, Empty | Pruned | Leaf):
        return hashtree.to_cbor_value(tree)
    heads = {path[0] for path in paths}
    if len(heads) == 1:
        level = ctx.level(tree)
        if level is not None:
            (head,) = heads
            tails = [path[1:] for path in paths]
            fast = level.witness_value(
                tree, head, lambda subtree: _witness_value(subtree, tails, ctx)
            )
            if fast is not None:
                return fast
    reveal: dict[bytes, list[tuple[bytes, ...]]] = {}
    try:
        for path in paths:
            head, tail = path[0], path[1:]
            found, pred, succ = _search(tree, head, ctx.edge)
            if found:
                reveal.setdefault(head, []).append(tail)
            else:
                for neighbour in (pred, succ):
                    if neighbour is not None:
                        reveal.setdefault(neighbour, [])
        return _reveal_value(tree, sorted(reveal), reveal, ctx)
    except _Irregular:
        return hashtree.to_cbor_value(hashtree.prune(tree, paths))


def _reveal_value(
    tree: HashTree,
    labels: list[bytes],
    reveal: dict[bytes, list[tuple[bytes, ...]]],
    ctx: WitnessIndex | _Plain,
) -> list[object]:
    if not labels:
        return _opaque_value(tree)
    if isinstance(tree, Fork):
        pivot = ctx.edge(tree.right, False)
        if pivot is None:
            raise _Irregular
        cut = bisect.bisect_left(labels, pivot)
        return [
            1,
            _reveal_value(tree.left, labels[:cut], reveal, ctx),
            _reveal_value(tree.right, labels[cut:], reveal, ctx),
        ]
    if isinstance(tree, Labeled) and labels == [tree.label]:
        return [2, tree.label, _witness_value(tree.subtree, reveal[tree.label], ctx)]
    raise _Irregular

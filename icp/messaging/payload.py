"""The payload builder: what goes into a block's batch, and what a valid batch is.

Theory of operation.  Consensus asks the payload builder for a batch whenever the
node makes a block (``get_batch``) and whenever it validates another node's
block (``validate_batch``).  Both see the block's height and time and ``past``:
the block's unfinalized ancestors, whose batches are not yet in the executed
state.

*Building.*  Ingress comes from the node's ``IngressPool``: messages for canisters
this subnet hosts (or for ``aaaaa-aa``), valid at the block time, not already in
``past`` or in the ingress history of the latest executed state, chosen fairly
by ``select_ingress`` within the per-block count and byte limits.  XNet slices
come from an injected ``XNetClient``: for every other subnet, the next index this
subnet expects from it (the ``signals_end`` of our reverse stream, advanced past
the slices already in ``past``) is asked for; a slice is included only if it
verifies, continues the stream, and carries messages or new signals.

*Validating.*  A Byzantine block maker may put anything in its batch, so every
rule is re-checked: counts and sizes; every envelope parses, is addressed to this
subnet, is valid at the block time and carries a valid sender signature; no
message appears twice, in ``past`` or in the ingress history; every slice comes
from a known other subnet (at most one per source), verifies under that subnet's
public key, starts exactly at the expected index, and its signals neither go
backwards nor acknowledge messages never sent.  Any violation raises
``InvalidArtifact`` (consensus then refuses the block).

Nothing here reads a clock or the network: the latest state, the pool and the
XNet client are injected.

Spec: protocol digest §4.2 (ingress selection and its limits; dedup back to the
certified state), §4.3 (XNet payload: certified slices, validation against the
source subnet's key, contiguity, monotone signals), §1.6 (BatchPayload).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from icp.consensus.artifacts import BatchPayload, Block, DataPayload, XNetSlice
from icp.consensus.context import InvalidArtifact
from icp.messaging.config import SubnetExecutionConfig
from icp.messaging.ingress import (
    EnvelopeCache,
    IngressError,
    IngressPool,
    SenderAuthenticator,
    SignedIngress,
    authenticate_ingress,
    check_ingress,
    select_ingress,
)
from icp.messaging.queues import MANAGEMENT_CANISTER
from icp.messaging.stream_builder import management_target
from icp.messaging.xnet import StreamError, StreamSlice, check_slice
from icp.principal import Principal
from icp.state.replicated_state import ReplicatedState, StateError
from icp.state.stream_certification import StreamSliceError, verify_stream_slice
from icp.types import Height, Time

XNetClient = Callable[[Principal, int], bytes | None]
"""``(source subnet, from index) -> certified slice of its stream to us``, or None."""

StateReader = Callable[[], ReplicatedState]
"""Returns the latest executed state of this subnet."""

_CACHE_LIMIT = 20_000


def _no_xnet(source: Principal, from_index: int) -> bytes | None:
    del source, from_index
    return None


def _batches(past: Iterable[Block]) -> list[BatchPayload]:
    return [b.payload.batch for b in past if isinstance(b.payload, DataPayload)]


class IcPayloadBuilder:
    """The IC's payload builder for one node: ingress from its pool, XNet from peers.

    Spec: protocol digest §4.2, §4.3; consensus ``PayloadBuilder`` protocol.
    """

    def __init__(
        self,
        config: SubnetExecutionConfig,
        pool: IngressPool,
        state: StateReader,
        xnet_client: XNetClient = _no_xnet,
        *,
        authenticate: SenderAuthenticator | None = authenticate_ingress,
        envelopes: EnvelopeCache | None = None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.state = state
        self.xnet_client = xnet_client
        self.authenticate = authenticate
        self.envelopes = envelopes if envelopes is not None else config.envelopes or EnvelopeCache()
        self._slices: dict[tuple[bytes, int, bytes], StreamSlice[object] | None] = {}

    # ------------------------------------------------------------------ helpers

    def _parse(self, data: bytes) -> SignedIngress | None:
        try:
            return self.envelopes.parse_call(data, self.config.ingress_limits)
        except IngressError:
            return None

    def _verify_slice(
        self, state: ReplicatedState, source: Principal, data: bytes, from_index: int
    ) -> StreamSlice[object]:
        """Return the verified slice or raise ``StreamSliceError``/``StateError``."""
        key = (hashlib.sha256(data).digest(), from_index, source.raw)
        if key in self._slices:
            cached = self._slices[key]
            if cached is None:
                raise StreamSliceError("slice failed verification before")
            return cached
        if len(self._slices) > _CACHE_LIMIT:
            self._slices.clear()
        public_key = state.topology.subnet(source).public_key_der
        try:
            verified = verify_stream_slice(data, public_key, state.subnet_id, from_index)
        except StreamSliceError:
            self._slices[key] = None
            raise
        self._slices[key] = verified.slice
        return verified.slice

    def _past_ingress(self, past: Sequence[Block]) -> set[bytes]:
        ids: set[bytes] = set()
        for batch in _batches(past):
            for data in batch.ingress:
                message = self._parse(data)
                if message is not None:
                    ids.add(message.message_id)
        return ids

    def _expected_indices(
        self, state: ReplicatedState, past: Sequence[Block]
    ) -> dict[Principal, tuple[int, int]]:
        """Return, per source subnet, (next expected index, last seen signals_end).

        Starts from the executed state and advances over the slices in ``past``
        (oldest first).
        """
        out: dict[Principal, tuple[int, int]] = {}
        for record in state.topology.subnets:
            if record.subnet_id != state.subnet_id:
                stream = state.stream_to(record.subnet_id)
                out[record.subnet_id] = (stream.header.signals_end, stream.header.begin)
        for batch in reversed(_batches(past)):
            for item in batch.xnet:
                source = Principal(item.source_subnet)
                if source not in out:
                    continue
                expected, signals = out[source]
                try:
                    piece = self._verify_slice(state, source, item.certified_slice, expected)
                except (StreamSliceError, StateError):
                    continue
                out[source] = (piece.next_index, max(signals, piece.header.signals_end))
        return out

    def _routable(self, state: ReplicatedState, message: SignedIngress) -> bool:
        """Return whether this subnet hosts the message's effective canister.

        A call to ``aaaaa-aa`` belongs to the subnet of the canister it names; one
        that names none (``provisional_create_canister_with_cycles``) to any subnet.
        Spec: interface spec §"Effective canister id".
        """
        if message.canister_id.raw != MANAGEMENT_CANISTER:
            return state.hosts(message.canister_id)
        target = management_target(message.arg)
        return target is None or state.hosts(Principal(target))

    # ------------------------------------------------------------------ building

    def get_batch(self, height: Height, time: Time, past: Sequence[Block]) -> BatchPayload:
        """Return the ingress and XNet slices for a new block at ``height``.

        Spec: protocol digest §4.2 (selection), §4.3 (XNet payload).
        """
        state = self.state()
        in_past = self._past_ingress(past)
        history = state.ingress_history
        limits = self.config.ingress_limits

        def included(message_id: bytes) -> bool:
            return message_id in in_past or history.get(message_id) is not None

        routable: dict[tuple[bytes, bytes], bool] = {}  # per (canister, management target)

        def ours(message: SignedIngress) -> bool:
            key = (
                message.canister_id.raw,
                message.arg if message.canister_id.raw == MANAGEMENT_CANISTER else b"",
            )
            known = routable.get(key)
            if known is None:
                known = routable[key] = self._routable(state, message)
            return known

        candidates = [
            m for m in self.pool.messages() if m.size <= limits.max_message_bytes and ours(m)
        ]
        seed = hashlib.sha256(b"ingress-selection" + height.to_bytes(8, "big")).digest()
        selected = select_ingress(candidates, time, included, seed, limits=limits)
        ingress = tuple(m.to_envelope() for m in selected)
        return BatchPayload(ingress, self._select_xnet(state, past))

    def _select_xnet(self, state: ReplicatedState, past: Sequence[Block]) -> tuple[XNetSlice, ...]:
        out: list[XNetSlice] = []
        budget = self.config.max_xnet_bytes_per_block
        for source, (expected, signals) in sorted(self._expected_indices(state, past).items()):
            data = self.xnet_client(source, expected)
            if data is None or len(data) > budget:
                continue
            try:
                piece = self._verify_slice(state, source, data, expected)
                check_slice(expected, signals, piece)
            except (StreamSliceError, StreamError, StateError):
                continue
            if piece.header.signals_end > state.stream_to(source).header.end:
                continue
            if not piece.messages and piece.header.signals_end <= signals:
                continue  # nothing new: no messages, no new signals
            out.append(XNetSlice(source.raw, data))
            budget -= len(data)
        return tuple(out)

    # ------------------------------------------------------------------ validating

    def validate_batch(
        self, height: Height, time: Time, batch: BatchPayload, past: Sequence[Block]
    ) -> None:
        """Raise ``InvalidArtifact`` unless ``batch`` may appear in a block at ``height``.

        Spec: protocol digest §4.2, §4.3.
        """
        state = self.state()
        self._validate_ingress(state, time, batch.ingress, past)
        self._validate_xnet(state, batch.xnet, past)

    def _validate_ingress(
        self, state: ReplicatedState, time: Time, ingress: Sequence[bytes], past: Sequence[Block]
    ) -> None:
        limits = self.config.ingress_limits
        if len(ingress) > limits.max_messages_per_block:
            raise InvalidArtifact(
                f"{len(ingress)} ingress messages exceed the limit {limits.max_messages_per_block}"
            )
        total = sum(len(data) for data in ingress)
        if total > limits.max_bytes_per_block:
            raise InvalidArtifact(
                f"{total} ingress bytes exceed the block limit {limits.max_bytes_per_block}"
            )
        in_past = self._past_ingress(past)
        seen: set[bytes] = set()
        for data in ingress:
            try:
                message = self.envelopes.parse_call(data, limits)
                check_ingress(message, time, self.authenticate, limits=limits)
            except IngressError as exc:
                raise InvalidArtifact(f"invalid ingress message: {exc}") from None
            mid = message.message_id
            if mid in seen:
                raise InvalidArtifact(f"ingress message {mid.hex()} appears twice in the batch")
            if mid in in_past:
                raise InvalidArtifact(
                    f"ingress message {mid.hex()} is already in an ancestor block"
                )
            if state.ingress_history.get(mid) is not None:
                raise InvalidArtifact(f"ingress message {mid.hex()} was already inducted")
            if not self._routable(state, message):
                raise InvalidArtifact(
                    f"ingress message for canister {message.canister_id} that subnet "
                    f"{state.subnet_id} does not host"
                )
            seen.add(mid)

    def _validate_xnet(
        self, state: ReplicatedState, slices: Sequence[XNetSlice], past: Sequence[Block]
    ) -> None:
        expected = self._expected_indices(state, past)
        total = sum(len(s.certified_slice) for s in slices)
        if total > self.config.max_xnet_bytes_per_block:
            raise InvalidArtifact(
                f"{total} XNet bytes exceed the block limit {self.config.max_xnet_bytes_per_block}"
            )
        sources: set[bytes] = set()
        for item in slices:
            if item.source_subnet in sources:
                raise InvalidArtifact("two XNet slices from one source subnet")
            sources.add(item.source_subnet)
            try:
                source = Principal(item.source_subnet)
            except ValueError as exc:
                raise InvalidArtifact(f"bad XNet source subnet id: {exc}") from None
            if source not in expected:
                raise InvalidArtifact(f"XNet slice from unknown or own subnet {source}")
            index, signals = expected[source]
            try:
                piece = self._verify_slice(state, source, item.certified_slice, index)
                check_slice(index, signals, piece)
            except (StreamSliceError, StreamError, StateError) as exc:
                raise InvalidArtifact(f"invalid XNet slice from {source}: {exc}") from None
            if piece.header.signals_end > state.stream_to(source).header.end:
                raise InvalidArtifact(
                    f"XNet slice from {source} acknowledges messages that were never sent"
                )

"""Ingress messages: parsing the HTTP envelope, validity checks, the pool, selection.

Theory of operation.  A user's update call arrives as a CBOR envelope
``{content, sender_pubkey?, sender_sig?, sender_delegation?}``.  The replica parses
it into a ``SignedIngress`` (``parse_call_envelope``), checks that it is
well-formed, addressed and not expired (``check_ingress``) and that the sender's
signature holds (an injected ``SenderAuthenticator``; ``icp.crypto`` supplies the
real one), then keeps it in its ``IngressPool``.  When the node makes a block it
*selects* pool messages (``select_ingress``): valid at the block's time, not already
in the chain, within the per-block count and byte limits, fairly across
destination canisters.  Nothing here reads a clock: ``now`` is passed in.

Spec: interface spec §"HTTP interface" (envelope, content, ingress_expiry);
protocol digest §4.2 (ingress selection) and the constants below.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, cast

import attrs
from sortedcontainers import SortedKeyList

from icp.crypto.errors import AuthenticationError
from icp.crypto.hashing import EncodingError, cbor_decode, cbor_encode, request_id
from icp.crypto.user_sig import SignedDelegation, authenticate_request
from icp.principal import Principal
from icp.types import NANOS_PER_SECOND, Time

MAX_INGRESS_TTL: Final = 5 * 60 * NANOS_PER_SECOND
"""How far in the future ``ingress_expiry`` may lie (dfinity/ic ``rs/limits``)."""

PERMITTED_DRIFT: Final = 60 * NANOS_PER_SECOND
"""Clock drift tolerated between a client and the IC (dfinity/ic ``rs/limits``)."""


@attrs.frozen
class IngressLimits:
    """Size and count limits for ingress; presets are data, passed in.

    Spec: protocol digest §4.2 (MAX_INGRESS_MESSAGES_PER_BLOCK = 1000,
    MAX_INGRESS_BYTES_PER_BLOCK = 4 MiB, 2 MiB per message on application subnets,
    3.5 MiB on system subnets).
    """

    max_message_bytes: int = 2 * 1024 * 1024
    max_messages_per_block: int = 1000
    max_bytes_per_block: int = 4 * 1024 * 1024
    max_nonce_bytes: int = 32
    max_ttl: int = MAX_INGRESS_TTL
    permitted_drift: int = PERMITTED_DRIFT


APPLICATION_SUBNET_LIMITS: Final = IngressLimits()
SYSTEM_SUBNET_LIMITS: Final = IngressLimits(max_message_bytes=3_670_016)  # 3.5 MiB


class IngressError(ValueError):
    """An ingress message the IC refuses, with the HTTP status and IC error code.

    Spec: interface spec §"HTTP interface" (4xx for client errors) and
    §"Reject codes" (``error_code`` ``IC`` + 4 digits).
    """

    def __init__(
        self, message: str, *, http_status: int = 400, reject_code: int = 1, error_code: str = ""
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.reject_code = reject_code
        self.error_code = error_code


@attrs.frozen
class SignedIngress:
    """An update call as received over HTTP: its content plus the sender's authentication.

    ``message_id`` is the request id (representation-independent hash of the
    content); ``size`` counts the envelope bytes, which the block limits use.
    Spec: interface spec §"Request: Call" and §"Envelope".
    """

    sender: Principal
    canister_id: Principal
    method_name: str
    arg: bytes
    ingress_expiry: int
    nonce: bytes | None
    message_id: bytes
    size: int
    sender_pubkey: bytes | None = None
    sender_sig: bytes | None = None
    sender_delegation: tuple[SignedDelegation, ...] = ()
    envelope: bytes = attrs.field(default=b"", repr=False, eq=False)
    """The HTTP body it was parsed from (what a block carries); empty if built by hand."""

    def to_envelope(self) -> bytes:
        """Return the CBOR envelope: the original bytes, or a re-encoding of the fields.

        The re-encoding has the same request id (it is representation-independent).
        Spec: interface spec §"Envelope".
        """
        if self.envelope:
            return self.envelope
        content: dict[str, object] = {
            "request_type": "call",
            "sender": self.sender.raw,
            "canister_id": self.canister_id.raw,
            "method_name": self.method_name,
            "arg": self.arg,
            "ingress_expiry": self.ingress_expiry,
        }
        if self.nonce is not None:
            content["nonce"] = self.nonce
        envelope: dict[str, object] = {"content": content}
        if self.sender_pubkey is not None:
            envelope["sender_pubkey"] = self.sender_pubkey
        if self.sender_sig is not None:
            envelope["sender_sig"] = self.sender_sig
        if self.sender_delegation:
            envelope["sender_delegation"] = [d.to_cbor_value() for d in self.sender_delegation]
        return cbor_encode(envelope)


def _get(content: Mapping[object, object], key: str, what: str) -> object:
    if key not in content:
        raise IngressError(f"the request content lacks the field {key!r} ({what})")
    return content[key]


def _blob(content: Mapping[object, object], key: str, what: str = "a blob") -> bytes:
    value = _get(content, key, what)
    if not isinstance(value, bytes):
        raise IngressError(f"the request field {key!r} must be {what}")
    return value


def _text(content: Mapping[object, object], key: str) -> str:
    value = _get(content, key, "text")
    if not isinstance(value, str):
        raise IngressError(f"the request field {key!r} must be text")
    return value


def _nat(content: Mapping[object, object], key: str) -> int:
    value = _get(content, key, "a nat (ns since the epoch)")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise IngressError(f"the request field {key!r} must be a nat")
    return value


def _principal(raw: bytes, key: str) -> Principal:
    try:
        return Principal(raw)
    except ValueError as exc:
        raise IngressError(f"the request field {key!r} is not a principal: {exc}") from None


def _delegations(value: object) -> tuple[SignedDelegation, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):  # cbor2 decodes nested arrays as tuples
        raise IngressError("sender_delegation must be an array")
    try:
        return tuple(SignedDelegation.from_cbor_value(entry) for entry in value)
    except AuthenticationError as exc:
        raise IngressError(f"sender_delegation: {exc}") from None


def parse_envelope(
    data: bytes, *, limits: IngressLimits = APPLICATION_SUBNET_LIMITS
) -> dict[str, object]:
    """Decode an HTTP request body into its envelope map, or raise ``IngressError``."""
    if len(data) > limits.max_message_bytes:
        raise IngressError(
            f"the request is {len(data)} bytes; the limit is {limits.max_message_bytes}",
            http_status=413,
        )
    try:
        envelope = cbor_decode(data)
    except EncodingError as exc:
        raise IngressError(f"the request body is not valid CBOR: {exc}") from None
    if not isinstance(envelope, Mapping) or not isinstance(envelope.get("content"), Mapping):
        raise IngressError("the request body must be a CBOR map with a 'content' map")
    return dict(envelope)


def parse_call_envelope(
    data: bytes, *, limits: IngressLimits = APPLICATION_SUBNET_LIMITS
) -> SignedIngress:
    """Parse a ``call`` request body into a ``SignedIngress``; raise ``IngressError``."""
    envelope = parse_envelope(data, limits=limits)
    content = envelope["content"]
    if not isinstance(content, Mapping):
        raise IngressError("the request body must be a CBOR map with a 'content' map")
    if content.get("request_type") != "call":
        raise IngressError(f"expected request_type 'call', got {content.get('request_type')!r}")
    nonce = content.get("nonce")
    if nonce is not None and (not isinstance(nonce, bytes) or len(nonce) > limits.max_nonce_bytes):
        raise IngressError(f"the nonce must be a blob of at most {limits.max_nonce_bytes} bytes")
    pubkey = envelope.get("sender_pubkey")
    sig = envelope.get("sender_sig")
    if pubkey is not None and not isinstance(pubkey, bytes):
        raise IngressError("sender_pubkey must be a blob")
    if sig is not None and not isinstance(sig, bytes):
        raise IngressError("sender_sig must be a blob")
    try:
        rid = request_id(cast(Mapping[str, object], content))  # keys checked inside
    except EncodingError as exc:
        raise IngressError(f"the request content cannot be hashed: {exc}") from None
    return SignedIngress(
        sender=_principal(_blob(content, "sender", "a principal (blob)"), "sender"),
        canister_id=_principal(_blob(content, "canister_id", "a principal (blob)"), "canister_id"),
        method_name=_text(content, "method_name"),
        arg=_blob(content, "arg"),
        ingress_expiry=_nat(content, "ingress_expiry"),
        nonce=nonce,
        message_id=rid,
        size=len(data),
        sender_pubkey=pubkey,
        sender_sig=sig,
        sender_delegation=_delegations(envelope.get("sender_delegation")),
        envelope=data,
    )


def is_expiry_valid(
    expiry: int, now: Time, limits: IngressLimits = APPLICATION_SUBNET_LIMITS
) -> bool:
    """Return whether ``now - drift <= expiry <= now + max_ttl + drift``.

    Spec: interface spec §"Request expiry"; dfinity/ic ``rs/limits``.
    """
    return now - limits.permitted_drift <= expiry <= now + limits.max_ttl + limits.permitted_drift


SenderAuthenticator = Callable[[SignedIngress, Time], None]
"""Checks a message's sender signature and delegations at a time; raises on failure."""


def authenticate_ingress(message: SignedIngress, now: Time) -> None:
    """Check the sender's signature and delegation chain with ``icp.crypto.user_sig``.

    Raises ``IngressError`` (HTTP 400) naming what failed.
    Spec: interface spec §"Authentication".
    """
    try:
        authenticate_request(
            message.sender,
            message.message_id,
            now,
            sender_pubkey=message.sender_pubkey,
            sender_sig=message.sender_sig,
            sender_delegation=message.sender_delegation,
            target=message.canister_id,
        )
    except AuthenticationError as exc:
        raise IngressError(f"request signature check failed: {exc}") from None


def check_ingress(
    message: SignedIngress,
    now: Time,
    authenticate: SenderAuthenticator | None = authenticate_ingress,
    *,
    limits: IngressLimits = APPLICATION_SUBNET_LIMITS,
) -> None:
    """Check an ingress message for the pool: expiry, anonymity rules, signature.

    ``authenticate=None`` is the trusted mode of a test environment (PocketIC lets
    tests act as any principal): expiry is still checked, senders are not.
    Raises ``IngressError`` saying what is wrong.
    Spec: interface spec §"Authentication" and §"Request expiry".
    """
    if not is_expiry_valid(message.ingress_expiry, now, limits):
        raise IngressError(
            f"ingress_expiry {message.ingress_expiry} is outside the window "
            f"[{now - limits.permitted_drift}, {now + limits.max_ttl + limits.permitted_drift}]"
            " (the request expired or lies too far in the future)"
        )
    if authenticate is None:
        return  # a trusted test environment (PocketIC) vouches for every sender
    if message.sender.is_anonymous:
        if message.sender_pubkey or message.sender_sig or message.sender_delegation:
            raise IngressError("an anonymous request must not carry a key, signature or delegation")
        return
    if message.sender_pubkey is None or message.sender_sig is None:
        raise IngressError(f"the request from {message.sender} needs sender_pubkey and sender_sig")
    authenticate(message, now)


class IngressPool:
    """The messages a node holds for inclusion in blocks, ordered by expiry.

    Spec: protocol digest §4.2.
    """

    def __init__(self) -> None:
        self._by_id: dict[bytes, SignedIngress] = {}
        self._by_expiry: SortedKeyList = SortedKeyList(
            key=lambda m: (m.ingress_expiry, m.message_id)
        )

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._by_id

    def add(self, message: SignedIngress) -> bool:
        """Add ``message``; return False if it is already there (identical resubmission)."""
        if message.message_id in self._by_id:
            return False
        self._by_id[message.message_id] = message
        self._by_expiry.add(message)
        return True

    def remove(self, message_ids: Iterable[bytes]) -> None:
        """Drop messages (e.g. once they are in a finalized block)."""
        for mid in message_ids:
            message = self._by_id.pop(mid, None)
            if message is not None:
                self._by_expiry.remove(message)

    def purge_expired(self, now: Time, limits: IngressLimits = APPLICATION_SUBNET_LIMITS) -> int:
        """Drop messages whose expiry has passed (allowing the permitted drift)."""
        cutoff = now - limits.permitted_drift
        stale = [m.message_id for m in self._by_expiry.irange_key(max_key=(cutoff, b""))]
        self.remove(stale)
        return len(stale)

    def messages(self) -> Sequence[SignedIngress]:
        return list(self._by_expiry)


def select_ingress(
    candidates: Iterable[SignedIngress],
    block_time: Time,
    already_included: Callable[[bytes], bool],
    fairness_seed: bytes,
    *,
    limits: IngressLimits = APPLICATION_SUBNET_LIMITS,
) -> tuple[SignedIngress, ...]:
    """Choose the ingress messages for a block made at ``block_time``.

    Messages must be valid at ``block_time`` and not already in the chain.  Within
    the per-block count and byte limits, destination canisters are served
    round-robin in an order derived from ``fairness_seed`` (e.g. the random beacon),
    so no canister can starve others; per canister, earlier expiry goes first.
    Spec: protocol digest §4.2 (ingress_selector: round-robin over canisters in
    randomized order).
    """
    queues: dict[Principal, list[SignedIngress]] = {}
    for message in sorted(candidates, key=lambda m: (m.ingress_expiry, m.message_id)):
        if not is_expiry_valid(message.ingress_expiry, block_time, limits):
            continue
        if already_included(message.message_id):
            continue
        queues.setdefault(message.canister_id, []).append(message)
    order = sorted(queues, key=lambda c: hashlib.sha256(fairness_seed + c.bytes).digest())
    chosen: list[SignedIngress] = []
    seen: set[bytes] = set()
    total = 0
    positions = dict.fromkeys(order, 0)
    progress = True
    while progress and len(chosen) < limits.max_messages_per_block:
        progress = False
        for canister in order:
            queue, i = queues[canister], positions[canister]
            while i < len(queue) and queue[i].message_id in seen:
                i += 1
            if i >= len(queue):
                positions[canister] = i
                continue
            message = queue[i]
            positions[canister] = i + 1
            progress = True
            if total + message.size > limits.max_bytes_per_block:
                continue
            chosen.append(message)
            seen.add(message.message_id)
            total += message.size
            if len(chosen) >= limits.max_messages_per_block:
                break
    return tuple(chosen)


INGRESS_CACHE_ENTRIES: Final = 200_000
"""Entries an ``EnvelopeCache`` or ``CachingAuthenticator`` keeps (oldest evicted first)."""

_FOREVER: Final = 1 << 128


def _evict_oldest(entries: dict[object, object], limit: int) -> None:
    while len(entries) > limit:
        del entries[next(iter(entries))]


INGRESS_CACHE_BYTES: Final = 256 * 1024 * 1024
"""Envelope bytes an ``EnvelopeCache`` keeps per kind (calls, other requests)."""


class _Memo:
    """Parsed bodies keyed by their bytes, bounded in count and in bytes (oldest go first).

    Each body also goes once its request has expired (``purge_expired``): ``expiries``
    is a heap of ``(ingress_expiry, body)``; entries evicted by the bounds leave their
    heap item behind until it is popped or the heap is compacted.
    """

    __slots__ = ("bytes", "entries", "expiries", "max_bytes", "max_entries")

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.entries: dict[bytes, tuple[IngressLimits, object]] = {}
        self.expiries: list[tuple[int, bytes]] = []
        self.bytes = 0
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def get(self, data: bytes, limits: IngressLimits) -> object | None:
        cached = self.entries.get(data)
        if cached is not None and (cached[0] is limits or cached[0] == limits):
            return cached[1]
        return None

    def put(self, data: bytes, limits: IngressLimits, value: object, expiry: int) -> None:
        if len(data) > self.max_bytes:
            return
        if data not in self.entries:
            self.bytes += len(data)
            heapq.heappush(self.expiries, (expiry, data))
        self.entries[data] = (limits, value)
        while len(self.entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self.entries)))
        if len(self.expiries) > 2 * len(self.entries) + 64:  # items of evicted bodies
            self.expiries = [item for item in self.expiries if item[1] in self.entries]
            heapq.heapify(self.expiries)

    def _drop(self, data: bytes) -> None:
        if self.entries.pop(data, None) is not None:
            self.bytes -= len(data)

    def purge_expired(self, cutoff: int) -> None:
        """Drop the bodies of requests whose ``ingress_expiry`` lies before ``cutoff``."""
        expiries = self.expiries
        while expiries and expiries[0][0] < cutoff:
            self._drop(heapq.heappop(expiries)[1])


class EnvelopeCache:
    """Per-process memo of ``parse_call_envelope``: each distinct envelope is parsed once.

    Parsing (CBOR decoding, the request id's representation-independent hash, field
    checks) is a pure function of the envelope bytes and the limits, and one envelope
    is parsed many times in one process: on submission, by every replica's payload
    validator, by induction and by ingress-pool cleanup on every replica.  Only
    successes are kept, at most ``max_entries`` and ``max_bytes`` of bodies per kind
    (oldest evicted first); a malformed envelope is parsed (and refused) every time.
    Its owner calls ``purge_expired`` as time advances: an expired request is refused
    wherever it is seen again, so its parse is not worth keeping (under a steady
    workload the cache then holds about one TTL's worth of requests, not
    ``max_entries``).  Share one instance among the replicas of ONE process; it
    changes speed, never outcomes.
    Spec: interface spec §"Envelope", §"Request ids" (the parse is deterministic),
    §"Request: Call" (``ingress_expiry``).
    """

    def __init__(
        self, max_entries: int = INGRESS_CACHE_ENTRIES, max_bytes: int = INGRESS_CACHE_BYTES
    ) -> None:
        self._calls = _Memo(max_entries, max_bytes)
        self._requests = _Memo(max_entries, max_bytes)
        self.hits = 0
        self.misses = 0

    def parse_call(
        self, data: bytes, limits: IngressLimits = APPLICATION_SUBNET_LIMITS
    ) -> SignedIngress:
        """Return ``parse_call_envelope(data, limits=limits)``; raise ``IngressError``."""
        data = data if type(data) is bytes else bytes(data)
        cached = self._calls.get(data, limits)
        if cached is not None:
            self.hits += 1
            return cast(SignedIngress, cached)
        self.misses += 1
        message = parse_call_envelope(data, limits=limits)
        self._calls.put(data, limits, message, message.ingress_expiry)
        return message

    def parse_request(
        self, data: bytes, limits: IngressLimits = APPLICATION_SUBNET_LIMITS
    ) -> tuple[Mapping[str, object], bytes]:
        """Return ``(envelope, request id)`` of any request body (query, read_state).

        The envelope map is shared: callers must not change it.  Raises
        ``IngressError`` for a body that is not an envelope and ``EncodingError`` for
        content that has no request id.
        Spec: interface spec §"Envelope", §"Request ids".
        """
        data = data if type(data) is bytes else bytes(data)
        cached = self._requests.get(data, limits)
        if cached is not None:
            self.hits += 1
            return cast(tuple[Mapping[str, object], bytes], cached)
        self.misses += 1
        envelope = parse_envelope(data, limits=limits)
        content = cast(Mapping[str, object], envelope["content"])
        rid = request_id(content)
        expiry = content.get("ingress_expiry")
        self._requests.put(data, limits, (envelope, rid), expiry if isinstance(expiry, int) else 0)
        return envelope, rid

    def purge_expired(self, now: Time) -> None:
        """Forget the envelopes of requests that expired before ``now`` (with drift).

        Spec: interface spec §"Request: Call" (a request past ``ingress_expiry`` plus
        the permitted drift is refused).
        """
        cutoff = now - PERMITTED_DRIFT
        self._calls.purge_expired(cutoff)
        self._requests.purge_expired(cutoff)

    def __len__(self) -> int:
        """Return the number of parsed envelopes held (calls and other requests)."""
        return len(self._calls.entries) + len(self._requests.entries)


class CachingAuthenticator:
    """A ``SenderAuthenticator`` that verifies each distinct signed request once per process.

    Whether a request authenticates depends on the request id, the target canister,
    ``sender_pubkey``, ``sender_sig`` and the delegations, and on the time only through
    the delegations' expirations (``expiration >= now`` for each).  So a success at
    some time stays a success until the earliest expiration: the memo keeps, per
    distinct request, that deadline and answers "valid" while ``now`` has not passed
    it.  Failures are never kept: a bad signature is checked (and refused) each time.
    Every real signature is still verified at least once per process.

    Share one instance among the replicas of ONE process (like consensus'
    ``VerificationCache``): the entry node's admission check, every peer's admission
    of the gossiped message and every notary's block validation then cost one
    verification together.  Replicas in separate processes (a real transport) each
    have their own instance and verify again.  The IC likewise verifies an ingress
    message's signature when it enters a node's ingress pool and does not redo the
    work for messages it has already validated.
    Spec: interface spec §"Authentication" (delegation ``expiration``, signature over
    ``"\\x0Aic-request" || request_id``); dfinity/ic ``rs/ingress_manager``
    (validated ingress pool) [mem].
    """

    def __init__(
        self, inner: SenderAuthenticator | None = None, max_entries: int = INGRESS_CACHE_ENTRIES
    ) -> None:
        self.inner: SenderAuthenticator = inner if inner is not None else authenticate_ingress
        self._valid_until: dict[tuple[object, ...], int] = {}
        self._useless_after: list[tuple[int, int, tuple[object, ...]]] = []
        """Heap of (time after which the request is refused as expired, seq, key)."""
        self._seq = 0
        self._max = max_entries
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _deadline(delegations: Sequence[SignedDelegation]) -> int:
        return min((d.delegation.expiration for d in delegations), default=_FOREVER)

    def _known(self, key: tuple[object, ...], now: int) -> bool:
        until = self._valid_until.get(key)
        if until is not None and now <= until:
            self.hits += 1
            return True
        self.misses += 1
        return False

    def __len__(self) -> int:
        """Return the number of remembered verifications."""
        return len(self._valid_until)

    def _remember(self, key: tuple[object, ...], until: int, expiry: int, now: int) -> None:
        """Remember a verification until ``until``; forget it once ``expiry`` has passed.

        A request whose ``ingress_expiry`` lies more than the permitted drift before
        ``now`` is refused as expired before its signature matters, so entries of
        expired requests are dropped here (the cache then holds about one TTL's worth
        of requests under a steady workload, not ``max_entries``).
        """
        heap = self._useless_after
        while heap and heap[0][0] < now - PERMITTED_DRIFT:
            self._valid_until.pop(heapq.heappop(heap)[2], None)
        if key not in self._valid_until:
            self._seq += 1
            heapq.heappush(heap, (expiry, self._seq, key))
        self._valid_until[key] = until
        _evict_oldest(self._valid_until, self._max)  # type: ignore[arg-type]
        if len(heap) > 2 * len(self._valid_until) + 64:  # items of evicted entries
            self._useless_after = [item for item in heap if item[2] in self._valid_until]
            heapq.heapify(self._useless_after)

    def __call__(self, message: SignedIngress, now: Time) -> None:
        """Authenticate ``message`` at ``now`` (the inner authenticator on a miss).

        Raises ``IngressError`` as the inner authenticator does.
        Spec: interface spec §"Authentication".
        """
        key = (
            b"call",
            message.message_id,
            message.canister_id.raw,
            message.sender_pubkey,
            message.sender_sig,
            message.sender_delegation,
        )
        if self._known(key, now):
            return
        self.inner(message, now)
        self._remember(key, self._deadline(message.sender_delegation), message.ingress_expiry, now)

    def authenticate_request(
        self,
        sender: Principal,
        request_id: bytes,
        now: int,
        *,
        sender_pubkey: bytes | None,
        sender_sig: bytes | None,
        sender_delegation: tuple[SignedDelegation, ...],
        target: Principal | None,
    ) -> None:
        """Memoised ``icp.crypto.user_sig.authenticate_request`` (query and read_state).

        Raises ``AuthenticationError`` naming what failed.
        Spec: interface spec §"Authentication".
        """
        key = (
            b"request",
            request_id,
            sender.raw,
            None if target is None else target.raw,
            sender_pubkey,
            sender_sig,
            sender_delegation,
        )
        if self._known(key, now):
            return
        authenticate_request(
            sender,
            request_id,
            now,
            sender_pubkey=sender_pubkey,
            sender_sig=sender_sig,
            sender_delegation=sender_delegation,
            target=target,
        )
        # the request's expiry is not passed in: the latest one accepted at ``now``
        latest_expiry = now + MAX_INGRESS_TTL + PERMITTED_DRIFT
        self._remember(key, self._deadline(sender_delegation), latest_expiry, now)

"""Ingress history: the status of every update call, as certified under ``/request_status``.

Theory of operation.  Each ingress message id has a status that only moves forward
along the transitions in ``TRANSITIONS``: ``received`` (inducted into a canister's
queue) → ``processing`` (execution started) → ``replied`` or ``rejected`` →
``done`` (the reply was forgotten, but the id is kept until ``ingress_expiry`` so
the same request cannot be executed twice).  A message may skip states (e.g. be
rejected at induction).  Entries are pruned only once their expiry has passed.
The status record is what the certified state tree publishes under
``/request_status/<request_id>/{status,reply,reject_code,reject_message,error_code}``.

Spec: interface spec §"Request status" and §"The system state tree"
(``shared/spec/interface.md`` §1.8, §2.3); protocol digest §4.7 (ingress history,
INGRESS_HISTORY_MAX_MESSAGES).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from typing import Final

import attrs

from icp.state.pmap import PMap
from icp.types import Time

INGRESS_HISTORY_MAX_MESSAGES: Final = 600_000


class RequestStatus(enum.Enum):
    """The value of ``/request_status/<id>/status``."""

    RECEIVED = "received"
    PROCESSING = "processing"
    REPLIED = "replied"
    REJECTED = "rejected"
    DONE = "done"


TRANSITIONS: Final[Mapping[RequestStatus, frozenset[RequestStatus]]] = {
    RequestStatus.RECEIVED: frozenset(
        {RequestStatus.PROCESSING, RequestStatus.REPLIED, RequestStatus.REJECTED}
    ),
    RequestStatus.PROCESSING: frozenset({RequestStatus.REPLIED, RequestStatus.REJECTED}),
    RequestStatus.REPLIED: frozenset({RequestStatus.DONE}),
    RequestStatus.REJECTED: frozenset({RequestStatus.DONE}),
    RequestStatus.DONE: frozenset(),
}
"""Legal status changes (rules as data); anything else is a bug in the caller."""


class IngressHistoryError(ValueError):
    """Raised for a status change that the request-status state machine forbids."""


@attrs.frozen
class IngressStatus:
    """One request's status record, with the reply or reject fields it implies.

    Spec: interface spec §"Request status" (reply iff replied; reject_code,
    reject_message and optional error_code iff rejected).
    """

    status: RequestStatus
    expiry: Time
    reply: bytes | None = None
    reject_code: int | None = None
    reject_message: str | None = None
    error_code: str | None = None
    sender: bytes | None = None  # the request's sender (read_state permission check)
    effective_canister_id: bytes | None = None  # where the request was sent (same)

    def __attrs_post_init__(self) -> None:
        if (self.reply is not None) != (self.status is RequestStatus.REPLIED):
            raise IngressHistoryError("a reply is present exactly when the status is replied")
        rejected = self.status is RequestStatus.REJECTED
        if (self.reject_code is not None and self.reject_message is not None) != rejected:
            raise IngressHistoryError(
                "reject_code and reject_message are present exactly when the status is rejected"
            )

    def tree_fields(self) -> dict[str, bytes | int | str]:
        """Return the labels and values this record contributes to the state tree."""
        fields: dict[str, bytes | int | str] = {"status": self.status.value}
        if self.reply is not None:
            fields["reply"] = self.reply
        if self.reject_code is not None and self.reject_message is not None:
            fields["reject_code"] = self.reject_code
            fields["reject_message"] = self.reject_message
            if self.error_code is not None:
                fields["error_code"] = self.error_code
        return fields


def _to_pmap(entries: Mapping[bytes, IngressStatus]) -> PMap[IngressStatus]:
    return entries if isinstance(entries, PMap) else PMap(entries)


def _expiry_key(expiry: int, message_id: bytes) -> bytes:
    return expiry.to_bytes(8, "big") + message_id


@attrs.frozen
class IngressHistory:
    """The status of each request id; an immutable value, changed by returning a new one.

    Both maps are persistent (``PMap``): a status change copies O(log n) nodes, and
    pruning by expiry visits only the entries it drops (``by_expiry`` orders them).
    """

    entries: PMap[IngressStatus] = attrs.field(factory=PMap, converter=_to_pmap)
    by_expiry: PMap[bytes] = attrs.field(eq=False, repr=False)

    @by_expiry.default
    def _index(self) -> PMap[bytes]:
        return PMap((_expiry_key(v.expiry, k), k) for k, v in self.entries.items())

    def get(self, message_id: bytes) -> IngressStatus | None:
        return self.entries.get(message_id)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.entries)

    def set_status(self, message_id: bytes, new: IngressStatus) -> IngressHistory:
        """Return the history with ``message_id`` moved to ``new``, if the move is legal."""
        old = self.entries.get(message_id)
        if old is not None and new.status not in TRANSITIONS[old.status]:
            raise IngressHistoryError(
                f"request {message_id.hex()} cannot go from {old.status.value} "
                f"to {new.status.value}"
            )
        if old is None and len(self.entries) >= INGRESS_HISTORY_MAX_MESSAGES:
            raise IngressHistoryError(
                f"ingress history is full ({INGRESS_HISTORY_MAX_MESSAGES} messages)"
            )
        index = self.by_expiry
        if old is None or old.expiry != new.expiry:  # else the index entry is already right
            if old is not None:
                index = index.remove(_expiry_key(old.expiry, message_id))
            index = index.set(_expiry_key(new.expiry, message_id), message_id)
        return IngressHistory(self.entries.set(message_id, new), index)

    def set_statuses(self, changes: Mapping[bytes, IngressStatus]) -> IngressHistory:
        """Return the history with every ``message_id → status`` of ``changes`` applied.

        The same rules as ``set_status`` per entry (raises ``IngressHistoryError`` on an
        illegal move or when full), in one bulk update of the persistent maps.
        """
        entries = self.entries
        added = 0
        index_changes: list[tuple[bytes, bytes]] = []
        removed: list[bytes] = []
        for message_id, new in changes.items():
            old = entries.get(message_id)
            if old is not None and new.status not in TRANSITIONS[old.status]:
                raise IngressHistoryError(
                    f"request {message_id.hex()} cannot go from {old.status.value} "
                    f"to {new.status.value}"
                )
            if old is None:
                added += 1
                if len(entries) + added > INGRESS_HISTORY_MAX_MESSAGES:
                    raise IngressHistoryError(
                        f"ingress history is full ({INGRESS_HISTORY_MAX_MESSAGES} messages)"
                    )
            if old is None or old.expiry != new.expiry:
                if old is not None:
                    removed.append(_expiry_key(old.expiry, message_id))
                index_changes.append((_expiry_key(new.expiry, message_id), message_id))
        index = self.by_expiry
        for key in removed:
            index = index.remove(key)
        return IngressHistory(entries.update(changes), index.update(index_changes))

    def forget_replies(self, message_id: bytes) -> IngressHistory:
        """Move a replied/rejected request to ``done`` (dropping its payload)."""
        old = self.entries[message_id]
        done = IngressStatus(
            RequestStatus.DONE,
            old.expiry,
            sender=old.sender,
            effective_canister_id=old.effective_canister_id,
        )
        return self.set_status(message_id, done)

    def prune(self, now: Time) -> IngressHistory:
        """Drop entries whose expiry lies before ``now`` (only then may they go).

        Costs O(k log n) for k dropped entries.
        """
        entries, index = self.entries, self.by_expiry
        for key, message_id in self.by_expiry.items_from(b""):
            if int.from_bytes(key[:8], "big") >= now:
                break
            entries = entries.remove(message_id)
            index = index.remove(key)
        return IngressHistory(entries, index)

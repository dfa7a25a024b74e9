"""The request-status state machine only moves forward and records reply/reject fields."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icp.state.ingress_history import (
    TRANSITIONS,
    IngressHistory,
    IngressHistoryError,
    IngressStatus,
    RequestStatus,
)
from icp.types import Time

RID = b"\x01" * 32
T = Time(10**18)


def status(s: RequestStatus) -> IngressStatus:
    if s is RequestStatus.REPLIED:
        return IngressStatus(s, T, reply=b"DIDL\x00\x00")
    if s is RequestStatus.REJECTED:
        return IngressStatus(s, T, reject_code=5, reject_message="trapped", error_code="IC0503")
    return IngressStatus(s, T)


def test_happy_path_and_tree_fields() -> None:
    h = IngressHistory()
    for s in (RequestStatus.RECEIVED, RequestStatus.PROCESSING, RequestStatus.REPLIED):
        h = h.set_status(RID, status(s))
    assert h.get(RID) == status(RequestStatus.REPLIED)
    assert h.get(RID).tree_fields() == {"status": "replied", "reply": b"DIDL\x00\x00"}  # type: ignore[union-attr]
    h = h.forget_replies(RID)
    assert h.get(RID).tree_fields() == {"status": "done"}  # type: ignore[union-attr]


def test_rejected_fields() -> None:
    fields = status(RequestStatus.REJECTED).tree_fields()
    assert fields == {
        "status": "rejected",
        "reject_code": 5,
        "reject_message": "trapped",
        "error_code": "IC0503",
    }


def test_inconsistent_records_are_refused() -> None:
    with pytest.raises(IngressHistoryError):
        IngressStatus(RequestStatus.REPLIED, T)
    with pytest.raises(IngressHistoryError):
        IngressStatus(RequestStatus.PROCESSING, T, reply=b"x")


@given(st.lists(st.sampled_from(list(RequestStatus)), min_size=1, max_size=8))
def test_only_listed_transitions_are_accepted(path: list[RequestStatus]) -> None:
    h = IngressHistory().set_status(RID, status(path[0]))
    current = path[0]
    for nxt in path[1:]:
        if nxt in TRANSITIONS[current]:
            h = h.set_status(RID, status(nxt))
            current = nxt
        else:
            with pytest.raises(IngressHistoryError):
                h.set_status(RID, status(nxt))
    assert h.get(RID).status is current  # type: ignore[union-attr]


def test_prune_keeps_unexpired() -> None:
    h = IngressHistory().set_status(RID, status(RequestStatus.DONE))
    assert len(h.prune(Time(T))) == 1
    assert len(h.prune(Time(T + 1))) == 0

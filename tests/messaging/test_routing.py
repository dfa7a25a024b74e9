"""The routing table maps canister ids to subnets and refuses overlapping ranges."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icp import Principal
from icp.messaging.routing import (
    CANISTER_IDS_PER_SUBNET,
    CanisterIdRange,
    RoutingError,
    RoutingTable,
)

NNS = Principal.from_text("tdb26-jop6k-aogll-7ltgs-eruif-6kk7m-qpktf-gdiqx-mxtrf-vb5e6-eqe")
APP = Principal.self_authenticating(b"app subnet")


def table() -> RoutingTable:
    return RoutingTable(
        [
            (CanisterIdRange.from_indices(0x8000000000100000, 0x80000000001FFFFF), APP),
            (CanisterIdRange.from_indices(0, CANISTER_IDS_PER_SUBNET - 1), NNS),
        ]
    )


def test_route_known_canisters() -> None:
    t = table()
    assert t.route(Principal.from_text("ryjl3-tyaaa-aaaaa-aaaba-cai")) == NNS
    assert t.route(Principal.from_text("bkyz2-fmaaa-aaaaa-qaaaq-cai")) == APP
    assert t.route(Principal.from_canister_index(CANISTER_IDS_PER_SUBNET)) is None
    assert t.route(Principal.anonymous()) is None
    assert t.subnets() == (NNS, APP)
    assert t.ranges_of(APP)[0].start == Principal.from_canister_index(0x8000000000100000)


def test_overlap_and_inverted_ranges_are_refused() -> None:
    with pytest.raises(RoutingError, match="overlap"):
        table().with_ranges(APP, [CanisterIdRange.from_indices(5, 6)])
    with pytest.raises(RoutingError, match="inverted"):
        CanisterIdRange.from_indices(6, 5)


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_route_agrees_with_a_linear_scan(index: int) -> None:
    t = table()
    cid = Principal.from_canister_index(index)
    expected = next((s for r, s in t.entries if r.contains(cid)), None)
    assert t.route(cid) == expected

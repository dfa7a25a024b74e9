"""Effective canister id resolution for the canister endpoints (interface spec §1.4)."""

from __future__ import annotations

import pytest

from icp.crypto.hashing import cbor_encode
from icp.http.backend import (
    parse_principal,
    provisional_target,
    request_content,
    resolve_effective_canister_id,
)
from icp.ic import ICError
from icp.messaging.routing import CanisterIdRange, RoutingTable
from icp.principal import Principal
from icp.state.replicated_state import NetworkTopology, SubnetTopology

NNS = Principal.self_authenticating(b"nns-key")
APP = Principal.self_authenticating(b"app-key")
APP_FIRST = 0x8000000000100000


def topology() -> NetworkTopology:
    table = RoutingTable(
        (
            (CanisterIdRange.from_indices(0, 2**20 - 1), NNS),
            (CanisterIdRange.from_indices(APP_FIRST, APP_FIRST + 2**20 - 1), APP),
        )
    )
    subnets = (SubnetTopology(NNS, b"k1"), SubnetTopology(APP, b"k2"))
    return NetworkTopology(subnets, table, NNS)


def body(request_type: str, canister: bytes, method: str) -> bytes:
    content = {"request_type": request_type, "canister_id": canister, "method_name": method,
               "sender": b"\x04", "arg": b"DIDL\0\0", "ingress_expiry": 1}  # fmt: skip
    return cbor_encode({"content": content})


def test_routable_ids_are_used_as_they_are() -> None:
    cid = Principal.from_canister_index(APP_FIRST + 7)
    assert resolve_effective_canister_id(topology(), cid, b"anything") == cid
    ledger = Principal.from_text("ryjl3-tyaaa-aaaaa-aaaba-cai")
    assert resolve_effective_canister_id(topology(), ledger, b"") == ledger


def test_provisional_creation_with_any_id_lands_on_the_application_subnet() -> None:
    mgmt = Principal.management_canister()
    create = body("call", b"", "provisional_create_canister_with_cycles")
    target = resolve_effective_canister_id(topology(), mgmt, create)
    assert target == Principal.from_canister_index(APP_FIRST) == provisional_target(topology())


@pytest.mark.parametrize(
    ("request_type", "method"),
    [("call", "install_code"), ("query", "provisional_create_canister_with_cycles"),
     ("call", "provisional_top_up_canister"), ("read_state", "")],
)  # fmt: skip
def test_other_unroutable_requests_are_refused(request_type: str, method: str) -> None:
    with pytest.raises(ICError) as err:
        resolve_effective_canister_id(
            topology(), Principal.management_canister(), body(request_type, b"", method)
        )
    assert err.value.http_status == 400
    unroutable = Principal.from_canister_index(2**40)
    with pytest.raises(ICError):
        resolve_effective_canister_id(topology(), unroutable, b"\xff")


def test_principals_and_bodies_from_the_wire() -> None:
    assert parse_principal("aaaaa-aa") == Principal.management_canister()
    for bad in ("", "AAAAA-AA-", "aaaaa-ab", "x" * 64):
        with pytest.raises(ICError):
            parse_principal(bad)
    assert request_content(b"\xff\x00") is None
    assert request_content(cbor_encode([1])) is None
    assert request_content(cbor_encode({"content": {"a": 1}})) == {"a": 1}

"""The IC HTTP interface: every endpoint, its error cases, CORS, and the dashboard data.

Spec: interface spec §1.1-§1.8, §2.2-§2.3.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from icp.build import compile_motoko
from icp.candid import decode as candid_decode
from icp.candid import encode
from icp.candid.types import Nat
from icp.crypto.certificate import Certificate
from icp.crypto.hashing import cbor_encode, hash_of_map, request_id
from icp.crypto.user_sig import principal_of
from icp.execution.management import CanisterIdRecord, InstallCodeArgs, ProvisionalCreateArgs
from icp.principal import Principal
from tests.http.helpers import (
    ServerThread,
    call_body,
    decode,
    http,
    identity,
    new_ic,
    read_state_body,
)

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]
ALICE = identity(1)
BOB = identity(2)
MGMT = Principal.management_canister()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(new_ic(nodes=4, seed=7))
    yield srv
    srv.stop()


def create_arg(controller: Principal) -> bytes:
    value = {"amount": 10**13, "settings": {"controllers": [controller]},
             "specified_id": None, "sender_canister_version": None}  # fmt: skip
    return encode([ProvisionalCreateArgs], [value])


def sync_call(server: ServerThread, ecid: str, body: bytes) -> dict[str, Any]:
    status, _, data = http(f"{server.url}/api/v3/canister/{ecid}/call", body)
    assert status == 200, data
    return dict(decode(data))


def certified_status(
    server: ServerThread, answer: dict[str, Any], rid: bytes, ecid: Principal
) -> Certificate:
    assert answer["status"] == "replied"
    cert = Certificate.from_cbor(answer["certificate"])
    cert.verify(server.ic.root_key, ecid, now=time.time_ns())
    return cert


@pytest.fixture(scope="module")
def counter(server: ServerThread) -> Principal:
    """Create (any ecid: aaaaa-aa) and install the Motoko counter over HTTP."""
    me = principal_of(ALICE)
    body = call_body(ALICE, MGMT, "provisional_create_canister_with_cycles", create_arg(me))
    answer = sync_call(server, "aaaaa-aa", body)
    rid = request_id(decode(body)["content"])
    app_start = server.ic.applications[0].ranges[0].start
    cert = certified_status(server, answer, rid, app_start)
    assert cert.lookup_value([b"request_status", rid, b"status"]) == b"replied"
    reply = cert.lookup_value([b"request_status", rid, b"reply"])
    cid = candid_decode(reply, [CanisterIdRecord])[0]["canister_id"]
    assert server.ic.applications[0].ranges[0].contains(cid)
    wasm = compile_motoko(REPO / "tests/canisters/counter")
    install = encode(
        [InstallCodeArgs],
        [{"mode": {"install": None}, "canister_id": cid, "wasm_module": wasm,
          "arg": encode([], []), "sender_canister_version": None}],
    )  # fmt: skip
    answer = sync_call(server, cid.to_text(), call_body(ALICE, MGMT, "install_code", install))
    assert answer["status"] == "replied"
    return Principal(bytes(cid.raw))


# -- status, CORS, routing -------------------------------------------------------------


def test_status_is_cbor_with_root_key_and_cors(server: ServerThread) -> None:
    status, headers, body = http(f"{server.url}/api/v2/status")
    assert status == 200 and headers["Content-Type"] == "application/cbor"
    assert body[:3] == b"\xd9\xd9\xf7"
    assert decode(body)["root_key"] == server.ic.root_key
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_preflight_answers_204_with_cors(server: ServerThread) -> None:
    status, headers, _ = http(f"{server.url}/api/v2/canister/aaaaa-aa/call", method="OPTIONS")
    assert status == 204
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize(
    ("path", "method", "expected"),
    [("/api/v2/nothing", "GET", 404), ("/api/v2/canister/aaaaa-aa/call", "GET", 405),
     ("/api/v2/status", "POST", 405)],
)  # fmt: skip
def test_unknown_paths_and_methods(
    server: ServerThread, path: str, method: str, expected: int
) -> None:
    status, headers, _ = http(server.url + path, b"" if method == "POST" else None, method=method)
    assert status == expected
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_content_type_must_be_cbor(server: ServerThread) -> None:
    body = call_body(ALICE, MGMT, "x", b"")
    status, _, text = http(
        f"{server.url}/api/v2/canister/aaaaa-aa/query", body, content_type="application/json"
    )
    assert status == 400 and b"application/cbor" in text


def test_body_over_the_limit_is_413(server: ServerThread) -> None:
    status, _, _ = http(f"{server.url}/api/v2/canister/aaaaa-aa/call", b"\0" * (5 * 2**20 + 1))
    assert status == 413


@pytest.mark.parametrize("kind", ["call", "query", "read_state"])
def test_bad_effective_canister_ids(server: ServerThread, kind: str) -> None:
    body = call_body(ALICE, MGMT, "canister_status", b"")
    status, _, text = http(f"{server.url}/api/v2/canister/not-a-principal/{kind}", body)
    assert status == 400 and b"invalid effective canister id" in text
    # the management canister is not in any range, and only provisional creation may say so
    status, _, text = http(f"{server.url}/api/v2/canister/aaaaa-aa/{kind}", body)
    assert status == 400 and b"not in the canister ranges of any subnet" in text


def test_garbage_bodies_are_400_with_a_message(server: ServerThread, counter: Principal) -> None:
    for endpoint in ("call", "query", "read_state"):
        for garbage in (b"", b"\xff\xff", cbor_encode([1, 2]), cbor_encode({"content": 5})):
            url = f"{server.url}/api/v2/canister/{counter}/{endpoint}"
            status, _, text = http(url, garbage)
            assert status == 400, (endpoint, garbage, text)
            assert len(text.strip()) > 5


# -- calls ------------------------------------------------------------------------------


def test_v2_call_is_202_then_read_state_shows_the_reply(
    server: ServerThread, counter: Principal
) -> None:
    body = call_body(ALICE, counter, "add", encode([Nat], [10]))
    rid = request_id(decode(body)["content"])
    status, _, data = http(f"{server.url}/api/v2/canister/{counter}/call", body)
    assert (status, data) == (202, b"")
    deadline = time.monotonic() + 30
    while True:
        rs = read_state_body(ALICE, [["request_status", rid]])
        status, _, data = http(f"{server.url}/api/v2/canister/{counter}/read_state", rs)
        assert status == 200, data
        cert = Certificate.from_cbor(decode(data)["certificate"])
        cert.verify(server.ic.root_key, counter, now=time.time_ns())
        if cert.lookup([b"request_status", rid, b"status"]).value == b"replied":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    reply = cert.lookup_value([b"request_status", rid, b"reply"])
    assert candid_decode(reply, [Nat])[0] >= 10
    # another sender may not read that request's status
    rs = read_state_body(BOB, [["request_status", rid]])
    status, _, text = http(f"{server.url}/api/v2/canister/{counter}/read_state", rs)
    assert status == 403, text


def test_v3_call_answers_with_a_certificate_for_rejections_too(
    server: ServerThread, counter: Principal
) -> None:
    body = call_body(ALICE, counter, "fail_after_inc", encode([], []))
    rid = request_id(decode(body)["content"])
    cert = certified_status(server, sync_call(server, counter.to_text(), body), rid, counter)
    assert cert.lookup_value([b"request_status", rid, b"status"]) == b"rejected"
    assert cert.lookup_value([b"request_status", rid, b"reject_code"]) == b"\x05"
    assert cert.lookup_value([b"request_status", rid, b"error_code"]) == b"IC0503"


def test_call_to_a_missing_canister_is_a_non_replicated_rejection(
    server: ServerThread, counter: Principal
) -> None:
    missing = Principal.from_canister_index((counter.canister_index() or 0) + 1000)
    body = call_body(ALICE, missing, "inc", encode([], []))
    status, _, data = http(f"{server.url}/api/v2/canister/{missing}/call", body)
    assert status == 200
    assert decode(data)["reject_code"] == 3 and decode(data)["error_code"] == "IC0301"
    answer = sync_call(server, missing.to_text(), body)
    assert answer["status"] == "non_replicated_rejection"
    assert answer["reject_code"] == 3 and "not found" in answer["reject_message"]


def test_bad_signature_expired_and_misaddressed_calls_are_400(
    server: ServerThread, counter: Principal
) -> None:
    url = f"{server.url}/api/v2/canister/{counter}/call"
    good = decode(call_body(ALICE, counter, "inc", encode([], [])))
    forged = dict(good, sender_sig=bytes(64))
    status, _, text = http(url, cbor_encode(forged))
    assert status == 400 and b"signature" in text
    stolen = dict(good, sender_pubkey=BOB.public_key_der())  # sender is Alice's principal
    status, _, _ = http(url, cbor_encode(stolen))
    assert status == 400
    expired = call_body(ALICE, counter, "inc", b"DIDL\0\0", ingress_expiry=time.time_ns() - 10**12)
    status, _, text = http(url, expired)
    assert status == 400 and b"expir" in text.lower()
    other = Principal.from_canister_index((counter.canister_index() or 0) + 5)
    status, _, text = http(f"{server.url}/api/v2/canister/{other}/call", cbor_encode(good))
    assert status == 400 and b"effective canister id" in text


# -- queries ----------------------------------------------------------------------------


def test_query_response_is_signed_by_a_node_of_the_subnet(
    server: ServerThread, counter: Principal
) -> None:
    body = call_body(BOB, counter, "get", encode([], []), request_type="query")
    status, _, data = http(f"{server.url}/api/v2/canister/{counter}/query", body)
    assert status == 200
    response = decode(data)
    assert response["status"] == "replied"
    (sig,) = response["signatures"]
    subnet = server.ic.applications[0]
    keys = dict(server.ic.topology.subnet(subnet.subnet_id).node_public_keys)
    der = keys[Principal(sig["identity"])]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    rid = request_id(decode(body)["content"])
    reply = {"arg": response["reply"]["arg"]}
    signed = {"status": "replied", "reply": reply, "timestamp": sig["timestamp"], "request_id": rid}
    Ed25519PublicKey.from_public_bytes(der[-32:]).verify(
        sig["signature"], b"\x0bic-response" + hash_of_map(signed)
    )


def test_query_to_a_missing_canister_is_a_signed_rejection(
    server: ServerThread, counter: Principal
) -> None:
    missing = Principal.from_canister_index((counter.canister_index() or 0) + 77)
    body = call_body(None, missing, "get", encode([], []), request_type="query")
    status, _, data = http(f"{server.url}/api/v2/canister/{missing}/query", body)
    assert status == 200
    response = decode(data)
    assert response["status"] == "rejected" and response["reject_code"] == 3
    assert len(response["signatures"]) == 1


# -- read_state -------------------------------------------------------------------------


def test_subnet_read_state_shows_node_keys(server: ServerThread) -> None:
    subnet = server.ic.applications[0]
    body = read_state_body(None, [["subnet", subnet.subnet_id.raw]])
    status, _, data = http(f"{server.url}/api/v2/subnet/{subnet.subnet_id}/read_state", body)
    assert status == 200, data
    cert = Certificate.from_cbor(decode(data)["certificate"])
    cert.verify(server.ic.root_key, effective_subnet_id=subnet.subnet_id, now=time.time_ns())
    for node_id, der in server.ic.topology.subnet(subnet.subnet_id).node_public_keys:
        path = [b"subnet", subnet.subnet_id.raw, b"node", node_id.raw, b"public_key"]
        assert cert.lookup_value(path) == der
    unknown = Principal.self_authenticating(b"\x30" * 44)
    status, _, _ = http(f"{server.url}/api/v2/subnet/{unknown}/read_state", body)
    assert status == 404


def test_read_state_of_another_canister_is_403(server: ServerThread, counter: Principal) -> None:
    other = Principal.from_canister_index((counter.canister_index() or 0) + 5)
    body = read_state_body(ALICE, [["canister", counter.raw, "module_hash"]])
    status, _, _ = http(f"{server.url}/api/v2/canister/{other}/read_state", body)
    assert status == 403
    status, _, _ = http(f"{server.url}/api/v2/canister/{counter}/read_state", body)
    assert status == 200


# -- dashboard data ---------------------------------------------------------------------


def test_dashboard_json_lists_subnets_blocks_and_canisters(
    server: ServerThread, counter: Principal
) -> None:
    status, _, data = http(f"{server.url}/_/dashboard.json")
    assert status == 200
    view = json.loads(data)
    kinds = [s["kind"] for s in view["subnets"]]
    assert kinds.count("nns") == 1 and kinds.count("application") == 1
    app = next(s for s in view["subnets"] if s["kind"] == "application")
    assert len(app["nodes"]) == 4 and app["finalized_height"] > 0
    assert app["recent_blocks"] and len(app["recent_blocks"][0]["hash"]) == 64
    ours = [c for c in app["canisters"] if c["id"] == counter.to_text()]
    assert ours and ours[0]["cycles"] > 0 and ours[0]["memory_bytes"] > 0
    status, _, page = http(f"{server.url}/_/dashboard")
    assert status == 200 and b"/_/dashboard.json" in page

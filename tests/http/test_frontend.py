"""The endpoint functions without a socket: sync-call timeout, resubmission, errors."""

from __future__ import annotations

import asyncio

from icp.candid import encode
from icp.crypto.certificate import Certificate
from icp.crypto.hashing import cbor_decode, request_id
from icp.execution.management import ProvisionalCreateArgs
from icp.http.server import HttpFrontend, error_reply
from icp.ic import ICError, InternetComputer
from icp.principal import Principal
from tests.http.helpers import call_body, decode, identity


def test_sync_call_answers_202_on_timeout_then_the_certificate() -> None:
    ic = InternetComputer(nodes=1, seed=4)
    frontend = HttpFrontend(ic, clock=lambda: ic.now, sync_call_timeout=0.0)
    arg = encode(
        [ProvisionalCreateArgs],
        [{"amount": 10**12, "settings": None, "specified_id": None,
          "sender_canister_version": None}],
    )  # fmt: skip
    who = identity(4)
    body = call_body(
        who, Principal.management_canister(), "provisional_create_canister_with_cycles", arg,
        ingress_expiry=ic.now + 120 * 10**9,
    )  # fmt: skip
    ecid = ic.applications[0].ranges[0].start.to_text()
    # nobody drives the clock: the call cannot be certified within the (zero) wait
    assert asyncio.run(frontend.call_v3(ecid, body)).status == 202
    ic.tick(3)
    # resubmitting the same request is harmless and now answers with the certificate
    again = asyncio.run(frontend.call_v3(ecid, body))
    assert again.status == 200
    answer = cbor_decode(again.body)
    cert = Certificate.from_cbor(answer["certificate"])
    cert.verify(ic.root_key, Principal.from_text(ecid))
    rid = request_id(decode(body)["content"])
    assert cert.lookup_value([b"request_status", rid, b"status"]) == b"replied"


def test_error_replies_by_endpoint() -> None:
    refused = ICError("Canister x not found", http_status=400, reject_code=3, error_code="IC0301")
    v2 = error_reply(refused, "call_v2")
    assert v2.status == 200 and cbor_decode(v2.body)["reject_code"] == 3
    v3 = error_reply(refused, "call_v3")
    assert cbor_decode(v3.body)["status"] == "non_replicated_rejection"
    assert cbor_decode(v3.body)["error_code"] == "IC0301"
    other = error_reply(refused)
    assert other.status == 400 and b"IC0301" in other.body
    malformed = error_reply(ICError("bad CBOR", http_status=400, reject_code=1), "call_v2")
    assert malformed.status == 400 and malformed.content_type.startswith("text/plain")
    overloaded = error_reply(ICError("busy", http_status=503, reject_code=2), "call_v3")
    assert overloaded.status == 503

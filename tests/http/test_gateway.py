"""The HTTP gateway: Motoko web sites served to browsers by canister id, verified.

Spec: HTTP gateway protocol (canister from the host or ``canisterId``; upgrade to an
update call; streaming callbacks; response verification v1/v2, raw domains skip it).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from icp.build import compile_motoko
from icp.candid import Blob, Bool, Nat16, Opt, Record, Text, Vec, encode
from icp.candid import decode as candid_decode
from icp.crypto import hashtree
from icp.crypto.hashing import cbor_encode, sha256
from icp.crypto.user_sig import principal_of
from icp.execution.management import CanisterIdRecord, InstallCodeArgs, ProvisionalCreateArgs
from icp.http import certification
from icp.http.gateway import GatewayError, canister_of, is_raw
from icp.principal import Principal
from tests.http.helpers import ServerThread, call_body, decode, http, identity, new_ic

pytestmark = pytest.mark.timeout(120)
SITE = Path(__file__).resolve().parent / "site"
CERTIFIED = Path(__file__).resolve().parent / "certified"
OWNER = identity(3)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(new_ic(nodes=1, seed=5))
    yield srv
    srv.stop()


def install(server: ServerThread, wasm: bytes) -> Principal:
    """Create a canister owned by OWNER through the HTTP interface and install ``wasm``."""
    mgmt = Principal.management_canister()
    create = encode(
        [ProvisionalCreateArgs],
        [{"amount": 10**13, "settings": {"controllers": [principal_of(OWNER)]},
          "specified_id": None, "sender_canister_version": None}],
    )  # fmt: skip
    body = call_body(OWNER, mgmt, "provisional_create_canister_with_cycles", create)
    status, _, data = http(f"{server.url}/api/v3/canister/aaaaa-aa/call", body)
    assert status == 200
    from icp.crypto.certificate import Certificate
    from icp.crypto.hashing import request_id

    rid = request_id(decode(body)["content"])
    cert = Certificate.from_cbor(decode(data)["certificate"])
    cid = candid_decode(cert.lookup_value([b"request_status", rid, b"reply"]), [CanisterIdRecord])[
        0
    ]["canister_id"]
    install = encode(
        [InstallCodeArgs],
        [{"mode": {"install": None}, "canister_id": cid, "wasm_module": wasm,
          "arg": encode([], []), "sender_canister_version": None}],
    )  # fmt: skip
    status, _, data = http(
        f"{server.url}/api/v3/canister/{cid}/call", call_body(OWNER, mgmt, "install_code", install)
    )
    assert status == 200 and decode(data)["status"] == "replied"
    return Principal(bytes(cid.raw))


@pytest.fixture(scope="module")
def site(server: ServerThread) -> tuple[ServerThread, Principal]:
    return server, install(server, compile_motoko(SITE))


def browse(
    server: ServerThread, host: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"{server.url}{path}", data=body)
    request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_canister_is_named_by_host_or_query() -> None:
    cid = "bnz7o-iuaaa-aaaaa-qaaaa-cai"
    assert canister_of(f"{cid}.localhost:4943", {}) == Principal.from_text(cid)
    assert canister_of(f"{cid}.raw.localhost:4943", {}) == Principal.from_text(cid)
    assert is_raw(f"{cid}.raw.localhost:4943") and not is_raw(f"{cid}.localhost:4943")
    assert not is_raw("raw.localhost")
    assert canister_of("127.0.0.1:4943", {"canisterId": cid}) == Principal.from_text(cid)
    assert canister_of("localhost:4943", {}) is None
    with pytest.raises(GatewayError):
        canister_of("nope.localhost", {})


def test_uncertified_pages_only_on_the_raw_domain(site: tuple[ServerThread, Principal]) -> None:
    server, cid = site
    for path in ("/", f"/?canisterId={cid}"):
        host = f"{cid}.localhost:{server.port}" if path == "/" else f"127.0.0.1:{server.port}"
        status, _, body = browse(server, host, path)
        assert status == 503 and b"no IC-Certificate header" in body and b"hello" not in body


def test_pages_headers_and_404_from_the_canister(site: tuple[ServerThread, Principal]) -> None:
    server, cid = site
    host = f"{cid}.raw.localhost:{server.port}"
    status, headers, body = browse(server, host, "/")
    assert status == 200 and body.startswith(b"<h1>hello from a canister</h1><p>GET")
    assert headers["Content-Type"] == "text/html" and headers["X-Site"] == "icp"
    status, _, body = browse(server, host, "/missing/page")
    assert status == 404 and body == b"not found: /missing/page"
    status, _, body = browse(server, host, "/echo", b"x" * 999)
    assert (status, body) == (200, b"POST 999")


def test_upgrade_to_update_calls_changes_state(site: tuple[ServerThread, Principal]) -> None:
    server, cid = site
    host = f"{cid}.localhost:{server.port}"
    first = browse(server, host, "/hit")[2]
    second = browse(server, host, "/hit")[2]
    n = int(first.decode().removeprefix("hits="))
    assert second == f"hits={n + 1}".encode()


def test_streaming_callbacks_are_followed(site: tuple[ServerThread, Principal]) -> None:
    server, cid = site
    status, _, body = browse(server, f"{cid}.raw.localhost:{server.port}", "/stream")
    assert (status, body) == (200, b"part0;part1;part2;end")


def test_bad_hosts_missing_canisters_and_traversal(site: tuple[ServerThread, Principal]) -> None:
    server, cid = site
    status, _, body = browse(server, f"zz.localhost:{server.port}", "/")
    assert status == 400 and b"not a canister id" in body
    status, _, body = browse(server, f"127.0.0.1:{server.port}", "/index.html")
    assert status == 404 and b"canisterId" in body
    other = Principal.from_canister_index((cid.canister_index() or 0) + 9)
    status, _, body = browse(server, f"{other}.localhost:{server.port}", "/")
    assert status == 404 and b"not found" in body
    for path in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc"):
        status, _, body = browse(server, f"{cid}.raw.localhost:{server.port}", path)
        assert status == 404 and b"root:" not in body


# -- response verification against a canister that can tell the truth or lie -----------

HeaderFields = Vec(Record([Text, Text]))
Page = Record(
    {
        "url": Text,
        "status": Nat16,
        "headers": HeaderFields,
        "body": Blob,
        "tree": Blob,
        "expr_path": Opt(Blob),
        "certify": Bool,
    }
)
V2_CEL = (
    "default_certification(ValidationArgs{certification:Certification{request_certification:"
    'RequestCertification{certified_request_headers:["host"],certified_query_parameters:[]},'
    "response_certification:ResponseCertification{certified_response_headers:"
    'ResponseHeaderList{headers:["content-type"]}}}})'
)


def page(
    url: str, body: bytes, tree: hashtree.HashTree, *, headers: list[tuple[str, str]] | None = None,
    expr_path: list[str] | None = None, certify: bool = True,
) -> dict[str, object]:  # fmt: skip
    return {
        "url": url,
        "status": 200,
        "headers": headers or [("Content-Type", "text/plain")],
        "body": body,
        "tree": hashtree.to_cbor(tree),
        "expr_path": None if expr_path is None else cbor_encode(expr_path),
        "certify": certify,
    }


@pytest.fixture(scope="module")
def certified(server: ServerThread) -> tuple[ServerThread, Principal]:
    """The certified site: v1 and v2 pages, honest and lying, under one certified root."""
    cid = install(server, compile_motoko(CERTIFIED))
    host = f"{cid}.localhost:{server.port}"
    v2_request = certification.Request("GET", "/v2", (("host", host),), b"")
    cel = certification.parse_expression(V2_CEL)
    assert cel.request is not None and cel.response is not None
    v2_headers = [("Content-Type", "text/html"), ("IC-CertificateExpression", V2_CEL)]
    v2_response = certification.Response(200, tuple(v2_headers), b"<p>v2</p>")
    response_hash = certification.response_hash(
        v2_response, certification.certified_headers(v2_response, cel.response)
    )
    leaf = hashtree.build(
        {certification.request_hash(v2_request, cel.request): {response_hash: b""}}
    )
    tree = hashtree.build(
        {
            "http_assets": {"/": sha256(b"home"), "/lie": sha256(b"the truth")},
            "http_expr": {"v2": {"<$>": {sha256(V2_CEL.encode()): leaf}}},
        }
    )
    other_tree = hashtree.build({"http_assets": {"/wrongtree": sha256(b"w")}})
    v2_path = ["http_expr", "v2", "<$>"]
    lying_headers = [
        ("Content-Type", "application/javascript"),
        ("IC-CertificateExpression", V2_CEL),
    ]
    pages = [
        page("/", b"home", tree),
        page("/lie", b"a lie", tree),
        page("/uncertified", b"plain", tree, certify=False),
        page("/wrongtree", b"w", other_tree),
        page("/v2", b"<p>v2</p>", tree, headers=[*v2_headers, ("X-Extra", "1")], expr_path=v2_path),
        # the same certified path (the query is not certified), a header swapped
        page("/v2?lie", b"<p>v2</p>", tree, headers=lying_headers, expr_path=v2_path),
    ]
    arg = encode([Blob, Vec(Page)], [tree.digest(), pages])
    status, _, data = http(
        f"{server.url}/api/v3/canister/{cid}/call", call_body(OWNER, cid, "set", arg)
    )
    assert status == 200 and decode(data)["status"] == "replied"
    return server, cid


def test_certified_assets_verify(certified: tuple[ServerThread, Principal]) -> None:
    server, cid = certified
    host = f"{cid}.localhost:{server.port}"
    status, headers, body = browse(server, host, "/")
    assert (status, body) == (200, b"home")
    assert "IC-Certificate" in headers
    status, headers, body = browse(server, host, "/v2")
    assert (status, body) == (200, b"<p>v2</p>")
    assert headers["content-type"] == "text/html" and "X-Extra" not in headers


def test_lying_canisters_get_503_never_their_content(
    certified: tuple[ServerThread, Principal],
) -> None:
    server, cid = certified
    host = f"{cid}.localhost:{server.port}"
    expected = {
        "/lie": b"body's hash",
        "/uncertified": b"no IC-Certificate header",
        "/wrongtree": b"certified data",
        "/v2?lie": b"hashes are not certified",
    }
    for path, reason in expected.items():
        status, _, body = browse(server, host, path)
        assert status == 503, (path, body)
        assert b"response verification failed" in body and reason in body, body
        assert b"a lie" not in body and b"plain" not in body and b"<p>v2" not in body
    # the raw domain passes the canister's answer on unverified, as ic-http-gateway does
    status, _, body = browse(server, f"{cid}.raw.localhost:{server.port}", "/lie")
    assert (status, body) == (200, b"a lie")


def with_custom_section(wasm: bytes, name: str, content: bytes) -> bytes:
    """Append a custom section (id 0) to a Wasm module."""
    from icp.leb128 import encode_unsigned

    raw_name = name.encode()
    payload = encode_unsigned(len(raw_name)) + raw_name + content
    return wasm + b"\x00" + encode_unsigned(len(payload)) + payload


def test_a_v1_answer_from_a_canister_that_supports_v2_is_a_downgrade(
    server: ServerThread,
) -> None:
    wasm = with_custom_section(
        compile_motoko(CERTIFIED), "icp:public supported_certificate_versions", b"1,2"
    )
    cid = install(server, wasm)
    host = f"{cid}.localhost:{server.port}"
    cel = certification.parse_expression(V2_CEL)
    assert cel.request is not None and cel.response is not None
    v2_headers = [("Content-Type", "text/html"), ("IC-CertificateExpression", V2_CEL)]
    v2_response = certification.Response(200, tuple(v2_headers), b"v2 page")
    response_hash = certification.response_hash(
        v2_response, certification.certified_headers(v2_response, cel.response)
    )
    request_hash = certification.request_hash(
        certification.Request("GET", "/v2", (("host", host),), b""), cel.request
    )
    tree = hashtree.build(
        {
            "http_assets": {"/": sha256(b"v1 page")},
            "http_expr": {
                "v2": {"<$>": {sha256(V2_CEL.encode()): {request_hash: {response_hash: b""}}}}
            },
        }
    )
    pages = [
        page("/", b"v1 page", tree),
        page("/v2", b"v2 page", tree, headers=v2_headers, expr_path=["http_expr", "v2", "<$>"]),
    ]
    arg = encode([Blob, Vec(Page)], [tree.digest(), pages])
    status, _, data = http(
        f"{server.url}/api/v3/canister/{cid}/call", call_body(OWNER, cid, "set", arg)
    )
    assert status == 200 and decode(data)["status"] == "replied"
    status, _, body = browse(server, host, "/")
    assert status == 503 and b"downgrade" in body and b"v1 page" not in body
    status, _, body = browse(server, host, "/v2")
    assert (status, body) == (200, b"v2 page")

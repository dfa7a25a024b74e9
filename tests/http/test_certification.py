"""Response verification (v1 and v2) against certificates signed with a real BLS key.

Spec: HTTP gateway protocol "Response Verification"; hash vectors from
dfinity/response-verification (``ic-http-certification`` request/response hash tests).
"""

from __future__ import annotations

import base64
import contextlib
import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icp.crypto import bls, hashtree
from icp.crypto.certificate import Certificate, certification_message
from icp.crypto.hashing import cbor_encode, sha256
from icp.http.certification import (
    Request,
    RequestCertification,
    Response,
    ResponseCertification,
    VerificationError,
    VerifiedCertificates,
    certified_headers,
    more_specific_wildcards,
    parse_certificate_header,
    parse_expression,
    request_hash,
    response_hash,
    verify_response,
    version_floor,
)
from icp.principal import Principal

NOW = 1_700_000_000 * 10**9
CID = Principal.from_text("rwlgt-iiaaa-aaaaa-aaaaa-cai")
SK, PK = bls.keygen(b"response verification test key!!")
ROOT_KEY = bls.public_key_to_der(PK)
BODY = b"<h1>certified</h1>"


def certificate(
    data: bytes, *, canister: Principal = CID, time: int = NOW, sk: object = SK
) -> bytes:
    """Return a root-signed certificate of ``canister``'s certified data."""
    tree = hashtree.build({"canister": {canister.raw: {"certified_data": data}}, "time": time})
    signature = bls.sign(sk, certification_message(tree.digest()))  # type: ignore[arg-type]
    return Certificate.create(tree, signature).to_cbor()


def ic_certificate(tree: hashtree.HashTree, cert: bytes, expr_path: list[str] | None = None) -> str:
    b64 = base64.b64encode
    value = f"certificate=:{b64(cert).decode()}:, tree=:{b64(hashtree.to_cbor(tree)).decode()}:"
    if expr_path is not None:
        value += f", version=2, expr_path=:{b64(cbor_encode(expr_path)).decode()}:"
    return value


def v1_response(
    tree: hashtree.HashTree, body: bytes = BODY, *, data: bytes | None = None, status: int = 200
) -> Response:
    cert = certificate(tree.digest() if data is None else data)
    headers = (("Content-Type", "text/html"), ("Cache-Control", "max-age=9"))
    return Response(status, (*headers, ("IC-Certificate", ic_certificate(tree, cert))), body)


def get(url: str) -> Request:
    return Request("GET", url, (("Host", "x.localhost"),), b"")


def verify(
    request: Request, response: Response, *, now: int = NOW
) -> tuple[int, tuple[tuple[str, str], ...]]:
    result = verify_response(request, response, CID, ROOT_KEY, now)
    return result.version, result.headers


# -- v1 ------------------------------------------------------------------------------------


def test_v1_certified_asset_verifies_and_drops_cache_control() -> None:
    tree = hashtree.build({"http_assets": {"/index.html": sha256(BODY), "/a.js": sha256(b"js")}})
    version, headers = verify(get("/index.html?x=1"), v1_response(tree))
    assert version == 1
    assert ("Content-Type", "text/html") in headers
    assert all(k.lower() != "cache-control" for k, _ in headers)


def test_v1_lies_are_caught() -> None:
    tree = hashtree.build({"http_assets": {"/page": sha256(BODY)}})
    with pytest.raises(VerificationError, match="body's hash"):
        verify(get("/page"), v1_response(tree, b"<h1>evil</h1>"))
    with pytest.raises(VerificationError, match="certified data"):
        verify(get("/page"), v1_response(tree, data=sha256(b"something else")))
    with pytest.raises(VerificationError, match="neither"):
        verify(get("/other"), v1_response(tree))
    with pytest.raises(VerificationError, match="malformed URL"):
        verify(get("//[page"), v1_response(tree))
    with pytest.raises(VerificationError, match="redirects"):
        verify(get("/page"), v1_response(tree, status=302))


def test_v1_index_fallback_percent_decoding_and_gzip() -> None:
    tree = hashtree.build({"http_assets": {"/index.html": sha256(BODY), "/a b": sha256(b"sp")}})
    assert verify(get("/some/spa/route"), v1_response(tree))[0] == 1
    assert verify(get("/a%20b"), v1_response(tree, b"sp"))[0] == 1
    zipped = gzip.compress(BODY)
    response = v1_response(tree, zipped)
    response = Response(200, (("Content-Encoding", "gzip"), *response.headers), zipped)
    assert verify(get("/index.html"), response)[0] == 1


def test_the_certificate_itself_must_verify() -> None:
    tree = hashtree.build({"http_assets": {"/": sha256(BODY)}})
    good = v1_response(tree)
    with pytest.raises(VerificationError, match="certificate"):
        verify(get("/"), good, now=NOW + 301 * 10**9)  # stale /time
    other_sk, _ = bls.keygen(b"another key, not the IC root key")
    forged = ic_certificate(tree, certificate(tree.digest(), sk=other_sk))
    with pytest.raises(VerificationError, match="signature"):
        verify(get("/"), Response(200, (("IC-Certificate", forged),), BODY))
    elsewhere = ic_certificate(
        tree, certificate(tree.digest(), canister=Principal.from_canister_index(7))
    )
    with pytest.raises(VerificationError, match="does not reveal"):
        verify(get("/"), Response(200, (("IC-Certificate", elsewhere),), BODY))


def test_missing_or_malformed_headers() -> None:
    with pytest.raises(VerificationError, match="no IC-Certificate"):
        verify(get("/"), Response(200, (("Content-Type", "text/plain"),), BODY))
    for bad in ("certificate=:!!:, tree=:AA==:", "tree=:AA==:", "garbage", "certificate=:AA==:"):
        with pytest.raises(VerificationError):
            verify(get("/"), Response(200, (("IC-Certificate", bad),), BODY))
    fields = parse_certificate_header("certificate=:AAE=:,tree=:Ag==:,version=2,expr_path=:Aw==:")
    assert (fields.certificate, fields.tree, fields.version, fields.expr_path) == (
        b"\0\1", b"\2", 2, b"\3"
    )  # fmt: skip


# -- v2 hashes: vectors from ic-http-certification ------------------------------------------

VECTOR_REQUEST = Request(
    "POST",
    "https://ic0.app?q=hello+world&name=foo&name=bar&color=purple",
    (("Accept-Language", "en"), ("Accept-Language", "en-US"), ("Host", "https://ic0.app")),
    bytes(range(7)),
)
CERTIFIED_CEL = (
    "default_certification(ValidationArgs{certification:Certification{no_request_certification:"
    "Empty{},response_certification:ResponseCertification{certified_response_headers:"
    'ResponseHeaderList{headers:["Accept-Encoding","Cache-Control"]}}}})'
)
EXCLUSIONS_CEL = (
    "default_certification(ValidationArgs{certification:Certification{no_request_certification:"
    "Empty{},response_certification:ResponseCertification{response_header_exclusions:"
    'ResponseHeaderList{headers:["Content-Security-Policy"]}}}})'
)


def vector_response(cel: str) -> Response:
    headers = (
        ("IC-Certificate", "certificate=:SGVsbG8gQ2VydGlmaWNhdGUh:,tree=:SGVsbG8gVHJlZSE=:"),
        ("IC-CertificateExpression", cel),
        ("Accept-Encoding", "gzip"),
        ("Cache-Control", "no-cache"),
        ("Cache-Control", "no-store"),
        ("Content-Security-Policy", "default-src 'self'"),
    )
    return Response(200, headers, b"Hello World!")


def test_request_hash_vectors() -> None:
    no_query = Request("POST", "https://ic0.app", VECTOR_REQUEST.headers, VECTOR_REQUEST.body)
    host_only = RequestCertification(("host",), ())
    expected = "10796453466efb3e333891136b8a5931269f77e40ead9d437fcee94a02fa833c"
    assert request_hash(no_query, host_only).hex() == expected
    assert request_hash(VECTOR_REQUEST, host_only).hex() == expected  # query not certified
    with_query = RequestCertification(("host",), ("q", "name"))
    assert (
        request_hash(VECTOR_REQUEST, with_query).hex()
        == "3ade1c9054f05bc8bcebd3fd7b884078a6e67c63e5ac4a639fa46a47f5a955c9"
    )


def test_response_hash_vectors() -> None:
    certified = ResponseCertification(True, ("Accept-Encoding", "Cache-Control"))
    response = vector_response(CERTIFIED_CEL)
    assert (
        response_hash(response, certified_headers(response, certified)).hex()
        == "3393250e3cedc30408dcb7e8963898c3d7549b8a0b76496b82fdfeae99c2ac78"
    )
    excluded = ResponseCertification(False, ("Accept-Encoding", "Cache-Control"))
    response = vector_response(EXCLUSIONS_CEL)
    assert (
        response_hash(response, certified_headers(response, excluded)).hex()
        == "a2ffb50ef8971650c2fb46c0a2788b7d5ac5a027d635175e8e06b419ce6c4cda"
    )


def test_cel_expressions_parse_with_whitespace_and_refuse_garbage() -> None:
    parsed = parse_expression(
        """default_certification (
             ValidationArgs {
               certification: Certification {
                 request_certification: RequestCertification {
                   certified_request_headers: ["host"], certified_query_parameters: []
                 },
                 response_certification: ResponseCertification {
                   certified_response_headers: ResponseHeaderList { headers: ["Cache-Control"] }
                 }
               }
             }
           )"""
    )
    assert parsed.request == RequestCertification(("host",), ())
    assert parsed.response == ResponseCertification(True, ("Cache-Control",))
    skip = parse_expression("default_certification(ValidationArgs{no_certification:Empty{}})")
    assert skip.response is None
    for bad in ("", "default_certification(", "other(ValidationArgs{no_certification:Empty{}})",
                "default_certification(ValidationArgs{})", CERTIFIED_CEL + "x",
                CERTIFIED_CEL.replace("no_request_certification:Empty{},", "")):  # fmt: skip
        with pytest.raises(VerificationError):
            parse_expression(bad)


# -- v2 end to end -------------------------------------------------------------------------

FULL_CEL = (
    "default_certification(ValidationArgs{certification:Certification{request_certification:"
    'RequestCertification{certified_request_headers:["host"],certified_query_parameters:["q"]},'
    "response_certification:ResponseCertification{certified_response_headers:"
    'ResponseHeaderList{headers:["content-type"]}}}})'
)
SKIP_CEL = "default_certification(ValidationArgs{no_certification:Empty{}})"


def v2_site(
    request: Request, cel: str, expr_path: list[str], headers: tuple[tuple[str, str], ...],
    body: bytes = BODY,
) -> Response:  # fmt: skip
    """Certify ``body``/``headers`` for ``request`` at ``expr_path``; return the response."""
    response = Response(200, (*headers, ("IC-CertificateExpression", cel)), body)
    certification = parse_expression(cel)
    leaf: hashtree.HashTree = hashtree.Leaf(b"")
    if certification.response is not None:
        kept = certified_headers(response, certification.response)
        first = (
            b"" if certification.request is None else request_hash(request, certification.request)
        )
        leaf = hashtree.build({first: {response_hash(response, kept): b""}})
    below = hashtree.build({sha256(cel.encode()): leaf})
    tree = hashtree.labeled(*expr_path, below)
    cert = certificate(tree.digest())
    return Response(
        200, (*response.headers, ("IC-Certificate", ic_certificate(tree, cert, expr_path))), body
    )


def test_v2_full_certification_passes_only_certified_headers() -> None:
    request = Request(
        "GET", "/docs/page?q=1&z=2", (("Host", "x.localhost"), ("Accept", "*/*")), b""
    )
    headers = (("Content-Type", "text/html"), ("X-Uncertified", "anything"))
    response = v2_site(request, FULL_CEL, ["http_expr", "docs", "page", "<$>"], headers)
    version, passed = verify(request, response)
    assert version == 2
    assert ("content-type", "text/html") in passed
    assert all(k != "x-uncertified" for k, _ in passed)


def test_v2_tampering_is_caught() -> None:
    request = Request("GET", "/docs/page?q=1", (("Host", "x.localhost"),), b"")
    path = ["http_expr", "docs", "page", "<$>"]
    response = v2_site(request, FULL_CEL, path, (("Content-Type", "text/html"),))
    swapped = tuple(("Content-Type", "text/javascript") if k == "Content-Type" else (k, v)
                    for k, v in response.headers)  # fmt: skip
    with pytest.raises(VerificationError, match="hashes"):
        verify(request, Response(200, swapped, BODY))
    with pytest.raises(VerificationError, match="hashes"):
        verify(request, Response(200, response.headers, b"evil"))
    with pytest.raises(VerificationError, match="hashes"):
        verify(Request("GET", "/docs/page?q=2", request.headers, b""), response)
    with pytest.raises(VerificationError, match="exact path"):
        verify(Request("GET", "/docs/other", request.headers, b""), response)
    changed_cel = tuple((k, v.replace('"q"', '"z"')) if k == "IC-CertificateExpression" else (k, v)
                        for k, v in response.headers)  # fmt: skip
    with pytest.raises(VerificationError, match="expression's hash"):
        verify(request, Response(200, changed_cel, BODY))


def test_v2_wildcards_and_skipped_certification() -> None:
    request = get("/assets/app/main.js")
    response = v2_site(request, SKIP_CEL, ["http_expr", "assets", "<*>"], (("X-A", "b"),), b"any")
    version, passed = verify(request, response)
    assert version == 2 and ("X-A", "b") in passed
    # a more specific wildcard in the tree must be the one used
    tree_specific = hashtree.build(
        {"http_expr": {"assets": {"<*>": {sha256(SKIP_CEL.encode()): hashtree.Leaf(b"")},
                                  "app": {"<*>": hashtree.Leaf(b"")}}}}
    )  # fmt: skip
    header = ic_certificate(
        tree_specific, certificate(tree_specific.digest()), ["http_expr", "assets", "<*>"]
    )
    headers = (("IC-CertificateExpression", SKIP_CEL), ("IC-Certificate", header))
    with pytest.raises(VerificationError, match="more specific wildcard"):
        verify(request, Response(200, headers, b"any"))


def test_more_specific_wildcards() -> None:
    def wild(req: list[str], resp: list[str]) -> list[list[str]]:
        got = more_specific_wildcards([p.encode() for p in req], [p.encode() for p in resp])
        return [[p.decode() for p in w] for w in got]

    assert wild(["http_expr", "a", "b", "c"], ["http_expr", "a", "b", "<*>"]) == [
        ["a", "b", "c", "<*>"], ["a", "b", "", "<*>"]
    ]  # fmt: skip
    assert wild(["http_expr", "a"], ["http_expr", "<*>"]) == [["a", "<*>"], ["", "<*>"]]


# -- robustness: whatever a canister (or a replica) sends, only VerificationError ---------


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.text(max_size=200),
        st.builds(
            lambda c, t, v, e: f"certificate=:{c}:, tree=:{t}:, version={v}, expr_path=:{e}:",
            st.sampled_from(["", "AA==", "2dn3oA==", base64.b64encode(certificate(b"x")).decode()]),
            st.sampled_from(["", "AA==", "2dn3gwFAQA==", "2dn3gQA="]),
            st.sampled_from(["1", "2", "3", "-1", "x", ""]),
            st.sampled_from(["", "2dn3gA==", "2dn3gWlodHRwX2V4cHI=", "/w=="]),
        ),
    ),
    expression=st.text(max_size=120),
    url=st.text(max_size=40),
)
def test_garbage_raises_only_verification_error(value: str, expression: str, url: str) -> None:
    headers = (("IC-Certificate", value), ("IC-CertificateExpression", expression))
    with contextlib.suppress(VerificationError):
        verify_response(
            Request("GET", url, (), b""), Response(200, headers, BODY), CID, ROOT_KEY, NOW
        )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_cel_parser_raises_only_verification_error(text: str) -> None:
    with contextlib.suppress(VerificationError):
        parse_expression(text)


def test_version_floor_from_metadata() -> None:
    assert version_floor(None) == 1
    assert version_floor(b"1,2") == 2
    assert version_floor(b" 2 , 1 ") == 2
    assert version_floor(b"1") == 1
    assert version_floor(b"1,3,x") == 1
    tree = hashtree.build({"http_assets": {"/": sha256(BODY)}})
    response = v1_response(tree)
    ok = verify_response(get("/"), response, CID, ROOT_KEY, NOW, floor=lambda: 1)
    assert ok.version == 1
    with pytest.raises(VerificationError, match="downgrade"):
        verify_response(get("/"), response, CID, ROOT_KEY, NOW, floor=lambda: 2)


def test_certificates_are_checked_once_then_only_their_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks = []
    original = Certificate.verify

    def counting(self: Certificate, *args: object, **kwargs: object) -> None:
        checks.append(1)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Certificate, "verify", counting)
    tree = hashtree.build({"http_assets": {"/": sha256(BODY)}})
    response = v1_response(tree)
    cache = VerifiedCertificates(max_age_ns=600 * 10**9)
    for later in (0, 10, 30):
        now = NOW + later * 10**9
        assert verify_response(get("/"), response, CID, ROOT_KEY, now, cache=cache).version == 1
    assert len(checks) == 1
    with pytest.raises(VerificationError, match="too far"):  # cached, but /time is stale
        verify_response(get("/"), response, CID, ROOT_KEY, NOW + 301 * 10**9, cache=cache)
    with pytest.raises(VerificationError, match="body's hash"):  # the cache spares no check
        verify_response(get("/"), v1_response(tree, b"evil"), CID, ROOT_KEY, NOW, cache=cache)
    other_sk, _ = bls.keygen(b"another key, not the IC root key")
    forged = ic_certificate(tree, certificate(tree.digest(), sk=other_sk))
    with pytest.raises(VerificationError, match="signature"):
        verify_response(get("/"), Response(200, (("IC-Certificate", forged),), BODY), CID,
                        ROOT_KEY, NOW, cache=cache)  # fmt: skip

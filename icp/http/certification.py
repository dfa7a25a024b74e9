"""Response verification: check that a canister's HTTP response went through consensus.

Theory of operation.  A query answer comes from one replica, so a boundary node (HTTP
gateway) must not trust it.  A canister that certifies its HTTP responses sets its
``certified_data`` to the root hash of a hash tree and answers with an
``IC-Certificate`` header carrying the system's certificate of that data
(``ic0.data_certificate``) and a witness of the tree.  ``verify_response`` checks, in
order:

1. the header parses (``certificate=:<b64>:, tree=:<b64>:[, version=2,
   expr_path=:<b64>:]``);
2. the certificate verifies against the IC root key, through the NNS delegation whose
   canister ranges must contain the canister, and its ``/time`` is within 5 minutes
   of the gateway's clock;
3. the certificate's ``/canister/<id>/certified_data`` equals the tree's root hash;
4. version 1: the leaf at ``["http_assets", <path>]`` (else
   ``["http_assets", "/index.html"]``) is the SHA-256 of the body (decoded per
   ``Content-Encoding`` gzip/deflate, else raw);
   version 2: ``expr_path`` is the most specific path in the tree for the request URL,
   the SHA-256 of the ``IC-CertificateExpression`` header (a CEL expression) is a
   label below it, and below that the request hash (or ``""`` when the request is
   not certified) and the response hash (status, chosen headers, body) lead to an
   empty leaf — unless the expression says ``no_certification``.

Any failure raises ``VerificationError``; the gateway then answers 503 and never
passes the unverified content on.  What reaches the browser is what was certified:
v2 passes only the certified headers (all of them when the canister certifiably
skipped certification); v1 (which certifies only the body) refuses redirects and
drops ``Cache-Control``, as ``ic-http-gateway`` does.

Spec: HTTP Gateway Protocol specification (dfinity/interface-spec
``spec/http-gateway-protocol-spec.md``): "Response Verification", "The Certificate
Header", "Expression Path", "Certificate Validation", "The Certificate Expression
Header", "Request Hash Calculation", "Response Hash Calculation", "Legacy Response
Verification"; details as in dfinity/response-verification
(``ic-response-verification``: 300 s certificate time offset, percent-decoded URL
path, directory paths end in an empty segment, ``more_specific_wildcards_for``).
With ``version_floor`` (the gateway passes one), a v1 answer to a request that asked
for v2 is a downgrade: the canister's public ``supported_certificate_versions``
metadata is read (certified) and the response must be at least the highest version
both sides support ("Response Verification Version Assertion").
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
import zlib
from collections.abc import Callable, Sequence
from typing import Final

import attrs

from icp.crypto import hashtree
from icp.crypto.certificate import Certificate
from icp.crypto.errors import CertificateError, HashTreeError
from icp.crypto.hashing import EncodingError, cbor_decode, leb128_unsigned, sha256
from icp.principal import Principal

MAX_VERSION: Final = 2
"""Highest response verification version this gateway supports (and requests)."""
MAX_CERT_TIME_OFFSET_NS: Final = 300 * 1_000_000_000
"""How far a certificate's ``/time`` may be from the gateway's clock (5 minutes)."""
MAX_DECODED_BODY: Final = 16 * 1024 * 1024
"""Largest decompressed body hashed for v1 (a bound against decompression bombs)."""
CERTIFICATE_HEADER: Final = "ic-certificate"
EXPRESSION_HEADER: Final = "ic-certificateexpression"
STATUS_PSEUDO_HEADER: Final = ":ic-cert-status"
METHOD_PSEUDO_HEADER: Final = ":ic-cert-method"
QUERY_PSEUDO_HEADER: Final = ":ic-cert-query"
PATH_PREFIX: Final = b"http_expr"
EXACT: Final = b"<$>"
WILDCARD: Final = b"<*>"
DIRECTORY: Final = b""

Headers = Sequence[tuple[str, str]]


class VerificationError(Exception):
    """A response that fails verification; ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@attrs.frozen
class Request:
    """The request as the gateway sent it to the canister's ``http_request``."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@attrs.frozen
class Response:
    """The canister's response (body fully assembled from streamed chunks)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@attrs.frozen
class Verified:
    """What may reach the client: the verification version and the headers to pass."""

    version: int
    headers: tuple[tuple[str, str], ...]


@attrs.frozen
class CertificateHeader:
    """The fields of an ``IC-Certificate`` header (still encoded)."""

    certificate: bytes
    tree: bytes
    version: int
    expr_path: bytes | None


@attrs.frozen
class ResponseCertification:
    """Which response headers a v2 certification covers (a list or an exclusion list)."""

    certified: bool
    """True: ``names`` are the certified headers; False: ``names`` are excluded."""
    names: tuple[str, ...]


@attrs.frozen
class RequestCertification:
    """Which request headers and query parameters a v2 certification covers."""

    headers: tuple[str, ...]
    query_parameters: tuple[str, ...]


@attrs.frozen
class Certification:
    """A parsed ``IC-CertificateExpression``; ``response is None`` means no_certification."""

    request: RequestCertification | None
    response: ResponseCertification | None


# ------------------------------------------------------------------------- the header


_FIELD: Final = re.compile(r"^([^=]+)=:?([^:]*):?$")


def parse_certificate_header(value: str) -> CertificateHeader:
    """Parse ``IC-Certificate``; raise ``VerificationError`` if it is malformed.

    Fields are ``name=:base64:`` (``version=2`` without colons), comma-separated;
    a repeated field keeps its first value.  Spec: "The Certificate Header".
    """
    fields: dict[str, str] = {}
    for part in value.split(","):
        match = _FIELD.match(part.strip())
        if match is None or not match.group(2):
            continue
        fields.setdefault(match.group(1).strip(), match.group(2))
    if "certificate" not in fields:
        raise VerificationError("IC-Certificate has no certificate field")
    if "tree" not in fields:
        raise VerificationError("IC-Certificate has no tree field")
    version = 1
    if "version" in fields:
        try:
            version = int(fields["version"])
        except ValueError:
            raise VerificationError(f"IC-Certificate version {fields['version']!r}") from None
    expr_path = _b64(fields["expr_path"], "expr_path") if "expr_path" in fields else None
    return CertificateHeader(
        _b64(fields["certificate"], "certificate"), _b64(fields["tree"], "tree"), version, expr_path
    )


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"IC-Certificate {what} is not base64") from None


def header(headers: Headers, name: str) -> str | None:
    """Return the first value of header ``name`` (case-insensitive), or None."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def split_url(url: str) -> urllib.parse.SplitResult:
    """Split a request URL; raise ``VerificationError`` if it cannot be parsed."""
    try:
        return urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise VerificationError(f"malformed URL {url!r}: {exc}") from None


def request_path(url: str) -> str:
    """Return the percent-decoded path of a request URL (no query, no fragment)."""
    path = split_url(url).path
    try:
        return urllib.parse.unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise VerificationError(f"URL path {path!r} is not UTF-8 once decoded") from None


# ------------------------------------------------------------------------- the checks


class VerifiedCertificates:
    """Certificates whose signatures (and delegation) verified recently, by content.

    Every response a canister serves at one certified height carries the same
    certificate; its BLS checks (one pairing check, two with a delegation) are the
    bulk of verifying a response, so a gateway checks each certificate once and then
    only its ``/time`` against the clock.  An entry is trusted for ``max_age_ns`` after
    its full check (so the delegation's age is rechecked that often); at most
    ``capacity`` entries are kept.
    """

    def __init__(self, capacity: int = 256, max_age_ns: int = 60 * 1_000_000_000) -> None:
        self.capacity = capacity
        self.max_age_ns = max_age_ns
        self._entries: dict[bytes, tuple[int, Certificate]] = {}

    def get(self, key: bytes, now: int) -> Certificate | None:
        """Return a certificate fully checked less than ``max_age_ns`` before ``now``."""
        entry = self._entries.get(key)
        if entry is None or not 0 <= now - entry[0] < self.max_age_ns:
            return None
        return entry[1]

    def put(self, key: bytes, now: int, certificate: Certificate) -> None:
        """Remember a certificate that passed every check at ``now``."""
        if len(self._entries) >= self.capacity:
            self._entries.clear()
        self._entries[key] = (now, certificate)


def verify_certificate(
    header_fields: CertificateHeader,
    canister_id: Principal,
    root_key: bytes,
    now: int,
    cache: VerifiedCertificates | None = None,
) -> hashtree.HashTree:
    """Check the certificate and that it certifies the tree; return the tree.

    Spec: "Certificate Validation" (signature by the root key or a delegation valid
    for the canister; recent ``/time``; ``certified_data`` equals the tree's root).
    """
    key = sha256(header_fields.certificate + b"\0" + root_key + b"\0" + canister_id.raw)
    certificate = cache.get(key, now) if cache is not None else None
    try:
        if certificate is None:
            certificate = Certificate.from_cbor(header_fields.certificate)
            certificate.verify(
                root_key, canister_id, now=now, max_time_skew_ns=MAX_CERT_TIME_OFFSET_NS
            )
            if cache is not None:
                cache.put(key, now, certificate)
        elif abs(certificate.time() - now) > MAX_CERT_TIME_OFFSET_NS:
            raise CertificateError("certificate /time is too far from the local clock")
    except CertificateError as exc:
        raise VerificationError(f"certificate: {exc}") from None
    try:
        tree = hashtree.from_cbor(header_fields.tree)
        hashtree.check_well_formed(tree)
    except HashTreeError as exc:
        raise VerificationError(f"tree: {exc}") from None
    data = certificate.lookup(["canister", canister_id.raw, "certified_data"]).value
    if data is None:
        raise VerificationError(f"the certificate does not reveal canister {canister_id}'s data")
    if data != tree.digest():
        raise VerificationError("the tree's root hash is not the canister's certified data")
    return tree


def decode_body(body: bytes, encoding: str | None) -> bytes:
    """Undo a ``gzip``/``deflate`` ``Content-Encoding`` (others: the body as is)."""
    if encoding not in ("gzip", "deflate"):
        return body
    try:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else 0)
        out = decoder.decompress(body, MAX_DECODED_BODY + 1)
    except zlib.error as exc:
        if encoding == "deflate":  # raw deflate streams exist too
            try:
                raw = zlib.decompressobj(-zlib.MAX_WBITS)
                out = raw.decompress(body, MAX_DECODED_BODY + 1)
            except zlib.error:
                raise VerificationError(f"body is not {encoding}: {exc}") from None
        else:
            raise VerificationError(f"body is not {encoding}: {exc}") from None
    if len(out) > MAX_DECODED_BODY:
        raise VerificationError(f"decoded body larger than {MAX_DECODED_BODY} bytes")
    return out


def verify_v1(tree: hashtree.HashTree, request: Request, response: Response) -> Verified:
    """Check the body against ``["http_assets", <path>]`` (or ``/index.html``).

    Spec: "Legacy Response Verification".
    """
    path = request_path(request.url)
    leaf = hashtree.lookup_path(tree, ["http_assets", path]).value
    if leaf is None:
        leaf = hashtree.lookup_path(tree, ["http_assets", "/index.html"]).value
    if leaf is None:
        raise VerificationError(f"the tree certifies neither {path!r} nor '/index.html'")
    encoding = header(response.headers, "content-encoding")
    valid = sha256(decode_body(response.body, encoding)) == leaf
    if not valid and encoding is not None:
        valid = sha256(response.body) == leaf
    if not valid:
        raise VerificationError(f"the body's hash is not the one certified for {path!r}")
    if 300 <= response.status < 400:
        raise VerificationError("response verification v1 does not certify redirects")
    kept = tuple((k, v) for k, v in response.headers if k.lower() != "cache-control")
    return Verified(1, kept)


# ------------------------------------------------------------------------- v2 paths


def _path_parts(path: str) -> list[bytes]:
    parts = [PATH_PREFIX] + [p.encode() for p in path.split("/") if p]
    if path.endswith("/"):
        parts.append(DIRECTORY)
    return parts


def _might_exist(tree: hashtree.HashTree, path: Sequence[bytes]) -> bool:
    return hashtree.lookup_subtree(tree, path).status is not hashtree.LookupStatus.ABSENT


def _exists(tree: hashtree.HashTree, path: Sequence[bytes]) -> bool:
    return hashtree.lookup_subtree(tree, path).status is hashtree.LookupStatus.FOUND


def _wildcard_covers(wildcard: Sequence[bytes], request: Sequence[bytes]) -> bool:
    """Return whether a wildcard path (no terminator) is a prefix of a request path."""
    if list(request[: len(wildcard)]) == list(wildcard):
        return True
    if wildcard and wildcard[-1] == DIRECTORY:
        prefix = wildcard[:-1]
        return list(request[: len(prefix)]) == list(prefix)
    return False


def _strip(path: Sequence[bytes]) -> list[bytes]:
    out = list(path)
    if out and out[0] == PATH_PREFIX:
        out.pop(0)
    if out and out[-1] in (EXACT, WILDCARD):
        out.pop()
    if len(out) > 1 and out[0] == DIRECTORY:
        out.pop(0)
    return out


def more_specific_wildcards(
    requested: Sequence[bytes], responding: Sequence[bytes]
) -> list[list[bytes]]:
    """Return the wildcard paths more specific than ``responding`` for ``requested``.

    For a request ``a/b/c`` answered by the wildcard ``a/b``: ``a/b/c/<*>`` and
    ``a/b/""/<*>`` (``""`` marks a directory).  Spec: "Expression Path" (the path
    must be the most specific one in the tree).
    """
    potential = _strip(requested)
    answering = _strip(responding)
    if not _wildcard_covers(answering, potential):
        answering = []
    out: list[list[bytes]] = []
    for _ in range(2 * len(potential) + 2):
        last = potential[-1] if potential else None
        if len(potential) <= len(answering) and last == (answering[-1] if answering else None):
            break
        out.append([*potential, WILDCARD])
        if potential and potential[-1] == DIRECTORY:
            potential.pop()
        else:
            if potential:
                potential.pop()
            potential.append(DIRECTORY)
    return out


def validate_expr_path(expr_path: Sequence[bytes], path: str, tree: hashtree.HashTree) -> None:
    """Check that ``expr_path`` is the most specific path in the tree for ``path``.

    Spec: "Expression Path".
    """
    if not expr_path or expr_path[0] != PATH_PREFIX:
        raise VerificationError("expr_path does not start with 'http_expr'")
    if expr_path[-1] not in (EXACT, WILDCARD):
        raise VerificationError("expr_path does not end with '<$>' or '<*>'")
    given = list(expr_path)
    request = _path_parts(path)
    if given == [*request, EXACT]:
        if not _exists(tree, given):
            raise VerificationError("the exact expr_path is not in the tree")
        return
    if given[-1] == EXACT:
        raise VerificationError(f"expr_path is an exact path, but not {path!r}")
    if _might_exist(tree, [*request, EXACT]):
        raise VerificationError(f"the tree may hold an exact path for {path!r}")
    if not _wildcard_covers(given[:-1], request):
        raise VerificationError(f"the wildcard expr_path does not cover {path!r}")
    for wildcard in more_specific_wildcards(request, given):
        if _might_exist(tree, [PATH_PREFIX, *wildcard]):
            raise VerificationError(f"the tree may hold a more specific wildcard for {path!r}")
    if not _exists(tree, given):
        raise VerificationError("the wildcard expr_path is not in the tree")


# ------------------------------------------------------------------------- CEL


_TOKEN: Final = re.compile(r'\s*(?:([A-Za-z_][A-Za-z0-9_]*)|"([^"\x00\n]*)"|([(){}\[\]:,]))')

CelValue = str | list[str] | tuple[str, dict[str, "CelValue"]]


class _Cel:
    """A recursive-descent parser for the ``default_certification`` subset of CEL."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                raise VerificationError(f"CEL expression: unexpected text at {pos}")
            ident, string, punct = match.groups()
            if ident is not None:
                self.tokens.append(("id", ident))
            elif string is not None:
                self.tokens.append(("str", string))
            else:
                self.tokens.append(("p", punct))
            pos = match.end()
        self.at = 0

    def _next(self, kind: str, value: str | None = None) -> str:
        if self.at >= len(self.tokens):
            raise VerificationError("CEL expression ends early")
        got_kind, got = self.tokens[self.at]
        if got_kind != kind or (value is not None and got != value):
            raise VerificationError(f"CEL expression: expected {value or kind}, got {got!r}")
        self.at += 1
        return got

    def _peek(self, value: str) -> bool:
        return self.at < len(self.tokens) and self.tokens[self.at] == ("p", value)

    def value(self) -> CelValue:
        if self._peek("["):
            self._next("p", "[")
            items: list[str] = []
            while not self._peek("]"):
                items.append(self._next("str"))
                if self._peek(","):
                    self._next("p", ",")
            self._next("p", "]")
            return items
        if self.at < len(self.tokens) and self.tokens[self.at][0] == "str":
            return self._next("str")
        name = self._next("id")
        self._next("p", "{")
        fields: dict[str, CelValue] = {}
        while not self._peek("}"):
            key = self._next("id")
            self._next("p", ":")
            if key in fields:
                raise VerificationError(f"CEL expression: repeated field {key!r}")
            fields[key] = self.value()
            if self._peek(","):
                self._next("p", ",")
        self._next("p", "}")
        return (name, fields)

    def expression(self) -> CelValue:
        self._next("id", "default_certification")
        self._next("p", "(")
        out = self.value()
        self._next("p", ")")
        if self.at != len(self.tokens):
            raise VerificationError("CEL expression: text after the call")
        return out


def _object(value: CelValue | None, name: str) -> dict[str, CelValue]:
    if not isinstance(value, tuple) or value[0] != name:
        raise VerificationError(f"CEL expression: expected a {name}")
    return value[1]


def _strings(value: CelValue | None, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise VerificationError(f"CEL expression: {what} must be a list of strings")
    return tuple(value)


def parse_expression(text: str) -> Certification:
    """Parse an ``IC-CertificateExpression`` value.

    Spec: "The Certificate Expression Header" (EBNF; ``ValidationArgs``).
    """
    args = _object(_Cel(text).expression(), "ValidationArgs")
    if set(args) == {"no_certification"}:
        _object(args["no_certification"], "Empty")
        return Certification(None, None)
    if set(args) != {"certification"}:
        raise VerificationError("CEL expression: ValidationArgs needs one certification field")
    cert = _object(args["certification"], "Certification")
    request: RequestCertification | None
    if "no_request_certification" in cert and "request_certification" not in cert:
        _object(cert["no_request_certification"], "Empty")
        request = None
    elif "request_certification" in cert and "no_request_certification" not in cert:
        fields = _object(cert["request_certification"], "RequestCertification")
        request = RequestCertification(
            _strings(fields.get("certified_request_headers", []), "certified_request_headers"),
            _strings(fields.get("certified_query_parameters", []), "certified_query_parameters"),
        )
    else:
        raise VerificationError("CEL expression: certify the request or say it is not")
    fields = _object(cert.get("response_certification"), "ResponseCertification")
    if len(fields) != 1:
        raise VerificationError("CEL expression: one kind of response header list")
    ((kind, listed),) = fields.items()
    if kind not in ("certified_response_headers", "response_header_exclusions"):
        raise VerificationError(f"CEL expression: unknown response certification {kind!r}")
    names = _strings(_object(listed, "ResponseHeaderList").get("headers"), "headers")
    if set(cert) - {"request_certification", "no_request_certification", "response_certification"}:
        raise VerificationError("CEL expression: unknown Certification field")
    return Certification(
        request, ResponseCertification(kind == "certified_response_headers", names)
    )


# ------------------------------------------------------------------------- v2 hashes


def _ri_value(value: str | int) -> bytes:
    return sha256(value.encode() if isinstance(value, str) else leb128_unsigned(value))


def ri_hash(pairs: Sequence[tuple[str, str | int]]) -> bytes:
    """Return the representation-independent hash of key/value pairs (repeats allowed).

    Spec: interface spec §"Representation-independent hashing of structured data".
    """
    return sha256(b"".join(sorted(sha256(k.encode()) + _ri_value(v) for k, v in pairs)))


def request_hash(request: Request, certification: RequestCertification) -> bytes:
    """Return the v2 request hash.  Spec: "Request Hash Calculation"."""
    wanted = {h.lower() for h in certification.headers}
    pairs: list[tuple[str, str | int]] = [
        (k.lower(), v) for k, v in request.headers if k.lower() in wanted
    ]
    pairs.append((METHOD_PSEUDO_HEADER, request.method))
    query = split_url(request.url).query
    params = {p.lower() for p in certification.query_parameters}
    kept = [f for f in query.split("&") if query and f.split("=", 1)[0].lower() in params]
    if kept:
        pairs.append((QUERY_PSEUDO_HEADER, "&".join(kept)))
    return sha256(ri_hash(pairs) + sha256(request.body))


def certified_headers(
    response: Response, certification: ResponseCertification
) -> tuple[tuple[str, str], ...]:
    """Return the response headers a v2 certification covers (names lower-cased).

    ``IC-Certificate`` never, ``IC-CertificateExpression`` always.
    Spec: "Response Hash Calculation".
    """
    listed = {h.lower() for h in certification.names}
    out = []
    for name, value in response.headers:
        low = name.lower()
        if low == CERTIFICATE_HEADER:
            continue
        if low == EXPRESSION_HEADER or (low in listed) == certification.certified:
            out.append((low, value))
    return tuple(out)


def response_hash(response: Response, headers: Headers) -> bytes:
    """Return the v2 response hash of certified headers, status and body.

    Spec: "Response Hash Calculation" (status as the ``:ic-cert-status`` pseudo-header).
    """
    pairs: list[tuple[str, str | int]] = [(k, v) for k, v in headers]
    pairs.append((STATUS_PSEUDO_HEADER, response.status))
    return sha256(ri_hash(pairs) + sha256(response.body))


def verify_v2(
    tree: hashtree.HashTree, expr_path_cbor: bytes | None, request: Request, response: Response
) -> Verified:
    """Check a v2 certification (expression path, CEL hash, request/response hashes).

    Spec: "Response Verification Outline" steps 5-8.
    """
    if expr_path_cbor is None:
        raise VerificationError("IC-Certificate version 2 without expr_path")
    try:
        decoded = cbor_decode(expr_path_cbor)
    except (EncodingError, ValueError):
        raise VerificationError("expr_path is not CBOR") from None
    if not isinstance(decoded, list | tuple) or not all(isinstance(s, str) for s in decoded):
        raise VerificationError("expr_path is not an array of text")
    expr_path = [s.encode() for s in decoded]
    validate_expr_path(expr_path, request_path(request.url), tree)
    expression = header(response.headers, EXPRESSION_HEADER)
    if expression is None:
        raise VerificationError("version 2 response without IC-CertificateExpression")
    certification = parse_expression(expression)
    expr_tree = hashtree.lookup_subtree(tree, [*expr_path, sha256(expression.encode())])
    if expr_tree.subtree is None:
        raise VerificationError("the expression's hash is not certified at expr_path")
    if certification.response is None:  # the canister certifiably skipped certification
        return Verified(2, tuple(response.headers))
    headers = certified_headers(response, certification.response)
    first = b"" if certification.request is None else request_hash(request, certification.request)
    found = hashtree.lookup_path(expr_tree.subtree, [first, response_hash(response, headers)])
    if found.value != b"":
        raise VerificationError("the request/response hashes are not certified")
    return Verified(2, headers)


def version_floor(supported: bytes | None) -> int:
    """Return the lowest version to accept given a ``supported_certificate_versions`` value.

    The value is a comma-separated list (``"1,2"``); absent metadata allows any version.
    Spec: "Response Verification Version Assertion" (no response below the highest
    version both the gateway and the canister support).
    """
    if supported is None:
        return 1
    versions = set()
    for part in supported.decode("utf-8", "replace").split(","):
        part = part.strip()
        if part.isdigit():
            versions.add(int(part))
    common = [v for v in versions if 1 <= v <= MAX_VERSION]
    return max(common, default=1)


def verify_response(
    request: Request,
    response: Response,
    canister_id: Principal,
    root_key: bytes,
    now: int,
    *,
    min_version: int = 1,
    floor: Callable[[], int] | None = None,
    cache: VerifiedCertificates | None = None,
) -> Verified:
    """Verify a canister's response to ``request``; raise ``VerificationError`` if not.

    ``floor`` is called only for a response below ``MAX_VERSION`` (a downgrade) and
    returns the lowest version the canister's certified metadata allows; ``cache``
    spares re-checking the signatures of a certificate seen recently.
    Spec: HTTP gateway spec "Response Verification Outline", "Response Verification
    Version Assertion".
    """
    value = header(response.headers, CERTIFICATE_HEADER)
    if value is None:
        raise VerificationError("the response has no IC-Certificate header (not certified)")
    fields = parse_certificate_header(value)
    if fields.version < min_version:
        raise VerificationError(f"version {fields.version} is below the minimum {min_version}")
    if fields.version not in (1, 2):
        raise VerificationError(f"unsupported response verification version {fields.version}")
    tree = verify_certificate(fields, canister_id, root_key, now, cache)
    if fields.version < MAX_VERSION and floor is not None:
        lowest = floor()
        if fields.version < lowest:
            raise VerificationError(
                f"version {fields.version} response from a canister that supports version "
                f"{lowest} (a downgrade)"
            )
    if fields.version == 1:
        return verify_v1(tree, request, response)
    return verify_v2(tree, fields.expr_path, request, response)


__all__ = [
    "Certification",
    "Request",
    "Response",
    "VerificationError",
    "Verified",
    "VerifiedCertificates",
    "parse_certificate_header",
    "parse_expression",
    "request_hash",
    "response_hash",
    "verify_response",
    "version_floor",
]

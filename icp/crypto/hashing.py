"""Hashing with IC domain separators, request ids, and the CBOR envelope.

Every hash the protocol takes is SHA-256 over ``len(domain) || domain || data``
(the IC's ``DomainSeparator`` convention), so that bytes signed or hashed for one
purpose can never be replayed as another.  The *representation-independent hash*
(``hash_of_map``) gives requests an id that does not depend on how their CBOR was
laid out.

Spec: interface spec §"Request ids" (representation-independent hashing) and
§"Envelope"; ``shared/spec/interface.md`` §1.2, §1.5.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Final

import cbor2

from icp.leb128 import encode_signed, encode_unsigned

SELF_DESCRIBE_TAG: Final = 55799
"""CBOR tag 55799 (``d9 d9 f7``) that the IC puts around envelopes and certificates."""

IC_REQUEST_DOMAIN: Final = b"ic-request"
IC_REQUEST_AUTH_DELEGATION_DOMAIN: Final = b"ic-request-auth-delegation"
IC_RESPONSE_DOMAIN: Final = b"ic-response"
IC_STATE_ROOT_DOMAIN: Final = b"ic-state-root"


class EncodingError(ValueError):
    """Raised for bytes or values that are not valid IC CBOR / hashable content."""


def sha256(data: bytes) -> bytes:
    """Return SHA-256 of ``data``."""
    return hashlib.sha256(data).digest()


def domain_sep(domain: bytes) -> bytes:
    """Return ``len(domain) || domain``: the IC's domain-separator prefix."""
    if len(domain) > 255:
        raise ValueError("a domain separator is at most 255 bytes")
    return bytes([len(domain)]) + domain


def hash_with_domain(domain: bytes, *parts: bytes) -> bytes:
    """Return ``SHA-256(len(domain) || domain || parts...)``."""
    h = hashlib.sha256(domain_sep(domain))
    for part in parts:
        h.update(part)
    return h.digest()


leb128_unsigned = encode_unsigned
leb128_signed = encode_signed


def hash_value(value: object) -> bytes:
    """Return the representation-independent hash of one value.

    blob → H(blob); text → H(utf-8); nat → H(uleb128); negative int → H(sleb128);
    array → H(concat of element hashes); map → ``hash_of_map``.
    Spec: interface spec §"Representation-independent hashing of structured data".
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return sha256(bytes(value))
    if isinstance(value, str):
        return sha256(value.encode("utf-8"))
    if isinstance(value, bool):
        raise EncodingError("booleans have no representation-independent hash")
    if isinstance(value, int):
        return sha256(leb128_unsigned(value) if value >= 0 else leb128_signed(value))
    if isinstance(value, Mapping):
        return hash_of_map(value)
    if isinstance(value, Sequence):
        return sha256(b"".join(hash_value(v) for v in value))
    if hasattr(value, "raw") and isinstance(value.raw, bytes):  # Principal
        return sha256(value.raw)
    raise EncodingError(f"cannot hash a value of type {type(value).__name__}")


def hash_of_map(content: Mapping[str, object]) -> bytes:
    """Return the representation-independent hash of a map with text keys.

    Each field contributes ``H(key) || H(value)``; the 64-byte strings are sorted
    and concatenated, and the result hashed.  Absent (``None``) fields are skipped.
    """
    pairs = []
    for key, value in content.items():
        if not isinstance(key, str):
            raise EncodingError(f"map keys must be text, got {type(key).__name__}")
        if value is None:
            continue
        pairs.append(sha256(key.encode("utf-8")) + hash_value(value))
    pairs.sort()
    return sha256(b"".join(pairs))


def request_id(content: Mapping[str, object]) -> bytes:
    """Return the 32-byte request id of a call/query/read_state ``content`` map."""
    return hash_of_map(content)


def request_signing_bytes(rid: bytes) -> bytes:
    """Return ``"\\x0aic-request" || request_id``: what a sender signs."""
    return domain_sep(IC_REQUEST_DOMAIN) + rid


def cbor_encode(value: object, *, self_describe: bool = True) -> bytes:
    """Encode ``value`` as canonical CBOR, wrapped in tag 55799 unless told otherwise."""
    try:
        body = cbor2.dumps(value, canonical=True)
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise EncodingError(f"cannot encode as CBOR: {exc}") from None
    return b"\xd9\xd9\xf7" + body if self_describe else body


MAX_CBOR_BYTES: Final = 5 * 1024 * 1024 + 512 * 1024
"""Upper bound for an HTTP body we decode (mainnet ingress limit 2 MiB + margin for queries)."""


def cbor_decode(data: bytes, *, max_bytes: int = MAX_CBOR_BYTES) -> object:
    """Decode CBOR, stripping an outer tag 55799; raise ``EncodingError`` on bad input."""
    if len(data) > max_bytes:
        raise EncodingError(f"CBOR payload of {len(data)} bytes exceeds {max_bytes}")
    try:
        value = cbor2.loads(data)
    except Exception as exc:  # cbor2 raises a variety of errors on hostile input
        raise EncodingError(f"malformed CBOR: {exc}") from None
    while isinstance(value, cbor2.CBORTag) and value.tag == SELF_DESCRIBE_TAG:
        value = value.value
    return value

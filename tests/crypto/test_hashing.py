"""Domain-separated hashing, LEB128, request ids (spec vectors and a real agent), CBOR envelopes."""

from __future__ import annotations

import hashlib

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from icp.crypto.hashing import (
    EncodingError,
    cbor_decode,
    cbor_encode,
    hash_of_map,
    hash_with_domain,
    leb128_signed,
    leb128_unsigned,
    request_id,
    request_signing_bytes,
)

SPEC_CALL = {
    "request_type": "call",
    "sender": b"\x04",
    "ingress_expiry": 1685570400000000000,
    "canister_id": bytes.fromhex("00000000000004D2"),
    "method_name": "hello",
    "arg": b"DIDL\x00\xfd*",
}


def test_request_id_matches_interface_spec_example() -> None:
    assert (
        request_id(SPEC_CALL).hex()
        == "1d1091364d6bb8a6c16b203ee75467d59ead468f523eb058880ae8ec80e2b101"
    )


def test_leb128_spec_examples() -> None:
    assert leb128_unsigned(0) == b"\x00"
    assert leb128_unsigned(624485).hex() == "e58e26"
    assert leb128_signed(-123456).hex() == "c0bb78"
    assert leb128_signed(63) == b"\x3f"
    assert leb128_signed(64) == b"\xc0\x00"
    assert leb128_signed(-64) == b"\x40"


def test_nested_map_hash_is_hash_of_inner_map() -> None:
    inner = {"arg": b"DIDL\x00\x00"}
    expected = hashlib.sha256(hashlib.sha256(b"reply").digest() + hash_of_map(inner)).digest()
    assert hash_of_map({"reply": inner}) == expected


def test_read_state_paths_hash_as_nested_arrays() -> None:
    paths = [[b"time"], [b"request_status", b"\x01" * 32]]
    h = hashlib.sha256
    path_hashes = [h(b"".join(h(label).digest() for label in p)).digest() for p in paths]
    content = {"request_type": "read_state", "paths": paths}
    expected_pairs = sorted(
        [
            h(b"request_type").digest() + h(b"read_state").digest(),
            h(b"paths").digest() + h(b"".join(path_hashes)).digest(),
        ]
    )
    assert request_id(content) == h(b"".join(expected_pairs)).digest()


def test_signing_bytes_have_the_ic_request_domain() -> None:
    rid = request_id(SPEC_CALL)
    assert request_signing_bytes(rid) == b"\x0aic-request" + rid
    assert (
        hash_with_domain(b"ic-request", b"x") == hashlib.sha256(b"\x0aic-request" + b"x").digest()
    )


def test_booleans_and_floats_are_not_hashable_content() -> None:
    with pytest.raises(EncodingError):
        request_id({"x": True})
    with pytest.raises(EncodingError):
        request_id({"x": 1.5})


_content = st.fixed_dictionaries(
    {
        "request_type": st.sampled_from(["call", "query"]),
        "sender": st.binary(max_size=29),
        "ingress_expiry": st.integers(min_value=0, max_value=2**64 - 1),
        "canister_id": st.binary(max_size=29),
        "method_name": st.text(max_size=20),
        "arg": st.binary(max_size=64),
    },
    optional={"nonce": st.binary(max_size=32)},
)


@given(_content)
def test_request_id_agrees_with_icp_py_core(content: dict[str, object]) -> None:
    from icp_agent.agent import to_request_id

    assert request_id(content) == to_request_id(dict(content))


def test_cbor_envelope_has_self_describe_tag_and_roundtrips() -> None:
    envelope = {"content": SPEC_CALL, "sender_sig": b"\x00" * 64}
    data = cbor_encode(envelope)
    assert data[:3] == b"\xd9\xd9\xf7"
    assert cbor_decode(data) == envelope
    assert cbor2.loads(data[3:]) == envelope  # the body after the tag is plain CBOR


@pytest.mark.parametrize(
    "bad", [b"", b"\xff", b"\xd9\xd9\xf7", b"\x5b" + b"\xff" * 8, b"\x9b" + b"\xff" * 8]
)
def test_malformed_cbor_is_a_typed_error(bad: bytes) -> None:
    with pytest.raises(EncodingError):
        cbor_decode(bad)


def test_oversized_cbor_is_refused_before_parsing() -> None:
    with pytest.raises(EncodingError, match="exceeds"):
        cbor_decode(b"\x40" * 100, max_bytes=10)

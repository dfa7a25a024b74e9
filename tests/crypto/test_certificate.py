"""Tests for icp.crypto.certificate against real IC mainnet certificates and our own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from icp import Principal
from icp.crypto import bls, hashtree, threshold
from icp.crypto.certificate import (
    Certificate,
    Delegation,
    certification_message,
    delegated_canister_ranges,
)
from icp.crypto.errors import CertificateError
from icp.crypto.hashing import cbor_encode

VECTORS = json.loads((Path(__file__).parent / "vectors" / "agent_js_certificates.json").read_text())
ROOT_KEY = bytes.fromhex(VECTORS["ic_root_key_der"])
CERTS = {name: bytes.fromhex(c["hex"]) for name, c in VECTORS["certificates"].items()}
MINUTE = 60 * 10**9


def test_root_key_matches_spec_digest() -> None:
    assert ROOT_KEY.hex().startswith(bls.DER_PREFIX.hex()) and len(ROOT_KEY) == 133


@pytest.mark.parametrize(
    ("name", "canister"),
    [
        ("mainnet_application", "erxue-5aaaa-aaaab-qaagq-cai"),
        ("mainnet_system", "ryjl3-tyaaa-aaaaa-aaaba-cai"),
        ("with_subnet_key", "rdmx6-jaaaa-aaaaa-aaadq-cai"),
    ],
)
def test_real_mainnet_certificates_verify(name: str, canister: str) -> None:
    cert = Certificate.from_cbor(CERTS[name])
    cert.verify(ROOT_KEY, Principal.from_text(canister), now=cert.time())
    assert cert.to_cbor().removeprefix(b"\xd9\xd9\xf7") == CERTS[name].removeprefix(b"\xd9\xd9\xf7")


@pytest.mark.parametrize(
    "canister", ["00000000002000000101", "000000000020000C0101", "00000000002FFFFF0101"]
)
def test_sample_certificate_range_boundaries_verify(canister: str) -> None:
    cert = Certificate.from_cbor(CERTS["sample_cert"])
    cert.verify(ROOT_KEY, Principal.from_hex(canister))
    status = cert.lookup_value(["request_status", cert_request_id(cert), "status"])
    assert status == b"rejected"
    assert cert.time() == 1645601880652705378  # 2022-02-23T07:38:00.652Z


def cert_request_id(cert: Certificate) -> bytes:
    (path,) = {p[1] for p in hashtree.list_paths(cert.tree) if p[0] == b"request_status"}
    return path


@pytest.mark.parametrize("canister", ["00000000000000020101", "00000000003000020101"])
def test_canister_outside_delegated_ranges_fails(canister: str) -> None:
    cert = Certificate.from_cbor(CERTS["sample_cert"])
    with pytest.raises(CertificateError, match="not in the canister ranges"):
        cert.verify(ROOT_KEY, Principal.from_hex(canister))


def test_any_flipped_byte_fails_with_a_reason() -> None:
    data = CERTS["sample_cert"]
    canister = Principal.from_hex("000000000020000C0101")
    reasons = set()
    for position in range(0, len(data), 3):
        corrupted = bytearray(data)
        corrupted[position] ^= 0x01
        with pytest.raises(CertificateError) as info:
            Certificate.from_cbor(bytes(corrupted)).verify(ROOT_KEY, canister)
        assert info.value.reason
        reasons.add(info.value.reason.split(":")[0])
    assert "invalid certificate signature" in reasons
    assert "delegation" in reasons


def test_zeroed_signature_and_wrong_root_key_fail() -> None:
    cert = Certificate.from_cbor(CERTS["mainnet_system"])
    bad = Certificate(cert.tree, bytes(48))
    with pytest.raises(CertificateError, match="invalid certificate signature"):
        bad.verify(ROOT_KEY)
    _, other = bls.keygen(b"not the root")
    with pytest.raises(CertificateError, match="invalid certificate signature"):
        cert.verify(bls.public_key_to_der(other))
    with pytest.raises(CertificateError, match="root key"):
        cert.verify(ROOT_KEY[:-1])


def test_nested_delegation_is_rejected() -> None:
    # agent-js: a read_state certificate with the /subnet tree used as its own delegation.
    inner = Certificate.from_cbor(CERTS["with_subnet_key"])
    subnet = Principal.from_text(VECTORS["certificates"]["with_subnet_key"]["subnet_id_text"])
    nested = Certificate(
        inner.tree, inner.signature, Delegation(subnet.raw, CERTS["with_subnet_key"])
    )
    with pytest.raises(CertificateError, match="nested"):
        nested.verify(ROOT_KEY, Principal.from_text("rdmx6-jaaaa-aaaaa-aaadq-cai"))
    with pytest.raises(CertificateError, match="must not carry"):
        Certificate.create(
            inner.tree, inner.signature, Delegation(subnet.raw, CERTS["with_subnet_key"])
        )


def test_time_skew_and_expired_delegation() -> None:
    cert = Certificate.from_cbor(CERTS["mainnet_application"])
    canister = Principal.from_text("erxue-5aaaa-aaaab-qaagq-cai")
    cert.verify(ROOT_KEY, canister, now=cert.time() + 4 * MINUTE)
    with pytest.raises(CertificateError, match="behind"):
        cert.verify(ROOT_KEY, canister, now=cert.time() + 10 * MINUTE)
    with pytest.raises(CertificateError, match="ahead"):
        cert.verify(ROOT_KEY, canister, now=cert.time() - 10 * MINUTE)
    with pytest.raises(CertificateError, match="expired"):
        cert.verify(ROOT_KEY, canister, now=cert.time() + 31 * 24 * 60 * MINUTE)


def test_effective_subnet_must_match_delegation() -> None:
    cert = Certificate.from_cbor(CERTS["with_subnet_key"])
    subnet = Principal.from_text(VECTORS["certificates"]["with_subnet_key"]["subnet_id_text"])
    cert.verify(ROOT_KEY, effective_subnet_id=subnet)
    with pytest.raises(CertificateError, match="delegated to subnet"):
        cert.verify(ROOT_KEY, effective_subnet_id=Principal.from_text("aaaaa-aa"))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xd9\xd9\xf7\xa0",
        cbor_encode({"tree": [0]}),
        cbor_encode([1, 2]),
        cbor_encode({"tree": [9], "signature": b"x"}),
        cbor_encode({"tree": [0], "signature": b"x", "delegation": {"subnet_id": b""}}),
    ],
)
def test_malformed_certificates_raise(data: bytes) -> None:
    with pytest.raises(CertificateError):
        Certificate.from_cbor(data)


# ---------------------------------------------------------------- our own certificates

NNS = threshold.deal_trusted(b"nns", 4, 3)
APP = threshold.deal_trusted(b"app", 4, 3)
APP_SUBNET = Principal.from_hex("aabbcc02").raw
NOW = 1_700_000_000 * 10**9


def _sign(
    key: tuple[threshold.ThresholdPublicKey, list[threshold.ThresholdSecretShare]],
    tree: hashtree.HashTree,
) -> bytes:
    pk, shares = key
    msg = certification_message(tree.digest())
    return threshold.combine(pk, {s.index: threshold.sign_share(s, msg) for s in shares[1:]})


def _ranges(*pairs: tuple[int, int]) -> bytes:
    return cbor_encode(
        [
            [Principal.from_canister_index(a).raw, Principal.from_canister_index(b).raw]
            for a, b in pairs
        ]
    )


def _delegation(layout: str) -> Delegation:
    subnet: dict[str, object] = {"public_key": APP[0].to_der()}
    state: dict[str, object] = {"time": NOW, "subnet": {APP_SUBNET: subnet}}
    if layout == "flat":
        subnet["canister_ranges"] = _ranges((0, 99), (200, 299))
    else:
        state["canister_ranges"] = {
            APP_SUBNET: {
                Principal.from_canister_index(0).raw: _ranges((0, 99)),
                Principal.from_canister_index(200).raw: _ranges((200, 299)),
            }
        }
    tree = hashtree.build(state)  # type: ignore[arg-type]
    nns_cert = Certificate.create(tree, _sign(NNS, tree))
    return Delegation(APP_SUBNET, nns_cert.to_cbor())


@pytest.mark.parametrize("layout", ["flat", "sharded"])
def test_created_delegated_certificate_roundtrip(layout: str) -> None:
    root = NNS[0].to_der()
    tree = hashtree.build(
        {
            "time": NOW,
            "canister": {Principal.from_canister_index(250).raw: {"certified_data": b"hi"}},
        }
    )
    cert = Certificate.create(tree, _sign(APP, tree), _delegation(layout))
    decoded = Certificate.from_cbor(cert.to_cbor())
    assert decoded == cert
    for index in (0, 50, 99, 200, 250, 299):
        decoded.verify(root, Principal.from_canister_index(index), now=NOW)
    for index in (100, 199, 300):
        with pytest.raises(CertificateError, match="not in the canister ranges"):
            decoded.verify(root, Principal.from_canister_index(index))
    with pytest.raises(CertificateError, match="invalid certificate signature"):
        Certificate(tree, _sign(NNS, tree), cert.delegation).verify(root)


def test_sharded_delegation_pruned_to_one_shard() -> None:
    delegation = _delegation("sharded")
    nns_cert = Certificate.from_cbor(delegation.certificate)
    shard = Principal.from_canister_index(200).raw
    pruned_tree = hashtree.prune(
        nns_cert.tree,
        [["time"], ["subnet", APP_SUBNET, "public_key"], ["canister_ranges", APP_SUBNET, shard]],
    )
    assert pruned_tree.digest() == nns_cert.tree.digest()
    assert delegated_canister_ranges(pruned_tree, APP_SUBNET) == [
        (Principal.from_canister_index(200).raw, Principal.from_canister_index(299).raw)
    ]
    pruned = Delegation(APP_SUBNET, Certificate(pruned_tree, nns_cert.signature).to_cbor())
    tree = hashtree.build({"time": NOW})
    cert = Certificate.create(tree, _sign(APP, tree), pruned)
    cert.verify(NNS[0].to_der(), Principal.from_canister_index(250))
    with pytest.raises(CertificateError, match="not in the canister ranges"):
        cert.verify(NNS[0].to_der(), Principal.from_canister_index(50))


def test_delegation_without_ranges_or_key_fails() -> None:
    tree = hashtree.build({"time": NOW, "subnet": {APP_SUBNET: {"public_key": APP[0].to_der()}}})
    delegation = Delegation(APP_SUBNET, Certificate.create(tree, _sign(NNS, tree)).to_cbor())
    outer = hashtree.build({"time": NOW})
    cert = Certificate.create(outer, _sign(APP, outer), delegation)
    cert.verify(NNS[0].to_der())  # no canister to check
    with pytest.raises(CertificateError, match="no canister ranges"):
        cert.verify(NNS[0].to_der(), Principal.from_canister_index(1))
    tree2 = hashtree.build({"time": NOW})
    no_key = Delegation(APP_SUBNET, Certificate.create(tree2, _sign(NNS, tree2)).to_cbor())
    with pytest.raises(CertificateError, match="no public key"):
        Certificate.create(outer, _sign(APP, outer), no_key).verify(NNS[0].to_der())

"""Principals: published vectors, class rules, error messages, and agreement with a real agent."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icp import Principal
from icp.principal import PrincipalClass

# (hex bytes, text) pairs from the interface spec's examples and the IC's well-known ids.
KNOWN = [
    ("", "aaaaa-aa"),
    ("04", "2vxsx-fae"),
    ("abcd01", "em77e-bvlzu-aq"),
    ("00000000000000000101", "rwlgt-iiaaa-aaaaa-aaaaa-cai"),
    ("00000000000000010101", "rrkah-fqaaa-aaaaa-aaaaq-cai"),
    ("00000000000000020101", "ryjl3-tyaaa-aaaaa-aaaba-cai"),
    ("00000000000000040101", "rkp4c-7iaaa-aaaaa-aaaca-cai"),
    ("00000000000000070101", "rdmx6-jaaaa-aaaaa-aaadq-cai"),
    ("80000000001000010101", "bkyz2-fmaaa-aaaaa-qaaaq-cai"),
    # agent-js / icrc-ledger-types tests: Principal.fromText('2chl6-4hpzw-vqaaa-aaaaa-c')
    ("efcdab000000000001", "2chl6-4hpzw-vqaaa-aaaaa-c"),
    (
        "cff280e32d7f5ccd2246882f94afb20f54ca61a21765e712d43d278902",
        "tdb26-jop6k-aogll-7ltgs-eruif-6kk7m-qpktf-gdiqx-mxtrf-vb5e6-eqe",
    ),
]


@pytest.mark.parametrize(("raw", "text"), KNOWN)
def test_known_pairs(raw: str, text: str) -> None:
    p = Principal.from_hex(raw)
    assert p.to_text() == text
    assert Principal.from_text(text) == p
    assert Principal.from_text(text.upper()) == p  # decoding is case-insensitive


def test_self_authenticating_from_ed25519_der() -> None:
    der = bytes.fromhex("302a300506032b6570032100") + bytes(32)
    p = Principal.self_authenticating(der)
    assert p.to_text() == "ukev2-6iweo-izmyj-rdxlb-jun6n-nef5z-gk2lp-fuzke-7ghpu-jecqq-iae"
    assert p.principal_class is PrincipalClass.SELF_AUTHENTICATING
    assert len(p.bytes) == 29


def test_classes() -> None:
    assert Principal.management_canister().principal_class is PrincipalClass.MANAGEMENT
    assert Principal.anonymous().principal_class is PrincipalClass.ANONYMOUS
    assert Principal.from_canister_index(7).principal_class is PrincipalClass.OPAQUE
    derived = Principal.derived(Principal.from_canister_index(1), b"nonce")
    assert derived.principal_class is PrincipalClass.DERIVED and len(derived.bytes) == 29
    assert Principal.reserved(b"x").principal_class is PrincipalClass.RESERVED


def test_canister_index_roundtrip() -> None:
    p = Principal.from_canister_index(0x8000000000100001)
    assert p.to_text() == "bkyz2-fmaaa-aaaaa-qaaaq-cai"
    assert p.canister_index() == 0x8000000000100001
    assert Principal.anonymous().canister_index() is None
    with pytest.raises(ValueError, match="outside"):
        Principal.from_canister_index(2**64)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("em77e-bvlzu-ab", "checksum"),  # last character changed
        ("em7-7ebvl-zuaq", "canonical"),  # dashes in the wrong places
        ("em77eb-vlzu-aq", "groups"),  # a group of six
        ("em77e--bvlzu-aq", "groups"),
        ("-em77e-bvlzu-aq", "groups"),
        ("em77e-bvlzu-aq-", "groups"),
        ("em77e-bvlzu-a1", "groups"),  # '1' is not in the base32 alphabet
        ("aaaa", "too short"),
        ("a" * 64, "at most 63"),
        ("", "groups"),
    ],
)
def test_invalid_text_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Principal.from_text(text)


def test_too_many_bytes() -> None:
    with pytest.raises(ValueError, match="at most 29"):
        Principal(bytes(30))


def test_hashable_and_ordered() -> None:
    a, b = Principal.from_canister_index(1), Principal.from_canister_index(2)
    assert sorted([b, a]) == [a, b]
    assert {a: 1, b: 2}[Principal.from_text(a.to_text())] == 1


@given(st.binary(max_size=29))
def test_text_roundtrip_and_agreement_with_icp_py_core(raw: bytes) -> None:
    from icp_principal import Principal as AgentPrincipal

    ours = Principal(raw).to_text()
    assert Principal.from_text(ours).bytes == raw
    assert AgentPrincipal(raw).to_str() == ours

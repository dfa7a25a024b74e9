"""ICP account identifiers and ICRC-1 accounts against published vectors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icp import Principal
from icp.ledger import Account, AccountIdentifier

OWNER = Principal.from_text("k2t6j-2nvnp-4zjm3-25dtz-6xhaa-c7boj-5gayf-oj3xs-i43lp-teztq-6ae")


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        # dfinity/ledger-ref src/AccountTests.mo
        (
            "iooej-vlrze-c5tme-tn7qt-vqe7z-7bsj5-ebxlc-hlzgs-lueo3-3yast-pae",
            "bdc4ee05d42cd0669786899f256c8fd7217fa71177bd1fa7b9534f568680a938",
        ),
        # aviate-labs/principal.mo test/AccountIdentifier.mo
        (
            "g42pg-k3n7u-4sals-ufza4-34yrp-mmvkt-psecp-7do7x-snvq4-llwrj-2ae",
            "a7218db708c35689495871c3c6860504503ab2a545630809dd8609130331b0c2",
        ),
        ("2vxsx-fae", "1c7a48ba6a562aa9eaa2481a9049cdf0433b9738c992d698c31d8abf89cadc79"),
    ],
)
def test_account_identifier_vectors(principal: str, expected: str) -> None:
    aid = AccountIdentifier.from_principal(Principal.from_text(principal))
    assert aid.to_hex() == expected
    assert AccountIdentifier.from_hex(expected) == aid
    assert AccountIdentifier.from_hex(expected.upper()) == aid


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("00" * 32, "checksum"),
        ("ab" * 31, "64 hex"),
        ("zz" + "00" * 31, "non-hex"),
    ],
)
def test_account_identifier_rejects_bad_hex(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AccountIdentifier.from_hex(text)


def test_subaccount_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        AccountIdentifier.from_principal(OWNER, b"\x01")


# dfinity/ICRC-1 standards/ICRC-1/TextualEncoding.md, "Examples" table.
ICRC1_OK = [
    (OWNER.to_text(), None),
    (OWNER.to_text() + "-6cc627i.1", bytes(31) + b"\x01"),
    (
        OWNER.to_text()
        + "-dfxgiyy.102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
        bytes(range(1, 33)),
    ),
]
ICRC1_ERR = [
    OWNER.to_text() + "-q6bn32y.",
    "k2t6j2nvnp4zjm3-25dtz6xhaac7boj5gayfoj3xs-i43lp-teztq-6ae",
    OWNER.to_text() + "-6cc627i.01",
    OWNER.to_text() + ".1",
    OWNER.to_text() + "-6cc627j.1",
]


@pytest.mark.parametrize(("text", "subaccount"), ICRC1_OK)
def test_icrc1_text_examples(text: str, subaccount: bytes | None) -> None:
    account = Account.from_text(text)
    assert account == Account(OWNER, subaccount)
    assert account.to_text() == text


@pytest.mark.parametrize("text", ICRC1_ERR)
def test_icrc1_text_errors(text: str) -> None:
    with pytest.raises(ValueError):
        Account.from_text(text)


def test_default_subaccount_equals_none() -> None:
    assert Account(OWNER, bytes(32)) == Account(OWNER)
    assert hash(Account(OWNER, bytes(32))) == hash(Account(OWNER))
    assert Account(OWNER).to_text() == OWNER.to_text()
    assert Account(OWNER).account_identifier() == AccountIdentifier.from_principal(OWNER)


@given(st.binary(max_size=29), st.binary(min_size=32, max_size=32))
def test_icrc1_text_roundtrip(owner: bytes, sub: bytes) -> None:
    account = Account(Principal(owner), sub)
    assert Account.from_text(account.to_text()) == account


@given(st.binary(max_size=29), st.integers(min_value=0, max_value=2**64 - 1))
def test_account_identifier_agrees_with_icp_py_core(owner: bytes, sub: int) -> None:
    from icp_principal.principal import AccountIdentifier as AgentAccountId
    from icp_principal.principal import Principal as AgentPrincipal

    subaccount = sub.to_bytes(32, "big")
    ours = AccountIdentifier.from_principal(Principal(owner), subaccount)
    assert AgentAccountId.new(AgentPrincipal(owner), sub).bytes == ours.raw

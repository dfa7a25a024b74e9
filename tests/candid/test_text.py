"""Unit tests for icp.candid.text: .did files, types, textual values."""

from __future__ import annotations

import math

import pytest

from icp import Principal
from icp.candid import (
    Blob,
    CandidError,
    Float32,
    Float64,
    Func,
    FuncRef,
    Int,
    Nat,
    Nat8,
    Opt,
    Record,
    Some,
    Text,
    Variant,
    Vec,
    args_to_text,
    decode,
    encode,
    parse_args,
    parse_did,
    parse_type,
    parse_value,
    to_text,
    type_to_text,
)
from icp.candid.types import resolve

LEDGER_LIKE = """
// A small ICRC-1 style interface.
type Subaccount = blob;
type Account = record { owner : principal; subaccount : opt Subaccount };
type TransferArg = record {
  from_subaccount : opt Subaccount;
  to : Account;
  amount : nat;
  fee : opt nat;
  memo : opt blob;
  created_at_time : opt nat64;
};
type TransferError = variant {
  BadFee : record { expected_fee : nat };
  InsufficientFunds : record { balance : nat };
  TooOld;
  GenericError : record { error_code : nat; message : text };
};
type Value = variant {
  Nat : nat; Text : text; Array : vec Value; Map : vec record { text; Value }
};
/* block comments /* nest */ too */
service : (record { minting_account : Account }) -> {
  icrc1_balance_of : (Account) -> (nat) query;
  icrc1_transfer : (TransferArg) -> (variant { Ok : nat; Err : TransferError });
  icrc1_metadata : () -> (vec record { text; Value }) composite_query;
  notify : (text) -> () oneway;
  "quoted name" : (amount : nat, to : Account) -> ();
}
"""


def test_parse_did_service_methods() -> None:
    did = parse_did(LEDGER_LIKE)
    assert set(did.methods) == {
        "icrc1_balance_of",
        "icrc1_transfer",
        "icrc1_metadata",
        "notify",
        "quoted name",
    }
    bal = did.method("icrc1_balance_of")
    assert bal.annotations == {"query"} and bal.is_query and len(bal.args) == 1
    assert did.method("icrc1_metadata").is_query
    assert did.method("notify").annotations == {"oneway"}
    assert not did.method("icrc1_transfer").is_query
    assert did.init_args is not None and len(did.init_args) == 1
    assert type_to_text(did.types["Subaccount"]) == "blob"
    with pytest.raises(CandidError, match="no method"):
        did.method("nope")


def test_did_method_types_encode_and_decode() -> None:
    did = parse_did(LEDGER_LIKE)
    m = did.method("icrc1_transfer")
    owner = Principal.from_text("w7x7r-cok77-xa")
    arg = {"to": {"owner": owner, "subaccount": None}, "amount": 10}
    data = encode(m.args, [arg])
    (back,) = decode(data, m.args)
    assert back["to"]["owner"] == owner and back["fee"] is None and back["amount"] == 10
    res = encode(m.results, [{"Err": {"InsufficientFunds": {"balance": 3}}}])
    assert decode(res, m.results) == [{"Err": {"InsufficientFunds": {"balance": 3}}}]
    assert m.decode_results(res) == decode(res, m.results)
    assert m.encode_args([arg]) == data and m.decode_args(data) == [back]
    assert m.encode_results([{"Ok": 1}]) == encode(m.results, [{"Ok": 1}])


def test_recursive_did_types() -> None:
    did = parse_did(LEDGER_LIKE)
    value_t = did.types["Value"]
    v = {"Array": [{"Nat": 1}, {"Map": [("k", {"Text": "v"})]}]}
    assert decode(encode([value_t], [v]), [value_t]) == [v]


@pytest.mark.parametrize(
    ("src", "match"),
    [
        ('import "other.did"; service : {}', "import"),
        ("type A = B;", "unknown type name"),
        ("type A = A;", "not well-founded"),
        ("type A = nat; type A = int;", "defined twice"),
        ("service : { m : nat }", "function type"),
        ("service : { m : () -> () update }", "expected"),
        ("type A = record { a : nat; a : int };", "duplicate"),
    ],
)
def test_bad_did_files(src: str, match: str) -> None:
    with pytest.raises(CandidError, match=match):
        parse_did(src)


def test_shorthands_and_type_printing() -> None:
    assert type_to_text(parse_type("record { nat; text }")) == "record { nat; text }"
    assert type_to_text(parse_type("variant { A; B : nat }")) == "variant { A; B : nat }"
    assert type_to_text(parse_type('record { 5 : nat; "a b" : text }')) == (
        'record { 5 : nat; "a b" : text }'
    )
    f = resolve(parse_type("func (nat) -> (text) query"))
    assert isinstance(f, Func) and f.annotations == {"query"}


def test_parse_values_at_types() -> None:
    assert parse_args("(record { a = 1 : nat })") == [{"a": 1}]
    t = Record({"a": Nat, "b": Opt(Text)})
    assert parse_args("(record { a = 1; c = 5 })", [t]) == [{"a": 1, "b": None}]
    assert parse_value("vec { 1; 2 }", Vec(Nat8)) == b"\x01\x02"
    assert parse_value('blob "\\01a"', Blob) == b"\x01a"
    assert parse_value("1_000", Nat) == 1000
    assert parse_value("0xff", Nat) == 255
    assert parse_value("-5", Int) == -5
    assert parse_value("1.5e3", Float64) == 1500.0
    assert parse_value("0x1p-1", Float64) == 0.5
    assert parse_value("3", Float32) == 3.0
    assert parse_value("opt opt null", Opt(Opt(Opt(Nat)))) == Some(Some(None))
    assert parse_value('variant { ok = "x" }', Variant({"ok": Text})) == {"ok": "x"}
    p = Principal.from_text("aaaaa-aa")
    assert parse_value('func "aaaaa-aa".m', Func([], [])) == FuncRef(p, "m")
    assert parse_value('"\\u{1F402}"', Text) == "🐂"


@pytest.mark.parametrize(
    ("src", "typ", "match"),
    [
        ("-1", Nat, "not a value"),
        ("256", Nat8, "out of range"),
        ('"x"', Nat, "not a value"),
        ("variant { b }", Variant({"a": Nat}), "not in the type"),
        ("record {}", Record({"a": Nat}), "lacks field"),
        ('principal "abc"', Nat, "principal"),
        ("(1 : text)", Nat, "annotation"),
        ("record { a = 1; a = 2 }", Record({}), "duplicate"),
        ('"unterminated', Text, "unterminated"),
    ],
)
def test_bad_values(src: str, typ: object, match: str) -> None:
    with pytest.raises(CandidError, match=match):
        parse_value(src, typ)  # type: ignore[arg-type]


def test_printing() -> None:
    t = [Record({"a": Nat, "b": Opt(Text)}), Vec(Int), Blob, Variant({"A": Opt(Nat8)}), Float64]
    v = [{"a": 1, "b": 'q"\n'}, [-1], b"\x00a", {"A": None}, math.inf]
    text = args_to_text(v, t)
    assert text == (
        '(record { a = 1; b = opt "q\\"\\n" }, vec { -1 }, blob "\\00a", variant { A = null }, inf)'
    )
    assert parse_args(text, t) == v
    assert to_text((1, "x"), Record([Nat, Text])) == 'record { 1; "x" }'
    assert math.isnan(parse_value(to_text(math.nan, Float64), Float64))
    assert parse_value(to_text(-math.inf, Float64), Float64) == -math.inf


@pytest.mark.parametrize(
    ("value", "typ"),
    [({}, Record({"a": Nat})), ("x", Nat), ({"a": 1, "b": 2}, Variant({"a": Nat})), (5, Vec(Nat))],
)
def test_printing_bad_values_is_a_candid_error(value: object, typ: object) -> None:
    with pytest.raises(CandidError):
        to_text(value, typ)  # type: ignore[arg-type]

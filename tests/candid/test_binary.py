"""Unit tests for icp.candid.binary: wire vectors, the Python value mapping, errors."""

from __future__ import annotations

from typing import Any

import pytest

from icp import Principal
from icp.candid import (
    Blob,
    Bool,
    CandidError,
    Empty,
    Float32,
    Float64,
    Func,
    FuncRef,
    Int,
    Int8,
    Int64,
    Nat,
    Nat8,
    Nat16,
    Null,
    Opt,
    PrincipalType,
    Rec,
    Record,
    Reserved,
    Service,
    Some,
    Text,
    Variant,
    Vec,
    decode,
    encode,
)
from icp.candid.binary import leb128, sleb128


@pytest.mark.parametrize(
    ("n", "unsigned", "signed"),
    [
        (0, "00", "00"),
        (127, "7f", "ff00"),
        (128, "8001", "8001"),
        (624485, "e58e26", "e58e26"),
        (-1, None, "7f"),
        (-64, None, "40"),
        (-65, None, "bf7f"),
        (-123456, None, "c0bb78"),
    ],
)
def test_leb128_vectors(n: int, unsigned: str | None, signed: str) -> None:
    # Wikipedia's LEB128 examples (624485 = e5 8e 26, -123456 = c0 bb 78).
    if unsigned is not None:
        assert leb128(n).hex() == unsigned
    assert sleb128(n).hex() == signed


@pytest.mark.parametrize(
    ("types", "values", "wire"),
    [
        ([], [], "4449444c0000"),
        ([Nat], [128], "4449444c00017d8001"),
        ([Int], [-64], "4449444c00017c40"),
        ([Bool, Null], [True, None], "4449444c00027e7f01"),
        ([Text], ["Motoko"], "4449444c000171064d6f746f6b6f"),
        ([Nat16], [256], "4449444c00017a0001"),
        ([Int8], [-1], "4449444c000177ff"),
        ([Float64], [0.5], "4449444c000172000000000000e03f"),
        ([Opt(Int)], [42], "4449444c016e7c0100012a"),
        ([Vec(Int)], [[1, 2]], "4449444c016d7c0100020102"),
        ([Record({1: Int})], [{1: 42}], "4449444c016c01017c01002a"),
        ([Record([Int, Bool])], [(42, True)], "4449444c016c02007c017e01002a01"),
        ([PrincipalType], [Principal.management_canister()], "4449444c0001680100"),
    ],
)
def test_encoding_matches_suite_vectors(types: list[Any], values: list[Any], wire: str) -> None:
    assert encode(types, values).hex() == wire
    assert decode(bytes.fromhex(wire), types) == values


def test_python_value_mapping_round_trips() -> None:
    p = Principal.from_text("w7x7r-cok77-xa")
    result = Variant({"ok": Text, "err": Record({"code": Nat, "msg": Opt(Text)})})
    types = [
        Blob,
        Opt(Opt(Nat)),
        Opt(Opt(Nat)),
        Opt(Opt(Nat)),
        Opt(Null),
        result,
        Func([Text], [Nat], ["query"]),
        Service({"m": Func([], [])}),
        Reserved,
        Int64,
        Float32,
    ]
    values = [
        b"\x00\xff",
        None,
        Some(None),
        Some(5),
        Some(None),
        {"err": {"code": 3, "msg": None}},
        FuncRef(p, "get"),
        p,
        None,
        -(2**63),
        0.25,
    ]
    assert decode(encode(types, values), types) == values


def test_decoding_without_types_uses_wire_ids() -> None:
    data = encode([Record({"a": Nat, "b": Vec(Text)})], [{"a": 1, "b": ["x"]}])
    assert decode(data) == [{97: 1, 98: ["x"]}]


def test_recursive_values() -> None:
    lst = Rec("List")
    lst.define(Opt(Record({"head": Int, "tail": lst})))
    value = {"head": 1, "tail": {"head": 2, "tail": None}}
    assert decode(encode([lst], [value]), [lst]) == [value]


def test_subtyping_on_decode() -> None:
    data = encode(
        [Record({"a": Nat, "extra": Text}), Variant({"x": Nat})], [{"a": 1, "extra": "e"}, {"x": 2}]
    )
    types = [Record({"a": Int, "new": Opt(Bool)}), Variant({"x": Int, "y": Null}), Opt(Text)]
    assert decode(data, types) == [{"a": 1, "new": None}, {"x": 2}, None]
    # A value that does not coerce under opt becomes null; outside opt it is an error.
    assert decode(encode([Text], ["hi"]), [Opt(Nat)]) == [None]
    with pytest.raises(CandidError, match="does not coerce"):
        decode(encode([Text], ["hi"]), [Nat])


@pytest.mark.parametrize(
    ("typ", "value", "match"),
    [
        (Nat, -1, "negative"),
        (Nat, True, "must be int"),
        (Nat8, 256, "out of range"),
        (Text, b"x", "must be str"),
        (Bool, 1, "must be bool"),
        (Null, 0, "must be None"),
        (Empty, None, "empty"),
        (Opt(Opt(Nat)), 5, "Some"),
        (Record({"a": Nat}), {}, "lacks field"),
        (Record({"a": Nat, "b": Opt(Nat)}), {"a": 1, "typo": 2}, "no field.*'typo'"),
        (Record([Nat, Nat]), (1,), "needs 2"),
        (Variant({"a": Nat}), {"b": 1}, "no tag"),
        (Variant({"a": Nat}), {}, "one-entry"),
        (Vec(Nat), "abc", "must be a list"),
        (Blob, [1, 300], "0..255"),
        (PrincipalType, "not a principal", "principal"),
        (Float32, 1e300, "does not fit"),
    ],
)
def test_bad_values_raise_candid_error(typ: Any, value: Any, match: str) -> None:
    with pytest.raises(CandidError, match=match):
        encode([typ], [value])


def test_missing_optional_record_fields_encode_as_null() -> None:
    t = Record({"a": Nat, "b": Opt(Nat)})
    assert decode(encode([t], [{"a": 1}]), [t]) == [{"a": 1, "b": None}]


def test_trailing_bytes_and_bad_magic() -> None:
    with pytest.raises(CandidError, match="trailing"):
        decode(encode([Nat], [1]) + b"\x00", [Nat])
    with pytest.raises(CandidError, match="magic"):
        decode(b"DADL\x00\x00")

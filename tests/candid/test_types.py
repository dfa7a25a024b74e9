"""Unit tests for icp.candid.types: hashing, constructors, knots, subtyping."""

from __future__ import annotations

import pytest

from icp.candid import (
    Bool,
    CandidError,
    Empty,
    Func,
    Int,
    Nat,
    Nat8,
    Null,
    Opt,
    PrincipalType,
    Rec,
    Record,
    Reserved,
    Service,
    Text,
    Variant,
    Vec,
    idl_hash,
    is_subtype,
)
from icp.candid.types import is_null_like, resolve


def test_idl_hash_matches_the_suite_vectors() -> None:
    # Field ids as they appear LEB128-encoded in construct.test.did.
    assert idl_hash("foo") == 5097222  # \86\8e\b7\02
    assert idl_hash("bar") == 4895187  # \d3\e3\aa\02
    assert idl_hash("☃") == 11272781  # \cd\84\b0\05
    assert idl_hash("") == 0


def test_record_fields_are_sorted_by_id_and_tuples_detected() -> None:
    r = Record({"foo": Int, "bar": Bool})
    assert [f.key for f in r.fields] == ["bar", "foo"]
    assert not r.is_tuple
    t = Record([Int, Bool])
    assert t.is_tuple and [f.id for f in t.fields] == [0, 1]
    assert Record({0: Int, 1: Bool}).is_tuple
    assert not Record({1: Int}).is_tuple
    assert not Record({}).is_tuple


def test_field_id_collisions_and_bad_keys_are_rejected() -> None:
    with pytest.raises(CandidError, match="same id"):
        Record({"foo": Nat, 5097222: Nat})
    with pytest.raises(CandidError, match="outside"):
        Variant({2**32: Nat})
    with pytest.raises(CandidError, match="no Candid type"):
        Record({"a": int})  # type: ignore[dict-item]


def test_knots_resolve_and_reject_vacuous_definitions() -> None:
    lst = Rec("List")
    lst.define(Opt(Record({"head": Int, "tail": lst})))
    assert isinstance(resolve(lst), Opt)
    with pytest.raises(CandidError, match="already defined"):
        lst.define(Nat)
    a, b = Rec("A"), Rec("B")
    a.define(b)
    b.define(a)
    with pytest.raises(CandidError, match="not well-founded"):
        resolve(a)
    with pytest.raises(CandidError, match="never defined"):
        resolve(Rec("X"))


def test_func_annotations_are_checked() -> None:
    assert Func([Nat], [], ["query"]).annotations == {"query"}
    with pytest.raises(CandidError, match="unknown"):
        Func([], [], ["update"])
    # Annotations are a set (spec §Functions: "viewed as sets, ... must be equal").
    assert Func([], [], ["oneway", "query"]).annotations == {"query", "oneway"}


def test_null_like() -> None:
    assert is_null_like(Null) and is_null_like(Reserved) and is_null_like(Opt(Nat))
    assert not is_null_like(Nat) and not is_null_like(Empty)


@pytest.mark.parametrize(
    ("sub", "sup", "expected"),
    [
        (Nat, Int, True),
        (Int, Nat, False),
        (Nat8, Nat, False),
        (Empty, Text, True),
        (Text, Reserved, True),
        (Text, Opt(Nat), True),  # every type is a subtype of an opt (opt rules)
        (Record({"a": Nat, "b": Text}), Record({"a": Int}), True),
        (Record({}), Record({"a": Opt(Nat)}), True),
        (Record({}), Record({"a": Nat}), False),
        (Variant({"a": Nat}), Variant({"a": Int, "b": Null}), True),
        (Variant({"a": Nat, "c": Null}), Variant({"a": Int}), False),
        (Vec(Nat), Vec(Int), True),
        (Service({}), PrincipalType, True),
        (PrincipalType, Service({}), False),
        (Func([Int], [Nat]), Func([Nat], [Int]), True),  # contravariant args
        (Func([Nat], [Nat]), Func([Int], [Nat]), False),
        (Func([], []), Func([], [], ["query"]), False),
        (Service({"m": Func([], [Nat])}), Service({"m": Func([], [Int])}), True),
        (Service({}), Service({"m": Func([], [])}), False),
    ],
)
def test_subtyping_rules(sub: object, sup: object, expected: bool) -> None:
    assert is_subtype(sub, sup) is expected  # type: ignore[arg-type]


def test_recursive_subtyping_is_coinductive() -> None:
    a = Rec("A")
    a.define(Record({0: a}))
    b = Rec("B")
    b.define(Record({0: Opt(b)}))
    assert is_subtype(a, b)
    c = Rec("C")
    c.define(Vec(c))
    assert is_subtype(c, Vec(c)) and is_subtype(Vec(c), c)

"""Properties of icp.candid: decode∘encode = id and parse∘print = id at generated types."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from icp import Principal
from icp.candid import (
    Bool,
    CandidError,
    Float32,
    Float64,
    Func,
    FuncRef,
    Int,
    Int8,
    Int16,
    Int32,
    Int64,
    Nat,
    Nat8,
    Nat16,
    Nat32,
    Nat64,
    Null,
    Opt,
    PrincipalType,
    Record,
    Reserved,
    Service,
    Some,
    Text,
    Type,
    Variant,
    Vec,
    args_to_text,
    decode,
    encode,
    idl_hash,
    parse_args,
)
from icp.candid.types import Prim, is_null_like, resolve

# Value strategies are built per generated type; hypothesis warns about their long repr.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

PRIMS: list[Type] = [
    Null, Bool, Nat, Int, Nat8, Nat16, Nat32, Nat64, Int8, Int16, Int32, Int64,
    Float32, Float64, Text, Reserved, PrincipalType,
]  # fmt: skip
NAMES = ["a", "b", "owner", "amount", "Ok", "Err", "☃", "with space", "_1"]

keys = st.one_of(st.sampled_from(NAMES), st.integers(0, 2**32 - 1))


def _distinct_ids(fields: dict[str | int, Type]) -> bool:
    """Field names hash to ids (``idl_hash``); a name may collide with a numeric id."""
    ids = [idl_hash(k) if isinstance(k, str) else k for k in fields]
    return len(set(ids)) == len(ids)


def _record(children: st.SearchStrategy[Type]) -> st.SearchStrategy[Type]:
    named = st.dictionaries(keys, children, max_size=4).filter(_distinct_ids).map(Record)
    tuple_ = st.lists(children, min_size=1, max_size=3).map(Record)
    return st.one_of(named, tuple_)


def _variant(children: st.SearchStrategy[Type]) -> st.SearchStrategy[Type]:
    fields = st.dictionaries(keys, children, min_size=1, max_size=4)
    return fields.filter(_distinct_ids).map(Variant)


def _extend(children: st.SearchStrategy[Type]) -> st.SearchStrategy[Type]:
    return st.one_of(
        _record(children),
        _variant(children),
        children.map(Opt),
        children.map(Vec),
    )


refs = st.one_of(
    st.builds(lambda a, r: Func(a, r, []), st.lists(st.sampled_from(PRIMS), max_size=2),
              st.lists(st.sampled_from(PRIMS), max_size=2)),
    st.just(Service({"m": Func([Nat], [Text], ["query"])})),
)  # fmt: skip

types = st.recursive(st.one_of(st.sampled_from(PRIMS), refs), _extend, max_leaves=8)
arg_types = st.one_of(_record(types), _variant(types), types)
principals = st.binary(max_size=29).map(Principal)

_INT_RANGES = {
    Nat: (0, 2**80), Int: (-(2**80), 2**80), Nat8: (0, 255), Nat16: (0, 2**16 - 1),
    Nat32: (0, 2**32 - 1), Nat64: (0, 2**64 - 1), Int8: (-128, 127), Int16: (-(2**15), 2**15 - 1),
    Int32: (-(2**31), 2**31 - 1), Int64: (-(2**63), 2**63 - 1),
}  # fmt: skip


def values(t0: Type) -> st.SearchStrategy[Any]:
    """Values of Candid type ``t0`` in the documented Python mapping."""
    t = resolve(t0)
    if t is Null or t is Reserved:
        return st.none()
    if t is Bool:
        return st.booleans()
    if t in _INT_RANGES:
        lo, hi = _INT_RANGES[t]
        return st.integers(lo, hi)
    if t is Float32:
        return st.floats(width=32, allow_nan=False)
    if t is Float64:
        return st.floats(allow_nan=False)
    if t is Text:
        return st.text(max_size=8)
    if t is PrincipalType or isinstance(t, Service):
        return principals
    if isinstance(t, Func):
        return st.builds(FuncRef, principals, st.text(max_size=5))
    if isinstance(t, Opt):
        inner = values(t.inner)
        present = inner.map(Some) if is_null_like(t.inner) else inner
        return st.one_of(st.none(), present)
    if isinstance(t, Vec):
        if resolve(t.inner) is Nat8:
            return st.binary(max_size=16)
        return st.lists(values(t.inner), max_size=3)
    if isinstance(t, Record):
        if t.is_tuple:
            return st.tuples(*(values(f.type) for f in t.fields))
        return st.fixed_dictionaries({f.key: values(f.type) for f in t.fields})
    if isinstance(t, Variant):
        return st.one_of(*(values(f.type).map(partial(_tag, f.key)) for f in t.fields))
    assert isinstance(t, Prim)
    raise AssertionError(f"no values for {t.name}")


def _tag(key: str | int, v: Any) -> dict[str | int, Any]:
    return {key: v}


@st.composite
def typed_args(draw: st.DrawFn) -> tuple[list[Type], list[Any]]:
    ts = draw(st.lists(arg_types, max_size=3))
    return ts, [draw(values(t)) for t in ts]


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(typed_args())
def test_decode_encode_is_identity(case: tuple[list[Type], list[Any]]) -> None:
    ts, vs = case
    assert decode(encode(ts, vs), ts) == vs


@SETTINGS
@given(typed_args())
def test_parse_print_is_identity(case: tuple[list[Type], list[Any]]) -> None:
    ts, vs = case
    assert parse_args(args_to_text(vs, ts), ts) == vs


def _lift(t0: Type, v: Any) -> Any:
    """The value of ``v : t`` read at ``opt t`` (spec §Coercion, Options)."""
    t = resolve(t0)
    if t is Null or t is Reserved:
        return None
    if not isinstance(t, Opt):
        return v
    if v is None:
        return None
    inner = v.value if is_null_like(t.inner) else v
    return Some(_lift(t.inner, inner))


@SETTINGS
@given(typed_args())
def test_values_coerce_to_opt_and_reserved(case: tuple[list[Type], list[Any]]) -> None:
    ts, vs = case
    data = encode(ts, vs)
    expected = [_lift(t, v) for t, v in zip(ts, vs, strict=True)]
    assert decode(data, [Opt(t) for t in ts]) == expected
    assert decode(data, [Reserved for _ in ts]) == [None for _ in ts]
    assert len(decode(data)) == len(ts)


def _kinds(t0: Type, out: set[type]) -> set[type]:
    t = resolve(t0)
    out.add(type(t))
    if isinstance(t, (Opt, Vec)):
        _kinds(t.inner, out)
    elif isinstance(t, (Record, Variant)):
        for f in t.fields:
            _kinds(f.type, out)
    return out


def _has_kind(kind: type, t: Type) -> bool:
    return kind in _kinds(t, set())


def test_strategies_generate_every_constructor() -> None:
    probe = settings(max_examples=3000, database=None, derandomize=True)
    for kind in (Opt, Vec, Record, Variant, Func, Service):
        found = find(types, partial(_has_kind, kind), settings=probe)
        assert _has_kind(kind, found)


junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        st.text(max_size=4),
        st.binary(max_size=4),
        principals,
        st.sampled_from(NAMES),
    ),
    lambda kids: st.one_of(
        st.lists(kids, max_size=3),
        st.tuples(kids, kids),
        st.dictionaries(keys, kids, max_size=3),
        kids.map(Some),
    ),
    max_leaves=6,
)


@SETTINGS
@given(st.lists(arg_types, min_size=1, max_size=2), st.data())
def test_encoding_junk_gives_candid_error_or_valid_bytes(
    ts: list[Type], data: st.DataObject
) -> None:
    vs = [data.draw(junk) for _ in ts]
    try:
        encoded = encode(ts, vs)
    except CandidError:
        return
    decode(encoded, ts)  # whatever was accepted must decode at its types
    args_to_text(decode(encoded, ts), ts)

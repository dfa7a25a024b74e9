"""Hostile Candid input fails fast with CandidError, within bounded memory and work.

Memory is measured with tracemalloc (peak < 100 MiB).  Time is never asserted:
instead the decoder's work is bounded by the documented cost budget
(``DecodeLimits``), and these tests check that the budget is what stops it.
"""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icp.candid import (
    CandidError,
    DecodeLimits,
    Nat,
    Null,
    Opt,
    Rec,
    Record,
    Reserved,
    Text,
    Type,
    Vec,
    decode,
    encode,
    parse_args,
    parse_did,
    parse_type,
)
from icp.candid.text import MAX_NESTING
from tests.candid.test_suite import parse_test_file

SUITE = Path(__file__).parent / "suite"
MIB = 1 << 20


def _peak_of(fn: Callable[[], Any]) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        try:
            fn()
            err = None
        except BaseException as exc:  # the caller inspects it
            err = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return err, peak


HOSTILE = [
    pytest.param(a, id=f"{a.file}:{a.line}:{a.desc}")
    for name in ("spacebomb.test.did", "overshoot.test.did")
    for a in parse_test_file(SUITE / name)
]


@pytest.mark.parametrize("case", HOSTILE)
def test_suite_bombs_fail_in_bounded_memory(case: Any) -> None:
    err, peak = _peak_of(lambda: decode(case.left.data, case.types))
    assert isinstance(err, CandidError), err
    assert peak < 100 * MIB


def test_spacebombs_are_stopped_by_the_cost_budget() -> None:
    # vec null with 10^9 elements: stopped before the first element by the budget.
    bomb = b"DIDL\x01\x6d\x7f\x01\x00\x80\x94\xeb\xdc\x03"
    with pytest.raises(CandidError, match="cost exceeds the budget"):
        decode(bomb, [Vec(Null)])
    with pytest.raises(CandidError, match="cost exceeds the budget"):
        decode(bomb, [])  # skipped as an extra argument: same budget


def test_budget_scales_as_documented() -> None:
    limits = DecodeLimits(base_cost=1000, cost_per_byte=0)
    # A vec of n nulls costs 1 + n (elements) + n (null values) + 4 per header byte.
    ok = encode([Vec(Null)], [[None] * 450])
    assert decode(ok, [Vec(Null)], limits=limits) == [[None] * 450]
    too_many = encode([Vec(Null)], [[None] * 500])
    with pytest.raises(CandidError, match="budget of 1000 units"):
        decode(too_many, [Vec(Null)], limits=limits)
    # The default grants base_cost + cost_per_byte * len(data).
    big = encode([Vec(Null)], [[None] * 400_000])
    assert len(decode(big, [Vec(Null)])[0]) == 400_000


def test_zero_sized_records_from_a_type_table_are_charged() -> None:
    # A record of 2 fields of a record of 2 fields ... 20 levels: 2^20 nulls from 0 bytes.
    t: Any = Null
    for _ in range(20):
        t = Record([t, t])
    data = encode([Vec(t)], [[]])[:-1] + b"\x02"  # claim two elements
    with pytest.raises(CandidError, match="cost exceeds the budget"):
        decode(data, [Vec(t)])


def _nested_opt_message(depth: int) -> tuple[bytes, Rec]:
    knot = Rec("O")
    knot.define(Opt(knot))
    header = b"DIDL\x01\x6e\x00\x01\x00"
    return header + b"\x01" * depth + b"\x00", knot


def test_deep_nesting_is_a_candid_error_not_recursion_error() -> None:
    data, knot = _nested_opt_message(100_000)
    err, peak = _peak_of(lambda: decode(data, [knot]))
    assert isinstance(err, CandidError) and "nest" in str(err)
    assert peak < 100 * MIB
    err, _ = _peak_of(lambda: decode(data))
    assert isinstance(err, CandidError)


def test_nesting_limit_is_configurable_and_exact() -> None:
    data, knot = _nested_opt_message(10)
    assert decode(data, [knot], limits=DecodeLimits(max_depth=30)) is not None
    with pytest.raises(CandidError, match="nest"):
        decode(data, [knot], limits=DecodeLimits(max_depth=5))


def test_deep_text_nesting_is_a_candid_error() -> None:
    text = "(" + "opt " * 100_000 + "null)"
    with pytest.raises(CandidError, match="nests too deeply"):
        parse_args(text)
    with pytest.raises(CandidError, match="nests too deeply"):
        parse_type("opt " * 100_000 + "nat")


def test_deep_value_to_encode_is_a_candid_error() -> None:
    knot = Rec("L")
    knot.define(Opt(Record({"next": knot})))
    value: Any = None
    for _ in range(MAX_NESTING * 20):
        value = {"next": value}
    with pytest.raises(CandidError):
        encode([knot], [value])


def test_huge_lengths_are_checked_before_allocating() -> None:
    cases: list[tuple[bytes, list[Type]]] = [
        (b"DIDL\x00\x01\x71\xff\xff\xff\xff\x0fabc", [Text]),  # text of 4 GiB
        (b"DIDL\x01\x6d\x7b\x01\x00\xff\xff\xff\xff\x0f", [Vec(Nat)]),  # blob of 4 GiB
        (b"DIDL\x01\x6d\x7d\x01\x00\xff\xff\xff\xff\x0f\x00", [Vec(Nat)]),  # vec nat
        (b"DIDL\xff\xff\xff\xff\x0f", []),  # type table
    ]
    for data, types in cases:
        err, peak = _peak_of(partial(decode, data, types))
        assert isinstance(err, CandidError) and "overruns" in str(err)
        assert peak < 1 * MIB


def test_oversized_type_table_is_rejected() -> None:
    n = 20_000
    table = b"\x6e\x7d" * n  # n entries of opt nat
    data = b"DIDL" + bytes([0xA0, 0x9C, 0x01]) + table + b"\x00"
    with pytest.raises(CandidError, match="exceeds the limit"):
        decode(data)
    assert decode(data, limits=DecodeLimits(max_type_table=n)) == []


def test_long_leb128_numbers_decode_in_linear_time() -> None:
    # A 1 MiB nat is valid Candid; it must not take quadratic big-int work.
    digits = b"\xff" * MIB + b"\x01"
    (value,) = decode(b"DIDL\x00\x01\x7d" + digits, [Nat])
    assert value.bit_length() == 7 * MIB + 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_but_candid_error(tail: bytes) -> None:
    for types in (None, [Nat], [Opt(Reserved)], [Vec(Opt(Text))]):
        with contextlib.suppress(CandidError):
            decode(b"DIDL" + tail, types)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='(){};:=.,"\\ optvecrdnalbu0123456789-_x', max_size=60))
def test_random_text_never_raises_anything_but_candid_error(text: str) -> None:
    for parse in (parse_args, parse_type, parse_did):
        with contextlib.suppress(CandidError):
            parse(text)


def test_compiled_decoders_are_bounded() -> None:
    # A wire record with many fields, each a distinct table entry, read at a type
    # that names them all: one decoder per field.
    n = 300
    fields: dict[str | int, Type] = {2 * i + 1: Opt(Nat) for i in range(n)}
    t = Record(fields)
    value = dict.fromkeys(fields)
    assert decode(encode([t], [value]), [t]) == [value]
    data = encode([t], [value])
    with pytest.raises(CandidError, match="max_decoders"):
        decode(data, [Record(fields)], limits=DecodeLimits(max_decoders=100))


def test_decoding_does_not_depend_on_the_plan_cache() -> None:
    t = Vec(Null)
    data = encode([t], [[None] * 450])
    limits = DecodeLimits(base_cost=1000, cost_per_byte=0)
    first = decode(data, [t], limits=limits)
    assert decode(data, [t], limits=limits) == first  # cached plan, same budget use
    with pytest.raises(CandidError, match="budget"):
        decode(encode([t], [[None] * 500]), [t], limits=limits)


def _deep_table(n: int, head: bytes, leaf: bytes, first: int = 0) -> bytes:
    """Table entries ``first``..``first+n-1``, each ``head`` of the next, the last of ``leaf``."""
    from icp.candid.binary import sleb128

    return b"".join(head + sleb128(first + i + 1) for i in range(n - 1)) + head + leaf


def test_deep_type_tables_compile_lazily_and_deterministically() -> None:
    from icp.candid.binary import leb128

    # 5,000 nested opt types; a shallow value of that type is valid Candid.
    table = b"DIDL" + leb128(5000) + _deep_table(5000, b"\x6e", b"\x7d")
    assert decode(table + b"\x01\x00\x00") == [None]
    assert decode(table + b"\x01\x00\x00", [Reserved]) == [None]
    (v,) = decode(table + b"\x01\x00" + b"\x01" * 50 + b"\x00")
    for _ in range(50):
        v = v.value
    assert v is None
    # Values deeper than max_depth are rejected, whatever the caller's stack depth.
    with pytest.raises(CandidError, match="nest"):
        decode(table + b"\x01\x00" + b"\x01" * 4000 + b"\x00")


def test_deep_types_in_subtype_checks_are_bounded() -> None:
    from icp.candid import Func
    from icp.candid.binary import leb128

    # Entry 0: func () -> (entry 1); entries 1..5000: vec vec ... vec nat.
    entries = b"\x6a\x00\x01\x01\x00" + _deep_table(5000, b"\x6d", b"\x7d", first=1)
    data = b"DIDL" + leb128(5001) + entries + b"\x01\x00" + b"\x01\x01\x00\x01m"
    assert decode(data)[0].method == "m"  # read at its own type: reflexive, no deep walk
    deep: Type = Nat
    for _ in range(300):
        deep = Vec(deep)
    with pytest.raises(CandidError, match="subtype check"):
        decode(data, [Func([], [deep])])
    with pytest.raises(CandidError, match="does not coerce"):
        decode(data, [Func([], [Nat])])


def test_huge_numbers_in_text() -> None:
    from icp.candid import Int, args_to_text

    with pytest.raises(CandidError, match="hex"):
        parse_args("(" + "9" * 5000 + ")")
    big = -(3**20_000)
    assert parse_args(args_to_text([big], [Int]), [Int]) == [big]

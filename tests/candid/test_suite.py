"""Run the official Candid test suite (dfinity/candid test/*.test.did), one case per assert.

Grammar of a test file (suite README): ``<def>;* <test>;*`` with
``assert <input> (==|!= <input>)? (:|!:) <tuptype> <text>?`` and
``<input> ::= <text> | blob <text>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest

from icp.candid import CandidError, Type, decode, parse_args
from icp.candid.text import _Parser

SUITE = Path(__file__).parent / "suite"


class Input(NamedTuple):
    blob: bool
    data: bytes


class Assertion(NamedTuple):
    file: str
    line: int
    left: Input
    right: Input | None
    equal: bool
    passes: bool
    types: list[Type]
    desc: str


def _parse_input(p: _Parser) -> Input:
    blob = p.is_kw("blob")
    if blob:
        p.next()
    t = p.next()
    if t.kind != "text":
        raise p.err("expected a string input")
    return Input(blob, t.value)


def parse_test_file(path: Path) -> list[Assertion]:
    """Parse one ``.test.did`` file into its assertions."""
    src = path.read_text()
    p = _Parser(src)
    p.predeclare()
    p.defs(("assert",))
    p.check_env()
    out = []
    while p.tok.kind != "eof":
        if not p.is_kw("assert"):
            raise p.err("expected 'assert'")
        line = src.count("\n", 0, p.tok.pos) + 1
        p.next()
        left = _parse_input(p)
        right = None
        equal = True
        if p.is_punct("==") or p.is_punct("!="):
            equal = p.next().value == "=="
            right = _parse_input(p)
        if p.accept(":"):
            passes = True
        else:
            p.expect("!:")
            passes = False
        types = p.tuptype()
        desc = ""
        if p.tok.kind == "text":
            desc = p.next().value.decode("utf-8")
        p.expect(";")
        out.append(Assertion(path.name, line, left, right, equal, passes, types, desc))
    return out


def _read(inp: Input, types: list[Type]) -> list[Any]:
    if inp.blob:
        return decode(inp.data, types)
    return parse_args(inp.data.decode("utf-8"), types)


def _cases() -> list[Any]:
    cases = []
    for path in sorted(SUITE.glob("*.test.did")):
        for a in parse_test_file(path):
            cases.append(pytest.param(a, id=f"{a.file}:{a.line}:{a.desc or 'assert'}"))
    return cases


CASES = _cases()


def test_suite_is_complete() -> None:
    """All six files are present and parsed (a guard against silently losing tests)."""
    files = {c.values[0].file for c in CASES}
    assert files == {
        "construct.test.did",
        "overshoot.test.did",
        "prim.test.did",
        "reference.test.did",
        "spacebomb.test.did",
        "subtypes.test.did",
    }
    assert len(CASES) > 400


@pytest.mark.parametrize("case", CASES)
def test_official_suite(case: Assertion) -> None:
    if not case.passes and case.right is None:
        with pytest.raises(CandidError):
            _read(case.left, case.types)
        return
    left = _read(case.left, case.types)
    if case.right is None:
        return
    right = _read(case.right, case.types)
    if case.equal:
        assert left == right
    else:
        assert left != right

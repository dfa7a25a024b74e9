"""Cross-check icp.candid against @dfinity/candid (the JS agent's library), both ways.

For each case both libraries encode the same values at the same types; each must
decode the other's bytes to the same values.  Skipped only when node or the npm
packages (package.json) are not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from icp import Principal
from icp.candid import (
    Blob,
    Bool,
    Float64,
    Func,
    FuncRef,
    Int,
    Int16,
    Int32,
    Nat,
    Nat8,
    Nat32,
    Nat64,
    Null,
    Opt,
    PrincipalType,
    Rec,
    Record,
    Service,
    Some,
    Text,
    Type,
    Variant,
    Vec,
    decode,
    encode,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).parent / "js" / "crosscheck.cjs"

P = Principal.from_text("w7x7r-cok77-xa")
LIST = Rec("List")
LIST.define(Opt(Record({"head": Int, "tail": LIST})))
RESULT = Variant({"Ok": Nat, "Err": Record({"code": Nat32, "message": Text})})

CASES: dict[str, tuple[list[Type], list[Any]]] = {
    "prims": (
        [Nat, Int, Nat8, Nat64, Int16, Float64, Bool, Text, Null],
        [2**70, -(2**65), 255, 2**64 - 1, -300, 0.1, True, "snow ☃", None],
    ),
    "record": (
        [Record({"owner": PrincipalType, "subaccount": Opt(Blob), "amount": Nat})],
        [{"owner": P, "subaccount": b"\x01\x02\x03", "amount": 5}],
    ),
    "variant": ([RESULT, RESULT], [{"Ok": 7}, {"Err": {"code": 3, "message": "no"}}]),
    "tuple": ([Record([Nat, Text])], [(1, "x")]),
    "vec": ([Vec(Opt(Int32))], [[1, None, -5]]),
    "nested_opt": ([Opt(Opt(Nat)), Opt(Opt(Nat))], [Some(None), Some(9)]),
    "list": ([LIST], [{"head": 1, "tail": {"head": 2, "tail": None}}]),
    "refs": (
        [Func([Text], [Nat], ["query"]), Service({"m": Func([], [])})],
        [FuncRef(P, "get"), P],
    ),
}


@pytest.fixture(scope="module")
def js_results() -> dict[str, dict[str, str]]:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "@dfinity" / "candid").is_dir():
        pytest.skip("node and the npm packages of package.json are needed (npm install)")
    ours = {name: encode(t, v).hex() for name, (t, v) in CASES.items()}
    proc = subprocess.run(
        [node, str(SCRIPT)],
        input=json.dumps(ours),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    result: dict[str, dict[str, str]] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize("name", sorted(CASES))
def test_we_decode_agent_encoding(name: str, js_results: dict[str, dict[str, str]]) -> None:
    types, values = CASES[name]
    assert decode(bytes.fromhex(js_results[name]["own"]), types) == values


@pytest.mark.parametrize("name", sorted(CASES))
def test_agent_decodes_our_encoding(name: str, js_results: dict[str, dict[str, str]]) -> None:
    # The agent decoded our bytes and encoded the result again: same bytes as its own.
    assert js_results[name]["reencoded"] == js_results[name]["own"]

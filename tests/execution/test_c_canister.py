"""A canister written in C (clang, wasm32) runs with the same semantics on both engines."""

from __future__ import annotations

from pathlib import Path

import pytest

from icp.build import compile_c
from icp.candid import Nat64, decode, encode
from icp.execution.cycles import ExecutionLimits
from icp.execution.executor import ExecutionEnvironment
from icp.execution.pywasm_engine import PywasmEngine
from icp.execution.router import Router
from icp.execution.system_api import Reject, Reply
from icp.execution.wasmtime_engine import WasmtimeEngine

from .conftest import USER, Harness

C_COUNTER = Path(__file__).resolve().parent.parent / "canisters" / "c_counter"


@pytest.fixture(scope="module")
def c_wasm() -> bytes:
    return compile_c(C_COUNTER)


def nat64(response: object) -> int:
    assert isinstance(response, Reply), response
    (value,) = decode(response.data, [Nat64])
    assert isinstance(value, int)
    return value


@pytest.mark.parametrize("engine", [WasmtimeEngine, PywasmEngine], ids=["wasmtime", "pywasm"])
def test_c_counter(c_wasm: bytes, engine: type) -> None:
    env = ExecutionEnvironment(engine=engine(), limits=ExecutionLimits.testing(2_000_000_000))
    h = Harness(Router(env))
    cid = h.deploy(c_wasm)
    assert nat64(h.query(cid, "get")) == 41  # canister_init ran
    assert nat64(h.update(cid, "inc")) == 42
    trapped = h.update(cid, "inc_then_trap")
    assert isinstance(trapped, Reject) and "deliberate trap" in trapped.message
    assert nat64(h.query(cid, "get")) == 42  # the trapped increment was rolled back
    assert nat64(h.update(cid, "inc")) == 43
    arg = encode([Nat64], [7])
    echoed = h.update(cid, "echo_caller", arg)
    assert isinstance(echoed, Reply) and echoed.data == arg + USER

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


def run_scenario(c_wasm: bytes, engine: type) -> tuple[list[object], int]:
    """Deploy the C counter and run a fixed script; return the responses and final cycles."""
    env = ExecutionEnvironment(engine=engine(), limits=ExecutionLimits.testing(2_000_000_000))
    h = Harness(Router(env))
    cid = h.deploy(c_wasm)
    responses: list[object] = [h.query(cid, "get"), h.update(cid, "inc")]
    trapped = h.update(cid, "inc_then_trap")
    assert isinstance(trapped, Reject) and "deliberate trap" in trapped.message
    responses += [trapped, h.query(cid, "get"), h.update(cid, "inc")]
    arg = encode([Nat64], [7])
    echoed = h.update(cid, "echo_caller", arg)
    assert isinstance(echoed, Reply) and echoed.data == arg + USER
    responses.append(echoed)
    assert [nat64(r) for i, r in enumerate(responses) if i in (0, 1, 3, 4)] == [41, 42, 42, 43]
    return responses, h.router.canister(cid).cycles


def test_c_counter_same_on_both_engines(c_wasm: bytes) -> None:
    """Same replies, same rollback, and the same cycles charged: the instruction counts
    of wasmtime and pywasm agree (every update is charged per instruction)."""
    on_wasmtime = run_scenario(c_wasm, WasmtimeEngine)
    on_pywasm = run_scenario(c_wasm, PywasmEngine)
    assert on_wasmtime == on_pywasm

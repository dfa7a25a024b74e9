"""The wasmtime engine's transactions: globals of every type roll back bit-exactly."""

from __future__ import annotations

import pytest
import wasmtime

from icp.execution.cycles import ExecutionLimits, FeeSchedule
from icp.execution.errors import TrapKind, WasmTrap
from icp.execution.pywasm_engine import PywasmEngine
from icp.execution.stable_memory import StableMemory
from icp.execution.system_api import CanisterView, Context, ExecutionInput, Reply, SystemApi
from icp.execution.wasmtime_engine import WasmtimeEngine

VIEW = CanisterView(b"\x00" * 8 + b"\x01\x01", b"\x01", (b"\x04",), 1, 0, 10**15, 0, 1, 0, b"")

GLOBALS_WAT = """
(module
  (import "ic0" "trap" (func $trap (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (memory 1)
  (global $a (mut i32) (i32.const -7))
  (global $b (mut i64) (i64.const 0x7fffffffffffffff))
  (global $c (mut f32) (f32.const nan:0x200001))
  (global $d (mut f64) (f64.const -nan:0x8000000000001))
  (global $k i64 (i64.const 5))
  (global $e (mut i64) (i64.const -9223372036854775808))
  (func $set
    (global.set $a (i32.const 1)) (global.set $b (i64.const -1))
    (global.set $c (f32.const 1.5)) (global.set $d (f64.const 2.5))
    (global.set $e (i64.add (global.get $e) (global.get $k)))
    (i32.store (i32.const 100) (i32.const 42)))
  (func (export "canister_update set_and_trap")
    (call $set) (call $trap (i32.const 0) (i32.const 0)))
  (func (export "canister_update set_and_fault") (call $set) (drop (i32.load (i32.const -1))))
  (func (export "canister_query set_in_query") (call $set) (call $reply))
  (func (export "canister_update set") (call $set) (call $reply))
  (func (export "canister_query read")
    (i32.store (i32.const 0) (global.get $a)) (i64.store (i32.const 4) (global.get $b))
    (f32.store (i32.const 12) (global.get $c)) (f64.store (i32.const 16) (global.get $d))
    (i64.store (i32.const 24) (global.get $e)) (i32.store (i32.const 32) (i32.load (i32.const 100)))
    (call $append (i32.const 0) (i32.const 36)) (call $reply)))
"""

INITIAL = (
    (-7).to_bytes(4, "little", signed=True)
    + (2**63 - 1).to_bytes(8, "little")
    + (0x7FA00001).to_bytes(4, "little")
    + (0xFFF8000000000001).to_bytes(8, "little")
    + (2**63).to_bytes(8, "little")
    + bytes(4)
)


def _api(ctx: Context) -> SystemApi:
    return SystemApi(
        ExecutionInput(ctx), VIEW, StableMemory(), ExecutionLimits(), FeeSchedule(), 10**9
    )


def _run(inst: object, export: str, ctx: Context, keep: bool) -> bytes | WasmTrap:
    inst.begin()  # type: ignore[attr-defined]
    api = _api(ctx)
    try:
        inst.run(export, (), api, 10**9)  # type: ignore[attr-defined]
    except WasmTrap as trap:
        inst.rollback()  # type: ignore[attr-defined]
        return trap
    if keep:
        inst.commit()  # type: ignore[attr-defined]
    else:
        inst.rollback()  # type: ignore[attr-defined]
    assert isinstance(api.response, Reply)
    return api.response.data


@pytest.mark.parametrize("engine", [WasmtimeEngine(), PywasmEngine()], ids=lambda e: e.name)
def test_trap_and_query_restore_every_global_bit_exactly(engine: object) -> None:
    wasm = wasmtime.wat2wasm(GLOBALS_WAT)
    inst = engine.instantiate(engine.compile(wasm), 0)  # type: ignore[attr-defined]
    assert _run(inst, "canister_query read", Context.NRQ, False) == INITIAL
    before = inst.snapshot().digest()
    trapped = _run(inst, "canister_update set_and_trap", Context.U, True)
    assert isinstance(trapped, WasmTrap) and trapped.kind is TrapKind.CALLED_TRAP
    assert _run(inst, "canister_query read", Context.NRQ, False) == INITIAL
    faulted = _run(inst, "canister_update set_and_fault", Context.U, True)
    assert isinstance(faulted, WasmTrap) and faulted.kind is TrapKind.TRAP
    assert _run(inst, "canister_query set_in_query", Context.NRQ, False) == b""
    assert _run(inst, "canister_query read", Context.NRQ, False) == INITIAL
    assert inst.snapshot().digest() == before
    assert _run(inst, "canister_update set", Context.U, True) == b""
    changed = _run(inst, "canister_query read", Context.NRQ, False)
    assert isinstance(changed, bytes) and changed[:4] == (1).to_bytes(4, "little")
    assert changed[24:] == (2**63 + 5).to_bytes(8, "little") + (42).to_bytes(4, "little")
    assert inst.snapshot().digest() != before


def test_host_function_errors_surface_as_traps_and_the_instance_keeps_working() -> None:
    engine = WasmtimeEngine()
    wasm = wasmtime.wat2wasm(GLOBALS_WAT)
    inst = engine.instantiate(engine.compile(wasm), 0)
    for _ in range(3):  # ic0.msg_reply in an update-only context: a contract violation
        trap = _run(inst, "canister_query set_in_query", Context.I, True)
        assert isinstance(trap, WasmTrap) and trap.kind is TrapKind.CONTRACT_VIOLATION
        assert "msg_reply" in trap.message
    assert _run(inst, "canister_query read", Context.NRQ, False) == INITIAL

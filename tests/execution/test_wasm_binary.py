"""Module validation at install: the IC's rules and error class (IC0505)."""

from __future__ import annotations

import gzip

import pytest
import wasmtime

from icp.execution.cycles import ExecutionLimits, FeeSchedule
from icp.execution.errors import ErrorCode, InvalidWasm, TrapKind, WasmTrap
from icp.execution.pywasm_engine import PywasmEngine
from icp.execution.stable_memory import StableMemory
from icp.execution.system_api import CanisterView, Context, ExecutionInput, SystemApi
from icp.execution.wasm_binary import instruction_cost, parse_module
from icp.execution.wasmtime_engine import WasmtimeEngine


def wat(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


@pytest.mark.parametrize(
    ("module", "reason"),
    [
        (b"\x00asn\x01\x00\x00\x00", "bad magic"),
        (b"\x00asm\x01\x00\x00\x00\x01\x05\x01\x60", "unexpected end"),
        (wat('(module (import "env" "foo" (func)))'), "not exported by the runtime"),
        (wat('(module (import "ic0" "msg_reply" (func (param i32))))'), "incorrect signature"),
        (
            wat('(module (import "ic0" "stable_size" (func (result i32))) (memory i64 1))'),
            "not exported",
        ),
        (wat('(module (memory 1) (func (export "canister_bogus")))'), "reserved function"),
        (wat('(module (func (export "canister_update f") (param i32)))'), "() -> ()"),
        (
            wat(
                '(module (func $f) (export "canister_update m" (func $f))'
                ' (export "canister_query m" (func $f)))'
            ),
            "Duplicate function",
        ),
        (wat("(module " + "(global i32 (i32.const 0))" * 1001 + ")"), "1001 globals"),
        (wat("(module (func (result v128) (v128.const i64x2 0 0)))"), "0x7b"),
        (b"\x00asm\x01\x00\x00\x00\x63\x00", "unknown or unsupported section"),
    ],
)
def test_invalid_modules_are_rejected_with_ic0505(module: bytes, reason: str) -> None:
    with pytest.raises(InvalidWasm) as info:
        WasmtimeEngine().compile(module)
    assert info.value.error_code is ErrorCode.CANISTER_INVALID_WASM
    assert info.value.reject_code == 5
    assert reason in str(info.value)


def test_type_errors_are_caught_by_the_engine_validator() -> None:
    bad = wat("(module (func (result i32) (i32.const 1)))").replace(b"\x41\x01", b"\x42\x01")
    with pytest.raises(InvalidWasm, match="failed validation"):
        WasmtimeEngine().compile(bad)


def test_gzip_modules_are_accepted(wat_counter: bytes) -> None:
    eng = WasmtimeEngine()
    plain = eng.compile(bytes(wat_counter))
    zipped = eng.compile(gzip.compress(bytes(wat_counter)))
    assert zipped.parsed.exported_functions == plain.parsed.exported_functions
    with pytest.raises(InvalidWasm, match="gzip"):
        eng.compile(b"\x1f\x8b\x08" + b"garbage")


def test_start_function_that_traps_fails_install(harness) -> None:  # type: ignore[no-untyped-def]
    from icp.execution.system_api import Reject

    cid = harness.create()
    rep = harness.install(cid, wat("(module (func $s unreachable) (start $s))"))
    assert isinstance(rep, Reject) and rep.error_code == "IC0502"
    assert harness.router.canister(cid).runtime is None


def test_motoko_module_parses_as_memory64(motoko) -> None:  # type: ignore[no-untyped-def]
    m = parse_module(motoko("counter"))
    assert m.is_memory64
    assert "icp:private enhanced-orthogonal-persistence" in m.public_custom_sections()


WEIGHTS_WAT = """
(module
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "debug_print" (func $print (param {a} {a})))
  (memory {mem} 1)
  (data ({a}.const 16) "hello")
  (global $g (mut i32) (i32.const 0))
  (func $leaf)
  (func (export "canister_update arith")
    (drop (i32.div_u (i32.const 7) (i32.const 2)))
    (global.set $g (global.get $g))
    (call $leaf))
  (func (export "canister_update fill")
    (memory.fill ({a}.const 8) (i32.const 7) ({a}.const 1000)))
  (func (export "canister_update store")
    ({a}.store ({a}.const 64) ({a}.const 1)))
  (func (export "canister_update print") (call $print ({a}.const 16) ({a}.const 5)))
  (func (export "canister_update big_fill")
    (memory.fill ({a}.const 0) (i32.const 7) ({a}.const 60000))))
"""


def _weights_module(memory64: bool) -> bytes:
    a = "i64" if memory64 else "i32"
    return wat(WEIGHTS_WAT.replace("{mem}", "i64" if memory64 else "").replace("{a}", a))


def _used(engine: object, wasm: bytes, export: str, limit: int = 10**9) -> int | WasmTrap:
    inst = engine.instantiate(engine.compile(wasm), 0)  # type: ignore[attr-defined]
    view = CanisterView(b"\x01", b"\x01", (), 1, 0, 10**15, 0, 1, 0, b"")
    api = SystemApi(ExecutionInput(Context.U), view, StableMemory(), ExecutionLimits(),
                    FeeSchedule(), limit)  # fmt: skip
    inst.begin()
    try:
        return int(inst.run(export, (), api, limit))
    except WasmTrap as trap:
        return trap
    finally:
        inst.rollback()


@pytest.mark.parametrize("engine", [WasmtimeEngine(), PywasmEngine()], ids=lambda e: e.name)
def test_instructions_are_weighted_as_on_the_ic(engine: object) -> None:
    wasm = _weights_module(memory64=False)
    # entry 1 + const 1 + const 1 + div_u 10 + drop 1 + global.get 2 + global.set 2
    # + call 5 + (callee: entry 1)
    assert _used(engine, wasm, "canister_update arith") == 24
    # entry 1 + 3 consts + memory.fill 100 + 1000 bytes (dynamic)
    assert _used(engine, wasm, "canister_update fill") == 1 + 3 + 100 + 1000
    assert _used(engine, wasm, "canister_update store") == 1 + 2 + 1  # wasm32 store: 1
    # entry 1 + 2 consts + call 5 + debug_print: 1 + overhead 100 (with the call) + 5 bytes
    assert _used(engine, wasm, "canister_update print") == 1 + 2 + 5 + 101 + 5
    trap = _used(engine, wasm, "canister_update big_fill", limit=50_000)
    assert isinstance(trap, WasmTrap) and trap.kind is TrapKind.OUT_OF_INSTRUCTIONS


def test_wasm64_loads_and_stores_cost_two() -> None:
    wasm = _weights_module(memory64=True)
    assert _used(WasmtimeEngine(), wasm, "canister_update store") == 1 + 2 + 2
    assert _used(WasmtimeEngine(), wasm, "canister_update fill") == 1 + 3 + 100 + 1000
    assert instruction_cost(0x37, memory64=True) == 2
    assert instruction_cost(0x37, memory64=False) == 1
    assert instruction_cost(0x40, memory64=False) == 300  # memory.grow


def _module(globals_: bytes, body: bytes, nfuncs: int = 1) -> bytes:
    """A hand-assembled module: () -> () functions, mutable i32 globals, one export."""
    name = b"canister_update f"
    code = b"\x00" + body  # no locals
    return (
        b"\x00asm\x01\x00\x00\x00"
        + b"\x01\x04\x01\x60\x00\x00"
        + bytes([3, nfuncs + 1, nfuncs]) + b"\x00" * nfuncs
        + (bytes([6, len(globals_)]) + globals_ if globals_ else b"")
        + bytes([7, len(name) + 4, 1, len(name)]) + name + b"\x00\x00"
        + bytes([10, (len(code) + 1) * nfuncs + 1, nfuncs]) + (bytes([len(code)]) + code) * nfuncs
    )  # fmt: skip


@pytest.mark.parametrize(
    ("globals_", "body"),
    [
        # global.set of index 1: out of range here, the instruction counter after instrumenting
        (b"\x01\x7f\x01\x41\x00\x0b", b"\x42\xff\xff\xff\xff\x0f\x24\x01\x0b"),
        # call of function 1: out of range here, an injected helper after instrumenting
        (b"", b"\x10\x01\x0b"),
        # a store to memory 1 (multi-memory encoding): there is no memory 1
        (b"", b"\x41\x00\x41\x00\x36\x42\x01\x00\x0b"),
    ],
    ids=["global", "call", "memory"],
)
def test_out_of_range_indices_never_reach_the_instrumentation(globals_: bytes, body: bytes) -> None:
    module = _module(globals_, body)
    for engine in (WasmtimeEngine(), PywasmEngine()):
        with pytest.raises(InvalidWasm, match="failed validation"):
            engine.compile(module)
    fine = WasmtimeEngine().compile(_module(globals_, b"\x0b"))  # the same module, in range
    assert fine.parsed.exported_functions == {"canister_update f": 0}

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
from icp.leb128 import encode_unsigned

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


def test_motoko_gc_heavy_trap_rolls_the_heap_back_bit_exactly(motoko) -> None:  # type: ignore[no-untyped-def]
    """Real compiler output (stores, memory.copy/fill by the GC) is journaled completely."""
    engine = WasmtimeEngine()
    inst = engine.instantiate(engine.compile(motoko("counter")), 0)
    for ctx, export, arg in ((Context.S, "__icp_start", b""), (Context.I, "canister_init", b"")):
        inst.begin()
        inst.run(export, (), SystemApi(ExecutionInput(ctx, arg=b"DIDL\x00\x00"), VIEW,
                 StableMemory(), ExecutionLimits(), FeeSchedule(), 10**10), 10**10)  # fmt: skip
        inst.commit()
        del arg
    work = b"DIDL\x00\x01\x7d" + encode_unsigned(60_000)

    def run(limit: int) -> int | WasmTrap:
        api = SystemApi(ExecutionInput(Context.U, arg=work), VIEW, StableMemory(),
                        ExecutionLimits(), FeeSchedule(), limit)  # fmt: skip
        inst.begin()
        try:
            used = inst.run("canister_update work", (), api, limit)
        except WasmTrap as trap:
            inst.rollback()
            return trap
        inst.commit()
        return used

    full = run(10**10)
    assert isinstance(full, int) and full > 10_000_000
    for fraction in (0.3, 0.55, 0.8, 0.97):
        heap = inst.read(0, inst.memory_size())
        digest = inst.snapshot().digest()
        trapped = run(int(full * fraction))
        assert isinstance(trapped, WasmTrap) and trapped.kind is TrapKind.OUT_OF_INSTRUCTIONS
        assert inst.memory_size() == len(heap)
        assert inst.read(0, len(heap)) == heap
        assert inst.snapshot().digest() == digest
        assert isinstance(run(10**10), int)  # and a committed run moves the GC state on


SCRIBBLE_WAT = """
(module
  (import "ic0" "trap" (func $trap (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (memory 4)
  (data $d "0123456789abcdefghijklmnopqrstuvwxyz")
  (func $fill_pattern (local $i i32) (local $n i32)
    ;; a 251-byte seed (prime period, so no page looks like another), doubled by copies
    (loop $l
      (i32.store8 (local.get $i) (i32.add (i32.mul (local.get $i) (i32.const 37)) (i32.const 11)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 251))))
    (local.set $n (i32.const 251))
    (loop $d
      (memory.copy (local.get $n) (i32.const 0)
        (select (local.get $n) (i32.sub (i32.const 262144) (local.get $n))
          (i32.le_u (i32.add (local.get $n) (local.get $n)) (i32.const 262144))))
      (local.set $n (i32.add (local.get $n) (local.get $n)))
      (br_if $d (i32.lt_u (local.get $n) (i32.const 262144)))))
  (func (export "canister_update init_pattern") (call $fill_pattern) (call $reply))
  (func $scribble (param $base i32)
    ;; fast[p] set by an aligned store, then a short copy from the end of p into p+1
    (i64.store (local.get $base) (i64.const -1))
    (memory.copy (i32.add (local.get $base) (i32.const 4090)) (i32.const 100) (i32.const 20))
    ;; a bulk write from that page reaching page p+2 (longer than one page)
    (memory.fill (i32.add (local.get $base) (i32.const 4000)) (i32.const 9) (i32.const 6000))
    ;; an unaligned store crossing a page boundary (first touch of both pages)
    (i64.store offset=8188 (local.get $base) (i64.const 0x0102030405060708))
    ;; bulk writes to pages no scalar store touched: fill, copy, init
    (memory.fill (i32.add (local.get $base) (i32.const 12000)) (i32.const 7) (i32.const 10000))
    (memory.copy (i32.add (local.get $base) (i32.const 30000)) (i32.const 0) (i32.const 300))
    (memory.init $d (i32.add (local.get $base) (i32.const 40955)) (i32.const 0) (i32.const 36))
    ;; store8/16/32 at the last bytes of a page
    (i32.store16 offset=53247 (local.get $base) (i32.const 0xbeef))
    (i64.store32 offset=57342 (local.get $base) (i64.const 0x11223344)))
  (func $same_base (param $b i32)
    ;; stores off one unchanged local: later ones inside [b, b+4096) skip their check
    (i64.store (local.get $b) (i64.const 1))
    (i64.store offset=8 (local.get $b) (i64.const 2))
    (i64.store offset=4088 (local.get $b) (i64.const 3))
    (i64.store offset=4190 (local.get $b) (i64.const 4))
    (local.set $b (i32.add (local.get $b) (i32.const 12288)))
    (i64.store offset=8 (local.get $b) (i64.const 5))
    (i64.store offset=16 (local.tee $b (i32.add (local.get $b) (i32.const 4096))) (i64.const 6))
    (i32.store offset=4 (local.get $b) (i32.const 7)))
  (func $branches (param $b i32) (param $c i32)
    ;; coverage flows into both branches of an if, never from one branch to the other
    (i64.store (local.get $b) (i64.const 1))
    (if (local.get $c)
      (then (i64.store offset=4100 (local.get $b) (i64.const 2)))
      (else (i64.store offset=4200 (local.get $b) (i64.const 3))))
    (block
      (i64.store offset=8 (local.get $b) (i64.const 4))
      (br_if 0 (local.get $c))
      (i64.store offset=16 (local.get $b) (i64.const 5)))
    ;; after the join: covered by the else window only, so it must be checked
    (i64.store offset=8200 (local.get $b) (i64.const 6)))
  (func $looped (param $b i32) (local $i i32)
    ;; a loop header is a back-edge target: nothing from before the loop carries over
    (i64.store (local.get $b) (i64.const 1))
    (loop $l
      (i64.store offset=8 (local.get $b) (i64.const 2))
      (local.set $b (i32.add (local.get $b) (i32.const 8192)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 3)))))
  (func (export "canister_update scribble_and_trap")
    (call $looped (i32.const 233572))
    (call $branches (i32.const 85920) (i32.const 0))
    (call $branches (i32.const 217083) (i32.const 1))
    (call $same_base (i32.const 44960))
    (call $scribble (i32.const 4096)) (call $scribble (i32.const 131072))
    (call $trap (i32.const 0) (i32.const 0)))
  (func (export "canister_update scribble_grow_and_trap")
    (call $scribble (i32.const 65536))
    (drop (memory.grow (i32.const 1)))
    (call $scribble (i32.const 196608))
    (call $trap (i32.const 0) (i32.const 0)))
  (func (export "canister_update scribble") (call $scribble (i32.const 8192)) (call $reply)))
"""


@pytest.mark.parametrize("engine", [WasmtimeEngine(), PywasmEngine()], ids=lambda e: e.name)
def test_every_kind_of_write_is_rolled_back(engine: object) -> None:
    inst = engine.instantiate(engine.compile(wasmtime.wat2wasm(SCRIBBLE_WAT)), 0)  # type: ignore[attr-defined]
    assert _run(inst, "canister_update init_pattern", Context.U, True) == b""
    for export in ("canister_update scribble_and_trap", "canister_update scribble_grow_and_trap"):
        heap = inst.read(0, inst.memory_size())
        assert isinstance(_run(inst, export, Context.U, True), WasmTrap)
        assert inst.memory_size() == len(heap) and inst.read(0, len(heap)) == heap
    assert _run(inst, "canister_update scribble", Context.U, True) == b""
    assert inst.read(0, len(heap)) != heap  # the same writes, committed, do change the heap


DELTA64_WAT = """
(module
  (import "ic0" "trap" (func $trap (param i64 i64)))
  (import "ic0" "msg_reply" (func $reply))
  (memory i64 2)
  (func (export "canister_update init_pattern") (local $i i64)
    (loop $l
      (i64.store8 (local.get $i) (i64.xor (local.get $i) (i64.shr_u (local.get $i) (i64.const 8))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_u (local.get $i) (i64.const 131072))))
    (call $reply))
  (func $delta (param $b i64)
    ;; memory64: addresses local + constant are tracked too
    (i64.store (local.get $b) (i64.const 1))
    (i64.store (i64.add (local.get $b) (i64.const 24)) (i64.const 2))
    (i64.store offset=100 (i64.add (local.get $b) (i64.const 3000)) (i64.const 3))
    (i64.store (i64.add (i64.const 17000) (local.get $b)) (i64.const 7))
    (i64.store (i64.sub (local.get $b) (i64.const 8)) (i64.const 4))
    (i64.store (i64.add (local.get $b) (i64.const 9000)) (i64.const 5))
    (i64.store (i64.add (i64.add (local.get $b) (i64.const 4000)) (i64.const 4100))
               (i64.const 6)))
  (func (export "canister_update delta_and_trap")
    (call $delta (i64.const 40964))
    (call $trap (i64.const 0) (i64.const 0))))
"""


def test_memory64_local_plus_constant_stores_are_rolled_back() -> None:
    engine = WasmtimeEngine()
    inst = engine.instantiate(engine.compile(wasmtime.wat2wasm(DELTA64_WAT)), 0)
    assert _run(inst, "canister_update init_pattern", Context.U, True) == b""
    heap = inst.read(0, inst.memory_size())
    assert isinstance(_run(inst, "canister_update delta_and_trap", Context.U, True), WasmTrap)
    assert inst.read(0, len(heap)) == heap

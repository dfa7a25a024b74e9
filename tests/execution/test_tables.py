"""Wasm tables across messages: every execution starts from the module's initial tables.

The IC instantiates a canister's module afresh for every execution and carries over only
the heap, stable memory and exported globals (dfinity/ic ``rs/embedders/src/
wasm_executor.rs`` ``process``/``WasmStateChanges``), so neither a trapped nor a
successful ``table.set``/``grow``/``fill``/``copy``/``init``/``elem.drop`` is seen by the
next message; within one message the change is visible.  Both engines must agree.
"""

from __future__ import annotations

import pytest
import wasmtime

from icp.execution.engine import prepare_module
from icp.execution.pywasm_engine import PywasmEngine
from icp.execution.system_api import Context, Reply
from icp.execution.wasmtime_engine import WasmtimeEngine
from tests.execution.conftest import Harness
from tests.execution.messages import Step, message_api, reply_value, run_steps

TABLES_WAT = r"""
(module
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (type $val (func (result i32)))
  (type $cb (func (param i32)))
  (memory 1)
  (table $t0 4 funcref)
  (table $t1 2 funcref)
  (table $t2 0 externref)
  (elem (table $t0) (i32.const 0) func $v1 $v2 $cb_a)
  (elem (table $t1) (i32.const 0) func $v3)
  (elem $p func $v4)
  (elem declare func $v3 $cb_b)
  (func $v1 (result i32) (i32.const 1))
  (func $v2 (result i32) (i32.const 2))
  (func $v3 (result i32) (i32.const 3))
  (func $v4 (result i32) (i32.const 4))
  (func $cb_a (param i32) (i32.store (i32.const 8) (i32.const 10)))
  (func $cb_b (param i32) (i32.store (i32.const 8) (i32.const 20)))
  (func $out (param i32)
    (i32.store (i32.const 0) (local.get 0))
    (call $append (i32.const 0) (i32.const 4))
    (call $reply))
  ;; t0[0]() * 1000 + size(t0) * 100 + t1[0]() * 10 + size(t2); initially 1430
  (func $state (result i32)
    (i32.add
      (i32.add
        (i32.mul (call_indirect $t0 (type $val) (i32.const 0)) (i32.const 1000))
        (i32.mul (table.size $t0) (i32.const 100)))
      (i32.add
        (i32.mul (call_indirect $t1 (type $val) (i32.const 0)) (i32.const 10))
        (table.size $t2))))
  (func (export "canister_query get") (call $out (call $state)))
  (func (export "canister_update set")
    (table.set $t0 (i32.const 0) (ref.func $v3)) (call $out (call $state)))
  (func (export "canister_update set_trap")
    (table.set $t0 (i32.const 0) (ref.func $v3)) unreachable)
  (func (export "canister_query set_q")
    (table.set $t0 (i32.const 0) (ref.func $v3)) (call $out (call $state)))
  (func (export "canister_update grow")
    (drop (table.grow $t0 (ref.null func) (i32.const 4)))
    (i32.store (i32.const 16) (i32.const 7))
    (call $out (call $state)))
  (func (export "canister_update grow_trap")
    (drop (table.grow $t0 (ref.func $v3) (i32.const 4))) unreachable)
  (func (export "canister_update fill")
    (table.fill $t0 (i32.const 0) (ref.func $v2) (i32.const 2)) (call $out (call $state)))
  (func (export "canister_update copy")
    (table.copy $t1 $t0 (i32.const 0) (i32.const 1) (i32.const 1)) (call $out (call $state)))
  (func (export "canister_update set1")
    (table.set $t1 (i32.const 0) (ref.func $v4)) (call $out (call $state)))
  (func (export "canister_update grow_ext")
    (drop (table.grow $t2 (ref.null extern) (i32.const 1))) (call $out (call $state)))
  (func (export "canister_update init")
    (table.init $t0 $p (i32.const 0) (i32.const 0) (i32.const 1)) (call $out (call $state)))
  (func (export "canister_update drop") (elem.drop $p) (call $out (i32.const 0)))
  (func (export "canister_update drop_init")
    (elem.drop $p) (table.init $t0 $p (i32.const 0) (i32.const 0) (i32.const 1)))
  (func (export "canister_update set_cb")
    (table.set $t0 (i32.const 2) (ref.func $cb_b)) (call $out (i32.const 0)))
  (func (export "canister_query mem8") (call $out (i32.load (i32.const 8))))
  (func (export "canister_query mem16") (call $out (i32.load (i32.const 16))))
)
"""
INITIAL = 1430

SCRIPT: list[Step] = [
    (Context.NRQ, "canister_query get", "commit"),
    (Context.U, "canister_update set_trap", "commit"),  # traps: rolled back
    (Context.NRQ, "canister_query get", "commit"),
    (Context.U, "canister_update set", "commit"),  # 3430 inside the message
    (Context.NRQ, "canister_query get", "commit"),  # ...and initial again after it
    (Context.NRQ, "canister_query set_q", "rollback"),
    (Context.NRQ, "canister_query get", "commit"),
    (Context.U, "canister_update grow_trap", "commit"),
    (Context.NRQ, "canister_query get", "commit"),
    (Context.U, "canister_update grow", "commit"),
    (Context.NRQ, "canister_query get", "commit"),
    (Context.NRQ, "canister_query mem16", "commit"),  # the heap write of `grow` persists
    (Context.U, "canister_update fill", "commit"),
    (Context.U, "canister_update copy", "commit"),
    (Context.U, "canister_update set1", "commit"),
    (Context.U, "canister_update grow_ext", "commit"),
    (Context.U, "canister_update init", "commit"),
    (Context.U, "canister_update drop", "commit"),
    (Context.U, "canister_update init", "commit"),  # the segment is back for a new message
    (Context.U, "canister_update drop_init", "commit"),  # traps: dropped within the message
    (Context.U, "canister_update set_cb", "commit"),
    (Context.U, 2, "commit"),  # callback at table index 2: the initial $cb_a
    (Context.NRQ, "canister_query mem8", "commit"),
    (Context.NRQ, "canister_query get", "commit"),
]
EXPECTED = [
    INITIAL, "trap", INITIAL, 3430, INITIAL, 3430, INITIAL, "trap", INITIAL, 1830, INITIAL,
    7, 2430, 1420, 1440, 1431, 4430, 0, 4430, "trap", 0, "ok", 10, INITIAL,
]  # fmt: skip


def tables_wasm() -> bytes:
    """The table test module (wasm32)."""
    return wasmtime.wat2wasm(TABLES_WAT)


def run_script(engine: object, wasm: bytes) -> list[tuple[object, int]]:
    """Run SCRIPT on a fresh instance; return (result, instructions) per step."""
    inst = engine.instantiate(engine.compile(wasm), 0)  # type: ignore[attr-defined]
    return run_steps(inst, SCRIPT)


@pytest.mark.parametrize("engine_cls", [WasmtimeEngine, PywasmEngine])
def test_every_message_sees_the_initial_tables(engine_cls: type) -> None:
    log = run_script(engine_cls(), tables_wasm())
    assert [value for value, _ in log] == EXPECTED


def test_engines_agree_on_results_and_instructions() -> None:
    assert run_script(WasmtimeEngine(), tables_wasm()) == run_script(PywasmEngine(), tables_wasm())


def test_rebuild_inside_a_transaction_keeps_the_journal() -> None:
    """A grown table is undone by re-instantiating; an open transaction still rolls back."""
    eng = WasmtimeEngine()
    inst = eng.instantiate(eng.compile(tables_wasm()), 0)

    inst.begin()
    a = message_api()
    inst.run("canister_update grow", (), a, 10**9)
    assert reply_value(a) == 1830
    b = message_api()
    inst.run("canister_query get", (), b, 10**9)  # same transaction, fresh tables
    assert reply_value(b) == INITIAL
    c = message_api()
    inst.run("canister_query mem16", (), c, 10**9)
    assert reply_value(c) == 7
    inst.rollback()  # the heap write of `grow` is undone although the instance was rebuilt
    inst.begin()
    d = message_api()
    inst.run("canister_query mem16", (), d, 10**9)
    inst.rollback()
    assert reply_value(d) == 0


def test_snapshot_restore_needs_no_tables() -> None:
    """Tables are not canister state: a restored instance answers as the original."""
    eng = WasmtimeEngine()
    mod = eng.compile(tables_wasm())
    inst = eng.instantiate(mod, 0)
    for export in ("canister_update set", "canister_update grow"):
        inst.begin()
        inst.run(export, (), message_api(), 10**9)
        inst.commit()
    fresh = eng.instantiate(mod, 0)
    fresh.restore(inst.snapshot())
    for i in (inst, fresh):
        a = message_api()
        i.begin()
        i.run("canister_query get", (), a, 10**9)
        i.rollback()
        assert reply_value(a) == INITIAL


def test_modules_without_table_mutation_get_no_table_code(wat_counter: bytes) -> None:
    _, plain = prepare_module(
        wat_counter, track_dirty_pages=True, max_wasm32=1 << 30, max_wasm64=1 << 30
    )
    _, mutating = prepare_module(
        tables_wasm(), track_dirty_pages=True, max_wasm32=1 << 30, max_wasm64=1 << 30
    )
    assert not plain.parsed.has_table_mutation and b"__icp_tables" not in plain.wasm
    assert mutating.parsed.has_table_mutation and b"__icp_tables" in mutating.wasm
    eng = WasmtimeEngine()
    assert eng.instantiate(eng.compile(wat_counter), 0)._flag_addr == 0
    assert eng.instantiate(eng.compile(tables_wasm()), 0)._flag_addr != 0


def test_through_the_executor(harness: Harness) -> None:
    cid = harness.deploy(tables_wasm())

    def get() -> int:
        rep = harness.query(cid, "get")
        assert isinstance(rep, Reply), rep
        return int.from_bytes(rep.data, "little")

    assert get() == INITIAL
    assert not isinstance(harness.update(cid, "set_trap"), Reply)
    assert get() == INITIAL
    assert not isinstance(harness.update(cid, "grow_trap"), Reply)
    assert get() == INITIAL
    rep = harness.update(cid, "set")
    assert isinstance(rep, Reply) and int.from_bytes(rep.data, "little") == 3430
    assert get() == INITIAL
    rep = harness.query(cid, "set_q")
    assert isinstance(rep, Reply) and int.from_bytes(rep.data, "little") == 3430
    assert get() == INITIAL

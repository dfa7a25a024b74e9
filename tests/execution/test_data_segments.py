"""Passive data segments across messages: every execution can read every segment.

The IC instantiates a canister's module afresh for every execution and carries over only
the heap, stable memory and exported globals (dfinity/ic ``rs/embedders/src/
wasm_executor.rs`` ``process``/``WasmStateChanges``), so a ``data.drop`` in one message
(trapped or not, update, query or callback, or ``(start)``) is not seen by the next one;
within one message it is (``memory.init`` of the dropped segment traps).  The bytes a
``memory.init`` copied into the heap persist like any heap write.  Both engines must agree
on results and instruction counts.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

from icp.execution.engine import prepare_module
from icp.execution.errors import TrapKind
from icp.execution.pywasm_engine import PywasmEngine
from icp.execution.system_api import Context, Reply
from icp.execution.wasm_binary import decompress_module, parse_module
from icp.execution.wasmtime_engine import WasmtimeEngine
from tests.execution.conftest import Harness
from tests.execution.messages import Step, message_api, reply_value, run_steps

SEGMENTS_WAT = r"""
(module
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (memory 1)
  (table 1 funcref)
  (elem (i32.const 0) func $cb)
  (global $g (mut i32) (i32.const 0))
  (data $p "\2a\00\00\00")                  ;; passive: 42
  (data $q "\07\00\00\00")                  ;; passive: 7, never dropped
  (data $a (i32.const 64) "\05\00\00\00")   ;; active: dropped by instantiation
  (func $out (param i32)
    (i32.store (i32.const 0) (local.get 0))
    (call $append (i32.const 0) (i32.const 4))
    (call $reply))
  ;; copy $p to 16 and answer what is there
  (func $init16 (memory.init $p (i32.const 16) (i32.const 0) (i32.const 4)))
  (func (export "canister_update init") (call $init16) (call $out (i32.load (i32.const 16))))
  (func (export "canister_update drop") (data.drop $p) (call $out (i32.const 0)))
  (func (export "canister_update drop_init") (data.drop $p) (call $init16))
  (func (export "canister_update init_drop")
    (call $init16) (data.drop $p) (call $out (i32.load (i32.const 16))))
  (func (export "canister_update drop_trap") (data.drop $p) unreachable)
  (func (export "canister_update drop_g")
    (data.drop $p) (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (call $out (global.get $g)))
  (func (export "canister_update drop_empty")  ;; 0 bytes from offset 0: fine even dropped
    (data.drop $p) (memory.init $p (i32.const 16) (i32.const 0) (i32.const 0))
    (call $out (i32.const 0)))
  (func (export "canister_update drop_empty_1")  ;; 0 bytes from offset 1 of a dropped one
    (data.drop $p) (memory.init $p (i32.const 16) (i32.const 1) (i32.const 0)))
  (func (export "canister_update drop_active")  ;; dropping an active segment is allowed
    (data.drop $a) (memory.init $a (i32.const 16) (i32.const 0) (i32.const 0))
    (call $out (i32.load (i32.const 64))))
  (func (export "canister_update init_q_seg")
    (memory.init $q (i32.const 20) (i32.const 0) (i32.const 4))
    (call $out (i32.load (i32.const 20))))
  (func (export "canister_update clear")
    (i32.store (i32.const 16) (i32.const 0)) (i32.store (i32.const 32) (i32.const 0))
    (call $out (i32.const 0)))
  (func (export "canister_query drop_q") (data.drop $p) (call $out (i32.const 0)))
  (func (export "canister_query drop_init_q") (data.drop $p) (call $init16))
  (func (export "canister_query init_q")
    (memory.init $p (i32.const 32) (i32.const 0) (i32.const 4))
    (call $out (i32.load (i32.const 32))))
  (func (export "canister_query mem16") (call $out (i32.load (i32.const 16))))
  (func (export "canister_query g") (call $out (global.get $g)))
  ;; callback at table index 0: drop, then copy $p to 48 (traps: dropped in this execution)
  (func $cb (param i32)
    (if (local.get 0) (then (data.drop $p)))
    (memory.init $p (i32.const 48) (i32.const 0) (i32.const 4)))
  (func (export "canister_query mem48") (call $out (i32.load (i32.const 48))))
)
"""

# (context, export or callback (index, env), commit/rollback); expected result per step
SCRIPT: list[tuple[Context, str | tuple[int, int], str]] = [
    (Context.U, "canister_update init", "commit"),
    (Context.U, "canister_update drop", "commit"),
    (Context.U, "canister_update init", "commit"),  # dropped by the previous message: back
    (Context.U, "canister_update clear", "commit"),
    (Context.U, "canister_update drop_init", "commit"),  # dropped within the message: trap
    (Context.NRQ, "canister_query mem16", "commit"),  # ...so nothing was copied
    (Context.U, "canister_update init", "commit"),
    (Context.U, "canister_update drop_trap", "commit"),  # trapped: its drop is undone too
    (Context.U, "canister_update clear", "commit"),
    (Context.U, "canister_update init", "commit"),
    (Context.NRQ, "canister_query mem16", "commit"),  # the heap written by `init` persists
    (Context.U, "canister_update init_drop", "commit"),  # copy, then drop: fine
    (Context.U, "canister_update init", "commit"),
    (Context.NRQ, "canister_query drop_q", "rollback"),  # a query's drop
    (Context.NRQ, "canister_query init_q", "rollback"),  # ...is not seen by the next query
    (Context.NRQ, "canister_query drop_init_q", "rollback"),  # but within the query it is
    (Context.NRQ, "canister_query init_q", "rollback"),
    (Context.U, "canister_update drop_g", "commit"),  # globals persist, segments come back
    (Context.U, "canister_update drop_g", "commit"),
    (Context.NRQ, "canister_query g", "commit"),
    (Context.U, "canister_update drop_empty", "commit"),
    (Context.U, "canister_update drop_empty_1", "commit"),  # out of bounds of 0 bytes: trap
    (Context.U, "canister_update drop_active", "commit"),
    (Context.U, "canister_update init_q_seg", "commit"),
    (Context.U, (0, 1), "commit"),  # callback drops then reads: trap
    (Context.NRQ, "canister_query mem48", "commit"),
    (Context.U, "canister_update drop", "commit"),
    (Context.U, (0, 0), "commit"),  # callback after a dropping message reads the segment
    (Context.NRQ, "canister_query mem48", "commit"),
    (Context.U, "canister_update init", "commit"),
]
EXPECTED: list[object] = [
    42, 0, 42, 0, "trap", 0, 42, "trap", 0, 42, 42, 42, 42, 0, 42, "trap", 42, 1, 2, 2, 0,
    "trap", 5, 7, "trap", 0, 0, "ok", 42, 42,
]  # fmt: skip


def segments_wasm() -> bytes:
    """The data-segment test module (wasm32)."""
    return wasmtime.wat2wasm(SEGMENTS_WAT)


def run_script(engine: object, steps: list[Step]) -> list[tuple[object, int]]:
    """Run ``steps`` on a fresh instance of the test module."""
    inst = engine.instantiate(engine.compile(segments_wasm()), 0)  # type: ignore[attr-defined]
    return run_steps(inst, steps, trap_kind=TrapKind.TRAP)


@pytest.mark.parametrize("engine_cls", [WasmtimeEngine, PywasmEngine])
def test_every_message_has_every_data_segment(engine_cls: type) -> None:
    log = run_script(engine_cls(), SCRIPT)
    assert [value for value, _ in log] == EXPECTED


def test_engines_agree_on_results_and_instructions() -> None:
    assert run_script(WasmtimeEngine(), SCRIPT) == run_script(PywasmEngine(), SCRIPT)


STEPS: list[Step] = [
    (Context.U, "canister_update init", "commit"),
    (Context.U, "canister_update drop", "commit"),
    (Context.U, "canister_update drop_init", "commit"),
    (Context.U, "canister_update init_drop", "commit"),
    (Context.U, "canister_update drop_trap", "commit"),
    (Context.U, "canister_update drop_g", "commit"),
    (Context.U, "canister_update clear", "commit"),
    (Context.NRQ, "canister_query drop_q", "rollback"),
    (Context.NRQ, "canister_query init_q", "rollback"),
    (Context.NRQ, "canister_query mem16", "commit"),
    (Context.U, (0, 0), "commit"),
    (Context.U, (0, 1), "commit"),
]
_RESULT = {  # what each step yields on the IC, whatever ran before (heap aside)
    "canister_update init": 42,
    "canister_update drop": 0,
    "canister_update drop_init": "trap",
    "canister_update init_drop": 42,
    "canister_update drop_trap": "trap",
    "canister_update clear": 0,
    "canister_query drop_q": 0,
    "canister_query init_q": 42,
    (0, 0): "ok",
    (0, 1): "trap",
}


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sampled_from(STEPS), min_size=1, max_size=12))
def test_any_message_order_gives_ic_results_on_both_engines(steps: list[Step]) -> None:
    """A message's result depends on the heap and globals only, never on earlier drops."""
    fast = run_script(WasmtimeEngine(), steps)
    assert fast == run_script(PywasmEngine(), steps)
    for (_, entry, _), (value, _) in zip(steps, fast, strict=True):
        if entry in _RESULT:
            assert value == _RESULT[entry], entry


def test_only_a_message_that_dropped_costs_a_fresh_instance() -> None:
    """wasmtime re-instantiates before the message after a drop, and only then."""
    eng = WasmtimeEngine()
    inst = eng.instantiate(eng.compile(segments_wasm()), 0)
    assert inst._flag_addr != 0
    first = inst._instance
    run_steps(inst, [(Context.U, "canister_update init", "commit")] * 3)
    assert inst._instance is first
    run_steps(inst, [(Context.U, "canister_update drop", "commit")])
    assert inst._instance is first  # the drop itself runs in the old instance
    run_steps(inst, [(Context.U, "canister_update init", "commit")])
    second = inst._instance
    assert second is not first
    run_steps(inst, [(Context.U, "canister_update init", "commit")] * 2)
    assert inst._instance is second


def test_rebuild_inside_a_transaction_keeps_the_journal() -> None:
    """A restore by re-instantiation within one transaction still rolls back its writes."""
    eng = WasmtimeEngine()
    inst = eng.instantiate(eng.compile(segments_wasm()), 0)
    inst.begin()
    a = message_api()
    inst.run("canister_update init_drop", (), a, 10**9)
    assert reply_value(a) == 42
    b = message_api()
    inst.run("canister_update init", (), b, 10**9)  # same transaction, segment back
    assert reply_value(b) == 42
    inst.rollback()  # the heap write of both is undone although the instance was rebuilt
    assert run_steps(inst, [(Context.NRQ, "canister_query mem16", "commit")])[0][0] == 0


def test_pywasm_instances_of_one_module_each_get_the_data() -> None:
    """Active segments are written and passive ones kept for every instance (pywasm clears
    the bytes of a dropped segment in place, also those of the cached module)."""
    eng = PywasmEngine()
    mod = eng.compile(segments_wasm())
    for _ in range(2):
        inst = eng.instantiate(mod, 0)
        assert inst.read(64, 4) == (5).to_bytes(4, "little")
        log = run_steps(
            inst,
            [
                (Context.U, "canister_update init_drop", "commit"),
                (Context.U, "canister_update drop_init", "commit"),
            ],
        )
        assert [v for v, _ in log] == [42, "trap"]


def _prepared(wasm: bytes) -> tuple[bool, bytes]:
    _, im = prepare_module(wasm, track_dirty_pages=True, max_wasm32=1 << 30, max_wasm64=1 << 30)
    return im.parsed.has_data_drop, im.wasm


def test_modules_whose_drops_cannot_be_seen_get_no_code(wat_counter: bytes) -> None:
    drop_only = wasmtime.wat2wasm(
        '(module (memory 1) (data $p "x") (func (export "canister_update f") (data.drop $p)))'
    )
    init_only = wasmtime.wat2wasm(
        '(module (memory 1) (data $p "x")'
        ' (func (export "canister_update f") (memory.init $p (i32.const 0) (i32.const 0)'
        " (i32.const 1))))"
    )
    for wasm in (wat_counter, drop_only, init_only):
        has, instrumented = _prepared(wasm)
        assert not has and b"__icp_tables" not in instrumented
    has, instrumented = _prepared(segments_wasm())
    assert has and b"__icp_tables" in instrumented
    assert b"__icp_t0" not in instrumented  # no table code: tables are not changed


def test_motoko_output_reads_segments_but_never_drops_them(
    motoko: Callable[[str], bytes],
) -> None:
    """moc emits passive data segments read by ``memory.init`` and no ``data.drop``, so
    Motoko canisters pay nothing: no flag, and wasmtime never re-instantiates."""
    wasm = decompress_module(motoko("counter"))
    parsed = parse_module(wasm)
    assert not parsed.has_data_drop and not parsed.has_table_mutation
    assert b"__icp_tables" not in _prepared(wasm)[1]
    eng = WasmtimeEngine()
    assert eng.instantiate(eng.compile(wasm), 0)._flag_addr == 0


START_WAT = r"""
(module
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (memory 1)
  (data $p "\2a\00\00\00")
  (func $start  ;; copy the segment to 16 and drop it, as a one-time initialiser would
    (memory.init $p (i32.const 16) (i32.const 0) (i32.const 4)) (data.drop $p))
  (start $start)
  (func (export "canister_init")
    (memory.init $p (i32.const 20) (i32.const 0) (i32.const 4)))
  (func (export "canister_update init")
    (memory.init $p (i32.const 24) (i32.const 0) (i32.const 4))
    (i32.store (i32.const 0)
      (i32.add (i32.load (i32.const 16))
        (i32.add (i32.load (i32.const 20)) (i32.load (i32.const 24)))))
    (call $append (i32.const 0) (i32.const 4))
    (call $reply))
  (func (export "canister_update drop") (data.drop $p) (call $reply))
)
"""


def test_through_the_executor(harness: Harness) -> None:
    """``(start)`` drops the segment; ``canister_init`` and later messages still have it."""
    cid = harness.deploy(wasmtime.wat2wasm(START_WAT))  # traps if canister_init lacked it

    def total() -> int:
        rep = harness.update(cid, "init")
        assert isinstance(rep, Reply), rep
        return int.from_bytes(rep.data, "little")

    assert total() == 3 * 42  # written by (start), canister_init and this message
    assert isinstance(harness.update(cid, "drop"), Reply)
    assert total() == 3 * 42

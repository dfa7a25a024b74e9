"""Differential test: the same wasm32 module on wasmtime and pywasm."""

from __future__ import annotations

import pytest

from icp.execution.cycles import ExecutionLimits, FeeSchedule
from icp.execution.errors import InvalidWasm, WasmTrap
from icp.execution.pywasm_engine import PywasmEngine
from icp.execution.stable_memory import StableMemory
from icp.execution.system_api import CanisterView, Context, ExecutionInput, SystemApi
from icp.execution.wasmtime_engine import WasmtimeEngine

VIEW = CanisterView(
    canister_id=b"\x00" * 8 + b"\x01\x01", subnet_id=b"\x01", controllers=(b"\x04",), status=1,
    version=0, balance=10**15, freezing_limit=0, time=1_700_000_000_000_000_000, global_timer=0,
    certified_data=b"",
)  # fmt: skip
SCRIPT = [
    (Context.S, "__icp_start", b""),
    (Context.I, "canister_init", b""),
    (Context.U, "canister_update inc", b""),
    (Context.U, "canister_update work", (300).to_bytes(4, "little")),
    (Context.U, "canister_update inc_then_trap", b""),
    (Context.U, "canister_update grow_then_trap", b""),
    (Context.U, "canister_update stable_put", b"abcdefgh"),
    (Context.NRQ, "canister_query stable_get", b""),
    (Context.U, "canister_update reply_twice", b""),
    (Context.NRQ, "canister_query reply_in_init_ctx_misuse", b""),
    (Context.U, "canister_update inc", b""),
    (Context.NRQ, "canister_query nan", b""),
]


def run_script(engine: object, wasm: bytes) -> tuple[list[tuple[object, ...]], object, bytes]:
    mod = engine.compile(wasm)  # type: ignore[attr-defined]
    inst = engine.instantiate(mod, 0)  # type: ignore[attr-defined]
    stable = StableMemory()
    log: list[tuple[object, ...]] = []
    for ctx, export, arg in SCRIPT:
        if not inst.has_export(export) and export != "__icp_start":
            continue
        api = SystemApi(
            ExecutionInput(ctx, caller=b"\x04", arg=arg),
            VIEW,
            stable,
            ExecutionLimits(),
            FeeSchedule(),
            10**9,
        )
        inst.begin()
        stable.begin()
        try:
            used = inst.run(export, (), api, 10**9)
        except WasmTrap as trap:
            used = api.instructions_used()
            inst.rollback()
            stable.rollback()
            log.append((export, "trap", trap.kind, used))
            continue
        inst.commit()
        stable.commit()
        log.append((export, "ok", used, api.response))
    return log, inst.snapshot(), stable.digest()


def test_same_results_instructions_and_state(wat_counter: bytes) -> None:
    log_w, snap_w, st_w = run_script(WasmtimeEngine(), wat_counter)
    log_p, snap_p, st_p = run_script(PywasmEngine(), wat_counter)
    assert log_w == log_p
    assert snap_w.digest() == snap_p.digest()
    assert st_w == st_p
    assert any(entry[1] == "trap" for entry in log_w) and any(entry[1] == "ok" for entry in log_w)


def test_nan_results_are_canonical(wat_counter: bytes) -> None:
    log, _, _ = run_script(WasmtimeEngine(), wat_counter)
    nan = next(entry for entry in log if entry[0] == "canister_query nan")
    data = nan[3].data  # type: ignore[union-attr]
    assert data[:4] == (0x7FC00000).to_bytes(4, "little")
    assert data[4:] == (0x7FF8000000000000).to_bytes(8, "little")


def test_pywasm_rejects_memory64(motoko) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidWasm, match="wasm32"):
        PywasmEngine().compile(motoko("counter"))


def test_pywasm_instruction_limit(wat_counter: bytes) -> None:
    eng = PywasmEngine()
    inst = eng.instantiate(eng.compile(wat_counter), 0)
    api = SystemApi(
        ExecutionInput(Context.U), VIEW, StableMemory(), ExecutionLimits(), FeeSchedule(), 5_000
    )
    inst.begin()
    with pytest.raises(WasmTrap, match="exceeded the limit of 5000"):
        inst.run("canister_update spin", (), api, 5_000)
    inst.rollback()

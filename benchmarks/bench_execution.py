"""Execution benchmarks: metered vs bare wasmtime, per-message overhead, heap-size flatness.

Prints ratios against references measured in the same run:
1. instructions/s of the WAT ``work`` loop through the executor (instrumented, metered,
   journaled) vs the same original module run bare in wasmtime (ratio; goal >= 0.8);
2. per-message overhead of a Motoko counter ``inc`` through the executor vs a raw wasmtime
   call of the same instrumented export (ratio);
3. per-message cost of an update on a canister with a 1 MiB heap vs a 1 GiB heap (goal <= 2x);
4. pywasm vs wasmtime on the same wasm32 message.
"""

from __future__ import annotations

import time
from pathlib import Path

import wasmtime

from icp.build import compile_motoko
from icp.execution.cycles import ExecutionLimits, FeeSchedule
from icp.execution.executor import (
    ExecutionEnvironment,
    IngressMessage,
    execute_message,
    install_code,
    new_canister,
)
from icp.execution.pywasm_engine import PywasmEngine
from icp.execution.stable_memory import StableMemory
from icp.execution.system_api import CanisterView, Context, ExecutionInput, SystemApi
from icp.execution.wasmtime_engine import WasmtimeEngine

ROOT = Path(__file__).resolve().parent.parent
WAT = wasmtime.wat2wasm((ROOT / "tests/canisters/wat/counter.wat").read_text())
VIEW = CanisterView(b"\x00" * 8 + b"\x01\x01", b"\x01", (b"\x04",), 1, 0, 10**15, 0, 1, 0, b"")


def _api(ctx: Context, arg: bytes = b"", limit: int = 10**11) -> SystemApi:
    return SystemApi(
        ExecutionInput(ctx, arg=arg), VIEW, StableMemory(), ExecutionLimits(), FeeSchedule(), limit
    )


def bench_instructions_per_second() -> None:
    n = 20_000_000
    arg = n.to_bytes(4, "little")
    eng = WasmtimeEngine()
    inst = eng.instantiate(eng.compile(WAT), 0)
    api = _api(Context.U, arg)
    inst.begin()
    t = time.perf_counter()
    used = inst.run("canister_update work", (), api, 10**11)
    metered = time.perf_counter() - t
    inst.commit()
    # bare: original module, host functions doing the minimum
    store = wasmtime.Store(eng.engine)
    mod = wasmtime.Module(eng.engine, WAT)
    mem: list[wasmtime.Memory] = []

    def host(name: str, ft: wasmtime.FuncType) -> wasmtime.Func:
        def fn(*a: int) -> int | None:
            if name == "msg_arg_data_copy":
                mem[0].write(store, arg, a[0])
            return 0 if ft.results else None

        return wasmtime.Func(store, ft, fn)

    imports = [host(i.name or "", i.type) for i in mod.imports]  # type: ignore[arg-type]
    bare = wasmtime.Instance(store, mod, imports)
    mem.append(
        bare.exports(store)["memory"]
        if "memory" in bare.exports(store)
        else _first_mem(bare, store)
    )
    f = bare.exports(store)["canister_update work"]
    t = time.perf_counter()
    f(store)  # type: ignore[operator]
    raw = time.perf_counter() - t
    print(
        f"work loop (store-heavy): {used:,} instructions, "
        f"metered {used / metered / 1e9:.2f} G instr/s, "
        f"bare {used / raw / 1e9:.2f} G instr/s, ratio metered/bare speed = {raw / metered:.2f}"
    )


def _first_mem(inst: wasmtime.Instance, store: wasmtime.Store) -> wasmtime.Memory:
    for _name, ext in inst.exports(store).items():
        if isinstance(ext, wasmtime.Memory):
            return ext
    # the WAT module does not export memory: export via the instrumented copy instead
    raise SystemExit("bare module has no exported memory")


def _leb(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def bench_motoko_compute() -> None:
    """Motoko ``work(n)`` through the executor vs the original module bare in wasmtime."""
    wasm = compile_motoko(ROOT / "tests/canisters/counter")
    arg = b"DIDL\x00\x01\x7d" + _leb(200_000)
    env = ExecutionEnvironment(engine=WasmtimeEngine())
    st = install_code(
        new_canister(b"\x00" * 8 + b"\x01\x01", (b"\x04",), 10**18, env.limits),
        "install", wasm, b"DIDL\x00\x00", b"\x04", 1, env,
    )  # fmt: skip
    msg = IngressMessage(b"m", b"\x04", st.canister_id, "work", arg)
    c0 = st.cycles
    t = time.perf_counter()
    st, _outs = execute_message(st, msg, 1, env)
    metered = time.perf_counter() - t
    instructions = c0 - st.cycles - 5_000_000 - 1_200_000  # 1 cycle per instruction
    store = wasmtime.Store(WasmtimeEngine().engine)
    mod = wasmtime.Module(store.engine, wasm)
    state = {"arg": b"DIDL\x00\x00"}
    mem: list[wasmtime.Memory] = []

    def stub(name: str, ft: wasmtime.FuncType) -> wasmtime.Func:
        def fn(*a: int) -> int | None:
            if name == "msg_arg_data_size":
                return len(state["arg"])
            if name == "msg_arg_data_copy":
                mem[0].write(store, state["arg"][a[1] : a[1] + a[2]], a[0])
            return 0 if ft.results else None

        return wasmtime.Func(store, ft, fn)

    bare_inst = wasmtime.Instance(
        store,
        mod,
        [stub(i.name or "", i.type) for i in mod.imports],  # type: ignore[arg-type]
    )
    ex = bare_inst.exports(store)
    mem.append(ex["mem"])  # type: ignore[arg-type]
    ex["canister_init"](store)  # type: ignore[operator]
    state["arg"] = arg
    t = time.perf_counter()
    ex["canister_update work"](store)  # type: ignore[operator]
    bare = time.perf_counter() - t
    print(
        f"motoko work(200000): {instructions:,} instructions; executor {metered * 1e3:.0f} ms, "
        f"bare wasmtime {bare * 1e3:.0f} ms, speed ratio {bare / metered:.2f} (goal >= 0.8)"
    )


def bench_per_message_overhead() -> None:
    env = ExecutionEnvironment(engine=WasmtimeEngine())
    wasm = compile_motoko(ROOT / "tests/canisters/counter")
    st = install_code(
        new_canister(b"\x00" * 8 + b"\x01\x01", (b"\x04",), 10**16, env.limits),
        "install",
        wasm,
        b"DIDL\x00\x00",
        b"\x04",
        1,
        env,
    )
    msg = IngressMessage(b"m", b"\x04", st.canister_id, "inc", b"DIDL\x00\x00")
    for _ in range(50):
        st, _ = execute_message(st, msg, 1, env)
    k = 500
    t = time.perf_counter()
    for _ in range(k):
        st, _ = execute_message(st, msg, 1, env)
    full = (time.perf_counter() - t) / k
    inst = st.runtime.instance  # type: ignore[union-attr]
    t = time.perf_counter()
    for _ in range(k):
        api = _api(Context.U, b"DIDL\x00\x00")
        api.memory, api.counter = inst, inst
        inst._binding.api = api
        inst._counter.set_value(inst._store, 10**10)
        inst._ex["canister_update inc"](inst._store)
        inst._clear_marks(inst._dirty_list())
    raw = (time.perf_counter() - t) / k
    print(
        f"motoko counter inc: executor {full * 1e6:.0f} us/msg, "
        f"raw wasmtime call {raw * 1e6:.0f} us, "
        f"ratio {full / raw:.1f}x"
    )


def bench_heap_size_flatness() -> None:
    env = ExecutionEnvironment(engine=WasmtimeEngine())
    results = {}
    for label, pages in (("1 MiB", 16), ("1 GiB", 16384)):
        st = new_canister(b"\x00" * 8 + b"\x01\x01", (b"\x04",), 10**16, env.limits)
        st = install_code(st, "install", bytes(WAT), b"", b"\x04", 1, env)
        inst = st.runtime.instance  # type: ignore[union-attr]
        inst._mem.grow(inst._store, pages - 1)
        inst.write(inst.size() - 8, b"\x01" * 8)  # touch the end of the heap
        msg = IngressMessage(b"m", b"\x04", st.canister_id, "inc", b"")
        for _ in range(20):
            st, _ = execute_message(st, msg, 1, env)
        k = 2000
        t = time.perf_counter()
        for _ in range(k):
            st, _ = execute_message(st, msg, 1, env)
        results[label] = (time.perf_counter() - t) / k
    print(
        f"update on 1 MiB heap {results['1 MiB'] * 1e6:.0f} us, "
        f"on 1 GiB heap {results['1 GiB'] * 1e6:.0f} us, "
        f"ratio {results['1 GiB'] / results['1 MiB']:.2f}x"
    )


def bench_pywasm_vs_wasmtime() -> None:
    arg = (2000).to_bytes(4, "little")
    times = {}
    for eng in (WasmtimeEngine(), PywasmEngine()):
        inst = eng.instantiate(eng.compile(WAT), 0)
        inst.begin()
        t = time.perf_counter()
        used = inst.run("canister_update work", (), _api(Context.U, arg), 10**11)
        times[eng.name] = (time.perf_counter() - t, used)
        inst.commit()
    (tw, uw), (tp, up) = times["wasmtime"], times["pywasm"]
    assert uw == up
    print(
        f"pywasm vs wasmtime on {uw:,} instructions: {tp * 1e3:.1f} ms vs {tw * 1e3:.3f} ms, "
        f"ratio {tp / tw:.0f}x"
    )


if __name__ == "__main__":
    bench_instructions_per_second()
    bench_motoko_compute()
    bench_per_message_overhead()
    bench_heap_size_flatness()
    bench_pywasm_vs_wasmtime()

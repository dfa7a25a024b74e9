"""Execution benchmarks: metered vs bare wasmtime, per-message overhead, heap-size flatness.

Prints ratios against references measured in the same run:
1. instructions/s of compute through the executor (instrumented, metered, journaled) vs the
   same original module run bare in wasmtime (speed ratio; goal >= 0.8), for three workloads
   that behave differently and are labelled as such:
   a. a hand-written WAT loop that stores to memory every iteration (store-heavy),
   b. a Motoko ``Nat64`` arithmetic loop (compute-bound: no allocation, few stores),
   c. the Motoko ``Nat`` loop of the counter canister (allocation-heavy: the incremental GC
      rewrites thousands of heap pages per call, each of which is journaled);
   d. the same with a larger argument as the first call after install (the heap grows);
2. per-message overhead: a Motoko ``inc`` update and a ``get`` query through the executor vs
   a bare wasmtime call of the original ``inc`` export (stub host functions), and the absolute
   microseconds per ``execute_query``;
3. per-message cost of an update on a canister with a 1 MiB heap vs a 1 GiB heap (goal <= 2x);
4. pywasm vs wasmtime on the same wasm32 message.

Times are CPU time of this thread (``time.thread_time``), minimum over repetitions, so other
processes on a shared machine disturb the ratios as little as possible.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

from icp.build import compile_motoko
from icp.execution.canister import CanisterState
from icp.execution.cycles import ExecutionLimits, FeeSchedule
from icp.execution.executor import (
    ExecutionEnvironment,
    IngressMessage,
    execute_message,
    execute_query,
    install_code,
)
from icp.execution.executor import (
    new_canister as _new_canister,
)
from icp.execution.pywasm_engine import PywasmEngine
from icp.execution.stable_memory import StableMemory
from icp.execution.system_api import (
    CanisterView,
    Context,
    ExecutionInput,
    Reply,
    SystemApi,
)
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.leb128 import encode_unsigned

ROOT = Path(__file__).resolve().parent.parent
WAT = wasmtime.wat2wasm((ROOT / "tests/canisters/wat/counter.wat").read_text())
VIEW = CanisterView(b"\x00" * 8 + b"\x01\x01", b"\x01", (b"\x04",), 1, 0, 10**15, 0, 1, 0, b"")
CID = b"\x00" * 8 + b"\x01\x01"
USER = b"\x04"
EMPTY = b"DIDL\x00\x00"

COMPUTE_MO = """
persistent actor {
  var count : Nat = 0;
  public func inc() : async Nat { count += 1; count };
  public query func get() : async Nat { count };
  public func compute(n : Nat64) : async Nat64 {
    var acc : Nat64 = 0; var i : Nat64 = 0;
    while (i < n) { acc := (acc *% 31 +% i *% i) % 1_000_003; i += 1 };
    acc
  };
};
"""
"""A compute-bound Motoko method: ``Nat64`` locals only, nothing allocated in the loop."""


def _clock() -> float:
    return time.thread_time()


def _best(fn: Callable[[], object], reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t = _clock()
        fn()
        best = min(best, _clock() - t)
    return best


def _best_pair(a: Callable[[], object], b: Callable[[], object], reps: int) -> tuple[float, float]:
    """Minimum times of ``a`` and ``b`` run alternately (load changes hit both alike)."""
    ta = tb = float("inf")
    for _ in range(reps):
        ta = min(ta, _best(a, 1))
        tb = min(tb, _best(b, 1))
    return ta, tb


def _api(ctx: Context, arg: bytes = b"", limit: int = 10**11) -> SystemApi:
    return SystemApi(
        ExecutionInput(ctx, arg=arg), VIEW, StableMemory(), ExecutionLimits(), FeeSchedule(), limit
    )


class Bare:
    """The original module in a plain wasmtime instance; host functions do the minimum."""

    def __init__(self, wasm: bytes, engine: wasmtime.Engine) -> None:
        self.store = wasmtime.Store(engine)
        mod = wasmtime.Module(engine, wasm)
        self.arg = b""
        self.reply = bytearray()
        self._mem: wasmtime.Memory | None = None
        imports = [self._stub(i.name or "", i.type) for i in mod.imports]  # type: ignore[arg-type]
        self.inst = wasmtime.Instance(self.store, mod, imports)
        self.ex = self.inst.exports(self.store)
        for ext in self.ex.values():
            if isinstance(ext, wasmtime.Memory):
                self._mem = ext
                break

    def _stub(self, name: str, ft: wasmtime.FuncType) -> wasmtime.Func:
        def fn(*a: int) -> int | None:
            if name == "msg_arg_data_size":
                return len(self.arg)
            if name == "msg_arg_data_copy":
                assert self._mem is not None
                self._mem.write(self.store, self.arg[a[1] : a[1] + a[2]], a[0])
            elif name == "msg_reply_data_append":
                assert self._mem is not None
                self.reply += self._mem.read(self.store, a[0], a[0] + a[1])
            return 0 if ft.results else None

        return wasmtime.Func(self.store, ft, fn)

    def call(self, export: str, arg: bytes) -> bytes:
        self.arg = arg
        self.reply = bytearray()
        self.ex[export](self.store)  # type: ignore[operator]
        return bytes(self.reply)


def _installed(wasm: bytes, env: ExecutionEnvironment) -> CanisterState:
    st = _new_canister(CID, (USER,), 10**18, env.limits)
    return install_code(st, "install", wasm, EMPTY, USER, 1, env)


def bench_wat_store_loop(reps: int) -> None:
    """1a: the WAT ``work`` loop (one i64.store per iteration) metered vs bare."""
    n = 5_000_000
    arg = n.to_bytes(4, "little")
    eng = WasmtimeEngine()
    inst = eng.instantiate(eng.compile(WAT), 0)
    used = 0

    def metered() -> None:
        nonlocal used
        inst.begin()
        used = inst.run("canister_update work", (), _api(Context.U, arg), 10**11)
        inst.commit()

    bare = Bare(WAT, eng.engine)
    tm, tb = _best_pair(metered, lambda: bare.call("canister_update work", arg), reps)
    print(
        f"1a WAT loop, store-heavy: {used:,} instr, metered {used / tm / 1e9:.2f} G instr/s, "
        f"bare {used / tb / 1e9:.2f} G instr/s, speed ratio {tb / tm:.2f} (goal >= 0.8)"
    )


def _motoko_compute(label: str, wasm: bytes, method: str, arg: bytes, reps: int) -> None:
    env = ExecutionEnvironment(engine=WasmtimeEngine())
    st = _installed(wasm, env)
    msg = IngressMessage(b"m", USER, CID, method, arg)
    inst = st.runtime.instance  # type: ignore[union-attr]
    used: list[int] = []
    dirty: list[int] = []
    run = inst.run

    def counting_run(export: str, args: tuple[int, ...], api: SystemApi, limit: int) -> int:
        n = run(export, args, api, limit)
        used.append(n)
        dirty.append(len(inst.dirty_pages_in_transaction()))
        return n

    inst.run = counting_run  # type: ignore[method-assign]
    box = [st]
    replies: list[bytes] = []

    def metered() -> None:
        box[0], outs = execute_message(box[0], msg, 1, env)
        replies.append(outs[0].response.data)  # type: ignore[union-attr]

    bare = Bare(wasm, env.engine.engine)  # type: ignore[attr-defined]
    bare.call("canister_init", EMPTY)
    tm, tb = _best_pair(
        metered, lambda: replies.append(bare.call(f"canister_update {method}", arg)), reps
    )
    assert len(set(replies)) == 1, "executor and bare wasmtime disagree"
    print(
        f"{label}: {used[-1]:,} instr, {dirty[-1]:,} heap pages written per call; "
        f"executor {tm * 1e3:.0f} ms, bare wasmtime {tb * 1e3:.0f} ms, "
        f"speed ratio {tb / tm:.2f} (goal >= 0.8)"
    )


def bench_motoko_compute(reps: int, compute_wasm: bytes) -> None:
    """1b: compute-bound Motoko (``Nat64`` loop)."""
    n = 3_000_000
    arg = b"DIDL\x00\x01\x78" + n.to_bytes(8, "little")
    _motoko_compute("1b Motoko Nat64 loop, compute-bound", compute_wasm, "compute", arg, reps)


def bench_motoko_alloc(reps: int) -> None:
    """1c: allocation-heavy Motoko (counter canister's ``work``: ``Nat`` arithmetic, GC)."""
    wasm = compile_motoko(ROOT / "tests/canisters/counter")
    arg = b"DIDL\x00\x01\x7d" + encode_unsigned(50_000)
    _motoko_compute("1c Motoko Nat loop, allocation-heavy", wasm, "work", arg, reps)


def bench_motoko_first_call(reps: int) -> None:
    """1d: the allocation-heavy call right after install, while the heap grows to ~384 MiB."""
    wasm = compile_motoko(ROOT / "tests/canisters/counter")
    arg = b"DIDL\x00\x01\x7d" + encode_unsigned(200_000)
    tm = tb = float("inf")
    for _ in range(max(2, reps // 2)):
        env = ExecutionEnvironment(engine=WasmtimeEngine())
        st = _installed(wasm, env)
        msg = IngressMessage(b"m", USER, CID, "work", arg)
        tm = min(tm, _best(lambda st=st, msg=msg, env=env: execute_message(st, msg, 1, env), 1))
        bare = Bare(wasm, env.engine.engine)  # type: ignore[attr-defined]
        bare.call("canister_init", EMPTY)
        tb = min(tb, _best(lambda bare=bare: bare.call("canister_update work", arg), 1))
    print(
        f"1d Motoko Nat loop, first call after install (heap grows, fresh pages not copied): "
        f"executor {tm * 1e3:.0f} ms, bare wasmtime {tb * 1e3:.0f} ms, speed ratio {tb / tm:.2f}"
    )


def bench_per_message_overhead(reps: int, compute_wasm: bytes) -> None:
    """2: Motoko ``inc`` update and ``get`` query vs a bare wasmtime call of ``inc``."""
    env = ExecutionEnvironment(engine=WasmtimeEngine())
    st = _installed(compute_wasm, env)
    msg = IngressMessage(b"m", USER, CID, "inc", EMPTY)
    box = [st]
    k = 200

    def updates() -> None:
        for _ in range(k):
            box[0], _outs = execute_message(box[0], msg, 1, env)

    def queries() -> None:
        for _ in range(k):
            r = execute_query(box[0], USER, "get", EMPTY, 1, env)
        assert isinstance(r, Reply)

    bare = Bare(compute_wasm, env.engine.engine)  # type: ignore[attr-defined]
    bare.call("canister_init", EMPTY)

    def bare_updates() -> None:
        for _ in range(k):
            bare.call("canister_update inc", EMPTY)

    updates()
    tu, tbu = (t / k for t in _best_pair(updates, bare_updates, reps))
    tq = _best(queries, reps) / k
    print(
        f"2  Motoko inc update: executor {tu * 1e6:.0f} us/msg, bare wasmtime call "
        f"{tbu * 1e6:.0f} us, ratio {tu / tbu:.1f}x"
    )
    print(
        f"2  Motoko get query: execute_query {tq * 1e6:.0f} us/call ({1 / tq:,.0f}/s), "
        f"ratio {tq / tbu:.1f}x to the bare inc call (a bare Motoko query cannot be repeated "
        "without the rollback being measured)"
    )


def bench_heap_size_flatness(reps: int) -> None:
    """3: an update on a 1 MiB heap vs a 1 GiB heap."""
    env = ExecutionEnvironment(engine=WasmtimeEngine())
    results = {}
    for label, pages in (("1 MiB", 16), ("1 GiB", 16384)):
        st = _installed(bytes(WAT), env)
        inst = st.runtime.instance  # type: ignore[union-attr]
        inst.grow_heap(pages - 1)
        inst.write(inst.size() - 8, b"\x01" * 8)  # touch the end of the heap
        msg = IngressMessage(b"m", USER, CID, "inc", b"")

        def run(box: list[CanisterState] = [st], msg: IngressMessage = msg) -> None:  # noqa: B006
            for _ in range(500):
                box[0], _ = execute_message(box[0], msg, 1, env)

        run()
        results[label] = _best(run, reps) / 500
    print(
        f"3  update on 1 MiB heap {results['1 MiB'] * 1e6:.0f} us, "
        f"on 1 GiB heap {results['1 GiB'] * 1e6:.0f} us, "
        f"ratio {results['1 GiB'] / results['1 MiB']:.2f}x (goal <= 2x)"
    )


def bench_pywasm_vs_wasmtime() -> None:
    """4: the pure-Python reference engine vs wasmtime on one message."""
    arg = (2000).to_bytes(4, "little")
    times = {}
    for eng in (WasmtimeEngine(), PywasmEngine()):
        inst = eng.instantiate(eng.compile(WAT), 0)  # type: ignore[attr-defined]
        inst.begin()
        t = _clock()
        used = inst.run("canister_update work", (), _api(Context.U, arg), 10**11)
        times[eng.name] = (_clock() - t, used)
        inst.commit()
    (tw, uw), (tp, up) = times["wasmtime"], times["pywasm"]
    assert uw == up
    print(
        f"4  pywasm vs wasmtime on {uw:,} instructions: {tp * 1e3:.1f} ms vs {tw * 1e3:.3f} ms, "
        f"ratio {tp / tw:.0f}x"
    )


def _compile_compute() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "Main.mo"
        src.write_text(COMPUTE_MO)
        return compile_motoko(src)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    reps = 2 if args.quick else 7
    compute_wasm = _compile_compute()
    bench_wat_store_loop(reps)
    bench_motoko_compute(reps, compute_wasm)
    bench_motoko_alloc(reps)
    bench_motoko_first_call(reps)
    bench_per_message_overhead(reps, compute_wasm)
    bench_heap_size_flatness(reps)
    bench_pywasm_vs_wasmtime()


if __name__ == "__main__":
    main()

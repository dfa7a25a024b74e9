"""The reference engine: pywasm (pure Python), wasm32 only.

It runs the same instrumented module as wasmtime (without the dirty-page
journal: transactions copy the whole heap, which is fine for a slow reference
engine), so its instruction counts equal wasmtime's by construction.  Used for
differential tests of the engines and the System API.  As on the IC (and in the
wasmtime engine), every execution starts from the module's initial tables and has all
its passive segments: a module whose code can change a table gets its tables and
element segments put back as they were after instantiation before each
``run``/``call_table``, and one that can drop a data segment it reads
(``ParsedModule.has_data_drop``) gets its dropped data segments back.

Spec: interface spec §"Execution" (determinism across replicas).
"""

from __future__ import annotations

import io
from typing import Any

import attrs
import pywasm

from icp.execution.engine import InstanceState, prepare_module
from icp.execution.errors import InvalidWasm, TrapKind, WasmTrap
from icp.execution.system_api import SystemApi
from icp.execution.wasm_binary import F32, I32, I64, PAGE_SIZE, InstrumentedModule, ParsedModule


@attrs.frozen(slots=True)
class PywasmModule:
    """A parsed, instrumented module for pywasm."""

    module_hash: bytes
    instrumented: InstrumentedModule
    desc: Any
    data_inits: tuple[bytes, ...]  # each data segment's bytes (pywasm clears desc's in place)

    @property
    def parsed(self) -> ParsedModule:
        """The parsed original module."""
        return self.instrumented.parsed


class PywasmEngine:
    """Pure-Python engine for wasm32 modules."""

    name = "pywasm"

    def __init__(self, max_wasm32_bytes: int = 4 << 30) -> None:
        self.max_wasm32 = max_wasm32_bytes
        self._cache: dict[bytes, PywasmModule] = {}

    def compile(self, wasm: bytes) -> PywasmModule:
        """Validate and instrument; memory64 modules are rejected."""
        module_hash, inst = prepare_module(
            wasm, track_dirty_pages=False, max_wasm32=self.max_wasm32, max_wasm64=self.max_wasm32
        )
        if inst.parsed.is_memory64:
            raise InvalidWasm("the pywasm engine supports wasm32 modules only")
        cached = self._cache.get(module_hash)
        if cached is not None:
            return cached
        try:
            desc = pywasm.core.ModuleDesc.from_reader(io.BytesIO(inst.wasm))
        except Exception as exc:  # pywasm raises bare exceptions on bad input
            raise InvalidWasm(f"Wasm module failed validation: {exc}") from exc
        mod = PywasmModule(module_hash, inst, desc, tuple(bytes(d.init) for d in desc.data))
        self._cache[module_hash] = mod
        return mod

    def instantiate(self, module: PywasmModule, memory_limit: int) -> PywasmInstance:
        """Create a fresh instance."""
        return PywasmInstance(module, memory_limit if memory_limit > 0 else self.max_wasm32)


_VT = {I32: pywasm.core.ValType.i32, I64: pywasm.core.ValType.i64}


class PywasmInstance:
    """A live pywasm instance with whole-heap-copy transactions."""

    def __init__(self, module: PywasmModule, memory_limit: int) -> None:
        self._module = module
        self._im = module.instrumented
        self._memory_limit = memory_limit
        self._api: SystemApi | None = None
        self._exports = set(self._im.parsed.exported_functions)
        self._saved: tuple[bytes, list[tuple[int, bytes]]] | None = None
        self.dirty_since_checkpoint: set[int] = set()
        rt = pywasm.core.Runtime()
        for _, name, tidx in self._im.parsed.imports:
            ft = self._im.parsed.types[tidx]
            t = pywasm.core.FuncType([_VT[p]() for p in ft.params], [_VT[p]() for p in ft.results])
            rt.imports.setdefault("ic0", {})[name] = rt.allocate_func_host(
                t, self._host(name, ft.results)
            )
        self._rt = rt
        # pywasm's data instances share the description's bytes and drop (clear) them in
        # place, active segments at instantiation: give every instance its own copies
        for seg, init in zip(module.desc.data, module.data_inits, strict=True):
            seg.init = bytearray(init)
        try:
            self._inst = rt.instance(module.desc)
        except WasmTrap:
            raise
        except Exception as exc:
            raise InvalidWasm(f"Wasm module instantiation failed: {exc}") from exc
        self._mem = self._export_mem("__icp_mem")
        self._counter = rt.exported_global(self._inst, "__icp_instr")
        self._globals = [
            (i, rt.exported_global(self._inst, f"__icp_g{i}")) for i, _ in self._im.mutable_globals
        ]
        store = rt.machine.store
        self._mutable_tables = self._im.parsed.has_table_mutation
        self._initial_tables = [
            (store.tabl[a], list(store.tabl[a].elem), store.tabl[a].size) for a in self._inst.tabl
        ]
        self._initial_elems = [(store.elem[a], list(store.elem[a].data)) for a in self._inst.elem]
        self._droppable_data = (
            [(store.data[a], bytes(store.data[a].data)) for a in self._inst.data]
            if self._im.parsed.has_data_drop
            else []
        )  # passive data segments (active ones are dropped by instantiation)

    def _reset_tables(self) -> None:
        """Put tables and element segments back as instantiation left them.

        Spec: interface spec §"Execution" (each execution runs in a fresh instance on
        the IC: dfinity/ic ``wasm_executor.rs`` keeps only heap, stable memory, globals).
        """
        for tabl, elems, size in self._initial_tables:
            tabl.elem = list(elems)
            tabl.size = size
        for seg, data in self._initial_elems:
            seg.data = list(data)

    def _restore_data(self) -> None:
        """Give dropped data segments their bytes back (a fresh instance has them all).

        Spec: interface spec §"Execution" (dfinity/ic ``wasm_executor.rs``: a fresh
        instance per execution; only heap, stable memory and globals persist).
        """
        for seg, data in self._droppable_data:
            if len(seg.data) != len(data):  # data.drop is the only change a segment sees
                seg.data = bytearray(data)

    def _export_mem(self, name: str) -> Any:
        if not any(e.name == name for e in self._inst.exps):
            return None
        return self._rt.exported_memory(self._inst, name)

    def _host(self, name: str, results: tuple[int, ...]) -> Any:
        def fn(_machine: Any, args: list[Any]) -> list[Any]:
            if self._api is None:
                raise WasmTrap(TrapKind.CONTRACT_VIOLATION, f"ic0.{name} called outside execution")
            out = self._api.dispatch(name, tuple(int(a) for a in args))
            if not results:
                return []
            v = int(out or 0)
            bits = 32 if results[0] == I32 else 64
            v &= (1 << bits) - 1
            return [v - (1 << bits) if v >= 1 << (bits - 1) else v]

        return fn

    # ---- GuestMemory / InstructionCounter
    def size(self) -> int:
        """Heap size in bytes."""
        return 0 if self._mem is None else len(self._mem.data)

    def read(self, addr: int, size: int) -> bytes:
        """Read heap bytes."""
        return bytes(self._mem.data[addr : addr + size])

    def write(self, addr: int, data: bytes) -> None:
        """Write heap bytes."""
        self._mem.data[addr : addr + len(data)] = data

    def remaining(self) -> int:
        """Instructions left."""
        return int(self._counter.data.into_i64())

    def set_remaining(self, value: int) -> None:
        """Set instructions left."""
        self._counter.data = pywasm.core.ValInst.from_i64(value)

    # ---- transactions
    def begin(self) -> None:
        """Snapshot heap and globals (O(heap): reference engine)."""
        self._saved = (
            bytes(self._mem.data) if self._mem is not None else b"",
            [(i, bytes(g.data.data)) for i, g in self._globals],
        )

    def commit(self) -> None:
        """Keep changes."""
        if self._saved is not None and self._mem is not None:
            old = self._saved[0]
            new = self._mem.data
            for p in range(0, len(new), PAGE_SIZE):
                if new[p : p + PAGE_SIZE] != old[p : p + PAGE_SIZE]:
                    self.dirty_since_checkpoint.add(p // PAGE_SIZE)
        self._saved = None

    def rollback(self) -> None:
        """Restore the snapshot."""
        if self._saved is None:
            return
        heap, globs = self._saved
        if self._mem is not None:
            self._mem.data = bytearray(heap)
        for (_, g), (_, raw) in zip(self._globals, globs, strict=True):
            g.data.data = bytearray(raw)
        self._saved = None

    # ---- running
    def has_export(self, name: str) -> bool:
        """Whether ``name`` is exported."""
        return name in self._exports

    def run(
        self, export: str, args: tuple[int, ...], api: SystemApi, instruction_limit: int
    ) -> int:
        """Run an export (from the initial tables, with every data segment)."""
        if self._mutable_tables:
            self._reset_tables()
        if self._droppable_data:
            self._restore_data()
        addr = next(
            (e.data.data for e in self._inst.exps if e.name == export and e.data.kind == 0), None
        )
        if addr is None:
            raise WasmTrap(TrapKind.CONTRACT_VIOLATION, f"function {export!r} is not exported")
        return self._invoke(addr, args, api, instruction_limit)

    def call_table(self, index: int, env: int, api: SystemApi, instruction_limit: int) -> int:
        """Run a table callback (table 0 as the module initialised it)."""
        if self._mutable_tables:
            self._reset_tables()
        if self._droppable_data:
            self._restore_data()
        tabl = self._rt.machine.store.tabl[self._inst.tabl[0]] if self._inst.tabl else None
        if tabl is None or not 0 <= index < len(tabl.elem):
            raise WasmTrap(TrapKind.TRAP, f"callback index {index} out of bounds")
        ref = tabl.elem[index].into_ref()
        if ref < 0:
            raise WasmTrap(TrapKind.TRAP, f"callback index {index} is null")
        return self._invoke(ref, (env,), api, instruction_limit)

    def _invoke(self, addr: int, args: tuple[int, ...], api: SystemApi, limit: int) -> int:
        api.memory = self if self._mem is not None else None
        api.counter = self
        api.fixed_costs_prepaid = True  # instrument(import_costs=...) charged them
        self.set_remaining(limit)
        self._api = api
        func = self._rt.machine.store.func[addr]
        vals = [
            pywasm.core.ValInst.from_all(t, a) for t, a in zip(func.type.args, args, strict=True)
        ]
        grow_before = self.size()
        try:
            self._rt.machine.invocate(addr, vals)
        except WasmTrap:
            self._reset()
            raise
        except RecursionError:
            self._reset()
            raise WasmTrap(TrapKind.TRAP, "stack overflow") from None
        except Exception as exc:  # pywasm traps are assertion errors / exceptions
            self._reset()
            if self.remaining() < 0:
                raise _out(limit) from None
            raise WasmTrap(TrapKind.TRAP, f"wasm trap ({type(exc).__name__})") from None
        finally:
            self._api = None
        if self.size() > self._memory_limit:  # pragma: no cover - pywasm has no limit hook
            raise WasmTrap(TrapKind.OUT_OF_MEMORY, "memory limit exceeded")
        del grow_before
        left = self.remaining()
        if left < 0:
            raise _out(limit)
        return limit - left

    def _reset(self) -> None:
        self._rt.machine.stack = pywasm.core.Stack()

    # ---- persistence
    def memory_size(self) -> int:
        """Heap size in bytes."""
        return self.size()

    def snapshot(self) -> InstanceState:
        """Full copy of heap and globals."""
        return InstanceState(
            bytes(self._mem.data) if self._mem is not None else b"",
            tuple(
                (i, int.from_bytes(bytes(g.data.data[:8]).ljust(8, b"\0"), "little"))
                for i, g in self._globals
            ),
        )

    def restore(self, state: InstanceState) -> None:
        """Overwrite heap and globals."""
        if self._mem is not None:
            self._mem.data = bytearray(state.heap)
        types = dict(self._im.mutable_globals)
        for (i, g), (_, bits) in zip(self._globals, state.globals, strict=True):
            width = 4 if types[i] in (I32, F32) else 8
            g.data.data = bytearray((bits & ((1 << (8 * width)) - 1)).to_bytes(width, "little"))

    def dirty_pages_since_checkpoint(self) -> set[int]:
        """Pages changed since the last checkpoint."""
        return set(self.dirty_since_checkpoint)

    def mark_checkpointed(self) -> None:
        """Forget dirty pages."""
        self.dirty_since_checkpoint = set()


def _out(limit: int) -> WasmTrap:
    return WasmTrap(
        TrapKind.OUT_OF_INSTRUCTIONS,
        f"Canister exceeded the limit of {limit} instructions for single message execution.",
    )

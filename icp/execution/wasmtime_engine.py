"""The default engine: wasmtime (Cranelift), memory64, deterministic configuration.

Configuration: NaN canonicalization on, threads/SIMD/relaxed-SIMD/GC/exceptions
off, multi-memory on (the dirty-page journal lives in memories 1 and 2), fuel
off (instructions are counted by instrumentation, identically to pywasm).  The
live instance keeps the canister's heap between messages; commit and rollback
cost O(pages written) thanks to the journal written by the instrumented code
(see ``wasm_binary``).  A trap after ``memory.grow`` cannot shrink a wasmtime
memory, so that rare case rebuilds the instance from the rolled-back heap.
Tables and segments are not canister state: every execution starts from the
module's initial tables and has all its passive element and data segments
(``_reset_instance``; free for modules that cannot change a table or drop a segment).

Spec: interface spec §"Execution" (determinism, atomic executions); digest §5.1.
"""

from __future__ import annotations

import array
import ctypes
import hashlib
from typing import Any

import attrs
import wasmtime
from wasmtime import _ffi as ffi

from icp.execution.engine import InstanceState, prepare_module, wasm_features
from icp.execution.errors import InvalidWasm, TrapKind, WasmTrap
from icp.execution.system_api import SystemApi
from icp.execution.wasm_binary import (
    DATA_DROPPED,
    ELEM_DROPPED,
    I32,
    I64,
    PAGE_SIZE,
    WASM_PAGE_SIZE,
    InstrumentedModule,
    ParsedModule,
)

_VT = {"i32": wasmtime.ValType.i32, "i64": wasmtime.ValType.i64}


def _c_fn(name: str, restype: Any, argtypes: list[Any]) -> Any:
    """A private prototype of a wasmtime C API function taking raw addresses."""
    fn = ffi.dll[name]  # item access makes a new function object: wasmtime-py's stays intact
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


_P = ctypes.c_void_p
_memory_data = _c_fn("wasmtime_memory_data", _P, [_P, _P])
_memory_data_size = _c_fn("wasmtime_memory_data_size", ctypes.c_size_t, [_P, _P])
_global_get = _c_fn("wasmtime_global_get", None, [_P, _P, _P])
_global_set = _c_fn("wasmtime_global_set", _P, [_P, _P, _P])
_call_unchecked = _c_fn("wasmtime_func_call_unchecked", _P, [_P, _P, _P, ctypes.c_size_t, _P])
_trap_new = _c_fn("wasmtime_trap_new", _P, [ctypes.c_char_p, ctypes.c_size_t])
_table_get = _c_fn("wasmtime_table_get", ctypes.c_bool, [_P, _P, ctypes.c_uint64, _P])
_table_set = _c_fn("wasmtime_table_set", _P, [_P, _P, ctypes.c_uint64, _P])
_table_size = _c_fn("wasmtime_table_size", ctypes.c_uint64, [_P, _P])
_VAL_SIZE = ctypes.sizeof(ffi.wasmtime_val_t)
_KIND_I32 = ffi.WASMTIME_I32.value
_KIND_I64 = ffi.WASMTIME_I64.value
_HOST_EXCEPTION = b"host function raised"
_FOLD_COMMITTED = 512
"""Committed page lists kept as arrays before they are folded into the dirty set."""


def _finalize_nothing(env: int | None) -> None:
    """Host functions keep no per-function data to free (``env`` is the import index)."""


_no_finalizer = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_finalize_nothing)


def make_engine_config() -> wasmtime.Config:
    """Return the deterministic wasmtime configuration used for canisters."""
    cfg = wasm_features(multi_memory=True)
    cfg.cranelift_nan_canonicalization = True
    cfg.consume_fuel = False
    cfg.max_wasm_stack = 1 << 20
    return cfg


@attrs.frozen(slots=True)
class WasmtimeModule:
    """A compiled module for wasmtime."""

    module_hash: bytes
    instrumented: InstrumentedModule
    module: wasmtime.Module

    @property
    def parsed(self) -> ParsedModule:
        """The parsed original module."""
        return self.instrumented.parsed


class WasmtimeEngine:
    """Compile and instantiate canister modules with wasmtime; cache by module hash."""

    name = "wasmtime"

    def __init__(self, max_wasm32_bytes: int = 4 << 30, max_wasm64_bytes: int = 6 << 30) -> None:
        self.engine = wasmtime.Engine(make_engine_config())
        self.max_wasm32 = max_wasm32_bytes
        self.max_wasm64 = max_wasm64_bytes
        self._cache: dict[bytes, WasmtimeModule] = {}

    def compile(self, wasm: bytes) -> WasmtimeModule:
        """Validate, instrument and compile; raise ``InvalidWasm`` on any defect."""
        cached = self._cache.get(hashlib.sha256(wasm).digest())
        if cached is not None:  # the same bytes were validated and instrumented before
            return cached
        module_hash, inst = prepare_module(
            wasm, track_dirty_pages=True, max_wasm32=self.max_wasm32, max_wasm64=self.max_wasm64
        )
        cached = self._cache.get(module_hash)
        if cached is not None:
            return cached
        raw_sections = inst.parsed
        try:
            module = wasmtime.Module(self.engine, inst.wasm)
        except wasmtime.WasmtimeError as exc:
            raise InvalidWasm(f"Wasm module failed validation: {_first_line(exc)}") from exc
        del raw_sections
        compiled = WasmtimeModule(module_hash, inst, module)
        self._cache[module_hash] = compiled
        return compiled

    def instantiate(self, module: WasmtimeModule, memory_limit: int) -> WasmtimeInstance:
        """Create a fresh instance of ``module`` (``(start)`` not yet run)."""
        return WasmtimeInstance(self, module, memory_limit)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class WasmtimeInstance:
    """A live wasmtime instance with page-journaled transactions.

    The per-message paths (host calls, the instruction counter, calls of exports,
    begin/commit/rollback) go straight to the wasmtime C API through raw addresses
    (``_c_fn`` prototypes, ``wasmtime_func_new_unchecked`` host functions,
    ``wasmtime_func_call_unchecked``): wasmtime-py's generic wrappers allocate type
    objects on every call and cost more than a small canister message itself.
    ``begin``/``commit``/``rollback`` are one call each of helpers the instrumentation
    exports (save the globals; clear the journal marks; copy pages back and restore
    the globals), instead of one host crossing per global or page.  The raw paths use
    wasmtime-py's private ``wasmtime._ffi`` bindings of the stable C API (checked
    with wasmtime-py 50); the public API is used only off the per-message path.
    """

    def __init__(self, engine: WasmtimeEngine, module: WasmtimeModule, memory_limit: int) -> None:
        self._engine = engine
        self._module = module
        self._im = module.instrumented
        hard = engine.max_wasm64 if self._im.parsed.is_memory64 else engine.max_wasm32
        self._memory_limit = hard if memory_limit <= 0 else min(memory_limit, hard)
        self._api: SystemApi | None = None
        self._host_exc: BaseException | None = None
        self._exports = set(self._im.parsed.exported_functions)
        self.dirty_since_checkpoint: set[int] = set()
        self._committed: list[array.array[int]] = []
        self._globals_before: list[tuple[int, Any]] = []
        self._size_before = 0
        self._in_tx = False
        self._imports: list[tuple[str, tuple[bool, ...], bool | None]] = []
        for _, name, tidx in self._im.parsed.imports:
            ft = self._im.parsed.types[tidx]
            result = (ft.results[0] == I64) if ft.results else None
            self._imports.append((name, tuple(p == I64 for p in ft.params), result))
        self._callback = ffi.wasmtime_func_unchecked_callback_t(self._host_call)
        self._val = ffi.wasmtime_val_t()
        self._val_addr = ctypes.addressof(self._val)
        self._args = (ffi.wasmtime_val_raw_t * 1)()
        self._args_addr = ctypes.addressof(self._args)
        self._trap = ctypes.c_void_p()
        self._trap_addr = ctypes.addressof(self._trap)
        self._build()

    # ---- construction -----------------------------------------------------
    def _build(self) -> None:
        store = wasmtime.Store(self._engine.engine)
        store.set_limits(memory_size=self._memory_limit + 0)
        ctx = store._context()
        imports: list[wasmtime.Func] = []
        for k, (_, name, tidx) in enumerate(self._im.parsed.imports):
            del name
            ft = self._im.parsed.types[tidx]
            params = [
                wasmtime.ValType.i64() if p == I64 else wasmtime.ValType.i32() for p in ft.params
            ]
            results = [
                wasmtime.ValType.i64() if p == I64 else wasmtime.ValType.i32() for p in ft.results
            ]
            raw = ffi.wasmtime_func_t()
            ty = wasmtime.FuncType(params, results)  # must outlive the call below
            ffi.wasmtime_func_new_unchecked(
                ctx, ty.ptr(), self._callback, k, _no_finalizer, ctypes.byref(raw)
            )
            imports.append(wasmtime.Func._from_raw(raw))
        try:
            instance = wasmtime.Instance(store, self._module.module, imports)
        except wasmtime.Trap as exc:
            raise InvalidWasm(f"Wasm module instantiation failed: {_first_line(exc)}") from exc
        except wasmtime.WasmtimeError as exc:
            raise InvalidWasm(f"Wasm module instantiation failed: {_first_line(exc)}") from exc
        ex = instance.exports(store)
        self._store = store
        self._ctx = ctypes.cast(ctx, ctypes.c_void_p).value
        self._instance = instance
        self._ex = ex
        self._counter: wasmtime.Global = ex["__icp_instr"]  # type: ignore[assignment]
        self._dirty: wasmtime.Global = ex["__icp_dirty"]  # type: ignore[assignment]
        self._counter_addr = ctypes.addressof(self._counter._global)
        self._dirty_addr = ctypes.addressof(self._dirty._global)
        self._mem: wasmtime.Memory | None = ex.get("__icp_mem")  # type: ignore[assignment]
        self._bytemap: wasmtime.Memory | None = ex.get("__icp_bytemap")  # type: ignore[assignment]
        self._journal: wasmtime.Memory | None = ex.get("__icp_journal")  # type: ignore[assignment]
        self._table: wasmtime.Table | None = ex.get("__icp_table")  # type: ignore[assignment]
        self._mem_addr = 0 if self._mem is None else ctypes.addressof(self._mem._memory)
        self._journal_addr = 0 if self._journal is None else ctypes.addressof(self._journal._memory)
        self._jm: Any = None  # ctypes view of the journaled-page map
        self._list_addr = 0
        if self._bytemap is not None:
            base = int(_memory_data(self._ctx, ctypes.addressof(self._bytemap._memory)) or 0)
            n = self._im.bytemap_pages
            self._jm = (ctypes.c_ubyte * n).from_address(base + self._im.journaled_offset)
            self._list_addr = base + self._im.list_offset
        self._globals: list[tuple[int, Any]] = [
            (idx, ex[f"__icp_g{idx}"]) for idx, _ in self._im.mutable_globals
        ]
        saved = {idx for idx, _ in self._im.saved_globals}
        # globals the in-Wasm helpers do not cover (all of them without the helpers)
        self._other_globals = [(i, g) for i, g in self._globals if i not in saved]
        save = ex.get("__icp_save_globals")
        # $save also records the heap size at begin (pages above it are not copied)
        self._save_addr = ctypes.addressof(save._func) if isinstance(save, wasmtime.Func) else 0
        self._func_addrs: dict[str, int] = {}
        self._callback_wide: dict[bytes, bool] = {}
        self._capture_tables(ex)
        commit = ex.get("__icp_commit")
        rollback = ex.get("__icp_rollback")
        self._commit_addr = (
            ctypes.addressof(commit._func) if isinstance(commit, wasmtime.Func) else 0
        )
        self._rollback_addr = (
            ctypes.addressof(rollback._func) if isinstance(rollback, wasmtime.Func) else 0
        )

    def _host_call(self, env: int | None, caller: Any, raw: Any, n: int) -> int:
        """Run ``ic0.<name>`` for the import with index ``env`` (unchecked host function)."""
        del caller, n
        try:
            name, wide, result = self._imports[env or 0]
            api = self._api
            if api is None:
                raise WasmTrap(TrapKind.CONTRACT_VIOLATION, f"ic0.{name} called outside execution")
            args = tuple(raw[i].i64 if w else raw[i].i32 for i, w in enumerate(wide))
            out = api.dispatch(name, args)
            if result is not None:
                if result:
                    raw[0].i64 = out
                else:
                    raw[0].i32 = out
            return 0
        except BaseException as exc:  # re-raised by _call once wasmtime has unwound
            self._host_exc = exc
            return int(_trap_new(_HOST_EXCEPTION, len(_HOST_EXCEPTION)) or 0)

    # ---- raw C API helpers -----------------------------------------------------
    def _global_int(self, addr: int, wide: bool) -> int:
        _global_get(self._ctx, addr, self._val_addr)
        return int(self._val.of.i64) if wide else int(self._val.of.i32)

    def _set_global(self, addr: int, kind: int, value: int) -> None:
        self._val.kind = kind  # type: ignore[assignment]
        if kind == _KIND_I64:
            self._val.of.i64 = value
        else:
            self._val.of.i32 = value
        err = _global_set(self._ctx, addr, self._val_addr)
        if err:
            raise wasmtime.WasmtimeError._from_ptr(
                ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t))
            )

    def _call(self, func_addr: int, args: tuple[int, ...], wide: bool) -> None:
        """Call a function of type ``() -> ()`` or ``(i32|i64) -> ()``; raise on trap."""
        if args:
            if wide:
                self._args[0].i64 = args[0]
            else:
                self._args[0].i32 = args[0]
        self._trap.value = None
        self._host_exc = None
        err = _call_unchecked(self._ctx, func_addr, self._args_addr, 1, self._trap_addr)
        if self._host_exc is not None:
            exc, self._host_exc = self._host_exc, None
            self._drop_trap(err)
            raise exc
        if err:
            raise wasmtime.WasmtimeError._from_ptr(
                ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t))
            )
        if self._trap.value:
            trap = wasmtime.Trap._from_ptr(
                ctypes.cast(self._trap.value, ctypes.POINTER(ffi.wasm_trap_t))
            )
            self._trap.value = None
            raise trap

    def _drop_trap(self, err: int | None) -> None:
        if self._trap.value:
            wasmtime.Trap._from_ptr(ctypes.cast(self._trap.value, ctypes.POINTER(ffi.wasm_trap_t)))
            self._trap.value = None
        if err:
            wasmtime.WasmtimeError._from_ptr(ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t)))

    def _heap(self) -> int:
        return int(_memory_data(self._ctx, self._mem_addr) or 0)

    # ---- GuestMemory / InstructionCounter ----------------------------------
    def size(self) -> int:
        """Heap size in bytes (GuestMemory)."""
        return 0 if self._mem is None else int(_memory_data_size(self._ctx, self._mem_addr))

    def read(self, addr: int, size: int) -> bytes:
        """Read heap bytes (GuestMemory)."""
        assert self._mem is not None
        if size == 0:
            return b""
        return ctypes.string_at(self._heap() + addr, size)

    def write(self, addr: int, data: bytes) -> None:
        """Write heap bytes, journaling touched pages first (GuestMemory)."""
        assert self._mem is not None
        if not data:
            return
        if self._in_tx:
            self._host_mark(addr, len(data))
        ctypes.memmove(self._heap() + addr, data, len(data))

    def remaining(self) -> int:
        """Instructions left (InstructionCounter)."""
        return self._global_int(self._counter_addr, True)

    def set_remaining(self, value: int) -> None:
        """Set instructions left (InstructionCounter)."""
        self._set_global(self._counter_addr, _KIND_I64, value)

    # ---- journal -------------------------------------------------------------
    # Memory 1 (fast map, journaled-page map, dirty list, saved globals; see
    # ``wasm_binary``) has a fixed size, so its base address is stable for the life of
    # the instance: ``_jm`` views the journaled map directly.  The journal (memory 2) grows
    # and may move: its address is fetched on use.  Host writes journal exactly the
    # pages they touch and never set the fast map (leaving it clear is always safe).

    def _dirty_count(self) -> int:
        return self._global_int(self._dirty_addr, False)

    def _journal_ptr(self) -> int:
        return int(_memory_data(self._ctx, self._journal_addr) or 0)

    def _host_mark(self, addr: int, size: int) -> None:
        jm = self._jm
        if jm is None or self._journal is None:
            return
        first, last = addr // PAGE_SIZE, (addr + size - 1) // PAGE_SIZE
        if first == last and jm[first]:
            return
        heap = self._heap()
        count = self._dirty_count()
        fresh = self._size_before // PAGE_SIZE  # pages from here on were grown in this message
        for page in range(first, last + 1):
            if jm[page]:
                continue
            if int(_memory_data_size(self._ctx, self._journal_addr)) < (count + 1) * PAGE_SIZE:
                self._journal.grow(self._store, 16)
            if page < fresh:
                ctypes.memmove(
                    self._journal_ptr() + count * PAGE_SIZE, heap + page * PAGE_SIZE, PAGE_SIZE
                )
            ctypes.c_uint32.from_address(self._list_addr + 4 * count).value = page
            jm[page] = 1
            count += 1
        self._set_global(self._dirty_addr, _KIND_I32, count)

    def dirty_pages_in_transaction(self) -> list[int]:
        """Heap pages journaled so far in the open transaction (for benchmarks and tests)."""
        return self._dirty_list()

    def grow_heap(self, pages: int) -> None:
        """Grow memory 0 by ``pages`` Wasm pages outside any transaction (benchmarks, tests)."""
        if self._mem is not None:
            self._mem.grow(self._store, pages)

    def _dirty_list(self, count: int | None = None) -> list[int]:
        if count is None:
            count = self._dirty_count()
        if count == 0 or self._jm is None:
            return []
        return list((ctypes.c_uint32 * count).from_address(self._list_addr))

    def _clear_marks(self) -> None:
        """Clear the marks of the listed pages and empty the list (in-Wasm ``$commit``)."""
        if self._commit_addr:
            self._call(self._commit_addr, (), False)

    def _committed_list(self, count: int) -> array.array[int]:
        out: array.array[int] = array.array("I")
        if count and self._jm is not None:
            out.frombytes(ctypes.string_at(self._list_addr, 4 * count))
        return out

    def begin(self) -> None:
        """Start a transaction (changes made outside one are committed first)."""
        count = self._dirty_count()
        if count:
            stale = self._committed_list(count)
            self._committed.append(stale)
            self._clear_marks()
        self._in_tx = True
        self._size_before = self.size()
        if self._save_addr:
            self._call(self._save_addr, (), False)
        self._globals_before = [(i, g.value(self._store)) for i, g in self._other_globals]

    def commit(self) -> None:
        """Keep the changes: O(pages written), the page list is kept for checkpoints."""
        count = self._dirty_count()
        if count:
            pages = self._committed_list(count)
            self._committed.append(pages)
            self._clear_marks()
            if len(self._committed) >= _FOLD_COMMITTED:  # bound memory between checkpoints
                for chunk in self._committed:
                    self.dirty_since_checkpoint.update(chunk)
                self._committed = []
        if self.size() != self._size_before:
            self.dirty_since_checkpoint.update(
                range(self._size_before // PAGE_SIZE, self.size() // PAGE_SIZE)
            )
        self._in_tx = False

    def rollback(self) -> None:
        """Undo the changes: restore journaled pages, globals and memory size."""
        if self._rollback_addr:  # pages back, marks cleared, numeric globals restored
            self._call(self._rollback_addr, (), False)
        for (_, g), (_, v) in zip(self._other_globals, self._globals_before, strict=True):
            g.set_value(self._store, v)
        if self.size() != self._size_before:
            self._shrink_to(self._size_before)
        self._in_tx = False

    def _shrink_to(self, size: int) -> None:
        """Rebuild the instance with a smaller heap (rare: trap after memory.grow)."""
        heap = self.read(0, size) if size else b""
        globals_now = [(i, g.value(self._store)) for i, g in self._globals]
        self._build()
        self._set_heap(heap)
        for (_, g), (_, v) in zip(self._globals, globals_now, strict=True):
            g.set_value(self._store, v)

    def _set_heap(self, heap: bytes) -> None:
        if self._mem is None:
            return
        cur = self.size()
        if len(heap) > cur:
            self._mem.grow(self._store, (len(heap) - cur) // WASM_PAGE_SIZE)
        was = self._in_tx
        self._in_tx = False
        self.write(0, heap)
        if self.size() > len(heap):
            self.write(len(heap), bytes(self.size() - len(heap)))
        self._in_tx = was

    # ---- tables and segments ---------------------------------------------------
    # The IC instantiates the module afresh for every execution and carries over only
    # the heap, stable memory and exported globals (dfinity/ic ``wasm_executor.rs``
    # ``process``: ``new_instance(.., globals, wasm_memory, ..)``; ``WasmStateChanges``
    # holds dirty pages and globals), so every message sees the tables the module's
    # element segments build and has every passive element and data segment.  Our
    # instance lives on: a module whose code can change a table or drop a segment that
    # it can read sets the flag ``__icp_tables`` when it does, and the next execution
    # first puts the initial entries back (or, after ``table.grow``/``elem.drop``/
    # ``data.drop``, which no store can undo, re-instantiates).  Modules without such
    # code skip all of this; so do messages that changed nothing.

    def _capture_tables(self, ex: Any) -> None:
        """Record the flag and the initial tables of a fresh instance (if it has them)."""
        self._flag_addr = 0
        self._initial_tables: list[tuple[int, int, Any]] = []  # (address, size, values)
        self._table_objs: list[wasmtime.Table] = []  # keep the addressed structs alive
        flag = ex.get("__icp_tables")
        if not isinstance(flag, wasmtime.Global):
            return
        self._flag_addr = ctypes.addressof(flag._global)
        self._flag_obj = flag
        k = 0
        while isinstance(tbl := ex.get(f"__icp_t{k}"), wasmtime.Table):
            k += 1
            addr = ctypes.addressof(tbl._table)
            size = int(_table_size(self._ctx, addr))
            values: Any = None  # externref tables only ever hold null (no host makes refs)
            if tbl.type(self._store).element == wasmtime.ValType.funcref():
                values = (ffi.wasmtime_val_t * size)()
                base = ctypes.addressof(values)
                for i in range(size):
                    _table_get(self._ctx, addr, i, base + i * _VAL_SIZE)
            self._table_objs.append(tbl)
            self._initial_tables.append((addr, size, values))

    def _reset_instance(self) -> None:
        """Give the coming execution the module's initial tables and segments (see above).

        Spec: interface spec §"Execution" (dfinity/ic ``wasm_executor.rs``: a fresh
        instance per execution; only heap, stable memory and globals persist).
        """
        flags = self._global_int(self._flag_addr, False)
        if not flags:
            return
        ctx = self._ctx
        if flags & (ELEM_DROPPED | DATA_DROPPED) or any(
            int(_table_size(ctx, addr)) != size for addr, size, _ in self._initial_tables
        ):
            self._rebuild()  # a fresh instance: initial tables, all segments, flag clear
            return
        for addr, size, values in self._initial_tables:
            if values is None:
                continue
            base = ctypes.addressof(values)
            for i in range(size):
                err = _table_set(ctx, addr, i, base + i * _VAL_SIZE)
                if err:
                    raise wasmtime.WasmtimeError._from_ptr(
                        ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t))
                    )
        self._set_global(self._flag_addr, _KIND_I32, 0)

    def _rebuild(self) -> None:
        """Re-instantiate, keeping heap, globals and an open transaction's journal."""
        heap = self.read(0, self.size()) if self.size() else b""
        globals_now = [g.value(self._store) for _, g in self._globals]
        counter, dirty = self.remaining(), self._dirty_count()
        size0 = self._ex.get("__icp_size0")
        size0_now = size0.value(self._store) if isinstance(size0, wasmtime.Global) else None
        side = {
            name: ctypes.string_at(
                int(_memory_data(self._ctx, ctypes.addressof(mem._memory)) or 0),
                int(_memory_data_size(self._ctx, ctypes.addressof(mem._memory))),
            )
            for name in ("__icp_bytemap", "__icp_journal")
            if isinstance(mem := self._ex.get(name), wasmtime.Memory)
        }
        self._build()
        self._set_heap(heap)
        for (_, g), v in zip(self._globals, globals_now, strict=True):
            g.set_value(self._store, v)
        self.set_remaining(counter)
        self._set_global(self._dirty_addr, _KIND_I32, dirty)
        size0 = self._ex.get("__icp_size0")
        if isinstance(size0, wasmtime.Global) and size0_now is not None:
            size0.set_value(self._store, size0_now)
        for name, data in side.items():
            mem = self._ex[name]
            assert isinstance(mem, wasmtime.Memory)
            have = int(_memory_data_size(self._ctx, ctypes.addressof(mem._memory)))
            if len(data) > have:
                mem.grow(self._store, (len(data) - have) // WASM_PAGE_SIZE)
            base = int(_memory_data(self._ctx, ctypes.addressof(mem._memory)) or 0)
            ctypes.memmove(base, data, len(data))

    # ---- running -------------------------------------------------------------
    def has_export(self, name: str) -> bool:
        """Whether the original module exports function ``name``."""
        return name in self._exports or (name == "__icp_start" and "__icp_start" in self._ex)

    def run(
        self, export: str, args: tuple[int, ...], api: SystemApi, instruction_limit: int
    ) -> int:
        """Run an exported function; return instructions used or raise ``WasmTrap``."""
        if self._flag_addr:
            self._reset_instance()
        addr = self._func_addrs.get(export)
        if addr is None:
            func = self._ex.get(export)
            if not isinstance(func, wasmtime.Func):
                raise WasmTrap(TrapKind.CONTRACT_VIOLATION, f"function {export!r} is not exported")
            if func.type(self._store).params:
                raise WasmTrap(TrapKind.CONTRACT_VIOLATION, f"function {export!r} takes arguments")
            addr = self._func_addrs[export] = ctypes.addressof(func._func)
        return self._invoke(addr, args, False, api, instruction_limit)

    def call_table(self, index: int, env: int, api: SystemApi, instruction_limit: int) -> int:
        """Run callback ``index`` of table 0 (as the module initialised it) with ``env``."""
        if self._flag_addr:
            self._reset_instance()
        if self._table is None:
            raise WasmTrap(TrapKind.TRAP, "callback table is missing")
        try:
            func = self._table.get(self._store, index)
        except (wasmtime.WasmtimeError, IndexError) as exc:
            raise WasmTrap(TrapKind.TRAP, f"callback index {index} out of bounds") from exc
        if not isinstance(func, wasmtime.Func):
            raise WasmTrap(TrapKind.TRAP, f"callback index {index} is not a function")
        key = bytes(func._func)  # (store id, index): a function's type never changes
        wide = self._callback_wide.get(key)
        if wide is None:
            ft = func.type(self._store)
            params = ft.params
            if len(params) != 1 or ft.results:
                raise WasmTrap(TrapKind.TRAP, "callback has the wrong type")
            wide = params[0] == wasmtime.ValType.i64()
            if not wide and params[0] != wasmtime.ValType.i32():
                raise WasmTrap(TrapKind.TRAP, "callback has the wrong type")
            self._callback_wide[key] = wide
        return self._invoke(ctypes.addressof(func._func), (env,), wide, api, instruction_limit)

    def _invoke(
        self, func_addr: int, args: tuple[int, ...], wide: bool, api: SystemApi, limit: int
    ) -> int:
        api.memory = self if self._mem is not None else None
        api.counter = self
        api.fixed_costs_prepaid = True  # instrument(import_costs=...) charged them
        self.set_remaining(limit)
        self._api = api
        try:
            self._call(func_addr, args, wide)
        except WasmTrap:
            raise
        except wasmtime.Trap as exc:
            raise self._classify(exc, limit) from None
        except wasmtime.WasmtimeError as exc:
            raise self._classify(exc, limit) from None
        finally:
            self._api = None
        left = self.remaining()
        if left < 0:
            raise _out_of_instructions(limit)
        return limit - left

    def _classify(self, exc: Exception, limit: int) -> WasmTrap:
        if self.remaining() < 0:
            return _out_of_instructions(limit)
        code = getattr(exc, "trap_code", None)
        if code is not None and code in _TRAP_TEXT:
            return WasmTrap(TrapKind.TRAP, _TRAP_TEXT[code])
        text = str(exc)
        if "wasm trap: " in text:
            return WasmTrap(TrapKind.TRAP, text.split("wasm trap: ", 1)[1].splitlines()[0])
        return WasmTrap(TrapKind.TRAP, _first_line(exc))

    # ---- persistence ---------------------------------------------------------
    def memory_size(self) -> int:
        """Heap size in bytes."""
        return self.size()

    def snapshot(self) -> InstanceState:
        """Full copy of heap and mutable globals."""
        heap = self.read(0, self.size()) if self.size() else b""
        return InstanceState(
            heap, tuple((i, _bits(g.value(self._store))) for i, g in self._globals)
        )

    def restore(self, state: InstanceState) -> None:
        """Overwrite heap and globals from ``state``."""
        if len(state.heap) < self.size():
            self._build()
        self._set_heap(state.heap)
        types = dict(self._im.mutable_globals)
        for (idx, g), (sidx, bits) in zip(self._globals, state.globals, strict=True):
            if idx != sidx:
                raise ValueError("global layout mismatch")
            g.set_value(self._store, _from_bits(types[idx], bits))
        self.dirty_since_checkpoint = set(range(self.size() // PAGE_SIZE))
        self._committed = []

    def dirty_pages_since_checkpoint(self) -> set[int]:
        """Pages changed since the last checkpoint."""
        out = set(self.dirty_since_checkpoint)
        for chunk in self._committed:
            out.update(chunk)
        return out

    def mark_checkpointed(self) -> None:
        """Forget dirty pages."""
        self.dirty_since_checkpoint = set()
        self._committed = []


_TRAP_TEXT = {
    wasmtime.TrapCode.STACK_OVERFLOW: "stack overflow",
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: "heap out of bounds",
    wasmtime.TrapCode.HEAP_MISALIGNED: "heap misaligned",
    wasmtime.TrapCode.TABLE_OUT_OF_BOUNDS: "table out of bounds",
    wasmtime.TrapCode.INDIRECT_CALL_TO_NULL: "indirect call to null",
    wasmtime.TrapCode.BAD_SIGNATURE: "function invocation does not match its signature",
    wasmtime.TrapCode.INTEGER_OVERFLOW: "integer overflow",
    wasmtime.TrapCode.INTEGER_DIVISION_BY_ZERO: "integer division by 0",
    wasmtime.TrapCode.BAD_CONVERSION_TO_INTEGER: "invalid conversion to integer",
    wasmtime.TrapCode.UNREACHABLE: "unreachable",
}
"""Trap texts as the IC renders its ``TrapCode`` (dfinity/ic ``HypervisorError``)."""


def _out_of_instructions(limit: int) -> WasmTrap:
    return WasmTrap(
        TrapKind.OUT_OF_INSTRUCTIONS,
        f"Canister exceeded the limit of {limit} instructions for single message execution.",
    )


def _bits(v: Any) -> int:
    import struct

    if isinstance(v, float):
        return int.from_bytes(struct.pack("<d", v), "little")
    if isinstance(v, int):
        return v & ((1 << 64) - 1)
    return 0


def _from_bits(t: int, bits: int) -> wasmtime.Val:
    import struct

    from icp.execution.wasm_binary import F32, F64

    if t == I32:
        v = bits & 0xFFFFFFFF
        return wasmtime.Val.i32(v - (1 << 32) if v >= 1 << 31 else v)
    if t == I64:
        v = bits & ((1 << 64) - 1)
        return wasmtime.Val.i64(v - (1 << 64) if v >= 1 << 63 else v)
    if t in (F32, F64):
        f = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
        return wasmtime.Val.f32(f) if t == F32 else wasmtime.Val.f64(f)
    raise ValueError("unsupported global type")

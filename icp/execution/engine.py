"""The Wasm engine interface shared by the wasmtime and pywasm engines.

Theory of operation
-------------------
An engine turns canister bytes into a ``CompiledModule`` (validated against the
IC's rules, instrumented, cached by SHA-256 of the raw bytes) and a compiled
module into a live ``WasmInstance``.  The live instance *is* the canister's
working Wasm state (heap, globals): it persists across messages, so a message
costs what it touches, not what the heap holds.  Each message execution is a
transaction on the instance::

    inst.begin()
    try:
        used = inst.run(export, args, api, limit)   # may raise WasmTrap
    except WasmTrap:
        inst.rollback()        # heap pages, memory size and globals as before
    else:
        inst.commit()

Both engines run the *same instrumented module*, so they report the same
instruction counts for the same message (see ``wasm_binary``).

Wasm tables and passive segments are *not* part of that state.  The IC instantiates
the module afresh for every execution (method, callback, ``(start)``) and carries over
only the heap, stable memory and exported globals (dfinity/ic
``rs/embedders/src/wasm_executor.rs`` ``process`` →
``WasmtimeEmbedder::new_instance(.., globals, wasm_memory, ..)``; its
``WasmStateChanges`` are dirty pages and globals), so each execution starts from the
tables the module's element segments build and can ``memory.init``/``table.init``
from every passive data and element segment, even one an earlier execution dropped,
whether that execution trapped or not (the bytes it copied into the heap persist like
any heap write).  Engines give ``run``/``call_table`` those initial tables and
segments; a module with no table-changing instruction and no ``data.drop`` of a
segment it could read pays nothing for it, and only an execution that changed a table
or dropped a segment costs the next one a restore.  Checkpoints hold neither.

Spec: interface spec §"Canister module format", §"Execution" (atomicity of
message executions; digest §5.1).
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import attrs
import wasmtime

from icp.execution.errors import InvalidWasm
from icp.execution.system_api import SystemApi, fixed_instruction_costs, signatures_for
from icp.execution.wasm_binary import (
    InstrumentedModule,
    ParsedModule,
    decompress_module,
    instrument,
    parse_module,
    validate_module,
)


@attrs.frozen(slots=True)
class InstanceState:
    """A full, engine-independent copy of an instance's Wasm state (for checkpoints).

    Spec: interface spec §"Canister state" (memory + globals persist).
    """

    heap: bytes
    globals: tuple[tuple[int, int], ...]  # (global index, raw bits)

    def digest(self) -> bytes:
        """Return SHA-256 over heap size, heap and globals."""
        h = hashlib.sha256(len(self.heap).to_bytes(8, "little"))
        h.update(self.heap)
        for idx, bits in self.globals:
            h.update(idx.to_bytes(4, "little") + (bits & ((1 << 64) - 1)).to_bytes(8, "little"))
        return h.digest()


class CompiledModule(Protocol):
    """A validated, instrumented module ready to instantiate."""

    @property
    def module_hash(self) -> bytes:
        """SHA-256 of the module bytes as installed (before decompression)."""

    @property
    def parsed(self) -> ParsedModule:
        """The parsed original module."""


class WasmInstance(Protocol):
    """A live instance: the working Wasm state of one canister."""

    def has_export(self, name: str) -> bool:
        """Return whether the original module exports function ``name``."""

    def run(
        self, export: str, args: tuple[int, ...], api: SystemApi, instruction_limit: int
    ) -> int:
        """Run an export under ``api`` from a fresh table/segment state; return instructions."""

    def call_table(self, index: int, env: int, api: SystemApi, instruction_limit: int) -> int:
        """Run the callback at table ``index`` with ``env``; like ``run``."""

    def begin(self) -> None:
        """Start a transaction (journal heap pages and globals)."""

    def commit(self) -> None:
        """Keep the transaction's changes."""

    def rollback(self) -> None:
        """Undo the transaction's changes."""

    def memory_size(self) -> int:
        """Return the heap size in bytes (0 without memory)."""

    def snapshot(self) -> InstanceState:
        """Return a full copy of heap and globals."""

    def restore(self, state: InstanceState) -> None:
        """Overwrite heap and globals from a snapshot (heap may grow)."""

    def dirty_pages_since_checkpoint(self) -> set[int]:
        """Return 4 KiB heap pages changed since the last ``mark_checkpointed``."""

    def mark_checkpointed(self) -> None:
        """Forget dirty pages (after a checkpoint was written)."""


class WasmEngine(Protocol):
    """Compiles and instantiates canister modules."""

    name: str

    def compile(self, wasm: bytes) -> CompiledModule:
        """Validate and instrument; raise ``InvalidWasm`` with the IC's reason."""

    def instantiate(self, module: CompiledModule, memory_limit: int) -> WasmInstance:
        """Create a fresh instance (without running ``(start)``)."""


def prepare_module(
    wasm: bytes, *, track_dirty_pages: bool, max_wasm32: int, max_wasm64: int
) -> tuple[bytes, InstrumentedModule]:
    """Decompress, parse, validate and instrument; return (module hash, module).

    Spec: interface spec §"Canister module format" (digest §5.1).
    """
    module_hash = hashlib.sha256(wasm).digest()
    raw = decompress_module(wasm)
    parsed = parse_module(raw)
    validate_module(parsed, signatures_for(parsed.is_memory64))
    validate_structure(raw)
    max_heap = max_wasm64 if parsed.is_memory64 else max_wasm32
    return module_hash, instrument(
        parsed,
        track_dirty_pages=track_dirty_pages,
        max_heap_bytes=max_heap,
        import_costs=fixed_instruction_costs(),
    )


def wasm_features(*, multi_memory: bool) -> wasmtime.Config:
    """Return a wasmtime configuration with exactly the Wasm proposals the IC accepts.

    memory64, bulk memory and reference types on; SIMD, threads, tail calls, GC,
    function references and exceptions off.  ``multi_memory`` is for the engine that
    runs *instrumented* code (the instrumentation adds its own memories); a canister's
    original module must have a single memory.  Spec: digest §5.1.
    """
    cfg = wasmtime.Config()
    cfg.wasm_multi_memory = multi_memory
    cfg.wasm_memory64 = True
    cfg.wasm_bulk_memory = True
    cfg.wasm_reference_types = True
    cfg.wasm_simd = False
    cfg.wasm_relaxed_simd = False
    cfg.wasm_threads = False
    cfg.wasm_tail_call = False
    cfg.wasm_gc = False
    cfg.wasm_function_references = False
    cfg.wasm_exceptions = False
    return cfg


def validate_structure(raw: bytes) -> None:
    """Validate the *original* module (types, index spaces) before it is instrumented.

    The instrumentation adds memories, globals and functions; an index that is out
    of range in the original module (``global.set``, ``call``, a memory index, an
    element or export entry) would otherwise reach them after instrumentation, e.g.
    reset the instruction counter.  Uses wasmtime's validator with the proposals the
    IC accepts (single memory, memory64, bulk memory, reference types; no SIMD,
    threads, tail calls, exceptions or GC).  Spec: digest §5.1 (the IC validates
    with ``wasmparser`` before instrumenting, ``validation.rs``).
    """
    try:
        wasmtime.Module.validate(wasmtime.Engine(wasm_features(multi_memory=False)), raw)
    except wasmtime.WasmtimeError as exc:
        text = str(exc).strip().splitlines()
        raise InvalidWasm(
            f"Wasm module failed validation: {text[0] if text else 'invalid module'}"
        ) from None


def check_engine_validation(ok: bool, reason: str) -> None:
    """Raise ``InvalidWasm`` if the engine's own validator rejected the module."""
    if not ok:
        raise InvalidWasm(reason)

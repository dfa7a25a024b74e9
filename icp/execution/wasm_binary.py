"""Parse, validate and instrument canister Wasm modules.

Theory of operation
-------------------
A canister module is validated once at install time against the IC's rules
(only ``ic0`` imports with the right signatures, well-formed ``canister_*``
exports, size and count limits) and then *instrumented*: we rewrite the code
section, which is what makes the rest of the execution layer possible.

1. **Instruction counting.**  Every function body is cut into straight-line
   segments (a segment ends after a branch, ``if``/``else``/``end``, a ``loop``
   header, ``return`` or ``unreachable``; calls and ``block`` do not end one).  At
   the start of each segment we subtract the segment's cost from an exported
   ``i64`` global ``__icp_instr`` (the instructions left for this message).  At
   function entry and at every loop header we also check for a negative
   counter and execute ``unreachable``; the host then sees a negative counter
   and reports "instruction limit exceeded".  Because the count is computed
   from the *original* code by this module, every engine that runs the
   instrumented module (wasmtime, pywasm) reports exactly the same number of
   instructions for the same message, as the IC requires of its replicas.
   Weights are the IC's (``instruction_cost``): 1 per function entry, most
   instructions 1, ``block loop else end`` 0, branches 2, calls 5/10, div/rem 10,
   ``memory.grow`` 300, wasm64 loads/stores 2, ...; bulk memory and table
   operations are also charged their size operand at run time (``$charge``).  A
   call of an ``ic0`` import adds that function's fixed System API cost
   (``import_costs``) to the calling segment.
2. **Dirty-page journal** (optional, used by the wasmtime engine).  Memory 1
   holds, per 4 KiB page of memory 0, a *fast* byte and a *journaled* byte, then
   the list of journaled pages, then the saved globals.  Before every scalar
   store to memory 0 the instrumented code loads ``fast[addr >> 12]``; only if it
   is clear does it call ``$pair(p)``, which journals pages ``p`` and ``p+1``
   (copies each page's old contents to memory 2 on its first write in the
   message, appends it to the list, sets ``journaled``) and sets ``fast[p]``.  A
   store is at most 8 bytes, so it ends in ``p`` or ``p+1``: one load decides.
   ``memory.fill``/``copy``/``init`` of at most 4096 bytes use the same test;
   longer ones call ``$span`` for every page they touch.  A store off the same
   unchanged local as an earlier checked store in the same segment, within 4096
   bytes above it, skips the test (``_SameBase``).  The host commits a message
   by clearing the bytes of the listed pages (``$commit``) and rolls a trapped
   message back by copying the journaled pages back (``$rollback``): both
   O(pages written), not O(heap size), one call each.  Pages at or above the heap
   size at ``begin`` (global ``size0``, set by ``$save``) were grown in this
   message: they are listed but not copied, and a rollback drops grown memory.
   The price is one byte load and branch per store, and one 4 KiB copy per page
   written per message.
3. The start function is removed and exported as ``__icp_start``, memory 0 as
   ``__icp_mem``, and every mutable global as ``__icp_g<index>`` so the host can
   run ``(start)`` under its own instruction limit and snapshot globals.  With the
   journal, more helpers are exported: ``__icp_save_globals`` stores every
   numeric mutable global into a reserved area of memory 1 (8 bytes each, after the
   dirty list), ``__icp_restore_globals`` loads them back, ``__icp_commit`` and
   ``__icp_rollback`` end a transaction, so the host needs one call per step
   instead of one crossing per global or page.  Helpers are not metered (they are
   not canister code).  The original module is validated on its own first
   (``engine.validate_structure``), so its code cannot name anything added here.
4. **Tables and segments are not canister state.**  The IC runs every message in a
   fresh instance: only the heap, stable memory and exported globals carry over, so
   tables start as the module's elements put them and every passive element and
   data segment is available again.  A module whose code can change a table
   (``TABLE_MUTATORS``) has ``global.get/i32.or/global.set`` of the exported flag
   ``__icp_tables`` before each such instruction (and ``elem.drop``), and all its
   tables exported as ``__icp_t<index>``; a module with ``data.drop`` and
   ``memory.init`` sets bit ``DATA_DROPPED`` of the same flag before each
   ``data.drop``.  The engine gives the next execution the initial tables and
   segments when the flag is set (so a message that dropped nothing costs nothing).
   Other modules get no code; Motoko's output, whose passive data segments are
   read by ``memory.init`` but never dropped, is one of them.

Spec: interface spec §"Canister module format" and §"System API imports"
(digest §5.1); resource limits digest §7.2 (dfinity/ic
``rs/embedders/src/wasm_utils/validation.rs``).  The IC itself counts
instructions by instrumentation too (``rs/embedders/src/wasm_utils/
instrumentation.rs``, ``instruction_to_cost``), with the weights used here.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping

import attrs

from icp.execution.errors import InvalidWasm
from icp.leb128 import encode_signed as sleb
from icp.leb128 import encode_unsigned as uleb

WASM_MAGIC = b"\x00asm"
WASM_VERSION = b"\x01\x00\x00\x00"
GZIP_MAGIC = b"\x1f\x8b\x08"

PAGE_SIZE = 4096
"""Granularity of dirty tracking (an OS page, as the IC's memory tracker)."""
WASM_PAGE_SIZE = 65536

# Spec: digest §7.2 (validation.rs / embedders.rs constants).
MAX_WASM_MODULE_SIZE = 100 * 1024 * 1024
MAX_CODE_SECTION_SIZE = 10 * 1024 * 1024
MAX_FUNCTIONS = 50_000
MAX_GLOBALS = 1_000
MAX_EXPORTED_FUNCTIONS = 1_000
MAX_SUM_EXPORTED_NAME_LENGTHS = 20_000
MAX_CUSTOM_SECTIONS = 16
MAX_CUSTOM_SECTIONS_SIZE = 1_048_576

I32, I64, F32, F64, V128, FUNCREF, EXTERNREF = 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F
_VALTYPES = {I32, I64, F32, F64, FUNCREF, EXTERNREF}
_NAMES = {
    I32: "i32",
    I64: "i64",
    F32: "f32",
    F64: "f64",
    FUNCREF: "funcref",
    EXTERNREF: "externref",
}

SYSTEM_ENTRY_POINTS = frozenset(
    {
        "canister_init",
        "canister_pre_upgrade",
        "canister_post_upgrade",
        "canister_inspect_message",
        "canister_heartbeat",
        "canister_global_timer",
        "canister_on_low_wasm_memory",
    }
)
METHOD_PREFIXES = ("canister_update ", "canister_query ", "canister_composite_query ")
RESERVED_EXPORT_PREFIX = "__icp_"


class _Reader:
    """Cursor over module bytes with LEB128 decoding; raises ``InvalidWasm``."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise InvalidWasm("unexpected end of module")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise InvalidWasm("unexpected end of module")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u(self, bits: int = 32) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift >= bits + 7:
                raise InvalidWasm("integer representation too long")
        if result >= 1 << bits:
            raise InvalidWasm("integer too large")
        return result

    def s(self, bits: int) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift >= bits + 7:
                raise InvalidWasm("integer representation too long")
        if b & 0x40:
            result -= 1 << shift
        return result

    def name(self) -> str:
        raw = self.bytes(self.u())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidWasm("malformed UTF-8 name") from exc


def _vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


@attrs.frozen(slots=True)
class FuncType:
    """A function signature as value-type bytes."""

    params: tuple[int, ...]
    results: tuple[int, ...]


@attrs.frozen(slots=True)
class Limits:
    """Limits of a memory or table."""

    minimum: int
    maximum: int | None
    is64: bool


@attrs.frozen(slots=True)
class ParsedModule:
    """The parts of a module the execution layer needs, plus raw sections."""

    types: tuple[FuncType, ...]
    imports: tuple[tuple[str, str, int], ...]  # (module, name, type index) — funcs only
    functions: tuple[int, ...]  # type index per defined function
    memory: Limits | None
    globals_mutable: tuple[bool, ...]
    global_types: tuple[int, ...]
    exports: tuple[tuple[str, int, int], ...]  # (name, kind, index)
    start: int | None
    sections: tuple[tuple[int, bytes], ...]  # (id, content) in file order
    custom_sections: tuple[tuple[str, bytes], ...]
    has_table_mutation: bool  # code has table.set/grow/fill/copy/init (see TABLE_MUTATORS)
    has_data_drop: bool  # code has data.drop and memory.init (a drop is observable)

    @property
    def is_memory64(self) -> bool:
        """Whether memory 0 is a 64-bit memory (so ``I`` = i64 in the System API)."""
        return self.memory is not None and self.memory.is64

    @property
    def exported_functions(self) -> dict[str, int]:
        """Map export name → function index."""
        return {name: idx for name, kind, idx in self.exports if kind == 0}

    def public_custom_sections(self) -> dict[str, bytes]:
        """Return ``icp:public``/``icp:private`` metadata sections by full name."""
        return {n: c for n, c in self.custom_sections if n.startswith("icp:")}


def decompress_module(data: bytes) -> bytes:
    """Return raw Wasm bytes, gunzipping a gzip-compressed module as the IC does.

    Spec: interface spec §"Canister module format" (gzip ``1f 8b 08``); digest §5.1.
    """
    if data.startswith(GZIP_MAGIC):
        try:
            d = zlib.decompressobj(wbits=31)
            out = d.decompress(data, MAX_WASM_MODULE_SIZE + 1)
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise InvalidWasm(f"failed to decompress gzip module: {exc}") from exc
        if len(out) > MAX_WASM_MODULE_SIZE or d.unconsumed_tail:
            raise InvalidWasm(
                f"decompressed module exceeds the maximum of {MAX_WASM_MODULE_SIZE} bytes"
            )
        return out
    return data


def _limits(r: _Reader, memory: bool) -> Limits:
    flag = r.byte()
    if flag & 0x02:
        raise InvalidWasm("shared memories are not allowed")
    if flag & ~0x05:
        raise InvalidWasm(f"unsupported limits flags {flag:#x}")
    is64 = bool(flag & 0x04)
    bits = 64 if is64 else 32
    minimum = r.u(bits)
    maximum = r.u(bits) if flag & 0x01 else None
    return Limits(minimum, maximum, is64)


def _blocktype(r: _Reader) -> None:
    b = r.data[r.pos] if r.pos < r.end else -1
    if b == 0x40 or b in _VALTYPES:
        r.pos += 1
        return
    if b == V128:
        raise InvalidWasm("SIMD (v128) is not supported by this implementation")
    r.s(33)


_NO_IMM = frozenset([0x00, 0x01, 0x05, 0x0B, 0x0F, 0x1A, 0x1B, 0xD1, *range(0x45, 0xC5)])
_U32_IMM = frozenset([0x0C, 0x0D, 0x10, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0xD2])
_COST: dict[int, int] = {
    0x02: 0, 0x03: 0, 0x05: 0, 0x0B: 0,  # block loop else end
    0x04: 2, 0x0C: 2, 0x0D: 2, 0x0E: 2,  # if br br_if br_table
    0x10: 5, 0x11: 10,  # call call_indirect
    0x23: 2, 0x24: 2, 0x25: 5, 0x26: 5,  # global.get/set table.get/set
    0x3F: 20, 0x40: 300, 0xFC0F: 300, 0xFC10: 100,  # memory.size/grow table.grow/size
    0x6D: 10, 0x6E: 10, 0x6F: 10, 0x70: 10, 0x7F: 10, 0x80: 10, 0x81: 10, 0x82: 10,  # div rem
    **dict.fromkeys(range(0x5B, 0x67), 3),  # float comparisons
    0x8D: 2, 0x8E: 2, 0x8F: 2, 0x90: 2, 0x91: 5, 0x92: 2, 0x93: 2, 0x94: 2, 0x95: 3,  # f32
    0x96: 18, 0x97: 18, 0x98: 2,
    0x9B: 2, 0x9C: 2, 0x9D: 2, 0x9E: 2, 0x9F: 8, 0xA0: 2, 0xA1: 2, 0xA2: 2, 0xA3: 5,  # f64
    0xA4: 18, 0xA5: 18, 0xA6: 3,
    **dict.fromkeys((0xA8, 0xA9, 0xAA, 0xAB, 0xAE, 0xAF, 0xB0, 0xB1), 20),  # trunc
    **dict.fromkeys(range(0xFC00, 0xFC08), 20),  # trunc_sat
    0xB2: 3, 0xB4: 3, 0xB7: 3, 0xB9: 3, 0xB3: 16, 0xB5: 16, 0xB8: 16, 0xBA: 16,  # convert
    **dict.fromkeys((0xFC08, 0xFC0A, 0xFC0B, 0xFC0C, 0xFC0E, 0xFC11), 100),  # bulk (static)
    0xFC09: 300, 0xFC0D: 300,  # data.drop elem.drop
    0xD1: 5, 0xD2: 130,  # ref.is_null ref.func
}  # fmt: skip
"""Instruction weights of the IC (other instructions cost 1; loads and stores cost 2 on
wasm64).  Spec: dfinity/ic ``rs/embedders/src/wasm_utils/instrumentation.rs``
(``instruction_to_cost``)."""

_BULK_SIZE_I32 = frozenset([0xFC08, 0xFC0C, 0xFC0E, 0xFC11])
"""Bulk operations whose size operand is an i32 (data/table sizes); memory.fill/copy
take an address-typed size.  Each is also charged its size dynamically (IC rule)."""
TABLE_MUTATORS = frozenset([0x26, 0xFC0C, 0xFC0E, 0xFC0F, 0xFC11])
"""``table.set``, ``table.init``, ``table.copy``, ``table.grow``, ``table.fill``: the
instructions that change a table's contents or size.  Each sets bit 1 of the exported
global ``__icp_tables`` (bit 2 for ``elem.drop``, whose effect only a fresh instance undoes)
so an engine can give the next message the module's initial tables, as the IC does."""
TABLES_CHANGED = 1
"""Flag bit: a table's contents or size changed (``TABLE_MUTATORS``)."""
ELEM_DROPPED = 2
"""Flag bit: ``elem.drop`` ran (only a fresh instance has the segment again)."""
DATA_DROPPED = 4
"""Flag bit: ``data.drop`` ran in a module that also has ``memory.init``, so a later
execution could tell.  On the IC every execution instantiates the module afresh and so
has all its passive data segments; only a fresh instance undoes a drop."""


def instruction_cost(op: int, memory64: bool) -> int:
    """Return the IC's static instruction cost of opcode ``op`` (``0xFCnn`` if prefixed).

    Spec: dfinity/ic ``instrumentation.rs`` ``instruction_to_cost``.
    """
    if 0x28 <= op <= 0x3E:
        return 2 if memory64 else 1
    return _COST.get(op, 1)


_SEGMENT_END = frozenset([0x00, 0x03, 0x04, 0x05, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F])
"""Instructions after which control may not simply fall through to the next one, or
before which another path may join: a segment (one counter update) ends there.
``block`` is not one: its body always runs right after the code before it."""
_STORE_SIZE = {0x36: 4, 0x37: 8, 0x38: 4, 0x39: 8, 0x3A: 1, 0x3B: 2, 0x3C: 1, 0x3D: 2, 0x3E: 4}
_STORE_VALTYPE = {
    0x36: I32, 0x37: I64, 0x38: F32, 0x39: F64, 0x3A: I32, 0x3B: I32, 0x3C: I64, 0x3D: I64,
    0x3E: I64,
}  # fmt: skip


@attrs.frozen(slots=True)
class _Instr:
    """One decoded instruction: opcode (``0xFCnn`` for prefixed), span, memarg."""

    op: int
    start: int
    end: int
    memidx: int = 0
    offset: int = 0
    memidx2: int = 0


def _memarg(r: _Reader) -> tuple[int, int]:
    flags = r.u()
    memidx = r.u() if flags & 0x40 else 0
    offset = r.u(64)
    return memidx, offset


def _decode(r: _Reader) -> _Instr:
    start = r.pos
    op = r.byte()
    if op in _NO_IMM:
        return _Instr(op, start, r.pos)
    if op in _U32_IMM:
        r.u()
        return _Instr(op, start, r.pos)
    if op in (0x02, 0x03, 0x04):
        _blocktype(r)
    elif op == 0x0E:
        for _ in range(r.u() + 1):
            r.u()
    elif op == 0x11:
        r.u()
        r.u()
    elif op == 0x1C:
        n = r.u()
        for _ in range(n):
            if r.byte() not in _VALTYPES:
                raise InvalidWasm("unsupported value type in select")
    elif 0x28 <= op <= 0x3E:
        m, off = _memarg(r)
        return _Instr(op, start, r.pos, m, off)
    elif op in (0x3F, 0x40):
        m = r.u()
        return _Instr(op, start, r.pos, m)
    elif op == 0x41:
        r.s(32)
    elif op == 0x42:
        r.s(64)
    elif op == 0x43:
        r.bytes(4)
    elif op == 0x44:
        r.bytes(8)
    elif op == 0xD0:
        if r.byte() not in (FUNCREF, EXTERNREF):
            raise InvalidWasm("unsupported reference type")
    elif op == 0xFC:
        sub = r.u()
        key = 0xFC00 | sub
        if sub <= 7:
            pass
        elif sub == 8:
            r.u()
            mem = r.u()
            return _Instr(key, start, r.pos, mem)
        elif sub in (9, 13, 15, 16, 17):
            r.u()
        elif sub == 10:
            d = r.u()
            s = r.u()
            return _Instr(key, start, r.pos, d, 0, s)
        elif sub == 11:
            mem = r.u()
            return _Instr(key, start, r.pos, mem)
        elif sub in (12, 14):
            r.u()
            r.u()
        else:
            raise InvalidWasm(f"unknown instruction 0xfc {sub}")
        return _Instr(key, start, r.pos)
    elif op == 0xFD:
        raise InvalidWasm("SIMD instructions are not supported by this implementation")
    elif op == 0xFE:
        raise InvalidWasm("atomic instructions (threads) are not allowed")
    elif op in (0x12, 0x13):
        raise InvalidWasm("tail calls are not supported")
    elif op in (0x06, 0x07, 0x08, 0x09, 0x0A, 0x18, 0x19, 0x1F):
        raise InvalidWasm("exception handling is not supported")
    else:
        raise InvalidWasm(f"unknown opcode {op:#04x}")
    return _Instr(op, start, r.pos)


def _skip_const_expr(r: _Reader) -> None:
    while True:
        ins = _decode(r)
        if ins.op == 0x0B:
            return


def parse_module(data: bytes) -> ParsedModule:
    """Parse a raw (decompressed) module; raise ``InvalidWasm`` on malformed input.

    Spec: WebAssembly core spec §5 (binary format); digest §5.1.
    """
    if len(data) > MAX_WASM_MODULE_SIZE:
        raise InvalidWasm(f"module size {len(data)} exceeds the maximum of {MAX_WASM_MODULE_SIZE}")
    if data[:4] != WASM_MAGIC:
        raise InvalidWasm("bad magic number (expected a Wasm module or gzip)")
    if data[4:8] != WASM_VERSION:
        raise InvalidWasm("unsupported Wasm version")
    r = _Reader(data, 8)
    types: list[FuncType] = []
    imports: list[tuple[str, str, int]] = []
    functions: list[int] = []
    memory: Limits | None = None
    gmut: list[bool] = []
    gtypes: list[int] = []
    exports: list[tuple[str, int, int]] = []
    start: int | None = None
    sections: list[tuple[int, bytes]] = []
    customs: list[tuple[str, bytes]] = []
    table_mut = False
    data_drop = memory_init = False
    last_id = 0
    order = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8, 9: 9, 12: 10, 10: 11, 11: 12}
    while r.pos < r.end:
        sid = r.byte()
        size = r.u()
        content = r.bytes(size)
        sections.append((sid, content))
        s = _Reader(content)
        if sid == 0:
            customs.append((s.name(), content[s.pos :]))
            continue
        if sid not in order:
            raise InvalidWasm(f"unknown or unsupported section id {sid}")
        if order[sid] <= last_id:
            raise InvalidWasm("sections out of order or duplicated")
        last_id = order[sid]
        if sid == 1:
            for _ in range(s.u()):
                if s.byte() != 0x60:
                    raise InvalidWasm("only function types are supported in the type section")
                params = tuple(s.byte() for _ in range(s.u()))
                results = tuple(s.byte() for _ in range(s.u()))
                for t in (*params, *results):
                    if t not in _VALTYPES:
                        raise InvalidWasm(f"unsupported value type {t:#x}")
                types.append(FuncType(params, results))
        elif sid == 2:
            for _ in range(s.u()):
                mod, name, kind = s.name(), s.name(), s.byte()
                if kind != 0:
                    what = {1: "table", 2: "memory", 3: "global"}.get(kind, "entity")
                    raise InvalidWasm(
                        f"Wasm module has an invalid import section. Module imports {what} "
                        f"{name!r} from {mod!r}; only functions from 'ic0' may be imported."
                    )
                imports.append((mod, name, s.u()))
        elif sid == 3:
            functions.extend(s.u() for _ in range(s.u()))
        elif sid == 4:
            for _ in range(s.u()):
                if s.byte() not in (FUNCREF, EXTERNREF):
                    raise InvalidWasm("unsupported table element type")
                _limits(s, memory=False)
        elif sid == 5:
            n = s.u()
            if n > 1:
                raise InvalidWasm(f"module defines {n} memories; at most one is allowed")
            if n == 1:
                memory = _limits(s, memory=True)
        elif sid == 6:
            for _ in range(s.u()):
                t = s.byte()
                if t not in _VALTYPES:
                    raise InvalidWasm("unsupported global type")
                gtypes.append(t)
                gmut.append(s.byte() == 1)
                _skip_const_expr(s)
        elif sid == 7:
            for _ in range(s.u()):
                exports.append((s.name(), s.byte(), s.u()))
        elif sid == 8:
            start = s.u()
        elif sid == 10:
            if size > MAX_CODE_SECTION_SIZE:
                raise InvalidWasm(
                    f"Wasm module code section size of {size} exceeds the maximum allowed "
                    f"size of {MAX_CODE_SECTION_SIZE}."
                )
            for _ in range(s.u()):
                body_size = s.u()
                b = _Reader(content, s.pos, s.pos + body_size)
                for _ in range(b.u()):
                    b.u()
                    if b.byte() not in _VALTYPES:
                        raise InvalidWasm("unsupported local type")
                while b.pos < b.end:
                    ins = _decode(b)
                    if ins.op in TABLE_MUTATORS:
                        table_mut = True
                    elif ins.op == 0xFC09:
                        data_drop = True
                    elif ins.op == 0xFC08:
                        memory_init = True
                s.pos += body_size
    return ParsedModule(
        types=tuple(types),
        imports=tuple(imports),
        functions=tuple(functions),
        memory=memory,
        globals_mutable=tuple(gmut),
        global_types=tuple(gtypes),
        exports=tuple(exports),
        start=start,
        sections=tuple(sections),
        custom_sections=tuple(customs),
        has_table_mutation=table_mut,
        has_data_drop=data_drop and memory_init,
    )


SignatureTable = Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]
"""System API signatures: name → (params, results) with ``"I"`` for the address type."""


def validate_module(m: ParsedModule, system_api: SignatureTable) -> None:
    """Check the IC's module rules; raise ``InvalidWasm`` with the IC's reason text.

    Spec: interface spec §"Canister module format"; digest §5.1 and §7.2.
    """
    addr = "i64" if m.is_memory64 else "i32"
    for mod, name, tidx in m.imports:
        if mod != "ic0" or name not in system_api:
            raise InvalidWasm(
                "Wasm module has an invalid import section. Module imports function "
                f"{name!r} from {mod!r} that is not exported by the runtime."
            )
        if tidx >= len(m.types):
            raise InvalidWasm("import refers to an unknown type")
        params, results = system_api[name]
        want = (
            tuple(addr if p == "I" else p for p in params),
            tuple(addr if p == "I" else p for p in results),
        )
        t = m.types[tidx]
        got = (tuple(_NAMES[p] for p in t.params), tuple(_NAMES[p] for p in t.results))
        if got != want:
            raise InvalidWasm(
                "Wasm module has an invalid import section. Module imports function "
                f"{name!r} from 'ic0' that has an incorrect signature {got} (expected {want})."
            )
    nfuncs = len(m.imports) + len(m.functions)
    if len(m.functions) > MAX_FUNCTIONS:
        raise InvalidWasm(
            f"Wasm module defined {len(m.functions)} functions which exceeds the maximum "
            f"number allowed {MAX_FUNCTIONS}."
        )
    if len(m.globals_mutable) > MAX_GLOBALS:
        raise InvalidWasm(
            f"Wasm module defined {len(m.globals_mutable)} globals which exceeds the maximum "
            f"number allowed {MAX_GLOBALS}."
        )
    methods: dict[str, str] = {}
    n_exported = 0
    name_len = 0
    for name, kind, idx in m.exports:
        if name.startswith(RESERVED_EXPORT_PREFIX):
            raise InvalidWasm(f"export name {name!r} uses a prefix reserved by this implementation")
        if kind == 0:
            n_exported += 1
        if not name.startswith("canister_"):
            continue
        if kind != 0 or idx >= nfuncs:
            raise InvalidWasm(f"export {name!r} must be a function")
        tidx = m.imports[idx][2] if idx < len(m.imports) else m.functions[idx - len(m.imports)]
        if m.types[tidx] != FuncType((), ()):
            raise InvalidWasm(
                f"Wasm module has an invalid export: {name!r} must have type () -> ()"
            )
        if name in SYSTEM_ENTRY_POINTS:
            continue
        for prefix in METHOD_PREFIXES:
            if name.startswith(prefix):
                method = name[len(prefix) :]
                name_len += len(method)
                if method in methods:
                    raise InvalidWasm(
                        f"Duplicate function {method!r} exported as {methods[method]!r} "
                        f"and {prefix.strip()!r}."
                    )
                methods[method] = prefix.strip()
                break
        else:
            raise InvalidWasm(f'Exporting reserved function {name!r} with "canister_" prefix')
    if n_exported > MAX_EXPORTED_FUNCTIONS:
        raise InvalidWasm(
            f"Wasm module exports {n_exported} functions which exceeds the maximum number "
            f"allowed {MAX_EXPORTED_FUNCTIONS}."
        )
    if name_len > MAX_SUM_EXPORTED_NAME_LENGTHS:
        raise InvalidWasm(
            f"Wasm module has {name_len} bytes of exported function names which exceeds the "
            f"maximum allowed {MAX_SUM_EXPORTED_NAME_LENGTHS}."
        )
    icp = [(n, c) for n, c in m.custom_sections if n.startswith("icp:")]
    if len(icp) > MAX_CUSTOM_SECTIONS:
        raise InvalidWasm(
            f"Wasm module has {len(icp)} custom sections which exceeds the maximum number "
            f"allowed {MAX_CUSTOM_SECTIONS}."
        )
    seen: set[str] = set()
    total = 0
    for n, c in icp:
        for prefix in ("icp:public ", "icp:private "):
            if n.startswith(prefix):
                short = n[len(prefix) :]
                if short in seen:
                    raise InvalidWasm(f"Duplicate custom section {short!r}")
                seen.add(short)
                total += len(short) + len(c)
                break
        else:
            raise InvalidWasm(
                f"Invalid custom section {n!r}: 'icp:' must be followed by 'public ' or 'private '"
            )
    if total > MAX_CUSTOM_SECTIONS_SIZE:
        raise InvalidWasm(
            f"Wasm module custom sections total {total} bytes which exceeds the maximum "
            f"allowed {MAX_CUSTOM_SECTIONS_SIZE}."
        )


@attrs.frozen(slots=True)
class InstrumentedModule:
    """An instrumented module and the facts engines need to drive it."""

    wasm: bytes
    parsed: ParsedModule
    tracks_dirty_pages: bool
    bytemap_pages: int  # 4 KiB pages covered by the dirty byte map
    mutable_globals: tuple[tuple[int, int], ...]  # (global index, value type byte)
    saved_globals: tuple[tuple[int, int], ...] = ()  # numeric mutable globals the helpers save

    @property
    def journaled_offset(self) -> int:
        """Byte offset of the exact journaled-page map in the byte-map memory."""
        return self.bytemap_pages

    @property
    def list_offset(self) -> int:
        """Byte offset of the dirty-page list in the byte-map memory."""
        return self.bytemap_pages * 2

    @property
    def globals_offset(self) -> int:
        """Byte offset of the saved-globals area (8 bytes per global) in the byte-map memory."""
        return self.bytemap_pages * 6


def _arity(op: int) -> tuple[int, int] | None:
    """Return (values popped, values pushed) of a non-control, non-call instruction."""
    if 0x28 <= op <= 0x35 or op in (0x40, 0x45, 0x50, 0xD1, 0x25) or 0x67 <= op <= 0x69:
        return 1, 1
    if 0x79 <= op <= 0x7B or 0x8B <= op <= 0x91 or 0x99 <= op <= 0x9F or 0xA7 <= op <= 0xC4:
        return 1, 1
    if 0x46 <= op <= 0x4F or 0x51 <= op <= 0x66 or 0x6A <= op <= 0x78 or 0x7C <= op <= 0x8A:
        return 2, 1
    if 0x92 <= op <= 0x98 or 0xA0 <= op <= 0xA6:
        return 2, 1
    if 0x36 <= op <= 0x3E or op == 0x26:
        return 2, 0
    if 0x41 <= op <= 0x44 or op in (0x23, 0x3F, 0xD0, 0xD2, 0xFC10):
        return 0, 1
    if op in (0x1A, 0x24):
        return 1, 0
    if op in (0x1B, 0x1C):
        return 3, 1
    if op in (0x01, 0xFC09, 0xFC0D):
        return 0, 0
    if 0xFC00 <= op <= 0xFC07:
        return 1, 1
    if op in (0xFC08, 0xFC0A, 0xFC0B, 0xFC0C, 0xFC0E, 0xFC11):
        return 3, 0
    if op == 0xFC0F:
        return 2, 1
    return None


_Val = tuple[int, int, int] | None
"""Abstract value: ``(L, version, d)`` = local ``L`` + ``d``; ``(-1, 0, k)`` = constant ``k``."""
_IfState = tuple[list[_Val], dict[tuple[int, int], list[int]]]
_CONTROL = frozenset([0x00, 0x02, 0x03, 0x04, 0x05, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F])


class _SameBase:
    """Skip the journal check of a store that an earlier checked store already covers.

    An abstract stack records which values are ``local.get L`` of an unchanged local
    (a version per local, bumped by ``local.set``/``tee``).  A checked store at
    ``L + off`` leaves ``fast[(L + off) >> 12]`` set, which covers
    ``[L + off, L + off + 4096)`` (pages ``p`` and ``p+1``) until the message ends,
    so a later store at ``L + off2`` with ``off <= off2`` and
    ``off2 + size <= off + 4096`` needs no check -- if every path to it passed the
    first one.  Knowledge therefore flows only forward through code that dominates:
    across ``block`` entry, ``br_if`` fall-through and into an ``if``'s branches
    (each branch starts from the state before the ``if``); it is dropped at every
    join or back-edge target (``end``, ``loop``), after ``br``/``br_table``/
    ``return``/``unreachable``, and at anything not understood: always safe.

    On memory64, ``i64.add``/``i64.sub`` of a constant keep the local (``L + d``): if
    the checked store's address ``L + d1 + off1`` is inside the heap, adding less than
    4096 to it cannot wrap.  (Not on wasm32: a 4 GiB heap could wrap ``i32.add``.)
    """

    __slots__ = ("call_arity", "control", "covered", "mem64", "stack", "version")

    def __init__(
        self,
        call_arity: list[tuple[int, int]],
        type_arity: list[tuple[int, int]],
        mem64: bool = False,
    ):
        self.call_arity = (call_arity, type_arity)
        self.mem64 = mem64
        self.stack: list[_Val] = []
        self.version: dict[int, int] = {}
        self.covered: dict[tuple[int, int], list[int]] = {}
        # per open block: the state at an ``if`` (restored at its ``else``), else None
        self.control: list[_IfState | None] = []

    def reset(self) -> None:
        self.stack = []
        self.covered = {}

    def _snapshot(self) -> _IfState:
        return list(self.stack), {k: list(v) for k, v in self.covered.items()}

    def _control(self, op: int) -> None:
        if op == 0x02:  # block: its body always follows the code before it
            self.control.append(None)
        elif op == 0x03:  # loop: a back-edge target
            self.control.append(None)
            self.reset()
        elif op == 0x04:  # if: pops the condition; both branches start from here
            self._pop(1)
            self.control.append(self._snapshot())
        elif op == 0x05:  # else
            state = self.control[-1] if self.control else None
            if state is None:
                self.reset()
            else:
                self.stack, covered = state
                self.stack = list(self.stack)
                self.covered = {k: list(v) for k, v in covered.items()}
        elif op == 0x0B:  # end: a join point
            if self.control:
                self.control.pop()
            self.reset()
        elif op == 0x0D:  # br_if: the fall-through is dominated by what came before
            self._pop(1)
        else:  # br, br_table, return, unreachable: what follows is unreachable
            self.reset()

    def _pop(self, n: int) -> None:
        if n:
            del self.stack[-n:]

    def store_covered(self, offset: int, size: int) -> bool:
        """At a store (before ``step``): is its address covered? Record it if not."""
        addr = self.stack[-2] if len(self.stack) >= 2 else None
        if addr is None or addr[0] < 0:
            return False
        start = addr[2] + offset
        windows = self.covered.setdefault((addr[0], addr[1]), [])
        if any(w <= start and start + size <= w + PAGE_SIZE for w in windows):
            return True
        windows.append(start)
        return False

    def step(self, op: int, raw: bytes) -> None:
        """Apply the effect of one instruction on the abstract state."""
        if op in _CONTROL:
            self._control(op)
            return
        if op == 0x20:  # local.get
            idx = _Reader(raw, 1).u()
            self.stack.append((idx, self.version.get(idx, 0), 0))
            return
        if op in (0x21, 0x22):  # local.set / local.tee
            idx = _Reader(raw, 1).u()
            self.version[idx] = self.version.get(idx, 0) + 1
            self._pop(1)
            if op == 0x22:
                self.stack.append((idx, self.version[idx], 0))
            return
        if op == 0x42 and self.mem64:  # i64.const
            self.stack.append((-1, 0, _Reader(raw, 1).s(64)))
            return
        if op in (0x7C, 0x7D) and self.mem64 and len(self.stack) >= 2:  # i64.add / i64.sub
            a, b = self.stack[-2], self.stack[-1]
            del self.stack[-2:]
            if a is not None and b is not None and a[0] >= 0 and b[0] < 0:
                self.stack.append((a[0], a[1], a[2] + b[2] if op == 0x7C else a[2] - b[2]))
            elif op == 0x7C and a is not None and b is not None and a[0] < 0 and b[0] >= 0:
                self.stack.append((b[0], b[1], b[2] + a[2]))
            else:
                self.stack.append(None)
            return
        if op in (0x10, 0x11):
            r = _Reader(raw, 1)
            funcs, sigs = self.call_arity
            idx = r.u()
            table = funcs if op == 0x10 else sigs
            if idx >= len(table):
                self.reset()
                return
            pops, pushes = table[idx]
            pops += op == 0x11  # the table index operand
        else:
            effect = _arity(op)
            if effect is None:
                self.reset()
                return
            pops, pushes = effect
        self._pop(pops)
        self.stack.extend([None] * pushes)


def _global_set_code(counter: int, cost: int, check: bool) -> bytes:
    code = b"\x23" + uleb(counter) + b"\x42" + sleb(cost) + b"\x7d"  # get; const; i64.sub
    if check:
        # tee; i64.const 0; i64.lt_s; if; unreachable; end
        return (
            code
            + b"\x24"
            + uleb(counter)
            + b"\x23"
            + uleb(counter)
            + b"\x42\x00\x53\x04\x40\x00\x0b"
        )
    return code + b"\x24" + uleb(counter)


def instrument(
    m: ParsedModule,
    *,
    track_dirty_pages: bool,
    max_heap_bytes: int,
    import_costs: Mapping[str, int] | None = None,
) -> InstrumentedModule:
    """Rewrite a validated module with instruction counting (and dirty tracking).

    ``max_heap_bytes`` bounds memory 0 (the engine enforces it) and sizes the
    dirty byte map.  ``import_costs`` (import name -> instructions) is charged with
    the segment that calls the import, so the host need not touch the counter for
    the fixed part of a System API call.  Spec: see the module docstring.
    """
    track = track_dirty_pages and m.memory is not None
    mem64 = m.is_memory64
    n_imp = len(m.imports)
    n_def = len(m.functions)
    n_glob = len(m.globals_mutable)
    counter = n_glob
    dirty_count = n_glob + 1
    size0 = n_glob + 2  # 4 KiB pages of memory 0 at begin: pages above need no journal copy
    fresh_flag = n_glob + 3  # TABLES_CHANGED | ELEM_DROPPED | DATA_DROPPED since cleared
    flag_bits = {op: TABLES_CHANGED for op in TABLE_MUTATORS} if m.has_table_mutation else {}
    if m.has_table_mutation:
        flag_bits[0xFC0D] = ELEM_DROPPED
    if m.has_data_drop:
        flag_bits[0xFC09] = DATA_DROPPED
    types = list(m.types)
    span_t = len(types)
    mark_t = span_t + 1
    save_t = span_t + 2  # () -> (): also $restore, $commit, $rollback
    pair_t = span_t + 3
    charge_t = span_t + 4
    types += [FuncType((I64, I64), ()), FuncType((I64,), ())]
    types += [FuncType((), ()), FuncType((I32,), ()), FuncType((I64,), (I64,))]
    span_f = n_imp + n_def
    mark_f = span_f + 1
    pair_f = span_f + 4
    charge_f = span_f + 7
    bytemap_pages = max(1, max_heap_bytes // PAGE_SIZE)
    saved = tuple(
        (i, m.global_types[i])
        for i, mut in enumerate(m.globals_mutable)
        if mut and m.global_types[i] in _GLOBAL_LOAD
    )
    globals_offset = bytemap_pages * 6
    A = I64 if mem64 else I32
    to64 = b"" if mem64 else b"\xad"  # i64.extend_i32_u
    sections = dict(m.sections)  # last one wins; customs dropped below

    new_code: list[bytes] = []
    code = sections.get(10, b"\x00")
    call_cost = [(import_costs or {}).get(name, 0) for _, name, _ in m.imports]
    type_arity = [(len(t.params), len(t.results)) for t in m.types]
    call_arity = [type_arity[t] for _, _, t in m.imports] + [type_arity[t] for t in m.functions]
    r = _Reader(code)
    for fi in range(r.u()):
        body_size = r.u()
        body_end = r.pos + body_size
        b = _Reader(code, r.pos, body_end)
        local_groups: list[bytes] = []
        nlocals = 0
        for _ in range(b.u()):
            cnt = b.u()
            t = b.byte()
            local_groups.append(uleb(cnt) + bytes([t]))
            nlocals += cnt
        ftype = types[m.functions[fi]]
        base = len(ftype.params) + nlocals
        # temporaries: a, s, n (address type), vi32, vi64, vf32, vf64, ti32 (also page)
        la, ls, ln, vi32, vi64, vf32, vf64, ti32 = range(base, base + 8)
        tmp_local = {I32: vi32, I64: vi64, F32: vf32, F64: vf64}
        uses_temps = False  # the temporaries are declared only where needed (zeroed per call)
        out: list[bytes] = [b""]  # slot 0: entry charge
        seg_slot = 0
        seg_cost = 1  # the IC charges every function call at least 1
        seg_check = True
        same = _SameBase(call_arity, type_arity, mem64)
        while b.pos < b.end:
            ins = _decode(b)
            raw = code[ins.start : ins.end]
            op = ins.op
            if op in _BULK_SIZE_I32 or op in (0xFC0A, 0xFC0B):  # charge the size operand
                wide_n = mem64 and op in (0xFC0A, 0xFC0B)
                charge = b"\x10" + uleb(charge_f)
                out.append(charge if wide_n else b"\xad" + charge + b"\xa7")
            if (
                track
                and op in _STORE_SIZE
                and ins.memidx == 0
                and not same.store_covered(ins.offset, _STORE_SIZE[op])
            ):
                uses_temps = True
                v = tmp_local[_STORE_VALTYPE[op]]
                # page p of the address: one byte-map load decides (see _pair_check)
                if mem64:
                    page = b"\x42" + sleb(_signed64(ins.offset)) + b"\x7c" if ins.offset else b""
                    page += b"\x42\x0c\x88\xa7"  # i64.shr_u 12; i32.wrap_i64
                elif ins.offset:
                    page = b"\xad\x42" + sleb(ins.offset) + b"\x7c\x42\x0c\x88\xa7"
                else:
                    page = b"\x41\x0c\x76"  # i32.shr_u 12
                out.append(
                    b"\x21" + uleb(v) + b"\x22" + uleb(la) + page
                    + b"\x22" + uleb(ti32) + b"\x2d\x40\x01\x00"  # tee p; i32.load8_u mem1
                    + b"\x45\x04\x40" + b"\x20" + uleb(ti32) + b"\x10" + uleb(pair_f) + b"\x0b"
                    + b"\x20" + uleb(la) + b"\x20" + uleb(v)
                )  # fmt: skip
            elif track and op == 0xFC0B and ins.memidx == 0:  # memory.fill d v n
                uses_temps = True
                out.append(
                    b"\x21" + uleb(ln) + b"\x21" + uleb(vi32) + b"\x21" + uleb(la)
                    + _bulk_guard(la, ln, to64, to64, span_f)
                    + b"\x20" + uleb(la) + b"\x20" + uleb(vi32) + b"\x20" + uleb(ln)
                )  # fmt: skip
            elif track and op == 0xFC0A and ins.memidx == 0:  # memory.copy d s n
                uses_temps = True
                out.append(
                    b"\x21" + uleb(ln) + b"\x21" + uleb(ls) + b"\x21" + uleb(la)
                    + _bulk_guard(la, ln, to64, to64, span_f)
                    + b"\x20" + uleb(la) + b"\x20" + uleb(ls) + b"\x20" + uleb(ln)
                )  # fmt: skip
            elif track and op == 0xFC08 and ins.memidx == 0:  # memory.init d s n
                uses_temps = True
                out.append(
                    b"\x21" + uleb(ti32) + b"\x21" + uleb(vi32) + b"\x21" + uleb(la)
                    + _bulk_guard(la, ti32, to64, b"\xad", span_f)
                    + b"\x20" + uleb(la) + b"\x20" + uleb(vi32) + b"\x20" + uleb(ti32)
                )  # fmt: skip
            if op in flag_bits:  # flag |= bit (not metered: not canister code)
                flag = uleb(fresh_flag)
                out.append(b"\x23" + flag + b"\x41" + uleb(flag_bits[op]) + b"\x72\x24" + flag)
            out.append(raw)
            same.step(op, raw)
            seg_cost += instruction_cost(op, mem64)
            if op == 0x10 and call_cost:  # a call of an import: its fixed System API cost
                callee = _Reader(raw, 1).u()
                if callee < n_imp:
                    seg_cost += call_cost[callee]
            if op in _SEGMENT_END:
                if seg_cost or seg_check:
                    out[seg_slot] = _global_set_code(counter, seg_cost, seg_check)
                seg_cost = 0
                seg_check = op == 0x03  # loop header
                out.append(b"")
                seg_slot = len(out) - 1
        if seg_cost or seg_check:
            out[seg_slot] = _global_set_code(counter, seg_cost, seg_check)
        if uses_temps:
            local_groups += [
                b"\x03" + bytes([A]),
                b"\x01\x7f", b"\x01\x7e", b"\x01\x7d", b"\x01\x7c", b"\x01\x7f",
            ]  # fmt: skip
        body = _vec(local_groups) + b"".join(out)
        new_code.append(uleb(len(body)) + body)
        r.pos = body_end

    if track:
        new_code += [
            _span_body(mark_f),
            _mark_body(A, dirty_count, bytemap_pages, size0),
            _save_globals_body(saved, globals_offset, size0, A),
            _restore_globals_body(saved, globals_offset),
            _pair_body(mark_f, A),
            _finish_body(A, dirty_count, bytemap_pages, None, size0),
            _finish_body(A, dirty_count, bytemap_pages, span_f + 3, size0),
        ]
    else:
        # keep the function index space identical: trivial helpers (pair takes a param)
        new_code += [b"\x02\x00\x0b"] * 7
    new_code.append(_charge_body(counter))  # metering, so present in every build
    sections[10] = _vec(new_code)
    sections[1] = _vec([_functype(t) for t in types])
    func_sec = _Reader(sections.get(3, b"\x00"))
    helpers = [span_t, mark_t, save_t, save_t, pair_t, save_t, save_t, charge_t]
    fidx = [func_sec.u() for _ in range(func_sec.u())] + helpers
    sections[3] = _vec([uleb(i) for i in fidx])
    if m.memory is not None:
        mem = m.memory
        flags = (0x04 if mem.is64 else 0) | (0x01 if mem.maximum is not None else 0)
        bits = uleb(mem.minimum) + (uleb(mem.maximum) if mem.maximum is not None else b"")
        mems = [bytes([flags]) + bits]
        if track:
            pages1 = -(-(globals_offset + 8 * len(saved)) // WASM_PAGE_SIZE)  # see _pair_body
            mems.append(b"\x01" + uleb(pages1) + uleb(pages1))
            mems.append((b"\x04" if mem64 else b"\x00") + b"\x00")
        sections[5] = _vec(mems)
    g = sections.get(6, b"\x00")
    gr = _Reader(g)
    ng = gr.u()
    sections[6] = (
        uleb(ng + 4)
        + g[gr.pos :]
        + b"\x7e\x01\x42\x00\x0b"  # counter
        + b"\x7f\x01\x41\x00\x0b"  # dirty count
        + b"\x7f\x01\x41\x00\x0b"  # size0
        + b"\x7f\x01\x41\x00\x0b"  # fresh-instance flag (__icp_tables)
    )
    ex = sections.get(7, b"\x00")
    er = _Reader(ex)
    ne = er.u()
    extra: list[bytes] = [
        _export("__icp_instr", 3, counter),
        _export("__icp_dirty", 3, dirty_count),
    ]
    mutable = tuple((i, m.global_types[i]) for i, mut in enumerate(m.globals_mutable) if mut)
    extra += [_export(f"__icp_g{i}", 3, i) for i, _ in mutable]
    if m.memory is not None:
        extra.append(_export("__icp_mem", 2, 0))
        if track:
            extra += [
                _export("__icp_bytemap", 2, 1),
                _export("__icp_journal", 2, 2),
                _export("__icp_size0", 3, size0),
                _export("__icp_save_globals", 0, span_f + 2),
                _export("__icp_restore_globals", 0, span_f + 3),
                _export("__icp_commit", 0, span_f + 5),
                _export("__icp_rollback", 0, span_f + 6),
            ]
    if m.start is not None:
        extra.append(_export("__icp_start", 0, m.start))
    n_tables = _Reader(sections.get(4, b"\x00")).u()
    if n_tables > 0:
        extra.append(_export("__icp_table", 1, 0))
    if flag_bits:
        extra.append(_export("__icp_tables", 3, fresh_flag))
    if m.has_table_mutation:
        extra += [_export(f"__icp_t{i}", 1, i) for i in range(n_tables)]
    sections[7] = uleb(ne + len(extra)) + ex[er.pos :] + b"".join(extra)
    sections.pop(8, None)
    out_mod = bytearray(WASM_MAGIC + WASM_VERSION)
    for sid in (1, 2, 3, 4, 5, 6, 7, 9, 12, 10, 11):
        if sid in sections:
            content = sections[sid]
            out_mod += bytes([sid]) + uleb(len(content)) + content
    return InstrumentedModule(
        wasm=bytes(out_mod),
        parsed=m,
        tracks_dirty_pages=track,
        bytemap_pages=bytemap_pages,
        mutable_globals=mutable,
        saved_globals=saved if track else (),
    )


def _bulk_guard(d: int, n: int, d64: bytes, n64: bytes, span_f: int) -> bytes:
    """Journal the pages a bulk write ``[d, d+n)`` touches unless ``fast[d >> 12]`` covers it.

    A write of at most 4096 bytes starting in page ``p`` ends in ``p`` or ``p+1``, which
    ``fast[p]`` promises are journaled (see ``_pair_body``); longer writes call ``$span``.
    """
    return (
        b"\x20" + uleb(n) + n64 + b"\x42\x80\x20\x56"  # n > 4096
        + b"\x20" + uleb(d) + d64 + b"\x42\x0c\x88\xa7\x2d\x40\x01\x00\x45"  # !fast[d>>12]
        + b"\x72\x04\x40"  # i32.or; if
        + b"\x20" + uleb(d) + d64 + b"\x20" + uleb(n) + n64 + b"\x10" + uleb(span_f)
        + b"\x0b"
    )  # fmt: skip


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _functype(t: FuncType) -> bytes:
    return b"\x60" + _vec([bytes([p]) for p in t.params]) + _vec([bytes([p]) for p in t.results])


def _export(name: str, kind: int, idx: int) -> bytes:
    raw = name.encode()
    return uleb(len(raw)) + raw + bytes([kind]) + uleb(idx)


def _span_body(mark_f: int) -> bytes:
    """``$span(start: i64, len: i64)``: mark pages ``start>>12 ..= (start+len-1)>>12``."""
    # params: 0 start, 1 len; locals: 2 p, 3 e
    body = (
        b"\x01\x02\x7e"  # 2 i64 locals
        b"\x20\x01\x50\x04\x40\x0f\x0b"  # len == 0 -> return
        b"\x20\x00\x42\x0c\x88\x21\x02"  # p = start >> 12
        b"\x20\x00\x20\x01\x7c\x42\x01\x7d\x42\x0c\x88\x21\x03"  # e = (start+len-1) >> 12
        b"\x03\x40"  # loop
        b"\x20\x02\x10"
        + uleb(mark_f)  # call $mark(p)
        + b"\x20\x02\x42\x01\x7c\x22\x02\x20\x03\x58\x0d\x00"  # p += 1; br_if p <= e
        b"\x0b\x0b"
    )
    return uleb(len(body)) + body


_GLOBAL_LOAD = {I32: (0x28, 0x42), I64: (0x29, 0x43), F32: (0x2A, 0x42), F64: (0x2B, 0x43)}
"""Value type -> (load opcode, memarg flags: natural alignment | memory index present)."""


def _save_globals_body(
    saved: tuple[tuple[int, int], ...], offset: int, size0: int, addr: int
) -> bytes:
    """``$save()`` (run at ``begin``): store every numeric mutable global at ``offset + 8k``
    of memory 1 and record the size of memory 0 in 4 KiB pages in global ``size0``."""
    body = b"\x00"  # no locals
    for k, (gi, t) in enumerate(saved):
        load, flags = _GLOBAL_LOAD[t]
        body += b"\x41\x00\x23" + uleb(gi) + bytes([load + 14, flags, 1]) + uleb(offset + 8 * k)
    body += b"\x3f\x00" + (b"\xa7" if addr == I64 else b"") + b"\x41\x04\x74\x24" + uleb(size0)
    body += b"\x0b"
    return uleb(len(body)) + body


def _restore_globals_body(saved: tuple[tuple[int, int], ...], offset: int) -> bytes:
    """``$restore()``: set every numeric mutable global back from memory 1."""
    body = b"\x00"
    for k, (gi, t) in enumerate(saved):
        load, flags = _GLOBAL_LOAD[t]
        body += b"\x41\x00" + bytes([load, flags, 1]) + uleb(offset + 8 * k) + b"\x24" + uleb(gi)
    body += b"\x0b"
    return uleb(len(body)) + body


def _charge_body(counter: int) -> bytes:
    """``$charge(n: i64) -> i64``: subtract ``n`` (saturating), trap if exhausted, return ``n``.

    Spec: dfinity/ic ``instrumentation.rs`` (the injected ``decr_instruction_counter``).
    """
    c = uleb(counter)
    body = (
        b"\x01\x01\x7e"  # one i64 local
        + b"\x23" + c + b"\x20\x00\x7d\x22\x01"  # new = counter - n
        + b"\x23" + c + b"\x55\x04\x7e\x42" + sleb(-(1 << 63)) + b"\x05\x20\x01\x0b"  # underflow
        + b"\x24" + c
        + b"\x23" + c + b"\x42\x00\x53\x04\x40\x00\x0b"  # counter < 0: unreachable
        + b"\x20\x00\x0b"
    )  # fmt: skip
    return uleb(len(body)) + body


def _finish_body(
    addr: int, dirty_count: int, bytemap_pages: int, restore_f: int | None, size0: int
) -> bytes:
    """``$commit()`` / ``$rollback()``: end the transaction in one call from the host.

    Both clear ``fast`` and ``journaled`` of every listed page and empty the list;
    ``$rollback`` first copies each journaled page back from memory 2 (pages above
    ``size0`` were never copied: the host drops grown memory) and finally calls
    ``$restore`` (the globals).  Cost: O(pages written).
    """
    wide = addr == I64
    to_a = b"\xad\x42\x0c\x86" if wide else b"\x41\x0c\x74"  # (as address) << 12
    page_len = b"\x42\x80\x20" if wide else b"\x41\x80\x20"
    cnt = uleb(dirty_count)
    copy_back = (
        b"\x20\x01\x23" + uleb(size0) + b"\x49\x04\x40"  # if p < size0
        + b"\x20\x01" + to_a + b"\x20\x00" + to_a + page_len + b"\xfc\x0a\x00\x02"
        + b"\x0b"
        if restore_f is not None
        else b""
    )  # fmt: skip
    body = (
        b"\x01\x02\x7f"  # locals: i, p (i32)
        + b"\x02\x40\x03\x40"  # block loop
        + b"\x20\x00\x23" + cnt + b"\x4f\x0d\x01"  # br_if 1 (i >= count)
        + b"\x20\x00\x41\x02\x74\x28\x42\x01" + uleb(2 * bytemap_pages) + b"\x21\x01"
        + copy_back
        + b"\x20\x01\x41\x00\x3a\x40\x01\x00"  # fast[p] = 0
        + b"\x20\x01\x41\x00\x3a\x40\x01" + uleb(bytemap_pages)  # journaled[p] = 0
        + b"\x20\x00\x41\x01\x6a\x21\x00\x0c\x00"  # i += 1; br 0
        + b"\x0b\x0b"
        + b"\x41\x00\x24" + cnt
        + (b"\x10" + uleb(restore_f) if restore_f is not None else b"")
        + b"\x0b"
    )  # fmt: skip
    return uleb(len(body)) + body


def _pair_body(mark_f: int, addr: int) -> bytes:
    """``$pair(p: i32)``: journal pages ``p`` and ``p+1``, then set ``fast[p]``.

    ``fast[p] = 1`` promises that every store starting in page ``p`` (at most 8 bytes,
    so it ends in ``p`` or ``p+1``) may skip the journal.  Page ``p+1`` is journaled
    only if it lies inside memory 0 now: a page beyond the current size can only be
    reached after ``memory.grow`` in this message, so it is above the size at
    ``begin`` and needs no journal (rollback drops grown memory).
    """
    wide = addr == I64
    body = (
        b"\x20\x00\xad\x10" + uleb(mark_f)  # $mark(p)
        # if (p+1) << 12 < memory.size(0) << 16: $mark(p+1)
        + b"\x20\x00\x41\x01\x6a\xad\x42\x0c\x86"
        + b"\x3f\x00" + (b"" if wide else b"\xad") + b"\x42\x10\x86"
        + b"\x54\x04\x40"
        + b"\x20\x00\x41\x01\x6a\xad\x10" + uleb(mark_f)
        + b"\x0b"
        # fast[p] = 1
        + b"\x20\x00\x41\x01\x3a\x40\x01\x00"
        + b"\x0b"
    )  # fmt: skip
    return uleb(len(b"\x00" + body)) + b"\x00" + body


def _mark_body(addr: int, dirty_count: int, bytemap_pages: int, size0: int) -> bytes:
    """``$mark(p: i64)``: journal page ``p`` of memory 0 on its first write.

    A page at or above ``size0`` (grown in this message) is listed but not copied.
    """
    wide = addr == I64
    to_addr = b"" if wide else b"\xa7"  # i32.wrap_i64
    cnt = b"\x23" + uleb(dirty_count)
    jmap_off = uleb(bytemap_pages)
    list_off = uleb(2 * bytemap_pages)
    body = (
        b"\x20\x00\xa7\x2d\x40\x01" + jmap_off  # i32.load8_u mem1 journaled[wrap p]
        + b"\x04\x40\x0f\x0b"  # if marked: return
        # capacity: ((count+1) << 12) > memory.size(2) << 16  -> grow 16 pages
        # (slots of uncopied pages are reserved too; never touched, they stay unbacked)
        + cnt + b"\xad\x42\x01\x7c\x42\x0c\x86"
        + b"\x3f\x02" + (b"" if wide else b"\xad") + b"\x42\x10\x86"
        + b"\x56\x04\x40"
        + (b"\x42\x10" if wide else b"\x41\x10") + b"\x40\x02"
        + (b"\x42\x7f\x51" if wide else b"\x41\x7f\x46")
        + b"\x04\x40\x00\x0b\x0b"
        + b"\x20\x00\x23" + uleb(size0) + b"\xad\x54\x04\x40"  # if p < size0: copy
        # memory.copy 2 0 (dst = count<<12, src = p<<12, len = 4096)
        + cnt + b"\xad\x42\x0c\x86" + to_addr
        + b"\x20\x00\x42\x0c\x86" + to_addr
        + (b"\x42\x80\x20" if wide else b"\x41\x80\x20")
        + b"\xfc\x0a\x02\x00"
        + b"\x0b"
        # list[count] = p   (i32.store mem1 offset=bytemap_pages)
        + cnt + b"\x41\x02\x74" + b"\x20\x00\xa7" + b"\x36\x42\x01" + list_off
        # journaled[p] = 1
        + b"\x20\x00\xa7\x41\x01\x3a\x40\x01" + jmap_off
        # count += 1
        + cnt + b"\x41\x01\x6a\x24" + uleb(dirty_count)
        + b"\x0b"
    )  # fmt: skip
    return uleb(len(b"\x00" + body)) + b"\x00" + body

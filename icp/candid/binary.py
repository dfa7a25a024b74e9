"""Candid binary format: ``encode`` values at types, ``decode`` bytes (optionally at types).

Theory of operation.  Encoding builds the type table of the given types and then
runs an *encoder* closure per type (compiled once and cached on the type).
Decoding parses and validates the header (magic, type table, argument types) into
:class:`~icp.candid.types.Type` objects, then runs a *decoder* closure compiled for
each pair (wire type, expected type).  Decoding and coercion happen in one pass:
a mismatch raises the internal :class:`_Mismatch`, which the nearest enclosing
``opt`` catches, rewinds, *skips* the wire value (still validating it) and yields
``null`` — the spec's "decoding at opt t any value that doesn't coerce gives null".
Malformed input raises :class:`CandidError` and is never caught.

Hostile input.  Every decode runs under :class:`DecodeLimits`:

* lengths (type table, fields, vectors, text, blobs, principals) are checked
  against the remaining bytes before anything is allocated;
* nesting depth is bounded (``max_depth``); the decoder never reaches Python's
  recursion limit, and :class:`RecursionError` is turned into :class:`CandidError`;
* a *cost budget* bounds all work: each composite, ``null`` or ``reserved``
  value decoded or skipped costs 1, each vector element 1 (charged for the
  whole vector before its first element), each record field 1.  Values that
  occupy bytes are bounded by the input length anyway; this budget bounds the
  zero-sized ones (``vec null``, ``vec record {}``, records of nulls reached
  through a type table) that cost no bytes.  The budget is
  ``base_cost + cost_per_byte * len(data)``.

Spec: Candid spec §"Binary Format", §"Coercion", §"Deserialisation" (and its note on
self-metering), §"Deserialisation of future types".
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from icp.candid.types import (
    FUNC,
    FUNC_ANNOTATIONS,
    OPT,
    PRIMITIVES,
    RECORD,
    SERVICE,
    VARIANT,
    VEC,
    Bool,
    CandidError,
    Empty,
    Float32,
    Float64,
    Func,
    FuncRef,
    Future,
    Int,
    Int8,
    Int16,
    Int32,
    Int64,
    Nat,
    Nat8,
    Nat16,
    Nat32,
    Nat64,
    Null,
    Opt,
    Prim,
    PrincipalType,
    Rec,
    Record,
    Reserved,
    Service,
    Some,
    Text,
    Type,
    Variant,
    Vec,
    is_null_like,
    is_subtype,
    resolve,
)
from icp.leb128 import encode_signed, encode_unsigned
from icp.principal import Principal as PrincipalId

__all__ = ["DecodeLimits", "decode", "encode"]

MAGIC = b"DIDL"


@attrs.frozen(slots=True)
class DecodeLimits:
    """Resource bounds of one decode (see the module docstring for the cost model).

    Spec: Candid spec §"Deserialisation" (implementations should self-meter).
    """

    max_depth: int = 100
    """Deepest nesting of values (and of skipped values) accepted."""
    base_cost: int = 1_000_000
    """Cost units granted to every message regardless of its length."""
    cost_per_byte: int = 8
    """Additional cost units granted per byte of input."""
    max_type_table: int = 10_000
    """Largest type table accepted (entries)."""
    max_decoders: int = 20_000
    """Most (wire type, expected type) decoders compiled for one message's header.

    Compilation happens once per header (plans are memoized), so this bound is
    separate from the cost budget: whether a message decodes never depends on
    what was decoded before."""


DEFAULT_LIMITS = DecodeLimits()


class _Mismatch(CandidError):
    """A coercion failure: recoverable at the nearest enclosing ``opt``."""


# ---------------------------------------------------------------------------------
# LEB128


def leb128(n: int) -> bytes:
    """Return the unsigned LEB128 encoding of ``n >= 0``."""
    try:
        return encode_unsigned(n)
    except ValueError as exc:
        raise CandidError(str(exc)) from None


sleb128 = encode_signed


_BITS7 = [format(i, "07b") for i in range(128)]
_MASK7 = bytes(i & 0x7F for i in range(256))


class _Reader:
    """Decoder state: input, position, cost spent and limit, depth."""

    __slots__ = ("cost", "data", "depth", "end", "limit", "max_depth", "pos")

    def __init__(self, data: bytes, limits: DecodeLimits) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.cost = 0
        self.limit = limits.base_cost + limits.cost_per_byte * len(data)
        self.depth = 0
        self.max_depth = limits.max_depth

    def fail(self, what: str) -> CandidError:
        return CandidError(f"{what} (at byte {self.pos})")

    def charge(self, n: int) -> None:
        self.cost += n
        if self.cost > self.limit:
            raise CandidError(
                f"decoding cost exceeds the budget of {self.limit} units "
                "(zero-sized or deeply repeated values?)"
            )

    def byte(self) -> int:
        pos = self.pos
        if pos >= self.end:
            raise self.fail("unexpected end of input")
        self.pos = pos + 1
        return self.data[pos]

    def take(self, n: int) -> bytes:
        pos = self.pos
        if n > self.end - pos:
            raise self.fail(f"length {n} overruns the input ({self.end - pos} bytes left)")
        self.pos = pos + n
        return self.data[pos : pos + n]

    def _leb_bytes(self) -> tuple[int, int]:
        """Return (start, stop) of the LEB128 number at the current position."""
        data, pos, end = self.data, self.pos, self.end
        start = pos
        while True:
            if pos >= end:
                raise self.fail("unexpected end of input inside a LEB128 number")
            b = data[pos]
            pos += 1
            if b < 0x80:
                break
        self.pos = pos
        return start, pos

    def leb(self) -> int:
        data, pos, end = self.data, self.pos, self.end
        result = shift = 0
        while pos < end:
            b = data[pos]
            pos += 1
            if b < 0x80:
                self.pos = pos
                return result | (b << shift)
            result |= (b & 0x7F) << shift
            shift += 7
            if shift >= 63:
                return self._long_leb()
        raise self.fail("unexpected end of input inside a LEB128 number")

    def _long_leb(self) -> int:
        # Long numbers: linear-time conversion (no quadratic shifting of big ints).
        start, stop = self._leb_bytes()
        groups = self.data[start:stop].translate(_MASK7)[::-1]
        return int("".join(map(_BITS7.__getitem__, groups)), 2)

    def sleb(self) -> int:
        data, pos = self.data, self.pos
        if pos < self.end:
            b = data[pos]
            if b < 0x80:
                self.pos = pos + 1
                return b - 128 if b & 0x40 else b
        start = self.pos
        n = self.leb()
        nbytes = self.pos - start
        if data[self.pos - 1] & 0x40:
            n -= 1 << (7 * nbytes)
        return n

    def leb_u32(self, what: str) -> int:
        n = self.leb()
        if n >= 2**32:
            raise self.fail(f"{what} {n} does not fit in 32 bits")
        return n


# ---------------------------------------------------------------------------------
# Header: type table and argument types


def _read_type_ref(r: _Reader, table: list[Rec]) -> Type:
    code = r.sleb()
    if code >= 0:
        if code >= len(table):
            raise r.fail(f"type index {code} is out of range (table has {len(table)})")
        return table[code]
    prim = PRIMITIVES.get(code)
    if prim is None:
        raise r.fail(f"type opcode {code} is not a primitive type")
    return prim


def _read_fields(r: _Reader, table: list[Rec], kind: str) -> dict[int, Type]:
    n = r.leb()
    if n > (r.end - r.pos) // 2:
        raise r.fail(f"{kind} with {n} fields overruns the input")
    fields: dict[int, Type] = {}
    last = -1
    for _ in range(n):
        fid = r.leb_u32(f"{kind} field id")
        if fid <= last:
            raise r.fail(f"{kind} field ids are not strictly increasing ({fid} after {last})")
        last = fid
        fields[fid] = _read_type_ref(r, table)
    return fields


def _read_text(r: _Reader, what: str) -> str:
    raw = r.take(r.leb())
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise r.fail(f"{what} is not valid UTF-8: {exc.reason}") from None


def _read_func(r: _Reader, table: list[Rec]) -> Func:
    args = _read_type_list(r, table)
    results = _read_type_list(r, table)
    n = r.leb()
    if n > r.end - r.pos:
        raise r.fail(f"function with {n} annotations overruns the input")
    anns = []
    by_code = {v: k for k, v in FUNC_ANNOTATIONS.items()}
    for _ in range(n):
        code = r.byte()
        if code not in by_code:
            raise r.fail(f"unknown function annotation {code}")
        anns.append(by_code[code])
    try:
        return Func(args, results, anns)
    except CandidError as exc:
        raise r.fail(str(exc)) from None


def _read_type_list(r: _Reader, table: list[Rec]) -> list[Type]:
    n = r.leb()
    if n > r.end - r.pos:
        raise r.fail(f"type list of length {n} overruns the input")
    return [_read_type_ref(r, table) for _ in range(n)]


def _read_header(r: _Reader, limits: DecodeLimits) -> list[Type]:
    if r.end < 4 or r.take(4) != MAGIC:
        raise CandidError("not Candid: missing magic bytes 'DIDL'")
    n = r.leb()
    if n > r.end - r.pos:
        raise r.fail(f"type table of {n} entries overruns the input")
    if n > limits.max_type_table:
        raise r.fail(f"type table of {n} entries exceeds the limit {limits.max_type_table}")
    table = [Rec(f"table{i}") for i in range(n)]
    for i in range(n):
        code = r.sleb()
        t: Type
        if code == OPT:
            t = Opt(_read_type_ref(r, table))
        elif code == VEC:
            t = Vec(_read_type_ref(r, table))
        elif code in (RECORD, VARIANT):
            fields = _read_fields(r, table, "record" if code == RECORD else "variant")
            t = Record(fields) if code == RECORD else Variant(fields)  # type: ignore[arg-type]
        elif code == FUNC:
            t = _read_func(r, table)
        elif code == SERVICE:
            m = r.leb()
            if m > (r.end - r.pos) // 2:
                raise r.fail(f"service with {m} methods overruns the input")
            methods: dict[str, Type] = {}
            last: bytes | None = None
            for _ in range(m):
                name = _read_text(r, "method name")
                key = name.encode("utf-8")
                if last is not None and key <= last:
                    raise r.fail(f"service methods are not sorted/unique at {name!r}")
                last = key
                methods[name] = _read_type_ref(r, table)
            t = Service(methods)
        elif code < -24:
            t = Future(code, r.take(r.leb()))
        else:
            raise r.fail(f"type table entry {i} has opcode {code}, not a composite type")
        table[i].define(t)
    args = _read_type_list(r, table)
    # Method types must be function types; check once the table is complete.
    for knot in table:
        t = resolve(knot)
        if isinstance(t, Service):
            for name, mt in t.methods:
                if type(resolve(mt)) is not Func:
                    raise CandidError(f"service method {name!r} does not have a function type")
    return args


# ---------------------------------------------------------------------------------
# Decoders: compiled per (wire type, expected type)

Decoder = Callable[[_Reader], Any]

_FIXED: dict[Prim, struct.Struct] = {
    Nat16: struct.Struct("<H"),
    Nat32: struct.Struct("<I"),
    Nat64: struct.Struct("<Q"),
    Int8: struct.Struct("<b"),
    Int16: struct.Struct("<h"),
    Int32: struct.Struct("<i"),
    Int64: struct.Struct("<q"),
    Float32: struct.Struct("<f"),
    Float64: struct.Struct("<d"),
}


def _fixed_reader(st: struct.Struct) -> Decoder:
    size = st.size
    unpack = st.unpack_from

    def dec(r: _Reader) -> Any:
        pos = r.pos
        if r.end - pos < size:
            raise r.fail("unexpected end of input")
        r.pos = pos + size
        return unpack(r.data, pos)[0]

    return dec


def _dec_null(r: _Reader) -> None:
    r.charge(1)


def _dec_bool(r: _Reader) -> bool:
    b = r.byte()
    if b > 1:
        raise r.fail(f"invalid bool byte {b}")
    return b == 1


def _dec_nat(r: _Reader) -> int:
    return r.leb()


def _dec_int(r: _Reader) -> int:
    return r.sleb()


def _dec_nat8(r: _Reader) -> int:
    return r.byte()


def _dec_text(r: _Reader) -> str:
    return _read_text(r, "text")


def _dec_principal(r: _Reader) -> PrincipalId:
    tag = r.byte()
    if tag != 1:
        raise r.fail(f"principal reference tag {tag} is not 1 (opaque references unsupported)")
    raw = r.take(r.leb())
    try:
        return PrincipalId(raw)
    except ValueError as exc:
        raise r.fail(str(exc)) from None


def _dec_empty(r: _Reader) -> Any:
    raise r.fail("no value has type empty")


def _dec_future(r: _Reader) -> None:
    m = r.leb()
    r.leb()
    r.take(m)
    r.charge(1)


_PRIM_DECODERS: dict[Prim, Decoder] = {
    Null: _dec_null,
    Bool: _dec_bool,
    Nat: _dec_nat,
    Int: _dec_int,
    Nat8: _dec_nat8,
    Text: _dec_text,
    Reserved: _dec_null,
    Empty: _dec_empty,
    PrincipalType: _dec_principal,
    **{p: _fixed_reader(s) for p, s in _FIXED.items()},
}


def _mismatch(w: Type, e: Type) -> Decoder:
    def dec(r: _Reader) -> Any:
        from icp.candid.text import type_to_text

        raise _Mismatch(
            f"wire type {type_to_text(w)} does not coerce to {type_to_text(e)} (at byte {r.pos})"
        )

    return dec


def _min_size_zero(t: Type, seen: set[int] | None = None, depth: int = 0) -> bool:
    """Return whether a value of wire type ``t`` may occupy zero bytes.

    Beyond 50 levels of records the answer is a conservative "yes" (the cost
    budget still bounds such values).
    """
    t = resolve(t)
    if t is Null or t is Reserved:
        return True
    if isinstance(t, Record):
        seen = seen if seen is not None else set()
        if id(t) in seen or depth > 50:
            return True
        seen.add(id(t))
        return all(_min_size_zero(f.type, seen, depth + 1) for f in t.fields)
    return False


_EAGER_DEPTH = 40
"""Type nesting compiled ahead of decoding; deeper parts compile on first use."""


class _Compiler:
    """Builds and memoizes decoder closures for (wire, expected) pairs and skippers.

    Compilation recurses over the types only ``_EAGER_DEPTH`` levels deep; deeper
    parts compile when a value first reaches them (then at most as deep as values
    may nest).  So deep type tables never exhaust the Python stack, and the result
    does not depend on the caller's stack depth.
    """

    def __init__(self, max_decoders: int = 20_000) -> None:
        self.pairs: dict[object, Decoder] = {}
        self.skips: dict[object, Decoder] = {}
        self.keep: list[Type] = []  # keep ids stable for the memo keys
        self.max_decoders = max_decoders
        self.depth = 0
        self.lazy = 0

    def _memo(
        self, table: dict[object, Decoder], key: object, build: Callable[[], Decoder]
    ) -> Decoder:
        found = table.get(key)
        if found is not None:
            return found
        cell: list[Decoder] = []

        def fwd(r: _Reader) -> Any:
            if not cell:  # compiled on first use (beyond the eager depth)
                saved = self.depth
                self.depth = 0
                self.lazy += 1
                try:
                    cell.append(build())
                finally:
                    self.depth = saved
                    self.lazy -= 1
                table[key] = cell[0]
            return cell[0](r)

        if not self.lazy and len(self.pairs) + len(self.skips) >= self.max_decoders:
            raise CandidError(
                f"the message's types need more than {self.max_decoders} decoders "
                "(DecodeLimits.max_decoders)"
            )
        table[key] = fwd
        if self.depth >= _EAGER_DEPTH:
            return fwd
        self.depth += 1
        try:
            d = build()
        finally:
            self.depth -= 1
        cell.append(d)
        table[key] = d
        return d

    # -- skipping (decode at reserved) --------------------------------------------

    def skip(self, w0: Type) -> Decoder:
        w = resolve(w0)
        self.keep.append(w)
        return self._memo(self.skips, id(w), lambda: self._build_skip(w))

    def _build_skip(self, w: Type) -> Decoder:
        if isinstance(w, Prim):
            return _PRIM_DECODERS[w]
        if isinstance(w, Future):
            return _dec_future
        return self._composite(w, Reserved)

    # -- decoding at an expected type -----------------------------------------------

    def pair(self, w0: Type, e0: Type) -> Decoder:
        w, e = resolve(w0), resolve(e0)
        self.keep.append(w)
        self.keep.append(e)
        return self._memo(self.pairs, (id(w), id(e)), lambda: self._build(w, e))

    def _build(self, w: Type, e: Type) -> Decoder:
        if w is Empty:
            return _dec_empty
        if e is Reserved:
            skip = self.skip(w)

            def reserved(r: _Reader) -> None:
                skip(r)
                return None

            return reserved
        if isinstance(e, Opt):
            return self._opt(w, e)
        if isinstance(w, Prim) and isinstance(e, Prim):
            if w is e:
                return _PRIM_DECODERS[w]
            if w is Nat and e is Int:
                return _dec_nat
            return _mismatch(w, e)
        if e is PrincipalType and isinstance(w, Service):
            return _dec_principal
        if type(w) is type(e) and not isinstance(w, Future):
            return self._composite(w, e)
        return _mismatch(w, e)

    def _opt(self, w: Type, e: Opt) -> Decoder:
        wrap = is_null_like(e.inner)
        if w is Null or w is Reserved:
            return _dec_null
        if isinstance(w, Future):
            return _dec_future
        if isinstance(w, Opt):
            inner = self.pair(w.inner, e.inner)
            skip_inner = self.skip(w.inner)
            same = resolve(w.inner)
            if isinstance(same, Prim) and same is resolve(e.inner) and not wrap:
                # Identical primitive content cannot fail to coerce: no rewind needed.

                def opt_prim(r: _Reader) -> Any:
                    r.charge(1)
                    tag = r.byte()
                    if tag == 0:
                        return None
                    if tag != 1:
                        raise r.fail(f"invalid opt tag {tag}")
                    return inner(r)

                return opt_prim

            def opt_opt(r: _Reader) -> Any:
                r.charge(1)
                tag = r.byte()
                if tag == 0:
                    return None
                if tag != 1:
                    raise r.fail(f"invalid opt tag {tag}")
                return _attempt(r, inner, skip_inner, wrap)

            return opt_opt
        inner = self.pair(w, e.inner)
        skip_w = self.skip(w)

        def opt_coerce(r: _Reader) -> Any:
            r.charge(1)
            return _attempt(r, inner, skip_w, wrap)

        return opt_coerce

    def _composite(self, w: Type, e: Type) -> Decoder:
        """Decode (or, with ``e is Reserved``, skip) a composite wire value."""
        skipping = e is Reserved
        if isinstance(w, Opt):
            # only reached when skipping (expected opt is handled by _opt)
            inner = self.skip(w.inner)

            def skip_opt(r: _Reader) -> None:
                r.charge(1)
                tag = r.byte()
                if tag == 1:
                    _nested(r, inner)
                elif tag != 0:
                    raise r.fail(f"invalid opt tag {tag}")

            return skip_opt
        if isinstance(w, Vec):
            return self._vec(w, e if not skipping else None)
        if isinstance(w, Record):
            return self._record(w, e if isinstance(e, Record) else None)
        if isinstance(w, Variant):
            return self._variant(w, e if isinstance(e, Variant) else None)
        if isinstance(w, Func):
            if not skipping and not is_subtype(w, e):
                return _mismatch(w, e)

            def func(r: _Reader) -> FuncRef:
                tag = r.byte()
                if tag != 1:
                    raise r.fail(f"function reference tag {tag} is not 1")
                p = _dec_principal(r)
                return FuncRef(p, _read_text(r, "method name"))

            return func
        if isinstance(w, Service):
            if not skipping and not is_subtype(w, e):
                return _mismatch(w, e)
            return _dec_principal
        raise AssertionError(f"unexpected wire type {w!r}")  # pragma: no cover

    def _vec(self, w: Vec, e: Type | None) -> Decoder:
        we = resolve(w.inner)
        if e is None:
            elem = self.skip(we)
            zero = _min_size_zero(we)

            def skip_vec(r: _Reader) -> None:
                n = r.leb()
                if not zero and n > r.end - r.pos:
                    raise r.fail(f"vector of {n} elements overruns the input")
                r.charge(n + 1)
                if we is Nat8:
                    r.take(n)
                    return
                r.depth += 1
                if r.depth > r.max_depth:
                    raise r.fail("values nest too deeply")
                try:
                    for _ in range(n):
                        elem(r)
                finally:
                    r.depth -= 1

            return skip_vec
        assert isinstance(e, Vec)
        ee = resolve(e.inner)
        if we is Nat8 and ee is Nat8:

            def blob(r: _Reader) -> bytes:
                n = r.leb()
                r.charge(1)
                return r.take(n)

            return blob
        elem = self.pair(we, ee)
        zero = _min_size_zero(we)

        def vec(r: _Reader) -> list[Any]:
            n = r.leb()
            if not zero and n > r.end - r.pos:
                raise r.fail(f"vector of {n} elements overruns the input")
            r.charge(n + 1)
            r.depth += 1
            if r.depth > r.max_depth:
                raise r.fail("values nest too deeply")
            try:
                return [elem(r) for _ in range(n)]
            finally:
                r.depth -= 1

        return vec

    def _record(self, w: Record, e: Record | None) -> Decoder:
        steps: list[tuple[Decoder, str | int | None]] = []
        defaults: list[tuple[str | int, Any]] = []
        missing: Decoder | None = None
        if e is None:
            for f in w.fields:
                steps.append((self.skip(f.type), None))
        else:
            for f in w.fields:
                g = e.by_id.get(f.id)
                if g is None:
                    steps.append((self.skip(f.type), None))
                else:
                    steps.append((self.pair(f.type, g.type), g.key))
            for g in e.fields:
                if g.id not in w.by_id:
                    if is_null_like(g.type):
                        defaults.append((g.key, None))
                    elif missing is None:
                        from icp.candid.text import type_to_text

                        msg = f"record field {g.key!r} : {type_to_text(g.type)} is missing"

                        def missing_field(r: _Reader, msg: str = msg) -> Any:
                            raise _Mismatch(f"{msg} (at byte {r.pos})")

                        missing = missing_field
        nfields = len(w.fields) + 1
        as_tuple = e is not None and e.is_tuple
        order = [g.key for g in e.fields] if as_tuple and e is not None else []
        fail = missing

        def record(r: _Reader) -> Any:
            r.charge(nfields)
            if fail is not None:
                fail(r)
            r.depth += 1
            if r.depth > r.max_depth:
                raise r.fail("values nest too deeply")
            try:
                out: dict[str | int, Any] = {}
                for dec, key in steps:
                    v = dec(r)
                    if key is not None:
                        out[key] = v
            finally:
                r.depth -= 1
            if e is None:
                return None
            for key, v in defaults:
                out[key] = v
            if as_tuple:
                return tuple(out[k] for k in order)
            return out

        return record

    def _variant(self, w: Variant, e: Variant | None) -> Decoder:
        arms: list[tuple[Decoder, str | int | None]] = []
        for f in w.fields:
            if e is None:
                arms.append((self.skip(f.type), None))
            else:
                g = e.by_id.get(f.id)
                if g is None:
                    arms.append((_mismatch_tag(f.key), None))
                else:
                    arms.append((self.pair(f.type, g.type), g.key))
        n = len(arms)

        def variant(r: _Reader) -> Any:
            r.charge(2)
            i = r.leb()
            if i >= n:
                raise r.fail(f"variant index {i} is out of range ({n} tags)")
            dec, key = arms[i]
            r.depth += 1
            if r.depth > r.max_depth:
                raise r.fail("values nest too deeply")
            try:
                v = dec(r)
            finally:
                r.depth -= 1
            if key is None:
                return None
            return {key: v}

        return variant


def _mismatch_tag(key: str | int) -> Decoder:
    def dec(r: _Reader) -> Any:
        raise _Mismatch(f"variant tag {key!r} is not in the expected type (at byte {r.pos})")

    return dec


def _nested(r: _Reader, dec: Decoder) -> Any:
    r.depth += 1
    if r.depth > r.max_depth:
        raise r.fail("values nest too deeply")
    try:
        return dec(r)
    finally:
        r.depth -= 1


def _attempt(r: _Reader, dec: Decoder, skip: Decoder, wrap: bool) -> Any:
    """Decode an opt's content; on a coercion failure rewind, skip it, and give null."""
    start = r.pos
    r.depth += 1
    if r.depth > r.max_depth:
        raise r.fail("values nest too deeply")
    try:
        try:
            v = dec(r)
        except _Mismatch:
            r.pos = start
            skip(r)
            return None
    finally:
        r.depth -= 1
    return Some(v) if wrap else v


def decode(
    data: bytes | bytearray | memoryview,
    types: Sequence[Type] | None = None,
    *,
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> list[Any]:
    """Decode a Candid message; at ``types`` (coercing per the spec) or by its wire types.

    Raises :class:`CandidError` for any malformed, hostile or non-coercible input.
    Spec: Candid spec §"Deserialisation", §"Coercion", §"Tuple types".
    """
    buf = bytes(data)
    r = _Reader(buf, limits)
    expected = tuple(types) if types is not None else None
    try:
        steps: list[tuple[Decoder | None, bool]] | None = None
        cache: list[Any] | None = None
        if expected:
            # Messages of one method share their header: reuse its parsed, compiled
            # plan (a memo on the immutable expected type; bounded in size).
            cache = expected[0]._cache.setdefault("dec", [])
            for header, ctypes, climits, csteps in cache:
                if (
                    climits == limits
                    and len(ctypes) == len(expected)
                    and all(a is b for a, b in zip(ctypes, expected, strict=True))
                    and buf.startswith(header)
                ):
                    steps = csteps
                    r.pos = len(header)
                    break
        if steps is None:
            steps = _plan(r, expected, limits)
            if cache is not None:
                if len(cache) >= _PLAN_CACHE_SIZE:
                    cache.pop(0)
                cache.append((buf[: r.pos], expected, limits, steps))
        r.charge(4 * r.pos)
        values: list[Any] = []
        for dec, keep in steps:
            v = None if dec is None else dec(r)
            if keep:
                values.append(v)
        if r.pos != r.end:
            raise r.fail(f"{r.end - r.pos} trailing bytes after the last argument")
        return values
    except _Mismatch as exc:
        raise CandidError(str(exc)) from None
    except RecursionError:
        raise CandidError("Candid value nests too deeply for this decoder") from None


_PLAN_CACHE_SIZE = 16


def _plan(
    r: _Reader, expected: tuple[Type, ...] | None, limits: DecodeLimits
) -> list[tuple[Decoder | None, bool]]:
    """Parse the header and compile one (decoder, keep-value) step per wire/expected arg."""
    wire = _read_header(r, limits)
    comp = _Compiler(limits.max_decoders)
    if expected is None:
        return [(comp.pair(w, w), True) for w in wire]
    steps: list[tuple[Decoder | None, bool]] = []
    for i, e in enumerate(expected):
        if i < len(wire):
            steps.append((comp.pair(wire[i], e), True))
        elif is_null_like(e):
            steps.append((None, True))
        else:
            raise CandidError(f"argument {i} is missing and its type is not optional")
    for w in wire[len(expected) :]:
        steps.append((comp.skip(w), False))
    return steps


# ---------------------------------------------------------------------------------
# Encoding

Encoder = Callable[[Any, list[bytes]], None]
_BYTE = [bytes((i,)) for i in range(256)]


def _enc_of(t0: Type) -> Encoder:
    t = resolve(t0)
    found = t._cache.get("enc")
    if found is not None:
        return found  # type: ignore[no-any-return]
    cell: list[Encoder] = []

    def fwd(v: Any, out: list[bytes]) -> None:
        cell[0](v, out)

    t._cache["enc"] = fwd
    try:
        enc = _build_enc(t)
    except BaseException:
        del t._cache["enc"]
        raise
    cell.append(enc)
    t._cache["enc"] = enc
    return enc


def _int_of(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise CandidError(f"{what} value must be int, got {type(v).__name__}")
    return v


def _fixed_enc(t: Prim, st: struct.Struct, lo: int, hi: int) -> Encoder:
    pack = st.pack

    def enc(v: Any, out: list[bytes]) -> None:
        v = _int_of(v, t.name)
        if not lo <= v <= hi:
            raise CandidError(f"{t.name} value {v} is out of range {lo}..{hi}")
        out.append(pack(v))

    return enc


def _float_enc(t: Prim, st: struct.Struct) -> Encoder:
    pack = st.pack

    def enc(v: Any, out: list[bytes]) -> None:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise CandidError(f"{t.name} value must be float, got {type(v).__name__}")
        try:
            out.append(pack(v))
        except (OverflowError, struct.error) as exc:
            raise CandidError(f"{t.name} value {v} does not fit: {exc}") from None

    return enc


def _principal_bytes(v: Any) -> bytes:
    if isinstance(v, PrincipalId):
        raw = v.raw
    elif isinstance(v, str):
        try:
            raw = PrincipalId.from_text(v).raw
        except ValueError as exc:
            raise CandidError(str(exc)) from None
    else:
        raise CandidError(f"principal value must be icp.Principal, got {type(v).__name__}")
    return b"\x01" + leb128(len(raw)) + raw


def _enc_principal(v: Any, out: list[bytes]) -> None:
    out.append(_principal_bytes(v))


def _text_bytes(v: Any) -> bytes:
    if not isinstance(v, str):
        raise CandidError(f"text value must be str, got {type(v).__name__}")
    try:
        raw = v.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CandidError(f"text is not encodable as UTF-8: {exc.reason}") from None
    return leb128(len(raw)) + raw


def _build_enc(t: Type) -> Encoder:
    if isinstance(t, Prim):
        if t is Null or t is Reserved:

            def enc_null(v: Any, out: list[bytes]) -> None:
                if t is Null and v is not None:
                    raise CandidError(f"null value must be None, got {v!r}")

            return enc_null
        if t is Bool:

            def enc_bool(v: Any, out: list[bytes]) -> None:
                if not isinstance(v, bool):
                    raise CandidError(f"bool value must be bool, got {type(v).__name__}")
                out.append(b"\x01" if v else b"\x00")

            return enc_bool
        if t is Nat:

            def enc_nat(v: Any, out: list[bytes]) -> None:
                v = _int_of(v, "nat")
                if v < 0:
                    raise CandidError(f"nat value {v} is negative")
                if v < 0x80:
                    out.append(_BYTE[v])
                else:
                    out.append(leb128(v))

            return enc_nat
        if t is Int:

            def enc_int(v: Any, out: list[bytes]) -> None:
                out.append(sleb128(_int_of(v, "int")))

            return enc_int
        if t is Nat8:

            def enc_nat8(v: Any, out: list[bytes]) -> None:
                v = _int_of(v, "nat8")
                if not 0 <= v <= 255:
                    raise CandidError(f"nat8 value {v} is out of range 0..255")
                out.append(_BYTE[v])

            return enc_nat8
        if t in (Nat16, Nat32, Nat64):
            bits = _FIXED[t].size * 8
            return _fixed_enc(t, _FIXED[t], 0, 2**bits - 1)
        if t in (Int8, Int16, Int32, Int64):
            bits = _FIXED[t].size * 8
            return _fixed_enc(t, _FIXED[t], -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        if t is Float32 or t is Float64:
            return _float_enc(t, _FIXED[t])
        if t is Text:

            def enc_text(v: Any, out: list[bytes]) -> None:
                out.append(_text_bytes(v))

            return enc_text
        if t is PrincipalType:
            return _enc_principal
        if t is Empty:

            def enc_empty(v: Any, out: list[bytes]) -> None:
                raise CandidError("no value has type empty")

            return enc_empty
    if isinstance(t, Opt):
        inner = _enc_of(t.inner)
        wrap = is_null_like(t.inner)

        def enc_opt(v: Any, out: list[bytes]) -> None:
            if v is None:
                out.append(b"\x00")
                return
            if isinstance(v, Some):
                v = v.value
            elif wrap:
                raise CandidError(
                    "the present case of an opt whose content may be null must be Some(...)"
                )
            out.append(b"\x01")
            inner(v, out)

        return enc_opt
    if isinstance(t, Vec):
        if resolve(t.inner) is Nat8:

            def enc_blob(v: Any, out: list[bytes]) -> None:
                if isinstance(v, (bytes, bytearray, memoryview)):
                    raw = bytes(v)
                elif isinstance(v, (list, tuple)):
                    try:
                        raw = bytes(v)
                    except (ValueError, TypeError) as exc:
                        raise CandidError(f"blob elements must be 0..255: {exc}") from None
                else:
                    raise CandidError(f"blob value must be bytes, got {type(v).__name__}")
                out.append(leb128(len(raw)))
                out.append(raw)

            return enc_blob
        elem = _enc_of(t.inner)

        def enc_vec(v: Any, out: list[bytes]) -> None:
            if isinstance(v, (str, bytes, dict)) or not isinstance(v, (list, tuple)):
                raise CandidError(f"vec value must be a list, got {type(v).__name__}")
            out.append(leb128(len(v)))
            for x in v:
                elem(x, out)

        return enc_vec
    if isinstance(t, Record):
        fields = [(f.key, _enc_of(f.type), is_null_like(f.type)) for f in t.fields]
        is_tuple = t.is_tuple
        n = len(fields)
        names = {f.key for f in t.fields}

        def enc_record(v: Any, out: list[bytes]) -> None:
            if is_tuple and isinstance(v, (tuple, list)):
                if len(v) != n:
                    raise CandidError(f"tuple record needs {n} values, got {len(v)}")
                for (_, enc, _), x in zip(fields, v, strict=True):
                    enc(x, out)
                return
            if not isinstance(v, dict):
                raise CandidError(f"record value must be a dict, got {type(v).__name__}")
            found = 0
            for key, enc, optional in fields:
                if key in v:
                    enc(v[key], out)
                    found += 1
                elif optional:
                    enc(None, out)
                else:
                    raise CandidError(f"record value lacks field {key!r}")
            if found != len(v):
                extra = sorted(map(repr, v.keys() - names))
                raise CandidError(f"record type has no field(s) {', '.join(extra)}")

        return enc_record
    if isinstance(t, Variant):
        arms = {f.key: (i, _enc_of(f.type)) for i, f in enumerate(t.fields)}

        def enc_variant(v: Any, out: list[bytes]) -> None:
            if not isinstance(v, dict) or len(v) != 1:
                raise CandidError(f"variant value must be a one-entry dict, got {v!r}")
            ((key, x),) = v.items()
            arm = arms.get(key)
            if arm is None:
                raise CandidError(f"variant has no tag {key!r}")
            out.append(leb128(arm[0]))
            arm[1](x, out)

        return enc_variant
    if isinstance(t, Func):

        def enc_func(v: Any, out: list[bytes]) -> None:
            if not isinstance(v, tuple) or len(v) != 2:
                raise CandidError("func value must be FuncRef(principal, method)")
            out.append(b"\x01")
            out.append(_principal_bytes(v[0]))
            out.append(_text_bytes(v[1]))

        return enc_func
    if isinstance(t, Service):
        return _enc_principal
    raise CandidError(f"cannot encode values of {t!r}")


class _TableBuilder:
    def __init__(self) -> None:
        self.index: dict[int, int] = {}
        self.entries: list[bytes] = []
        self.keep: list[Type] = []

    def ref(self, t0: Type) -> bytes:
        t = resolve(t0)
        if isinstance(t, Prim):
            return sleb128(t.code)
        i = self.index.get(id(t))
        if i is None:
            i = len(self.entries)
            self.index[id(t)] = i
            self.keep.append(t)
            self.entries.append(b"")
            self.entries[i] = self._entry(t)
        return sleb128(i)

    def _entry(self, t: Type) -> bytes:
        if isinstance(t, Opt):
            return sleb128(OPT) + self.ref(t.inner)
        if isinstance(t, Vec):
            return sleb128(VEC) + self.ref(t.inner)
        if isinstance(t, (Record, Variant)):
            parts = [sleb128(RECORD if isinstance(t, Record) else VARIANT), leb128(len(t.fields))]
            for f in t.fields:
                parts.append(leb128(f.id))
                parts.append(self.ref(f.type))
            return b"".join(parts)
        if isinstance(t, Func):
            parts = [sleb128(FUNC), leb128(len(t.args))]
            parts += [self.ref(a) for a in t.args]
            parts.append(leb128(len(t.results)))
            parts += [self.ref(a) for a in t.results]
            codes = sorted(FUNC_ANNOTATIONS[a] for a in t.annotations)
            parts.append(leb128(len(codes)) + bytes(codes))
            return b"".join(parts)
        if isinstance(t, Service):
            parts = [sleb128(SERVICE), leb128(len(t.methods))]
            for name, mt in t.methods:
                if type(resolve(mt)) is not Func:
                    raise CandidError(f"service method {name!r} must have a function type")
                parts.append(_text_bytes(name))
                parts.append(self.ref(mt))
            return b"".join(parts)
        if isinstance(t, Future):
            return sleb128(t.code) + leb128(len(t.payload)) + t.payload
        raise CandidError(f"cannot encode type {t!r}")  # pragma: no cover


def _header(types: tuple[Type, ...]) -> bytes:
    """Return magic, type table and argument types for ``types`` (memoized on types[0])."""
    if not types:
        return MAGIC + b"\x00\x00"
    cache = types[0]._cache
    key = ("header", *(id(t) for t in types))
    hit = cache.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], types, strict=True)):
        return hit[1]  # type: ignore[no-any-return]
    tb = _TableBuilder()
    arg_refs = b"".join(tb.ref(t) for t in types)
    header = b"".join([MAGIC, leb128(len(tb.entries)), *tb.entries, leb128(len(types)), arg_refs])
    if len(cache) < _PLAN_CACHE_SIZE * 2:
        cache[key] = (types, header)
    return header


def encode(types: Sequence[Type], values: Sequence[Any]) -> bytes:
    """Encode ``values`` at ``types`` as one Candid message (``DIDL`` ...).

    Raises :class:`CandidError` if a value does not fit its type.
    Spec: Candid spec §"Parameters and Results" (B(kv* : <datatype>*)).
    """
    types = list(types)
    values = list(values)
    if len(types) != len(values):
        raise CandidError(f"{len(types)} types but {len(values)} values")
    try:
        out = [_header(tuple(types))]
        for t, v in zip(types, values, strict=True):
            _enc_of(t)(v, out)
    except RecursionError:
        raise CandidError("value or type nests too deeply to encode") from None
    return b"".join(out)


def float_equal(a: float, b: float) -> bool:
    """Compare floats as Candid values (NaN equals NaN)."""
    return a == b or (math.isnan(a) and math.isnan(b))

"""Candid types: primitives, constructors, recursion knots, field-id hashing, subtyping.

Theory of operation: a Candid type is a tree of :class:`Type` objects.  Primitive
types are singletons (``Nat``, ``Text``, ...); constructed types are small
immutable objects (``Opt(Nat)``, ``Record({"a": Nat})``).  Recursion goes through a
:class:`Rec` knot, created empty and tied once with :meth:`Rec.define`.  Every
algorithm first calls :func:`resolve` to see through knots.  Types compare by
identity; structural comparison is the subtype relation :func:`is_subtype`.

Spec: Candid spec §"Type Structure", §"Upgrading and Subtyping" (dfinity/candid
spec/Candid.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import attrs

from icp.principal import Principal as PrincipalId

__all__ = [
    "Bool",
    "CandidError",
    "Empty",
    "Field",
    "Float32",
    "Float64",
    "Func",
    "FuncRef",
    "Future",
    "Int",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "Nat",
    "Nat8",
    "Nat16",
    "Nat32",
    "Nat64",
    "Null",
    "Opt",
    "Prim",
    "PrincipalType",
    "Rec",
    "Record",
    "Reserved",
    "Service",
    "Some",
    "Text",
    "Type",
    "Variant",
    "Vec",
    "idl_hash",
    "is_null_like",
    "is_subtype",
    "resolve",
]

FUNC_ANNOTATIONS = {"query": 1, "oneway": 2, "composite_query": 3}
"""Wire codes of function annotations. Spec: Candid spec §"Types" (T(query) = i8(1) ...)."""


class CandidError(ValueError):
    """Malformed, hostile or ill-typed Candid input, or a value that does not fit a type."""


def idl_hash(name: str) -> int:
    """Return the 32-bit field id of a field or tag name.

    Spec: Candid spec §"Shorthand: Symbolic Field Ids"
    (hash(id) = ∑ utf8(id)[i]·223^(k-i) mod 2^32).
    """
    h = 0
    for b in name.encode("utf-8"):
        h = (h * 223 + b) & 0xFFFFFFFF
    return h


@attrs.frozen(slots=True)
class Some:
    """The present case of ``opt t`` when ``null <: t`` (t is null, reserved or an opt).

    Only there is ``None`` ambiguous, so only there does the Python value carry this
    wrapper: ``opt opt nat`` values are ``None``, ``Some(None)`` and ``Some(5)``.
    """

    value: Any


class FuncRef(NamedTuple):
    """A public function reference: a service principal and a method name."""

    principal: PrincipalId
    method: str


class Type:
    """Base class of Candid types."""

    __slots__ = ("__weakref__", "_cache")

    def __init__(self) -> None:
        self._cache: dict[object, Any] = {}

    def __repr__(self) -> str:
        from icp.candid.text import type_to_text

        return f"<candid {type_to_text(self)}>"


class Prim(Type):
    """A primitive type, identified by its (negative) opcode."""

    __slots__ = ("code", "name")

    def __init__(self, code: int, name: str) -> None:
        super().__init__()
        self.code = code
        self.name = name


Null = Prim(-1, "null")
Bool = Prim(-2, "bool")
Nat = Prim(-3, "nat")
Int = Prim(-4, "int")
Nat8 = Prim(-5, "nat8")
Nat16 = Prim(-6, "nat16")
Nat32 = Prim(-7, "nat32")
Nat64 = Prim(-8, "nat64")
Int8 = Prim(-9, "int8")
Int16 = Prim(-10, "int16")
Int32 = Prim(-11, "int32")
Int64 = Prim(-12, "int64")
Float32 = Prim(-13, "float32")
Float64 = Prim(-14, "float64")
Text = Prim(-15, "text")
Reserved = Prim(-16, "reserved")
Empty = Prim(-17, "empty")
PrincipalType = Prim(-24, "principal")

PRIMITIVES: dict[int, Prim] = {
    p.code: p
    for p in (
        Null,
        Bool,
        Nat,
        Int,
        Nat8,
        Nat16,
        Nat32,
        Nat64,
        Int8,
        Int16,
        Int32,
        Int64,
        Float32,
        Float64,
        Text,
        Reserved,
        Empty,
        PrincipalType,
    )
}
PRIM_BY_NAME: dict[str, Prim] = {p.name: p for p in PRIMITIVES.values()}

OPT, VEC, RECORD, VARIANT, FUNC, SERVICE = -18, -19, -20, -21, -22, -23


class Opt(Type):
    """``opt t``."""

    __slots__ = ("inner",)

    def __init__(self, inner: Type) -> None:
        super().__init__()
        self.inner = inner


class Vec(Type):
    """``vec t`` (``blob`` is ``Vec(Nat8)``; its Python value is ``bytes``)."""

    __slots__ = ("inner",)

    def __init__(self, inner: Type) -> None:
        super().__init__()
        self.inner = inner


class Field(NamedTuple):
    """A record field or variant tag: 32-bit id, Python key (name or id), type."""

    id: int
    key: str | int
    type: Type


def _fields(spec: Mapping[str | int, Type] | Sequence[Type], kind: str) -> tuple[Field, ...]:
    items: Iterable[tuple[str | int, Type]]
    items = spec.items() if isinstance(spec, Mapping) else enumerate(spec)
    out: dict[int, Field] = {}
    for key, typ in items:
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise CandidError(f"{kind} field key must be str or int, got {key!r}")
        if isinstance(key, int):
            if not 0 <= key < 2**32:
                raise CandidError(f"{kind} field id {key} is outside 0..2^32-1")
            fid = key
        else:
            fid = idl_hash(key)
        if not isinstance(typ, Type):
            raise CandidError(f"{kind} field {key!r} has no Candid type: {typ!r}")
        if fid in out:
            raise CandidError(f"{kind} fields {out[fid].key!r} and {key!r} have the same id {fid}")
        out[fid] = Field(fid, key, typ)
    return tuple(out[k] for k in sorted(out))


class Record(Type):
    """``record { ... }`` from a mapping ``{name or id: type}`` or a sequence (a tuple).

    A record whose field ids are exactly 0..n-1 (n >= 1) is *tuple-like*; its Python
    value is a ``tuple``.  Other records are ``dict`` keyed by field name (or by
    int id for numeric fields).
    """

    __slots__ = ("by_id", "fields", "is_tuple")

    def __init__(self, fields: Mapping[str | int, Type] | Sequence[Type] = ()) -> None:
        super().__init__()
        self.fields = _fields(fields, "record")
        self.by_id = {f.id: f for f in self.fields}
        self.is_tuple = bool(self.fields) and all(f.key == i for i, f in enumerate(self.fields))


class Variant(Type):
    """``variant { ... }``; its Python value is a one-entry ``dict``."""

    __slots__ = ("by_id", "fields")

    def __init__(self, fields: Mapping[str | int, Type]) -> None:
        super().__init__()
        self.fields = _fields(fields, "variant")
        self.by_id = {f.id: f for f in self.fields}


class Func(Type):
    """``func (args) -> (results) annotations``; its Python value is a :class:`FuncRef`."""

    __slots__ = ("annotations", "args", "results")

    def __init__(
        self,
        args: Sequence[Type] = (),
        results: Sequence[Type] = (),
        annotations: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.args = tuple(args)
        self.results = tuple(results)
        anns = frozenset(annotations)
        bad = anns - FUNC_ANNOTATIONS.keys()
        if bad:
            raise CandidError(f"unknown function annotation(s) {sorted(bad)}")
        self.annotations = anns


class Service(Type):
    """``service { name : func }``; its Python value is an ``icp.Principal``."""

    __slots__ = ("by_name", "methods")

    def __init__(self, methods: Mapping[str, Type] | None = None) -> None:
        super().__init__()
        meths = dict(methods or {})
        self.methods: tuple[tuple[str, Type], ...] = tuple(
            sorted(meths.items(), key=lambda kv: kv[0].encode("utf-8"))
        )
        self.by_name = meths


class Future(Type):
    """A wire type with an opcode this implementation does not know (< -24).

    Spec: Candid spec §"Deserialisation of future types".
    """

    __slots__ = ("code", "payload")

    def __init__(self, code: int, payload: bytes) -> None:
        super().__init__()
        self.code = code
        self.payload = payload


class Rec(Type):
    """A recursion knot: create it, use it inside other types, then :meth:`define` it.

    >>> lst = Rec(); lst.define(Opt(Record({"head": Int, "tail": lst})))
    """

    __slots__ = ("name", "target")

    def __init__(self, name: str = "") -> None:
        super().__init__()
        self.target: Type | None = None
        self.name = name

    def define(self, target: Type) -> Rec:
        """Tie the knot; returns ``self``."""
        if self.target is not None:
            raise CandidError(f"recursive type {self.name or '?'} is already defined")
        self.target = target
        return self


def resolve(t: Type) -> Type:
    """Return the first non-knot type behind ``t``; reject undefined or vacuous knots.

    Spec: Candid spec §"Type Definitions" (definitions must be well-founded).
    """
    if type(t) is not Rec:
        return t
    seen: set[int] = set()
    cur: Type = t
    while isinstance(cur, Rec):
        if id(cur) in seen:
            raise CandidError(f"type {cur.name or '?'} is not well-founded (type t = t)")
        seen.add(id(cur))
        if cur.target is None:
            raise CandidError(f"recursive type {cur.name or '?'} was never defined")
        cur = cur.target
    return cur


def is_null_like(t: Type) -> bool:
    """Return whether ``null <: t`` (t is null, reserved or an opt).

    Spec: Candid spec §"Options" (premise ``not (null <: <datatype>)``).
    """
    r = resolve(t)
    return r is Null or r is Reserved or type(r) is Opt


def is_subtype(t1: Type, t2: Type) -> bool:
    """Decide ``t1 <: t2`` coinductively (recursive types assume pairs under test).

    Spec: Candid spec §"Upgrading and Subtyping" — §"Rules".
    """
    return _Subtyping().check(t1, t2)


class _Subtyping:
    __slots__ = ("assumed", "depth", "steps")

    MAX_STEPS = 100_000
    MAX_DEPTH = 150

    def __init__(self) -> None:
        self.assumed: set[tuple[int, int]] = set()
        self.steps = 0
        self.depth = 0

    def check(self, t1: Type, t2: Type) -> bool:
        self.steps += 1
        if self.steps > self.MAX_STEPS:
            raise CandidError("subtype check exceeds its step budget")
        self.depth += 1
        try:
            if self.depth > self.MAX_DEPTH:
                raise CandidError("types nest too deeply for the subtype check")
            return self._check(t1, t2)
        finally:
            self.depth -= 1

    def _check(self, t1: Type, t2: Type) -> bool:
        a, b = resolve(t1), resolve(t2)
        if a is b:
            return True
        if b is Reserved or a is Empty or type(b) is Opt:
            # The opt rules make every type a subtype of any option type.
            return True
        key = (id(a), id(b))
        if key in self.assumed:
            return True
        if type(a) is Prim or type(b) is Prim:
            return a is b or (a is Nat and b is Int) or (b is PrincipalType and type(a) is Service)
        self.assumed.add(key)
        ta, tb = type(a), type(b)
        if ta is not tb:
            return False
        if isinstance(a, Vec) and isinstance(b, Vec):
            return self.check(a.inner, b.inner)
        if isinstance(a, Record) and isinstance(b, Record):
            return self._records(a, b)
        if isinstance(a, Variant) and isinstance(b, Variant):
            for f in a.fields:
                g = b.by_id.get(f.id)
                if g is None or not self.check(f.type, g.type):
                    return False
            return True
        if isinstance(a, Func) and isinstance(b, Func):
            if a.annotations != b.annotations:
                return False
            return self._records(Record(b.args), Record(a.args)) and self._records(
                Record(a.results), Record(b.results)
            )
        if isinstance(a, Service) and isinstance(b, Service):
            for name, ft in b.methods:
                mine = a.by_name.get(name)
                if mine is None or not self.check(mine, ft):
                    return False
            return True
        return False

    def _records(self, a: Record, b: Record) -> bool:
        for g in b.fields:
            f = a.by_id.get(g.id)
            if f is None:
                if not is_null_like(g.type):
                    return False
            elif not self.check(f.type, g.type):
                return False
        return True

"""Candid textual syntax: types, ``.did`` service files, values (parse and print).

Theory of operation: one lexer feeds three recursive-descent parsers — types
(``record { a : nat }``), ``.did`` programs (type definitions and a service), and
values (``(record { a = 1 : nat })``).  A parsed value is first an untyped tree
(:class:`Node`) because its meaning depends on the type it is read at (``1`` may be
a ``nat8`` or a ``float64``); :func:`annotate` then turns it into the Python value
of an expected type, with the coercions of the binary decoder (extra record fields
are ignored, missing ``opt``/``null``/``reserved`` fields become ``None``).
:func:`value_to_text` prints a Python value at its type; reading that text back at
the same type gives the value again.

Spec: Candid spec §"Type Structure", §"Values" (and its syntactic shorthands),
§"Imports" (rejected here), §"Interfaces".
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import attrs

from icp.candid.binary import decode, encode
from icp.candid.types import (
    PRIM_BY_NAME,
    Bool,
    CandidError,
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
    idl_hash,
    is_null_like,
    is_subtype,
    resolve,
)
from icp.principal import Principal as PrincipalId

__all__ = [
    "DidFile",
    "Method",
    "Node",
    "annotate",
    "annotate_args",
    "args_to_text",
    "infer",
    "parse_args",
    "parse_did",
    "parse_nodes",
    "parse_type",
    "parse_value",
    "to_text",
    "type_to_text",
]

MAX_NESTING = 150
"""Deepest nesting the text parsers accept (they are recursive)."""

# ---------------------------------------------------------------------------------
# Lexer


class Tok(NamedTuple):
    kind: str  # "id", "text", "num", "float", "punct", "eof"
    value: Any
    pos: int


_NUM = re.compile(
    r"[+-]?(?:0x[0-9a-fA-F](?:_?[0-9a-fA-F])*(?:\.(?:[0-9a-fA-F](?:_?[0-9a-fA-F])*)?)?"
    r"(?:[pP][+-]?[0-9](?:_?[0-9])*)?"
    r"|[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?(?:[eE][+-]?[0-9](?:_?[0-9])*)?)"
)
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WS = re.compile(r"[ \t\r\n]+")
_PUNCT = ("->", "==", "!=", "!:", "(", ")", "{", "}", ";", ",", ":", "=", ".")
_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\", '"': b'"', "'": b"'"}
_HEX = set("0123456789abcdefABCDEF")


def _lex(src: str) -> list[Tok]:
    toks: list[Tok] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        m = _WS.match(src, i)
        if m:
            i = m.end()
            continue
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if src.startswith("/*", i):
            depth, j = 1, i + 2
            while depth:
                if j >= n:
                    raise CandidError(f"unterminated comment starting at offset {i}")
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            i = j
            continue
        if c == '"':
            value, i2 = _lex_text(src, i)
            toks.append(Tok("text", value, i))
            i = i2
            continue
        if src.startswith(("-inf", "+inf"), i) and not src[i + 4 : i + 5].isalnum():
            toks.append(Tok("float", src[i : i + 4], i))
            i += 4
            continue
        if c.isdigit() or (c in "+-" and i + 1 < n and src[i + 1].isdigit()):
            m = _NUM.match(src, i)
            assert m is not None
            s = m.group(0)
            is_hex = "0x" in s
            is_float = "." in s or (("p" in s or "P" in s) if is_hex else ("e" in s or "E" in s))
            toks.append(Tok("float" if is_float else "num", s, i))
            i = m.end()
            continue
        m = _ID.match(src, i)
        if m:
            toks.append(Tok("id", m.group(0), i))
            i = m.end()
            continue
        for p in _PUNCT:
            if src.startswith(p, i):
                toks.append(Tok("punct", p, i))
                i += len(p)
                break
        else:
            raise CandidError(f"unexpected character {c!r} at offset {i}")
    toks.append(Tok("eof", None, n))
    return toks


def _lex_text(src: str, i: int) -> tuple[bytes, int]:
    """Lex a string literal starting at ``src[i] == '"'``; return its bytes."""
    out = bytearray()
    j, n = i + 1, len(src)
    while True:
        if j >= n:
            raise CandidError(f"unterminated string starting at offset {i}")
        c = src[j]
        if c == '"':
            return bytes(out), j + 1
        if c == "\\":
            if j + 1 >= n:
                raise CandidError(f"unterminated escape at offset {j}")
            d = src[j + 1]
            if d in _ESCAPES:
                out += _ESCAPES[d]
                j += 2
            elif d == "u":
                if j + 2 >= n or src[j + 2] != "{":
                    raise CandidError(f"bad unicode escape at offset {j}")
                k = src.find("}", j + 3)
                if k < 0:
                    raise CandidError(f"unclosed unicode escape at offset {j}")
                digits = src[j + 3 : k]
                if not re.fullmatch(r"[0-9a-fA-F](?:_?[0-9a-fA-F])*", digits):
                    raise CandidError(f"bad unicode escape {src[j : k + 1]!r} at offset {j}")
                cp = int(digits.replace("_", ""), 16)
                if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                    raise CandidError(f"unicode escape {cp:#x} is not a scalar value")
                out += chr(cp).encode("utf-8")
                j = k + 1
            elif d in _HEX and j + 2 < n and src[j + 2] in _HEX:
                out.append(int(src[j + 1 : j + 3], 16))
                j += 3
            else:
                raise CandidError(f"unknown escape \\{d} at offset {j}")
        else:
            if ord(c) < 0x20:
                raise CandidError(f"control character {c!r} in string at offset {j}")
            if 0xD800 <= ord(c) <= 0xDFFF:
                raise CandidError(f"lone surrogate in string at offset {j}")
            out += c.encode("utf-8")
            j += 1


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CandidError(f"{what} is not valid UTF-8: {exc.reason}") from None


def _parse_nat_text(s: str) -> int:
    s = s.replace("_", "")
    if s.lower().startswith(("0x", "+0x", "-0x")):
        return int(s, 16)
    try:
        return int(s, 10)
    except ValueError:  # more decimal digits than Python converts; hex has no limit
        raise CandidError(
            f"decimal number of {len(s)} digits is too long; write it in hex (0x...)"
        ) from None


def _parse_float_text(s: str) -> float:
    s = s.replace("_", "")
    if s.lstrip("+-") == "inf":
        return float(s)
    low = s.lower()
    if "0x" in low:
        sign = -1.0 if s.startswith("-") else 1.0
        body = s.lstrip("+-")
        if "p" not in body.lower():
            body += "p0"
        return sign * float.fromhex(body)
    return float(s)


# ---------------------------------------------------------------------------------
# Parser base


class _Parser:
    def __init__(self, src: str, env: dict[str, Rec] | None = None) -> None:
        self.toks = _lex(src)
        self.i = 0
        self.env: dict[str, Rec] = env if env is not None else {}
        self.depth = 0

    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def err(self, msg: str) -> CandidError:
        t = self.tok
        shown = "end of input" if t.kind == "eof" else repr(t.value)
        return CandidError(f"{msg} at offset {t.pos} (found {shown})")

    def next(self) -> Tok:
        t = self.tok
        self.i += 1
        return t

    def is_punct(self, p: str) -> bool:
        t = self.tok
        return t.kind == "punct" and t.value == p

    def is_kw(self, kw: str) -> bool:
        t = self.tok
        return t.kind == "id" and t.value == kw

    def expect(self, p: str) -> None:
        if not self.is_punct(p):
            raise self.err(f"expected {p!r}")
        self.i += 1

    def accept(self, p: str) -> bool:
        if self.is_punct(p):
            self.i += 1
            return True
        return False

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.err("input nests too deeply")

    # -- names and numbers ---------------------------------------------------------

    def name(self) -> str:
        t = self.next()
        if t.kind == "id":
            return str(t.value)
        if t.kind == "text":
            return _utf8(t.value, "name")
        self.i -= 1
        raise self.err("expected a name")

    def nat(self) -> int:
        t = self.next()
        if t.kind != "num" or str(t.value).startswith(("+", "-")):
            self.i -= 1
            raise self.err("expected a natural number")
        return _parse_nat_text(t.value)

    # -- types ----------------------------------------------------------------------

    def datatype(self) -> Type:
        self.enter()
        try:
            return self._datatype()
        finally:
            self.depth -= 1

    def _datatype(self) -> Type:
        t = self.tok
        if t.kind != "id":
            raise self.err("expected a type")
        word = t.value
        self.i += 1
        if word in PRIM_BY_NAME:
            return PRIM_BY_NAME[word]
        if word == "opt":
            return Opt(self.datatype())
        if word == "vec":
            return Vec(self.datatype())
        if word == "blob":
            return Vec(Nat8)
        if word == "record":
            return self.record_type()
        if word == "variant":
            return self.variant_type()
        if word == "func":
            return self.functype()
        if word == "service":
            return self.actortype()
        knot = self.env.get(word)
        if knot is None:
            self.i -= 1
            raise self.err(f"unknown type name {word!r}")
        return knot

    def _field_key(self) -> tuple[str | int, bool]:
        """Parse ``name :`` / ``nat :`` if present; return (key, had_colon)."""
        t, after = self.tok, self.peek()
        if t.kind in ("id", "text", "num") and after.kind == "punct" and after.value == ":":
            key: str | int = self.nat() if t.kind == "num" else self.name()
            self.expect(":")
            return key, True
        return "", False

    def record_type(self) -> Record:
        self.expect("{")
        fields: dict[str | int, Type] = {}
        nxt = 0
        while not self.is_punct("}"):
            key, named = self._field_key()
            if not named:
                key = nxt
            typ = self.datatype()
            fid = key if isinstance(key, int) else idl_hash(key)
            if key in fields:
                raise self.err(f"duplicate record field {key!r}")
            fields[key] = typ
            nxt = fid + 1
            if not self.accept(";"):
                break
        self.expect("}")
        return Record(fields)

    def variant_type(self) -> Variant:
        self.expect("{")
        fields: dict[str | int, Type] = {}
        while not self.is_punct("}"):
            key, named = self._field_key()
            if named:
                typ = self.datatype()
            else:
                key = self.nat() if self.tok.kind == "num" else self.name()
                typ = Null
            if key in fields:
                raise self.err(f"duplicate variant tag {key!r}")
            fields[key] = typ
            if not self.accept(";"):
                break
        self.expect("}")
        return Variant(fields)

    def tuptype(self) -> list[Type]:
        self.expect("(")
        out: list[Type] = []
        while not self.is_punct(")"):
            t, after = self.tok, self.peek()
            if t.kind in ("id", "text") and after.kind == "punct" and after.value == ":":
                self.name()
                self.expect(":")
            out.append(self.datatype())
            if not self.accept(","):
                break
        self.expect(")")
        return out

    def functype(self) -> Func:
        args = self.tuptype()
        self.expect("->")
        results = self.tuptype()
        anns: list[str] = []
        while self.tok.kind == "id" and self.tok.value in ("query", "oneway", "composite_query"):
            anns.append(self.next().value)
        try:
            return Func(args, results, anns)
        except CandidError as exc:
            raise self.err(str(exc)) from None

    def actortype(self) -> Service:
        self.expect("{")
        methods: dict[str, Type] = {}
        while not self.is_punct("}"):
            name = self.name()
            self.expect(":")
            if self.is_punct("("):
                mt: Type = self.functype()
            else:
                mt = self.datatype()
            if name in methods:
                raise self.err(f"duplicate method {name!r}")
            methods[name] = mt
            if not self.accept(";"):
                break
        self.expect("}")
        return Service(methods)

    # -- type definitions ----------------------------------------------------------

    def defs(self, stop: tuple[str, ...]) -> list[tuple[str, Type]]:
        out: list[tuple[str, Type]] = []
        while True:
            if self.is_kw("import"):
                raise self.err("'import' is not supported; inline the imported definitions")
            if not self.is_kw("type"):
                return out
            self.i += 1
            name = self.name()
            self.expect("=")
            knot = self.env.get(name)
            if knot is None or knot.target is not None:
                raise self.err(f"type {name!r} is defined twice")
            knot.define(self.datatype())
            out.append((name, knot))
            ended = self.accept(";") or any(self.is_kw(s) for s in stop)
            if not ended and self.tok.kind != "eof":
                raise self.err("expected ';' after a type definition")

    def predeclare(self) -> None:
        """Create a knot for every ``type <name> =`` so definitions may refer forward."""
        for k in range(len(self.toks) - 2):
            a, b, c = self.toks[k], self.toks[k + 1], self.toks[k + 2]
            if (
                a.kind == "id"
                and a.value == "type"
                and b.kind in ("id", "text")
                and c.kind == "punct"
                and c.value == "="
            ):
                name = b.value if b.kind == "id" else _utf8(b.value, "name")
                if name in self.env:
                    raise CandidError(f"type {name!r} is defined twice")
                self.env[name] = Rec(name)

    def check_env(self) -> None:
        for name, knot in self.env.items():
            if knot.target is None:
                raise CandidError(f"type {name!r} is declared but not defined")
            resolve(knot)
            _check_methods(resolve(knot), name)


def _check_methods(t: Type, where: str) -> None:
    if isinstance(t, Service):
        for m, mt in t.methods:
            if type(resolve(mt)) is not Func:
                raise CandidError(f"method {m!r} of {where} does not have a function type")


# ---------------------------------------------------------------------------------
# Public type / .did API


def parse_type(src: str, env: dict[str, Rec] | None = None) -> Type:
    """Parse one Candid type, e.g. ``"record { a : nat; b : opt text }"``.

    Spec: Candid spec §"Core Grammar".
    """
    p = _Parser(src, dict(env or {}))
    t = p.datatype()
    if p.tok.kind != "eof":
        raise p.err("unexpected input after the type")
    return t


class Method(NamedTuple):
    """A service method: name, argument types, result types, annotations."""

    name: str
    args: tuple[Type, ...]
    results: tuple[Type, ...]
    annotations: frozenset[str]

    @property
    def is_query(self) -> bool:
        """Whether the method is a query or composite query."""
        return bool(self.annotations & {"query", "composite_query"})

    def encode_args(self, values: Sequence[Any]) -> bytes:
        """Encode a call's arguments. Spec: Candid spec §"Parameters and Results"."""
        return encode(self.args, values)

    def decode_args(self, data: bytes) -> list[Any]:
        """Decode a call's arguments at this method's types. Spec: Candid spec §"Coercion"."""
        return decode(data, self.args)

    def encode_results(self, values: Sequence[Any]) -> bytes:
        """Encode a reply. Spec: Candid spec §"Parameters and Results"."""
        return encode(self.results, values)

    def decode_results(self, data: bytes) -> list[Any]:
        """Decode a reply at this method's result types. Spec: Candid spec §"Coercion"."""
        return decode(data, self.results)


@attrs.frozen(slots=True)
class DidFile:
    """A parsed ``.did`` file: named types, the service (if any) and its init args.

    Spec: Candid spec §"Interfaces" (``<prog> ::= <def>;* <actor>?``).
    """

    types: dict[str, Type]
    service: Service | None
    init_args: tuple[Type, ...] | None

    @property
    def methods(self) -> dict[str, Method]:
        """The service's methods by name (empty without a service)."""
        if self.service is None:
            return {}
        out = {}
        for name, mt in self.service.methods:
            f = resolve(mt)
            assert isinstance(f, Func)
            out[name] = Method(name, f.args, f.results, f.annotations)
        return out

    def method(self, name: str) -> Method:
        """Return one method; raise :class:`CandidError` if the service lacks it."""
        found = self.methods.get(name)
        if found is None:
            raise CandidError(f"service has no method {name!r}")
        return found


def parse_did(src: str) -> DidFile:
    """Parse a ``.did`` file: ``type`` definitions then an optional ``service``.

    ``import`` is rejected with a clear :class:`CandidError`.
    Spec: Candid spec §"Interfaces", §"Type Definitions", §"Imports".
    """
    p = _Parser(src)
    p.predeclare()
    p.defs(("service",))
    service: Service | None = None
    init: tuple[Type, ...] | None = None
    if p.is_kw("service"):
        p.i += 1
        if p.tok.kind == "id" and not p.is_punct(":"):
            p.i += 1  # optional service name
        p.expect(":")
        if p.is_punct("("):
            init = tuple(p.tuptype())
            p.expect("->")
        if p.is_punct("{"):
            service = p.actortype()
        else:
            t = resolve(p.datatype())
            if not isinstance(t, Service):
                raise p.err("the service type must be a service")
            service = t
        p.accept(";")
    if p.tok.kind != "eof":
        raise p.err("unexpected input after the service")
    p.check_env()
    if service is not None:
        _check_methods(service, "the service")
    return DidFile({k: v for k, v in p.env.items()}, service, init)


# ---------------------------------------------------------------------------------
# Values: untyped nodes


class Node(NamedTuple):
    """A parsed, not yet typed value: ``kind`` and its payload."""

    kind: str  # nat int float bool null text opt vec blob record variant principal
    #            service func ann
    value: Any


class _ValueParser(_Parser):
    def args(self) -> list[Node]:
        self.expect("(")
        out: list[Node] = []
        while not self.is_punct(")"):
            out.append(self.annval())
            if not self.accept(","):
                break
        self.expect(")")
        return out

    def annval(self) -> Node:
        v = self.value()
        if self.accept(":"):
            return Node("ann", (v, self.datatype()))
        return v

    def value(self) -> Node:
        self.enter()
        try:
            return self._value()
        finally:
            self.depth -= 1

    def _value(self) -> Node:
        t = self.tok
        if t.kind == "num":
            self.i += 1
            s = str(t.value)
            return Node("int" if s[0] in "+-" else "nat", _parse_nat_text(s))
        if t.kind == "float":
            self.i += 1
            return Node("float", _parse_float_text(t.value))
        if t.kind == "text":
            self.i += 1
            return Node("text", t.value)
        if self.accept("("):
            v = self.annval()
            self.expect(")")
            return v
        if t.kind != "id":
            raise self.err("expected a value")
        word = t.value
        self.i += 1
        if word in ("true", "false"):
            return Node("bool", word == "true")
        if word == "null":
            return Node("null", None)
        if word in ("nan", "inf"):
            return Node("float", float(word))
        if word == "opt":
            return Node("opt", self.value())
        if word == "vec":
            self.expect("{")
            items: list[Node] = []
            while not self.is_punct("}"):
                items.append(self.annval())
                if not self.accept(";"):
                    break
            self.expect("}")
            return Node("vec", items)
        if word == "blob":
            tt = self.next()
            if tt.kind != "text":
                raise self.err("expected a string after 'blob'")
            return Node("blob", tt.value)
        if word == "record":
            return Node("record", self._fields(record=True))
        if word == "variant":
            fields = self._fields(record=False)
            if len(fields) != 1:
                raise self.err("a variant value has exactly one field")
            return Node("variant", fields[0])
        if word in ("principal", "service"):
            tt = self.next()
            if tt.kind != "text":
                raise self.err(f"expected a string after {word!r}")
            return Node(word, _principal(_utf8(tt.value, word)))
        if word == "func":
            tt = self.next()
            if tt.kind != "text":
                raise self.err("expected a string after 'func'")
            p = _principal(_utf8(tt.value, "func"))
            self.expect(".")
            return Node("func", FuncRef(p, self.name()))
        self.i -= 1
        raise self.err("expected a value")

    def _fields(self, record: bool) -> list[tuple[int, str | int, Node]]:
        self.expect("{")
        out: list[tuple[int, str | int, Node]] = []
        seen: set[int] = set()
        nxt = 0
        while not self.is_punct("}"):
            t, after = self.tok, self.peek()
            key: str | int
            if t.kind in ("id", "text", "num") and after.kind == "punct" and after.value == "=":
                key = self.nat() if t.kind == "num" else self.name()
                self.expect("=")
                v = self.annval()
            elif record:
                key = nxt
                v = self.annval()
            elif t.kind == "num":
                key, v = self.nat(), Node("null", None)
            else:
                key, v = self.name(), Node("null", None)
            fid = key if isinstance(key, int) else idl_hash(key)
            if fid >= 2**32:
                raise self.err(f"field id {fid} does not fit in 32 bits")
            if fid in seen:
                raise self.err(f"duplicate field {key!r}")
            seen.add(fid)
            out.append((fid, key, v))
            nxt = fid + 1
            if not self.accept(";"):
                break
        self.expect("}")
        return out


def _principal(text: str) -> PrincipalId:
    try:
        return PrincipalId.from_text(text)
    except ValueError as exc:
        raise CandidError(str(exc)) from None


def parse_nodes(src: str, env: dict[str, Rec] | None = None) -> list[Node]:
    """Parse a textual argument list ``( v, ... )`` into untyped nodes.

    Spec: Candid spec §"Values".
    """
    p = _ValueParser(src, dict(env or {}))
    out = p.args()
    if p.tok.kind != "eof":
        raise p.err("unexpected input after the arguments")
    return out


def parse_args(src: str, types: Sequence[Type] | None = None) -> list[Any]:
    """Parse ``"(v1, v2, ...)"``; at ``types`` if given, else by the values' own shape.

    Spec: Candid spec §"Values" (``<arg> ::= ( <annval>,* )``).
    """
    nodes = parse_nodes(src)
    if types is None:
        return [infer(n) for n in nodes]
    return annotate_args(nodes, types)


def parse_value(src: str, typ: Type | None = None) -> Any:
    """Parse one value, e.g. ``"record { a = 1 : nat }"``; at ``typ`` if given.

    Spec: Candid spec §"Values" (``<annval>``).
    """
    p = _ValueParser(src)
    node = p.annval()
    if p.tok.kind != "eof":
        raise p.err("unexpected input after the value")
    return infer(node) if typ is None else annotate(node, typ)


def annotate_args(nodes: Sequence[Node], types: Sequence[Type]) -> list[Any]:
    """Read textual arguments at a type sequence (extra ignored, missing optional null).

    Spec: Candid spec §"Coercion" — §"Tuple types".
    """
    out: list[Any] = []
    for i, t in enumerate(types):
        if i < len(nodes):
            out.append(annotate(nodes[i], t))
        elif is_null_like(t):
            out.append(None)
        else:
            raise CandidError(f"argument {i} is missing and its type is not optional")
    return out


def infer(node: Node) -> Any:
    """Return the Python value of an untyped node, choosing the obvious type.

    Numbers become ``int``/``float``, records with ids 0..n-1 tuples, others dicts.
    Spec: Candid spec §"Values" (values without a type annotation).
    """
    k, v = node
    if k in ("nat", "int", "float", "bool", "null", "principal", "service", "func"):
        return v
    if k == "text":
        return _utf8(v, "text")
    if k == "blob":
        return v
    if k == "opt":
        inner = infer(v)
        return Some(inner) if inner is None or isinstance(inner, Some) else inner
    if k == "vec":
        return [infer(x) for x in v]
    if k == "record":
        if v and all(key == i for i, (_, key, _) in enumerate(v)):
            return tuple(infer(x) for _, _, x in v)
        return {key: infer(x) for _, key, x in v}
    if k == "variant":
        _, key, x = v
        return {key: infer(x)}
    if k == "ann":
        return annotate(v[0], v[1])
    raise CandidError(f"unknown value kind {k}")  # pragma: no cover


_RANGES: dict[Prim, tuple[int, int]] = {
    Nat8: (0, 2**8 - 1),
    Nat16: (0, 2**16 - 1),
    Nat32: (0, 2**32 - 1),
    Nat64: (0, 2**64 - 1),
    Int8: (-(2**7), 2**7 - 1),
    Int16: (-(2**15), 2**15 - 1),
    Int32: (-(2**31), 2**31 - 1),
    Int64: (-(2**63), 2**63 - 1),
}


def annotate(node: Node, typ: Type, _depth: int = 0) -> Any:
    """Return the Python value of ``node`` read at ``typ``; :class:`CandidError` if it does not fit.

    Spec: Candid spec §"Coercion" (applied to textual values as the reference
    implementation does).
    """
    if _depth > MAX_NESTING:
        raise CandidError("value nests too deeply")
    d = _depth + 1
    t = resolve(typ)
    k, v = node
    if k == "ann":
        inner_node, at = v
        if not is_subtype(at, t):
            raise CandidError(
                f"annotation {type_to_text(at)} is not a subtype of {type_to_text(t)}"
            )
        annotate(inner_node, at, d)
        return annotate(inner_node, t, d)
    if t is Reserved:
        return None
    if isinstance(t, Opt):
        if k == "null":
            return None
        wrap = is_null_like(t.inner)
        if k == "opt":
            inner = annotate(v, t.inner, d)
        else:
            try:
                inner = annotate(node, t.inner, d)
            except CandidError:
                return None
        return Some(inner) if wrap else inner
    if isinstance(t, Prim):
        if t is Null and k == "null":
            return None
        if t is Bool and k == "bool":
            return v
        if t is Nat and k == "nat":
            return v
        if t is Int and k in ("nat", "int"):
            return v
        if t in _RANGES and k in ("nat", "int"):
            lo, hi = _RANGES[t]
            if not lo <= v <= hi:
                raise CandidError(f"{v} is out of range for {t.name}")
            return v
        if t in (Float32, Float64) and k in ("nat", "int", "float"):
            return _float_at(float(v), t)
        if t is Text and k == "text":
            return _utf8(v, "text")
        if t is PrincipalType and k in ("principal", "service"):
            return v
        raise CandidError(f"{_describe(node)} is not a value of type {t.name}")
    if isinstance(t, Vec):
        inner_t = resolve(t.inner)
        if k == "blob":
            if inner_t is Nat8:
                return bytes(v)
            return [annotate(Node("nat", b), inner_t, d) for b in v]
        if k != "vec":
            raise CandidError(f"{_describe(node)} is not a vector")
        items = [annotate(x, inner_t, d) for x in v]
        return bytes(items) if inner_t is Nat8 else items
    if isinstance(t, Record):
        if k != "record":
            raise CandidError(f"{_describe(node)} is not a record")
        given = {fid: x for fid, _, x in v}
        out: dict[str | int, Any] = {}
        for f in t.fields:
            if f.id in given:
                out[f.key] = annotate(given[f.id], f.type, d)
            elif is_null_like(f.type):
                out[f.key] = None
            else:
                raise CandidError(f"record value lacks field {f.key!r}")
        if t.is_tuple:
            return tuple(out[f.key] for f in t.fields)
        return out
    if isinstance(t, Variant):
        if k != "variant":
            raise CandidError(f"{_describe(node)} is not a variant")
        fid, key, x = v
        tag = t.by_id.get(fid)
        if tag is None:
            raise CandidError(f"variant tag {key!r} is not in the type")
        return {tag.key: annotate(x, tag.type, d)}
    if isinstance(t, Func):
        if k != "func":
            raise CandidError(f"{_describe(node)} is not a function reference")
        return v
    if isinstance(t, Service):
        if k != "service":
            raise CandidError(f"{_describe(node)} is not a service reference")
        return v
    raise CandidError(f"cannot read a value at type {type_to_text(t)}")


def _float_at(x: float, t: Type) -> float:
    if t is Float32 and math.isfinite(x):
        import struct

        try:
            return float(struct.unpack("<f", struct.pack("<f", x))[0])
        except OverflowError:
            raise CandidError(f"{x} does not fit in float32") from None
    return x


def _describe(node: Node) -> str:
    return f"{node.kind} value"


# ---------------------------------------------------------------------------------
# Printing


def type_to_text(typ: Type, _top: bool = True) -> str:
    """Print a type in Candid syntax; named knots print by name below the top.

    Spec: Candid spec §"Core Grammar" and its syntactic shorthands.
    """
    if isinstance(typ, Rec):
        if not _top or typ.target is None:
            return typ.name or "μ"
        return type_to_text(typ.target, False)
    t = typ
    if isinstance(t, Prim):
        return t.name
    if isinstance(t, Opt):
        return "opt " + type_to_text(t.inner, False)
    if isinstance(t, Vec):
        if resolve(t.inner) is Nat8 and not isinstance(t.inner, Rec):
            return "blob"
        return "vec " + type_to_text(t.inner, False)
    if isinstance(t, Record):
        if t.is_tuple:
            inner = "; ".join(type_to_text(f.type, False) for f in t.fields)
        else:
            inner = "; ".join(
                f"{_key_text(f.key)} : {type_to_text(f.type, False)}" for f in t.fields
            )
        return f"record {{ {inner} }}" if inner else "record {}"
    if isinstance(t, Variant):
        parts = []
        for f in t.fields:
            if resolve(f.type) is Null and not isinstance(f.type, Rec):
                parts.append(_key_text(f.key))
            else:
                parts.append(f"{_key_text(f.key)} : {type_to_text(f.type, False)}")
        inner = "; ".join(parts)
        return f"variant {{ {inner} }}" if inner else "variant {}"
    if isinstance(t, Func):
        return "func " + _functype_text(t)
    if isinstance(t, Service):
        meths = "; ".join(
            f"{_key_text(n)} : "
            + (_functype_text(resolve(m)) if not isinstance(m, Rec) else type_to_text(m, False))  # type: ignore[arg-type]
            for n, m in t.methods
        )
        return f"service {{ {meths} }}" if meths else "service {}"
    if isinstance(t, Future):
        return f"<future type {t.code}>"
    raise CandidError(f"cannot print type {t!r}")  # pragma: no cover


def _functype_text(f: Func) -> str:
    args = ", ".join(type_to_text(a, False) for a in f.args)
    res = ", ".join(type_to_text(a, False) for a in f.results)
    anns = "".join(" " + a for a in sorted(f.annotations))
    return f"({args}) -> ({res}){anns}"


_KEYWORDS = {
    "type", "import", "service", "func", "opt", "vec", "record", "variant", "blob",
    "principal", "query", "oneway", "composite_query", "true", "false", "null",
    *PRIM_BY_NAME,
}  # fmt: skip


def _key_text(key: str | int) -> str:
    if isinstance(key, int):
        return str(key)
    if _ID.fullmatch(key) and key not in _KEYWORDS:
        return key
    return _text_literal(key.encode("utf-8"))


def _text_literal(raw: bytes) -> str:
    """Quote bytes as a Candid string: printable UTF-8 kept, the rest escaped."""
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return '"' + "".join(f"\\{b:02x}" for b in raw) + '"'
    out = []
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _blob_literal(raw: bytes) -> str:
    out = []
    for b in raw:
        if 0x20 <= b < 0x7F and b not in (0x22, 0x5C):
            out.append(chr(b))
        else:
            out.append(f"\\{b:02x}")
    return '"' + "".join(out) + '"'


def to_text(value: Any, typ: Type) -> str:
    """Print a Python value at its type in Candid value syntax (no outer parentheses).

    Spec: Candid spec §"Values".
    """
    return _print_checked(value, typ)


def _print_checked(value: Any, typ: Type) -> str:
    try:
        return _print(value, typ, 0)
    except CandidError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise CandidError(f"value does not fit type {type_to_text(typ)}: {exc}") from None


def args_to_text(values: Sequence[Any], types: Sequence[Type]) -> str:
    """Print an argument list ``(v1, v2)``.

    Spec: Candid spec §"Values" (``<arg> ::= ( <annval>,* )``).
    """
    if len(values) != len(types):
        raise CandidError(f"{len(types)} types but {len(values)} values")
    return "(" + ", ".join(_print_checked(v, t) for v, t in zip(values, types, strict=True)) + ")"


def _print(v: Any, typ: Type, depth: int) -> str:
    if depth > MAX_NESTING:
        raise CandidError("value nests too deeply to print")
    d = depth + 1
    t = resolve(typ)
    if isinstance(t, Prim):
        if t is Null or t is Reserved:
            return "null"
        if t is Bool:
            return "true" if v else "false"
        if t in (Nat, Int) or t in _RANGES:
            n = int(v)
            if n.bit_length() > 12_000:  # beyond Python's decimal conversion limit
                return ("-" if n < 0 else "") + hex(abs(n))
            return str(n)
        if t in (Float32, Float64):
            fx = float(v)
            if math.isnan(fx):
                return "nan"
            if math.isinf(fx):
                return "inf" if fx > 0 else "-inf"
            return repr(fx)
        if t is Text:
            return _text_literal(str(v).encode("utf-8"))
        if t is PrincipalType:
            return f'principal "{_as_principal(v).to_text()}"'
        raise CandidError("no value has type empty")
    if isinstance(t, Opt):
        if v is None:
            return "null"
        if isinstance(v, Some):
            v = v.value
        return "opt " + _print(v, t.inner, d)
    if isinstance(t, Vec):
        if resolve(t.inner) is Nat8:
            return "blob " + _blob_literal(bytes(v))
        items = "; ".join(_print(x, t.inner, d) for x in v)
        return f"vec {{ {items} }}" if items else "vec {}"
    if isinstance(t, Record):
        if t.is_tuple and isinstance(v, (tuple, list)):
            parts = [_print(x, f.type, d) for f, x in zip(t.fields, v, strict=True)]
        else:
            parts = []
            for f in t.fields:
                x = v.get(f.key) if isinstance(v, dict) else None
                parts.append(f"{_key_text(f.key)} = {_print(x, f.type, d)}")
        inner = "; ".join(parts)
        return f"record {{ {inner} }}" if inner else "record {}"
    if isinstance(t, Variant):
        ((key, x),) = v.items()
        arm = next((f for f in t.fields if f.key == key), None)
        if arm is None:
            raise CandidError(f"variant has no tag {key!r}")
        if resolve(arm.type) is Null:
            return f"variant {{ {_key_text(key)} }}"
        return f"variant {{ {_key_text(key)} = {_print(x, arm.type, d)} }}"
    if isinstance(t, Func):
        p, m = v
        return f'func "{_as_principal(p).to_text()}".{_key_text(m)}'
    if isinstance(t, Service):
        return f'service "{_as_principal(v).to_text()}"'
    raise CandidError(f"cannot print a value of type {type_to_text(t)}")


def _as_principal(v: Any) -> PrincipalId:
    if isinstance(v, PrincipalId):
        return v
    if isinstance(v, str):
        return _principal(v)
    raise CandidError(f"expected a principal, got {type(v).__name__}")

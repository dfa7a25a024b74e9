"""Candid: the IC's interface description language and its binary and text formats.

``encode(types, values) -> bytes`` and ``decode(data, types=None) -> list`` convert
between Python values and Candid messages; ``parse_did`` reads ``.did`` files;
``parse_args``/``parse_value`` and ``to_text``/``args_to_text`` handle the textual
value syntax.  Every malformed or hostile input raises :class:`CandidError`
(a ``ValueError``).  See ``docs/candid.md`` for the Python value mapping.

Spec: Candid spec (dfinity/candid spec/Candid.md).
"""

from icp.candid.binary import DecodeLimits, decode, encode
from icp.candid.text import (
    DidFile,
    Method,
    args_to_text,
    parse_args,
    parse_did,
    parse_type,
    parse_value,
    to_text,
    type_to_text,
)
from icp.candid.types import (
    Bool,
    CandidError,
    Empty,
    Field,
    Float32,
    Float64,
    Func,
    FuncRef,
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
    is_subtype,
)

Blob = Vec(Nat8)
"""``blob``, i.e. ``vec nat8``; its Python value is ``bytes``."""

__all__ = [
    "Blob",
    "Bool",
    "CandidError",
    "DecodeLimits",
    "DidFile",
    "Empty",
    "Field",
    "Float32",
    "Float64",
    "Func",
    "FuncRef",
    "Int",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "Method",
    "Nat",
    "Nat8",
    "Nat16",
    "Nat32",
    "Nat64",
    "Null",
    "Opt",
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
    "args_to_text",
    "decode",
    "encode",
    "idl_hash",
    "is_subtype",
    "parse_args",
    "parse_did",
    "parse_type",
    "parse_value",
    "to_text",
    "type_to_text",
]

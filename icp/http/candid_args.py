"""Textual Candid arguments for the command line: types from a .did, a signature, or the values.

Spec: Candid spec §"Values" (textual values, annotations ``(v : t)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from icp.candid import (
    Blob,
    Bool,
    CandidError,
    Float64,
    Func,
    Int,
    Nat,
    Null,
    Opt,
    PrincipalType,
    Record,
    Text,
    Type,
    Vec,
    decode,
    encode,
    parse_did,
)
from icp.candid.text import Node, annotate_args, args_to_text, parse_nodes


def method_types(
    method: str, did: Path | None = None, signature: str | None = None
) -> tuple[list[Type], list[Type]] | None:
    """Return (argument types, result types) of ``method`` from a .did file or a signature.

    ``signature`` is written as in a .did: ``"(nat, text) -> (nat)"``.
    """
    if did is not None:
        service = parse_did(did.read_text()).service
        if service is None or method not in service.by_name:
            raise CandidError(f"{did} has no method {method!r}")
        func = service.by_name[method]
    elif signature is not None:
        service = parse_did(f"service : {{ m : {signature} }}").service
        assert service is not None
        func = service.by_name["m"]
    else:
        return None
    if not isinstance(func, Func):
        raise CandidError(f"{method!r} is not a method")
    return list(func.args), list(func.results)


def infer_type(node: Node) -> Type:
    """Return the obvious type of an untyped textual value (annotations win)."""
    kind, value = node
    simple: dict[str, Type] = {
        "nat": Nat, "int": Int, "float": Float64, "bool": Bool, "null": Null,
        "text": Text, "principal": PrincipalType, "blob": Blob,
    }  # fmt: skip
    if kind in simple:
        return simple[kind]
    if kind == "ann":
        return value[1]  # type: ignore[no-any-return]
    if kind == "opt":
        return Opt(infer_type(value) if value is not None else Null)
    if kind == "vec":
        return Vec(infer_type(value[0]) if value else Null)
    if kind == "record":
        return Record({key: infer_type(v) for _, key, v in value})
    raise CandidError(f"cannot guess the type of a {kind} value; annotate it or pass --did")


def encode_text_args(text: str | None, types: list[Type] | None) -> bytes:
    """Encode ``"(v, ...)"`` at ``types`` (or at the values' obvious types)."""
    if text is None or not text.strip():
        return encode(types or [], []) if not types else _missing(types)
    nodes = parse_nodes(text if text.strip().startswith("(") else f"({text})")
    if types is None:
        types = [infer_type(n) for n in nodes]
    return encode(types, annotate_args(nodes, types))


def _missing(types: list[Type]) -> bytes:
    raise CandidError(f"the method takes {len(types)} argument(s); give them as '(...)'")


def reply_text(data: bytes, types: list[Type] | None) -> str:
    """Render a Candid reply as text (at ``types`` when known)."""
    if types is not None:
        return args_to_text(decode(data, types), types)
    values: list[Any] = decode(data)
    return "(" + ", ".join(repr(v) for v in values) + ")"

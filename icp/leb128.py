"""LEB128: the variable-length integer encoding of Candid, Wasm and IC hashing.

One implementation for the whole package: Candid's binary format, Wasm module
rewriting, representation-independent hashing and hash-tree leaves all use it.

Spec: Candid spec §"Binary format" (``leb128``/``sleb128``); WebAssembly core spec
§5.2.2 "Integers"; IC interface spec §"Request ids" (nat values as LEB128).
"""

from __future__ import annotations


def encode_unsigned(n: int) -> bytes:
    """Return the shortest unsigned LEB128 encoding of ``n >= 0``."""
    if n < 0x80:
        if n < 0:
            raise ValueError(f"cannot encode negative {n} as unsigned LEB128")
        return bytes((n,))
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_signed(n: int) -> bytes:
    """Return the shortest signed LEB128 encoding of ``n``."""
    if -64 <= n < 64:
        return bytes((n & 0x7F,))
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if (n == 0 and not b & 0x40) or (n == -1 and b & 0x40):
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def decode_unsigned_exact(data: bytes) -> int:
    """Decode ``data`` as exactly one unsigned LEB128 number (no trailing bytes)."""
    value, shift = 0, 0
    for i, byte in enumerate(data):
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if i != len(data) - 1:
                raise ValueError("trailing bytes after a LEB128 number")
            return value
    raise ValueError("truncated LEB128 number")

"""Principals: the identifiers of users, canisters, nodes and subnets.

A principal is 0..29 bytes whose last byte names its *class* (opaque,
self-authenticating, derived, anonymous, reserved).  Its textual form is the
lower-case RFC 4648 base32 encoding (no padding) of ``CRC32(bytes) || bytes``,
split into groups of five characters by dashes.

Spec: interface spec §"Principals" (id-classes, textual-ids); see
``shared/spec/interface.md`` §3.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
import zlib
from typing import Final

import attrs

MAX_PRINCIPAL_BYTES: Final = 29
MAX_TEXT_LENGTH: Final = 63  # base32 of 4 + 29 bytes = 53 chars, plus 10 dashes

_TEXT_RE = re.compile(r"^[a-z2-7]{1,5}(-[a-z2-7]{1,5})*$")


class PrincipalClass(enum.Enum):
    """The class of a principal, given by its last byte (spec §id-classes)."""

    MANAGEMENT = "management"  # the empty principal ``aaaaa-aa``
    OPAQUE = "opaque"  # ends in 0x01; canister ids, node-issued ids
    SELF_AUTHENTICATING = "self_authenticating"  # SHA-224(DER key) || 0x02
    DERIVED = "derived"  # SHA-224(len(registrar)||registrar||nonce) || 0x03
    ANONYMOUS = "anonymous"  # exactly 0x04
    RESERVED = "reserved"  # ends in 0x7f
    UNKNOWN = "unknown"  # any other trailing byte (allowed, but not minted by the IC)


_CLASS_BYTES: Final = {
    0x01: PrincipalClass.OPAQUE,
    0x02: PrincipalClass.SELF_AUTHENTICATING,
    0x03: PrincipalClass.DERIVED,
    0x04: PrincipalClass.ANONYMOUS,
    0x7F: PrincipalClass.RESERVED,
}


def _crc32_be(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def _encode_text(raw: bytes) -> str:
    b32 = base64.b32encode(_crc32_be(raw) + raw).decode("ascii").lower().rstrip("=")
    return "-".join(b32[i : i + 5] for i in range(0, len(b32), 5))


@attrs.frozen(order=True, repr=False)
class Principal:
    """An IC principal (user, canister, node or subnet id).

    Hashable and ordered by its raw bytes, so it can key dicts and sorted maps.
    Spec: interface spec §"Principals".
    """

    raw: bytes = attrs.field(converter=bytes)

    @raw.validator
    def _check_length(self, _attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if len(value) > MAX_PRINCIPAL_BYTES:
            raise ValueError(
                f"a principal has at most {MAX_PRINCIPAL_BYTES} bytes, got {len(value)}"
            )

    # --- constructors -----------------------------------------------------------------

    @classmethod
    def from_bytes(cls, raw: bytes) -> Principal:
        """Return the principal with the given binary form."""
        return cls(raw)

    @classmethod
    def from_hex(cls, text: str) -> Principal:
        """Return the principal whose binary form is the given hex string."""
        return cls(bytes.fromhex(text))

    @classmethod
    def from_text(cls, text: str) -> Principal:
        """Parse the textual form, checking grouping, alphabet and checksum.

        Upper-case input is accepted (the spec's textual form is case-insensitive
        on decode) but the canonical re-encoding must otherwise match exactly.
        Raises ``ValueError`` saying what is wrong.
        """
        if not isinstance(text, str):
            raise TypeError(f"principal text must be str, not {type(text).__name__}")
        if len(text) > MAX_TEXT_LENGTH:
            raise ValueError(
                f"principal text is {len(text)} characters long; at most {MAX_TEXT_LENGTH}"
            )
        lowered = text.lower()
        if not _TEXT_RE.match(lowered):
            raise ValueError(
                f"principal text {text!r} must be groups of base32 characters (a-z, 2-7) "
                "separated by single dashes"
            )
        b32 = lowered.replace("-", "")
        padded = b32.upper() + "=" * (-len(b32) % 8)
        try:
            decoded = base64.b32decode(padded)
        except binascii.Error as exc:
            raise ValueError(f"principal text {text!r} is not valid base32: {exc}") from None
        if len(decoded) < 4:
            raise ValueError(f"principal text {text!r} is too short to hold a CRC32 checksum")
        checksum, raw = decoded[:4], decoded[4:]
        if len(raw) > MAX_PRINCIPAL_BYTES:
            raise ValueError(
                f"principal text {text!r} encodes {len(raw)} bytes; at most {MAX_PRINCIPAL_BYTES}"
            )
        if _crc32_be(raw) != checksum:
            raise ValueError(
                f"principal text {text!r} has a wrong CRC32 checksum "
                f"(expected {_crc32_be(raw).hex()}, found {checksum.hex()})"
            )
        canonical = _encode_text(raw)
        if canonical != lowered:
            raise ValueError(
                f"principal text {text!r} is not in canonical form; expected {canonical!r} "
                "(dashes every 5 characters)"
            )
        return cls(raw)

    @classmethod
    def management_canister(cls) -> Principal:
        """Return ``aaaaa-aa``, the management canister (empty blob)."""
        return cls(b"")

    @classmethod
    def anonymous(cls) -> Principal:
        """Return ``2vxsx-fae``, the anonymous principal (``0x04``)."""
        return cls(b"\x04")

    @classmethod
    def self_authenticating(cls, der_public_key: bytes) -> Principal:
        """Return the self-authenticating id ``SHA-224(der_public_key) || 0x02``."""
        return cls(hashlib.sha224(der_public_key).digest() + b"\x02")

    @classmethod
    def derived(cls, registrar: Principal, nonce: bytes) -> Principal:
        """Return the derived id ``SHA-224(len(registrar) || registrar || nonce) || 0x03``."""
        reg = registrar.raw
        return cls(hashlib.sha224(bytes([len(reg)]) + reg + nonce).digest() + b"\x03")

    @classmethod
    def reserved(cls, blob: bytes) -> Principal:
        """Return the reserved id ``blob || 0x7f`` (never addresses anything)."""
        if len(blob) >= MAX_PRINCIPAL_BYTES:
            raise ValueError("a reserved principal's blob must be shorter than 29 bytes")
        return cls(blob + b"\x7f")

    @classmethod
    def from_canister_index(cls, index: int) -> Principal:
        """Return the canister id with the given 64-bit index: ``u64_be(index) || 0x01 0x01``.

        Subnets are assigned contiguous ranges of such indices; the IC's local
        development instance starts application canisters at ``0x8000000000100000``.
        """
        if not 0 <= index < 2**64:
            raise ValueError(f"canister index {index} is outside 0..2**64-1")
        return cls(index.to_bytes(8, "big") + b"\x01\x01")

    # --- views ------------------------------------------------------------------------

    @property
    def bytes(self) -> bytes:
        """The binary form."""
        return self.raw

    def to_text(self) -> str:
        """Return the canonical textual form."""
        return _encode_text(self.raw)

    def to_hex(self) -> str:
        return self.raw.hex()

    @property
    def principal_class(self) -> PrincipalClass:
        if not self.raw:
            return PrincipalClass.MANAGEMENT
        if self.raw[-1] == 0x04 and len(self.raw) != 1:
            return PrincipalClass.UNKNOWN
        return _CLASS_BYTES.get(self.raw[-1], PrincipalClass.UNKNOWN)

    @property
    def is_anonymous(self) -> bool:
        return self.raw == b"\x04"

    @property
    def is_management_canister(self) -> bool:
        return self.raw == b""

    def canister_index(self) -> int | None:
        """Return the 64-bit index if this is a canister id of the form ``u64 || 01 01``."""
        if len(self.raw) == 10 and self.raw[8:] == b"\x01\x01":
            return int.from_bytes(self.raw[:8], "big")
        return None

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"Principal({self.to_text()!r})"


MANAGEMENT_CANISTER: Final = Principal(b"")
ANONYMOUS: Final = Principal(b"\x04")

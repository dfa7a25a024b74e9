"""Ledger accounts: the ICP ledger's AccountIdentifier and the ICRC-1 Account.

The ICP ledger predates ICRC-1 and addresses accounts by a 32-byte
*account identifier*: ``CRC32(h) || h`` where
``h = SHA-224("\\x0aaccount-id" || owner || subaccount)``; its text form is 64
lower-case hex characters.  ICRC-1 ledgers address ``{owner; subaccount}``
records directly and have a textual form of their own.

Spec: ICP ledger docs §"Accounts"
(https://internetcomputer.org/docs/current/references/ledger#_accounts);
ICRC-1 TextualEncoding.md (dfinity/ICRC-1 standards/ICRC-1/TextualEncoding.md);
``shared/spec/interface.md`` §3.4.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zlib
from typing import Final

import attrs

from icp.principal import Principal

SUBACCOUNT_LENGTH: Final = 32
DEFAULT_SUBACCOUNT: Final = bytes(SUBACCOUNT_LENGTH)
ACCOUNT_ID_DOMAIN: Final = b"\x0aaccount-id"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def _check_subaccount(subaccount: bytes) -> bytes:
    if len(subaccount) != SUBACCOUNT_LENGTH:
        raise ValueError(f"a subaccount is exactly 32 bytes, got {len(subaccount)}")
    return bytes(subaccount)


def _crc32_be(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


@attrs.frozen(order=True)
class AccountIdentifier:
    """A 32-byte ICP ledger account identifier (4-byte CRC32 + 28-byte SHA-224).

    Spec: ICP ledger docs §"Accounts".
    """

    raw: bytes = attrs.field(converter=bytes)

    @raw.validator
    def _check(self, _attribute: attrs.Attribute[bytes], value: bytes) -> None:
        if len(value) != 32:
            raise ValueError(f"an account identifier is 32 bytes, got {len(value)}")
        if _crc32_be(value[4:]) != value[:4]:
            raise ValueError(
                f"account identifier {value.hex()} has a wrong CRC32 checksum "
                f"(expected {_crc32_be(value[4:]).hex()})"
            )

    @classmethod
    def from_principal(
        cls, owner: Principal, subaccount: bytes = DEFAULT_SUBACCOUNT
    ) -> AccountIdentifier:
        """Derive the account identifier of ``owner`` and a 32-byte ``subaccount``."""
        digest = hashlib.sha224(
            ACCOUNT_ID_DOMAIN + owner.bytes + _check_subaccount(subaccount)
        ).digest()
        return cls(_crc32_be(digest) + digest)

    @classmethod
    def from_hex(cls, text: str) -> AccountIdentifier:
        """Parse 64 hex characters, checking the CRC32 prefix."""
        if not _HEX64.match(text):
            raise ValueError(
                f"an account identifier is 64 hex characters, got {len(text)} characters"
                if len(text) != 64
                else f"account identifier {text!r} contains non-hex characters"
            )
        return cls(bytes.fromhex(text))

    def to_hex(self) -> str:
        return self.raw.hex()

    def __str__(self) -> str:
        return self.to_hex()


@attrs.frozen
class Account:
    """An ICRC-1 account: an owner principal and an optional 32-byte subaccount.

    A missing subaccount and the all-zero subaccount name the same account, so
    equality, ordering and hashing use the effective subaccount.
    Spec: ICRC-1 §"Account"; TextualEncoding.md.
    """

    owner: Principal
    subaccount: bytes | None = attrs.field(default=None, eq=False, order=False)
    _effective: bytes = attrs.field(init=False, repr=False)

    @_effective.default
    def _effective_default(self) -> bytes:
        if self.subaccount is None:
            return DEFAULT_SUBACCOUNT
        return _check_subaccount(self.subaccount)

    @property
    def effective_subaccount(self) -> bytes:
        return self._effective

    def account_identifier(self) -> AccountIdentifier:
        """Return the legacy ICP ledger account identifier of this account."""
        return AccountIdentifier.from_principal(self.owner, self._effective)

    def to_text(self) -> str:
        """Return the ICRC-1 textual form ``<owner>[-<checksum>.<subaccount hex>]``."""
        if self._effective == DEFAULT_SUBACCOUNT:
            return self.owner.to_text()
        checksum = base64.b32encode(_crc32_be(self.owner.bytes + self._effective))
        compact = self._effective.hex().lstrip("0")
        return f"{self.owner.to_text()}-{checksum.decode().lower().rstrip('=')}.{compact}"

    @classmethod
    def from_text(cls, text: str) -> Account:
        """Parse the ICRC-1 textual form, rejecting non-canonical encodings."""
        if "." not in text:
            return cls(Principal.from_text(text))
        head, _, compact = text.rpartition(".")
        owner_text, dash, checksum = head.rpartition("-")
        if not dash or len(checksum) != 7:
            raise ValueError(f"account text {text!r} lacks the 7-character checksum before '.'")
        owner = Principal.from_text(owner_text)
        if not compact or compact.startswith("0"):
            raise ValueError(
                f"account text {text!r} is not canonical: the subaccount hex must be "
                "non-empty and have no leading zeros (omit a default subaccount)"
            )
        if len(compact) > 64 or not re.fullmatch(r"[0-9a-f]+", compact):
            raise ValueError(f"account text {text!r} has an invalid subaccount hex part")
        account = cls(owner, bytes.fromhex(compact.rjust(64, "0")))
        if account.to_text() != text:
            raise ValueError(f"account text {text!r} has a wrong checksum")
        return account

    def __str__(self) -> str:
        return self.to_text()

"""IC certificates: a hash tree, a BLS signature on its root, an optional NNS delegation.

Theory of operation: a subnet certifies its state tree by threshold-signing
``"\\x0Dic-state-root" || root_hash``.  The root (NNS) subnet's signature verifies
under the IC root key directly.  Any other subnet's certificate carries a
*delegation*: an NNS-signed certificate whose tree contains the subnet's public key at
``/subnet/<subnet_id>/public_key`` and the canister ids it may speak for — either
``/subnet/<subnet_id>/canister_ranges`` (one CBOR list of closed ranges) or, in the
newer sharded layout, ``/canister_ranges/<subnet_id>/<lower_bound>`` (one CBOR list per
shard).  Verification checks, in order: the delegation certificate has no delegation
of its own, verifies under the root key and, when asked, is recent enough; the
effective canister id lies in a certified range of that subnet (or the effective
subnet id is the delegated subnet); the outer tree is well formed and the signature
verifies under the delegated key; and, when a clock reading is given, ``/time`` is
within the allowed skew.  Every failure raises ``CertificateError`` with its reason.

Spec: interface spec §"Certification", §"Delegation", §"Canister ranges" (sharded
layout ``/canister_ranges/<subnet_id>/<canister_id>``); ``shared/spec/interface.md``
§2.2–2.3; ``shared/spec/protocol.md`` §3.3–3.4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from icp.crypto import bls, hashtree
from icp.crypto.errors import CertificateError, HashTreeError, InvalidKeyError
from icp.crypto.hashing import (
    IC_STATE_ROOT_DOMAIN,
    EncodingError,
    cbor_decode,
    cbor_encode,
    domain_sep,
)
from icp.leb128 import decode_unsigned_exact
from icp.principal import Principal

DEFAULT_MAX_TIME_SKEW_NS: Final = 5 * 60 * 1_000_000_000
"""Agents accept a certificate whose /time is within ±5 minutes of their clock."""

DEFAULT_DELEGATION_MAX_AGE_NS: Final = 30 * 24 * 3600 * 1_000_000_000
"""Oldest accepted delegation certificate (agent-js: 30 days)."""


def certification_message(root_hash: bytes) -> bytes:
    """Return the bytes a subnet signs to certify ``root_hash``: ``"\\x0Dic-state-root" || root``.

    Spec: interface spec §"Certification".
    """
    return domain_sep(IC_STATE_ROOT_DOMAIN) + bytes(root_hash)


def _principal_bytes(value: Principal | bytes | None) -> bytes | None:
    if value is None:
        return None
    return value.raw if isinstance(value, Principal) else bytes(value)


@attrs.frozen(slots=True)
class Delegation:
    """An NNS delegation: the delegated subnet and the NNS certificate vouching for its key."""

    subnet_id: bytes = attrs.field(converter=bytes)  # raw principal bytes of the subnet
    certificate: bytes = attrs.field(converter=bytes)  # CBOR of an NNS certificate


@attrs.frozen(slots=True)
class Certificate:
    """A (possibly pruned) state tree, the subnet's signature on its root, and a delegation."""

    tree: hashtree.HashTree
    signature: bytes = attrs.field(converter=bytes)  # 48-byte BLS signature
    delegation: Delegation | None = None

    # ------------------------------------------------------------------ encoding

    @classmethod
    def from_cbor(cls, data: bytes) -> Certificate:
        """Decode a certificate ``55799({tree, signature, ?delegation})``.

        Raises ``CertificateError`` on malformed CBOR or missing/ill-typed fields.
        Spec: interface spec §"Encoding of certificates".
        """
        try:
            value = cbor_decode(bytes(data))
        except EncodingError as exc:
            raise CertificateError(f"malformed certificate: {exc}") from None
        if not isinstance(value, Mapping):
            raise CertificateError("a certificate is a CBOR map")
        if "tree" not in value or not isinstance(value.get("signature"), bytes):
            raise CertificateError("a certificate needs a tree and a byte-string signature")
        try:
            tree = hashtree.from_cbor_value(value["tree"])
        except HashTreeError as exc:
            raise CertificateError(f"malformed certificate tree: {exc}") from None
        delegation = None
        if "delegation" in value:
            raw = value["delegation"]
            if (
                not isinstance(raw, Mapping)
                or set(raw) != {"subnet_id", "certificate"}
                or not isinstance(raw["subnet_id"], bytes)
                or not isinstance(raw["certificate"], bytes)
            ):
                raise CertificateError("a delegation is {subnet_id: bytes, certificate: bytes}")
            delegation = Delegation(raw["subnet_id"], raw["certificate"])
        return cls(tree, value["signature"], delegation)

    def to_cbor(self) -> bytes:
        """Encode as the IC does: tag 55799 around ``{tree, signature, ?delegation}``."""
        body: dict[str, object] = {
            "tree": hashtree.to_cbor_value(self.tree),
            "signature": self.signature,
        }
        if self.delegation is not None:
            body["delegation"] = {
                "subnet_id": self.delegation.subnet_id,
                "certificate": self.delegation.certificate,
            }
        return cbor_encode(body)

    @classmethod
    def create(
        cls,
        tree: hashtree.HashTree,
        signature: bytes,
        delegation: Delegation | None = None,
    ) -> Certificate:
        """Assemble a certificate from a tree, the subnet's threshold signature on
        ``certification_message(tree.digest())`` and an optional NNS delegation.

        Raises ``CertificateError`` if the signature is not a 48-byte G1 point or the
        delegation certificate itself carries a delegation.
        Spec: interface spec §"Certification".
        """
        if len(signature) != bls.SIGNATURE_SIZE:
            raise CertificateError(f"a certificate signature is 48 bytes, got {len(signature)}")
        if delegation is not None and Certificate.from_cbor(delegation.certificate).delegation:
            raise CertificateError("a delegation certificate must not carry a delegation")
        return cls(tree, signature, delegation)

    # ------------------------------------------------------------------ reading

    def root_hash(self) -> bytes:
        """Return the tree's root hash (what the signature covers)."""
        return self.tree.digest()

    def lookup(self, path: hashtree.Path) -> hashtree.LookupResult:
        """Look up ``path`` in the (unverified) tree: Found / Absent / Unknown / Error.

        Spec: interface spec §"Lookup".
        """
        return hashtree.lookup_path(self.tree, path)

    def lookup_value(self, path: hashtree.Path) -> bytes:
        """Return the value at ``path``; raise ``CertificateError`` unless it is Found."""
        result = self.lookup(path)
        if result.value is None:
            shown = "/".join(p if isinstance(p, str) else p.hex() for p in path)
            raise CertificateError(f"/{shown} is {result.status.value} in the certificate")
        return result.value

    def time(self) -> int:
        """Return ``/time`` (nanoseconds since the epoch); every certificate has it.

        Spec: interface spec §"State tree" (``/time``).
        """
        raw = self.lookup_value(["time"])
        try:
            return decode_unsigned_exact(raw)
        except ValueError as exc:
            raise CertificateError(f"/time is not a LEB128 nat: {exc}") from None

    # ------------------------------------------------------------------ verifying

    def verify(
        self,
        root_key_der: bytes,
        effective_canister_id: Principal | bytes | None = None,
        *,
        effective_subnet_id: Principal | bytes | None = None,
        now: int | None = None,
        max_time_skew_ns: int = DEFAULT_MAX_TIME_SKEW_NS,
        delegation_max_age_ns: int = DEFAULT_DELEGATION_MAX_AGE_NS,
    ) -> None:
        """Verify the certificate against the IC root key; raise ``CertificateError`` if not.

        With ``effective_canister_id`` a delegated certificate must cover that canister
        (either canister-range layout); with ``effective_subnet_id`` it must be that
        subnet's.  With ``now`` (ns) the certificate's ``/time`` must be within
        ``max_time_skew_ns`` of it and the delegation no older than
        ``delegation_max_age_ns``.
        Spec: interface spec §"Certification" (verify_cert, check_delegation);
        ``shared/spec/interface.md`` §2.2.
        """
        key = self._signing_key(
            root_key_der,
            _principal_bytes(effective_canister_id),
            _principal_bytes(effective_subnet_id),
            now,
            delegation_max_age_ns,
        )
        try:
            hashtree.check_well_formed(self.tree)
        except HashTreeError as exc:
            raise CertificateError(f"malformed certificate tree: {exc}") from None
        if not bls.verify(key, certification_message(self.root_hash()), self.signature):
            raise CertificateError("invalid certificate signature")
        if now is not None:
            skew = self.time() - now
            if abs(skew) > max_time_skew_ns:
                direction = "ahead of" if skew > 0 else "behind"
                raise CertificateError(
                    f"certificate /time is {abs(skew) / 1e9:.0f} s {direction} the local clock"
                )

    def _signing_key(
        self,
        root_key_der: bytes,
        canister_id: bytes | None,
        subnet_id: bytes | None,
        now: int | None,
        delegation_max_age_ns: int,
    ) -> bytes:
        try:
            root_key = bls.public_key_from_der(root_key_der)
        except InvalidKeyError as exc:
            raise CertificateError(f"invalid root key: {exc}") from None
        if self.delegation is None:
            return root_key
        delegation = self.delegation
        try:
            inner = Certificate.from_cbor(delegation.certificate)
        except CertificateError as exc:
            raise CertificateError(f"delegation: {exc.reason}") from None
        if inner.delegation is not None:
            raise CertificateError("delegation certificate carries a delegation (nested)")
        try:
            inner.verify(root_key_der)
        except CertificateError as exc:
            raise CertificateError(f"delegation: {exc.reason}") from None
        if now is not None and now - inner.time() > delegation_max_age_ns:
            raise CertificateError(
                f"delegation certificate expired: older than {delegation_max_age_ns} ns"
            )
        if subnet_id is not None and subnet_id != delegation.subnet_id:
            raise CertificateError(
                f"certificate is delegated to subnet {Principal(delegation.subnet_id).to_text()}, "
                f"not {Principal(subnet_id).to_text()}"
            )
        if canister_id is not None:
            ranges = delegated_canister_ranges(inner.tree, delegation.subnet_id)
            if not ranges:
                raise CertificateError(
                    "delegation certifies no canister ranges for subnet "
                    f"{Principal(delegation.subnet_id).to_text()}"
                )
            if not any(lo <= canister_id <= hi for lo, hi in ranges):
                raise CertificateError(
                    f"canister {Principal(canister_id).to_text()} is not in the canister ranges "
                    f"of subnet {Principal(delegation.subnet_id).to_text()}"
                )
        der = inner.lookup(["subnet", delegation.subnet_id, "public_key"])
        if der.value is None:
            subnet = Principal(delegation.subnet_id).to_text()
            raise CertificateError(f"delegation has no public key for subnet {subnet}")
        try:
            return bls.public_key_from_der(der.value)
        except InvalidKeyError as exc:
            raise CertificateError(f"delegated subnet key: {exc}") from None


def decode_canister_ranges(blob: bytes) -> list[tuple[bytes, bytes]]:
    """Decode a CBOR ``55799([* [lo, hi]])`` list of closed canister-id ranges.

    Spec: interface spec §"State tree" (``canister_ranges``).
    """
    try:
        value = cbor_decode(blob)
    except EncodingError as exc:
        raise CertificateError(f"malformed canister ranges: {exc}") from None
    if not isinstance(value, Sequence) or isinstance(value, bytes | str):
        raise CertificateError("canister ranges are a CBOR array")
    out = []
    for item in value:
        if (
            not isinstance(item, Sequence)
            or len(item) != 2
            or not all(isinstance(p, bytes) and len(p) <= 29 for p in item)
        ):
            raise CertificateError("a canister range is [principal, principal]")
        out.append((bytes(item[0]), bytes(item[1])))
    return out


def delegated_canister_ranges(
    tree: hashtree.HashTree, subnet_id: bytes
) -> list[tuple[bytes, bytes]]:
    """Return the canister ranges that ``tree`` certifies for ``subnet_id``.

    Reads the flat ``/subnet/<id>/canister_ranges`` leaf and every visible shard
    ``/canister_ranges/<id>/<lower_bound>`` of the sharded layout (a delegation may be
    pruned to the one shard that matters; pruned shards contribute nothing).
    Spec: interface spec §"Canister ranges" and §"Delegation".
    """
    ranges: list[tuple[bytes, bytes]] = []
    flat = hashtree.lookup_path(tree, ["subnet", subnet_id, "canister_ranges"])
    if flat.value is not None:
        ranges.extend(decode_canister_ranges(flat.value))
    shards = hashtree.lookup_subtree(tree, ["canister_ranges", subnet_id])
    if shards.subtree is not None:
        for node in hashtree.flatten_forks(shards.subtree):
            if isinstance(node, hashtree.Labeled) and isinstance(node.subtree, hashtree.Leaf):
                shard = decode_canister_ranges(node.subtree.value)
                if shard and shard[0][0] != node.label:
                    raise CertificateError(
                        "a canister-range shard must start at the canister id in its label"
                    )
                ranges.extend(shard)
    return ranges

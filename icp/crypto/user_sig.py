"""User signatures: identities, request signing, sender delegations, envelope checks.

Theory of operation: a user is identified by a DER-encoded public key; its
*self-authenticating* principal is ``SHA-224(der) || 0x02``.  A request's
``sender_sig`` is a signature over ``"\\x0Aic-request" || request_id`` made either
by ``sender_pubkey`` itself or, with ``sender_delegation``, by the last key of a chain
of delegations, each ``{pubkey, expiration, targets?}`` signed (under the domain
``"\\x1Aic-request-auth-delegation"`` over its representation-independent hash) by the
previous key, the first by ``sender_pubkey``.  Verification walks the chain, checks
expiry, target restrictions, length (≤ 20) and that no key repeats, then verifies the
request signature with the final key.

Schemes: Ed25519 (RFC 8032), ECDSA on P-256 and secp256k1 over SHA-256 with the
64-byte ``r || s`` signature format, and IC canister signatures (a certificate plus a
witness tree proving that the signing canister put ``H(seed)/H(payload)`` under
``sig`` in its certified data), and WebAuthn (a DER-wrapped COSE key, ECDSA P-256 or
RSA PKCS#1 v1.5 with SHA-256, over ``authenticatorData || SHA-256(clientDataJSON)``
whose ``challenge`` is the base64url of the signed payload).  All signature arithmetic
is done by ``cryptography``.

Spec: interface spec §"Signatures", §"Authentication", §"Canister signatures";
``shared/spec/interface.md`` §4.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Final, Protocol

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from icp.crypto import hashtree
from icp.crypto.errors import AuthenticationError, CertificateError, HashTreeError
from icp.crypto.hashing import (
    IC_REQUEST_AUTH_DELEGATION_DOMAIN,
    EncodingError,
    cbor_decode,
    cbor_encode,
    domain_sep,
    hash_of_map,
    request_signing_bytes,
)
from icp.principal import Principal

ED25519_DER_PREFIX: Final = bytes.fromhex("302a300506032b6570032100")
SECP256K1_DER_PREFIX: Final = bytes.fromhex("3056301006072a8648ce3d020106052b8104000a034200")
P256_DER_PREFIX: Final = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
CANISTER_SIG_ALGORITHM: Final = bytes.fromhex("300c060a2b0601040183b8430102")
"""DER AlgorithmIdentifier of IC canister signatures (OID 1.3.6.1.4.1.56387.1.2)."""
WEBAUTHN_ALGORITHM: Final = bytes.fromhex("300c060a2b0601040183b8430101")

MAX_DELEGATIONS: Final = 20
MAX_TARGETS: Final = 1000

_SECP256K1_ORDER: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


# ---------------------------------------------------------------------------- identities


class Identity(Protocol):
    """Something that holds a private key and can sign as a user."""

    def public_key_der(self) -> bytes:
        """Return the DER SubjectPublicKeyInfo of the public key."""
        ...

    def sign(self, message: bytes) -> bytes:
        """Return a signature on ``message`` in the IC's format for this scheme."""
        ...


def principal_of(identity: Identity) -> Principal:
    """Return the self-authenticating principal of ``identity``."""
    return Principal.self_authenticating(identity.public_key_der())


@attrs.frozen(slots=True)
class Ed25519Identity:
    """An Ed25519 key pair (the private key's repr is hidden)."""

    private_key: ed25519.Ed25519PrivateKey = attrs.field(repr=False)

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519Identity:
        """Use a 32-byte ``seed`` as the RFC 8032 private key (as agent-js does)."""
        if len(seed) != 32:
            raise AuthenticationError("an Ed25519 seed is 32 bytes")
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(seed)))

    def public_key_der(self) -> bytes:
        """Return ``302a300506032b6570032100 || raw key`` (RFC 8410)."""
        raw = self.private_key.public_key().public_bytes_raw()
        return ED25519_DER_PREFIX + raw

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature on ``message``."""
        return self.private_key.sign(bytes(message))


@attrs.frozen(slots=True)
class EcdsaIdentity:
    """An ECDSA key pair on P-256 or secp256k1; signs SHA-256 digests as 64-byte r||s."""

    private_key: ec.EllipticCurvePrivateKey = attrs.field(repr=False)

    @classmethod
    def from_seed(cls, seed: bytes, curve: str = "secp256k1") -> EcdsaIdentity:
        """Derive a key deterministically from ``seed`` on ``curve`` ("secp256k1" or "p256")."""
        curve_obj, order = _curve(curve)
        scalar = int.from_bytes(hashlib.sha512(b"icp-ecdsa-seed" + bytes(seed)).digest(), "big")
        return cls(ec.derive_private_key(scalar % (order - 1) + 1, curve_obj))

    def public_key_der(self) -> bytes:
        """Return the DER SubjectPublicKeyInfo with the uncompressed point."""
        from cryptography.hazmat.primitives import serialization

        return self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, message: bytes) -> bytes:
        """Return ``r || s`` (32 bytes each, low-s normalized) over SHA-256(message)."""
        der = self.private_key.sign(bytes(message), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        order = (
            _P256_ORDER if isinstance(self.private_key.curve, ec.SECP256R1) else _SECP256K1_ORDER
        )
        if s > order // 2:
            s = order - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _curve(name: str) -> tuple[ec.EllipticCurve, int]:
    if name == "secp256k1":
        return ec.SECP256K1(), _SECP256K1_ORDER
    if name in ("p256", "secp256r1", "prime256v1"):
        return ec.SECP256R1(), _P256_ORDER
    raise AuthenticationError(f"unsupported ECDSA curve {name!r}")


# ---------------------------------------------------------------------------- verification


def _der_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise AuthenticationError("truncated DER")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0 or count > 2 or pos + 1 + count > len(data):
        raise AuthenticationError("unsupported DER length")
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def _der_tlv(data: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    if pos >= len(data) or data[pos] != tag:
        raise AuthenticationError(f"expected DER tag 0x{tag:02x}")
    length, start = _der_length(data, pos + 1)
    end = start + length
    if end > len(data):
        raise AuthenticationError("truncated DER")
    return data[start:end], end


def canister_sig_public_key_der(canister_id: Principal, seed: bytes) -> bytes:
    """Return the DER public key of canister ``canister_id``'s signatures with ``seed``.

    Spec: interface spec §"Canister signatures" (BIT STRING = len(cid) || cid || seed).
    """
    cid = canister_id.raw
    bits = b"\x00" + bytes([len(cid)]) + cid + bytes(seed)
    bit_string = b"\x03" + _encode_length(len(bits)) + bits
    body = CANISTER_SIG_ALGORITHM + bit_string
    return b"\x30" + _encode_length(len(body)) + body


def _encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def parse_canister_sig_public_key(der: bytes) -> tuple[Principal, bytes]:
    """Return (canister id, seed) of a canister-signature DER public key."""
    body, end = _der_tlv(der, 0, 0x30)
    if end != len(der) or not body.startswith(CANISTER_SIG_ALGORITHM):
        raise AuthenticationError("not a canister-signature public key")
    bits, end = _der_tlv(body, len(CANISTER_SIG_ALGORITHM), 0x03)
    if end != len(body) or not bits or bits[0] != 0 or len(bits) < 2:
        raise AuthenticationError("malformed canister-signature key BIT STRING")
    cid_len = bits[1]
    if len(bits) < 2 + cid_len:
        raise AuthenticationError("canister id in the key is truncated")
    return Principal(bits[2 : 2 + cid_len]), bits[2 + cid_len :]


# ---------------------------------------------------------------------------- WebAuthn


def _spki(algorithm: bytes, key_bits: bytes) -> bytes:
    bits = b"\x00" + key_bits
    body = algorithm + b"\x03" + _encode_length(len(bits)) + bits
    return b"\x30" + _encode_length(len(body)) + body


def webauthn_public_key_der(cose_key: bytes) -> bytes:
    """Wrap a CBOR COSE key in the IC's WebAuthn SubjectPublicKeyInfo.

    Spec: interface spec §"Signatures" (WebAuthn: OID 1.3.6.1.4.1.56387.1.1).
    """
    return _spki(WEBAUTHN_ALGORITHM, bytes(cose_key))


def parse_webauthn_public_key(der: bytes) -> bytes:
    """Return the COSE key inside a WebAuthn DER public key."""
    body, end = _der_tlv(der, 0, 0x30)
    if end != len(der) or not body.startswith(WEBAUTHN_ALGORITHM):
        raise AuthenticationError("not a WebAuthn public key")
    bits, end = _der_tlv(body, len(WEBAUTHN_ALGORITHM), 0x03)
    if end != len(body) or not bits or bits[0] != 0:
        raise AuthenticationError("malformed WebAuthn key BIT STRING")
    return bits[1:]


def _is_webauthn_key(der: bytes) -> bool:
    try:
        parse_webauthn_public_key(der)
    except AuthenticationError:
        return False
    return True


def _cose_public_key(cose: bytes) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    try:
        key = cbor_decode(cose)
    except EncodingError as exc:
        raise AuthenticationError(f"WebAuthn COSE key: {exc}") from None
    if not isinstance(key, Mapping):
        raise AuthenticationError("a COSE key is a CBOR map")
    kty, alg = key.get(1), key.get(3)
    if kty == 2 and alg == -7 and key.get(-1) == 1:  # EC2, ES256, P-256
        x, y = key.get(-2), key.get(-3)
        if not isinstance(x, bytes) or not isinstance(y, bytes) or len(x) != 32 or len(y) != 32:
            raise AuthenticationError("COSE P-256 key needs 32-byte x and y")
        try:
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
        except ValueError as exc:
            raise AuthenticationError(f"COSE P-256 key: {exc}") from None
    if kty == 3 and alg == -257:  # RSA, RS256
        n, e = key.get(-1), key.get(-2)
        if not isinstance(n, bytes) or not isinstance(e, bytes):
            raise AuthenticationError("COSE RSA key needs n and e")
        return rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()
    raise AuthenticationError(f"unsupported COSE key (kty {kty!r}, alg {alg!r})")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def verify_webauthn_signature(public_key_der: bytes, message: bytes, signature: bytes) -> None:
    """Verify a WebAuthn signature; raise ``AuthenticationError`` with the reason.

    ``signature`` is CBOR ``{authenticator_data, client_data_json, signature}``; the
    client data's ``challenge`` must be base64url(``message``) and the authenticator's
    signature must verify over ``authenticator_data || SHA-256(client_data_json)``.
    Spec: interface spec §"Signatures" (WebAuthn).
    """
    key = _cose_public_key(parse_webauthn_public_key(public_key_der))
    try:
        value = cbor_decode(bytes(signature))
    except EncodingError as exc:
        raise AuthenticationError(f"WebAuthn signature: {exc}") from None
    if not isinstance(value, Mapping):
        raise AuthenticationError("a WebAuthn signature is a CBOR map")
    auth_data, client_json, sig = (
        value.get("authenticator_data"),
        value.get("client_data_json"),
        value.get("signature"),
    )
    if isinstance(client_json, str):
        client_json = client_json.encode("utf-8")
    if (
        not isinstance(auth_data, bytes)
        or not isinstance(client_json, bytes)
        or not isinstance(sig, bytes)
    ):
        raise AuthenticationError(
            "WebAuthn signature needs authenticator_data, client_data_json, signature"
        )
    try:
        client_data = json.loads(client_json)
    except ValueError:
        raise AuthenticationError("WebAuthn client_data_json is not JSON") from None
    if not isinstance(client_data, dict) or client_data.get("challenge") != _b64url(bytes(message)):
        raise AuthenticationError("WebAuthn challenge does not match the signed payload")
    signed = auth_data + hashlib.sha256(client_json).digest()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(sig, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AuthenticationError("WebAuthn signature does not verify") from None
    except ValueError as exc:
        raise AuthenticationError(f"WebAuthn signature: {exc}") from None


@attrs.frozen(slots=True)
class WebAuthnIdentity:
    """A software stand-in for a WebAuthn authenticator with a P-256 key (tests, demos)."""

    private_key: ec.EllipticCurvePrivateKey = attrs.field(repr=False)
    origin: str = "https://identity.ic0.app"

    @classmethod
    def from_seed(cls, seed: bytes) -> WebAuthnIdentity:
        """Derive a P-256 key deterministically from ``seed``."""
        return cls(EcdsaIdentity.from_seed(seed, "p256").private_key)

    def public_key_der(self) -> bytes:
        """Return the DER-wrapped COSE (EC2, ES256, P-256) key."""
        numbers = self.private_key.public_key().public_numbers()
        cose = {
            1: 2,
            3: -7,
            -1: 1,
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }
        return webauthn_public_key_der(cbor_encode(cose, self_describe=False))

    def sign(self, message: bytes) -> bytes:
        """Return the CBOR WebAuthn signature whose challenge is base64url(``message``)."""
        client = json.dumps(
            {"type": "webauthn.get", "challenge": _b64url(bytes(message)), "origin": self.origin},
            separators=(",", ":"),
        ).encode("utf-8")
        auth_data = hashlib.sha256(b"identity.ic0.app").digest() + b"\x05" + bytes(4)
        sig = self.private_key.sign(
            auth_data + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256())
        )
        return cbor_encode(
            {
                "authenticator_data": auth_data,
                "client_data_json": client.decode("utf-8"),
                "signature": sig,
            }
        )


def _is_canister_sig_key(der: bytes) -> bool:
    try:
        parse_canister_sig_public_key(der)
    except AuthenticationError:
        return False
    return True


def verify_canister_signature(
    public_key_der: bytes,
    message: bytes,
    signature: bytes,
    root_key_der: bytes,
) -> None:
    """Verify an IC canister signature; raise ``AuthenticationError`` with the reason.

    Spec: interface spec §"Canister signatures": the certificate is valid for the
    signing canister, its ``certified_data`` equals the witness tree's root hash, and
    the tree holds ``Found ""`` at ``["sig", SHA-256(seed), SHA-256(message)]``.
    The certificate's ``/time`` is not checked against ``now`` (as on the IC: a canister
    signature on a delegation stays usable until the delegation expires).
    """
    from icp.crypto.certificate import Certificate

    canister_id, seed = parse_canister_sig_public_key(public_key_der)
    try:
        value = cbor_decode(signature)
    except EncodingError as exc:
        raise AuthenticationError(f"canister signature: {exc}") from None
    if (
        not isinstance(value, Mapping)
        or not isinstance(value.get("certificate"), bytes)
        or "tree" not in value
    ):
        raise AuthenticationError("a canister signature is {certificate: bytes, tree}")
    try:
        cert = Certificate.from_cbor(value["certificate"])
        cert.verify(root_key_der, canister_id)  # no freshness check: see docstring
        tree = hashtree.from_cbor_value(value["tree"])
        hashtree.check_well_formed(tree)
    except (CertificateError, HashTreeError) as exc:
        raise AuthenticationError(f"canister signature: {exc}") from None
    certified = cert.lookup(["canister", canister_id.raw, "certified_data"])
    if certified.value != tree.digest():
        raise AuthenticationError("canister signature: certified data does not match the tree")
    leaf = hashtree.lookup_path(
        tree, ["sig", hashlib.sha256(seed).digest(), hashlib.sha256(bytes(message)).digest()]
    )
    if leaf.value != b"":
        raise AuthenticationError(
            "canister signature: the signature tree does not hold the message"
        )


def verify_signature(
    public_key_der: bytes,
    message: bytes,
    signature: bytes,
    *,
    root_key_der: bytes | None = None,
    now: int | None = None,
) -> None:
    """Verify a user signature under a DER public key; raise ``AuthenticationError`` if bad.

    Ed25519, ECDSA (P-256, secp256k1; 64-byte r||s over SHA-256), WebAuthn and
    canister signatures (which need ``root_key_der``) are supported.
    Spec: interface spec §"Signatures"; ``shared/spec/interface.md`` §4.
    """
    der, message, signature = bytes(public_key_der), bytes(message), bytes(signature)
    try:
        if der.startswith(ED25519_DER_PREFIX) and len(der) == len(ED25519_DER_PREFIX) + 32:
            key = ed25519.Ed25519PublicKey.from_public_bytes(der[len(ED25519_DER_PREFIX) :])
            if len(signature) != 64:
                raise AuthenticationError("an Ed25519 signature is 64 bytes")
            key.verify(signature, message)
            return
        for prefix, curve in (
            (SECP256K1_DER_PREFIX, ec.SECP256K1()),
            (P256_DER_PREFIX, ec.SECP256R1()),
        ):
            if der.startswith(prefix) and len(der) == len(prefix) + 65:
                point = ec.EllipticCurvePublicKey.from_encoded_point(curve, der[len(prefix) :])
                if len(signature) != 64:
                    raise AuthenticationError("an ECDSA signature is 64 bytes (r || s)")
                r = int.from_bytes(signature[:32], "big")
                s = int.from_bytes(signature[32:], "big")
                point.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
                return
    except InvalidSignature:
        raise AuthenticationError("signature does not verify") from None
    except ValueError as exc:
        raise AuthenticationError(f"invalid public key or signature: {exc}") from None
    if _is_canister_sig_key(der):
        if root_key_der is None:
            raise AuthenticationError("verifying a canister signature needs the IC root key")
        verify_canister_signature(der, message, signature, root_key_der)
        return
    if _is_webauthn_key(der):
        verify_webauthn_signature(der, message, signature)
        return
    raise AuthenticationError(
        "unsupported public key (not Ed25519, ECDSA, WebAuthn or canister signature)"
    )


# ---------------------------------------------------------------------------- delegations


@attrs.frozen(slots=True)
class Delegation:
    """Permission for ``pubkey`` to sign requests until ``expiration`` (for ``targets``)."""

    pubkey: bytes = attrs.field(converter=bytes)  # DER key being delegated to
    expiration: int  # ns since the epoch
    targets: tuple[bytes, ...] | None = None  # raw canister ids, or None = any

    def signing_bytes(self) -> bytes:
        """Return ``"\\x1Aic-request-auth-delegation" || hash_of_map(self)``.

        Spec: interface spec §"Authentication" (delegation signatures).
        """
        content: dict[str, object] = {"pubkey": self.pubkey, "expiration": self.expiration}
        if self.targets is not None:
            content["targets"] = list(self.targets)
        return domain_sep(IC_REQUEST_AUTH_DELEGATION_DOMAIN) + hash_of_map(content)

    def to_cbor_value(self) -> dict[str, object]:
        """Return the envelope form ``{pubkey, expiration, ?targets}``."""
        out: dict[str, object] = {"pubkey": self.pubkey, "expiration": self.expiration}
        if self.targets is not None:
            out["targets"] = list(self.targets)
        return out


@attrs.frozen(slots=True)
class SignedDelegation:
    """A delegation and the delegating key's signature on it."""

    delegation: Delegation
    signature: bytes = attrs.field(converter=bytes)

    @classmethod
    def from_cbor_value(cls, value: object) -> SignedDelegation:
        """Parse ``{delegation: {pubkey, expiration, ?targets}, signature}`` from an envelope."""
        if not isinstance(value, Mapping) or not isinstance(value.get("signature"), bytes):
            raise AuthenticationError("a signed delegation is {delegation, signature}")
        d = value.get("delegation")
        if (
            not isinstance(d, Mapping)
            or not isinstance(d.get("pubkey"), bytes)
            or not isinstance(d.get("expiration"), int)
        ):
            raise AuthenticationError("a delegation is {pubkey: bytes, expiration: nat, ?targets}")
        targets = d.get("targets")
        if targets is not None and (
            not isinstance(targets, Sequence) or not all(isinstance(t, bytes) for t in targets)
        ):
            raise AuthenticationError("delegation targets are a list of principals")
        return cls(
            Delegation(d["pubkey"], d["expiration"], None if targets is None else tuple(targets)),
            value["signature"],
        )

    def to_cbor_value(self) -> dict[str, object]:
        """Return the envelope form ``{delegation, signature}``."""
        return {"delegation": self.delegation.to_cbor_value(), "signature": self.signature}


def delegate(
    signer: Identity,
    to_public_key_der: bytes,
    expiration: int,
    targets: Sequence[Principal] | None = None,
) -> SignedDelegation:
    """Sign a delegation from ``signer`` to ``to_public_key_der``.

    Spec: interface spec §"Authentication".
    """
    d = Delegation(
        to_public_key_der, expiration, None if targets is None else tuple(t.raw for t in targets)
    )
    return SignedDelegation(d, signer.sign(d.signing_bytes()))


def verify_delegation_chain(
    sender_pubkey: bytes,
    delegations: Sequence[SignedDelegation],
    now: int,
    target: Principal | bytes | None = None,
    *,
    root_key_der: bytes | None = None,
) -> bytes:
    """Check a sender delegation chain; return the DER key that must sign the request.

    Rules: at most 20 delegations; each signed by the previous key (the first by
    ``sender_pubkey``); none expired (``expiration >= now``); at most 1000 targets each;
    if ``target`` is given it must be in every ``targets`` list present; no key
    appears twice.  Raises ``AuthenticationError`` naming the failing delegation.
    Spec: interface spec §"Authentication"; ``shared/spec/interface.md`` §4.
    """
    if len(delegations) > MAX_DELEGATIONS:
        raise AuthenticationError(
            f"{len(delegations)} delegations exceed the maximum of {MAX_DELEGATIONS}"
        )
    target_raw = target.raw if isinstance(target, Principal) else target
    key = bytes(sender_pubkey)
    seen = {key}
    for number, signed in enumerate(delegations):
        d = signed.delegation
        try:
            verify_signature(
                key, d.signing_bytes(), signed.signature, root_key_der=root_key_der, now=now
            )
        except AuthenticationError as exc:
            raise AuthenticationError(f"delegation #{number}: bad signature: {exc}") from None
        if d.expiration < now:
            raise AuthenticationError(f"delegation #{number} expired at {d.expiration} (now {now})")
        if d.targets is not None:
            if len(d.targets) > MAX_TARGETS:
                raise AuthenticationError(
                    f"delegation #{number} has {len(d.targets)} targets (max {MAX_TARGETS})"
                )
            if target_raw is not None and target_raw not in d.targets:
                canister = Principal(target_raw).to_text()
                raise AuthenticationError(
                    f"delegation #{number} does not allow canister {canister}"
                )
        if d.pubkey in seen:
            raise AuthenticationError(f"delegation #{number} repeats a key (cycle)")
        seen.add(d.pubkey)
        key = d.pubkey
    return key


def sign_request(identity: Identity, request_id: bytes) -> bytes:
    """Return ``identity``'s ``sender_sig`` for a request id.

    Spec: interface spec §"Authentication" (``\\x0Aic-request || request_id``).
    """
    return identity.sign(request_signing_bytes(bytes(request_id)))


def authenticate_request(
    sender: Principal,
    request_id: bytes,
    now: int,
    *,
    sender_pubkey: bytes | None = None,
    sender_sig: bytes | None = None,
    sender_delegation: Sequence[SignedDelegation] = (),
    target: Principal | bytes | None = None,
    root_key_der: bytes | None = None,
) -> None:
    """Authenticate a request envelope; raise ``AuthenticationError`` with the reason.

    The anonymous principal must come without key, signature and delegations; any
    other sender must be the self-authenticating principal of ``sender_pubkey`` and
    ``sender_sig`` must verify (through the delegation chain, if any) over
    ``"\\x0Aic-request" || request_id``.  ``target`` is the (effective) canister id that
    delegation targets must allow.
    Spec: interface spec §"Authentication"; ``shared/spec/interface.md`` §1.2, §4.
    """
    if sender == Principal.anonymous():
        if sender_pubkey is not None or sender_sig is not None or sender_delegation:
            raise AuthenticationError("anonymous requests carry no key, signature or delegation")
        return
    if sender_pubkey is None or sender_sig is None:
        raise AuthenticationError(
            f"sender {sender.to_text()} is not anonymous: sender_pubkey and sender_sig are required"
        )
    if Principal.self_authenticating(sender_pubkey) != sender:
        raise AuthenticationError(
            f"sender {sender.to_text()} is not the self-authenticating principal of sender_pubkey"
        )
    key = verify_delegation_chain(
        sender_pubkey, sender_delegation, now, target, root_key_der=root_key_der
    )
    try:
        verify_signature(
            key,
            request_signing_bytes(bytes(request_id)),
            sender_sig,
            root_key_der=root_key_der,
            now=now,
        )
    except AuthenticationError as exc:
        raise AuthenticationError(f"sender_sig: {exc}") from None

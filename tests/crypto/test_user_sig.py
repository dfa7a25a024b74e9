"""Tests for icp.crypto.user_sig: identities, request signatures, delegations, canister sigs."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from icp import Principal
from icp.crypto import hashtree, threshold
from icp.crypto.certificate import Certificate, certification_message
from icp.crypto.errors import AuthenticationError
from icp.crypto.hashing import cbor_encode, request_id
from icp.crypto.user_sig import (
    P256_DER_PREFIX,
    SECP256K1_DER_PREFIX,
    WEBAUTHN_ALGORITHM,
    Delegation,
    EcdsaIdentity,
    Ed25519Identity,
    Identity,
    SignedDelegation,
    WebAuthnIdentity,
    authenticate_request,
    canister_sig_public_key_der,
    delegate,
    parse_canister_sig_public_key,
    principal_of,
    sign_request,
    verify_delegation_chain,
    verify_signature,
    webauthn_public_key_der,
)

NOW = 1_600_000_000 * 10**9


def _ed(seed: int) -> Ed25519Identity:
    return Ed25519Identity.from_seed(bytes([seed]) + bytes(31))


def test_agent_js_golden_delegation_chain() -> None:
    # agent-js packages/identity/src/identity/delegation.test.ts "delegation signs with proper keys"
    root, middle, bottom = _ed(2), _ed(1), _ed(0)
    expiration = 1609459200000 * 10**6
    first = delegate(root, middle.public_key_der(), expiration)
    second = delegate(middle, bottom.public_key_der(), expiration)
    assert root.public_key_der().hex() == (
        "302a300506032b65700321006b79c57e6a095239282c04818e96112f3f03a4001ba97a564c23852a3f1ea5fc"
    )
    assert first.delegation.pubkey.hex() == (
        "302a300506032b6570032100cecc1507dc1ddd7295951c290888f095adb9044d1b73d696e6df065d683bd4fc"
    )
    assert expiration.to_bytes(8, "big").hex() == "1655f29d787c0000"
    assert first.signature.hex() == (
        "b106d135e5ad7459dc67db68a4946fdbe603e650df4035957db7f0fb54e7467b"
        "b463116a2ad025e1887cd1f29025e0f3607b09924abbbbebfaf921b675c8ff08"
    )
    assert second.signature.hex() == (
        "5e40f3d171e499a691092e5b961b5447921091bcf8c6409cb5641541f4dc1390"
        "f501c5dfb16b10df29d429cd153b9e396af4e883ed3cfa090d28e214db14c308"
    )
    final = verify_delegation_chain(root.public_key_der(), [first, second], NOW)
    assert final == bottom.public_key_der()


def test_agent_js_secp256k1_pem_principal() -> None:
    # agent-js packages/identity-secp256k1/src/secp256k1.test.ts "fromPem"
    pem = (
        b"-----BEGIN EC PRIVATE KEY-----\n"
        b"MHQCAQEEIGfKHuyoCCCbEXb0789MIdWiCIpZo1LaKApv95SSIaWPoAcGBSuBBAAK\n"
        b"oUQDQgAEahC99Avid7r8D6kIeLjjxJ8kwdJRy5nPrN9o18P7xHT95i0JPr5ivc9v\n"
        b"CB8vG2s97NB0re2MhqvdWgradJZ8Ow==\n"
        b"-----END EC PRIVATE KEY-----\n"
    )
    key = load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    identity = EcdsaIdentity(key)
    assert identity.public_key_der().startswith(SECP256K1_DER_PREFIX)
    assert principal_of(identity).to_text() == (
        "42gbo-uiwfn-oq452-ql6yp-4jsqn-a6bxk-n7l4z-ni7os-yptq6-3htob-vqe"
    )


@pytest.mark.parametrize(
    "identity",
    [_ed(7), EcdsaIdentity.from_seed(b"k1", "secp256k1"), EcdsaIdentity.from_seed(b"r1", "p256")],
    ids=["ed25519", "secp256k1", "p256"],
)
def test_sign_verify_roundtrip(identity: Ed25519Identity | EcdsaIdentity) -> None:
    der = identity.public_key_der()
    sig = identity.sign(b"payload")
    assert len(sig) == 64
    verify_signature(der, b"payload", sig)
    with pytest.raises(AuthenticationError, match="does not verify"):
        verify_signature(der, b"other", sig)
    with pytest.raises(AuthenticationError):
        verify_signature(der, b"payload", sig[:63])
    with pytest.raises(AuthenticationError):
        verify_signature(der[:-1], b"payload", sig)


def test_ecdsa_signatures_are_low_s_and_p256_der_prefix() -> None:
    identity = EcdsaIdentity.from_seed(b"s", "secp256k1")
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    for i in range(8):
        assert int.from_bytes(identity.sign(bytes([i]))[32:], "big") <= order // 2
    assert EcdsaIdentity.from_seed(b"x", "p256").public_key_der().startswith(P256_DER_PREFIX)


def test_invalid_curve_point_is_rejected() -> None:
    bad = SECP256K1_DER_PREFIX + b"\x04" + bytes(64)
    with pytest.raises(AuthenticationError, match="invalid public key"):
        verify_signature(bad, b"m", bytes(64))
    with pytest.raises(AuthenticationError, match="unsupported"):
        verify_signature(b"\x30\x03\x02\x01\x00", b"m", bytes(64))


def _request(identity: Identity) -> tuple[Principal, bytes, bytes]:
    sender = principal_of(identity)
    rid = request_id({"request_type": "call", "sender": sender.raw, "method_name": "m", "arg": b""})
    return sender, rid, sign_request(identity, rid)


def test_authenticate_plain_request() -> None:
    identity = _ed(3)
    sender, rid, sig = _request(identity)
    authenticate_request(sender, rid, NOW, sender_pubkey=identity.public_key_der(), sender_sig=sig)
    with pytest.raises(AuthenticationError, match="self-authenticating"):
        authenticate_request(
            Principal.from_text("aaaaa-aa"),
            rid,
            NOW,
            sender_pubkey=identity.public_key_der(),
            sender_sig=sig,
        )
    with pytest.raises(AuthenticationError, match="sender_sig"):
        authenticate_request(
            sender, bytes(32), NOW, sender_pubkey=identity.public_key_der(), sender_sig=sig
        )
    with pytest.raises(AuthenticationError, match="required"):
        authenticate_request(sender, rid, NOW)


def test_anonymous_requests() -> None:
    anonymous = Principal.anonymous()
    authenticate_request(anonymous, bytes(32), NOW)
    with pytest.raises(AuthenticationError, match="anonymous"):
        authenticate_request(anonymous, bytes(32), NOW, sender_sig=b"x")


def test_request_through_delegation_chain_with_targets() -> None:
    user, session = _ed(4), EcdsaIdentity.from_seed(b"session", "p256")
    allowed = Principal.from_canister_index(5)
    chain = [delegate(user, session.public_key_der(), NOW + 10, [allowed])]
    sender = principal_of(user)
    rid = bytes(range(32))
    sig = sign_request(session, rid)
    kwargs = {"sender_pubkey": user.public_key_der(), "sender_sig": sig, "sender_delegation": chain}
    authenticate_request(sender, rid, NOW, target=allowed, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError, match="does not allow"):
        authenticate_request(sender, rid, NOW, target=Principal.from_canister_index(6), **kwargs)  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError, match="expired"):
        authenticate_request(sender, rid, NOW + 11, target=allowed, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError, match="sender_sig"):
        authenticate_request(
            sender,
            rid,
            NOW,
            sender_pubkey=user.public_key_der(),
            sender_sig=sign_request(user, rid),
            sender_delegation=chain,
        )


def test_delegation_chain_rules() -> None:
    keys = [_ed(i) for i in range(22)]
    chain = [delegate(keys[i], keys[i + 1].public_key_der(), NOW) for i in range(21)]
    assert (
        verify_delegation_chain(keys[0].public_key_der(), chain[:20], NOW)
        == keys[20].public_key_der()
    )
    with pytest.raises(AuthenticationError, match="maximum of 20"):
        verify_delegation_chain(keys[0].public_key_der(), chain, NOW)
    with pytest.raises(AuthenticationError, match="#1: bad signature"):
        verify_delegation_chain(keys[0].public_key_der(), [chain[0], chain[2]], NOW)
    cycle = [
        delegate(keys[0], keys[1].public_key_der(), NOW),
        delegate(keys[1], keys[0].public_key_der(), NOW),
    ]
    with pytest.raises(AuthenticationError, match="cycle"):
        verify_delegation_chain(keys[0].public_key_der(), cycle, NOW)
    too_many = delegate(
        keys[0],
        keys[1].public_key_der(),
        NOW,
        [Principal.from_canister_index(i) for i in range(1001)],
    )
    with pytest.raises(AuthenticationError, match="targets"):
        verify_delegation_chain(keys[0].public_key_der(), [too_many], NOW)


def test_signed_delegation_cbor_roundtrip_and_errors() -> None:
    signed = delegate(_ed(1), _ed(2).public_key_der(), NOW, [Principal.from_canister_index(1)])
    assert SignedDelegation.from_cbor_value(signed.to_cbor_value()) == signed
    for bad in (
        {},
        {"signature": b"", "delegation": {"pubkey": b""}},
        {"signature": b"", "delegation": {"pubkey": b"", "expiration": 1, "targets": [1]}},
    ):
        with pytest.raises(AuthenticationError):
            SignedDelegation.from_cbor_value(bad)
    assert Delegation(b"k", 1).signing_bytes().startswith(b"\x1aic-request-auth-delegation")


# ------------------------------------------------------------------- canister signatures

ROOT = threshold.deal_trusted(b"root", 4, 2)
CANISTER = Principal.from_canister_index(7)
SEED = b"user-anchor-10000"


def _canister_signature(message: bytes, certified_override: bytes | None = None) -> bytes:
    sig_tree = hashtree.build(
        {"sig": {hashlib.sha256(SEED).digest(): {hashlib.sha256(message).digest(): b""}}}
    )
    certified = certified_override if certified_override is not None else sig_tree.digest()
    state = hashtree.build({"time": NOW, "canister": {CANISTER.raw: {"certified_data": certified}}})
    pk, shares = ROOT
    msg = certification_message(state.digest())
    signature = threshold.combine(pk, {s.index: threshold.sign_share(s, msg) for s in shares[:2]})
    cert = Certificate.create(state, signature)
    return cbor_encode({"certificate": cert.to_cbor(), "tree": hashtree.to_cbor_value(sig_tree)})


def test_canister_signature_key_der_roundtrip() -> None:
    der = canister_sig_public_key_der(CANISTER, SEED)
    assert parse_canister_sig_public_key(der) == (CANISTER, SEED)


def test_canister_signature_verifies_and_fails_properly() -> None:
    der = canister_sig_public_key_der(CANISTER, SEED)
    root_der = ROOT[0].to_der()
    sig = _canister_signature(b"hello")
    verify_signature(der, b"hello", sig, root_key_der=root_der)
    with pytest.raises(AuthenticationError, match="does not hold"):
        verify_signature(der, b"bye", sig, root_key_der=root_der)
    with pytest.raises(AuthenticationError, match="root key"):
        verify_signature(der, b"hello", sig)
    with pytest.raises(AuthenticationError, match="certified data"):
        verify_signature(
            der, b"hello", _canister_signature(b"hello", bytes(32)), root_key_der=root_der
        )
    other = threshold.deal_trusted(b"other", 1, 1)[0].to_der()
    with pytest.raises(AuthenticationError, match="signature"):
        verify_signature(der, b"hello", sig, root_key_der=other)


def test_internet_identity_style_chain() -> None:
    # sender = canister-signature key; one delegation to a session key.
    session = _ed(9)
    anchor_key = canister_sig_public_key_der(CANISTER, SEED)
    d = Delegation(session.public_key_der(), NOW + 1)
    chain = [SignedDelegation(d, _canister_signature(d.signing_bytes()))]
    sender = Principal.self_authenticating(anchor_key)
    rid = bytes(32)
    authenticate_request(
        sender,
        rid,
        NOW,
        sender_pubkey=anchor_key,
        sender_sig=sign_request(session, rid),
        sender_delegation=chain,
        root_key_der=ROOT[0].to_der(),
    )


# ------------------------------------------------------------------- WebAuthn


def test_webauthn_p256_roundtrip_and_request() -> None:
    identity = WebAuthnIdentity.from_seed(b"passkey")
    der = identity.public_key_der()
    assert der[2:].startswith(WEBAUTHN_ALGORITHM)
    sig = identity.sign(b"payload")
    verify_signature(der, b"payload", sig)
    with pytest.raises(AuthenticationError, match="challenge"):
        verify_signature(der, b"other payload", sig)
    other = WebAuthnIdentity.from_seed(b"other passkey")
    with pytest.raises(AuthenticationError, match="does not verify"):
        verify_signature(other.public_key_der(), b"payload", sig)
    sender, rid, request_sig = _request(identity)
    authenticate_request(sender, rid, NOW, sender_pubkey=der, sender_sig=request_sig)


def test_webauthn_rsa_key() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()
    cose = cbor_encode(
        {1: 3, 3: -257, -1: numbers.n.to_bytes(256, "big"), -2: numbers.e.to_bytes(3, "big")},
        self_describe=False,
    )
    der = webauthn_public_key_der(cose)
    challenge = base64.urlsafe_b64encode(b"msg").decode().rstrip("=")
    client = json.dumps({"type": "webauthn.get", "challenge": challenge}).encode()
    auth_data = bytes(37)
    signature = key.sign(
        auth_data + hashlib.sha256(client).digest(), padding.PKCS1v15(), hashes.SHA256()
    )
    sig = cbor_encode(
        {
            "authenticator_data": auth_data,
            "client_data_json": client.decode(),
            "signature": signature,
        }
    )
    verify_signature(der, b"msg", sig)
    tampered = cbor_encode(
        {
            "authenticator_data": bytes(36) + b"\x01",
            "client_data_json": client.decode(),
            "signature": signature,
        }
    )
    with pytest.raises(AuthenticationError, match="does not verify"):
        verify_signature(der, b"msg", tampered)


@pytest.mark.parametrize(
    "cose",
    [
        b"\xff",
        cbor_encode([1], self_describe=False),
        cbor_encode({1: 2, 3: -7, -1: 1, -2: bytes(32), -3: bytes(32)}, self_describe=False),
        cbor_encode({1: 1, 3: -8}, self_describe=False),
    ],
    ids=["bad-cbor", "not-a-map", "not-on-curve", "eddsa-unsupported"],
)
def test_webauthn_bad_keys(cose: bytes) -> None:
    with pytest.raises(AuthenticationError):
        verify_signature(webauthn_public_key_der(cose), b"m", cbor_encode({}))

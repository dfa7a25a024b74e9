"""Replica: certifier, artifact-in/artifact-out driving, forged artifacts, restore errors."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from icp import InternetComputer, Principal
from icp.consensus.config import MINIMAL
from icp.consensus.crypto import CachingCrypto, RealCrypto, VerificationCache
from icp.consensus.genesis import make_subnet
from icp.crypto import bls
from icp.crypto.hashing import hash_of_map
from icp.execution.system_api import Reject, Reply
from icp.replica import (
    Certifier,
    Replica,
    ReplicaArtifact,
    ReplicaError,
    node_id_of,
    node_public_key_der,
    response_fields,
    response_hash,
)
from icp.state.certification import (
    Certification,
    CertificationContent,
    CertificationShare,
    verify_certification,
)
from icp.state.manager import StateManager
from icp.state.replicated_state import NetworkTopology, ReplicatedState, SubnetTopology
from icp.types import Height, NodeIndex, Time

CRYPTO = CachingCrypto(RealCrypto(), VerificationCache())


def subnet_replicas(n: int = 4) -> list[Replica]:
    setup = make_subnet(MINIMAL, CRYPTO, b"replica-test", subnet_id=b"\x00" * 8 + b"\x01\x01")
    key = bls.public_key_to_der(setup.subnet_public_key())
    subnet = Principal(setup.membership.subnet_id)
    topology = NetworkTopology((SubnetTopology(subnet, key),), nns_subnet_id=subnet)
    return [
        Replica(setup, i, CRYPTO, StateManager(ReplicatedState(subnet, topology))) for i in range(n)
    ]


def run(
    replicas: list[Replica],
    rounds: int,
    step: int = 100_000_000,
    *,
    start: int = 0,
    withhold: Callable[[int, ReplicaArtifact], bool] = lambda node, artifact: False,
) -> int:
    """A perfect network: every artifact reaches every other replica before the next tick.

    ``withhold(node, artifact)`` drops chosen deliveries.  Returns the final time.
    """
    now = start
    for _ in range(rounds):
        now += step
        outbox: list[tuple[int, ReplicaArtifact]] = []
        for replica in replicas:
            outbox.extend((replica.node, a) for a in replica.tick(Time(now)))
        for sender, artifact in outbox:
            for replica in replicas:
                if replica.node != sender and not withhold(replica.node, artifact):
                    replica.on_artifact(artifact)
    return now


def test_replicas_certify_identical_states_under_a_plain_loop() -> None:
    replicas = subnet_replicas()
    run(replicas, 60)
    heights = [r.state.certified_height for r in replicas]
    assert all(h is not None and h >= 3 for h in heights)
    common = Height(min(h for h in heights if h is not None))
    assert len({r.state.root_hash(common) for r in replicas}) == 1
    state, certification = replicas[0].certified()
    verify_certification(certification, state.own_subnet.public_key_der)
    assert state.time > 0  # batch time reached the state


def test_certifier_combines_valid_shares_and_skips_a_bad_one() -> None:
    public, shares = CRYPTO.deal_threshold(b"certifier", 4, 3)
    content = CertificationContent(Height(5), hashlib.sha256(b"root").digest())
    certifier = Certifier(CRYPTO)
    bad = CertificationShare(content, NodeIndex(0), bytes(48))
    certifier.add_share(bad)
    for share in shares[1:3]:
        signature = CRYPTO.sign_threshold_share(share, content.signing_bytes())
        certifier.add_share(CertificationShare(content, NodeIndex(share.index), signature))
    der = bls.public_key_to_der(public.group_public_key)
    assert certifier.try_certify(content.height, content.root_hash, public, der) is None
    last = shares[3]
    signature = CRYPTO.sign_threshold_share(last, content.signing_bytes())
    certifier.add_share(CertificationShare(content, NodeIndex(last.index), signature))
    certification = certifier.try_certify(content.height, content.root_hash, public, der)
    assert certification is not None
    verify_certification(certification, der)
    other_root = hashlib.sha256(b"other").digest()
    assert certifier.try_certify(content.height, other_root, public, der) is None


def test_forged_certifications_are_refused() -> None:
    replicas = subnet_replicas()
    victim = replicas[0]

    def no_certification_for_victim(node: int, artifact: ReplicaArtifact) -> bool:
        return node == 0 and isinstance(artifact, Certification | CertificationShare)

    now = run(replicas, 12, withhold=no_certification_for_victim)
    assert victim.state.certified_height is None  # its own share alone is not enough
    height = Height(victim.state.latest_height)
    root = victim.state.root_hash(height)
    assert root is not None
    # a bad signature on the right root, and a genuine subnet signature on a wrong root
    victim.on_artifact(Certification(CertificationContent(height, root), bytes(48)))
    wrong = CertificationContent(height, hashlib.sha256(b"another state").digest())
    shares = {
        i: CRYPTO.sign_threshold_share(
            victim.setup.key_stores[i].shares[dkg], wrong.signing_bytes()
        )
        for i in range(3)
        for dkg in victim.setup.key_stores[i].shares
        if dkg.tag.name == "HIGH"
    }
    signature = CRYPTO.combine_threshold(
        victim.threshold_key(height), shares, wrong.signing_bytes()
    )
    verify_certification(Certification(wrong, signature), victim.public_key_der)
    victim.on_artifact(Certification(wrong, signature))
    assert victim.state.certified_height is None
    run(replicas, 10, start=now)  # the genuine certifications now arrive
    assert victim.state.certified_height is not None


def test_node_ids_are_self_authenticating() -> None:
    replicas = subnet_replicas()
    raw = replicas[1].setup.membership.nodes[1].basic
    assert replicas[1].node_id == node_id_of(raw)
    assert replicas[1].node_id == Principal.self_authenticating(
        bytes.fromhex("302a300506032b6570032100") + raw
    )


def test_restore_needs_a_checkpoint_matching_a_cup(tmp_path: Path) -> None:
    setup = make_subnet(MINIMAL, CRYPTO, b"restore")
    with pytest.raises(ReplicaError):
        Replica.restore(setup, 0, CRYPTO, tmp_path)


def test_gossiped_ingress_is_validated_before_pooling() -> None:
    from icp.crypto.hashing import cbor_decode, cbor_encode
    from icp.crypto.user_sig import Ed25519Identity, principal_of
    from icp.messaging.ingress import parse_call_envelope
    from icp.testing import call_content, envelope

    replica = subnet_replicas()[0]
    alice = Ed25519Identity.from_seed(b"\x07" * 32)
    content = call_content(
        "call", principal_of(alice), Principal.from_canister_index(1), "inc", b"", 10**11
    )
    good = parse_call_envelope(envelope(content, alice))
    decoded = cbor_decode(envelope(content, alice))
    assert isinstance(decoded, Mapping)
    forged_env = dict(decoded)
    forged_env["sender_sig"] = bytes(64)
    forged = parse_call_envelope(cbor_encode(forged_env))
    replica.on_artifact(forged)
    assert forged.message_id not in replica.ingress_pool
    replica.on_artifact(good)
    assert good.message_id in replica.ingress_pool


def test_persisted_consensus_artifacts_decode_and_refuse_damage(tmp_path: Path) -> None:
    """CUPs and the finalized chain are stored as allow-listed canonical CBOR: they
    decode back to equal artifacts, and a damaged file is a CodecError, not an object."""
    from icp.replica import CHAIN_DIR, CUPS_DIR, _persistence_codec
    from icp.state.codec import CodecError

    ic = InternetComputer(seed=5, state_dir=tmp_path)
    ic.tick(6)
    codec = _persistence_codec()
    cups = sorted(tmp_path.rglob(f"{CUPS_DIR}/*.cbor"))
    chain = sorted(tmp_path.rglob(f"{CHAIN_DIR}/*.cbor"))
    assert cups and chain
    cup = codec.decode(cups[0].read_bytes())
    assert codec.encode(cup) == cups[0].read_bytes()
    artifacts = codec.decode(chain[-1].read_bytes())
    assert artifacts and codec.encode(artifacts) == chain[-1].read_bytes()
    with pytest.raises(CodecError):
        codec.decode(cups[0].read_bytes()[:-5])
    with pytest.raises(CodecError):
        codec.decode(codec.encode({"x": 1}).replace(b"$d", b"$\x00"))


@pytest.mark.parametrize(
    "response",
    [Reply(b"DIDL\x00\x01\x7d\x05"), Reject(4, "no thanks", "IC0406"), Reject(5, "trap", "")],
)
def test_response_hash_is_hash_of_map_and_the_signature_verifies(response: Reply | Reject) -> None:
    replica = subnet_replicas(1)[0]
    rid, timestamp = hashlib.sha256(b"query").digest(), 1_700_000_000_123_456_789
    expected = hash_of_map(dict(response_fields(response), request_id=rid, timestamp=timestamp))
    assert response_hash(response, rid, timestamp) == expected
    assert response_hash(response, rid, timestamp + 1) != expected  # no stale memo
    signed = replica.sign_response(response, rid, timestamp)
    assert signed["timestamp"] == timestamp and signed["identity"] == replica.node_id.raw
    der = node_public_key_der(replica.setup.membership.nodes[replica.node].basic)
    Ed25519PublicKey.from_public_bytes(der[-32:]).verify(
        signed["signature"], b"\x0bic-response" + expected
    )

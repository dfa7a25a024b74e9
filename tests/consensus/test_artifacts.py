from __future__ import annotations

import attrs

from icp.consensus.artifacts import (
    Block,
    BlockProposal,
    DataPayload,
    FinalizationContent,
    NotarizationContent,
    NotarizationShare,
    RandomBeaconContent,
    ValidationContext,
    encode_artifact,
)
from icp.crypto.hashing import domain_sep
from icp.types import Height, NodeIndex, Rank, RegistryVersion, Time


def block(time: int = 5) -> Block:
    ctx = ValidationContext(RegistryVersion(1), Height(0), Time(time))
    return Block("v", bytes(32), Height(1), Rank(0), ctx, DataPayload())


def test_signing_bytes_carry_the_ic_domains() -> None:
    assert (
        NotarizationContent("v", Height(1), b"h")
        .signing_bytes()
        .startswith(domain_sep(b"notarization_content_domain"))
    )
    assert (
        FinalizationContent("v", Height(1), b"h")
        .signing_bytes()
        .startswith(domain_sep(b"finalization_content_domain"))
    )
    assert (
        RandomBeaconContent("v", Height(1), b"h")
        .signing_bytes()
        .startswith(domain_sep(b"random_beacon_content_domain"))
    )
    proposal = BlockProposal(block(), NodeIndex(0), b"s", b"subnet")
    assert proposal.signing_bytes().startswith(domain_sep(b"block_domain"))


def test_notarization_and_finalization_of_one_block_sign_different_bytes() -> None:
    n = NotarizationContent("v", Height(1), b"h").signing_bytes()
    f = FinalizationContent("v", Height(1), b"h").signing_bytes()
    assert n != f


def test_block_hash_depends_on_every_field_and_is_cached_consistently() -> None:
    a = block()
    assert a.block_hash() == block().block_hash() == a.block_hash()
    assert a.block_hash() != block(6).block_hash()
    assert attrs.evolve(a, rank=Rank(1)).block_hash() != a.block_hash()
    assert attrs.evolve(a, parent=b"\x01" * 32).block_hash() != a.block_hash()


def test_artifact_hash_and_encoding_distinguish_types_and_fields() -> None:
    content = NotarizationContent("v", Height(1), b"h")
    one = NotarizationShare(content, NodeIndex(0), b"sig")
    two = NotarizationShare(content, NodeIndex(1), b"sig")
    assert one.artifact_hash() != two.artifact_hash()
    assert encode_artifact(one) != encode_artifact(two)
    assert one == NotarizationShare(content, NodeIndex(0), b"sig")

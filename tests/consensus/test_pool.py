from __future__ import annotations

import hashlib

from icp.consensus.artifacts import NotarizationContent, NotarizationShare
from icp.consensus.config import MINIMAL
from icp.consensus.crypto import InsecureFastCrypto
from icp.consensus.genesis import make_subnet
from icp.consensus.pool import (
    AddToValidated,
    ArtifactPool,
    HandleInvalid,
    MoveToValidated,
    PoolReader,
    PurgeBelow,
)
from icp.types import Height, NodeIndex, Time


def share(height: int, signer: int = 0) -> NotarizationShare:
    content = NotarizationContent("v", Height(height), hashlib.sha256(bytes([height])).digest())
    return NotarizationShare(content, NodeIndex(signer), b"sig")


def fresh_pool() -> ArtifactPool:
    setup = make_subnet(MINIMAL, InsecureFastCrypto(), b"pool")
    return ArtifactPool(setup.cup, Time(0))


def test_unvalidated_and_validated_sections_are_separate() -> None:
    pool = fresh_pool()
    reader = PoolReader(pool)
    a, b = share(3), share(4)
    assert pool.insert_unvalidated(a) and not pool.insert_unvalidated(a)
    assert reader.validated_at(NotarizationShare, 3) == []
    assert pool.apply([MoveToValidated(a.artifact_hash(), relay=True)], Time(5)) == [a]
    assert reader.validated_at(NotarizationShare, 3) == [a]
    assert reader.arrival_time(a.artifact_hash()) == 5
    assert not pool.insert_unvalidated(a)  # already validated
    pool.insert_unvalidated(b)
    pool.apply([HandleInvalid(b.artifact_hash(), "bad")], Time(6))
    assert pool.invalid_count == 1 and pool.unvalidated.by_hash == {}


def test_own_artifacts_are_broadcast_once_and_purge_drops_by_height() -> None:
    pool = fresh_pool()
    reader = PoolReader(pool)
    own = [share(h) for h in range(1, 6)]
    assert pool.apply([AddToValidated(s) for s in own], Time(1)) == own
    assert pool.apply([AddToValidated(own[0])], Time(2)) == []
    pool.apply([PurgeBelow(Height(0), shares_only_up_to=Height(3))], Time(3))
    assert [s.height for h in range(1, 6) for s in reader.validated_at(NotarizationShare, h)] == [
        4,
        5,
    ]
    assert reader.cup().height == 0  # the root CUP is never purged

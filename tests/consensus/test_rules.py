"""The notary's and finalizer's rules as pure functions (ICC paper §3.4-3.5)."""

from __future__ import annotations

from icp.consensus.artifacts import (
    Block,
    BlockProposal,
    DataPayload,
    NotarizationContent,
    NotarizationShare,
    ValidationContext,
)
from icp.consensus.finalizer import finalization_candidate
from icp.consensus.notary import lowest_ranked_non_disqualified, may_support
from icp.types import Height, NodeIndex, Rank, RegistryVersion, Time


def proposal(rank: int, signer: int, time: int = 0) -> BlockProposal:
    ctx = ValidationContext(RegistryVersion(1), Height(0), Time(time))
    block = Block("v", bytes(32), Height(3), Rank(rank), ctx, DataPayload())
    return BlockProposal(block, NodeIndex(signer), b"sig", b"subnet")


def test_notary_candidates_are_the_lowest_rank_of_non_equivocators() -> None:
    a, b, c = proposal(1, 5), proposal(0, 7), proposal(0, 7, time=1)
    assert lowest_ranked_non_disqualified([a, b, c], set()) == [b, c]
    assert lowest_ranked_non_disqualified([a, b, c], {NodeIndex(7)}) == [a]
    assert lowest_ranked_non_disqualified([b], {NodeIndex(7)}) == []


def test_notary_never_supports_a_higher_rank_after_a_lower_one() -> None:
    low, high = proposal(0, 1), proposal(2, 3)
    assert may_support(high, [], set())
    assert not may_support(high, [Rank(0)], set())
    assert may_support(low, [Rank(2)], set())
    assert not may_support(low, [], {low.block.block_hash()})  # never twice


def test_finalizer_shares_only_the_single_notarized_block_it_alone_supported() -> None:
    b1, b2 = proposal(0, 1).block, proposal(1, 2).block

    def share(block: Block) -> NotarizationShare:
        content = NotarizationContent("v", block.height, block.block_hash())
        return NotarizationShare(content, NodeIndex(0), b"s")

    assert finalization_candidate([b1], []) == b1
    assert finalization_candidate([b1], [share(b1)]) == b1
    assert finalization_candidate([b1], [share(b1), share(b2)]) is None  # D ⊄ {B}
    assert finalization_candidate([b1, b2], [share(b1)]) is None  # two notarized blocks
    assert finalization_candidate([], []) is None

"""DKG intervals, summary blocks and which threshold key signs at which height.

Theory of operation. Heights are grouped into DKG intervals of L + 1 heights; interval k
starts with the summary block at S_k = k(L + 1). The summary block at S_k carries:

* ``current``: the low/high transcripts that sign beacons, tapes and CUPs at heights in
  interval k. They equal the previous summary's ``next`` (or its ``current`` when that
  DKG failed), so they are known one interval ahead: the beacon of S_k itself is signed
  before block S_k exists.
* ``next``: transcripts completed from the dealings that the data blocks of interval
  k - 1 carried (configured by the summary at S_{k-1}); active in interval k + 1.
* ``configs``: the DKGs whose dealings the data blocks of interval k collect: a fresh
  low-threshold key (f + 1) and a *resharing* of the high-threshold key (2f + 1), so the
  subnet's public key - the key CUPs and certificates verify against - never changes.

A summary block is a deterministic function of its parent chain; validators recompute it.

Spec: protocol.md §3.1 (summary: configs, current_transcripts, next_transcripts;
resharing keeps the group key; DKG_DEALINGS_PER_BLOCK = 1); Groth, ePrint 2021/339.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs

from icp.consensus.artifacts import (
    Block,
    DataPayload,
    DealingMessage,
    DkgConfig,
    DkgId,
    DkgSummary,
    DkgTag,
    SummaryPayload,
    Transcript,
)
from icp.consensus.config import ConsensusConfig
from icp.crypto.threshold import ThresholdPublicKey, ThresholdSecretShare
from icp.types import Height, NodeIndex


class DkgError(Exception):
    """A DKG step failed (bad dealing, too few dealings, undecryptable share)."""


class DkgBackend(Protocol):
    """NI-DKG operations consensus needs (implemented over ``icp.crypto.nidkg``).

    Spec: protocol.md §3.1.
    """

    def create_dealing(
        self,
        config: DkgConfig,
        dealer: NodeIndex,
        reshared_share: ThresholdSecretShare | None,
        resharing: Transcript | None,
        seed: bytes,
    ) -> bytes:
        """Return a serialized dealing by ``dealer`` for ``config``."""
        ...

    def verify_dealing(
        self, config: DkgConfig, dealer: NodeIndex, dealing: bytes, resharing: Transcript | None
    ) -> bool:
        """Return whether a dealing is publicly valid for ``config``."""
        ...

    def create_transcript(
        self, config: DkgConfig, dealings: Mapping[NodeIndex, bytes], resharing: Transcript | None
    ) -> Transcript:
        """Combine enough valid dealings into a transcript (deterministic)."""
        ...

    def decrypt_share(
        self, transcript: Transcript, receiver: NodeIndex, secret_key: object
    ) -> ThresholdSecretShare:
        """Return ``receiver``'s secret share of ``transcript`` (``secret_key``: its DKG key)."""
        ...


def to_threshold_public_key(transcript: Transcript) -> ThresholdPublicKey:
    """Return the crypto layer's view of a transcript's public key."""
    return ThresholdPublicKey(
        transcript.group_public_key, transcript.public_key_shares, transcript.threshold
    )


def receiver_position(transcript: Transcript, node: NodeIndex) -> int | None:
    """Return ``node``'s share index in ``transcript`` (None if it is not a receiver)."""
    try:
        return transcript.receivers.index(node)
    except ValueError:
        return None


@attrs.define
class KeyStore:
    """One replica's secret threshold shares, by DKG id (the IC's secret key store)."""

    shares: dict[DkgId, ThresholdSecretShare] = attrs.field(factory=dict)

    def share_for(self, transcript: Transcript) -> ThresholdSecretShare | None:
        """Return this node's share of ``transcript``, if it holds one."""
        return self.shares.get(transcript.dkg_id)


def summary_of(block: Block) -> DkgSummary | None:
    """Return the DKG summary of a summary block (None for data blocks)."""
    return block.payload.dkg if isinstance(block.payload, SummaryPayload) else None


def make_configs(
    config: ConsensusConfig, height: Height, high_to_reshare: Transcript
) -> tuple[DkgConfig, ...]:
    """Return the DKGs an interval starting at ``height`` runs: fresh low, reshared high.

    Spec: protocol.md §3.1 (LowThreshold f+1 fresh; HighThreshold 2f+1 reshared, which
    needs dealings from >= old-threshold dealers).
    """
    everyone = tuple(NodeIndex(i) for i in range(config.n))
    completes_at = Height(height + config.dkg_interval_length + 1)
    low = DkgConfig(
        DkgId(completes_at, DkgTag.LOW),
        dealers=everyone,
        receivers=everyone,
        threshold=config.low_threshold,
        collection_threshold=config.low_threshold,
    )
    high = DkgConfig(
        DkgId(completes_at, DkgTag.HIGH),
        dealers=high_to_reshare.receivers,
        receivers=everyone,
        threshold=config.high_threshold,
        collection_threshold=high_to_reshare.threshold,
        resharing_of=high_to_reshare.dkg_id,
    )
    return (low, high)


def chain_since(
    blocks: Mapping[bytes, Block], parent: Block, stop_height: Height
) -> list[Block] | None:
    """Return the blocks from ``parent`` down to (excluding) ``stop_height``, newest first.

    None if a block is missing from ``blocks``.
    """
    out: list[Block] = []
    block: Block | None = parent
    while block is not None and block.height > stop_height:
        out.append(block)
        block = blocks.get(block.parent)
    if block is None or block.height != stop_height:
        return None
    out.append(block)
    return out


def dealings_on_chain(chain: Sequence[Block]) -> list[DealingMessage]:
    """Return the dealings carried by the data blocks in ``chain``."""
    out: list[DealingMessage] = []
    for block in chain:
        if isinstance(block.payload, DataPayload):
            out.extend(block.payload.dealings)
    return out


def resharing_source(summary: DkgSummary, config: DkgConfig) -> Transcript | None:
    """Return the transcript a resharing config reshares (from ``summary``)."""
    if config.resharing_of is None:
        return None
    for transcript in (*summary.next, *summary.current):
        if transcript.dkg_id == config.resharing_of:
            return transcript
    return None


def compute_summary(
    config: ConsensusConfig,
    backend: DkgBackend | None,
    previous: DkgSummary,
    chain: Sequence[Block],
    height: Height,
) -> DkgSummary:
    """Return the DKG summary of the summary block at ``height``.

    ``previous`` is the summary at height - (L + 1); ``chain`` the blocks since it (its
    data blocks carry the dealings for ``previous.configs``).

    Spec: protocol.md §3.1 (next_transcripts from the previous interval's dealings;
    failed DKGs keep the current transcripts).
    """
    current = tuple(
        previous.next_transcript(tag) or previous.current_transcript(tag)
        for tag in (DkgTag.LOW, DkgTag.HIGH)
    )
    next_transcripts: list[Transcript] = []
    if backend is not None:
        dealings = dealings_on_chain(chain)
        for dkg_config in previous.configs:
            selected: dict[NodeIndex, bytes] = {}
            for message in dealings:
                content = message.content
                if content.dkg_id == dkg_config.dkg_id and content.dealer not in selected:
                    selected[content.dealer] = content.dealing
            if len(selected) >= dkg_config.collection_threshold:
                chosen = dict(sorted(selected.items())[: dkg_config.collection_threshold])
                resharing = resharing_source(previous, dkg_config)
                next_transcripts.append(backend.create_transcript(dkg_config, chosen, resharing))
    configs: tuple[DkgConfig, ...] = ()
    if backend is not None:
        high = next(
            (t for t in next_transcripts if t.dkg_id.tag == DkgTag.HIGH),
            current[1],
        )
        configs = make_configs(config, height, high)
    return DkgSummary(
        registry_version=config.registry_version,
        interval_length=config.dkg_interval_length,
        height=height,
        current=current,
        next=tuple(next_transcripts),
        configs=configs,
    )


def transcript_for_height(
    config: ConsensusConfig,
    summaries: Mapping[Height, DkgSummary],
    height: Height,
    tag: DkgTag,
) -> Transcript | None:
    """Return the transcript with ``tag`` that signs at ``height``.

    For height h in interval k it is ``current`` of summary S_k, which equals ``next``
    (or ``current``) of summary S_{k-1}; only S_{k-1} is needed, so the beacon at S_k
    can be signed before block S_k exists.

    Spec: protocol.md §2.3 (beacon signed with the transcript active at the height),
    §3.2 (CUP signed with the interval's high-threshold key).
    """
    start = config.interval_start(height)
    own = summaries.get(start)
    if own is not None:
        return own.current_transcript(tag)
    previous = summaries.get(Height(start - config.dkg_interval_length - 1))
    if previous is None:
        return None
    return previous.next_transcript(tag) or previous.current_transcript(tag)

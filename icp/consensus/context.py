"""What a replica knows about itself and its subnet: keys, membership, plug-in points.

Spec: protocol.md §2.1 (node signing key, committee signing key, NI-DKG transcripts);
STYLE.md §3 (time, randomness and payloads are injected).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import attrs

from icp.consensus.artifacts import BatchPayload, Block, DkgSummary, DkgTag, Transcript
from icp.consensus.config import ConsensusConfig
from icp.consensus.crypto import ConsensusCrypto, SecretKey
from icp.consensus.dkg import DkgBackend, KeyStore, transcript_for_height
from icp.types import Height, NodeIndex, RegistryVersion, Time


class ValidationFailed(Exception):
    """A check could not complete yet (transient: retry later)."""


class InvalidArtifact(Exception):
    """An artifact failed a permanent check."""


@attrs.frozen(slots=True)
class NodePublicKeys:
    """A node's public keys as the registry holds them.

    Spec: protocol.md §2.1 (basic node signing key; BLS committee signing key).
    """

    basic: bytes
    committee: bytes
    dkg_encryption: bytes = b""
    """NI-DKG dealing encryption key (empty when the subnet runs no DKG)."""


@attrs.frozen(slots=True)
class SubnetMembership:
    """The subnet's nodes (index = position) and its id.

    Spec: protocol.md §1.2 ("registry node ids of the subnet ... sorted ascending").
    """

    subnet_id: bytes
    nodes: tuple[NodePublicKeys, ...]

    @property
    def n(self) -> int:
        """Number of nodes."""
        return len(self.nodes)


@attrs.frozen(slots=True)
class NodeSecrets:
    """A node's secret keys (opaque handles from the crypto façade)."""

    basic: SecretKey = attrs.field(repr=False)
    committee: SecretKey = attrs.field(repr=False)
    dkg_seed: bytes = attrs.field(repr=False, default=b"")
    """Secret randomness for this node's NI-DKG dealings."""
    dkg_encryption: SecretKey | None = attrs.field(repr=False, default=None)
    """NI-DKG decryption key for the shares dealt to this node."""


class PayloadBuilder(Protocol):
    """Where batches come from: the messaging layer plugs in here.

    Spec: protocol.md §1.6 (BatchPayload), §4.2 (ingress selection).
    """

    def get_batch(self, height: Height, time: Time, past: Sequence[Block]) -> BatchPayload:
        """Return a batch for a new block at ``height`` (``past``: unfinalized ancestors)."""
        ...

    def validate_batch(
        self, height: Height, time: Time, batch: BatchPayload, past: Sequence[Block]
    ) -> None:
        """Raise ``InvalidArtifact`` if ``batch`` may not appear in a block at ``height``."""
        ...


class EmptyPayloadBuilder:
    """Builds empty batches and accepts only empty ones (no messaging layer wired)."""

    def get_batch(self, height: Height, time: Time, past: Sequence[Block]) -> BatchPayload:
        """Return an empty batch."""
        return BatchPayload()

    def validate_batch(
        self, height: Height, time: Time, batch: BatchPayload, past: Sequence[Block]
    ) -> None:
        """Accept only empty batches."""
        if not batch.is_empty():
            raise InvalidArtifact("no messaging layer: batches must be empty")


@attrs.define
class ReplicaContext:
    """Everything the components of one replica share.

    Mutable only in ``keys``, ``summaries`` and ``delivered_height``.
    """

    node: NodeIndex
    config: ConsensusConfig
    membership: SubnetMembership
    crypto: ConsensusCrypto
    secrets: NodeSecrets
    keys: KeyStore
    payload_builder: PayloadBuilder
    dkg: DkgBackend | None = None
    summaries: dict[Height, DkgSummary] = attrs.field(factory=dict)
    """Finalized DKG summaries by height (from the CUP and the finalized chain)."""
    delivered_height: Height | None = None
    """Height of the last batch handed to message routing (None: a replica without
    one, whose state is the finalized chain); set by ``ConsensusReplica``."""
    registry_version: Callable[[], RegistryVersion] | None = None
    """The newest registry version this node's local registry copy holds (None: the
    config's version forever, i.e. a registry that never changes)."""

    def latest_registry_version(self) -> RegistryVersion:
        """Return the newest registry version this node can read.

        Spec: protocol.md §1.6 (the block maker proposes its latest local registry
        version; a validator needs that version locally to validate the block).
        """
        if self.registry_version is None:
            return self.config.registry_version
        return self.registry_version()

    def transcript(self, height: Height, tag: DkgTag) -> Transcript | None:
        """Return the transcript with ``tag`` active at ``height`` (None: not known yet)."""
        return transcript_for_height(self.config, self.summaries, height, tag)

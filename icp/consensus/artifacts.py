"""Consensus artifacts: blocks, proposals, beacons, notarizations, finalizations, tapes, CUPs.

Every artifact is a frozen, slotted attrs class. Its canonical encoding is CBOR of a
fixed field list (``encode()``); ``signing_bytes()`` is ``len(domain) || domain ||
encoding of the signed content`` with the IC's signature domain; ``artifact_hash()`` is
SHA-256 over the encoding with the IC's crypto-hash domain for that artifact type.
Signatures and keys are ``bytes`` so that artifacts stay hashable and serializable.

Theory of operation: a *content* (what is signed: ``NotarizationContent``...) is shared by
a *share* (one node's signature) and the full artifact (the aggregate / combined
signature). Multi-signature artifacts list their signers; threshold artifacts do not
(the threshold key is identified by the content's height through the DKG summary).

Spec: protocol.md §1.6 (Block, BlockPayload, contents), §2.2 (domain separators),
§2.3 (beacon / tape), §3.2 (CatchUpContent); ICC paper §3 (blocks, shares).
"""

from __future__ import annotations

import enum
from typing import Final, Protocol

import attrs

from icp.crypto.hashing import cbor_encode, domain_sep, hash_with_domain
from icp.types import Height, NodeIndex, Rank, RegistryVersion, Time

# --- domain separators (protocol.md §2.2, exact dfinity/ic strings) -------------------
DOMAIN_BLOCK: Final = b"block_domain"
DOMAIN_NOTARIZATION_CONTENT: Final = b"notarization_content_domain"
DOMAIN_FINALIZATION_CONTENT: Final = b"finalization_content_domain"
DOMAIN_RANDOM_BEACON_CONTENT: Final = b"random_beacon_content_domain"
DOMAIN_RANDOM_TAPE_CONTENT: Final = b"random_tape_content_domain"
DOMAIN_CATCH_UP_CONTENT: Final = b"catch_up_content_domain"
DOMAIN_DEALING_CONTENT: Final = b"dealing_content_non_interactive"
# crypto-hash domains
HASH_NOTARIZATION: Final = b"notarization_domain"
HASH_NOTARIZATION_SHARE: Final = b"notarization_share_domain"
HASH_FINALIZATION: Final = b"finalization_domain"
HASH_FINALIZATION_SHARE: Final = b"finalization_share_domain"
HASH_BLOCK_PROPOSAL: Final = b"block_proposal_domain"
HASH_RANDOM_BEACON: Final = b"random_beacon_domain"
HASH_RANDOM_BEACON_SHARE: Final = b"random_beacon_share_domain"
HASH_RANDOM_TAPE: Final = b"random_tape_domain"
HASH_RANDOM_TAPE_SHARE: Final = b"random_tape_share_domain"
HASH_CATCH_UP_PACKAGE: Final = b"catch_up_package_domain"
HASH_CATCH_UP_PACKAGE_SHARE: Final = b"catch_up_package_share_domain"
HASH_DKG_MESSAGE: Final = b"dkg_message_non_interactive"
HASH_CONSENSUS_MESSAGE: Final = b"consensus_message_domain"
"""Used for equivocation proofs (no dedicated IC domain is listed in the digest)."""

GENESIS_PARENT: Final = bytes(32)
"""Parent hash of the genesis summary block."""

Encoded = object
"""A value that ``cbor_encode`` accepts (ints, bytes, strings, lists)."""


def _cbor(value: Encoded) -> bytes:
    return cbor_encode(value, self_describe=False)


class _Hashable(Protocol):
    @property
    def _hash(self) -> bytes | None: ...

    def encode(self) -> Encoded: ...


def _cached_hash(artifact: _Hashable, domain: bytes, prefix: bytes = b"") -> bytes:
    """Return (and remember on the frozen instance) the artifact's crypto hash."""
    cached = artifact._hash
    if cached is None:
        cached = hash_with_domain(domain, prefix, _cbor(artifact.encode()))
        object.__setattr__(artifact, "_hash", cached)
    return cached


# --- payload ---------------------------------------------------------------------------


@attrs.frozen(slots=True)
class XNetSlice:
    """A certified stream slice from another subnet (opaque here; messaging fills it).

    Spec: protocol.md §1.6 BatchPayload.xnet; §4.3.
    """

    source_subnet: bytes
    """Raw principal of the sending subnet."""
    certified_slice: bytes
    """The encoded certified slice, validated by the messaging layer."""

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.source_subnet, self.certified_slice]


@attrs.frozen(slots=True)
class BatchPayload:
    """Messages for execution: ingress envelopes and XNet slices (opaque to consensus).

    Spec: protocol.md §1.6 (BatchPayload{ingress, xnet, ...}).
    """

    ingress: tuple[bytes, ...] = ()
    """Encoded signed ingress messages, in the order execution inducts them."""
    xnet: tuple[XNetSlice, ...] = ()
    """Certified stream slices, one per source subnet."""

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [list(self.ingress), [s.encode() for s in self.xnet]]

    def is_empty(self) -> bool:
        """Return whether the batch carries no messages."""
        return not self.ingress and not self.xnet


class DkgTag(enum.IntEnum):
    """Which threshold key a DKG produces.

    Spec: protocol.md §3.1 Tags (LowThreshold f+1: beacon/tape; HighThreshold 2f+1: CUP).
    """

    LOW = 1
    HIGH = 2


@attrs.frozen(slots=True, order=True)
class DkgId:
    """Identifies one NI-DKG by its tag and the summary height that completes it.

    A DKG configured by the summary at S is completed (appears in ``next``) by the
    summary at S + L + 1, and is named by that height; the genesis transcripts are
    completed "at" 0. This differs from the IC's NiDkgId (which names the start block
    height) only so that a config never shares an id with the transcript it reshares.

    Spec: protocol.md §3.1 (NiDkgId = block height + tag; target subnet implicit).
    """

    start_height: Height
    """Summary height whose block carries the resulting transcript in ``next``."""
    tag: DkgTag

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.start_height, int(self.tag)]


@attrs.frozen(slots=True)
class Transcript:
    """A completed NI-DKG: the threshold public key plus the data receivers decrypt from.

    Spec: protocol.md §3.1 "Transcript".
    """

    dkg_id: DkgId
    threshold: int
    receivers: tuple[NodeIndex, ...]
    """Receiver ``receivers[i]`` holds the share with evaluation point i + 1."""
    group_public_key: bytes
    """96-byte G2 key: the constant term of the combined commitment."""
    public_key_shares: tuple[bytes, ...]
    """Per-receiver public key shares (same order as ``receivers``)."""
    transcript: bytes = b""
    """Serialized NI-DKG transcript (empty for a trusted genesis dealing)."""

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [
            self.dkg_id.encode(),
            self.threshold,
            list(self.receivers),
            self.group_public_key,
            list(self.public_key_shares),
            self.transcript,
        ]


@attrs.frozen(slots=True)
class DkgConfig:
    """One DKG to run during an interval: who deals, who receives, what threshold.

    Spec: protocol.md §3.1 (summary ``configs``; resharing needs >= old-threshold dealings).
    """

    dkg_id: DkgId
    dealers: tuple[NodeIndex, ...]
    receivers: tuple[NodeIndex, ...]
    threshold: int
    collection_threshold: int
    """How many valid dealings the transcript needs."""
    resharing_of: DkgId | None = None
    """The transcript whose secret is reshared (keeps the group key), if any."""

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [
            self.dkg_id.encode(),
            list(self.dealers),
            list(self.receivers),
            self.threshold,
            self.collection_threshold,
            None if self.resharing_of is None else self.resharing_of.encode(),
        ]


@attrs.frozen(slots=True)
class DkgSummary:
    """The DKG part of a summary block.

    ``current`` holds the transcripts that sign during this interval (low, high); ``next``
    the ones completed from the previous interval's dealings, active from the next
    summary on; ``configs`` the DKGs whose dealings the data blocks of this interval carry.

    Spec: protocol.md §3.1 (summary: configs, current_transcripts, next_transcripts,
    registry_version, interval_length).
    """

    registry_version: RegistryVersion
    interval_length: int
    height: Height
    current: tuple[Transcript, ...]
    next: tuple[Transcript, ...]
    configs: tuple[DkgConfig, ...]

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [
            self.registry_version,
            self.interval_length,
            self.height,
            [t.encode() for t in self.current],
            [t.encode() for t in self.next],
            [c.encode() for c in self.configs],
        ]

    def current_transcript(self, tag: DkgTag) -> Transcript:
        """Return the current transcript with ``tag``."""
        for transcript in self.current:
            if transcript.dkg_id.tag == tag:
                return transcript
        raise KeyError(f"summary has no current {tag.name} transcript")

    def next_transcript(self, tag: DkgTag) -> Transcript | None:
        """Return the next transcript with ``tag``, if the DKG completed."""
        for transcript in self.next:
            if transcript.dkg_id.tag == tag:
                return transcript
        return None


@attrs.frozen(slots=True)
class DealingContent:
    """What a dealer signs: the DKG it deals for and the serialized dealing.

    Spec: protocol.md §2.2 (``dealing_content_non_interactive``).
    """

    dkg_id: DkgId
    dealer: NodeIndex
    dealing: bytes

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.dkg_id.encode(), self.dealer, self.dealing]

    def signing_bytes(self) -> bytes:
        """Return the bytes the dealer signs."""
        return domain_sep(DOMAIN_DEALING_CONTENT) + _cbor(self.encode())


@attrs.frozen(slots=True)
class DealingMessage:
    """A signed NI-DKG dealing, gossiped in the DKG pool and included in data blocks.

    Spec: protocol.md §3.1 ("dealers post dealings on-chain"; 1 dealing per block).
    """

    content: DealingContent
    signature: bytes
    """Dealer's basic (Ed25519) signature over ``content.signing_bytes()``."""

    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    @property
    def height(self) -> Height:
        """Return the DKG id's height (the pool indexes dealings by it)."""
        return self.content.dkg_id.start_height

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.content.encode(), self.signature]

    def signing_bytes(self) -> bytes:
        """Return the bytes the dealer signs."""
        return self.content.signing_bytes()

    def artifact_hash(self) -> bytes:
        """Return the crypto hash of the message."""
        return _cached_hash(self, HASH_DKG_MESSAGE)


@attrs.frozen(slots=True)
class DataPayload:
    """Payload of a data block: a batch for execution plus DKG dealings.

    Spec: protocol.md §1.6 (Data(DataPayload{batch, dealings})).
    """

    batch: BatchPayload = BatchPayload()
    dealings: tuple[DealingMessage, ...] = ()

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return ["data", self.batch.encode(), [d.encode() for d in self.dealings]]


@attrs.frozen(slots=True)
class SummaryPayload:
    """Payload of a summary block: the DKG summary and an (always empty) batch.

    Spec: protocol.md §1.6 ("a summary block must have an empty batch").
    """

    dkg: DkgSummary

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return ["summary", self.dkg.encode()]


Payload = DataPayload | SummaryPayload


@attrs.frozen(slots=True, order=True)
class ValidationContext:
    """The block maker's view: registry version, certified height, time.

    Spec: protocol.md §1.6 (ValidationContext; non-decreasing along the chain).
    """

    registry_version: RegistryVersion
    certified_height: Height
    time: Time

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.registry_version, self.certified_height, self.time]

    def is_at_least(self, other: ValidationContext) -> bool:
        """Return whether every component is >= ``other``'s (the IC's partial order)."""
        return (
            self.registry_version >= other.registry_version
            and self.certified_height >= other.certified_height
            and self.time >= other.time
        )


@attrs.frozen(slots=True)
class Block:
    """A block of height h pointing to a parent of height h - 1.

    Spec: protocol.md §1.6 (Block{version, parent, payload, height, rank, context}); ICC §3.
    """

    version: str
    parent: bytes
    """Crypto hash of the parent block."""
    height: Height
    rank: Rank
    context: ValidationContext
    payload: Payload
    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [
            self.version,
            self.parent,
            self.height,
            self.rank,
            self.context.encode(),
            self.payload.encode(),
        ]

    def block_hash(self) -> bytes:
        """Return the block's crypto hash (domain ``block_domain``), computed once."""
        cached = self._hash
        if cached is None:
            cached = hash_with_domain(DOMAIN_BLOCK, _cbor(self.encode()))
            object.__setattr__(self, "_hash", cached)
        return cached

    def is_summary(self) -> bool:
        """Return whether this is a DKG summary block."""
        return isinstance(self.payload, SummaryPayload)


@attrs.frozen(slots=True)
class BlockMetadata:
    """What a block maker signs: version, height, subnet and the block's hash.

    Signing metadata rather than the block lets an equivocation proof carry two small
    signed metadata instead of two blocks.

    Spec: protocol.md §1.6 (BlockProposal = Signed<HashedBlock, BasicSignature<BlockMetadata>>).
    """

    version: str
    height: Height
    subnet_id: bytes
    block_hash: bytes

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.version, self.height, self.subnet_id, self.block_hash]

    def signing_bytes(self) -> bytes:
        """Return the bytes the block maker signs (domain ``block_domain``)."""
        return domain_sep(DOMAIN_BLOCK) + _cbor(self.encode())


@attrs.frozen(slots=True)
class BlockProposal:
    """A block signed by its maker with the maker's node signing key (Ed25519).

    Spec: protocol.md §1.6 (BlockProposal); §2.1 table (basic signature, threshold 1).
    """

    block: Block
    signer: NodeIndex
    signature: bytes
    subnet_id: bytes

    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    @property
    def height(self) -> Height:
        """Return the block's height."""
        return self.block.height

    @property
    def rank(self) -> Rank:
        """Return the block's rank."""
        return self.block.rank

    def metadata(self) -> BlockMetadata:
        """Return the signed metadata."""
        return BlockMetadata(
            self.block.version, self.block.height, self.subnet_id, self.block.block_hash()
        )

    def signing_bytes(self) -> bytes:
        """Return the bytes the maker signs."""
        return self.metadata().signing_bytes()

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.block.encode(), self.signer, self.signature, self.subnet_id]

    def artifact_hash(self) -> bytes:
        """Return the proposal's crypto hash."""
        return _cached_hash(self, HASH_BLOCK_PROPOSAL)


@attrs.frozen(slots=True)
class EquivocationProof:
    """Two signed metadata of one signer at one height for different blocks.

    Any valid proof at height h disqualifies the signer's rank at h.

    Spec: protocol.md §1.6 (EquivocationProof{signer, version, height, subnet_id, hash1,
    signature1, hash2, signature2}); §1.7 "Equivocation".
    """

    signer: NodeIndex
    version: str
    height: Height
    subnet_id: bytes
    hash1: bytes
    signature1: bytes
    hash2: bytes
    signature2: bytes

    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [
            self.signer,
            self.version,
            self.height,
            self.subnet_id,
            self.hash1,
            self.signature1,
            self.hash2,
            self.signature2,
        ]

    def metadata1(self) -> BlockMetadata:
        """Return the first signed metadata."""
        return BlockMetadata(self.version, self.height, self.subnet_id, self.hash1)

    def metadata2(self) -> BlockMetadata:
        """Return the second signed metadata."""
        return BlockMetadata(self.version, self.height, self.subnet_id, self.hash2)

    def signing_bytes(self) -> bytes:
        """Return the first metadata's signing bytes (a proof has two; see metadata2)."""
        return self.metadata1().signing_bytes()

    def artifact_hash(self) -> bytes:
        """Return the proof's crypto hash."""
        return _cached_hash(self, HASH_CONSENSUS_MESSAGE, b"equivocation")


# --- random beacon ---------------------------------------------------------------------


@attrs.frozen(slots=True)
class RandomBeaconContent:
    """Beacon content for height h: the hash of beacon h - 1.

    Spec: protocol.md §1.2, §2.3 (RandomBeaconContent{version, height, parent}).
    """

    version: str
    height: Height
    parent: bytes

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.version, self.height, self.parent]

    def signing_bytes(self) -> bytes:
        """Return the bytes threshold-signed (domain ``random_beacon_content_domain``)."""
        return domain_sep(DOMAIN_RANDOM_BEACON_CONTENT) + _cbor(self.encode())


@attrs.frozen(slots=True)
class RandomBeacon:
    """The beacon of height h: a unique threshold BLS signature on its content.

    Spec: ICC paper §3.2 (random beacon); protocol.md §1.2, §2.3.
    """

    content: RandomBeaconContent
    signature: bytes

    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    @property
    def height(self) -> Height:
        """Return the beacon's height."""
        return self.content.height

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.content.encode(), self.signature]

    def signing_bytes(self) -> bytes:
        """Return the signed content bytes."""
        return self.content.signing_bytes()

    def artifact_hash(self) -> bytes:
        """Return the beacon's crypto hash (the next beacon's ``parent``)."""
        return _cached_hash(self, HASH_RANDOM_BEACON)


@attrs.frozen(slots=True)
class RandomBeaconShare:
    """One node's threshold signature share on a beacon content.

    Spec: protocol.md §2.3 (beacon shares, low-threshold committee).
    """

    content: RandomBeaconContent
    signer: NodeIndex
    signature: bytes

    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    @property
    def height(self) -> Height:
        """Return the beacon height."""
        return self.content.height

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.content.encode(), self.signer, self.signature]

    def signing_bytes(self) -> bytes:
        """Return the signed content bytes."""
        return self.content.signing_bytes()

    def artifact_hash(self) -> bytes:
        """Return the share's crypto hash."""
        return _cached_hash(self, HASH_RANDOM_BEACON_SHARE)


# --- notarization / finalization -------------------------------------------------------


@attrs.frozen(slots=True)
class NotarizationContent:
    """(height, block hash): what notarization shares sign.

    Spec: protocol.md §1.6 (NotarizationContent{version, height, block}); ICC §3.
    """

    version: str
    height: Height
    block: bytes

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.version, self.height, self.block]

    def signing_bytes(self) -> bytes:
        """Return the bytes signed (domain ``notarization_content_domain``)."""
        return domain_sep(DOMAIN_NOTARIZATION_CONTENT) + _cbor(self.encode())


@attrs.frozen(slots=True)
class FinalizationContent:
    """(height, block hash): what finalization shares sign.

    Spec: protocol.md §1.6 (FinalizationContent{version, height, block}); ICC §3.
    """

    version: str
    height: Height
    block: bytes

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.version, self.height, self.block]

    def signing_bytes(self) -> bytes:
        """Return the bytes signed (domain ``finalization_content_domain``)."""
        return domain_sep(DOMAIN_FINALIZATION_CONTENT) + _cbor(self.encode())


@attrs.frozen(slots=True)
class NotarizationShare:
    """One committee member's BLS multi-signature share supporting a block.

    Spec: ICC paper §3.4 (notarization share); protocol.md §1.6 (MultiSignatureShare).
    """

    content: NotarizationContent
    signer: NodeIndex
    signature: bytes

    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    @property
    def height(self) -> Height:
        """Return the block height."""
        return self.content.height

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.content.encode(), self.signer, self.signature]

    def signing_bytes(self) -> bytes:
        """Return the signed content bytes."""
        return self.content.signing_bytes()

    def artifact_hash(self) -> bytes:
        """Return the share's crypto hash."""
        return _cached_hash(self, HASH_NOTARIZATION_SHARE)


@attrs.frozen(slots=True)
class Notarization:
    """A notarized block: 2f + 1 aggregated multi-signature shares and their signers.

    Spec: ICC paper §3.4; protocol.md §1.6 (MultiSignature{signature, signers}).
    """

    content: NotarizationContent
    signers: tuple[NodeIndex, ...]
    """Sorted, distinct signer indices."""
    signature: bytes

    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    @property
    def height(self) -> Height:
        """Return the block height."""
        return self.content.height

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.content.encode(), list(self.signers), self.signature]

    def signing_bytes(self) -> bytes:
        """Return the signed content bytes."""
        return self.content.signing_bytes()

    def artifact_hash(self) -> bytes:
        """Return the notarization's crypto hash."""
        return _cached_hash(self, HASH_NOTARIZATION)


@attrs.frozen(slots=True)
class FinalizationShare:
    """One committee member's multi-signature share declaring a block final.

    Spec: ICC paper §3.5 (finalization share); protocol.md §1.4 step 5.
    """

    content: FinalizationContent
    signer: NodeIndex
    signature: bytes

    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    @property
    def height(self) -> Height:
        """Return the block height."""
        return self.content.height

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.content.encode(), self.signer, self.signature]

    def signing_bytes(self) -> bytes:
        """Return the signed content bytes."""
        return self.content.signing_bytes()

    def artifact_hash(self) -> bytes:
        """Return the share's crypto hash."""
        return _cached_hash(self, HASH_FINALIZATION_SHARE)


@attrs.frozen(slots=True)
class Finalization:
    """A finalized block: 2f + 1 aggregated finalization shares and their signers.

    Spec: ICC paper §3.5; protocol.md §1.4 step 6.
    """

    content: FinalizationContent
    signers: tuple[NodeIndex, ...]
    signature: bytes

    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    @property
    def height(self) -> Height:
        """Return the block height."""
        return self.content.height

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.content.encode(), list(self.signers), self.signature]

    def signing_bytes(self) -> bytes:
        """Return the signed content bytes."""
        return self.content.signing_bytes()

    def artifact_hash(self) -> bytes:
        """Return the finalization's crypto hash."""
        return _cached_hash(self, HASH_FINALIZATION)


# --- random tape -----------------------------------------------------------------------


@attrs.frozen(slots=True)
class RandomTapeContent:
    """Tape content for height h (randomness for execution, after finalization).

    Spec: protocol.md §1.2 (random tape), §2.3 (RandomTapeContent{version, height}).
    """

    version: str
    height: Height

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.version, self.height]

    def signing_bytes(self) -> bytes:
        """Return the bytes signed (domain ``random_tape_content_domain``)."""
        return domain_sep(DOMAIN_RANDOM_TAPE_CONTENT) + _cbor(self.encode())


@attrs.frozen(slots=True)
class RandomTape:
    """The random tape of height h: a threshold signature on its content.

    Spec: protocol.md §2.3.
    """

    content: RandomTapeContent
    signature: bytes

    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    @property
    def height(self) -> Height:
        """Return the tape height."""
        return self.content.height

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.content.encode(), self.signature]

    def signing_bytes(self) -> bytes:
        """Return the signed content bytes."""
        return self.content.signing_bytes()

    def artifact_hash(self) -> bytes:
        """Return the tape's crypto hash."""
        return _cached_hash(self, HASH_RANDOM_TAPE)


@attrs.frozen(slots=True)
class RandomTapeShare:
    """One node's threshold signature share on a tape content.

    Spec: protocol.md §2.3.
    """

    content: RandomTapeContent
    signer: NodeIndex
    signature: bytes

    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    @property
    def height(self) -> Height:
        """Return the tape height."""
        return self.content.height

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.content.encode(), self.signer, self.signature]

    def signing_bytes(self) -> bytes:
        """Return the signed content bytes."""
        return self.content.signing_bytes()

    def artifact_hash(self) -> bytes:
        """Return the share's crypto hash."""
        return _cached_hash(self, HASH_RANDOM_TAPE_SHARE)


# --- catch-up packages -----------------------------------------------------------------


@attrs.frozen(slots=True)
class CatchUpContent:
    """The finalized summary block at a DKG boundary, its beacon and the state hash.

    Spec: protocol.md §3.2 (CatchUpContent{block, random_beacon, state_hash, block_hash,
    random_beacon_hash, oldest_registry_version_in_use_by_replicated_state}).
    """

    block: Block
    random_beacon: RandomBeacon
    state_hash: bytes
    oldest_registry_version: RegistryVersion

    @property
    def height(self) -> Height:
        """Return the CUP height (its block's height)."""
        return self.block.height

    def encode(self) -> Encoded:
        """Return the canonical encoding tree (hashes included as in the IC)."""
        return [
            self.block.encode(),
            self.random_beacon.encode(),
            self.state_hash,
            self.block.block_hash(),
            self.random_beacon.artifact_hash(),
            self.oldest_registry_version,
        ]

    def signing_bytes(self) -> bytes:
        """Return the bytes threshold-signed (domain ``catch_up_content_domain``)."""
        return domain_sep(DOMAIN_CATCH_UP_CONTENT) + _cbor(self.encode())


@attrs.frozen(slots=True)
class CatchUpPackageShare:
    """One high-threshold committee member's share on a catch-up content.

    Spec: protocol.md §3.2 (CatchUpPackageShare = Signed<CatchUpContent, share>).
    """

    content: CatchUpContent
    signer: NodeIndex
    signature: bytes

    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    @property
    def height(self) -> Height:
        """Return the CUP height."""
        return self.content.height

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.content.encode(), self.signer, self.signature]

    def signing_bytes(self) -> bytes:
        """Return the signed content bytes."""
        return self.content.signing_bytes()

    def artifact_hash(self) -> bytes:
        """Return the share's crypto hash."""
        return _cached_hash(self, HASH_CATCH_UP_PACKAGE_SHARE)


@attrs.frozen(slots=True)
class CatchUpPackage:
    """A catch-up package: content threshold-signed with the subnet's high-threshold key.

    A genesis CUP comes from the registry and carries an empty signature; it is trusted
    as the replica's starting point and never accepted from the network.

    Spec: protocol.md §3.2 (CatchUpPackage = Signed<CatchUpContent, ThresholdSignature>).
    """

    content: CatchUpContent
    signature: bytes

    _hash: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False, hash=False)

    @property
    def height(self) -> Height:
        """Return the CUP height."""
        return self.content.height

    def encode(self) -> Encoded:
        """Return the canonical encoding tree."""
        return [self.content.encode(), self.signature]

    def signing_bytes(self) -> bytes:
        """Return the signed content bytes."""
        return self.content.signing_bytes()

    def artifact_hash(self) -> bytes:
        """Return the CUP's crypto hash."""
        return _cached_hash(self, HASH_CATCH_UP_PACKAGE)

    def summary(self) -> DkgSummary:
        """Return the DKG summary of the CUP's block."""
        payload = self.content.block.payload
        if not isinstance(payload, SummaryPayload):
            raise ValueError("a catch-up package must contain a summary block")
        return payload.dkg


ConsensusArtifact = (
    BlockProposal
    | EquivocationProof
    | RandomBeacon
    | RandomBeaconShare
    | Notarization
    | NotarizationShare
    | Finalization
    | FinalizationShare
    | RandomTape
    | RandomTapeShare
    | CatchUpPackage
    | CatchUpPackageShare
    | DealingMessage
)
"""Everything consensus gossips."""

ARTIFACT_TYPES: Final = (
    BlockProposal,
    EquivocationProof,
    RandomBeacon,
    RandomBeaconShare,
    Notarization,
    NotarizationShare,
    Finalization,
    FinalizationShare,
    RandomTape,
    RandomTapeShare,
    CatchUpPackage,
    CatchUpPackageShare,
    DealingMessage,
)


def encode_artifact(artifact: ConsensusArtifact) -> bytes:
    """Return the canonical CBOR bytes of ``artifact`` tagged with its type index."""
    return _cbor([ARTIFACT_TYPES.index(type(artifact)), artifact.encode()])

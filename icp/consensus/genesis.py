"""Genesis: node keys, the initial threshold keys and the genesis catch-up package.

On the IC a new subnet's first CUP comes from the registry (``CatchUpPackageContents``
with the initial low/high NI-DKG transcripts, produced by NNS nodes). Here a trusted
dealer (``deal_threshold``) plays that role; every later key comes from NI-DKG inside the
subnet when a ``DkgBackend`` is wired.

Spec: protocol.md §3.2 (genesis CUP from the registry; contains the initial transcripts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import attrs

from icp.consensus.artifacts import (
    GENESIS_PARENT,
    Block,
    CatchUpContent,
    CatchUpPackage,
    DkgId,
    DkgSummary,
    DkgTag,
    RandomBeacon,
    RandomBeaconContent,
    SummaryPayload,
    Transcript,
    ValidationContext,
)
from icp.consensus.config import REPLICA_VERSION, TIME_ZERO, ConsensusConfig
from icp.consensus.context import (
    EmptyPayloadBuilder,
    NodePublicKeys,
    NodeSecrets,
    PayloadBuilder,
    ReplicaContext,
    SubnetMembership,
)
from icp.consensus.crypto import ConsensusCrypto
from icp.consensus.dkg import DkgBackend, KeyStore, make_configs
from icp.consensus.replica import ConsensusReplica
from icp.crypto import nidkg
from icp.types import Height, NodeIndex, Rank, RegistryVersion, Time


@attrs.frozen(slots=True)
class SubnetSetup:
    """Everything needed to start the replicas of a new subnet."""

    config: ConsensusConfig
    membership: SubnetMembership
    secrets: tuple[NodeSecrets, ...]
    key_stores: tuple[KeyStore, ...]
    cup: CatchUpPackage
    """The genesis CUP (height 0, trusted, unsigned)."""

    def subnet_public_key(self) -> bytes:
        """Return the subnet's threshold public key (constant across resharing)."""
        return self.cup.summary().current_transcript(DkgTag.HIGH).group_public_key


def make_subnet(
    config: ConsensusConfig,
    crypto: ConsensusCrypto,
    seed: bytes,
    *,
    subnet_id: bytes = b"\x00\x00\x00\x00\x00\x00\x00\x01\x01",
    with_dkg: bool = False,
    genesis_time: Time = TIME_ZERO,
) -> SubnetSetup:
    """Create keys and the genesis CUP of a subnet of ``config.n`` nodes from ``seed``.

    ``with_dkg``: give nodes NI-DKG encryption keys and configure DKGs in the genesis
    summary (run the replicas with a ``NidkgBackend``); otherwise the genesis keys sign
    forever.

    Spec: protocol.md §3.1 (low threshold f+1, high threshold 2f+1), §3.2.
    """
    n = config.n
    nodes: list[NodePublicKeys] = []
    secrets: list[NodeSecrets] = []
    for i in range(n):
        node_seed = hashlib.sha256(seed + b"node" + i.to_bytes(4, "big")).digest()
        basic_sk, basic_pk = crypto.basic_keygen(node_seed)
        committee_sk, committee_pk = crypto.multi_keygen(node_seed)
        dkg_sk, dkg_pk = (None, b"")
        if with_dkg:
            dkg_sk, dkg_pk = nidkg.encryption_keygen(node_seed + b"dkg-encryption")
        nodes.append(NodePublicKeys(basic_pk, committee_pk, dkg_pk))
        secrets.append(
            NodeSecrets(basic_sk, committee_sk, hashlib.sha256(node_seed + b"dkg").digest(), dkg_sk)
        )
    everyone = tuple(NodeIndex(i) for i in range(n))
    stores = [KeyStore() for _ in range(n)]
    transcripts: list[Transcript] = []
    for tag, threshold in (
        (DkgTag.LOW, config.low_threshold),
        (DkgTag.HIGH, config.high_threshold),
    ):
        public, shares = crypto.deal_threshold(seed + bytes([int(tag)]), n, threshold)
        dkg_id = DkgId(Height(0), tag)
        transcripts.append(
            Transcript(
                dkg_id, threshold, everyone, public.group_public_key, public.public_key_shares
            )
        )
        for i in range(n):
            stores[i].shares[dkg_id] = shares[i]
    configs = make_configs(config, Height(0), transcripts[1]) if with_dkg else ()
    summary = DkgSummary(
        registry_version=config.registry_version,
        interval_length=config.dkg_interval_length,
        height=Height(0),
        current=tuple(transcripts),
        next=(),
        configs=configs,
    )
    block = Block(
        REPLICA_VERSION,
        GENESIS_PARENT,
        Height(0),
        Rank(0),
        ValidationContext(config.registry_version, Height(0), genesis_time),
        SummaryPayload(summary),
    )
    beacon = RandomBeacon(
        RandomBeaconContent(REPLICA_VERSION, Height(0), GENESIS_PARENT),
        hashlib.sha256(seed + b"genesis-beacon").digest(),
    )
    cup = CatchUpPackage(
        CatchUpContent(block, beacon, bytes(32), config.registry_version), signature=b""
    )
    return SubnetSetup(
        config, SubnetMembership(subnet_id, tuple(nodes)), tuple(secrets), tuple(stores), cup
    )


def make_replica(
    setup: SubnetSetup,
    node: int,
    crypto: ConsensusCrypto,
    *,
    cup: CatchUpPackage | None = None,
    now: Time = TIME_ZERO,
    payload_builder: PayloadBuilder | None = None,
    dkg: DkgBackend | None = None,
    on_batch: Callable[..., bytes | None] | None = None,
    registry_version: Callable[[], RegistryVersion] | None = None,
) -> ConsensusReplica:
    """Return node ``node``'s replica, started from ``cup`` (default: genesis).

    ``registry_version`` returns the newest version of the node's registry copy (None:
    the config's version, a registry that never changes).
    """
    ctx = ReplicaContext(
        node=NodeIndex(node),
        config=setup.config,
        membership=setup.membership,
        crypto=crypto,
        secrets=setup.secrets[node],
        keys=attrs.evolve(setup.key_stores[node], shares=dict(setup.key_stores[node].shares)),
        payload_builder=payload_builder or EmptyPayloadBuilder(),
        dkg=dkg,
        registry_version=registry_version,
    )
    return ConsensusReplica(ctx, cup or setup.cup, now, on_batch=on_batch)

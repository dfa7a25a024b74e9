"""icp.consensus: Internet Computer Consensus (random beacon, ranked block making,
notarization, finalization, DKG summaries and catch-up packages).

Spec: ICC paper (Camenisch et al., PODC 2022, ePrint 2021/632); protocol.md §1-3.
"""

from icp.consensus.artifacts import (
    Block,
    BlockProposal,
    CatchUpPackage,
    CatchUpPackageShare,
    EquivocationProof,
    Finalization,
    FinalizationShare,
    Notarization,
    NotarizationShare,
    RandomBeacon,
    RandomBeaconShare,
    RandomTape,
    RandomTapeShare,
)
from icp.consensus.config import MAINNET_LIKE, MINIMAL, ConsensusConfig
from icp.consensus.crypto import (
    CachingCrypto,
    ConsensusCrypto,
    InsecureFastCrypto,
    RealCrypto,
    VerificationCache,
)
from icp.consensus.genesis import SubnetSetup, make_replica, make_subnet
from icp.consensus.replica import Batch, ConsensusReplica

__all__ = [
    "MAINNET_LIKE",
    "MINIMAL",
    "Batch",
    "Block",
    "BlockProposal",
    "CachingCrypto",
    "CatchUpPackage",
    "CatchUpPackageShare",
    "ConsensusConfig",
    "ConsensusCrypto",
    "ConsensusReplica",
    "EquivocationProof",
    "Finalization",
    "FinalizationShare",
    "InsecureFastCrypto",
    "Notarization",
    "NotarizationShare",
    "RandomBeacon",
    "RandomBeaconShare",
    "RandomTape",
    "RandomTapeShare",
    "RealCrypto",
    "SubnetSetup",
    "VerificationCache",
    "make_replica",
    "make_subnet",
]

"""InternetComputer: an NNS subnet and application subnets, in process, from a seed.

Theory of operation.  ``InternetComputer`` builds a whole IC deterministically from a
seed: per subnet, node keys and the genesis threshold keys (``make_subnet``); the
subnet id is the self-authenticating principal of the subnet's threshold key; the NNS
subnet's key is the IC root key.  The registry view every state starts from
(``NetworkTopology``) lists every subnet's key, nodes and canister ranges: the NNS gets
canister indices ``0 .. 2**20-1``, application subnet ``i`` the ``2**20`` ids starting
at ``0x8000000000100000 + i * 2**20`` (the local-replica range dfx uses, so the first
canister dfx would make is ``bkyz2-fmaaa-aaaaa-qaaaq-cai``).

The replicas of all subnets share one discrete-event loop in virtual time: an artifact
a replica broadcasts arrives at its peers after the link delay of the seeded network
model, a delivery schedules a tick of the receiver, and every replica also ticks on a
timer so that consensus delays expire.  Time advances by itself while the caller waits
for something (``call_and_wait`` runs until the request's status is certified), or by
hand (``tick`` = run until every subnet certified a new height, ``advance_time``,
``set_time``).

Requests use the IC's HTTP bodies (CBOR envelopes) so that the HTTP layer is a thin
wrapper: ``submit_call``, ``call_and_wait``, ``query`` (one replica runs it on its
certified state, changes are discarded, the node signs the response), ``read_state``
(permission checks, certificate pruned to the paths, NNS delegation for application
subnets).  Canisters on different subnets call each other through XNet streams: each
subnet's payload builder pulls certified stream slices from a replica of the source
subnet (``xnet_slice``).

A query runs on a replica whose canister memory is its certified state (execution
changes memory in place, so a replica between executing and certifying a height does
not qualify: ``query_replica``), and repeated queries are answered from that replica's
``QueryCache``.  Pure per-request work is shared by all replicas of this process:
envelope parsing (``EnvelopeCache``) and sender authentication
(``CachingAuthenticator``).  ``set_stable_memory`` (for PocketIC) is applied at one
height by every replica of the subnet.

Spec: protocol digest §3.3, §3.4 (NNS key is the root key; delegations), §4.1-§4.4;
interface spec §1 (HTTP interface), §2 (certification, state tree).
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import random
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from icp.consensus.config import MILLIS, ConsensusConfig
from icp.consensus.crypto import CachingCrypto, ConsensusCrypto, RealCrypto, VerificationCache
from icp.consensus.genesis import SubnetSetup, make_subnet
from icp.consensus.nidkg_backend import NidkgBackend
from icp.crypto.bls import public_key_to_der
from icp.crypto.certificate import Delegation
from icp.crypto.errors import AuthenticationError
from icp.crypto.hashing import EncodingError, cbor_decode, cbor_encode
from icp.crypto.user_sig import SignedDelegation
from icp.execution.canister import CanisterState
from icp.execution.engine import WasmEngine
from icp.execution.errors import CanisterError, ErrorCode, RejectCode
from icp.execution.executor import (
    ExecutionEnvironment,
    execute_query,
    inspect_message,
    reject_of,
)
from icp.execution.system_api import Reject, Reply
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.messaging.ingress import (
    APPLICATION_SUBNET_LIMITS,
    SYSTEM_SUBNET_LIMITS,
    CachingAuthenticator,
    EnvelopeCache,
    IngressError,
    IngressLimits,
    SignedIngress,
    authenticate_ingress,
    check_ingress,
    is_expiry_valid,
)
from icp.messaging.routing import CANISTER_IDS_PER_SUBNET, CanisterIdRange
from icp.nns.registry import (
    NNS_SUBNET_ID_KEY,
    ROUTING_TABLE_KEY,
    SUBNET_LIST_KEY,
    CatchUpPackageContentsRecord,
    PublicKeyRecord,
    Registry,
    RegistryError,
    RegistryMutation,
    RoutingTableEntry,
    RoutingTableRecord,
    SubnetIdRecord,
    SubnetListRecord,
    SubnetRecord,
    cup_contents_key,
    node_signing_key_key,
    subnet_record_key,
    threshold_key_key,
    upsert,
)
from icp.nns.registry import SubnetType as RegistrySubnetType
from icp.principal import Principal
from icp.replica import Replica, ReplicaArtifact, StateMachine, response_fields
from icp.sim.network import LinkModel, Network
from icp.state.certification import (
    ReadStateError,
    check_read_state_paths,
    make_delegation,
)
from icp.state.ingress_history import IngressStatus, RequestStatus
from icp.state.manager import StateManager
from icp.state.replicated_state import NetworkTopology, ReplicatedState
from icp.types import NANOS_PER_SECOND, Height, RegistryVersion, Time

WASM_PAGE_SIZE: Final = 65536
"""Bytes per Wasm (and stable memory) page."""

DEFAULT_GENESIS_TIME: Final = Time(1_700_000_000 * NANOS_PER_SECOND)
"""2023-11-14T22:13:20Z: the default start of virtual time (deterministic runs)."""

APP_RANGE_START: Final = 0x8000000000100000
"""First canister index of application subnet 0 (the local replica range dfx uses)."""

TICK_GRANULARITY: Final = Time(5 * MILLIS)
TIMER_INTERVAL: Final = Time(50 * MILLIS)
DEFAULT_CONSENSUS: Final = ConsensusConfig(
    n=4,
    unit_delay=Time(1000 * MILLIS),
    initial_notary_delay=Time(300 * MILLIS),
    dkg_interval_length=19,
)
"""The per-subnet consensus parameters (n is replaced by each subnet's size)."""

REGISTRY_FILE: Final = "registry.cbor"
"""The registry's change log in an IC's ``state_dir`` (subnets added at run time)."""

DELEGATION_REFRESH: Final = 600 * NANOS_PER_SECOND
"""How long a cached NNS delegation is reused (agents accept delegations for days)."""


class SubnetKind(enum.Enum):
    """What a subnet is for (PocketIC's subnet kinds, minus the ones we do not model)."""

    NNS = "nns"
    APPLICATION = "application"
    SYSTEM = "system"


class ICError(Exception):
    """A request the IC refuses, with the HTTP status, reject code and error code.

    Spec: interface spec §1.7 (reject codes, error codes ``IC`` + 4 digits).
    """

    def __init__(
        self, message: str, *, http_status: int = 400, reject_code: int = 0, error_code: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.reject_code = reject_code
        self.error_code = error_code


@attrs.frozen
class SubnetConfig:
    """One subnet to create: its kind and number of nodes."""

    kind: SubnetKind = SubnetKind.APPLICATION
    nodes: int = 4


@attrs.frozen
class CallResult:
    """The certified outcome of an update call."""

    request_id: bytes
    status: str
    """``replied`` or ``rejected``."""
    reply: bytes | None
    reject_code: int | None
    reject_message: str | None
    error_code: str | None
    certificate: bytes
    """CBOR certificate of ``/request_status/<id>`` (with the NNS delegation if needed)."""


class Subnet:
    """A running subnet: its id, kind, setup (keys), ranges and replicas."""

    def __init__(
        self,
        index: int,
        kind: SubnetKind,
        setup: SubnetSetup,
        network: Network,
        topology: Callable[[], NetworkTopology],
    ) -> None:
        """``topology`` returns the network as the latest registry version says."""
        self.index = index
        self.kind = kind
        self.setup = setup
        self.subnet_id = Principal(setup.membership.subnet_id)
        self.network = network
        self._topology = topology
        self.replicas: list[Replica] = []
        self.state_dir: Path | None = None
        self.down: set[int] = set()
        """Nodes cut off from the network (``InternetComputer.disconnect``)."""

    @property
    def ranges(self) -> tuple[CanisterIdRange, ...]:
        """The canister-id ranges the latest registry version assigns to this subnet."""
        return self._topology().canister_ranges(self.subnet_id)

    def live(self) -> list[Replica]:
        """Return the replicas that are connected."""
        return [r for r in self.replicas if r.node not in self.down]

    @property
    def n(self) -> int:
        """Number of nodes."""
        return self.setup.config.n

    @property
    def public_key_der(self) -> bytes:
        """The subnet's threshold public key (DER)."""
        return self.replicas[0].public_key_der

    @property
    def limits(self) -> IngressLimits:
        """Ingress limits of this kind of subnet (protocol §4.2)."""
        return (
            APPLICATION_SUBNET_LIMITS
            if self.kind is SubnetKind.APPLICATION
            else SYSTEM_SUBNET_LIMITS
        )

    def certified_height(self) -> Height:
        """Return the lowest certified height among the subnet's connected replicas."""
        return Height(min(r.state.certified_height or 0 for r in self.live()))

    def serving_replica(self) -> Replica:
        """Return the replica that answers queries and read_state (highest certified).

        Spec: interface spec §1.6 (a query is answered by one replica).
        """
        return max(self.live(), key=lambda r: (r.state.certified_height or -1, -r.node))


def subnet_id_of(public_key_der: bytes) -> Principal:
    """Return a subnet id: the self-authenticating principal of its initial threshold key.

    Spec: dfinity/ic ``ic-prep`` (subnet ids derive from the initial NI-DKG public key
    of the subnet) [mem].
    """
    return Principal.self_authenticating(public_key_der)


def canister_ranges_for(index: int, kind: SubnetKind) -> tuple[CanisterIdRange, ...]:
    """Return subnet ``index``'s canister ranges: NNS low ids, others dfx-like ranges.

    Spec: protocol digest §4.4 (2**20 ids per subnet).
    """
    if kind is SubnetKind.NNS:
        return (CanisterIdRange.from_indices(0, CANISTER_IDS_PER_SUBNET - 1),)
    first = APP_RANGE_START + index * CANISTER_IDS_PER_SUBNET
    return (CanisterIdRange.from_indices(first, first + CANISTER_IDS_PER_SUBNET - 1),)


class InternetComputer:
    """A whole IC in process: NNS + application subnets of replicas on a virtual network.

    Spec: see module docstring.
    """

    def __init__(
        self,
        subnets: Sequence[SubnetConfig] | None = None,
        *,
        nodes: int = 4,
        applications: int = 1,
        seed: bytes | int = 0,
        time: int = DEFAULT_GENESIS_TIME,
        state_dir: Path | str | None = None,
        engine: WasmEngine | None = None,
        crypto: ConsensusCrypto | None = None,
        consensus: ConsensusConfig = DEFAULT_CONSENSUS,
        link: LinkModel | None = None,
        state_machine: Callable[[InternetComputer, Subnet], StateMachine] | None = None,
        clock: Callable[[], int] | None = None,
        with_dkg: bool = False,
        authenticate_senders: bool = True,
    ) -> None:
        """Create (or, with a populated ``state_dir``, restart) an IC.

        ``subnets`` default: one NNS subnet and ``applications`` application subnets of
        ``nodes`` nodes each.  ``seed`` fixes every key and every network delay.
        ``clock`` (e.g. ``time.time_ns``) makes time advance by itself: every request
        first runs the IC up to the clock's time (virtual time never runs backwards).
        ``with_dkg``: subnets re-share their threshold keys by NI-DKG every DKG interval
        (the public key stays the same); otherwise the genesis keys sign forever.
        ``authenticate_senders=False`` is PocketIC's trusted test mode: requests may
        name any sender without a signature (every replica agrees to skip the check);
        never use it for an IC that serves untrusted clients.
        """
        self.seed = seed.to_bytes(32, "big") if isinstance(seed, int) else bytes(seed)
        self.configs = tuple(
            subnets
            if subnets is not None
            else [SubnetConfig(SubnetKind.NNS, nodes)]
            + [SubnetConfig(SubnetKind.APPLICATION, nodes)] * applications
        )
        if sum(1 for c in self.configs if c.kind is SubnetKind.NNS) != 1:
            raise ValueError("an IC has exactly one NNS subnet")
        self.crypto = crypto or CachingCrypto(RealCrypto(), VerificationCache())
        if not self.crypto.is_secure:
            raise ValueError("the InternetComputer runs with real crypto only")
        self.engine: WasmEngine = engine or WasmtimeEngine()  # type: ignore[assignment]
        self.consensus_config = consensus
        self.genesis_time = Time(time)
        self.now = Time(time)
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.rng = random.Random(hashlib.sha256(self.seed + b"network").digest())
        self.link = link or LinkModel()
        self._queue: list[tuple[int, int, int, int, int, ReplicaArtifact | None]] = []
        self._seq = 0
        self._pending_tick: dict[tuple[int, int], int] = {}
        self._delegations: dict[bytes, tuple[int, Delegation]] = {}
        self._data_certificates: dict[tuple[bytes, int, bytes], tuple[Height | None, bytes]] = {}
        self._state_machine = state_machine
        self.clock = clock
        self.query_caching = True
        """Answer repeated queries from each replica's ``QueryCache`` (False: always execute)."""
        self.with_dkg = with_dkg
        self.authenticate: CachingAuthenticator | None = (
            CachingAuthenticator(authenticate_ingress) if authenticate_senders else None
        )
        """Sender authentication shared by every replica of this process (None: trusted)."""
        self.envelopes = EnvelopeCache()
        """Envelope parsing shared by every replica of this process."""
        self.subnets: list[Subnet] = []
        self._routes: dict[bytes, Subnet] = {}
        self._topologies: dict[RegistryVersion, NetworkTopology] = {}
        self._environments: dict[int, ExecutionEnvironment] = {}
        self._stable_writes: dict[int, dict[Height, list[tuple[bytes, bytes]]]] = {}
        """Per subnet index and height: ``set_stable_memory`` writes to apply there."""
        self._build()
        self.run_while(
            lambda: any(s.serving_replica().state.certified_height is None for s in self.subnets),
            self.now + 60 * NANOS_PER_SECOND,
        )

    # -- construction ---------------------------------------------------------------------

    def _build(self) -> None:
        """Deal every subnet's keys, write the genesis registry, start the replicas.

        With a populated ``state_dir`` the registry's persisted change log is read back,
        so subnets added at run time (``add_subnet``) are started again too.
        """
        setups: list[SubnetSetup] = []
        mutations: list[RegistryMutation] = []
        table: list[RoutingTableEntry] = []
        for i, cfg in enumerate(self.configs):
            config = attrs.evolve(self.consensus_config, n=cfg.nodes)
            setup = self._deal_subnet(i, config, self.genesis_time)
            subnet_id = Principal(setup.membership.subnet_id)
            setups.append(setup)
            table += routing_entries(subnet_id, free_ranges(table, cfg.kind))
            mutations += subnet_mutations(setup, cfg.kind, self.genesis_time)
            if cfg.kind is SubnetKind.NNS:
                mutations.append(upsert(NNS_SUBNET_ID_KEY, SubnetIdRecord(subnet_id)))
        mutations.append(upsert(ROUTING_TABLE_KEY, RoutingTableRecord(table)))
        mutations.append(
            upsert(
                SUBNET_LIST_KEY,
                SubnetListRecord(Principal(s.membership.subnet_id) for s in setups),
            )
        )
        genesis = Registry().apply(mutations)
        restarting = self.state_dir is not None and any(self.state_dir.glob("subnet-*/node-*/cups"))
        self.registry = self._load_registry(genesis) if restarting else genesis
        if not restarting:
            self._save_registry()
        nns_id = self.registry.nns_subnet_id()
        assert nns_id is not None  # the configs hold exactly one NNS subnet
        self.root_key = self.registry.threshold_key(nns_id)
        for i, subnet_id in enumerate(self.registry.subnet_ids()):
            if i < len(setups):
                kind, setup = self.configs[i].kind, setups[i]
            else:
                kind, setup = self._redeal_subnet(i, subnet_id)
            self._start_subnet(i, kind, setup, restarting=restarting)
        if restarting:
            self._load_stable_writes()
            self._recover()

    def _deal_subnet(self, index: int, config: ConsensusConfig, genesis_time: Time) -> SubnetSetup:
        """Return subnet ``index``'s keys and genesis CUP, dealt from the IC's seed.

        The subnet id is the self-authenticating principal of its threshold key.
        """
        seed = hashlib.sha256(self.seed + b"subnet" + index.to_bytes(4, "big")).digest()
        setup = make_subnet(
            config, self.crypto, seed, genesis_time=genesis_time, with_dkg=self.with_dkg
        )
        subnet_id = subnet_id_of(public_key_to_der(setup.subnet_public_key()))
        return attrs.evolve(
            setup, membership=attrs.evolve(setup.membership, subnet_id=subnet_id.raw)
        )

    def _redeal_subnet(self, index: int, subnet_id: Principal) -> tuple[SubnetKind, SubnetSetup]:
        """After a restart: deal an added subnet's keys again from its registry records."""
        record = self.registry.subnet_record(subnet_id)
        config = attrs.evolve(
            self.consensus_config,
            n=len(record.membership),
            unit_delay=Time(record.unit_delay_millis * MILLIS),
            initial_notary_delay=Time(record.initial_notary_delay_millis * MILLIS),
            dkg_interval_length=record.dkg_interval_length,
        )
        setup = self._deal_subnet(index, config, Time(self.registry.cup_contents(subnet_id).time))
        if setup.membership.subnet_id != subnet_id.raw:
            raise ICError(
                f"the state directory's subnet {subnet_id} was not made from this seed",
                http_status=500,
            )
        kind = SubnetKind.APPLICATION
        if record.subnet_type is RegistrySubnetType.SYSTEM:
            kind = SubnetKind.SYSTEM
        return kind, setup

    def _start_subnet(
        self, index: int, kind: SubnetKind, setup: SubnetSetup, *, restarting: bool
    ) -> Subnet:
        """Start (or restore) the replicas of subnet ``index`` and add it to the IC."""
        subnet_id = Principal(setup.membership.subnet_id)
        genesis_time = Time(self.registry.cup_contents(subnet_id).time)
        # the height-0 state holds the network as of the version that created the subnet
        created = next(
            RegistryVersion(v)
            for v in range(1, self.registry.latest_version + 1)
            if subnet_id in self.registry.subnet_ids(v)
        )
        net = Network(setup.config.n, random.Random(self.rng.getrandbits(64)), self.link)
        subnet = Subnet(index, kind, setup, net, lambda: self.topology)
        self.subnets.append(subnet)
        execute = self._execute_for(subnet)
        dkg = NidkgBackend(subnet.setup.membership) if self.with_dkg else None
        builders = None if self._state_machine is not None else payload_builders(self, subnet)
        common: dict[str, Any] = {
            "engine": self.engine,
            "execute": execute,
            "payload_builder": builders,
            "now": self.now,
            "dkg": dkg,
            "authenticate": self.authenticate,
            "envelopes": self.envelopes,
            "registry_version": self._registry_version,
        }
        for node in range(subnet.n):
            node_dir = self._node_dir(subnet, node)
            if restarting and node_dir is not None and (node_dir / "cups").exists():
                replica = Replica.restore(
                    subnet.setup,
                    node,
                    self.crypto,
                    node_dir,
                    state_sync=self._state_sync_for(subnet, node),
                    **common,
                )
            else:
                if node_dir is not None and node_dir.exists():
                    shutil.rmtree(node_dir)
                initial = ReplicatedState(
                    subnet_id, self.topology_at(created), Height(0), genesis_time
                )
                manager = StateManager(
                    initial,
                    checkpoint_root=None if node_dir is None else node_dir / "checkpoints",
                    checkpoint_interval=subnet.setup.config.dkg_interval_length + 1,
                )
                replica = Replica(
                    subnet.setup,
                    node,
                    self.crypto,
                    manager,
                    state_dir=node_dir,
                    state_sync=self._state_sync_for(subnet, node),
                    **common,
                )
            subnet.replicas.append(replica)
            self._schedule_tick(subnet.index, node, self.now)
            self._push(Time(self.now + TIMER_INTERVAL), 1, subnet.index, node, None)
        return subnet

    # -- the registry ---------------------------------------------------------------------

    def _registry_version(self) -> RegistryVersion:
        """The newest registry version (every replica of this process has a current copy)."""
        return self.registry.latest_version

    @property
    def topology(self) -> NetworkTopology:
        """The network as the latest registry version says (what ingress is routed by)."""
        return self.topology_at(self.registry.latest_version)

    def topology_at(self, version: RegistryVersion) -> NetworkTopology:
        """Return the network at a registry version (one object per distinct topology).

        Message routing takes each batch's topology from here, so the same view is
        one shared value, and a version that changed nothing the topology holds
        returns the previous version's object.
        Spec: protocol digest §6.1 (replicas read the registry at the block's version).
        """
        cached = self._topologies.get(version)
        if cached is None:
            cached = NetworkTopology.from_registry(self.registry, version)
            previous = self._topologies.get(RegistryVersion(version - 1))
            if previous is not None and previous == cached:
                cached = previous
            self._topologies[version] = cached
        return cached

    def _registry_file(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / REGISTRY_FILE

    def _save_registry(self) -> None:
        path = self._registry_file()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_file(path, self.registry.encode())

    def _load_registry(self, genesis: Registry) -> Registry:
        """Read the persisted registry; its first version must describe this IC's subnets.

        The genesis subnets (ids, keys, nodes, ranges) must be the ones this seed and
        configuration make; the genesis time may differ (a restarted ``icp start``
        passes the current time), and the persisted one is kept.
        """
        path = self._registry_file()
        if path is None or not path.exists():
            return genesis
        try:
            persisted = Registry.decode(path.read_bytes())
        except RegistryError as exc:
            raise ICError(f"{path}: {exc}", http_status=500) from None
        if NetworkTopology.from_registry(persisted, 1) != NetworkTopology.from_registry(genesis, 1):
            raise ICError(
                f"{path} describes a different IC (other seed or subnets)", http_status=500
            )
        return persisted

    def update_registry(self, mutations: Sequence[RegistryMutation]) -> RegistryVersion:
        """Apply a registry mutation batch: the registry moves to the next version.

        Every replica's registry copy has the new version at once; each subnet's block
        makers then propose it, and each subnet's state takes the new network view at
        the first block carrying it.  Raises ``RegistryError`` (changing nothing) if
        the result breaks a registry invariant.  With a ``state_dir`` the change log is
        persisted, so a restart replays blocks against the same versions.
        Spec: protocol digest §6.1 (one version per applied batch; replicas poll).
        """
        self.registry = self.registry.apply(mutations)
        self._save_registry()
        self._routes.clear()
        return self.registry.latest_version

    def add_subnet(
        self,
        config: SubnetConfig | None = None,
        *,
        ranges: Sequence[CanisterIdRange] | None = None,
    ) -> Subnet:
        """Create a subnet on the running IC and return it once every subnet knows it.

        Deals the new subnet's node keys and threshold key from the IC's seed, adds its
        records, its canister ranges (default: the next free block of ``2**20`` ids)
        and its place in the subnet list to the registry in one version, starts its
        replicas from a genesis CUP at the current time, then runs until every subnet
        has certified a state of that registry version (so the new subnet's canisters
        are reachable by ingress and by calls from every subnet) and the new subnet
        has certified its first height.  Raises ``RegistryError`` if ``ranges`` overlap
        a subnet's, ``ValueError`` for a second NNS subnet.
        Spec: protocol digest §6.2 step 4 (``CreateSubnet``: new subnet, initial keys,
        routing-table range), §6.1, §4.4.
        """
        config = config or SubnetConfig()
        if config.kind is SubnetKind.NNS:
            raise ValueError("an IC has exactly one NNS subnet")
        if config.nodes < 1:
            raise ValueError("a subnet needs at least one node")
        index = len(self.subnets)
        consensus = attrs.evolve(self.consensus_config, n=config.nodes)
        setup = self._deal_subnet(index, consensus, self.now)
        subnet_id = Principal(setup.membership.subnet_id)
        table = self.registry.routing_table().entries
        chosen = tuple(ranges) if ranges is not None else free_ranges(table, config.kind)
        mutations = subnet_mutations(setup, config.kind, self.now)
        entries = (*table, *routing_entries(subnet_id, chosen))
        mutations.append(upsert(ROUTING_TABLE_KEY, RoutingTableRecord(entries)))
        mutations.append(
            upsert(SUBNET_LIST_KEY, SubnetListRecord((*self.registry.subnet_ids(), subnet_id)))
        )
        version = self.update_registry(mutations)
        subnet = self._start_subnet(index, config.kind, setup, restarting=False)
        current = self.topology_at(version)

        def pending() -> bool:
            return subnet.serving_replica().state.certified_height is None or any(
                s.serving_replica().certified()[0].topology != current for s in self.subnets
            )

        if not self.run_while(pending, self.now + 60 * NANOS_PER_SECOND):
            raise ICError(
                "a subnet did not take up the new registry version within a minute",
                http_status=503,
            )
        return subnet

    def _recover(self) -> None:
        """After a restart: run until every replica re-executed and certified its chain.

        The clock resumes at the latest time any node had reached (its last finalized
        block's time), never earlier, and calls are served only once every height a node
        had finalized before the restart is executed and certified again, so replies and
        times certified before the restart are certified again after it.
        Spec: protocol digest §4.7 (restart from checkpoint + CUP, replay of the
        finalized blocks above it).
        """
        replicas = [r for s in self.subnets for r in s.replicas]
        self.now = Time(
            max(self.now, self._restored_time(), *(r.replay_target[1] for r in replicas))
        )

        def behind() -> bool:
            return any((r.state.certified_height or 0) < r.replay_target[0] for r in replicas)

        if not self.run_while(behind, self.now + 60 * NANOS_PER_SECOND):
            raise ICError("restart: the persisted chain was not re-certified within a minute")

    def _state_sync_for(
        self, subnet: Subnet, node: int
    ) -> Callable[[Height], dict[str, bytes] | None]:
        """Return node ``node``'s state-sync client: checkpoint files from a live peer."""

        def fetch(height: Height) -> dict[str, bytes] | None:
            for peer in subnet.live():
                if peer.node != node:
                    files = peer.checkpoint_files(height)
                    if files is not None:
                        return files
            return None

        return fetch

    def _restored_time(self) -> int:
        return max(r.state.latest_state.time for s in self.subnets for r in s.replicas)

    def _node_dir(self, subnet: Subnet, node: int) -> Path | None:
        if self.state_dir is None:
            return None
        return self.state_dir / f"subnet-{subnet.index}" / f"node-{node}"

    def _execute_for(self, subnet: Subnet) -> StateMachine:
        machine = (
            self._state_machine(self, subnet)
            if self._state_machine is not None
            else message_routing(self, subnet)
        )

        def execute(state: ReplicatedState, batch: Any) -> ReplicatedState:
            writes = self._stable_writes.get(subnet.index, {}).get(Height(batch.height))
            if writes:
                state = apply_stable_memory_writes(state, writes)
            return machine(state, batch)

        return execute

    # -- test-environment state changes (PocketIC) ----------------------------------------

    def set_stable_memory(self, canister_id: Principal, data: bytes) -> None:
        """Replace a canister's stable memory with ``data`` on every replica of its subnet.

        A test-environment operation (PocketIC's ``set_stable_memory``), not an IC API.
        It changes replicated state, so it goes in at one height on every replica: the
        write is scheduled for the first height no replica of the subnet has executed
        yet and applied there, before that height's batch, by each replica's state
        machine (``apply_stable_memory_writes``); then the IC runs until that height is
        certified, so the next query, ``get_stable_memory`` or certificate sees it.  The
        memory becomes ``ceil(len(data) / 64 KiB)`` Wasm pages holding ``data`` then
        zeros.  With a ``state_dir`` the write is persisted until no replica can replay
        that height any more (restart replays it identically).  Raises ``ICError``
        (404) if the canister does not exist or has no module.
        Spec: PocketIC ``set_stable_memory`` (pocket-ic server API); interface spec §5
        (stable memory is Wasm pages of 64 KiB).
        """
        subnet = self.subnet_of(canister_id)
        replica = subnet.serving_replica()
        canister = replica.state.latest_state.canister(canister_id)
        if canister is None or canister.runtime is None:
            raise ICError(
                f"canister {canister_id} does not exist or has no Wasm module",
                http_status=404,
                reject_code=int(RejectCode.DESTINATION_INVALID),
                error_code="IC0301" if canister is None else "IC0537",
            )
        self._prune_stable_writes(subnet)
        height = Height(max(r.state.latest_height for r in subnet.replicas) + 1)
        writes = self._stable_writes.setdefault(subnet.index, {}).setdefault(height, [])
        writes.append((canister_id.raw, bytes(data)))
        directory = self._stable_writes_dir(subnet)
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            _write_file(directory / f"{height:016d}.cbor", cbor_encode([list(w) for w in writes]))
        if not self.run_while(
            lambda: subnet.certified_height() < height, self.now + 60 * NANOS_PER_SECOND
        ):
            raise ICError(
                "the subnet made no progress for a minute of virtual time", http_status=503
            )

    def get_stable_memory(self, canister_id: Principal) -> bytes:
        """Return a canister's stable memory in a latest certified state (b"" if no module).

        Raises ``ICError`` (404) if the canister does not exist.
        Spec: PocketIC ``get_stable_memory``.
        """
        subnet = self.subnet_of(canister_id)
        replica = self.query_replica(subnet.serving_replica(), canister_id, "")
        canister = replica.certified()[0].canister(canister_id)
        if canister is None:
            raise ICError(
                f"canister {canister_id} does not exist",
                http_status=404,
                reject_code=int(RejectCode.DESTINATION_INVALID),
                error_code="IC0301",
            )
        if canister.runtime is None:
            return b""
        stable = canister.runtime.stable
        return stable.read(0, stable.size_bytes)

    def _stable_writes_dir(self, subnet: Subnet) -> Path | None:
        if self.state_dir is None:
            return None
        return self.state_dir / f"subnet-{subnet.index}" / "stable-memory-writes"

    def _load_stable_writes(self) -> None:
        for subnet in self.subnets:
            directory = self._stable_writes_dir(subnet)
            if directory is None or not directory.exists():
                continue
            for path in sorted(directory.glob("*.cbor")):
                entries = cbor_decode(path.read_bytes(), max_bytes=path.stat().st_size)
                if not isinstance(entries, list | tuple):  # decoded arrays may be tuples
                    continue
                self._stable_writes.setdefault(subnet.index, {})[Height(int(path.stem))] = [
                    (bytes(cid), bytes(data)) for cid, data in entries
                ]

    def _prune_stable_writes(self, subnet: Subnet) -> None:
        """Forget writes at heights no replica can execute again (none may replay them)."""
        pending = self._stable_writes.get(subnet.index)
        if not pending:
            return
        done = min(r.state.latest_height for r in subnet.replicas)
        if self.state_dir is not None:  # a restart replays from a kept CUP's checkpoint
            done = min(done, *(r.oldest_persisted_cup() for r in subnet.replicas))
        directory = self._stable_writes_dir(subnet)
        for height in [h for h in pending if h <= done]:
            del pending[height]
            if directory is not None:
                (directory / f"{height:016d}.cbor").unlink(missing_ok=True)

    def execution_environment(self, subnet: Subnet) -> ExecutionEnvironment:
        """Return the execution parameters of ``subnet`` (engine, size, root key)."""
        env = self._environments.get(subnet.index)
        if env is None:
            env = ExecutionEnvironment(
                engine=self.engine,
                subnet_id=subnet.subnet_id.raw,
                subnet_size=subnet.n,
                root_key=self.root_key,
            )
            self._environments[subnet.index] = env
        return env

    # -- topology -------------------------------------------------------------------------

    @property
    def nns(self) -> Subnet:
        """The NNS subnet (its key is the root key)."""
        return next(s for s in self.subnets if s.kind is SubnetKind.NNS)

    @property
    def applications(self) -> list[Subnet]:
        """The application subnets, in creation order."""
        return [s for s in self.subnets if s.kind is SubnetKind.APPLICATION]

    def subnet(self, subnet_id: Principal) -> Subnet:
        """Return the subnet with id ``subnet_id``; raise ``ICError`` (404) if unknown."""
        for subnet in self.subnets:
            if subnet.subnet_id == subnet_id:
                return subnet
        raise ICError(f"subnet {subnet_id} does not exist", http_status=404)

    def subnet_of(self, canister_id: Principal) -> Subnet:
        """Return the subnet whose ranges hold ``canister_id``; raise ``ICError`` if none.

        Spec: interface spec §1.4 (the effective canister id must lie in some subnet's
        canister ranges); protocol digest §4.4.
        """
        known = self._routes.get(canister_id.raw)
        if known is not None:
            return known
        subnet_id = self.topology.routing_table.route(canister_id)
        if subnet_id is None:
            raise ICError(
                f"canister id {canister_id} is not in any subnet's canister ranges",
                http_status=400,
                reject_code=int(RejectCode.DESTINATION_INVALID),
                error_code="IC0301",
            )
        subnet = self.subnet(subnet_id)
        if len(self._routes) >= 100_000:
            self._routes.clear()
        self._routes[canister_id.raw] = subnet  # cleared when the registry changes
        return subnet

    # -- event loop -----------------------------------------------------------------------

    def _push(
        self, at: Time, kind: int, subnet: int, node: int, art: ReplicaArtifact | None
    ) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, subnet, node, art))

    def _schedule_tick(self, subnet: int, node: int, at: Time) -> None:
        g = TICK_GRANULARITY
        at = Time(-(-at // g) * g)
        if self._pending_tick.get((subnet, node)) == at:
            return
        self._pending_tick[(subnet, node)] = at
        self._push(at, 0, subnet, node, None)

    def disconnect(self, subnet: Subnet, node: int) -> None:
        """Cut a node off: it neither ticks nor receives until ``reconnect`` (a crash).

        The subnet keeps going while at most f of its nodes are cut off.
        """
        subnet.down.add(node)

    def reconnect(self, subnet: Subnet, node: int) -> None:
        """Bring a cut-off node back; its peers re-send what it missed."""
        subnet.down.discard(node)
        self._push(Time(self.now + TIMER_INTERVAL), 1, subnet.index, node, None)

    def run_until(self, until: int) -> None:
        """Process every event up to virtual time ``until``; the clock ends there."""
        while self._queue and self._queue[0][0] <= until:
            at, _, kind, s, node, artifact = heapq.heappop(self._queue)
            self.now = Time(max(self.now, at))
            subnet = self.subnets[s]
            if node in subnet.down:
                continue
            if kind == 2:
                assert artifact is not None
                subnet.replicas[node].on_artifact(artifact)
                self._schedule_tick(s, node, self.now)
            elif kind == 1:
                self._push(Time(self.now + TIMER_INTERVAL), 1, s, node, None)
                self._tick(subnet, node)
            else:
                if self._pending_tick.get((s, node)) == at:
                    del self._pending_tick[(s, node)]
                self._tick(subnet, node)
        self.now = Time(max(self.now, until))

    def _tick(self, subnet: Subnet, node: int) -> None:
        produced = subnet.replicas[node].tick(self.now)
        for artifact in produced:
            self._broadcast(subnet, node, artifact)

    def _broadcast(self, subnet: Subnet, node: int, artifact: ReplicaArtifact) -> None:
        for dst in range(subnet.n):
            if dst == node:
                continue
            for arrival in subnet.network.transmit(node, dst, self.now):
                self._push(arrival, 2, subnet.index, dst, artifact)

    def follow_clock(self) -> None:
        """Run up to the injected clock's time, if a clock is set and ahead of the IC."""
        if self.clock is not None:
            target = self.clock()
            if target > self.now:
                self.run_until(target)

    def run_while(self, condition: Callable[[], bool], max_time: int) -> bool:
        """Run in steps of 50 ms until ``condition()`` is False or ``max_time`` passes.

        Returns whether the condition became False.
        """
        while condition():
            if self.now >= max_time:
                return False
            self.run_until(min(self.now + TIMER_INTERVAL, max_time))
        return True

    # -- time -----------------------------------------------------------------------------

    def time(self) -> int:
        """Return the IC's current virtual time (ns since the epoch)."""
        return self.now

    def certified_time(self, subnet: Subnet | None = None) -> int:
        """Return the time of the latest certified state of ``subnet`` (default NNS)."""
        replica = (subnet or self.nns).serving_replica()
        return replica.certified()[0].time

    def tick(self, heights: int = 1) -> None:
        """Run until every subnet has certified ``heights`` more heights.

        Raises ``ICError`` if a subnet makes no progress within a minute of virtual time.
        """
        targets = [s.certified_height() + heights for s in self.subnets]
        ok = self.run_while(
            lambda: any(
                s.certified_height() < t for s, t in zip(self.subnets, targets, strict=True)
            ),
            self.now + 60 * NANOS_PER_SECOND,
        )
        if not ok:
            raise ICError("a subnet made no progress for a minute of virtual time", http_status=503)

    def advance_time(self, nanos: int) -> None:
        """Let ``nanos`` of virtual time pass (consensus keeps running meanwhile)."""
        if nanos < 0:
            raise ValueError("time only moves forward")
        self.run_until(self.now + nanos)

    def set_time(self, time: int) -> None:
        """Jump the clock to ``time``, then run until every subnet certified a state that late.

        Raises ``ValueError`` if ``time`` lies before the current time: IC time is monotone.
        """
        if time < self.now:
            raise ValueError(f"time {time} is before the current time {self.now}: time is monotone")
        self._queue = [(max(e[0], time), *e[1:]) for e in self._queue]
        heapq.heapify(self._queue)
        self._pending_tick = {k: max(v, time) for k, v in self._pending_tick.items()}
        self.now = Time(time)
        self.run_until(time)
        self.run_while(
            lambda: any(self.certified_time(s) < time for s in self.subnets),
            time + 60 * NANOS_PER_SECOND,
        )

    # -- HTTP-shaped requests -------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Return the ``/api/v2/status`` map (root key, versions).

        Spec: interface spec §1.1 (status endpoint; a local IC exposes its root key).
        """
        return {
            "ic_api_version": "0.18.0",
            "impl_version": "icp-0.1.0",
            "replica_health_status": "healthy",
            "root_key": self.root_key,
        }

    def _parse_call(self, body: bytes, subnet: Subnet) -> SignedIngress:
        try:
            return self.envelopes.parse_call(body, subnet.limits)
        except IngressError as exc:
            raise ICError(
                str(exc), http_status=exc.http_status, reject_code=exc.reject_code,
                error_code=exc.error_code,
            ) from None  # fmt: skip

    def submit_call(self, body: bytes, effective_canister_id: Principal) -> bytes:
        """Check a ``call`` envelope and put it into the subnet's ingress pools.

        Returns the request id.  Raises ``ICError`` (4xx) for a malformed, expired,
        badly signed or misaddressed request.
        Spec: interface spec §1.2-§1.4; protocol digest §4.2.
        """
        self.follow_clock()
        subnet = self.subnet_of(effective_canister_id)
        message = self._parse_call(body, subnet)
        expected = effective_canister_of(message)
        if expected is not None and expected != effective_canister_id:
            raise ICError(
                f"the effective canister id {effective_canister_id} in the URL does not "
                f"match the request's effective canister id {expected}",
                http_status=400,
            )
        try:
            check_ingress(message, self.now, self.authenticate, limits=subnet.limits)
        except IngressError as exc:
            raise ICError(
                str(exc), http_status=exc.http_status, error_code=exc.error_code
            ) from None
        self._ingress_filter(subnet, message)
        entry = subnet.live()[0]  # the node the client reached; it gossips the message
        if entry.submit(message):
            self._broadcast(subnet, entry.node, message)
        self._schedule_tick(subnet.index, entry.node, self.now)
        return message.message_id

    def _ingress_filter(self, subnet: Subnet, message: SignedIngress) -> None:
        """Refuse calls to missing canisters or ones whose inspect_message rejects them.

        ``canister_inspect_message`` runs on a latest certified state, as queries do.
        Spec: interface spec §"Message inspection" (the replica runs
        ``canister_inspect_message`` before accepting an ingress message); §1.7.
        """
        if message.canister_id.is_management_canister:
            return
        replica = subnet.serving_replica()
        if replica.state.certified_height is None:
            return
        state, _ = replica.certified()
        canister = state.canister(message.canister_id)
        runtime = None if canister is None else canister.runtime
        if runtime is not None and runtime.has_system_method("canister_inspect_message"):
            # it runs on certified state like a query (see ``query_replica``)
            replica = self.query_replica(replica, message.canister_id, message.method_name)
            state, _ = replica.certified()
            canister = state.canister(message.canister_id)
        error = (
            CanisterError.of(
                ErrorCode.CANISTER_NOT_FOUND, f"Canister {message.canister_id} not found"
            )
            if canister is None
            else inspect_message(
                canister,
                message.sender.raw,
                message.method_name,
                message.arg,
                state.time,
                self.execution_environment(subnet),
            )
        )
        if error is not None:
            code = error.error_code
            raise ICError(
                error.message,
                http_status=400,
                reject_code=int(error.reject_code),
                error_code=code.text() if code is not None else "",
            )

    def request_status(
        self, request_id: bytes, effective_canister_id: Principal
    ) -> IngressStatus | None:
        """Return the certified status of a request on the subnet of the canister.

        Spec: interface spec §1.8 (request status lifecycle).
        """
        replica = self.subnet_of(effective_canister_id).serving_replica()
        if replica.state.certified_height is None:
            return None
        state, _ = replica.certified()
        return state.ingress_history.get(request_id)

    def wait_for(
        self, request_id: bytes, effective_canister_id: Principal, *, timeout: int | None = None
    ) -> CallResult:
        """Run until the request's certified status is replied or rejected.

        Raises ``ICError`` (408-like) if that does not happen before ``timeout`` ns of
        virtual time (default: the maximum ingress TTL).
        """
        subnet = self.subnet_of(effective_canister_id)
        limit = self.now + (timeout if timeout is not None else subnet.limits.max_ttl)
        terminal = {RequestStatus.REPLIED, RequestStatus.REJECTED, RequestStatus.DONE}

        def pending() -> bool:
            status = self.request_status(request_id, effective_canister_id)
            return status is None or status.status not in terminal

        if not self.run_while(pending, limit):
            raise ICError(
                f"request 0x{request_id.hex()} has no certified answer yet",
                http_status=408, error_code="IC0202",
            )  # fmt: skip
        status = self.request_status(request_id, effective_canister_id)
        assert status is not None
        certificate = self.certificate(subnet, [["request_status", request_id]])
        return CallResult(
            request_id,
            status.status.value,
            status.reply,
            status.reject_code,
            status.reject_message,
            status.error_code,
            certificate,
        )

    def call_and_wait(self, body: bytes, effective_canister_id: Principal) -> CallResult:
        """Submit a ``call`` envelope and return its certified outcome."""
        rid = self.submit_call(body, effective_canister_id)
        return self.wait_for(rid, effective_canister_id)

    # -- certificates ---------------------------------------------------------------------

    def delegation(self, subnet: Subnet) -> Delegation | None:
        """Return the NNS delegation for ``subnet`` (None for the NNS itself).

        Spec: protocol digest §3.4; interface spec §2.2.
        """
        if subnet.kind is SubnetKind.NNS:
            return None
        cached = self._delegations.get(subnet.subnet_id.raw)
        if cached is not None and self.now - cached[0] < DELEGATION_REFRESH:
            return cached[1]
        replica = self.nns.serving_replica()
        if replica.state.certified_height is None:
            self.run_while(lambda: self.nns.serving_replica().state.certified_height is None,
                           self.now + 60 * NANOS_PER_SECOND)  # fmt: skip
            replica = self.nns.serving_replica()
        nns_state, nns_cert = replica.certified()
        delegation = make_delegation(nns_state, nns_cert, subnet.subnet_id)
        self._delegations[subnet.subnet_id.raw] = (self.now, delegation)
        return delegation

    def certificate(self, subnet: Subnet, paths: Sequence[Sequence[bytes | str]]) -> bytes:
        """Return a certificate of ``paths`` in ``subnet``'s latest certified state.

        Spec: interface spec §2.2 (certificate with the NNS delegation for non-NNS
        subnets).
        """
        replica = subnet.serving_replica()
        if replica.state.certified_height is None:
            self.run_while(
                lambda: subnet.serving_replica().state.certified_height is None,
                self.now + 60 * NANOS_PER_SECOND,
            )
            replica = subnet.serving_replica()
        return replica.state.certificate(paths, self.delegation(subnet))

    def _authenticate(
        self, body: bytes, request_type: str, target: Principal | None, limits: IngressLimits
    ) -> tuple[dict[Any, Any], bytes, Principal]:
        try:
            envelope, rid = self.envelopes.parse_request(body, limits)
        except IngressError as exc:
            raise ICError(str(exc), http_status=exc.http_status) from None
        except EncodingError as exc:
            raise ICError(f"malformed {request_type} request: {exc}") from None
        content = envelope["content"]
        assert isinstance(content, Mapping)
        if content.get("request_type") != request_type:
            raise ICError(
                f"expected request_type {request_type!r}, got {content.get('request_type')!r}"
            )
        try:
            sender = Principal(bytes(content["sender"]))
            expiry = int(content["ingress_expiry"])
        except (EncodingError, KeyError, TypeError, ValueError) as exc:
            raise ICError(f"malformed {request_type} request: {exc}") from None
        try:
            raw_delegations = envelope.get("sender_delegation") or ()
            if not isinstance(raw_delegations, list | tuple):
                raise ICError("sender_delegation must be an array")
            delegations = tuple(SignedDelegation.from_cbor_value(d) for d in raw_delegations)
            if self.authenticate is None:
                return dict(content), rid, sender  # PocketIC's trusted test mode
            self.authenticate.authenticate_request(
                sender,
                rid,
                self.now,
                sender_pubkey=_opt_bytes(envelope.get("sender_pubkey")),
                sender_sig=_opt_bytes(envelope.get("sender_sig")),
                sender_delegation=delegations,
                target=target,
            )
        except AuthenticationError as exc:
            raise ICError(f"request signature check failed: {exc}", http_status=400) from None
        if not sender.is_anonymous and not is_expiry_valid(expiry, Time(self.now), limits):
            raise ICError(f"ingress_expiry {expiry} is outside the accepted window")
        return dict(content), rid, sender

    def read_state(
        self,
        body: bytes,
        effective_canister_id: Principal | None = None,
        *,
        subnet_id: Principal | None = None,
    ) -> bytes:
        """Answer a ``read_state`` envelope: CBOR ``{certificate}``.

        Exactly one of ``effective_canister_id`` (canister endpoint) and ``subnet_id``
        (subnet endpoint) is given.  Raises ``ICError`` with 400/403/404 as the replica.
        Spec: interface spec §1.3, §1.8, §2.3 ("Request: Read state").
        """
        if (effective_canister_id is None) == (subnet_id is None):
            raise ValueError("give either an effective canister id or a subnet id")
        self.follow_clock()
        subnet = (
            self.subnet_of(effective_canister_id)
            if effective_canister_id is not None
            else self.subnet(subnet_id)  # type: ignore[arg-type]
        )
        content, _, sender = self._authenticate(
            body, "read_state", effective_canister_id, subnet.limits
        )
        raw_paths = content.get("paths")
        if not isinstance(raw_paths, list | tuple):
            raise ICError("read_state needs a 'paths' array")
        paths = [[bytes(label) for label in path] for path in raw_paths]
        replica = subnet.serving_replica()
        state, certification = replica.certified()
        try:
            check_read_state_paths(
                paths, sender, effective_canister_id, state, effective_subnet_id=subnet_id
            )
        except ReadStateError as exc:
            raise ICError(exc.message, http_status=exc.http_status) from None
        del certification
        cert = replica.state.certificate(paths, self.delegation(subnet))
        return cbor_encode({"certificate": cert})

    def query(self, body: bytes, effective_canister_id: Principal) -> bytes:
        """Answer a ``query`` envelope on one replica: CBOR response with a node signature.

        The query runs on a replica's latest certified state (see ``run_query``); its
        changes are discarded; the answering node signs the response.
        Spec: interface spec §1.6 (query response, node signatures).
        """
        self.follow_clock()
        subnet = self.subnet_of(effective_canister_id)
        content, rid, sender = self._authenticate(
            body, "query", effective_canister_id, subnet.limits
        )
        try:
            canister_id = Principal(bytes(content["canister_id"]))
            method = str(content["method_name"])
            arg = bytes(content["arg"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ICError(f"malformed query: {exc}") from None
        if not canister_id.is_management_canister and canister_id != effective_canister_id:
            raise ICError(
                f"the effective canister id {effective_canister_id} differs from the "
                f"queried canister {canister_id}",
                http_status=400,
            )
        replica, response = self._execute_query(
            subnet.serving_replica(), sender, canister_id, method, arg
        )
        signature = replica.sign_response(response, rid, self.now)
        return cbor_encode(dict(response_fields(response), signatures=[signature]))

    def run_query(
        self, replica: Replica, sender: Principal, canister_id: Principal, method: str, arg: bytes
    ) -> Reply | Reject:
        """Execute a query on a latest certified state; discard its changes.

        ``replica`` is preferred; if the canister's memory there already holds
        executions above the certified height (see ``query_replica``), another
        replica of the subnet answers, or the IC runs until one can.  Repeated
        queries are answered from the replica's ``QueryCache`` while valid.
        Spec: interface spec §"Query call" (non-replicated; the state is not changed);
        dfinity/ic query handler (queries run on the latest certified state).
        """
        return self._execute_query(replica, sender, canister_id, method, arg)[1]

    def query_replica(self, prefer: Replica, canister_id: Principal, method: str) -> Replica:
        """Return a replica of ``prefer``'s subnet that can run a query on certified state.

        Canister memory is changed in place by execution (the state of height h and
        h+1 share the canister's Wasm memory), so between executing a height and
        certifying it, a replica's certified state is not what its canister memory
        holds.  A replica qualifies when it executed nothing above its certified
        height, or (plain queries) when the canister is untouched above it (the same
        ``CanisterState`` in its latest and its certified state: every execution
        makes a new one).  ``prefer`` goes first, then the others by certified
        height; if none qualifies, the IC runs (at most a minute of virtual time)
        until one does.  Raises ``ICError`` (503) otherwise.
        Spec: dfinity/ic query handler (the latest certified state snapshot).
        """
        subnet = self.subnet(prefer.subnet_id)
        if prefer.node not in subnet.down and _serves_certified(prefer, canister_id, method):
            return prefer
        others = sorted(
            (r for r in subnet.live() if r is not prefer),
            key=lambda r: (-(r.state.certified_height or -1), r.node),
        )
        order = [prefer, *others]

        def pick() -> Replica | None:
            for replica in order:
                if replica.node not in subnet.down and _serves_certified(
                    replica, canister_id, method
                ):
                    return replica
            return None

        chosen = pick()
        limit = self.now + 60 * NANOS_PER_SECOND
        while chosen is None:
            if not self._queue or self._queue[0][0] > limit:
                raise ICError(
                    "no replica has a certified state to run the query on",
                    http_status=503,
                    error_code="IC0208",
                )
            self.run_until(self._queue[0][0])
            chosen = pick()
        return chosen

    def _execute_query(
        self, prefer: Replica, sender: Principal, canister_id: Principal, method: str, arg: bytes
    ) -> tuple[Replica, Reply | Reject]:
        """Run a query (or answer it from the query cache); return the replica and result."""
        replica = self.query_replica(prefer, canister_id, method)
        subnet = self.subnet(replica.subnet_id)
        state, _ = replica.certified()
        canister = state.canister(canister_id)
        if canister is None:
            return replica, reject_of(
                CanisterError.of(ErrorCode.CANISTER_NOT_FOUND, f"Canister {canister_id} not found")
            )
        cache = (
            replica.query_cache
            if self.query_caching and not _is_composite(canister, method)
            else None
        )
        key = (sender.raw, canister_id.raw, method, arg)
        if cache is not None:
            hit = cache.get(key, canister, state.time, state.height)
            if hit is not None:
                return replica, hit
        data_certificate = self._data_certificate(replica, canister_id)

        def resolve(cid: bytes) -> CanisterState | None:
            return state.canister(cid)

        response = execute_query(
            canister,
            sender.raw,
            method,
            arg,
            state.time,
            self.execution_environment(subnet),
            data_certificate=data_certificate,
            resolve=resolve,
        )
        assert isinstance(response, Reply | Reject)
        if cache is not None:
            cache.push(
                key,
                response,
                canister,
                state.time,
                state.height,
                includes_data_certificate=data_certificate is not None,
            )
        return replica, response

    def _data_certificate(self, replica: Replica, canister_id: Principal) -> bytes | None:
        """Return the ``ic0.data_certificate`` of a canister (cached per certified height)."""
        height = replica.state.certified_height
        key = (replica.subnet_id.raw, replica.node, canister_id.raw)
        cached = self._data_certificates.get(key)
        if cached is not None and cached[0] == height:
            return cached[1]
        try:
            subnet = self.subnet(replica.subnet_id)
            certificate = replica.state.data_certificate(canister_id, self.delegation(subnet))
        except ValueError:
            return None
        self._data_certificates[key] = (height, certificate)
        return certificate

    # -- XNet -----------------------------------------------------------------------------

    def xnet_slice(
        self, source: Principal, destination: Principal, from_index: int, max_messages: int = 1000
    ) -> bytes | None:
        """Return a certified slice of ``source``'s stream to ``destination`` (None if none).

        Served by the source subnet's replica with the highest certified height.
        Spec: protocol digest §4.3 (the block maker pulls certified slices from nodes of
        the source subnet).
        """
        try:
            replica = self.subnet(source).serving_replica()
        except ICError:
            return None
        if replica.state.certified_height is None:
            return None
        state, _ = replica.certified()
        stream = state.stream_to(destination)
        if not stream.header.begin <= from_index <= stream.header.end:
            return None
        return replica.state.stream_slice(destination, from_index, max_messages)

    # -- determinism and persistence ------------------------------------------------------

    def state_hashes(self) -> dict[str, bytes]:
        """Return each subnet's certified root hash at its lowest common certified height."""
        out: dict[str, bytes] = {}
        for subnet in self.subnets:
            height = subnet.certified_height()
            hashes = {r.state.root_hash(height) for r in subnet.replicas} - {None}
            only = next(iter(hashes)) if len(hashes) == 1 else None
            out[subnet.subnet_id.to_text()] = only or b""
        return out

    def close(self) -> None:
        """Drop every replica (a restart from ``state_dir`` continues where this stopped)."""
        for subnet in self.subnets:
            subnet.replicas.clear()
        self._queue.clear()


def free_ranges(
    taken: Sequence[RoutingTableEntry], kind: SubnetKind
) -> tuple[CanisterIdRange, ...]:
    """Return the canister ranges a new subnet gets: the first free block of 2**20 ids.

    The NNS gets canister indices ``0 .. 2**20-1``; other subnets the first block of
    ``2**20`` ids from ``APP_RANGE_START`` on that no range in ``taken`` touches.
    Spec: protocol digest §4.4 (2**20 ids per subnet).
    """
    if kind is SubnetKind.NNS:
        return canister_ranges_for(0, kind)
    index = 0
    while True:
        (candidate,) = canister_ranges_for(index, kind)
        if not any(e.start <= candidate.end and candidate.start <= e.end for e in taken):
            return (candidate,)
        index += 1


def routing_entries(
    subnet_id: Principal, ranges: Sequence[CanisterIdRange]
) -> list[RoutingTableEntry]:
    """Return the routing-table entries that assign ``ranges`` to ``subnet_id``."""
    return [RoutingTableEntry(r.start, r.end, subnet_id) for r in ranges]


def subnet_mutations(setup: SubnetSetup, kind: SubnetKind, time: int) -> list[RegistryMutation]:
    """Return the registry records of a subnet: record, threshold key, node keys, CUP.

    The NNS is a system subnet (it is named by ``nns_subnet_id``); members are listed
    in node-index order.
    Spec: protocol digest §6.1 (SubnetRecord, crypto records, CatchUpPackageContents).
    """
    subnet_id = Principal(setup.membership.subnet_id)
    nodes = [(_node_id(keys.basic), _node_der(keys.basic)) for keys in setup.membership.nodes]
    config = setup.config
    record = SubnetRecord(
        (node_id for node_id, _ in nodes),
        RegistrySubnetType.APPLICATION
        if kind is SubnetKind.APPLICATION
        else RegistrySubnetType.SYSTEM,
        config.unit_delay // MILLIS,
        config.initial_notary_delay // MILLIS,
        config.dkg_interval_length,
    )
    threshold_key = public_key_to_der(setup.subnet_public_key())
    return [
        upsert(subnet_record_key(subnet_id), record),
        upsert(threshold_key_key(subnet_id), PublicKeyRecord(threshold_key)),
        *(upsert(node_signing_key_key(n), PublicKeyRecord(der)) for n, der in nodes),
        upsert(cup_contents_key(subnet_id), CatchUpPackageContentsRecord(0, time)),
    ]


def apply_stable_memory_writes(
    state: ReplicatedState, writes: Sequence[tuple[bytes, bytes]]
) -> ReplicatedState:
    """Return ``state`` with each canister's stable memory replaced by the written bytes.

    Deterministic, so every replica applying it at the same height reaches the same
    state (a canister that no longer exists or has no module is skipped).  The stable
    memory becomes ``ceil(len / 64 KiB)`` pages: the data, then zeros.
    Spec: PocketIC ``set_stable_memory``; interface spec §5 (64 KiB Wasm pages).
    """
    changed: list[CanisterState] = []
    for canister_id, data in writes:
        canister = state.canister(canister_id)
        if canister is None or canister.runtime is None:
            continue
        stable = canister.runtime.stable
        stable.clear()
        pages = -(-len(data) // WASM_PAGE_SIZE)
        stable.grow(pages, pages * WASM_PAGE_SIZE)
        stable.write(0, data)
        changed.append(attrs.evolve(canister))  # a new state object: memory changed here
    return state.with_canisters(changed) if changed else state


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def effective_canister_of(message: SignedIngress) -> Principal | None:
    """Return the effective canister id a call must be sent to (None: any).

    Calls to a canister go to that canister; calls to ``aaaaa-aa`` go to the canister
    the argument names (``canister_id``, or ``target_canister`` for
    ``install_chunked_code``), except ``provisional_create_canister_with_cycles``, which
    any effective id in the subnet's ranges may carry.  An argument that names no
    canister cannot be routed: it is refused with 400.
    Spec: interface spec §1.4 (effective canister id rules).
    """
    if not message.canister_id.is_management_canister:
        return message.canister_id
    if message.method_name == "provisional_create_canister_with_cycles":
        return None
    from icp.candid import CandidError, PrincipalType, Record, decode
    from icp.execution.management import CanisterIdRecord

    field = "target_canister" if message.method_name == "install_chunked_code" else "canister_id"
    record = CanisterIdRecord if field == "canister_id" else Record({field: PrincipalType})
    try:
        value = decode(message.arg, [record])[0][field]
    except (CandidError, KeyError, IndexError, TypeError, ValueError):
        raise ICError(
            f"the argument of {message.method_name} names no canister (no effective canister id)",
            http_status=400,
        ) from None
    return Principal(value.raw) if isinstance(value, Principal) else Principal(bytes(value))


def routing_config(ic: InternetComputer, subnet: Subnet) -> Any:
    """Return the messaging layer's ``SubnetExecutionConfig`` for ``subnet``.

    Spec: protocol digest §4.5 (limits per subnet type), §4.2, §4.3.
    """
    from icp.messaging.state_machine import SubnetExecutionConfig, SubnetType

    kind = SubnetType.APPLICATION if subnet.kind is SubnetKind.APPLICATION else SubnetType.SYSTEM
    return SubnetExecutionConfig.for_subnet(
        subnet.subnet_id,
        ic.execution_environment(subnet),
        kind,
        topology_at=ic.topology_at,
        envelopes=ic.envelopes,
    )


def message_routing(ic: InternetComputer, subnet: Subnet) -> StateMachine:
    """Return the subnet's state machine: ``icp.messaging``'s ``execute_batch``.

    Spec: protocol digest §4.1.
    """
    from icp.messaging.state_machine import execute_batch

    config = routing_config(ic, subnet)

    def execute(state: ReplicatedState, batch: Any) -> ReplicatedState:
        return execute_batch(state, batch, config)

    return execute


def payload_builders(ic: InternetComputer, subnet: Subnet) -> Callable[[Replica], Any]:
    """Return the factory of each replica's ``IcPayloadBuilder`` (pool, state, XNet client).

    The XNet client asks the source subnet's best-certified replica for a certified
    slice of its stream to ``subnet``.
    Spec: protocol digest §4.2, §4.3.
    """
    from icp.messaging.payload import IcPayloadBuilder

    config = routing_config(ic, subnet)

    def make(replica: Replica) -> Any:
        def xnet(source: Principal, from_index: int) -> bytes | None:
            return ic.xnet_slice(source, subnet.subnet_id, from_index, config.max_slice_messages)

        def latest() -> ReplicatedState:
            return replica.state.latest_state

        return IcPayloadBuilder(
            config,
            replica.ingress_pool,
            latest,
            xnet,
            authenticate=ic.authenticate,
            envelopes=ic.envelopes,
        )

    return make


def _node_der(raw: bytes) -> bytes:
    from icp.replica import node_public_key_der

    return node_public_key_der(raw)


def _node_id(raw: bytes) -> Principal:
    from icp.replica import node_id_of

    return node_id_of(raw)


def _is_composite(canister: CanisterState, method: str) -> bool:
    return canister.runtime is not None and canister.runtime.method_kind(method) == (
        "composite_query"
    )


def _serves_certified(replica: Replica, canister_id: Principal, method: str) -> bool:
    """Return whether ``replica``'s canister memory is that of its certified state."""
    certified_height = replica.state.certified_height
    if certified_height is None:
        return False
    if replica.state.latest_height == certified_height:
        return True
    certified, _ = replica.certified()
    canister = certified.canister(canister_id)
    if canister is not None and _is_composite(canister, method):
        return False  # its call graph may reach any canister: the whole state must match
    return replica.state.latest_state.canister(canister_id) is canister


def _opt_bytes(value: object) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, bytes):
        raise ICError("sender_pubkey and sender_sig must be blobs")
    return value


__all__ = [
    "CallResult",
    "ICError",
    "InternetComputer",
    "Subnet",
    "SubnetConfig",
    "SubnetKind",
    "canister_ranges_for",
    "subnet_id_of",
]

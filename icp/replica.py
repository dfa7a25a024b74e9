"""Replica: one node = consensus + message routing + execution + state + certification.

Theory of operation.  A ``Replica`` wires the sans-I/O components of one node and
exposes the same artifact-in / artifact-out surface as its consensus part, so a
simulator or a transport can drive it:

* ``on_artifact(a)`` takes a peer's artifact: consensus artifacts go to the consensus
  pool, ``SignedIngress`` to the ingress pool, ``CertificationShare`` /
  ``Certification`` to the certifier.
* ``tick(now)`` runs consensus (which delivers the batches of newly finalized heights
  to ``_on_batch``), then the certifier, and returns what to broadcast.

Per finalized height ``h`` (protocol §4.1): the batch is appended to the node's
write-ahead log (when it has a state directory), handed to the state machine
(message routing + execution: ``execute(state, batch) -> state``), and the new state
is committed to the ``StateManager``, which builds its certified tree.  The certifier
signs ``(h, root_hash)`` with this node's share of the subnet's high-threshold key and
broadcasts the share; any ``threshold`` shares on the same content combine into the
``Certification`` (one group signature, verified under the subnet key), which the
replica also broadcasts so that slower peers verify one signature instead of
aggregating.  At DKG summary heights the state manager writes a checkpoint and the
state's manifest hash becomes the ``state_hash`` the catch-up package signs.

Restart (protocol §4.7, §3.2): ``Replica.restore`` loads the newest checkpoint whose
manifest hash matches a persisted CUP, starts consensus from that CUP and feeds it the
persisted finalized chain above it (blocks with their notarizations, finalizations,
beacons and random tapes), so consensus re-delivers exactly the batches it delivered
before: the node reaches the state it had (same hashes) and no replied update is
lost.  Like the IC, which persists its consensus pool and replays finalized blocks
after a restart; the artifacts are kept as canonical CBOR (``icp.state.codec``, an
allow-list of classes; the IC uses protobuf).

Spec: protocol digest §3.3 (certification: 2f+1 high-threshold shares per executed
height), §4.1 (pipeline per finalized height), §4.7 (checkpoints at summary heights,
restart); dfinity/ic ``rs/replica`` (setup of consensus, message routing, execution and
state manager per node), ``rs/consensus/certification`` (certifier, aggregation).
"""

from __future__ import annotations

import enum
import functools
import importlib
import os
import pkgutil
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import attrs

from icp.consensus.artifacts import (
    BlockProposal,
    CatchUpPackage,
    ConsensusArtifact,
    DkgTag,
    Finalization,
    Notarization,
)
from icp.consensus.config import TIME_ZERO
from icp.consensus.context import PayloadBuilder
from icp.consensus.crypto import ConsensusCrypto
from icp.consensus.dkg import DkgBackend, to_threshold_public_key
from icp.consensus.genesis import SubnetSetup, make_replica
from icp.consensus.replica import Batch, ConsensusReplica
from icp.crypto import bls
from icp.crypto.hashing import hash_of_map, hash_value, sha256
from icp.execution.system_api import Reject, Reply
from icp.leb128 import encode_unsigned
from icp.messaging.ingress import (
    EnvelopeCache,
    IngressError,
    IngressPool,
    SenderAuthenticator,
    SignedIngress,
    authenticate_ingress,
    check_ingress,
    parse_call_envelope,
)
from icp.messaging.query_cache import QueryCache
from icp.principal import Principal
from icp.state import checkpoint
from icp.state.certification import (
    Certification,
    CertificationContent,
    CertificationError,
    CertificationShare,
    aggregate,
    verify_certification,
)
from icp.state.checkpoint import ModuleEngine
from icp.state.codec import Codec, CodecError
from icp.state.manager import StateManager
from icp.state.replicated_state import ED25519_DER_PREFIX, ReplicatedState
from icp.types import Height, NodeIndex, RegistryVersion, Time

ReplicaArtifact = ConsensusArtifact | CertificationShare | Certification | SignedIngress
"""Everything a replica gossips to the other replicas of its subnet."""

StateMachine = Callable[[ReplicatedState, Batch], ReplicatedState]
"""The deterministic state transition of one finalized height (message routing)."""

RESPONSE_DOMAIN: Final = b"\x0bic-response"
"""Domain separator of node signatures on query responses (interface spec §1.6)."""

CUPS_DIR: Final = "cups"
CHAIN_DIR: Final = "chain"
CHECKPOINTS_DIR: Final = "checkpoints"
KEEP_CUPS: Final = 3
KEEP_SERVED_CHECKPOINTS: Final = 2
MAX_PENDING_CERTIFICATIONS: Final = 16
KEEP_DELIVERED_HEIGHTS: Final = 256
"""Delivered batches and finalized-chain records a replica keeps below its delivered
height (at least; everything at or above its CUP stays).  Message routing consumes a
batch when it is delivered and the IC keeps no finalized chain below the CUP
(protocol §3.2); the window only serves tests and the dashboard."""


class ReplicaError(Exception):
    """A replica cannot start or continue (e.g. no usable checkpoint to restart from)."""


def advance_time_only(state: ReplicatedState, batch: Batch) -> ReplicatedState:
    """Return the state at the batch's height and time, executing nothing.

    The state machine of a replica without message routing: batches of empty blocks
    are still delivered and advance the state's height and time.
    Spec: protocol digest §4.1 ("Batches of empty blocks are still delivered (time
    advances)").
    """
    return state.at_height(batch.height, Time(max(batch.time, state.time)))


def node_public_key_der(raw_ed25519: bytes) -> bytes:
    """Return a node's Ed25519 signing key as RFC 8410 DER (44 bytes).

    Spec: interface spec §1.6 (``/subnet/<id>/node/<node_id>/public_key``).
    """
    return ED25519_DER_PREFIX + raw_ed25519


def node_id_of(raw_ed25519: bytes) -> Principal:
    """Return the node id: the self-authenticating principal of its DER signing key.

    Spec: dfinity/ic ``NodeId`` (a self-authenticating principal of the node signing
    key) [mem].
    """
    return Principal.self_authenticating(node_public_key_der(raw_ed25519))


def ingress_ids(batch: Batch, envelopes: EnvelopeCache | None = None) -> list[bytes]:
    """Return the request ids of the ingress messages in ``batch`` (undecodable ones skipped).

    ``envelopes`` memoises the parsing (each envelope is parsed once per process).
    """
    out = []
    for envelope in batch.payload.ingress:
        try:
            message = (
                envelopes.parse_call(envelope)
                if envelopes is not None
                else parse_call_envelope(envelope)
            )
        except ValueError:
            continue
        out.append(message.message_id)
    return out


def response_fields(response: Reply | Reject) -> dict[str, Any]:
    """Return a query response's fields (the map M of the spec minus request id and time).

    Spec: interface spec §1.6 (replied: ``reply: {arg}``; rejected: ``reject_code``,
    ``reject_message``, ``error_code``).
    """
    if isinstance(response, Reply):
        return {"status": "replied", "reply": {"arg": response.data}}
    return {
        "status": "rejected",
        "reject_code": int(response.code),
        "reject_message": response.message,
        "error_code": response.error_code or "",
    }


def _pairs(response: Reply | Reject) -> tuple[bytes, ...]:
    return tuple(
        sha256(key.encode()) + hash_value(value) for key, value in response_fields(response).items()
    )


_memo_pairs = functools.lru_cache(maxsize=4096)(_pairs)
_MEMO_MAX_BYTES: Final = 4096
"""Largest response whose field hashes are memoised (bounds the memo's memory)."""


def _response_pairs(response: Reply | Reject) -> tuple[bytes, ...]:
    size = len(response.data) if isinstance(response, Reply) else len(response.message)
    return _memo_pairs(response) if size <= _MEMO_MAX_BYTES else _pairs(response)


_REQUEST_ID_KEY: Final = sha256(b"request_id")
_TIMESTAMP_KEY: Final = sha256(b"timestamp")


def response_hash(response: Reply | Reject, request_id: bytes, timestamp: int) -> bytes:
    """Return ``hash_of_map(M)`` of a query response with its request id and timestamp.

    The same value as ``hash_of_map(dict(response_fields(response), request_id=...,
    timestamp=...))``; the pairs of a response's own fields are computed once per
    distinct response (a cached query result is signed again and again).
    Spec: interface spec §1.6, §"Representation-independent hashing".
    """
    pairs = [
        *_response_pairs(response),
        _REQUEST_ID_KEY + sha256(request_id),
        _TIMESTAMP_KEY + sha256(encode_unsigned(timestamp)),
    ]
    pairs.sort()
    return sha256(b"".join(pairs))


# ---------------------------------------------------------------------------- certifier


class Certifier:
    """Collect certification shares per height and combine them into certifications.

    The first ``threshold`` shares on one content are combined optimistically and the
    group signature is verified once (through the crypto façade, so an in-process
    network verifies each distinct signature once); only if that fails are shares
    checked one by one and bad ones skipped.
    Spec: protocol digest §3.3; dfinity/ic ``certification/src/certifier.rs``.
    """

    def __init__(self, crypto: ConsensusCrypto) -> None:
        self.crypto = crypto
        self.shares: dict[Height, dict[CertificationContent, dict[int, bytes]]] = {}

    def add_share(self, share: CertificationShare) -> None:
        """Remember a peer's (or our own) share.

        Spec: protocol digest §3.3.
        """
        by_content = self.shares.setdefault(share.content.height, {})
        by_content.setdefault(share.content, {})[share.signer] = share.signature

    def try_certify(
        self, height: Height, root_hash: bytes, group: Any, public_key_der: bytes
    ) -> Certification | None:
        """Return the certification of ``(height, root_hash)`` if enough shares are here.

        Spec: protocol digest §3.3 (2f+1 high-threshold shares make a certification).
        """
        content = CertificationContent(height, root_hash)
        signed = self.shares.get(height, {}).get(content, {})
        if len(signed) < group.threshold:
            return None
        chosen = dict(sorted(signed.items())[: group.threshold])
        try:
            signature = self.crypto.combine_threshold(group, chosen, content.signing_bytes())
            if self.crypto.verify_threshold(
                group.group_public_key, content.signing_bytes(), signature
            ):
                return Certification(content, signature)
        except (ValueError, ArithmeticError):
            pass
        try:
            shares = [CertificationShare(content, NodeIndex(i), s) for i, s in signed.items()]
            certification = aggregate(group, shares)
        except CertificationError:
            return None
        verify_certification(certification, public_key_der)
        return certification

    def forget_up_to(self, height: Height) -> None:
        """Drop shares of heights at or below ``height``."""
        for h in [h for h in self.shares if h <= height]:
            del self.shares[h]


# ---------------------------------------------------------------------------- replica


class Replica:
    """One node of a subnet: consensus, ingress pool, state machine, state manager, certifier.

    Spec: see module docstring.
    """

    def __init__(
        self,
        setup: SubnetSetup,
        node: int,
        crypto: ConsensusCrypto,
        state: StateManager,
        *,
        execute: StateMachine = advance_time_only,
        payload_builder: Callable[[Replica], PayloadBuilder] | None = None,
        cup: CatchUpPackage | None = None,
        now: Time = TIME_ZERO,
        state_dir: Path | None = None,
        dkg: DkgBackend | None = None,
        engine: ModuleEngine | None = None,
        state_sync: Callable[[Height], dict[str, bytes] | None] | None = None,
        authenticate: SenderAuthenticator | None = authenticate_ingress,
        envelopes: EnvelopeCache | None = None,
        registry_version: Callable[[], RegistryVersion] | None = None,
    ) -> None:
        """Start node ``node`` of the subnet ``setup`` from ``cup`` (default: genesis).

        ``state`` holds the state at the CUP's height.  ``payload_builder`` makes the
        node's payload builder from the replica (it needs the ingress pool and state).
        ``engine`` recompiles canister modules when a checkpoint is loaded;
        ``state_sync(height)`` fetches a peer's checkpoint files of a summary height.
        ``authenticate`` checks gossiped ingress senders (None: a trusted test setup).
        ``envelopes`` memoises ingress parsing (share one among the replicas of a process).
        ``registry_version`` returns the newest version of the node's registry copy;
        blocks carry it and ``execute`` sees it as ``batch.registry_version``.
        """
        self.setup = setup
        self.envelopes = envelopes if envelopes is not None else EnvelopeCache()
        self.authenticate = authenticate
        self.node = NodeIndex(node)
        self.crypto = crypto
        self.state = state
        self.execute = execute
        self.state_dir = state_dir
        self.ingress_pool = IngressPool()
        self.query_cache = QueryCache()
        """This node's query cache (non-replicated; validated on every use)."""
        self.certifier = Certifier(crypto)
        self.subnet_id = Principal(setup.membership.subnet_id)
        keys = setup.membership.nodes[node]
        self.node_id = node_id_of(keys.basic)
        self._to_certify: list[tuple[Height, bytes]] = []
        self._outbox: list[ReplicaArtifact] = []
        self._persisted_cup = Height(-1)
        self._pending_certifications: dict[Height, Certification] = {}
        self._checkpoint_files: dict[Height, dict[str, bytes]] = {}
        self.engine = engine
        self.state_sync = state_sync
        self.state_syncs = 0
        self._last_certification_broadcast = Time(now)
        self._clock = Time(now)
        self._persisted_chain = Height(setup.cup.height if cup is None else cup.height)
        self._retained_from = Height(-1)
        """Consensus bookkeeping below this height has been forgotten (``_forget_old``)."""
        origin = setup.cup if cup is None else cup
        self.replay_target: tuple[Height, Time] = (
            origin.height,
            origin.content.block.context.time,
        )
        """Height and time of the last finalized block this node knew before a restart
        (``restore``); it serves again once it has re-executed and certified it."""
        self.executed_heights = 0
        builder = payload_builder(self) if payload_builder is not None else None
        self.consensus: ConsensusReplica = make_replica(
            setup,
            node,
            crypto,
            cup=cup,
            now=now,
            payload_builder=builder,
            dkg=dkg,
            on_batch=self._on_batch,
            registry_version=registry_version,
        )
        if state_dir is not None:
            for sub in (CUPS_DIR, CHAIN_DIR, CHECKPOINTS_DIR):
                (state_dir / sub).mkdir(parents=True, exist_ok=True)
            start = state.latest_state
            if not checkpoint.checkpoint_dir(state_dir / CHECKPOINTS_DIR, start.height).exists():
                checkpoint.write_checkpoint(state_dir / CHECKPOINTS_DIR, start)
            self._persist_cup()

    # -- artifact interface -------------------------------------------------------------

    def on_artifact(self, artifact: ReplicaArtifact) -> None:
        """Accept an artifact from a peer.

        Spec: protocol digest §1.4 (artifacts enter the unvalidated pool), §3.3
        (certification shares), §4.2 (gossiped ingress).
        """
        if isinstance(artifact, SignedIngress):
            self._on_ingress(artifact)
        elif isinstance(artifact, CertificationShare):
            if self._needs_certification(artifact.content.height):
                self.certifier.add_share(artifact)
        elif isinstance(artifact, Certification):
            self._on_certification(artifact)
        else:
            self.consensus.on_artifact(artifact)

    def _on_ingress(self, message: SignedIngress) -> None:
        """Validate a gossiped ingress message (signature, anonymity rules) and pool it.

        Expiry is checked against the node's clock as of its last tick; invalid messages
        are dropped.
        Spec: protocol digest §4.2 (the ingress pool holds validated messages).
        """
        latest = self.state.latest_state
        if message.message_id in latest.ingress_history.entries:
            return
        try:
            check_ingress(message, Time(max(self._clock, latest.time)), self.authenticate)
        except IngressError:
            return
        self.ingress_pool.add(message)

    def tick(self, now: Time) -> list[ReplicaArtifact]:
        """Run consensus and certification; return the artifacts to broadcast.

        Spec: protocol digest §1.4, §4.1 (batches of finalized heights), §3.3.
        """
        self._clock = max(self._clock, now)
        out: list[ReplicaArtifact] = list(self.consensus.tick(now))
        self._forget_old()
        clock = Time(max(self._clock, self.state.latest_state.time))
        self.ingress_pool.purge_expired(clock)  # the IC's ingress pool purges by expiry
        self.envelopes.purge_expired(clock)
        out.extend(self._certify())
        if (
            now - self._last_certification_broadcast
            >= self.consensus.ctx.config.rebroadcast_interval
        ):
            # a lagging peer that catches up needs the latest certification again
            self._last_certification_broadcast = now
            if self.state.certified_height is not None:
                out.append(self.state.certified_state()[1])
        out.extend(self._outbox)
        self._outbox.clear()
        if self.state_dir is not None:
            self._persist_chain()
            self._persist_cup()
        return out

    def _forget_old(self) -> None:
        """Forget consensus bookkeeping below ``min(CUP, delivered - KEEP_DELIVERED_HEIGHTS)``.

        Message routing has executed those batches and CUPs are only made and
        validated at or above the CUP (see ``ConsensusReplica.forget_below``).
        Spec: protocol digest §3.2 (purge below the CUP).
        """
        consensus = self.consensus
        floor = Height(
            min(consensus.reader.cup_height(), consensus.delivered_height - KEEP_DELIVERED_HEIGHTS)
        )
        if floor > self._retained_from:
            self._retained_from = floor
            consensus.forget_below(floor)

    def submit(self, message: SignedIngress) -> bool:
        """Put a checked ingress message into this node's pool; return False if known."""
        if message.message_id in self.state.latest_state.ingress_history.entries:
            return False
        return self.ingress_pool.add(message)

    # -- views --------------------------------------------------------------------------

    def _high_transcript(self, height: Height) -> Any:
        """Return the high-threshold transcript active at ``height`` (the CUP's if unknown)."""
        return self.consensus.ctx.transcript(
            height, DkgTag.HIGH
        ) or self.consensus.reader.cup().summary().current_transcript(DkgTag.HIGH)

    def threshold_key(self, height: Height) -> Any:
        """Return the subnet's high-threshold public key (with key shares) active at ``height``.

        Spec: protocol digest §3.3 (certification uses the high-threshold key active at
        the certified height).
        """
        return to_threshold_public_key(self._high_transcript(height))

    @property
    def public_key_der(self) -> bytes:
        """Return the subnet's threshold public key (DER), constant across resharing."""
        return self.state.latest_state.own_subnet.public_key_der

    def certified(self) -> tuple[ReplicatedState, Certification]:
        """Return the latest certified state and its certification."""
        return self.state.certified_state()

    def finalized_height(self) -> Height:
        """Return consensus' finalized height."""
        return self.consensus.finalized_height()

    def sign_query_response(self, fields: dict[str, Any], timestamp: int) -> dict[str, Any]:
        """Return a node signature ``{timestamp, signature, identity}`` over a response.

        ``fields`` is the response map M without ``timestamp`` (it must hold
        ``request_id``).  Spec: interface spec §1.6 (``"\\x0Bic-response" ||
        hash_of_map(M)``, Ed25519 node key).
        """
        signed = dict(fields, timestamp=timestamp)
        message = RESPONSE_DOMAIN + hash_of_map(signed)
        secret = self.setup.secrets[self.node].basic
        return {
            "timestamp": timestamp,
            "signature": self.crypto.sign_basic(secret, message),
            "identity": self.node_id.raw,
        }

    def sign_response(
        self, response: Reply | Reject, request_id: bytes, timestamp: int
    ) -> dict[str, Any]:
        """Return the node signature ``{timestamp, signature, identity}`` of a query answer.

        Spec: interface spec §1.6 (``"\\x0Bic-response" || hash_of_map(M)``, Ed25519).
        """
        message = RESPONSE_DOMAIN + response_hash(response, request_id, timestamp)
        secret = self.setup.secrets[self.node].basic
        return {
            "timestamp": timestamp,
            "signature": self.crypto.sign_basic(secret, message),
            "identity": self.node_id.raw,
        }

    # -- batches and certification -------------------------------------------------------

    def _on_batch(self, batch: Batch) -> bytes:
        if batch.height > self.state.latest_height + 1:
            self._sync_state(Height(batch.height - 1))
        previous = self.state.latest_state
        new = self.execute(previous, batch)
        root = self.state.commit(new)
        self.executed_heights += 1
        self.ingress_pool.remove(ingress_ids(batch, self.envelopes))
        self._to_certify.append((batch.height, root))
        if batch.requires_checkpoint:
            files = checkpoint.serialize_state(new, self.state.codec)
            self._checkpoint_files[batch.height] = files
            for old in sorted(self._checkpoint_files)[:-KEEP_SERVED_CHECKPOINTS]:
                del self._checkpoint_files[old]
            manifest = self.state.state_hash(batch.height)
            return manifest or checkpoint.compute_manifest(files).root_hash()
        return root

    def checkpoint_files(self, height: Height) -> dict[str, bytes] | None:
        """Return the checkpoint files of a recent summary height (served to peers)."""
        return self._checkpoint_files.get(height)

    def _sync_state(self, height: Height) -> None:
        """Fetch the checkpoint of the adopted CUP's height from peers and start from it.

        Raises ``ReplicaError`` if no peer serves files matching the CUP's state hash.
        Spec: protocol digest §4.7 (state sync: a node behind the CUP downloads the
        checkpoint, verifying every chunk against the manifest hash in the CUP).
        """
        cup = self.consensus.reader.cup()
        if cup.height != height or self.state_sync is None:
            raise ReplicaError(f"node {self.node} cannot sync the state of height {height}")
        files = self.state_sync(height)
        if files is None or checkpoint.compute_manifest(files).root_hash() != (
            cup.content.state_hash
        ):
            raise ReplicaError(f"no peer serves the state of height {height} with the CUP's hash")
        root = (
            self.state_dir / CHECKPOINTS_DIR
            if self.state_dir is not None
            else Path(tempfile.mkdtemp(prefix="icp-state-sync-"))
        )
        path = checkpoint.checkpoint_dir(root, height)
        if not path.exists():
            tmp = root / "sync"
            shutil.rmtree(tmp, ignore_errors=True)
            for rel, data in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(data)
            manifest = checkpoint.compute_manifest(files)
            (tmp / checkpoint.MANIFEST_FILE).write_bytes(manifest.to_cbor())
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.rename(path)
        loaded = checkpoint.load_checkpoint(
            path, engine=self.engine, expected_state_hash=cup.content.state_hash
        )
        if self.state_dir is None:
            shutil.rmtree(root, ignore_errors=True)
        self.state = StateManager(
            loaded.state,
            checkpoint_root=self.state.checkpoint_root,
            checkpoint_interval=self.state.checkpoint_interval,
            initial_state_hash=cup.content.state_hash,
            codec=self.state.codec,
        )
        self._checkpoint_files[height] = files
        self._to_certify.clear()
        self.state_syncs += 1

    def _needs_certification(self, height: Height) -> bool:
        certified = self.state.certified_height
        return certified is None or height > certified

    def _certify(self) -> list[ReplicaArtifact]:
        out: list[ReplicaArtifact] = []
        pending = self._to_certify
        self._to_certify = []
        for height, root in pending:
            if not self._needs_certification(height):
                continue
            transcript_share = self._own_share(height)
            if transcript_share is not None:
                content = CertificationContent(height, root)
                signature = self.crypto.sign_threshold_share(
                    transcript_share, content.signing_bytes()
                )
                share = CertificationShare(content, NodeIndex(transcript_share.index), signature)
                self.certifier.add_share(share)
                out.append(share)
        for height in sorted(self._pending_certifications):
            if height <= self.state.latest_height:
                waiting = self._pending_certifications.pop(height)
                if self._needs_certification(height) and self.state.root_hash(height):
                    self._accept(waiting)
        for height in sorted(self.certifier.shares):
            if not self._needs_certification(height):
                continue
            root_hash = self.state.root_hash(height)
            if root_hash is None:
                continue
            certification = self.certifier.try_certify(
                height, root_hash, self.threshold_key(height), self.public_key_der
            )
            if certification is not None and self._accept(certification):
                out.append(certification)
        return out

    def _own_share(self, height: Height) -> Any:
        return self.consensus.ctx.keys.share_for(self._high_transcript(height))

    def _verify_certification(self, certification: Certification) -> bool:
        """Verify a certification through the crypto façade (cached per process).

        Spec: protocol digest §3.3 (a certification verifies under the subnet key).
        """
        try:
            key = bls.public_key_from_der(self.public_key_der)
            return self.crypto.verify_threshold(
                key, certification.content.signing_bytes(), certification.signature
            )
        except ValueError:  # a malformed key or signature
            return False

    def _on_certification(self, certification: Certification) -> None:
        if not self._needs_certification(certification.height):
            return
        if not self._verify_certification(certification):
            return
        if certification.height > self.state.latest_height:
            # not executed yet (we lag behind): keep it for when we get there
            self._pending_certifications[certification.height] = certification
            for old in sorted(self._pending_certifications)[:-MAX_PENDING_CERTIFICATIONS]:
                del self._pending_certifications[old]
            return
        if self.state.root_hash(certification.height) is not None:
            self._accept(certification)

    def _accept(self, certification: Certification) -> bool:
        try:
            self.state.add_certification(certification, verify=self._verify_certification)
        except CertificationError:
            return False
        self.certifier.forget_up_to(certification.height)
        self.state.purge()
        return True

    # -- persistence ----------------------------------------------------------------------

    def oldest_persisted_cup(self) -> Height:
        """Return the height of the oldest catch-up package kept on disk (a restart may
        replay the chain from it); without a state directory, the latest executed height.
        """
        if self.state_dir is None:
            return self.state.latest_height
        names = sorted((self.state_dir / CUPS_DIR).glob("*.cbor"))
        return Height(int(names[0].stem)) if names else Height(-1)

    def _persist_chain(self) -> None:
        assert self.state_dir is not None
        reader = self.consensus.reader
        finalized = reader.finalized_height()
        while self._persisted_chain < finalized:
            height = Height(self._persisted_chain + 1)
            material = _height_material(self.consensus, height)
            if material is None:
                return
            path = self.state_dir / CHAIN_DIR / f"{height:016d}.cbor"
            _write_atomic(path, _persistence_codec().encode(tuple(material)))
            self._persisted_chain = height

    def _persist_cup(self) -> None:
        assert self.state_dir is not None
        cup = self.consensus.reader.cup()
        if cup.height <= self._persisted_cup:
            return
        _write_atomic(
            self.state_dir / CUPS_DIR / f"{cup.height:016d}.cbor", _persistence_codec().encode(cup)
        )
        self._persisted_cup = cup.height
        kept = sorted((self.state_dir / CUPS_DIR).glob("*.cbor"))
        for old in kept[:-KEEP_CUPS]:
            old.unlink(missing_ok=True)
        oldest = int(kept[-KEEP_CUPS:][0].stem)
        for old in (self.state_dir / CHAIN_DIR).glob("*.cbor"):
            if int(old.stem) <= oldest:
                old.unlink(missing_ok=True)

    @classmethod
    def restore(
        cls,
        setup: SubnetSetup,
        node: int,
        crypto: ConsensusCrypto,
        state_dir: Path,
        *,
        engine: ModuleEngine | None = None,
        execute: StateMachine = advance_time_only,
        payload_builder: Callable[[Replica], PayloadBuilder] | None = None,
        now: Time = TIME_ZERO,
        dkg: DkgBackend | None = None,
        checkpoint_interval: int | None = None,
        state_sync: Callable[[Height], dict[str, bytes] | None] | None = None,
        authenticate: SenderAuthenticator | None = authenticate_ingress,
        envelopes: EnvelopeCache | None = None,
        registry_version: Callable[[], RegistryVersion] | None = None,
    ) -> Replica:
        """Restart a node from its state directory: checkpoint + CUP, then the chain above.

        The persisted finalized artifacts above the CUP go back into the consensus pool;
        the next ``tick`` validates them and re-executes their batches.  Raises
        ``ReplicaError`` if no checkpoint matches a persisted CUP.
        Spec: protocol digest §4.7 (restart from the latest checkpoint + CUP), §3.2.
        """
        interval = checkpoint_interval or setup.config.dkg_interval_length + 1
        for cup in reversed(_load_cups(state_dir)):
            ckpt = checkpoint.checkpoint_dir(state_dir / CHECKPOINTS_DIR, cup.height)
            if not ckpt.exists():
                continue
            genesis = cup.signature == b""  # the registry's CUP: its state is the genesis one
            try:
                loaded = checkpoint.load_checkpoint(
                    ckpt,
                    engine=engine,
                    expected_state_hash=None if genesis else cup.content.state_hash,
                )
            except checkpoint.CheckpointError:
                continue
            manager = StateManager(
                loaded.state,
                checkpoint_root=state_dir / CHECKPOINTS_DIR,
                checkpoint_interval=interval,
                initial_state_hash=loaded.checkpoint.state_hash,
            )
            replica = cls(
                setup,
                node,
                crypto,
                manager,
                execute=execute,
                payload_builder=payload_builder,
                cup=cup,
                now=now,
                state_dir=state_dir,
                dkg=dkg,
                engine=engine,
                state_sync=state_sync,
                authenticate=authenticate,
                envelopes=envelopes,
                registry_version=registry_version,
            )
            replica._persisted_chain = _last_chain_height(state_dir)
            for artifact in _load_chain(state_dir, cup.height):
                replica.consensus.on_artifact(artifact)
                if isinstance(artifact, BlockProposal):
                    block = artifact.block
                    replica.replay_target = max(
                        replica.replay_target, (block.height, block.context.time)
                    )
            return replica
        raise ReplicaError(f"no checkpoint in {state_dir} matches a persisted catch-up package")


def _height_material(consensus: ConsensusReplica, height: Height) -> list[Any] | None:
    """Return the finalized block of ``height`` with the artifacts proving it."""
    reader = consensus.reader
    block = reader.finalized_block_at(height)
    beacon = reader.beacon_at(height)
    tape = reader.tape_at(height)
    if block is None or beacon is None or tape is None:
        return None
    block_hash = block.block_hash()
    out: list[Any] = [beacon]
    out.extend(p for p in reader.proposals_at(height) if p.block.block_hash() == block_hash)
    out.extend(reader.validated_at(Notarization, height))
    out.extend(reader.validated_at(Finalization, height))
    out.append(tape)
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


@functools.cache
def _persistence_codec() -> Codec:
    """Return the allow-list codec for persisted consensus artifacts (CUPs, chain).

    Only classes defined in the consensus and NIDKG modules can be rebuilt, so a
    damaged or hostile state directory yields a ``CodecError``, never arbitrary objects.
    """
    import icp.consensus as consensus_package
    from icp.crypto import nidkg, threshold

    modules = [
        importlib.import_module(f"icp.consensus.{m.name}")
        for m in pkgutil.iter_modules(consensus_package.__path__)
    ] + [nidkg, threshold]
    classes = {
        obj
        for module in modules
        for obj in vars(module).values()
        if isinstance(obj, type)
        and (attrs.has(obj) or issubclass(obj, enum.Enum))
        and obj.__module__.startswith("icp.")
    }
    return Codec(sorted(classes, key=lambda c: f"{c.__module__}.{c.__qualname__}"))


def _load_cups(state_dir: Path) -> list[CatchUpPackage]:
    out = []
    for path in sorted((state_dir / CUPS_DIR).glob("*.cbor")):
        try:
            cup = _persistence_codec().decode(path.read_bytes())
        except CodecError:
            continue  # a damaged file: fall back to an older CUP
        if isinstance(cup, CatchUpPackage):
            out.append(cup)
    return out


def _last_chain_height(state_dir: Path) -> Height:
    names = sorted((state_dir / CHAIN_DIR).glob("*.cbor"))
    return Height(int(names[-1].stem)) if names else Height(-1)


def _load_chain(state_dir: Path, above: Height) -> list[ConsensusArtifact]:
    out: list[ConsensusArtifact] = []
    for path in sorted((state_dir / CHAIN_DIR).glob("*.cbor")):
        if int(path.stem) <= above:
            continue
        try:
            material = _persistence_codec().decode(path.read_bytes())
        except CodecError:
            break  # a damaged file ends the replayable chain
        out.extend(material)
    return out


__all__ = [
    "Certifier",
    "Replica",
    "ReplicaArtifact",
    "ReplicaError",
    "StateMachine",
    "advance_time_only",
    "ingress_ids",
    "node_id_of",
    "node_public_key_der",
    "response_fields",
    "response_hash",
]

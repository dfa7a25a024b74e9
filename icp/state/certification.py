"""State certification, IC certificates for state paths, NNS delegations, read_state rules.

Theory of operation.  After executing height ``h`` every replica builds the state
tree and signs ``CertificationContent(h, root_hash)`` — the bytes
``"\\x0Dic-state-root" || root_hash`` — with its share of the subnet's
high-threshold key (``certify``).  Any ``threshold`` valid shares combine into the
unique group signature: a ``Certification`` (``aggregate``), which verifies under
the subnet's public key (``verify_certification``).  Because the signed bytes are
exactly what IC certificates sign, a certification plus a witness of the state
tree *is* a certificate: ``certificate_for`` prunes the tree to the requested paths
(``/time`` always included) and wraps it with the signature and, for a non-root
subnet, the NNS delegation (``make_delegation``: an NNS certificate revealing the
subnet's public key and canister ranges).  ``check_read_state_paths`` is the pure
permission rule of the read_state endpoint.

Spec: protocol digest §3.3 (state certification, 2f+1 high-threshold key), §3.4 (NNS
delegation); interface spec §"Certification", §"Delegation", §"Request: Read state"
(``shared/spec/interface.md`` §1.3, §1.8, §2.2, §2.3).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import attrs

from icp.crypto import bls, threshold
from icp.crypto.certificate import Certificate, Delegation, certification_message
from icp.crypto.errors import CertificateError, ThresholdError
from icp.crypto.hashing import cbor_encode
from icp.crypto.hashtree import HashTree, Path
from icp.principal import Principal
from icp.state.replicated_state import ReplicatedState, StateError
from icp.state.tree import (
    StateTreeBuilder,
    WitnessIndex,
    metadata_sections,
    witness,
    witness_cbor_value,
)
from icp.types import Height, NodeIndex

MAX_READ_STATE_PATHS: Final = 1000
MAX_PATH_LABELS: Final = 127


class CertificationError(ValueError):
    """Raised for an invalid certification, share, or a tree that does not match one."""


class ReadStateError(Exception):
    """A read_state request the replica refuses, with the HTTP status it answers with."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message


@attrs.frozen(slots=True)
class CertificationContent:
    """What a subnet certifies for one height: the state tree's root hash.

    Spec: protocol digest §3.3 (``CertificationContent{hash}``).
    """

    height: Height
    root_hash: bytes

    def signing_bytes(self) -> bytes:
        """Return ``"\\x0Dic-state-root" || root_hash`` (what certificates verify)."""
        return certification_message(self.root_hash)


@attrs.frozen(slots=True)
class CertificationShare:
    """One replica's threshold-signature share on a certification content."""

    content: CertificationContent
    signer: NodeIndex
    signature: bytes  # 48-byte BLS signature share


@attrs.frozen(slots=True)
class Certification:
    """A height's root hash signed with the subnet's threshold key.

    Spec: protocol digest §3.3 (``Certification{height, signed}``).
    """

    content: CertificationContent
    signature: bytes  # 48-byte BLS group signature

    @property
    def height(self) -> Height:
        return self.content.height


def certify(
    height: Height, root_hash: bytes, share: threshold.ThresholdSecretShare
) -> CertificationShare:
    """Sign ``(height, root_hash)`` with this replica's threshold key share.

    Spec: protocol digest §3.3.
    """
    content = CertificationContent(height, bytes(root_hash))
    signature = threshold.sign_share(share, content.signing_bytes())
    return CertificationShare(content, NodeIndex(share.index), signature)


def verify_share(public_key: threshold.ThresholdPublicKey, share: CertificationShare) -> None:
    """Raise ``CertificationError`` unless ``share`` is its signer's valid share.

    Spec: protocol digest §3.3 (shares verify against per-node key shares).
    """
    if not threshold.verify_share(
        public_key, share.signer, share.content.signing_bytes(), share.signature
    ):
        raise CertificationError(
            f"invalid certification share from node {share.signer} at height {share.content.height}"
        )


def aggregate(
    public_key: threshold.ThresholdPublicKey, shares: Iterable[CertificationShare]
) -> Certification:
    """Combine ``threshold`` valid shares on one content into a ``Certification``.

    Invalid shares are skipped; shares on other contents are ignored unless no
    content has enough.  Raises ``CertificationError`` if no content has
    ``threshold`` valid shares.
    Spec: protocol digest §3.3 (2f+1 shares → certification).
    """
    by_content: dict[CertificationContent, dict[int, bytes]] = {}
    for share in shares:
        by_content.setdefault(share.content, {})[share.signer] = share.signature
    reasons = []
    for content, signed in by_content.items():
        try:
            signature = threshold.combine_verified(
                public_key, content.signing_bytes(), signed, skip_invalid=True
            )
        except ThresholdError as exc:
            reasons.append(f"height {content.height}: {exc}")
            continue
        return Certification(content, signature)
    raise CertificationError("cannot certify: " + ("; ".join(reasons) or "no shares"))


def verify_certification(certification: Certification, public_key_der: bytes) -> None:
    """Raise ``CertificationError`` unless ``certification`` verifies under the subnet key.

    Spec: protocol digest §3.3; interface spec §"Certification" (BLS min-sig).
    """
    key = bls.public_key_from_der(public_key_der)
    if not bls.verify(key, certification.content.signing_bytes(), certification.signature):
        raise CertificationError(f"invalid certification at height {certification.height}")


# ---------------------------------------------------------------------------- certificates


def _tree_for(
    state: ReplicatedState, certification: Certification, builder: StateTreeBuilder | None
) -> HashTree:
    if certification.height != state.height:
        raise CertificationError(
            f"certification is for height {certification.height}, state is at {state.height}"
        )
    tree = (builder or StateTreeBuilder()).build(state)
    if tree.digest() != certification.content.root_hash:
        raise CertificationError(
            f"certification at height {state.height} does not sign this state's tree"
        )
    return tree


def certificate_for(
    state: ReplicatedState,
    certification: Certification,
    paths: Iterable[Path],
    delegation: Delegation | None = None,
    *,
    builder: StateTreeBuilder | None = None,
    tree: HashTree | None = None,
    index: WitnessIndex | None = None,
) -> bytes:
    """Return the CBOR certificate revealing ``paths`` (and ``/time``) of ``state``.

    ``tree`` may be passed when the caller already built the state's tree; otherwise
    it is built (with ``builder`` if given); ``index`` (of that tree) speeds up
    repeated witnesses.  Raises ``CertificationError`` if the certification is not
    for this state.
    Spec: interface spec §"Certification" (certificate = pruned tree + signature +
    optional delegation; ``/time`` is always included).
    """
    if tree is None:
        tree = _tree_for(state, certification, builder)
    elif tree.digest() != certification.content.root_hash:
        raise CertificationError("the given tree is not the certified one")
    if delegation is None or _is_plain_delegation(delegation):
        # ``Certificate.create``'s checks (the delegation's once per process) and
        # ``Certificate.to_cbor``'s encoding, with the witness emitted as CBOR directly
        if len(certification.signature) != bls.SIGNATURE_SIZE:
            raise CertificateError("a certificate signature is 48 bytes")
        body: dict[str, object] = {
            "tree": witness_cbor_value(
                tree,
                [["time"], *paths],
                index if index is not None and index.tree is tree else None,
            ),
            "signature": certification.signature,
        }
        if delegation is not None:
            body["delegation"] = {
                "subnet_id": delegation.subnet_id,
                "certificate": delegation.certificate,
            }
        return cbor_encode(body)
    pruned = witness(tree, [["time"], *paths])
    return Certificate.create(pruned, certification.signature, delegation).to_cbor()


@functools.lru_cache(maxsize=64)
def _is_plain_delegation(delegation: Delegation) -> bool:
    """Return whether a delegation's certificate parses and carries no delegation itself.

    Spec: interface spec §"Delegation" (a delegation certificate has no delegation).
    """
    try:
        return Certificate.from_cbor(delegation.certificate).delegation is None
    except CertificateError:
        return False


def make_delegation(
    nns_state: ReplicatedState,
    nns_certification: Certification,
    subnet_id: Principal,
    *,
    builder: StateTreeBuilder | None = None,
) -> Delegation:
    """Return the NNS delegation for ``subnet_id``: an NNS certificate of its key and ranges.

    Raises ``StateError`` if the NNS state does not know the subnet.
    Spec: protocol digest §3.4; interface spec §"Delegation" (the delegation
    certificate reveals ``/subnet/<id>/public_key`` and the canister ranges in both
    layouts, and carries no delegation itself).
    """
    nns_state.topology.subnet(subnet_id)
    raw = subnet_id.raw
    paths: list[Path] = [
        ["subnet", raw, "public_key"],
        ["subnet", raw, "canister_ranges"],
    ]
    if nns_state.topology.canister_ranges(subnet_id):
        paths.append(["canister_ranges", raw])
    cert = certificate_for(nns_state, nns_certification, paths, builder=builder)
    return Delegation(raw, cert)


def data_certificate_for(
    state: ReplicatedState,
    certification: Certification,
    canister_id: Principal,
    delegation: Delegation | None = None,
    *,
    builder: StateTreeBuilder | None = None,
    tree: HashTree | None = None,
) -> bytes:
    """Return the certificate ``ic0.data_certificate`` gives a query of ``canister_id``.

    It reveals only ``/time`` and ``/canister/<cid>/certified_data``.
    Spec: interface spec §"Certified data" (``shared/spec/interface.md`` §2.3).
    """
    paths: list[Path] = [["canister", canister_id.raw, "certified_data"]]
    return certificate_for(state, certification, paths, delegation, builder=builder, tree=tree)


# ---------------------------------------------------------------------------- read_state


def _raw(label: bytes | str) -> bytes:
    return label.encode("utf-8") if isinstance(label, str) else bytes(label)


def check_read_state_paths(
    paths: Sequence[Sequence[bytes | str]],
    sender: Principal,
    effective_canister_id: Principal | None,
    state: ReplicatedState,
    *,
    effective_subnet_id: Principal | None = None,
) -> None:
    """Raise ``ReadStateError`` unless ``sender`` may read every path.

    Rules: at most 1000 paths of at most 127 labels (400); ``/time``, ``/subnet``,
    ``/canister_ranges`` and ``/api_boundary_nodes`` are public, but
    ``/subnet/<id>/node`` needs the effective canister in that subnet's ranges and
    ``/subnet/<id>/metrics`` the subnet endpoint (403); all ``/request_status`` paths
    name one request id (400), readable only by the request's sender for the same
    effective canister id (403) — an unknown id is readable (it proves absence);
    ``/canister/<cid>/{module_hash, controllers, metadata/<name>}`` only when ``cid``
    is the effective canister id, private metadata only by controllers, and
    ``certified_data`` never (403); anything else does not exist (404).
    Spec: interface spec §"Request: Read state" (``shared/spec/interface.md`` §1.3,
    §1.8, §2.3).
    """
    if len(paths) > MAX_READ_STATE_PATHS:
        raise ReadStateError(400, f"too many paths: {len(paths)} > {MAX_READ_STATE_PATHS}")
    request_ids: set[bytes] = set()
    for raw_path in paths:
        if len(raw_path) > MAX_PATH_LABELS:
            raise ReadStateError(400, f"a path has more than {MAX_PATH_LABELS} labels")
        path = [_raw(label) for label in raw_path]
        shown = "/" + "/".join(
            p.decode("utf-8", "replace") if p.isascii() else p.hex() for p in path
        )
        if not path:
            raise ReadStateError(403, "the empty path would reveal the whole state tree")
        head = path[0]
        if head in (b"time", b"canister_ranges", b"api_boundary_nodes"):
            continue
        if head == b"subnet":
            _check_subnet_path(path, shown, state, effective_canister_id, effective_subnet_id)
        elif head == b"request_status":
            if len(path) < 2:
                raise ReadStateError(403, "reading all request statuses is not allowed")
            request_ids.add(path[1])
            if len(request_ids) > 1:
                raise ReadStateError(
                    400, "all request_status paths of a read_state must name one request id"
                )
            _check_request_status(path[1], sender, effective_canister_id, state)
        elif head == b"canister":
            _check_canister_path(path, shown, sender, effective_canister_id, state)
        else:
            raise ReadStateError(404, f"invalid path requested: {shown}")


def _check_subnet_path(
    path: list[bytes],
    shown: str,
    state: ReplicatedState,
    effective_canister_id: Principal | None,
    effective_subnet_id: Principal | None,
) -> None:
    if len(path) < 3:
        return
    subnet = Principal(path[1])
    if path[2] == b"metrics" and (effective_subnet_id is None or effective_subnet_id != subnet):
        raise ReadStateError(403, f"{shown} is only readable via the subnet's read_state")
    if path[2] == b"node" and effective_subnet_id != subnet:
        try:
            ranges = state.topology.canister_ranges(subnet)
        except StateError:
            ranges = ()
        if effective_canister_id is None or not any(
            r.contains(effective_canister_id) for r in ranges
        ):
            raise ReadStateError(
                403, f"{shown}: the effective canister id is not hosted by that subnet"
            )


def _check_request_status(
    request_id: bytes,
    sender: Principal,
    effective_canister_id: Principal | None,
    state: ReplicatedState,
) -> None:
    status = state.ingress_history.get(request_id)
    if status is None:
        return
    if status.sender is not None and status.sender != sender.raw:
        raise ReadStateError(
            403, f"request 0x{request_id.hex()} was not sent by {sender.to_text()}"
        )
    ecid = effective_canister_id.raw if effective_canister_id is not None else None
    # A management call without a target canister (provisional_create_canister_with_cycles)
    # may be sent with any effective canister id (interface spec §"Effective canister
    # id"), so the ingress history records the management canister and any id may poll.
    anywhere = status.effective_canister_id == b""
    if (
        status.effective_canister_id is not None
        and not anywhere
        and status.effective_canister_id != ecid
    ):
        raise ReadStateError(
            403, f"request 0x{request_id.hex()} was sent to another effective canister id"
        )


def _check_canister_path(
    path: list[bytes],
    shown: str,
    sender: Principal,
    effective_canister_id: Principal | None,
    state: ReplicatedState,
) -> None:
    if len(path) < 3:
        raise ReadStateError(403, f"{shown}: name a field of the canister")
    if effective_canister_id is None or path[1] != effective_canister_id.raw:
        raise ReadStateError(
            403, f"{shown}: a canister's paths are readable only with it as effective canister id"
        )
    field = path[2]
    if field in (b"module_hash", b"controllers") and len(path) == 3:
        return
    if field == b"certified_data":
        raise ReadStateError(
            403, f"{shown}: certified_data is only readable through ic0.data_certificate"
        )
    if field == b"metadata" and len(path) == 4:
        canister = state.canister(path[1])
        if canister is not None:
            section = metadata_sections(canister).get(path[3].decode("utf-8", "replace"))
            if (
                section is not None
                and not section[0]
                and sender.raw not in canister.settings.controllers
            ):
                raise ReadStateError(
                    403, f"{shown}: private metadata is readable only by controllers"
                )
        return
    raise ReadStateError(404, f"invalid path requested: {shown}")


def subnet_shares(
    shares: Mapping[NodeIndex, threshold.ThresholdSecretShare],
    height: Height,
    root_hash: bytes,
) -> list[CertificationShare]:
    """Return every listed replica's share on ``(height, root_hash)`` (simulation helper)."""
    return [certify(height, root_hash, share) for share in shares.values()]

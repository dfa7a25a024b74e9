"""The state manager: commit, certify, serve certificates, checkpoint and restore."""

from __future__ import annotations

import hashlib
from pathlib import Path

import attrs
import pytest

from icp.crypto.certificate import Certificate
from icp.state.certification import Certification, CertificationError, aggregate, certify
from icp.state.ingress_history import IngressStatus, RequestStatus
from icp.state.manager import StateManager
from icp.state.replicated_state import ReplicatedState, StateError
from icp.types import Height, Time
from tests.state.builders import (
    T0,
    USER,
    World,
    app_canister_id,
    empty_state,
    plain_canister,
    world,
)


def next_state(state: ReplicatedState, i: int) -> ReplicatedState:
    rid = hashlib.sha256(bytes([i])).digest()
    history = state.ingress_history.set_status(
        rid, IngressStatus(RequestStatus.RECEIVED, Time(T0 + 10**12), sender=USER.raw)
    )
    return state.with_ingress_history(history).at_height(
        Height(state.height + 1), Time(state.time + 10**9)
    )


def certification(w: World, height: int, root: bytes) -> Certification:
    return aggregate(w.app_key, [certify(Height(height), root, s) for s in w.app_shares[:3]])


def test_commit_certify_serve_checkpoint_restore(tmp_path: Path) -> None:
    w = world()
    genesis = empty_state(w, height=0).with_canister(plain_canister(app_canister_id(1)))
    manager = StateManager(genesis, checkpoint_root=tmp_path, checkpoint_interval=4, keep_states=3)
    with pytest.raises(CertificationError, match="certified"):
        manager.certificate([["time"]])
    state = genesis
    for i in range(1, 10):
        state = next_state(state, i)
        root = manager.commit(state)
        assert manager.root_hash(state.height) == root
        if i % 2 == 0:
            manager.add_certification(certification(w, i, root))
    assert manager.certified_height == 8
    assert manager.state_hash(Height(8)) is not None and manager.state_hash(Height(7)) is None
    cert = Certificate.from_cbor(
        manager.certificate([["request_status", hashlib.sha256(b"\x08").digest()]])
    )
    cert.verify(w.app_key.to_der())
    assert (
        cert.lookup_value(["request_status", hashlib.sha256(b"\x08").digest(), "status"])
        == b"received"
    )
    assert cert.time() == manager.certified_state()[0].time
    data = Certificate.from_cbor(manager.data_certificate(app_canister_id(1)))
    assert data.lookup_value(["canister", app_canister_id(1).raw, "certified_data"]) == b""

    with pytest.raises(CertificationError, match="another state"):
        manager.add_certification(certification(w, 9, b"\x00" * 32))
    forged = attrs.evolve(
        certification(w, 9, manager.root_hash(Height(9)) or b""),
        signature=certification(w, 7, manager.root_hash(Height(7)) or b"").signature,
    )
    with pytest.raises(CertificationError):
        manager.add_certification(forged)
    checked: list[Height] = []

    def refuse(c: Certification) -> bool:  # an injected verifier (a replica's crypto façade)
        checked.append(c.height)
        return False

    good = certification(w, 9, manager.root_hash(Height(9)) or b"")
    with pytest.raises(CertificationError, match="invalid"):
        manager.add_certification(good, verify=refuse)
    assert checked == [9] and manager.certified_height != 9
    with pytest.raises(CertificationError, match="another state"):  # the root still counts
        manager.add_certification(certification(w, 9, b"\x00" * 32), verify=lambda _: True)
    with pytest.raises(StateError):
        manager.commit(state)  # the same height again

    manager.purge()
    assert manager.state_at(Height(3)) is None and manager.state_at(Height(8)) is not None

    restored = StateManager.restore(tmp_path, checkpoint_interval=4)
    assert restored is not None and restored.latest_height == 8
    assert restored.root_hash(Height(8)) == manager.root_hash(Height(8))
    assert restored.state_hash(Height(8)) == manager.state_hash(Height(8))
    assert StateManager.restore(tmp_path / "nothing") is None

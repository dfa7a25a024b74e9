"""Certification: shares, aggregation, certificates with delegations, read_state rules."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from icp.crypto import bls, hashtree, threshold
from icp.crypto.certificate import Certificate, Delegation
from icp.crypto.errors import CertificateError
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.principal import Principal
from icp.state.certification import (
    Certification,
    CertificationError,
    ReadStateError,
    aggregate,
    certificate_for,
    certify,
    check_read_state_paths,
    data_certificate_for,
    make_delegation,
    verify_certification,
    verify_share,
)
from icp.state.ingress_history import IngressHistory, IngressStatus, RequestStatus
from icp.state.replicated_state import ReplicatedState
from icp.state.tree import build_state_tree
from icp.types import Height
from tests.state.builders import (
    APP,
    NNS,
    OTHER_USER,
    T0,
    USER,
    World,
    app_canister_id,
    empty_state,
    installed_canister,
    world,
)

RID = hashlib.sha256(b"the request").digest()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def w() -> World:
    return world()


@pytest.fixture(scope="module")
def app_state(w: World) -> ReplicatedState:
    canister = installed_canister(app_canister_id(1), WasmtimeEngine())
    history = IngressHistory().set_status(
        RID,
        IngressStatus(
            RequestStatus.REPLIED,
            T0,
            reply=b"DIDL\x00\x00",
            sender=USER.raw,
            effective_canister_id=app_canister_id(1).raw,
        ),
    )
    return empty_state(w, APP, 7).with_canister(canister).with_ingress_history(history)


def certify_state(
    state: ReplicatedState,
    shares: list[threshold.ThresholdSecretShare],
    pk: threshold.ThresholdPublicKey,
) -> Certification:
    root = build_state_tree(state).digest()
    return aggregate(pk, [certify(state.height, root, s) for s in shares[:3]])


@pytest.fixture(scope="module")
def app_cert(w: World, app_state: ReplicatedState) -> Certification:
    return certify_state(app_state, w.app_shares, w.app_key)


@pytest.fixture(scope="module")
def delegation(w: World) -> Delegation:
    nns_state = empty_state(w, NNS, 3)
    return make_delegation(nns_state, certify_state(nns_state, w.nns_shares, w.nns_key), APP)


def test_shares_aggregate_into_a_verifiable_certification(
    w: World, app_state: ReplicatedState, app_cert: Certification
) -> None:
    verify_certification(app_cert, w.app_key.to_der())
    assert app_cert.content.root_hash == build_state_tree(app_state).digest()
    with pytest.raises(CertificationError):
        verify_certification(app_cert, w.nns_key.to_der())  # another subnet's key


def test_invalid_shares_are_skipped_and_too_few_refused(w: World) -> None:
    root = hashlib.sha256(b"root").digest()
    shares = [certify(Height(5), root, s) for s in w.app_shares]
    forged = certify(Height(5), root, w.nns_shares[0])  # signed with the wrong key share
    with pytest.raises(CertificationError):
        verify_share(w.app_key, forged)
    verify_share(w.app_key, shares[1])
    cert = aggregate(w.app_key, [forged, *shares[1:]])
    assert cert.content.height == 5
    with pytest.raises(CertificationError, match="need 3"):
        aggregate(w.app_key, [forged, shares[1], shares[2]])
    other = certify(Height(5), hashlib.sha256(b"other").digest(), w.app_shares[3])
    with pytest.raises(CertificationError):
        aggregate(w.app_key, [shares[0], shares[1], other])  # split vote: no content has 3


def test_certificate_with_delegation_verifies_under_the_root_key(
    w: World, app_state: ReplicatedState, app_cert: Certification, delegation: Delegation
) -> None:
    cid = app_canister_id(1)
    blob = certificate_for(app_state, app_cert, [["request_status", RID]], delegation)
    cert = Certificate.from_cbor(blob)
    cert.verify(w.nns_key.to_der(), cid)
    assert cert.lookup_value(["request_status", RID, "reply"]) == b"DIDL\x00\x00"
    assert cert.time() == T0
    paths = set(hashtree.list_paths(cert.tree))
    assert paths == {
        (b"time",),
        (b"request_status", RID, b"status"),
        (b"request_status", RID, b"reply"),
    }
    with pytest.raises(CertificateError, match="not in the canister ranges"):
        cert.verify(w.nns_key.to_der(), Principal.from_canister_index(5))  # an NNS canister
    with pytest.raises(CertificateError):
        cert.verify(w.app_key.to_der(), cid)  # the app key is not the root key


def test_a_delegation_that_carries_a_delegation_is_refused_every_time(
    app_state: ReplicatedState, app_cert: Certification, delegation: Delegation
) -> None:
    outer = Certificate.from_cbor(certificate_for(app_state, app_cert, [], delegation))
    nested = Delegation(delegation.subnet_id, outer.to_cbor())  # its certificate delegates
    for _ in range(2):  # the check is memoised per delegation, never skipped
        with pytest.raises(CertificateError, match="must not carry a delegation"):
            certificate_for(app_state, app_cert, [], nested)
    garbage = Delegation(delegation.subnet_id, b"\x00")
    with pytest.raises(CertificateError):
        certificate_for(app_state, app_cert, [], garbage)


def test_certificate_refuses_a_certification_of_another_state(
    app_state: ReplicatedState, app_cert: Certification
) -> None:
    later = app_state.at_height(Height(8), T0)
    with pytest.raises(CertificationError, match="height"):
        certificate_for(later, app_cert, [])
    changed = app_state.with_ingress_history(IngressHistory())
    with pytest.raises(CertificationError, match="does not sign"):
        certificate_for(changed, app_cert, [])


def test_data_certificate_reveals_only_time_and_certified_data(
    w: World, app_state: ReplicatedState, app_cert: Certification, delegation: Delegation
) -> None:
    cid = app_canister_id(1)
    cert = Certificate.from_cbor(data_certificate_for(app_state, app_cert, cid, delegation))
    cert.verify(w.nns_key.to_der(), cid)
    assert set(hashtree.list_paths(cert.tree)) == {
        (b"time",),
        (b"canister", cid.raw, b"certified_data"),
    }
    assert cert.lookup_value(["canister", cid.raw, "certified_data"]) == b"certified!"


def test_nns_certificate_verifies_without_delegation(w: World) -> None:
    nns_state = empty_state(w, NNS, 2)
    cert = certify_state(nns_state, w.nns_shares, w.nns_key)
    blob = certificate_for(nns_state, cert, [["subnet", APP.raw, "public_key"]])
    parsed = Certificate.from_cbor(blob)
    assert parsed.delegation is None
    parsed.verify(w.nns_key.to_der(), Principal.from_canister_index(5))
    assert parsed.lookup_value(["subnet", APP.raw, "public_key"]) == w.app_key.to_der()


def test_python_agent_library_accepts_the_certificate(
    w: World, app_state: ReplicatedState, app_cert: Certification, delegation: Delegation
) -> None:
    import cbor2
    from icp_certificate import certificate as agent_cert  # type: ignore[import-untyped]

    class OurRoot(agent_cert.Certificate):  # type: ignore[misc]
        def read_root_key(self) -> bytes:
            return w.nns_key.to_der()

    cid = app_canister_id(1)
    blob = certificate_for(app_state, app_cert, [["request_status", RID]], delegation)
    cert = OurRoot(cbor2.loads(blob))
    # the library needs the SWIG 'blst' binding for the pairing; it gives us the verified
    # delegation chain, canister-range check and message, and our BLS layer checks the pairing
    materials = cert.verify_cert(cid.raw, backend="return_materials")
    assert materials["der_public_key"] == w.app_key.to_der()
    assert materials["message"] == b"\x0dic-state-root" + cert.root_hash()
    assert bls.verify(materials["bls_public_key"], materials["message"], materials["signature"])
    parent = OurRoot(cbor2.loads(delegation.certificate))  # the library skips this pairing
    inner = parent.verify_cert(cid.raw, backend="return_materials")
    assert inner["der_public_key"] == w.nns_key.to_der()
    assert bls.verify(inner["bls_public_key"], inner["message"], inner["signature"])
    assert cert.lookup_reply(RID) == b"DIDL\x00\x00"
    assert cert.lookup_request_status(RID) == b"replied"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_agent_js_accepts_the_certificate(
    w: World, app_state: ReplicatedState, app_cert: Certification, delegation: Delegation
) -> None:
    cid = app_canister_id(1)
    blob = certificate_for(app_state, app_cert, [["request_status", RID]], delegation)

    def agent(root: bytes, canister: Principal, *path: bytes) -> dict[str, object]:
        out = subprocess.run(
            ["node", str(Path(__file__).with_name("agent_verify.cjs")), blob.hex(), root.hex(),
             canister.to_text(), *(p.hex() for p in path)],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    ok = agent(w.nns_key.to_der(), cid, b"request_status", RID, b"reply")
    assert ok == {"ok": True, "value": b"DIDL\x00\x00".hex()}
    wrong_root = agent(w.app_key.to_der(), cid, b"time")
    assert wrong_root["ok"] is False
    wrong_canister = agent(w.nns_key.to_der(), Principal.from_canister_index(5), b"time")
    assert wrong_canister["ok"] is False


# ---------------------------------------------------------------------------- read_state


def check(paths: list[list[bytes | str]], sender: Principal = USER, ecid: Principal | None = None,
          state: ReplicatedState | None = None, **kw: object) -> None:  # fmt: skip
    assert state is not None
    check_read_state_paths(paths, sender, ecid or app_canister_id(1), state, **kw)  # type: ignore[arg-type]


def status_of(exc: pytest.ExceptionInfo[ReadStateError]) -> int:
    return exc.value.http_status


def test_read_state_public_paths(app_state: ReplicatedState) -> None:
    check(
        [["time"], ["subnet", APP.raw, "public_key"], ["canister_ranges", APP.raw]], state=app_state
    )
    check([["subnet", APP.raw, "node"]], state=app_state)  # ecid is on APP
    with pytest.raises(ReadStateError) as exc:
        check([["subnet", NNS.raw, "node"]], state=app_state)  # ecid not on NNS
    assert status_of(exc) == 403
    with pytest.raises(ReadStateError) as exc:
        check([["subnet", APP.raw, "metrics"]], state=app_state)
    assert status_of(exc) == 403
    check([["subnet", APP.raw, "metrics"]], state=app_state, effective_subnet_id=APP)


def test_read_state_request_status_rules(app_state: ReplicatedState) -> None:
    check([["request_status", RID, "reply"], ["request_status", RID, "status"]], state=app_state)
    unknown = b"\x01" * 32
    check([["request_status", unknown]], sender=OTHER_USER, state=app_state)  # absence is public
    with pytest.raises(ReadStateError) as exc:
        check([["request_status", RID]], sender=OTHER_USER, state=app_state)
    assert status_of(exc) == 403
    with pytest.raises(ReadStateError) as exc:
        check([["request_status", RID]], ecid=app_canister_id(2), state=app_state)
    assert status_of(exc) == 403
    with pytest.raises(ReadStateError) as exc:
        check([["request_status", RID], ["request_status", unknown]], state=app_state)
    assert status_of(exc) == 400
    with pytest.raises(ReadStateError) as exc:
        check([["request_status"]], state=app_state)
    assert status_of(exc) == 403


def test_read_state_canister_rules(app_state: ReplicatedState) -> None:
    cid = app_canister_id(1).raw
    check([["canister", cid, "module_hash"], ["canister", cid, "controllers"]], state=app_state)
    check([["canister", cid, "metadata", "candid:service"]], sender=OTHER_USER, state=app_state)
    check([["canister", cid, "metadata", "secret"]], sender=USER, state=app_state)
    cases = [
        ([["canister", cid, "metadata", "secret"]], OTHER_USER, 403),  # private, not controller
        ([["canister", cid, "certified_data"]], USER, 403),
        ([["canister", app_canister_id(2).raw, "module_hash"]], USER, 403),  # not the ecid
        ([["canister", cid]], USER, 403),
        ([["streams", NNS.raw]], USER, 404),
        ([["nonsense"]], USER, 404),
        ([[]], USER, 403),
        ([["time"]] * 1001, USER, 400),
        ([["subnet"] * 128], USER, 400),
    ]
    for paths, sender, expected in cases:  # (paths, sender, HTTP status)
        with pytest.raises(ReadStateError) as exc:
            check(paths, sender=sender, state=app_state)  # type: ignore[arg-type]
        assert status_of(exc) == expected, paths[:1]  # type: ignore[index]


def test_untargeted_management_call_status_is_readable_at_any_effective_id(
    app_state: ReplicatedState,
) -> None:
    """provisional_create_canister_with_cycles may be sent with any effective canister id,
    so its status may be polled at any (agent-js polls at the id it sent the call to)."""
    create = hashlib.sha256(b"provisional create").digest()
    history = app_state.ingress_history.set_status(
        create,
        IngressStatus(
            RequestStatus.REPLIED, T0, reply=b"DIDL", sender=USER.raw, effective_canister_id=b""
        ),
    )
    state = app_state.with_ingress_history(history)
    check([["request_status", create]], ecid=app_canister_id(2), state=state)
    check([["request_status", create]], ecid=app_canister_id(5), state=state)
    with pytest.raises(ReadStateError) as exc:
        check([["request_status", create]], sender=OTHER_USER, state=state)
    assert status_of(exc) == 403

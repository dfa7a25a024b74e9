"""End to end: real Motoko canisters on a 4-node-per-subnet IC, through consensus."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from icp import Principal
from icp.candid import decode, encode
from icp.candid.types import Nat, Text
from icp.crypto.certificate import Certificate
from icp.crypto.hashing import cbor_decode as _cbor_decode
from icp.crypto.hashing import cbor_encode, hash_of_map, request_id
from icp.crypto.user_sig import principal_of
from icp.execution.management import CanisterIdRecord
from icp.ic import DEFAULT_CONSENSUS, ICError, InternetComputer, SubnetConfig, SubnetKind
from icp.testing import call_content, envelope, read_state_content
from icp.types import Height
from tests.ic.helpers import ALICE, BOB, MGMT, call, create_canister, identical_states, install

NO_ARGS = encode([], [])


def cbor_decode(data: bytes) -> Any:
    """Decode CBOR (typed loosely for tests)."""
    return _cbor_decode(data)


@pytest.fixture(scope="module")
def counter_ic(motoko: Callable[[str], bytes]) -> tuple[InternetComputer, Principal, bytes]:
    ic = InternetComputer(seed=11)
    app = ic.applications[0]
    cid = create_canister(ic, app)
    wasm = motoko("counter")
    install(ic, cid, wasm)
    return ic, cid, wasm


def read_state(
    ic: InternetComputer, paths: list[list[bytes | str]], ecid: Principal, identity: object = ALICE
) -> Certificate:
    content = read_state_content(principal_of(identity), paths, ic.time() + 60 * 10**9)  # type: ignore[arg-type]
    body = ic.read_state(envelope(content, identity), ecid)  # type: ignore[arg-type]
    cert = Certificate.from_cbor(cbor_decode(body)["certificate"])
    cert.verify(ic.root_key, ecid)
    return cert


def test_update_calls_return_certified_replies(
    counter_ic: tuple[InternetComputer, Principal, bytes],
) -> None:
    ic, cid, _ = counter_ic
    app = ic.applications[0]
    assert ic.subnet_of(cid) is app
    first = call(ic, cid, "inc", NO_ARGS)
    second = call(ic, cid, "inc", NO_ARGS)
    assert first.status == second.status == "replied"
    assert second.reply is not None and first.reply is not None
    assert decode(second.reply, [Nat]) == [decode(first.reply, [Nat])[0] + 1]
    cert = Certificate.from_cbor(second.certificate)
    cert.verify(ic.root_key, cid)  # through the NNS delegation of the app subnet
    assert cert.delegation is not None
    path: list[bytes | str] = ["request_status", second.request_id]
    assert cert.lookup_value([*path, "status"]) == b"replied"
    assert cert.lookup_value([*path, "reply"]) == second.reply
    assert identical_states(ic)


def test_query_runs_on_one_replica_and_is_signed(
    counter_ic: tuple[InternetComputer, Principal, bytes],
) -> None:
    ic, cid, _ = counter_ic
    count = decode(call(ic, cid, "inc", NO_ARGS).reply or b"", [Nat])[0]
    content = call_content(
        "query", principal_of(ALICE), cid, "get", NO_ARGS, ic.time() + 60 * 10**9
    )
    answer = cbor_decode(ic.query(envelope(content, ALICE), cid))
    assert answer["status"] == "replied"
    assert decode(answer["reply"]["arg"], [Nat]) == [count]
    (signature,) = answer["signatures"]
    app = ic.applications[0]
    node_path: list[bytes | str] = [
        "subnet",
        app.subnet_id.raw,
        "node",
        signature["identity"],
        "public_key",
    ]
    der = read_state(ic, [node_path], cid).lookup_value(node_path)
    signed = {
        "status": "replied",
        "reply": {"arg": answer["reply"]["arg"]},
        "timestamp": signature["timestamp"],
        "request_id": request_id(content),
    }
    Ed25519PublicKey.from_public_bytes(der[-32:]).verify(
        signature["signature"], b"\x0bic-response" + hash_of_map(signed)
    )
    # queries change nothing, and update methods are not served as queries
    roots = ic.state_hashes()
    for _ in range(3):
        ic.query(envelope(content, ALICE), cid)
    again = cbor_decode(ic.query(envelope(content, ALICE), cid))
    assert decode(again["reply"]["arg"], [Nat]) == [count]
    assert ic.state_hashes() == roots
    inc_as_query = call_content(
        "query", principal_of(ALICE), cid, "inc", NO_ARGS, ic.time() + 60 * 10**9
    )
    rejected = cbor_decode(ic.query(envelope(inc_as_query, ALICE), cid))
    assert rejected["status"] == "rejected" and rejected["error_code"].startswith("IC")
    assert ic.state_hashes() == roots


def test_read_state_request_status_and_canister_info(
    counter_ic: tuple[InternetComputer, Principal, bytes],
) -> None:
    ic, cid, wasm = counter_ic
    result = call(ic, cid, "inc", NO_ARGS)
    rid = result.request_id
    cert = read_state(ic, [["request_status", rid]], cid)
    assert cert.lookup_value(["request_status", rid, "reply"]) == result.reply
    with pytest.raises(ICError) as err:  # only the sender may read it
        read_state(ic, [["request_status", rid]], cid, identity=BOB)
    assert err.value.http_status == 403
    info = read_state(
        ic, [["canister", cid.raw, "module_hash"], ["canister", cid.raw, "controllers"]], cid
    )
    assert info.lookup_value(["canister", cid.raw, "module_hash"]) == hashlib.sha256(wasm).digest()
    controllers = cbor_decode(info.lookup_value(["canister", cid.raw, "controllers"]))
    assert principal_of(ALICE).raw in controllers


def test_a_trap_is_a_certified_reject_and_rolls_back(
    counter_ic: tuple[InternetComputer, Principal, bytes],
) -> None:
    ic, cid, _ = counter_ic
    before = decode(call(ic, cid, "inc", NO_ARGS).reply or b"", [Nat])[0]
    failed = call(ic, cid, "fail_after_inc", NO_ARGS)
    assert failed.status == "rejected" and failed.reject_code == 5
    assert failed.error_code == "IC0503"
    Certificate.from_cbor(failed.certificate).verify(ic.root_key, cid)
    after = decode(call(ic, cid, "inc", NO_ARGS).reply or b"", [Nat])[0]
    assert after == before + 1


def test_bad_ingress_is_refused_and_the_ic_keeps_running(
    counter_ic: tuple[InternetComputer, Principal, bytes],
) -> None:
    ic, cid, _ = counter_ic
    me = principal_of(ALICE)
    expired = call_content("call", me, cid, "inc", NO_ARGS, ic.time() - 600 * 10**9)
    future = call_content("call", me, cid, "inc", NO_ARGS, ic.time() + 3600 * 10**9)
    for content in (expired, future):
        with pytest.raises(ICError) as err:
            ic.submit_call(envelope(content, ALICE), cid)
        assert err.value.http_status == 400
    good = call_content("call", me, cid, "inc", NO_ARGS, ic.time() + 60 * 10**9)
    forged = dict(cbor_decode(envelope(good, ALICE)))
    forged["sender_sig"] = bytes(64)
    with pytest.raises(ICError):
        ic.submit_call(cbor_encode(forged), cid)
    oversized = call_content("call", me, cid, "inc", bytes(3 * 2**20), ic.time() + 60 * 10**9)
    with pytest.raises(ICError) as err:
        ic.submit_call(envelope(oversized, ALICE), cid)
    assert err.value.http_status == 413
    missing = ic.applications[0].ranges[0].end
    unknown = call_content("call", me, missing, "inc", NO_ARGS, ic.time() + 60 * 10**9)
    with pytest.raises(ICError) as err:
        ic.submit_call(envelope(unknown, ALICE), missing)
    assert err.value.reject_code == 3 and err.value.error_code == "IC0301"
    status_arg = encode([CanisterIdRecord], [{"canister_id": cid}])
    misrouted = call_content("call", me, MGMT, "canister_status", status_arg, ic.time() + 10**11)
    with pytest.raises(ICError) as err:  # the effective canister id must be the named one
        ic.submit_call(envelope(misrouted, ALICE), missing)
    assert err.value.http_status == 400
    assert call(ic, cid, "inc", NO_ARGS).status == "replied"


def test_cross_subnet_calls(motoko: Callable[[str], bytes]) -> None:
    ic = InternetComputer(
        [SubnetConfig(SubnetKind.NNS, 1), SubnetConfig(), SubnetConfig()], seed=12
    )
    subnet_a, subnet_b = ic.applications
    caller = create_canister(ic, subnet_a)
    counter = create_canister(ic, subnet_b)
    install(ic, caller, motoko("caller"))
    install(ic, counter, motoko("counter"))
    assert ic.subnet_of(caller) is subnet_a and ic.subnet_of(counter) is subnet_b
    target = encode([Text], [counter.to_text()])
    result = call(ic, caller, "call_inc", target)
    assert result.status == "replied", result
    assert decode(result.reply or b"", [Nat]) == [1]
    Certificate.from_cbor(result.certificate).verify(ic.root_key, caller)
    failing = call(ic, caller, "call_failing", target)
    assert decode(failing.reply or b"", [Text]) == ["rejected"]
    # the callee's trap rolled back only the callee: its count is still 1 (+1 below)
    assert decode(call(ic, counter, "inc", NO_ARGS).reply or b"", [Nat]) == [2]
    assert identical_states(ic)


def test_restart_keeps_replied_updates(motoko: Callable[[str], bytes], tmp_path: Path) -> None:
    consensus = attrs.evolve(DEFAULT_CONSENSUS, dkg_interval_length=2)  # checkpoints every 3
    ic = InternetComputer(seed=13, state_dir=tmp_path, consensus=consensus)
    app = ic.applications[0]
    cid = create_canister(ic, app)
    install(ic, cid, motoko("counter"))
    results = [call(ic, cid, "inc", NO_ARGS)]
    while app.certified_height() <= 7:  # cross a checkpoint
        results.append(call(ic, cid, "inc", NO_ARGS))
    height = app.certified_height()
    before = {h: app.replicas[0].state.root_hash(Height(h)) for h in range(height - 2, height + 1)}
    ic.close()
    again = InternetComputer(seed=13, state_dir=tmp_path, consensus=consensus)
    app2 = again.applications[0]
    assert list((tmp_path / "subnet-1" / "node-0" / "checkpoints").iterdir())
    # restarted from the newest checkpoint + CUP, the replayed chain re-executes to the
    # same states (heights below that CUP are not re-executed)
    assert {r.state.root_hash(Height(height)) for r in app2.replicas} == {before[height]}
    for h, root in before.items():
        held = {r.state.root_hash(Height(h)) for r in app2.replicas} - {None}
        assert held in (set(), {root}), h
    for result in results:  # every replied update is still replied, with the same reply
        status = again.request_status(result.request_id, cid)
        assert status is not None and status.reply == result.reply
    following = call(again, cid, "inc", NO_ARGS)
    assert decode(following.reply or b"", [Nat]) == [len(results) + 1]


def test_a_subnet_survives_a_crashed_node_which_then_catches_up(
    counter_ic: tuple[InternetComputer, Principal, bytes],
) -> None:
    ic, cid, _ = counter_ic
    app = ic.applications[0]
    ic.disconnect(app, 3)
    before = decode(call(ic, cid, "inc", NO_ARGS).reply or b"", [Nat])[0]
    after = decode(call(ic, cid, "inc", NO_ARGS).reply or b"", [Nat])[0]
    assert after == before + 1  # 3 of 4 nodes finalize, execute and certify
    ic.tick(21)  # the others pass a summary height: a CUP the lagging node must jump to
    lagging = app.replicas[3]
    assert lagging.state.latest_height < app.certified_height() - 20
    ic.reconnect(app, 3)
    ic.tick(2)
    height = app.certified_height()
    assert lagging.state_syncs == 1  # it fetched the CUP's checkpoint from a peer
    assert lagging.state.certified_height is not None and lagging.state.certified_height >= height
    assert len({r.state.root_hash(height) for r in app.replicas}) == 1
    assert decode(call(ic, cid, "inc", NO_ARGS).reply or b"", [Nat]) == [after + 1]

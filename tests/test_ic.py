"""InternetComputer: topology, certification, read_state, determinism, time, restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import wasmtime

from icp import Principal
from icp.crypto import bls
from icp.crypto.certificate import Certificate, decode_canister_ranges
from icp.crypto.errors import CertificateError
from icp.crypto.hashing import cbor_decode as _cbor_decode
from icp.crypto.hashing import cbor_encode
from icp.crypto.user_sig import Ed25519Identity, principal_of
from icp.ic import (
    APP_RANGE_START,
    DEFAULT_CONSENSUS,
    DEFAULT_GENESIS_TIME,
    ICError,
    InternetComputer,
    SubnetConfig,
    SubnetKind,
    subnet_id_of,
)
from icp.testing import envelope, read_state_content
from icp.types import Height

ANON = Principal.anonymous()
ALICE = Ed25519Identity.from_seed(b"\x01" * 32)


def cbor_decode(data: bytes) -> Any:
    """Decode CBOR (typed loosely for tests)."""
    return _cbor_decode(data)


@pytest.fixture(scope="module")
def ic() -> InternetComputer:
    ic = InternetComputer(seed=7)
    ic.tick(2)
    return ic


def read_state(
    ic: InternetComputer,
    paths: list[list[bytes | str]],
    ecid: Principal | None,
    *,
    identity: Ed25519Identity | None = None,
    subnet_id: Principal | None = None,
) -> Certificate:
    sender = principal_of(identity) if identity is not None else ANON
    body = envelope(read_state_content(sender, paths, ic.time() + 60 * 10**9), identity)
    answer = cbor_decode(ic.read_state(body, ecid, subnet_id=subnet_id))
    return Certificate.from_cbor(answer["certificate"])


def test_topology_keys_ids_and_ranges(ic: InternetComputer) -> None:
    nns, app = ic.nns, ic.applications[0]
    assert ic.root_key == nns.public_key_der
    assert bls.public_key_from_der(ic.root_key)  # a real 96-byte BLS key in DER
    assert nns.subnet_id == subnet_id_of(ic.root_key)
    assert app.subnet_id == subnet_id_of(app.public_key_der) != nns.subnet_id
    assert ic.subnet_of(Principal.from_canister_index(5)) is nns
    first_dfx = Principal.from_text("bkyz2-fmaaa-aaaaa-qaaaq-cai")
    assert ic.subnet_of(first_dfx) is app
    assert app.ranges[0].start == Principal.from_canister_index(APP_RANGE_START)
    with pytest.raises(ICError) as err:
        ic.subnet_of(Principal.from_canister_index(2**40))
    assert err.value.http_status == 400
    assert ic.status()["root_key"] == ic.root_key


def test_every_replica_certifies_the_same_root_hash(ic: InternetComputer) -> None:
    for subnet in ic.subnets:
        height = subnet.certified_height()
        assert height >= 2
        roots = {r.state.root_hash(Height(height)) for r in subnet.replicas}
        assert len(roots) == 1 and None not in roots
        _, certification = subnet.serving_replica().certified()
        assert certification.content.root_hash == roots.pop() or certification.height > height


def test_read_state_on_app_subnet_carries_a_delegation(ic: InternetComputer) -> None:
    app = ic.applications[0]
    ecid = app.ranges[0].start
    cert = read_state(ic, [["time"]], ecid)
    assert cert.delegation is not None
    assert cert.delegation.subnet_id == app.subnet_id.raw
    cert.verify(ic.root_key, ecid)
    assert cert.time() == ic.certified_time(app)
    # the delegation does not cover NNS canisters
    with pytest.raises(CertificateError):
        cert.verify(ic.root_key, Principal.from_canister_index(1))
    # a certificate under another root key does not verify
    other = InternetComputer(seed=8)
    with pytest.raises(CertificateError):
        cert.verify(other.root_key, ecid)


def test_read_state_on_nns_is_signed_by_the_root_key(ic: InternetComputer) -> None:
    nns = ic.nns
    cert = read_state(ic, [["subnet", nns.subnet_id.raw, "public_key"]], nns.ranges[0].start)
    assert cert.delegation is None
    cert.verify(ic.root_key, nns.ranges[0].start)
    assert cert.lookup_value(["subnet", nns.subnet_id.raw, "public_key"]) == ic.root_key
    path: list[bytes | str] = ["subnet", nns.subnet_id.raw, "canister_ranges"]
    subnet_cert = read_state(ic, [path], None, subnet_id=nns.subnet_id)
    ranges = decode_canister_ranges(subnet_cert.lookup_value(path))
    assert ranges == [(nns.ranges[0].start.raw, nns.ranges[0].end.raw)]


def test_node_keys_are_published_for_query_signature_checks(ic: InternetComputer) -> None:
    app = ic.applications[0]
    node = app.replicas[2]
    path: list[bytes | str] = ["subnet", app.subnet_id.raw, "node", node.node_id.raw, "public_key"]
    cert = read_state(ic, [path], app.ranges[0].start)
    der = cert.lookup_value(path)
    assert Principal.self_authenticating(der) == node.node_id


def test_read_state_permissions(ic: InternetComputer) -> None:
    app = ic.applications[0]
    ecid = app.ranges[0].start
    other = app.ranges[0].end
    # unknown request ids are readable (absence is provable)
    cert = read_state(ic, [["request_status", b"\x00" * 32]], ecid, identity=ALICE)
    cert.verify(ic.root_key, ecid)
    with pytest.raises(ICError) as err:
        read_state(ic, [["canister", other.raw, "module_hash"]], ecid)
    assert err.value.http_status == 403
    with pytest.raises(ICError) as err:
        read_state(ic, [["no_such_root"]], ecid)
    assert err.value.http_status == 404
    with pytest.raises(ICError) as err:
        read_state(ic, [["canister", ecid.raw, "certified_data"]], ecid)
    assert err.value.http_status == 403


def test_badly_signed_read_state_is_refused(ic: InternetComputer) -> None:
    ecid = ic.applications[0].ranges[0].start
    content = read_state_content(principal_of(ALICE), [["time"]], ic.time() + 10**9)
    env = dict(cbor_decode(envelope(content, ALICE)))
    env["sender_sig"] = bytes(64)
    with pytest.raises(ICError) as err:
        ic.read_state(cbor_encode(env), ecid)
    assert err.value.http_status == 400
    with pytest.raises(ICError):
        ic.read_state(b"\xa1junk", ecid)


def test_same_seed_same_states_and_certificates() -> None:
    runs = []
    for _ in range(2):
        ic = InternetComputer(seed=3)
        ic.tick(3)
        ecid = ic.applications[0].ranges[0].start
        body = envelope(read_state_content(ANON, [["time"]], ic.time() + 10**9))
        runs.append((ic.state_hashes(), ic.read_state(body, ecid), ic.time()))
    assert runs[0] == runs[1]
    other = InternetComputer(seed=4)
    other.tick(3)
    assert other.state_hashes() != runs[0][0]


def test_time_advances_by_hand_and_by_itself(ic: InternetComputer) -> None:
    app = ic.applications[0]
    before = ic.certified_time(app)
    ic.advance_time(3 * 10**9)
    ic.tick()
    assert ic.certified_time(app) > before + 2 * 10**9
    target = ic.time() + 3600 * 10**9
    ic.set_time(target)
    ic.tick()
    assert ic.certified_time(app) >= target
    with pytest.raises(ValueError):
        ic.set_time(target - 1)


def test_custom_topology_and_a_one_node_subnet() -> None:
    ic = InternetComputer(
        [SubnetConfig(SubnetKind.NNS, 1), SubnetConfig(SubnetKind.APPLICATION, 1)], seed=1
    )
    ic.tick(2)
    assert [s.certified_height() >= 2 for s in ic.subnets] == [True, True]
    with pytest.raises(ValueError):
        InternetComputer([SubnetConfig(SubnetKind.APPLICATION, 1)])


def test_restart_from_state_dir_gives_identical_hashes(tmp_path: Path) -> None:
    ic = InternetComputer(seed=5, state_dir=tmp_path, applications=1)
    ic.tick(26)  # past the checkpoint (and CUP) at height 20
    app = ic.applications[0]
    height = app.certified_height()
    before = {h: app.replicas[0].state.root_hash(Height(h)) for h in range(21, height + 1)}
    assert all(before.values())
    ic.close()
    restarted = InternetComputer(seed=5, state_dir=tmp_path, applications=1)
    app2 = restarted.applications[0]
    assert all(r.state.latest_height >= height for r in app2.replicas)  # chain replayed
    for h, root in before.items():
        assert {r.state.root_hash(Height(h)) for r in app2.replicas} == {root}, h
    restarted.tick()  # and consensus continues above the replayed chain
    assert app2.certified_height() > height


def test_thirteen_node_subnet_smoke() -> None:
    from icp.candid import decode, encode
    from icp.execution.management import (
        CanisterIdRecord,
        InstallCodeArgs,
        ProvisionalCreateArgs,
    )
    from icp.testing import call_content

    ic = InternetComputer(
        [SubnetConfig(SubnetKind.NNS, 1), SubnetConfig(SubnetKind.APPLICATION, 13)], seed=9
    )
    app = ic.applications[0]
    me = principal_of(ALICE)
    mgmt = Principal.management_canister()

    def call(canister: Principal, method: str, arg: bytes, ecid: Principal) -> Any:
        content = call_content("call", me, canister, method, arg, ic.time() + 100 * 10**9)
        return ic.call_and_wait(envelope(content, ALICE), ecid)

    create_arg = encode(
        [ProvisionalCreateArgs],
        [{"amount": None, "settings": None, "specified_id": None, "sender_canister_version": None}],
    )
    created = call(mgmt, "provisional_create_canister_with_cycles", create_arg, app.ranges[0].start)
    cid = decode(created.reply, [CanisterIdRecord])[0]["canister_id"]
    wasm = wasmtime.wat2wasm((Path(__file__).parent / "canisters/wat/counter.wat").read_text())
    install = {
        "mode": {"install": None},
        "canister_id": cid,
        "wasm_module": wasm,
        "arg": b"",
        "sender_canister_version": None,
    }
    assert call(mgmt, "install_code", encode([InstallCodeArgs], [install]), cid).status == "replied"
    result = call(cid, "inc", b"", cid)
    assert int.from_bytes(result.reply, "little") == 101
    Certificate.from_cbor(result.certificate).verify(ic.root_key, cid)
    height = app.certified_height()
    assert len({r.state.root_hash(height) for r in app.replicas}) == 1


def test_same_seed_same_certified_replies_with_canisters() -> None:
    from icp.candid import encode
    from icp.execution.management import InstallCodeArgs, ProvisionalCreateArgs
    from icp.testing import call_content

    wasm = wasmtime.wat2wasm((Path(__file__).parent / "canisters/wat/counter.wat").read_text())
    cid = Principal.from_canister_index(APP_RANGE_START)

    def scenario() -> tuple[list[bytes], dict[str, bytes]]:
        ic = InternetComputer(
            [SubnetConfig(SubnetKind.NNS, 1), SubnetConfig(SubnetKind.APPLICATION, 4)], seed=21
        )
        app = ic.applications[0]
        me = principal_of(ALICE)
        mgmt = Principal.management_canister()
        arg = {"amount": None, "settings": None, "specified_id": None}
        install = {"mode": {"install": None}, "canister_id": cid, "wasm_module": wasm, "arg": b""}
        calls = [
            (mgmt, "provisional_create_canister_with_cycles",
             encode([ProvisionalCreateArgs], [{**arg, "sender_canister_version": None}]),
             app.ranges[0].start),
            (mgmt, "install_code",
             encode([InstallCodeArgs], [{**install, "sender_canister_version": None}]), cid),
            (cid, "inc", b"", cid),
            (cid, "inc_then_trap", b"", cid),
        ]  # fmt: skip
        certificates = []
        for canister, method, payload, ecid in calls:
            content = call_content("call", me, canister, method, payload, ic.time() + 10**11)
            certificates.append(ic.call_and_wait(envelope(content, ALICE), ecid).certificate)
        return certificates, ic.state_hashes()

    first, second = scenario(), scenario()
    assert first == second
    assert all(first[1].values())


def test_time_follows_an_injected_clock() -> None:
    wall: list[int] = [DEFAULT_GENESIS_TIME]
    ic = InternetComputer(
        [SubnetConfig(SubnetKind.NNS, 1), SubnetConfig(SubnetKind.APPLICATION, 1)],
        seed=2,
        clock=lambda: wall[0],
    )
    ecid = ic.applications[0].ranges[0].start
    wall[0] += 5 * 10**9  # five seconds pass outside

    def certified_time() -> int:
        body = envelope(read_state_content(ANON, [["time"]], wall[0] + 10**9))
        return Certificate.from_cbor(cbor_decode(ic.read_state(body, ecid))["certificate"]).time()

    assert certified_time() >= DEFAULT_GENESIS_TIME + 4 * 10**9  # the IC ran meanwhile
    assert ic.time() == wall[0]


def test_nidkg_resharing_keeps_the_keys_that_certificates_verify_against() -> None:
    consensus = attrs.evolve(DEFAULT_CONSENSUS, dkg_interval_length=9)  # new keys every 10
    ic = InternetComputer(
        [SubnetConfig(SubnetKind.NNS, 1), SubnetConfig(SubnetKind.APPLICATION, 4)],
        seed=3,
        with_dkg=True,
        consensus=consensus,
    )
    root_key = ic.root_key
    ic.tick(22)
    app = ic.applications[0]
    dealt = {dkg for r in app.replicas for dkg in r.consensus.ctx.keys.shares}
    resharing = [d for d in dealt if d.start_height > 0 and d.tag.name == "HIGH"]
    assert resharing  # certification keys from NI-DKG resharing, not the genesis dealer
    high = app.replicas[0]._high_transcript(app.certified_height())
    assert high.dkg_id.start_height > 0  # the certified height was signed with them
    ecid = app.ranges[0].start
    cert = read_state(ic, [["time"]], ecid)
    cert.verify(root_key, ecid)
    assert cert.time() == ic.certified_time(app)
    assert len({r.state.root_hash(app.certified_height()) for r in app.replicas}) == 1

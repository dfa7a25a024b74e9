"""icp.testing.PocketIC: the pocket-ic package's typical usage, over the in-process IC."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from icp import Principal
from icp.build import compile_motoko
from icp.candid import decode, encode
from icp.candid.types import Nat
from icp.crypto.certificate import Certificate
from icp.crypto.user_sig import Ed25519Identity, principal_of
from icp.testing import PocketIC, SubnetConfig

COUNTER = Path(__file__).resolve().parent / "canisters" / "counter"
NO_ARGS = encode([], [])


@pytest.fixture(scope="module")
def counter_wasm() -> bytes:
    return compile_motoko(COUNTER)


def test_pocket_ic_counter_workflow(counter_wasm: bytes) -> None:
    pic = PocketIC()
    canister_id = pic.create_canister()
    assert pic.check_canister_exists(canister_id)
    subnet = pic.get_subnet(canister_id)
    assert subnet is not None and pic.topology[subnet] == "Application"
    before = pic.get_cycles_balance(canister_id)
    assert pic.add_cycles(canister_id, 1_000_000) == before + 1_000_000
    pic.install_code(canister_id, counter_wasm, NO_ARGS)
    assert decode(pic.update_call(canister_id, "inc", NO_ARGS), [Nat]) == [1]
    assert decode(pic.update_call(canister_id, "add", encode([Nat], [41])), [Nat]) == [42]
    assert decode(pic.query_call(canister_id, "get", NO_ARGS), [Nat]) == [42]
    with pytest.raises(ValueError, match="IC0503"):
        pic.update_call(canister_id, "fail_after_inc", NO_ARGS)
    assert decode(pic.query_call(canister_id, "get", NO_ARGS), [Nat]) == [42]
    # upgrades keep the persistent actor's state; reinstall wipes it
    pic.upgrade_canister(canister_id, counter_wasm, NO_ARGS)
    assert decode(pic.query_call(canister_id, "get", NO_ARGS), [Nat]) == [42]
    gzipped = gzip.compress(counter_wasm, mtime=0)
    pic.reinstall_code(canister_id, gzipped, NO_ARGS)
    assert decode(pic.query_call(canister_id, "get", NO_ARGS), [Nat]) == [0]
    status = pic.canister_status(canister_id)
    assert "running" in status["status"]
    assert status["module_hash"] == hashlib.sha256(gzipped).digest()
    assert not pic.check_canister_exists(Principal.from_canister_index(2**40))


def test_time_control_and_root_key() -> None:
    pic = PocketIC()
    start = pic.get_time()["nanos_since_epoch"]
    pic.advance_time(10 * 10**9)
    assert pic.get_time()["nanos_since_epoch"] >= start + 10 * 10**9
    pic.set_time(start + 3600 * 10**9)
    pic.tick()
    assert pic.get_time()["nanos_since_epoch"] >= start + 3600 * 10**9
    with pytest.raises(ValueError):
        pic.set_time(start)
    assert pic.get_root_key() == pic.ic.root_key
    app = next(s for s, kind in pic.topology.items() if kind == "Application")
    cert = pic.ic.certificate(pic.ic.subnet(app), [["time"]])
    Certificate.from_cbor(cert).verify(pic.get_root_key(), pic.ic.subnet(app).ranges[0].start)


def test_senders_controllers_and_subnets(counter_wasm: bytes) -> None:
    pic = PocketIC(SubnetConfig(application=2, nns=True))
    apps = [s for s, kind in pic.topology.items() if kind == "Application"]
    assert len(apps) == 2 and "NNS" in pic.topology.values()
    alice = Ed25519Identity.from_seed(b"\x42" * 32)
    pic.set_sender(alice)
    canister_id = pic.create_canister(subnet=apps[1])
    assert pic.get_subnet(canister_id) == apps[1]
    pic.install_code(canister_id, counter_wasm, NO_ARGS)
    pic.set_anonymous_sender()
    with pytest.raises(ValueError, match="IC0512"):  # only controllers may upgrade
        pic.upgrade_canister(canister_id, counter_wasm, NO_ARGS)
    assert decode(pic.update_call(canister_id, "inc", NO_ARGS), [Nat]) == [1]
    # As on the pocket-ic server, a test may act as a bare principal (no key needed):
    # alice's principal is a controller, so it may stop the canister without signing.
    pic.set_sender(principal_of(alice))
    assert decode(pic.update_call(canister_id, "inc", NO_ARGS), [Nat]) == [2]
    pic.stop_canister(canister_id)
    with pytest.raises(ValueError):
        pic.update_call(canister_id, "inc", NO_ARGS)
    pic.set_sender(Principal.from_text("2chl6-4hpzw-vqaaa-aaaaa-c"))  # not a controller
    with pytest.raises(ValueError, match="IC0512"):
        pic.start_canister(canister_id)
    pic.set_sender(alice)
    pic.start_canister(canister_id)
    assert decode(pic.update_call(canister_id, "inc", NO_ARGS), [Nat]) == [3]
    del pic  # releases the instance at once


def test_subnet_config_is_validated() -> None:
    with pytest.raises(ValueError, match="At least one subnet"):
        PocketIC(SubnetConfig())
    with pytest.raises(ValueError):
        PocketIC(SubnetConfig(application=-1))


def test_state_dir_survives_del_and_restart(counter_wasm: bytes, tmp_path: Path) -> None:
    pic = PocketIC(state_dir=tmp_path)
    canister_id = pic.create_canister()
    pic.install_code(canister_id, counter_wasm, NO_ARGS)
    pic.update_call(canister_id, "add", encode([Nat], [7]))
    del pic
    again = PocketIC(state_dir=tmp_path)
    assert again.check_canister_exists(canister_id)
    assert decode(again.query_call(canister_id, "get", NO_ARGS), [Nat]) == [7]
    assert decode(again.update_call(canister_id, "inc", NO_ARGS), [Nat]) == [8]


def test_submit_and_await_calls(counter_wasm: bytes) -> None:
    pic = PocketIC()
    canister_id = pic.create_canister()
    pic.install_code(canister_id, counter_wasm, NO_ARGS)
    first = pic.submit_call(canister_id, "inc", NO_ARGS)
    second = pic.submit_call(canister_id, "inc", NO_ARGS)
    assert first != second  # distinct nonces: two calls, not a resubmission
    assert pic.ingress_status(first) is None  # nothing ran yet
    replies = sorted(decode(pic.await_call(rid), [Nat])[0] for rid in (first, second))
    assert replies == [1, 2]
    assert pic.ingress_status(first) == "replied"
    with pytest.raises(ValueError):
        pic.await_call(b"\x00" * 32)

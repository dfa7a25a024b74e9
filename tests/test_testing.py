"""icp.testing.PocketIC: the pocket-ic package's usage and conventions, over the in-process IC.

pocket-ic's own suite and examples run unchanged in tests/testing/pocketic_py.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

import ic
import pytest
import wasmtime

from icp import Principal
from icp.build import compile_motoko
from icp.candid import decode, encode
from icp.candid.types import Nat
from icp.crypto.certificate import Certificate
from icp.crypto.user_sig import Ed25519Identity, principal_of
from icp.ic import SubnetKind as ICSubnetKind
from icp.messaging.routing import CanisterIdRange
from icp.nns.registry import RoutingTableEntry
from icp.testing import (
    TOPOLOGY_FILE,
    PocketIC,
    PocketICServer,
    RejectError,
    ServerError,
    SubnetConfig,
    SubnetKind,
    TimeIntoPastError,
    error_code_name,
    free_block_range,
)

COUNTER = Path(__file__).resolve().parent / "canisters" / "counter"
NO_ARGS = encode([], [])
STABLE_WAT = """
(module
  (import "ic0" "msg_arg_data_size" (func $size (result i32)))
  (import "ic0" "msg_arg_data_copy" (func $copy (param i32 i32 i32)))
  (import "ic0" "stable_grow" (func $grow (param i32) (result i32)))
  (import "ic0" "stable_write" (func $write (param i32 i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (memory 1)
  (func (export "canister_update put")
    (call $copy (i32.const 0) (i32.const 0) (call $size))
    (if (i32.eqz (call $grow (i32.const 0))) (then (drop (call $grow (i32.const 1)))))
    (call $write (i32.const 0) (i32.const 0) (call $size))
    (call $reply)))
"""


@pytest.fixture(scope="module")
def counter_wasm() -> bytes:
    return compile_motoko(COUNTER)


def test_pocket_ic_counter_workflow(counter_wasm: bytes) -> None:
    pic = PocketIC()
    canister_id = pic.create_canister()
    assert isinstance(canister_id, ic.Principal)  # ic-py is installed: pocket-ic's types
    assert pic.check_canister_exists(canister_id)
    subnet = pic.get_subnet(canister_id)
    assert subnet is not None and pic.topology()[subnet] is SubnetKind.APPLICATION
    assert pic.topology[subnet] == "Application"  # the older attribute form still works
    before = pic.get_cycles_balance(canister_id)
    assert pic.add_cycles(canister_id, 1_000_000) == before + 1_000_000
    pic.install_code(canister_id, counter_wasm, [])
    assert decode(pic.update_call(canister_id, "inc", NO_ARGS), [Nat]) == [1]
    assert decode(pic.update_call(canister_id, "add", encode([Nat], [41])), [Nat]) == [42]
    assert decode(pic.query_call(canister_id, "get", NO_ARGS), [Nat]) == [42]
    with pytest.raises(ValueError, match=r"CanisterCalledTrap \(IC0503\)") as trap:
        pic.update_call(canister_id, "fail_after_inc", NO_ARGS)
    assert isinstance(trap.value, RejectError) and trap.value.reject_code == 5
    assert "reject code CanisterError" in str(trap.value)
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


def test_uninstall_stop_delete(counter_wasm: bytes) -> None:
    pic = PocketIC()
    canister_id = pic.create_canister()
    pic.install_code(canister_id, counter_wasm, NO_ARGS)
    pic.update_call(canister_id, "inc", NO_ARGS)
    pic.uninstall_canister(canister_id)
    assert pic.canister_status(canister_id)["module_hash"] is None
    with pytest.raises(RejectError, match=r"CanisterWasmModuleNotFound \(IC0537\)"):
        pic.query_call(canister_id, "get", NO_ARGS)
    with pytest.raises(RejectError, match=r"CanisterNotStopped \(IC0510\)"):
        pic.delete_canister(canister_id)
    pic.stop_canister(canister_id)
    assert "stopped" in pic.canister_status(canister_id)["status"]
    pic.delete_canister(canister_id)
    assert not pic.check_canister_exists(canister_id)
    with pytest.raises(RejectError, match=r"CanisterNotFound \(IC0301\)"):
        pic.update_call(canister_id, "inc", NO_ARGS)


def test_time_control_and_root_key() -> None:
    pic = PocketIC(SubnetConfig(nns=True, application=1))
    start = pic.get_time()["nanos_since_epoch"]
    pic.advance_time(10 * 10**9)
    assert pic.get_time() == {"nanos_since_epoch": start + 10 * 10**9}  # exactly, as pocket-ic
    later = start + 3600 * 10**9
    pic.set_time(later)
    assert pic.get_time() == {"nanos_since_epoch": later}
    pic.tick()  # the IC runs up to the time set: every subnet certifies a state that late
    assert all(pic.ic.certified_time(s) >= later for s in pic.ic.subnets)
    with pytest.raises(ConnectionError, match="SettingTimeIntoPast") as past:
        pic.set_time(start)
    assert isinstance(past.value, TimeIntoPastError) and isinstance(past.value, ValueError)
    assert past.value.requested == start
    assert pic.get_root_key() == pic.ic.root_key
    app = next(s for s, kind in pic.topology().items() if kind is SubnetKind.APPLICATION)
    cert = pic.ic.certificate(pic.ic.subnet(app), [["time"]])
    Certificate.from_cbor(cert).verify(pic.get_root_key(), pic.ic.subnet(app).ranges[0].start)


def test_nns_is_hidden_unless_configured(tmp_path: Path) -> None:
    pic = PocketIC(state_dir=tmp_path)
    assert list(pic.topology().values()) == [SubnetKind.APPLICATION]
    assert pic.get_root_key() is None  # as pocket-ic without an NNS subnet
    # the NNS still runs (its key certifies everything), but its ids belong to no subnet
    nns_canister = Principal.from_canister_index(0)
    assert pic.ic.subnet_of(nns_canister).subnet_id == pic.ic.nns.subnet_id
    with pytest.raises(ConnectionError, match="does not belong to any subnet") as refused:
        pic.query_call(nns_canister, "foo", b"")
    assert isinstance(refused.value, ServerError) and refused.value.status_code == 400
    assert pic.get_subnet(nns_canister) is None
    # ... until a canister is created with an id in its range: pocket-ic then creates
    # the NNS subnet; here it becomes visible, for good
    assert pic.create_canister(canister_id=nns_canister) == nns_canister
    assert pic.get_subnet(nns_canister) == pic.ic.nns.subnet_id
    assert pic.topology()[pic.get_subnet(nns_canister)] is SubnetKind.NNS
    assert pic.get_root_key() == pic.ic.root_key
    del pic
    again = PocketIC(SubnetConfig(state_dir=tmp_path))
    assert sorted(again.topology().values()) == [SubnetKind.APPLICATION, SubnetKind.NNS]
    assert again.check_canister_exists(nns_canister)


def test_senders_controllers_and_subnets(counter_wasm: bytes) -> None:
    pic = PocketIC(SubnetConfig(application=2, nns=True))
    apps = [s for s, kind in pic.topology().items() if kind == SubnetKind.APPLICATION]
    assert len(apps) == 2 and SubnetKind.NNS in pic.topology().values()
    alice = Ed25519Identity.from_seed(b"\x42" * 32)
    pic.set_sender(alice)
    canister_id = pic.create_canister(subnet=apps[1])
    assert pic.get_subnet(canister_id) == apps[1]
    pic.install_code(canister_id, counter_wasm, NO_ARGS)
    pic.set_anonymous_sender()
    with pytest.raises(ValueError, match=r"CanisterInvalidController \(IC0512\)"):
        pic.upgrade_canister(canister_id, counter_wasm, NO_ARGS)
    assert decode(pic.update_call(canister_id, "inc", NO_ARGS), [Nat]) == [1]
    # As on the pocket-ic server, a test may act as a bare principal (no key needed):
    # alice's principal is a controller, so it may stop the canister without signing.
    pic.set_sender(ic.Principal(principal_of(alice).raw))
    assert decode(pic.update_call(canister_id, "inc", NO_ARGS), [Nat]) == [2]
    pic.stop_canister(canister_id)
    with pytest.raises(RejectError, match=r"CanisterStopped \(IC0508\)"):
        pic.update_call(canister_id, "inc", NO_ARGS)
    pic.set_sender(ic.Identity())  # an ic-py identity sends as its principal
    with pytest.raises(ValueError, match="IC0512"):
        pic.start_canister(canister_id)
    pic.set_sender(alice)
    pic.start_canister(canister_id)
    assert decode(pic.update_call(canister_id, "inc", NO_ARGS), [Nat]) == [3]


def test_settings_in_icpy_and_plain_conventions() -> None:
    pic = PocketIC()
    alice, bob = Principal.from_text("2chl6-4hpzw-vqaaa-aaaaa-c"), Principal.from_hex("0102")
    a = pic.create_canister(settings={"controllers": [[alice.to_text(), bob.raw]]})
    b = pic.create_canister(settings={"controllers": [alice], "freezing_threshold": 1234})
    pic.set_sender(alice)
    assert set(pic.canister_status(a)["settings"]["controllers"]) == {alice, bob}
    status = pic.canister_status(b)["settings"]
    assert status["controllers"] == [alice] and status["freezing_threshold"] == 1234
    # the Rust PocketIC's settings helpers
    pic.update_canister_settings(b, {"freezing_threshold": [99]})
    assert pic.canister_status(b)["settings"]["freezing_threshold"] == 99
    pic.set_controllers(b, [bob])
    pic.set_anonymous_sender()
    assert pic.get_controllers(b) == [bob]  # read from the state: needs no controller
    pic.set_sender(alice)
    with pytest.raises(RejectError, match=r"CanisterInvalidController \(IC0512\)"):
        pic.set_controllers(b, [alice])


def test_without_icpy(counter_wasm: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ic", None)  # as if ic-py were not installed
    pic = PocketIC()
    assert pic.icpy is False
    canister_id = pic.create_canister()
    assert isinstance(canister_id, Principal)
    assert isinstance(next(iter(pic.topology())), Principal)
    with pytest.raises(TypeError, match="need ic-py"):
        pic.install_code(canister_id, counter_wasm, [{"type": "nat", "value": 1}])
    pic.install_code(canister_id, counter_wasm, [])
    other = pic.create_and_install_canister_with_candid("service : {}", counter_wasm)
    assert isinstance(other, Principal)
    assert decode(pic.update_call(other, "inc", NO_ARGS), [Nat]) == [1]


def test_replies_are_bytes_for_candid_else_lists() -> None:
    wat = Path(__file__).resolve().parent / "canisters" / "wat" / "counter.wat"
    pic = PocketIC()
    canister_id = pic.create_canister()
    pic.install_code(canister_id, wasmtime.wat2wasm(wat.read_text()), b"")
    assert pic.update_call(canister_id, "inc", b"") == list((101).to_bytes(8, "little"))
    assert pic.query_call(canister_id, "get", b"") == list((101).to_bytes(8, "little"))
    with pytest.raises(RejectError, match=r"CanisterMethodNotFound \(IC0536\)"):
        pic.query_call(canister_id, "nope", b"")


def test_error_names() -> None:
    assert error_code_name("IC0503") == "CanisterCalledTrap"
    assert error_code_name("IC0538") == "CanisterAlreadyInstalled"
    assert error_code_name("") == "None"
    assert str(RejectError(4, "no", "IC0406")).endswith(
        "reject code CanisterReject, reject message no, error code CanisterRejectedMessage (IC0406)"
    )


def test_subnet_config_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="At least one subnet or a non-empty state directory"):
        PocketIC(SubnetConfig())
    with pytest.raises(ValueError, match="non-negative"):
        PocketIC(SubnetConfig(application=-1))
    (tmp_path / "junk").write_text("x")
    with pytest.raises(ValueError, match="neither empty nor a PocketIC state directory"):
        PocketIC(SubnetConfig(state_dir=tmp_path))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / TOPOLOGY_FILE).write_text("{}")
    with pytest.raises(ValueError, match="does not describe a PocketIC instance"):
        PocketIC(SubnetConfig(state_dir=bad))


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
    with pytest.raises(ValueError, match="holds an instance with subnets"):
        PocketIC(SubnetConfig(nns=True, state_dir=tmp_path))


def test_time_set_last_survives_restart(tmp_path: Path) -> None:
    pic = PocketIC(state_dir=tmp_path)
    later = pic.get_time()["nanos_since_epoch"] + 3600 * 10**9
    pic.set_time(later)
    del pic  # applies the pinned time first: it is part of the state kept on disk
    again = PocketIC(state_dir=tmp_path)
    assert again.get_time()["nanos_since_epoch"] >= later
    assert all(again.ic.certified_time(s) >= later for s in again.ic.subnets)


def test_store_restore_state_and_load_one_subnet(tmp_path: Path) -> None:
    """pocket-ic's test_store_restore_state, with a canister writing its stable memory."""
    wasm = wasmtime.wat2wasm(STABLE_WAT)
    pic = PocketIC(SubnetConfig(application=1, nns=True, state_dir=tmp_path))
    app = next(k for k, v in pic.topology().items() if v is SubnetKind.APPLICATION)
    nns = next(k for k, v in pic.topology().items() if v is SubnetKind.NNS)
    canister_id = pic.create_canister(subnet=app)
    nns_canister = pic.create_canister(subnet=nns)
    pic.install_code(canister_id, gzip.compress(wasm), [])
    pic.update_call(canister_id, "put", b"Hello world!")
    stable = pic.get_stable_memory(canister_id)
    assert stable.startswith(b"Hello world!") and len(stable) == 65536
    del pic

    pic2 = PocketIC(SubnetConfig(state_dir=tmp_path))
    assert pic2.get_stable_memory(canister_id) == stable
    assert len(pic2.topology()) == 2 and pic2.get_root_key() is not None
    pic2.update_call(canister_id, "put", b"Bye")
    del pic2

    dirs = json.loads((tmp_path / TOPOLOGY_FILE).read_text())["subnet_configs"].items()
    key = next(k for k, v in dirs if v["subnet_config"]["subnet_kind"] == "Application")
    config3 = SubnetConfig()
    config3.add_subnet_with_state(SubnetKind.APPLICATION, tmp_path / key)
    pic3 = PocketIC(config3)
    assert pic3.get_stable_memory(canister_id)[:12] == b"Byelo world!"
    assert list(pic3.topology().values()) == [SubnetKind.APPLICATION]
    assert pic3.get_root_key() is None and not pic3.check_canister_exists(nns_canister)
    wrong = SubnetConfig()
    wrong.add_subnet_with_state(SubnetKind.SYSTEM, tmp_path / key)
    with pytest.raises(ValueError, match="is not a System subnet"):
        PocketIC(wrong)


def test_del_releases_the_instance_at_once() -> None:
    server = PocketICServer()
    pic = PocketIC(server=server)
    other = PocketIC(server=server)
    the_ic = pic.ic
    assert server.list_instances() == ["Available", "Available"]
    del pic
    assert server.list_instances() == ["Deleted", "Available"]
    assert all(not subnet.replicas for subnet in the_ic.subnets)
    other.close()
    assert server.list_instances() == ["Deleted", "Deleted"]
    with PocketIC(server=server) as third:
        assert server.list_instances()[2] == "Available"
        assert third.check_canister_exists(third.create_canister())
    assert server.list_instances() == ["Deleted"] * 3


def test_set_stable_memory(tmp_path: Path) -> None:
    pic = PocketIC(state_dir=tmp_path)
    canister_id = pic.create_canister()
    pic.install_code(canister_id, wasmtime.wat2wasm(STABLE_WAT), [])
    with pytest.raises(ValueError, match="gzip"):
        pic.set_stable_memory(canister_id, b"x", compression="zstd")
    pic.set_stable_memory(canister_id, gzip.compress(b"compressed data"), compression="gzip")
    stable = pic.get_stable_memory(canister_id)
    assert stable == b"compressed data" + bytes(65536 - 15)  # whole 64 KiB pages
    data = bytes(range(256)) * 300  # 76,800 bytes: two pages
    pic.set_stable_memory(canister_id, data)
    assert pic.get_stable_memory(canister_id) == data + bytes(2 * 65536 - len(data))
    # the canister sees it, and keeps writing over it
    pic.update_call(canister_id, "put", b"ABC")
    assert pic.get_stable_memory(canister_id)[:4] == b"ABC\x03"
    # the change survives a restart
    del pic
    again = PocketIC(SubnetConfig(state_dir=tmp_path))
    assert again.get_stable_memory(canister_id)[:4] == b"ABC\x03"
    empty = again.create_canister()
    with pytest.raises(ServerError, match="CanisterIsEmpty"):
        again.set_stable_memory(empty, b"data")


def test_submit_and_await_calls(counter_wasm: bytes) -> None:
    pic = PocketIC()
    canister_id = pic.create_canister()
    pic.install_code(canister_id, counter_wasm, NO_ARGS)
    first = pic.submit_call(canister_id, "inc", NO_ARGS)
    second = pic.submit_call(canister_id, "inc", NO_ARGS)
    assert first != second  # distinct nonces: two calls, not a resubmission
    assert pic.ingress_status(first) is None  # nothing ran yet
    replies = sorted(decode(bytes(pic.await_call(rid)), [Nat])[0] for rid in (first, second))
    assert replies == [1, 2]
    assert pic.ingress_status(first) == "replied"
    failing = pic.submit_call(canister_id, "fail_after_inc", NO_ARGS)
    with pytest.raises(RejectError, match="IC0503"):
        pic.await_call(failing)
    assert pic.ingress_status(failing) == "rejected"
    with pytest.raises(ValueError, match="not submitted here"):
        pic.await_call(b"\x00" * 32)


def test_hello_world_template_with_icpy_canister() -> None:
    """The integration test of dfinity/icp-hello-world-motoko, and HOWTO.md's top-up."""
    hello = Path(__file__).resolve().parent / "testing" / "hello"
    candid = "service : { greet : (text) -> (text) query }"
    pic = PocketIC()
    canister = pic.create_and_install_canister_with_candid(candid, compile_motoko(hello))
    assert isinstance(canister, ic.Canister)
    assert canister.greet("ICP") == ["Hello, ICP!"]
    before = pic.get_cycles_balance(canister.canister_id)
    assert pic.add_cycles(canister.canister_id, 10**21) == before + 10**21


WAT_COUNTER = Path(__file__).resolve().parent / "canisters" / "wat" / "counter.wat"


def _u64(value: int) -> list[int]:
    return list(value.to_bytes(8, "little"))


def test_an_unhosted_id_gets_its_own_subnet(tmp_path: Path) -> None:
    """pocket-ic's create_canister with an id no subnet hosts: a subnet is created for it."""
    pic = PocketIC(state_dir=tmp_path)
    (default,) = pic.topology()
    wanted = Principal.from_text("zzztf-6qaaa-aaaah-qfsaa-cai")  # canister index 15 * 2**20 + ...
    assert pic.get_subnet(wanted) is None
    created = pic.create_canister(canister_id=wanted)
    assert created == wanted and isinstance(created, ic.Principal)
    topology = pic.topology()
    assert len(topology) == 2 and default in topology
    subnet = pic.get_subnet(wanted)
    assert subnet is not None and subnet != default
    assert isinstance(subnet, ic.Principal) and topology[subnet] is SubnetKind.APPLICATION
    # a real subnet of the IC, with the id's block of 2**20 ids, one node as the others
    added = pic.ic.subnet(Principal(subnet.bytes))
    assert added.ranges == (CanisterIdRange.from_indices(15 * 2**20, 16 * 2**20 - 1),)
    assert added.kind is ICSubnetKind.APPLICATION and added.n == 1
    assert pic.ic.registry.latest_version == 2
    # the canister works there
    pic.install_code(wanted, wasmtime.wat2wasm(WAT_COUNTER.read_text()), b"")
    assert pic.update_call(wanted, "inc", b"") == _u64(101)
    assert pic.query_call(wanted, "get", b"") == _u64(101)
    # creating without an id still uses the default subnet; an id in the new block
    # lands on the new subnet, without another one
    assert pic.get_subnet(pic.create_canister()) == default
    neighbour = Principal.from_canister_index(15 * 2**20 + 5)
    assert pic.create_canister(canister_id=neighbour) == neighbour
    assert pic.get_subnet(neighbour) == subnet and len(pic.topology()) == 2
    # an id in mainnet's Bitcoin range gets a Bitcoin subnet (a system subnet here)
    bitcoin_id = Principal.from_text("g3wsl-eqaaa-aaaan-aaaaa-cai")
    pic.create_canister(canister_id=bitcoin_id)
    bitcoin = pic.get_subnet(bitcoin_id)
    assert pic.topology()[bitcoin] is SubnetKind.BITCOIN
    assert pic.ic.subnet(Principal(bitcoin.bytes)).kind is ICSubnetKind.SYSTEM
    recorded = json.loads((tmp_path / TOPOLOGY_FILE).read_text())["subnet_configs"]
    assert [c["added"] for c in recorded.values()] == [False, False, True, True]
    assert [c["subnet_config"]["subnet_kind"] for c in recorded.values()][2:] == [
        "Application",
        "Bitcoin",
    ]
    topology = pic.topology()
    del pic

    again = PocketIC(state_dir=tmp_path)
    assert again.topology() == topology
    assert again.get_subnet(wanted) == subnet and again.get_subnet(neighbour) == subnet
    assert again.query_call(wanted, "get", b"") == _u64(101)
    assert again.update_call(wanted, "inc", b"") == _u64(102)
    assert again.get_subnet(again.create_canister()) == default
    del again

    # one of them loaded alone (add_subnet_with_state), as pocket-ic allows
    alone = SubnetConfig()
    alone.add_subnet_with_state(SubnetKind.APPLICATION, tmp_path / "subnet-2")
    pic3 = PocketIC(alone)
    assert list(pic3.topology()) == [subnet]
    assert pic3.query_call(wanted, "get", b"") == _u64(102)
    assert not pic3.check_canister_exists(bitcoin_id)
    del pic3

    # a subnet the registry has but topology.json does not (stopped in between): its
    # kind is read back from the IC
    data = json.loads((tmp_path / TOPOLOGY_FILE).read_text())
    del data["subnet_configs"]["subnet-3"]
    (tmp_path / TOPOLOGY_FILE).write_text(json.dumps(data))
    pic4 = PocketIC(state_dir=tmp_path)
    assert pic4.topology()[bitcoin] is SubnetKind.SYSTEM
    assert pic4.check_canister_exists(bitcoin_id)
    assert len(json.loads((tmp_path / TOPOLOGY_FILE).read_text())["subnet_configs"]) == 4


def test_ids_that_get_no_subnet_are_refused_as_pocket_ic_does() -> None:
    pic = PocketIC()
    topology = pic.topology()
    refused = {
        Principal.anonymous(): "should consist of 10 bytes",
        Principal.from_canister_index(1024 * 2**20): "it is not a mainnet canister ID",
        Principal((5 * 2**20).to_bytes(8, "big") + b"\x02\x01"): "not a mainnet canister ID",
        Principal.from_text("uc7f6-kaaaa-aaaaq-qaaaa-cai"): "belongs to the NNS or II subnet",
    }
    for canister_id, message in refused.items():
        with pytest.raises(ServerError, match=message) as error:
            pic.create_canister(canister_id=canister_id)
        assert error.value.status_code == 400
    assert pic.topology() == topology and pic.ic.registry.latest_version == 1


def test_free_block_range_is_the_free_part_of_the_ids_block() -> None:
    def entry(first: int, last: int) -> RoutingTableEntry:
        return RoutingTableEntry(
            Principal.from_canister_index(first),
            Principal.from_canister_index(last),
            Principal.from_hex("aa"),
        )

    block = 7 * 2**20
    cid = Principal.from_canister_index(block + 500)
    assert free_block_range(cid, []) == CanisterIdRange.from_indices(block, block + 2**20 - 1)
    taken = [entry(0, block + 99), entry(block + 200, block + 299), entry(block + 900, 2**40)]
    assert free_block_range(cid, taken) == CanisterIdRange.from_indices(block + 300, block + 899)
    with pytest.raises(ValueError, match="in a subnet's range already"):
        free_block_range(cid, [entry(block + 500, block + 500)])

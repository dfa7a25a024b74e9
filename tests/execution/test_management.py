"""Management canister: lifecycle, controllers, status, cycles, raw_rand."""

from __future__ import annotations

from icp import Principal
from icp.candid import Record, decode, encode
from icp.execution.management import (
    CanisterIdRecord,
    CanisterStatusResult,
    TopUpArgs,
    UpdateSettingsArgs,
)
from icp.execution.system_api import Reject, Reply


def _id(cid: bytes) -> bytes:
    return encode([CanisterIdRecord], [{"canister_id": Principal.from_bytes(cid)}])


def test_status_settings_and_controllers(harness, wat_counter: bytes) -> None:  # type: ignore[no-untyped-def]
    cid = harness.deploy(wat_counter)
    r = harness.router
    st = decode(
        r.update(harness.user, b"", "canister_status", _id(cid)).data, [CanisterStatusResult]
    )[0]
    assert st["status"] == {"running": None}
    assert st["settings"]["controllers"] == [Principal.from_bytes(harness.user)]
    assert st["module_hash"] is not None and len(st["module_hash"]) == 32
    stranger = Principal.from_canister_index(999).bytes
    rej = r.update(stranger, b"", "canister_status", _id(cid))
    assert isinstance(rej, Reject) and rej.error_code == "IC0512"
    upd = encode(
        [UpdateSettingsArgs],
        [{"canister_id": Principal.from_bytes(cid),
          "settings": {"freezing_threshold": 42, "controllers": None,
          "compute_allocation": None, "memory_allocation": None, "reserved_cycles_limit": None,
          "wasm_memory_limit": None, "log_visibility": None}, "sender_canister_version": None}],
    )  # fmt: skip
    assert isinstance(r.update(harness.user, b"", "update_settings", upd), Reply)
    assert r.canister(cid).settings.freezing_threshold == 42


def test_stop_start_delete_and_top_up(harness, wat_counter: bytes) -> None:  # type: ignore[no-untyped-def]
    cid = harness.deploy(wat_counter)
    r = harness.router
    assert isinstance(r.update(harness.user, b"", "stop_canister", _id(cid)), Reply)
    rej = harness.update(cid, "inc")
    assert isinstance(rej, Reject) and rej.error_code == "IC0508"
    assert isinstance(r.update(harness.user, b"", "start_canister", _id(cid)), Reply)
    assert isinstance(harness.update(cid, "inc"), Reply)
    before = r.canister(cid).cycles
    top = encode([TopUpArgs], [{"canister_id": Principal.from_bytes(cid), "amount": 1234}])
    assert isinstance(r.update(harness.user, b"", "provisional_top_up_canister", top), Reply)
    assert r.canister(cid).cycles == before + 1234
    rej = r.update(harness.user, b"", "delete_canister", _id(cid))
    assert isinstance(rej, Reject) and rej.error_code == "IC0510"
    r.update(harness.user, b"", "stop_canister", _id(cid))
    assert isinstance(r.update(harness.user, b"", "delete_canister", _id(cid)), Reply)
    gone = harness.update(cid, "inc")
    assert isinstance(gone, Reject) and gone.code == 3


def test_uninstall_and_install_mode_rules(harness, wat_counter: bytes) -> None:  # type: ignore[no-untyped-def]
    cid = harness.deploy(wat_counter)
    again = harness.install(cid, wat_counter)
    assert isinstance(again, Reject) and again.error_code == "IC0514"
    assert isinstance(harness.router.update(harness.user, b"", "uninstall_code", _id(cid)), Reply)
    empty = harness.update(cid, "inc")
    assert isinstance(empty, Reject) and empty.error_code == "IC0537"
    bad = harness.router.update(harness.user, b"", "install_code", b"DIDL garbage")
    assert isinstance(bad, Reject) and bad.error_code == "IC0408"
    unknown = harness.router.update(harness.user, b"", "no_such_method", encode([], []))
    assert isinstance(unknown, Reject) and unknown.error_code == "IC0407"


def test_create_canister_and_raw_rand_are_canister_only(harness) -> None:  # type: ignore[no-untyped-def]
    r = harness.router
    rej = r.update(harness.user, b"", "create_canister", encode([Record({})], [{}]))
    assert isinstance(rej, Reject)
    rej = r.update(harness.user, b"", "raw_rand", encode([], []))
    assert isinstance(rej, Reject)


def test_stop_waits_for_open_call_contexts(harness, motoko) -> None:  # type: ignore[no-untyped-def]
    from icp.candid import Text
    from icp.execution.canister import CanisterStatus

    r = harness.router
    counter = harness.deploy(motoko("counter"))
    caller = harness.deploy(motoko("caller"))
    target = encode([Text], [Principal.from_bytes(counter).to_text()])
    call = r.submit(harness.user, caller, "call_inc", target)
    stop = r.submit(harness.user, b"", "stop_canister", _id(caller))
    r.step()  # caller runs call_inc and waits for the counter
    r.step()  # stop_canister: the caller is now stopping, the stop call waits
    assert r.canister(caller).status is CanisterStatus.STOPPING
    assert stop not in r.results
    late = r.submit(harness.user, caller, "get_calls", encode([], []))
    r.run()
    assert isinstance(r.results[call], Reply)  # the open call context completed
    assert r.results[stop] == Reply(encode([], []))
    assert isinstance(r.results[late], Reject) and r.results[late].error_code == "IC0509"
    assert r.canister(caller).status is CanisterStatus.STOPPED


def test_idle_storage_charges_and_deallocation(harness, wat_counter: bytes) -> None:  # type: ignore[no-untyped-def]
    import attrs

    r = harness.router
    cid = harness.deploy(wat_counter, cycles=50_000_000_000)
    st = r.canister(cid)
    # reserve 1 GiB: 127_000 cycles per second on a 13-node subnet
    r.put(
        attrs.evolve(
            st, settings=attrs.evolve(st.settings, memory_allocation=1 << 30, freezing_threshold=0)
        )
    )
    b0 = r.canister(cid).cycles
    r.advance_time(10 * 10**9)
    r.tick()
    assert b0 - r.canister(cid).cycles == 1_270_000
    r.put(attrs.evolve(r.canister(cid), cycles=1_000_000))
    r.advance_time(10 * 10**9)
    r.tick()
    gone = r.canister(cid)
    assert gone.cycles == 0 and gone.runtime is None  # deallocated, id and settings kept
    assert gone.settings.controllers == (harness.user,)


def test_a_specified_id_that_exists_is_rejected_as_already_installed(harness) -> None:  # type: ignore[no-untyped-def]
    """Spec: dfinity/ic ``CanisterManagerError::CanisterAlreadyExists`` -> IC0538 (reject 5)."""
    from icp.execution.management import ProvisionalCreateArgs

    cid = harness.create()

    def create_with(specified: bytes) -> Reply | Reject:
        arg = encode(
            [ProvisionalCreateArgs],
            [
                {
                    "amount": None,
                    "settings": None,
                    "specified_id": Principal.from_bytes(specified),
                    "sender_canister_version": None,
                }
            ],
        )
        return harness.router.update(
            harness.user, b"", "provisional_create_canister_with_cycles", arg
        )

    again = create_with(cid)
    assert isinstance(again, Reject)
    assert (again.code, again.error_code) == (5, "IC0538")
    assert "is already installed" in again.message
    fresh = Principal.from_canister_index(int.from_bytes(cid[:8], "big") + 7).bytes
    created = create_with(fresh)
    assert isinstance(created, Reply), created
    assert decode(created.data, [CanisterIdRecord])[0]["canister_id"].bytes == fresh

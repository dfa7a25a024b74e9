"""Checkpoint a canister to disk and restore it bit-exactly (full and incremental)."""

from __future__ import annotations

from pathlib import Path

import pytest

from icp.candid import Nat, decode, encode
from icp.execution.checkpoint import CheckpointError, load_canister, save_canister
from icp.execution.executor import IngressMessage, execute_message, execute_query
from icp.execution.system_api import Reply


def test_motoko_canister_roundtrip_and_incremental(harness, motoko, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = harness.router
    cid = harness.deploy(motoko("counter"))
    harness.update(cid, "add", encode([Nat], [5]))
    st = r.canister(cid)
    save_canister(st, tmp_path)
    restored = load_canister(tmp_path, r.env)
    assert restored.state_hash() == st.state_hash()
    rep = execute_query(restored, harness.user, "get", encode([], []), r.time, r.env)
    assert isinstance(rep, Reply) and decode(rep.data) == [5]
    # continue on the restored copy, checkpoint incrementally, restore again
    msg = IngressMessage(b"m1", harness.user, cid, "inc", encode([], []))
    restored, _ = execute_message(restored, msg, r.time, r.env)
    save_canister(restored, tmp_path)
    again = load_canister(tmp_path, r.env)
    assert again.state_hash() == restored.state_hash() != st.state_hash()
    rep = execute_query(again, harness.user, "get", encode([], []), r.time, r.env)
    assert isinstance(rep, Reply) and decode(rep.data) == [6]


def test_stable_memory_roundtrip(harness, wat_counter: bytes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cid = harness.deploy(wat_counter)
    harness.update(cid, "stable_put", b"persist!")
    save_canister(harness.router.canister(cid), tmp_path)
    restored = load_canister(tmp_path, harness.router.env)
    assert restored.runtime is not None
    assert restored.runtime.stable.read(0, 8) == b"persist!"
    assert restored.state_hash() == harness.router.canister(cid).state_hash()


def test_corrupt_checkpoint_is_a_typed_error(harness, wat_counter: bytes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cid = harness.deploy(wat_counter)
    save_canister(harness.router.canister(cid), tmp_path)
    (tmp_path / "canister.cbor").write_bytes(b"\xff\x00garbage")
    with pytest.raises(CheckpointError):
        load_canister(tmp_path, harness.router.env)
    with pytest.raises(CheckpointError):
        load_canister(tmp_path / "missing", harness.router.env)

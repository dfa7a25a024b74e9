"""set_stable_memory / get_stable_memory: one replicated write at one height on every replica."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import wasmtime

from icp import Principal
from icp.crypto.hashing import cbor_decode as _cbor_decode
from icp.crypto.user_sig import principal_of
from icp.ic import ICError, InternetComputer
from icp.testing import call_content, envelope
from tests.ic.helpers import ALICE, CANISTERS, create_canister, identical_states, install

WAT = wasmtime.wat2wasm((CANISTERS / "wat" / "counter.wat").read_text())
PAGE = 65536


def stable_get(ic: InternetComputer, cid: Principal) -> bytes | None:
    """Query the first 8 bytes of stable memory through the canister (None: it trapped)."""
    content = call_content("query", principal_of(ALICE), cid, "stable_get", b"", ic.time() + 10**11)
    answer: Any = _cbor_decode(ic.query(envelope(content, ALICE), cid))
    if answer["status"] == "rejected":
        assert "out of bounds" in answer["reject_message"], answer
        return None
    data: bytes = answer["reply"]["arg"]
    return data


def replica_stables(ic: InternetComputer, cid: Principal) -> set[bytes]:
    out = set()
    for replica in ic.subnet_of(cid).replicas:
        canister = replica.state.latest_state.canister(cid)
        assert canister is not None and canister.runtime is not None
        out.add(canister.runtime.stable.digest())
    return out


def test_set_stable_memory_is_applied_identically_on_every_replica(tmp_path: Path) -> None:
    ic = InternetComputer(seed=31, state_dir=tmp_path)
    app = ic.applications[0]
    cid = create_canister(ic, app)
    install(ic, cid, WAT)
    assert ic.get_stable_memory(cid) == b""
    assert stable_get(ic, cid) is None  # reading an empty stable memory traps
    data = b"ABCDEFGH" + bytes(range(256)) * 300  # 76,808 bytes: two pages
    height_before = app.certified_height()
    ic.set_stable_memory(cid, data)
    assert app.certified_height() > height_before  # went in at a new, certified height
    assert ic.get_stable_memory(cid) == data + bytes(2 * PAGE - len(data))
    assert stable_get(ic, cid) == b"ABCDEFGH"  # the canister sees it (the query cache too)
    assert len(replica_stables(ic, cid)) == 1  # every replica holds the same bytes
    ic.tick(2)
    assert identical_states(ic)
    ic.set_stable_memory(cid, b"")
    assert ic.get_stable_memory(cid) == b""
    ic.set_stable_memory(cid, b"persist!")
    ic.close()
    again = InternetComputer(seed=31, state_dir=tmp_path)  # replays the write after restart
    again.tick(1)
    assert again.get_stable_memory(cid) == b"persist!" + bytes(PAGE - 8)
    assert len(replica_stables(again, cid)) == 1
    assert identical_states(again)


def test_set_stable_memory_refuses_missing_or_empty_canisters() -> None:
    ic = InternetComputer(seed=32)
    app = ic.applications[0]
    empty = create_canister(ic, app)
    with pytest.raises(ICError) as err:
        ic.set_stable_memory(empty, b"x")
    assert err.value.http_status == 404
    assert ic.get_stable_memory(empty) == b""
    missing = app.ranges[0].end
    for call in (
        lambda: ic.set_stable_memory(missing, b"x"),
        lambda: ic.get_stable_memory(missing),
    ):
        with pytest.raises(ICError) as err:
            call()
        assert err.value.error_code == "IC0301"

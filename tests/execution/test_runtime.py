"""Python canisters run through the same executor, rules and charges as Wasm."""

from __future__ import annotations

from icp.execution.executor import install_code, new_canister
from icp.execution.runtime import PyApi, PythonCanister, query, update
from icp.execution.system_api import Reject, Reply


class Counter(PythonCanister):
    def init(self, api: PyApi) -> None:
        api.state = 0

    @update
    def inc(self, api: PyApi) -> None:
        api.state = api.state + 1
        api.reply(api.state.to_bytes(8, "little"))

    @update
    def inc_then_trap(self, api: PyApi) -> None:
        api.state = api.state + 1
        api.trap("nope")

    @query
    def get(self, api: PyApi) -> None:
        api.reply(api.state.to_bytes(8, "little"))

    @query
    def bad_certify(self, api: PyApi) -> None:
        api.certified_data_set(b"x")


def test_python_canister_semantics(harness) -> None:  # type: ignore[no-untyped-def]
    r = harness.router
    cid = b"\x00\x00\x00\x00\x00\x00\x00\x09\x01\x01"
    st = new_canister(cid, (harness.user,), 10**14, r.env.limits)
    st = install_code(st, "install", Counter(), b"", harness.user, r.time, r.env)
    r.put(st)
    assert harness.update(cid, "inc") == Reply((1).to_bytes(8, "little"))
    rej = harness.update(cid, "inc_then_trap")
    assert isinstance(rej, Reject) and rej.error_code == "IC0503"
    assert harness.query(cid, "get") == Reply((1).to_bytes(8, "little"))
    bad = harness.query(cid, "bad_certify")
    assert (
        isinstance(bad, Reject) and "cannot be executed in non replicated query mode" in bad.message
    )
    assert r.canister(cid).cycles < 10**14  # charged deterministically
    snap = r.canister(cid).runtime.snapshot()
    assert Counter().decode_state(snap.heap) == 1

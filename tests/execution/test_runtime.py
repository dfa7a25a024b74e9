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


class Payer(PythonCanister):
    """Sends cycles to a canister's ``accept_half`` and records what came back."""

    def init(self, api: PyApi) -> None:
        api.state = {"refunded": None, "accepted": None}

    @update
    def pay(self, api: PyApi) -> None:
        target = api.arg()

        def on_reply(r: PyApi) -> None:
            r.state = {"refunded": r._api.input.cycles_refunded, "accepted": r.arg()}
            r.reply(b"paid")

        def on_reject(r: PyApi) -> None:
            r.reply(b"rejected:" + r.reject_message().encode())

        assert (
            api.call(
                target, "accept_half", b"", cycles=1_000_000, on_reply=on_reply, on_reject=on_reject
            )
            == 0
        )

    @query
    def refunded(self, api: PyApi) -> None:
        api.reply(str(api.state["refunded"]).encode())


def test_cycles_flow_between_python_and_wasm(harness, wat_counter: bytes) -> None:  # type: ignore[no-untyped-def]
    r = harness.router
    wasm_id = harness.deploy(wat_counter)
    pid = b"\x00\x00\x00\x00\x00\x00\x00\x0a\x01\x01"
    st = install_code(
        new_canister(pid, (harness.user,), 10**14, r.env.limits),
        "install",
        Payer(),
        b"",
        harness.user,
        r.time,
        r.env,
    )
    r.put(st)
    w0, p0 = r.canister(wasm_id).cycles, r.canister(pid).cycles
    assert harness.update(pid, "pay", wasm_id) == Reply(b"paid")
    assert harness.query(pid, "refunded") == Reply(b"500000")
    w1, p1 = r.canister(wasm_id).cycles, r.canister(pid).cycles
    # the callee gained the accepted half minus its execution charge (5M base + instructions)
    assert 500_000 - 5_010_000 < w1 - w0 < 500_000 - 5_000_000
    # the payer paid exactly: the accepted half, ingress reception (1.2M), the call
    # (260k + 1k per byte of "accept_half"), the response bytes (16 x 1k) and its two
    # executions (5M + 10_000 base + 1 per byte of argument and reply, each)
    expected = (
        500_000
        + 1_200_000
        + 260_000
        + 11_000
        + 16_000
        + (5_000_000 + 10_010)
        + (5_000_000 + 10_020)
    )
    assert p0 - p1 == expected
    assert r.canister(pid).call_contexts == {} and r.canister(pid).callbacks == {}
    # calling a missing canister: DESTINATION_INVALID comes back to the reject callback
    assert harness.update(pid, "pay", b"\x00" * 8 + b"\x7f\x01").data.startswith(b"rejected:")


class Greeter(PythonCanister):
    @query
    def greet(self, api: PyApi) -> None:
        from icp.candid import Text

        (name,) = api.arg_values([Text])
        api.reply_values([Text], [f"hello, {name}"])


def test_python_canister_candid_boundary(harness) -> None:  # type: ignore[no-untyped-def]
    from icp.candid import Nat, Text, decode, encode

    r = harness.router
    cid = b"\x00\x00\x00\x00\x00\x00\x00\x0b\x01\x01"
    st = install_code(
        new_canister(cid, (harness.user,), 10**14, r.env.limits), "install", Greeter(), b"",
        harness.user, r.time, r.env,
    )  # fmt: skip
    r.put(st)
    rep = harness.query(cid, "greet", encode([Text], ["ic"]))
    assert isinstance(rep, Reply) and decode(rep.data, [Text]) == ["hello, ic"]
    bad = harness.query(cid, "greet", encode([Nat], [5]))
    assert isinstance(bad, Reject) and "failed to decode call arguments" in bad.message

"""Message execution semantics with real canisters (Motoko from source, WAT)."""

from __future__ import annotations

from collections.abc import Callable

from icp import Principal
from icp.candid import Nat, PrincipalType, Text, decode, encode
from icp.execution.system_api import Reject, Reply


def nat(rep: object) -> int:
    assert isinstance(rep, Reply), rep
    return int(decode(rep.data)[0])


def u64(rep: object) -> int:
    assert isinstance(rep, Reply), rep
    return int.from_bytes(rep.data[:8], "little")


def test_motoko_counter_update_query_and_trap_rollback(
    harness, motoko: Callable[[str], bytes]
) -> None:
    c = harness.deploy(motoko("counter"))
    assert nat(harness.update(c, "inc")) == 1
    assert nat(harness.update(c, "add", encode([Nat], [41]))) == 42
    assert nat(harness.query(c, "get")) == 42
    rej = harness.update(c, "fail_after_inc")
    assert isinstance(rej, Reject) and rej.code == 5 and rej.error_code == "IC0503"
    assert "assertion failed" in rej.message
    assert nat(harness.query(c, "get")) == 42  # the increment before the trap was rolled back
    missing = harness.update(c, "nope")
    assert isinstance(missing, Reject) and missing.error_code == "IC0536"


def test_motoko_inter_canister_calls(harness, motoko: Callable[[str], bytes]) -> None:
    counter = harness.deploy(motoko("counter"))
    caller = harness.deploy(motoko("caller"))
    target = encode([Text], [Principal.from_bytes(counter).to_text()])
    assert nat(harness.update(caller, "call_inc", target)) == 1
    # callee traps -> reject code 5 delivered to the caller's reject callback
    rep = harness.update(caller, "call_failing", target)
    assert isinstance(rep, Reply) and decode(rep.data) == ["rejected"]
    err = decode(harness.query(caller, "get_last_error").data)[0]
    assert "assertion failed" in err
    assert nat(harness.query(counter, "get")) == 1  # callee's change rolled back
    # caller traps in its reply callback: callee's change stays, caller's callback changes go
    rep = harness.update(caller, "call_then_trap", target)
    assert isinstance(rep, Reject) and rep.error_code == "IC0506"
    assert nat(harness.query(counter, "get")) == 2
    assert nat(harness.query(caller, "get_calls")) == 3


def test_motoko_token_insufficient_funds_rolls_back(
    harness, motoko: Callable[[str], bytes]
) -> None:
    tok = harness.deploy(motoko("token"))
    me = Principal.from_bytes(harness.user)
    other = Principal.from_canister_index(77)
    assert nat(harness.update(tok, "mint", encode([Nat], [100]))) == 100
    assert isinstance(
        harness.update(tok, "transfer", encode([PrincipalType, Nat], [other, 30])), Reply
    )
    rej = harness.update(tok, "transfer", encode([PrincipalType, Nat], [other, 500]))
    assert isinstance(rej, Reject) and "insufficient funds" in rej.message
    assert nat(harness.query(tok, "balance_of", encode([PrincipalType], [me]))) == 70
    assert nat(harness.query(tok, "balance_of", encode([PrincipalType], [other]))) == 30


def test_motoko_upgrade_keeps_state(harness, motoko: Callable[[str], bytes]) -> None:
    wasm = motoko("stable_upgrade")
    c = harness.deploy(wasm)
    for word in ("a", "b"):
        harness.update(c, "push", encode([Text], [word]))
    # enhanced orthogonal persistence requires the keep option
    rej = harness.install(c, wasm, mode="upgrade")
    assert isinstance(rej, Reject) and "wasm_memory_persistence" in rej.message
    assert isinstance(harness.install(c, wasm, mode="upgrade", keep=True), Reply)
    assert decode(harness.query(c, "all").data)[0] == ["a", "b"]
    assert nat(harness.query(c, "upgrade_count")) == 1
    assert isinstance(harness.install(c, wasm, mode="reinstall"), Reply)
    assert decode(harness.query(c, "all").data)[0] == []


def test_motoko_timer_fires(harness, motoko: Callable[[str], bytes]) -> None:
    c = harness.deploy(motoko("timer"))
    assert nat(harness.query(c, "get")) == 0
    for _ in range(3):
        harness.router.advance_time(10 * 10**9)
        harness.router.tick()
    assert nat(harness.query(c, "get")) >= 2


def test_motoko_infinite_loop_is_stopped_and_state_kept(
    harness, motoko: Callable[[str], bytes]
) -> None:
    c = harness.deploy(motoko("hostile"))
    before = harness.router.canister(c).cycles
    rej = harness.update(c, "spin")
    assert isinstance(rej, Reject) and rej.error_code == "IC0522" and rej.code == 5
    assert nat(harness.query(c, "get")) == 7  # "ok := 999" rolled back
    assert harness.router.canister(c).cycles < before  # the instructions were still charged
    assert isinstance(harness.update(c, "set", encode([Nat], [8])), Reply)
    assert nat(harness.query(c, "get")) == 8


def test_wat_trap_rolls_back_heap_globals_stable_and_growth(harness, wat_counter: bytes) -> None:
    c = harness.deploy(wat_counter)
    assert u64(harness.query(c, "get")) == 100  # canister_init ran
    assert u64(harness.update(c, "inc")) == 101
    pages = u64(harness.query(c, "mem_pages"))
    rej = harness.update(c, "inc_then_trap")
    assert isinstance(rej, Reject) and "deliberate trap" in rej.message
    rej = harness.update(c, "grow_then_trap")
    assert isinstance(rej, Reject) and rej.error_code == "IC0502"
    assert u64(harness.query(c, "get")) == 101
    assert u64(harness.query(c, "peek_heap")) == 101
    assert u64(harness.query(c, "mem_pages")) == pages
    assert harness.router.canister(c).runtime.stable.size_pages == 0
    assert u64(harness.update(c, "inc")) == 102


def test_wat_reply_rules_and_queries_discard_changes(harness, wat_counter: bytes) -> None:
    c = harness.deploy(wat_counter)
    assert u64(harness.query(c, "inc_in_query")) == 101
    assert u64(harness.query(c, "get")) == 100
    twice = harness.update(c, "reply_twice")
    assert isinstance(twice, Reject) and twice.error_code == "IC0504"
    none = harness.update(c, "no_reply")
    assert isinstance(none, Reject) and none.error_code == "IC0506"
    assert u64(harness.query(c, "get")) == 101  # no_reply's change is committed
    rej = harness.update(c, "reject")
    assert isinstance(rej, Reject) and rej.code == 4 and rej.message == "no thanks"
    bad = harness.query(c, "reply_in_init_ctx_misuse")
    assert (
        isinstance(bad, Reject) and "cannot be executed in non replicated query mode" in bad.message
    )


def test_wat_memory_bomb_hits_wasm_memory_limit(engine, wat_counter: bytes) -> None:
    import attrs

    from icp.execution.router import Router

    from .conftest import Harness, make_env

    h = Harness(Router(make_env(engine)))
    c = h.create()
    st = h.router.canister(c)
    h.router.put(attrs.evolve(st, settings=attrs.evolve(st.settings, wasm_memory_limit=8 << 20)))
    assert isinstance(h.install(c, wat_counter), Reply)
    rej = h.update(c, "bomb")
    assert isinstance(rej, Reject) and "deliberate trap" in rej.message
    assert u64(h.query(c, "mem_pages")) == 1
    assert u64(h.update(c, "inc")) == 101


def test_wat_stable_memory_caller_and_certified_data(harness, wat_counter: bytes) -> None:
    c = harness.deploy(wat_counter)
    assert isinstance(harness.update(c, "stable_put", b"12345678"), Reply)
    assert harness.query(c, "stable_get") == Reply(b"12345678")
    assert harness.query(c, "whoami") == Reply(harness.user)
    assert isinstance(harness.update(c, "set_certified", b"x" * 32), Reply)
    assert harness.router.canister(c).certified_data == b"x" * 32
    too_long = harness.update(c, "set_certified", b"x" * 33)
    assert isinstance(too_long, Reject) and too_long.error_code == "IC0504"


def test_wat_global_timer(harness, wat_counter: bytes) -> None:
    c = harness.deploy(wat_counter)
    harness.update(c, "arm_timer")
    harness.router.tick()
    assert u64(harness.query(c, "fired")) == 0
    harness.router.advance_time(2 * 10**9)
    harness.router.tick()
    harness.router.tick()
    assert u64(harness.query(c, "fired")) == 1  # fires once, then deactivated


def test_execution_charges_cycles_and_never_goes_negative(harness, wat_counter: bytes) -> None:
    c = harness.deploy(wat_counter)
    b0 = harness.router.canister(c).cycles
    harness.update(c, "inc")
    b1 = harness.router.canister(c).cycles
    # ingress reception 1.2M (empty envelope) + base fee 5M + 1 cycle per instruction (13 nodes)
    assert 6_200_000 < b0 - b1 < 6_300_000
    poor = harness.create(cycles=1_000_000)
    assert isinstance(harness.install(poor, wat_counter), Reply)
    rej = harness.update(poor, "inc")
    assert isinstance(rej, Reject) and rej.error_code == "IC0207" and rej.code == 2
    assert harness.router.canister(poor).cycles >= 0


def test_wat_hostile_recursion_and_arithmetic_traps(harness, wat_counter: bytes) -> None:  # type: ignore[no-untyped-def]
    c = harness.deploy(wat_counter)
    deep = harness.update(c, "recurse")
    assert isinstance(deep, Reject) and deep.error_code == "IC0502"
    assert "stack overflow" in deep.message
    div = harness.update(c, "div_zero")
    assert isinstance(div, Reject) and "integer division by 0" in div.message
    assert u64(harness.update(c, "inc")) == 101


def test_wat_inspect_message(harness, wat_counter: bytes) -> None:  # type: ignore[no-untyped-def]
    from icp.execution.executor import inspect_message

    c = harness.deploy(wat_counter)
    st = harness.router.canister(c)
    r = harness.router
    assert inspect_message(st, harness.user, "inc", b"", r.time, r.env) is None
    refused = inspect_message(st, harness.user, "xinc", b"", r.time, r.env)
    assert refused is not None and refused.error_code is not None
    assert refused.error_code.text() == "IC0406"


def test_motoko_memory_bomb_hits_wasm_memory_limit(engine, motoko) -> None:  # type: ignore[no-untyped-def]
    import attrs

    from icp.execution.router import Router

    from .conftest import Harness, make_env

    h = Harness(Router(make_env(engine, per_message=20_000_000_000)))
    c = h.deploy(motoko("hostile"))
    st = h.router.canister(c)
    limit = 96 << 20
    h.router.put(attrs.evolve(st, settings=attrs.evolve(st.settings, wasm_memory_limit=limit)))
    # the limit applies from the next instantiation: reinstall under the new setting
    assert isinstance(h.install(c, motoko("hostile"), mode="reinstall"), Reply)
    rej = h.update(c, "bomb")
    assert isinstance(rej, Reject) and rej.code == 5
    assert h.router.canister(c).runtime.memory_bytes() <= limit
    assert nat(h.query(c, "get")) == 7
    assert isinstance(h.update(c, "set", encode([Nat], [9])), Reply)
    assert nat(h.query(c, "get")) == 9


def test_motoko_composite_query_calls_other_canister(harness, motoko) -> None:  # type: ignore[no-untyped-def]
    counter = harness.deploy(motoko("counter"))
    comp = harness.deploy(motoko("composite"))
    harness.update(counter, "add", encode([Nat], [21]))
    target = encode([Text], [Principal.from_bytes(counter).to_text()])
    assert nat(harness.query(comp, "sum_twice", target)) == 42
    # composite queries cannot run in replicated mode
    rej = harness.update(comp, "sum_twice", target)
    assert isinstance(rej, Reject) and "replicated mode" in rej.message
    me = encode([Text], [Principal.from_bytes(comp).to_text()])
    loop = harness.query(comp, "loop_self", me)
    assert isinstance(loop, Reject) and "Loop detected" in loop.message  # re-thrown by Motoko
    assert nat(harness.query(counter, "get")) == 21


def test_heartbeat_runs_each_tick(harness) -> None:  # type: ignore[no-untyped-def]
    import wasmtime

    wasm = wasmtime.wat2wasm(
        """(module
          (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
          (import "ic0" "msg_reply" (func $reply))
          (memory 1) (global $beats (mut i32) (i32.const 0))
          (func (export "canister_heartbeat")
            (global.set $beats (i32.add (global.get $beats) (i32.const 1))))
          (func (export "canister_query beats")
            (i32.store (i32.const 0) (global.get $beats))
            (call $append (i32.const 0) (i32.const 4)) (call $reply)))"""
    )
    c = harness.deploy(bytes(wasm))
    for _ in range(3):
        harness.router.tick()
    assert harness.query(c, "beats") == Reply((3).to_bytes(4, "little"))

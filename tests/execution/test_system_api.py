"""ic0 functions: context checks, blob bounds, cycles, calls (direct, with a fake memory)."""

from __future__ import annotations

import pytest

from icp.execution.cycles import ExecutionLimits, FeeSchedule
from icp.execution.errors import TrapKind, WasmTrap
from icp.execution.stable_memory import StableMemory
from icp.execution.system_api import (
    CONTEXTS,
    SIGNATURES,
    CanisterView,
    Context,
    ExecutionInput,
    Reject,
    Reply,
    SystemApi,
    signatures_for,
)


class FakeMemory:
    def __init__(self, size: int = 65536) -> None:
        self.data = bytearray(size)

    def size(self) -> int:
        return len(self.data)

    def read(self, addr: int, size: int) -> bytes:
        return bytes(self.data[addr : addr + size])

    def write(self, addr: int, data: bytes) -> None:
        self.data[addr : addr + len(data)] = data


class Counter:
    def __init__(self, n: int) -> None:
        self.n = n

    def remaining(self) -> int:
        return self.n

    def set_remaining(self, value: int) -> None:
        self.n = value


VIEW = CanisterView(
    canister_id=b"\x00" * 8 + b"\x01\x01", subnet_id=b"\x01", controllers=(b"\x04",), status=1,
    version=3, balance=10**15, freezing_limit=10**9, time=42, global_timer=0, certified_data=b"",
)  # fmt: skip


def make(ctx: Context, **kw: object) -> SystemApi:
    api = SystemApi(
        ExecutionInput(ctx, caller=b"\x04", arg=b"hello", **kw),  # type: ignore[arg-type]
        VIEW, StableMemory(), ExecutionLimits(), FeeSchedule(), 10**9,
    )  # fmt: skip
    api.memory = FakeMemory()
    api.counter = Counter(10**9)
    return api


def test_every_function_has_a_signature_and_a_context() -> None:
    assert set(CONTEXTS) == set(SIGNATURES)
    assert "stable_size" in signatures_for(False) and "stable_size" not in signatures_for(True)
    assert "msg_cycles_accept128" in signatures_for(True)


# (function, context where it traps, context where it works)
MATRIX = [
    ("msg_reply", Context.I, Context.U),
    ("msg_arg_data_size", Context.RT, Context.RY),
    ("msg_reject_code", Context.U, Context.RT),
    ("msg_cycles_accept128", Context.NRQ, Context.U),
    ("call_new", Context.NRQ, Context.U),
    ("certified_data_set", Context.NRQ, Context.U),
    ("global_timer_set", Context.RQ, Context.T),
    ("accept_message", Context.U, Context.F),
    ("msg_method_name_size", Context.U, Context.F),
    ("data_certificate_size", Context.U, Context.NRQ),
    ("time", Context.S, Context.G),
    ("stable64_size", Context.NRQ, Context.S),  # stable works everywhere, start included
]


@pytest.mark.parametrize(("name", "bad", "good"), MATRIX)
def test_context_letters(name: str, bad: Context, good: Context) -> None:
    args = {
        "msg_cycles_accept128": (0, 5, 0),
        "call_new": (0, 0, 0, 0, 0, 0, 0, 0),
        "certified_data_set": (0, 4),
        "global_timer_set": (7,),
    }.get(name, ())
    if name != "stable64_size" or bad is not Context.NRQ:
        with pytest.raises(WasmTrap) as info:
            make(bad).dispatch(name, args)
        assert info.value.kind is TrapKind.CONTRACT_VIOLATION
        assert f'"ic0_{name}" cannot be executed in {bad.value} mode' in info.value.message
    api = make(good)
    if name == "data_certificate_size":
        with pytest.raises(WasmTrap, match="no certificate"):
            api.dispatch(name, args)
        return
    api.dispatch(name, args)


def test_blob_copy_bounds_and_reply_once() -> None:
    api = make(Context.U)
    api.dispatch("msg_arg_data_copy", (100, 1, 4))
    assert api.memory is not None and api.memory.read(100, 4) == b"ello"
    with pytest.raises(WasmTrap, match="exceeds the slice size=5"):
        api.dispatch("msg_arg_data_copy", (0, 3, 3))
    with pytest.raises(WasmTrap, match="exceeds the slice size=65536"):
        api.dispatch("msg_arg_data_copy", (65535, 0, 5))
    api.dispatch("msg_reply_data_append", (100, 4))
    api.dispatch("msg_reply", ())
    assert api.response == Reply(b"ello")
    with pytest.raises(WasmTrap, match="already replied"):
        api.dispatch("msg_reject", (100, 1))


def test_reject_requires_utf8() -> None:
    api = make(Context.U)
    assert api.memory is not None
    api.memory.write(0, b"\xff\xfe")
    with pytest.raises(WasmTrap, match="UTF-8"):
        api.dispatch("msg_reject", (0, 2))
    api.memory.write(0, b"no")
    api.dispatch("msg_reject", (0, 2))
    assert api.response == Reject(4, "no")


def test_cycles_accept_and_128_bit_values() -> None:
    big = (1 << 100) + 7
    api = make(Context.U, cycles_available=big)
    mem = api.memory
    assert mem is not None
    api.dispatch("msg_cycles_available128", (0,))
    assert int.from_bytes(mem.read(0, 16), "little") == big
    api.dispatch("msg_cycles_accept128", (1 << 36, 0, 16))  # accept 2^100
    assert int.from_bytes(mem.read(16, 16), "little") == 1 << 100
    api.dispatch("msg_cycles_available128", (0,))
    assert int.from_bytes(mem.read(0, 16), "little") == 7
    assert api.balance == VIEW.balance + (1 << 100)
    assert api.cycles_accepted == 1 << 100


def test_call_building_charges_and_refunds() -> None:
    api = make(Context.U)
    mem = api.memory
    assert mem is not None
    mem.write(0, b"\x00" * 8 + b"\x02\x01" + b"method")
    with pytest.raises(WasmTrap, match="call_new was not called"):
        api.dispatch("call_perform", ())
    api.dispatch("call_new", (0, 10, 10, 6, 1, 2, 3, 4))
    api.dispatch("call_data_append", (0, 4))
    api.dispatch("call_cycles_add128", (0, 1000))
    assert api.balance == VIEW.balance - 1000
    api.dispatch("call_new", (0, 10, 10, 6, 1, 2, 3, 4))  # discards the first call: cycles back
    assert api.balance == VIEW.balance
    api.dispatch("call_cycles_add128", (0, 500))
    assert api.dispatch("call_perform", ()) == 0
    call = api.calls[0]
    assert (call.callee, call.method_name, call.arg, call.cycles) == (
        b"\x00" * 8 + b"\x02\x01",
        "method",
        b"",
        500,
    )
    assert VIEW.balance - api.balance == 500 + 260_000 + 1_000 * 6 + call.prepaid
    with pytest.raises(WasmTrap, match="out of cycles"):
        api.dispatch("call_new", (0, 10, 10, 6, 1, 2, 3, 4))
        api.dispatch("call_cycles_add128", (1, 0))


def test_stable_memory_bounds_and_growth() -> None:
    api = make(Context.U)
    assert api.dispatch("stable64_grow", (2,)) == 0
    assert api.dispatch("stable64_size", ()) == 2
    api.dispatch("stable64_write", (70_000, 0, 5))
    with pytest.raises(WasmTrap, match="stable memory out of bounds"):
        api.dispatch("stable64_read", (0, 2 * 65536 - 2, 5))
    assert api.dispatch("stable_grow", (70_000,)) == -1  # 32-bit API caps at 4 GiB


def test_instruction_charges_and_limit() -> None:
    api = make(Context.U)
    assert isinstance(api.counter, Counter)
    api.counter.n = 30
    api.dispatch("msg_arg_data_copy", (0, 0, 5))  # 1 + 20 overhead + 5 bytes
    assert api.counter.n == 4
    with pytest.raises(WasmTrap) as info:
        api.dispatch("msg_arg_data_copy", (0, 0, 5))
    assert info.value.kind is TrapKind.OUT_OF_INSTRUCTIONS


def test_trap_and_debug_print() -> None:
    api = make(Context.U)
    assert api.memory is not None
    api.memory.write(0, b"boom")
    api.dispatch("debug_print", (0, 4))
    assert api.logs == [b"boom"]
    with pytest.raises(WasmTrap) as info:
        api.dispatch("trap", (0, 4))
    assert info.value.kind is TrapKind.CALLED_TRAP and info.value.message == "boom"


def test_global_timer_and_certified_data() -> None:
    api = make(Context.U)
    assert api.dispatch("global_timer_set", (100,)) == 0
    assert api.dispatch("global_timer_set", (200,)) == 100
    assert api.global_timer == 200
    assert api.dispatch("time", ()) == 42
    assert api.dispatch("canister_version", ()) == 3
    with pytest.raises(WasmTrap, match="no larger than 32 bytes"):
        api.dispatch("certified_data_set", (0, 33))

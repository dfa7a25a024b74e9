"""The ``ic0`` System API: the only way canister code reaches outside itself.

Theory of operation
-------------------
One ``SystemApi`` object lives for exactly one message execution (an entry
point or a callback).  It is created by the executor from an immutable
``ExecutionInput`` (who called, with what argument and cycles, in which
``Context``) and a ``CanisterView`` (the canister's system state as seen at the
start of the execution).  The engine binds each imported ``ic0`` function to the
method of the same name.  Every method first checks the context table
``CONTEXTS`` (the spec's context letters) and traps with the IC's message if the
function may not be called here, then charges its instruction overhead, then
does its work, recording *effects* (reply, reject, outgoing calls, accepted
cycles, certified data, timer) on the object.  The executor reads those effects
after a successful execution and discards them after a trap.

Addresses and sizes are passed as Python ints; the engine has already chosen
the i32 or i64 variant from the module's memory type (``I`` in the spec).

Spec: interface spec §"System API" (digest §5.2–5.4); instruction overheads
after dfinity/ic ``rs/embedders/src/wasmtime_embedder/system_api_complexity.rs``
(fixed part) plus one instruction per byte copied (variable part).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

import attrs

from icp.execution.cycles import (
    MAX_CYCLES,
    ExecutionLimits,
    FeeSchedule,
    execution_cost,
    response_transmission_prepayment,
    xnet_call_cost,
)
from icp.execution.errors import TrapKind, WasmTrap
from icp.execution.stable_memory import StableMemory


class Context(enum.Enum):
    """The execution contexts of the System API (the spec's context letters).

    Spec: interface spec §"Overview of imports" (digest §5.2).
    """

    I = "init"  # noqa: E741 - the spec's letter (init / post_upgrade)
    G = "pre upgrade"
    U = "update"
    RQ = "replicated query"
    NRQ = "non replicated query"
    CQ = "composite query"
    RY = "reply callback"
    RT = "reject callback"
    CRY = "composite reply callback"
    CRT = "composite reject callback"
    C = "cleanup"
    CC = "composite cleanup"
    F = "inspect message"
    T = "system task"
    S = "start"


_ALL = frozenset(Context) - {Context.S}
_ALL_S = frozenset(Context)


def _c(*names: str) -> frozenset[Context]:
    return frozenset(Context[n] for n in names)


_REPLY_CTX = _c("U", "RQ", "NRQ", "CQ", "RY", "RT", "CRY", "CRT")
_CALL_CTX = _c("U", "CQ", "RY", "RT", "CRY", "CRT", "T")

CONTEXTS: dict[str, frozenset[Context]] = {
    "msg_arg_data_size": _c("I", "U", "RQ", "NRQ", "CQ", "RY", "CRY", "F"),
    "msg_arg_data_copy": _c("I", "U", "RQ", "NRQ", "CQ", "RY", "CRY", "F"),
    "msg_caller_size": _ALL,
    "msg_caller_copy": _ALL,
    "msg_reject_code": _c("RY", "RT", "CRY", "CRT", "C", "CC"),
    "msg_reject_msg_size": _c("RT", "CRT"),
    "msg_reject_msg_copy": _c("RT", "CRT"),
    "msg_deadline": _REPLY_CTX,
    "msg_reply_data_append": _REPLY_CTX,
    "msg_reply": _REPLY_CTX,
    "msg_reject": _REPLY_CTX,
    "msg_cycles_available": _c("U", "RQ", "RT", "RY"),
    "msg_cycles_available128": _c("U", "RQ", "RT", "RY"),
    "msg_cycles_refunded": _c("RT", "RY"),
    "msg_cycles_refunded128": _c("RT", "RY"),
    "msg_cycles_accept": _c("U", "RQ", "RT", "RY"),
    "msg_cycles_accept128": _c("U", "RQ", "RT", "RY"),
    "cycles_burn128": _c("I", "G", "U", "RQ", "RY", "RT", "C", "T"),
    "canister_self_size": _ALL,
    "canister_self_copy": _ALL,
    "canister_cycle_balance": _ALL,
    "canister_cycle_balance128": _ALL,
    "canister_liquid_cycle_balance128": _ALL,
    "canister_status": _ALL,
    "canister_version": _ALL,
    "subnet_self_size": _ALL,
    "subnet_self_copy": _ALL,
    "msg_method_name_size": _c("F"),
    "msg_method_name_copy": _c("F"),
    "accept_message": _c("F"),
    "call_new": _CALL_CTX,
    "call_on_cleanup": _CALL_CTX,
    "call_data_append": _CALL_CTX,
    "call_with_best_effort_response": _CALL_CTX,
    "call_cycles_add": _c("U", "RY", "RT", "T"),
    "call_cycles_add128": _c("U", "RY", "RT", "T"),
    "call_perform": _CALL_CTX,
    "stable_size": _ALL_S,
    "stable_grow": _ALL_S,
    "stable_write": _ALL_S,
    "stable_read": _ALL_S,
    "stable64_size": _ALL_S,
    "stable64_grow": _ALL_S,
    "stable64_write": _ALL_S,
    "stable64_read": _ALL_S,
    "root_key_size": _c("I", "G", "U", "RQ", "RY", "RT", "C", "T"),
    "root_key_copy": _c("I", "G", "U", "RQ", "RY", "RT", "C", "T"),
    "certified_data_set": _c("I", "G", "U", "RY", "RT", "T"),
    "data_certificate_present": _ALL,
    "data_certificate_size": _c("NRQ", "CQ"),
    "data_certificate_copy": _c("NRQ", "CQ"),
    "time": _ALL,
    "global_timer_set": _c("I", "G", "U", "RY", "RT", "C", "T"),
    "performance_counter": _ALL_S,
    "is_controller": _ALL_S,
    "in_replicated_execution": _ALL_S,
    "cost_call": _ALL_S,
    "cost_create_canister": _ALL_S,
    "debug_print": _ALL_S,
    "trap": _ALL_S,
}

_B = ("I", "I", "I")  # blob copy: (dst, offset, size)
SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "msg_arg_data_size": ((), ("I",)),
    "msg_arg_data_copy": (_B, ()),
    "msg_caller_size": ((), ("I",)),
    "msg_caller_copy": (_B, ()),
    "msg_reject_code": ((), ("i32",)),
    "msg_reject_msg_size": ((), ("I",)),
    "msg_reject_msg_copy": (_B, ()),
    "msg_deadline": ((), ("i64",)),
    "msg_reply_data_append": (("I", "I"), ()),
    "msg_reply": ((), ()),
    "msg_reject": (("I", "I"), ()),
    "msg_cycles_available": ((), ("i64",)),
    "msg_cycles_available128": (("I",), ()),
    "msg_cycles_refunded": ((), ("i64",)),
    "msg_cycles_refunded128": (("I",), ()),
    "msg_cycles_accept": (("i64",), ("i64",)),
    "msg_cycles_accept128": (("i64", "i64", "I"), ()),
    "cycles_burn128": (("i64", "i64", "I"), ()),
    "canister_self_size": ((), ("I",)),
    "canister_self_copy": (_B, ()),
    "canister_cycle_balance": ((), ("i64",)),
    "canister_cycle_balance128": (("I",), ()),
    "canister_liquid_cycle_balance128": (("I",), ()),
    "canister_status": ((), ("i32",)),
    "canister_version": ((), ("i64",)),
    "subnet_self_size": ((), ("I",)),
    "subnet_self_copy": (_B, ()),
    "msg_method_name_size": ((), ("I",)),
    "msg_method_name_copy": (_B, ()),
    "accept_message": ((), ()),
    "call_new": (("I",) * 8, ()),
    "call_on_cleanup": (("I", "I"), ()),
    "call_data_append": (("I", "I"), ()),
    "call_with_best_effort_response": (("i32",), ()),
    "call_cycles_add": (("i64",), ()),
    "call_cycles_add128": (("i64", "i64"), ()),
    "call_perform": ((), ("i32",)),
    "stable_size": ((), ("i32",)),
    "stable_grow": (("i32",), ("i32",)),
    "stable_write": (("i32", "i32", "i32"), ()),
    "stable_read": (("i32", "i32", "i32"), ()),
    "stable64_size": ((), ("i64",)),
    "stable64_grow": (("i64",), ("i64",)),
    "stable64_write": (("i64", "i64", "i64"), ()),
    "stable64_read": (("i64", "i64", "i64"), ()),
    "root_key_size": ((), ("I",)),
    "root_key_copy": (_B, ()),
    "certified_data_set": (("I", "I"), ()),
    "data_certificate_present": ((), ("i32",)),
    "data_certificate_size": ((), ("I",)),
    "data_certificate_copy": (_B, ()),
    "time": ((), ("i64",)),
    "global_timer_set": (("i64",), ("i64",)),
    "performance_counter": (("i32",), ("i64",)),
    "is_controller": (("I", "I"), ("i32",)),
    "in_replicated_execution": ((), ("i32",)),
    "cost_call": (("i64", "i64", "I"), ()),
    "cost_create_canister": (("I",), ()),
    "debug_print": (("I", "I"), ()),
    "trap": (("I", "I"), ()),
}

WASM32_ONLY = frozenset(
    {
        "msg_cycles_available",
        "msg_cycles_refunded",
        "msg_cycles_accept",
        "canister_cycle_balance",
        "call_cycles_add",
        "stable_size",
        "stable_grow",
        "stable_write",
        "stable_read",
    }
)
"""Functions only importable by wasm32 modules. Spec: digest §5.1."""


def signatures_for(memory64: bool) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Return the import signatures a module with this memory type may use.

    Spec: digest §5.1 ("``I`` = i32 for wasm32, i64 for wasm64").
    """
    if not memory64:
        return dict(SIGNATURES)
    return {k: v for k, v in SIGNATURES.items() if k not in WASM32_ONLY}


# Fixed overheads in instructions (system_api_complexity.rs, fixed part).
OVERHEAD: dict[str, int] = {
    "msg_arg_data_copy": 20,
    "msg_method_name_copy": 20,
    "msg_reply_data_append": 20,
    "msg_caller_copy": 20,
    "canister_self_copy": 20,
    "subnet_self_copy": 20,
    "msg_reject_msg_copy": 20,
    "call_new": 0,
    "call_data_append": 20,
    "call_perform": 5_000,
    "stable_read": 20,
    "stable_write": 20,
    "stable64_read": 20,
    "stable64_write": 20,
    "stable_grow": 100,
    "stable64_grow": 100,
    "debug_print": 100,
    "trap": 500,
    "is_controller": 1_000,
    "certified_data_set": 20,
    "data_certificate_copy": 20,
    "root_key_copy": 20,
}

PERFORMANCE_COUNTER_INSTRUCTIONS = 0
PERFORMANCE_COUNTER_CALL_CONTEXT = 1


class GuestMemory(Protocol):
    """Linear memory 0 of the running instance, as the System API sees it."""

    def size(self) -> int:
        """Return the size in bytes."""

    def read(self, addr: int, size: int) -> bytes:
        """Read ``size`` bytes at ``addr`` (caller checks bounds)."""

    def write(self, addr: int, data: bytes) -> None:
        """Write ``data`` at ``addr`` (caller checks bounds)."""


class InstructionCounter(Protocol):
    """The instructions-left counter of the running instance."""

    def remaining(self) -> int:
        """Return instructions left (negative = exhausted)."""

    def set_remaining(self, value: int) -> None:
        """Overwrite instructions left."""


@attrs.frozen(slots=True)
class ExecutionInput:
    """What one execution receives: caller, argument, cycles, reject details.

    Spec: interface spec §"System API" (``msg_*`` functions).
    """

    context: Context
    caller: bytes = b""
    arg: bytes = b""
    method_name: str = ""
    cycles_available: int = 0
    cycles_refunded: int = 0
    reject_code: int = 0
    reject_message: str = ""
    deadline: int = 0
    call_context_instructions: int = 0


@attrs.frozen(slots=True)
class CanisterView:
    """The canister's system state at the start of an execution.

    ``balance`` is already net of the prepaid execution cost; ``freezing_limit``
    is the balance below which cycles may not be spent.
    """

    canister_id: bytes
    subnet_id: bytes
    controllers: tuple[bytes, ...]
    status: int  # 1 running, 2 stopping, 3 stopped
    version: int
    balance: int
    freezing_limit: int
    time: int
    global_timer: int
    certified_data: bytes
    subnet_size: int = 13
    wasm64: bool = False
    replicated: bool = True
    data_certificate: bytes | None = None
    root_key: bytes = b""


@attrs.frozen(slots=True)
class OutgoingCall:
    """A call made with ``call_new``…``call_perform``, routed after the execution commits.

    Spec: interface spec §"Inter-canister method calls" (digest §5.4).
    """

    callee: bytes
    method_name: str
    arg: bytes
    cycles: int
    reply_fun: int
    reply_env: int
    reject_fun: int
    reject_env: int
    cleanup: tuple[int, int] | None
    timeout_seconds: int | None
    prepaid: int  # cycles prepaid for the response (transmission + execution)


@attrs.frozen(slots=True)
class Reply:
    """A reply with its payload."""

    data: bytes


@attrs.frozen(slots=True)
class Reject:
    """A reject with code, message and (for system rejects) the IC error code text."""

    code: int
    message: str
    error_code: str = ""


Response = Reply | Reject


class _PendingCall:
    __slots__ = ("arg", "callee", "cleanup", "cycles", "method", "reject", "reply", "timeout")

    def __init__(self, callee: bytes, method: str, reply: tuple[int, int], reject: tuple[int, int]):
        self.callee = callee
        self.method = method
        self.reply = reply
        self.reject = reject
        self.arg = bytearray()
        self.cycles = 0
        self.cleanup: tuple[int, int] | None = None
        self.timeout: int | None = None


def _trap(message: str) -> WasmTrap:
    return WasmTrap(TrapKind.CONTRACT_VIOLATION, message)


class SystemApi:
    """The ``ic0`` functions for one execution, recording their effects.

    Spec: interface spec §"System API" (digest §5).
    """

    def __init__(
        self,
        inp: ExecutionInput,
        view: CanisterView,
        stable: StableMemory,
        limits: ExecutionLimits,
        fees: FeeSchedule,
        instruction_limit: int,
        *,
        already_responded: bool = False,
    ) -> None:
        self.input = inp
        self.already_responded = already_responded
        self.view = view
        self.stable = stable
        self.limits = limits
        self.fees = fees
        self.instruction_limit = instruction_limit
        self.memory: GuestMemory | None = None
        self.counter: InstructionCounter | None = None
        # set by engines whose instrumentation charges the fixed cost at the call site
        self.fixed_costs_prepaid = False
        # effects
        self.reply_buffer = bytearray()
        self.response: Response | None = None
        self.balance = view.balance
        self.cycles_accepted = 0
        self.cycles_burned = 0
        self.calls: list[OutgoingCall] = []
        self.certified_data: bytes | None = None
        self.global_timer: int | None = None
        self.logs: list[bytes] = []
        self.message_accepted = False
        self._pending: _PendingCall | None = None
        self.debug_print_hook: Callable[[bytes], None] | None = None

    # ---- plumbing -------------------------------------------------------
    def dispatch(self, name: str, args: tuple[int, ...]) -> int | None:
        """Check context, charge overhead and run ``ic0.<name>``; return its result."""
        allowed, cost, fn = _DISPATCH[name]
        if self.input.context not in allowed:
            raise _trap(f'"ic0_{name}" cannot be executed in {self.input.context.value} mode')
        if not self.fixed_costs_prepaid:
            self.charge(cost)
        return fn(self, *args)

    def charge(self, instructions: int) -> None:
        """Charge instructions to the running message; trap when the limit is hit."""
        if self.counter is None:
            return
        left = self.counter.remaining() - instructions
        self.counter.set_remaining(left)
        if left < 0:
            raise WasmTrap(
                TrapKind.OUT_OF_INSTRUCTIONS,
                "Canister exceeded the limit of "
                f"{self.instruction_limit} instructions for single message execution.",
            )

    def instructions_used(self) -> int:
        """Return instructions executed so far in this execution."""
        if self.counter is None:
            return 0
        return self.instruction_limit - self.counter.remaining()

    def _mem(self) -> GuestMemory:
        if self.memory is None:
            raise _trap("the module has no memory")
        return self.memory

    def _read(self, src: int, size: int, what: str) -> bytes:
        mem = self._mem()
        if src < 0 or size < 0 or src + size > mem.size():
            raise _trap(f"{what}: src={src} + length={size} exceeds the slice size={mem.size()}")
        self.charge(size)
        return mem.read(src, size)

    def _write(self, dst: int, data: bytes, what: str) -> None:
        mem = self._mem()
        if dst < 0 or dst + len(data) > mem.size():
            raise _trap(
                f"{what}: dst={dst} + length={len(data)} exceeds the slice size={mem.size()}"
            )
        self.charge(len(data))
        mem.write(dst, data)

    def _copy_blob(self, blob: bytes, dst: int, offset: int, size: int, what: str) -> None:
        if offset < 0 or size < 0 or offset + size > len(blob):
            raise _trap(
                f"{what}: offset={offset} + length={size} exceeds the slice size={len(blob)}"
            )
        self._write(dst, blob[offset : offset + size], what)

    def _write_u128(self, dst: int, amount: int, what: str) -> None:
        self._write(dst, amount.to_bytes(16, "little"), what)

    def _liquid(self) -> int:
        return max(0, self.balance - self.view.freezing_limit)

    def _check_not_responded(self, what: str) -> None:
        if self.response is not None or self.already_responded:
            raise _trap(f"{what}: the call is already replied")

    # ---- message ----------------------------------------------------------
    def ic0_msg_arg_data_size(self) -> int:
        return len(self.input.arg)

    def ic0_msg_arg_data_copy(self, dst: int, offset: int, size: int) -> None:
        self._copy_blob(self.input.arg, dst, offset, size, "ic0.msg_arg_data_copy")

    def ic0_msg_caller_size(self) -> int:
        return len(self.input.caller)

    def ic0_msg_caller_copy(self, dst: int, offset: int, size: int) -> None:
        self._copy_blob(self.input.caller, dst, offset, size, "ic0.msg_caller_copy")

    def ic0_msg_reject_code(self) -> int:
        return self.input.reject_code

    def ic0_msg_reject_msg_size(self) -> int:
        return len(self.input.reject_message.encode())

    def ic0_msg_reject_msg_copy(self, dst: int, offset: int, size: int) -> None:
        self._copy_blob(
            self.input.reject_message.encode(), dst, offset, size, "ic0.msg_reject_msg_copy"
        )

    def ic0_msg_deadline(self) -> int:
        return self.input.deadline

    def _max_reply(self) -> int:
        if self.view.replicated:
            return self.limits.max_reply_bytes_replicated
        return self.limits.max_reply_bytes_non_replicated

    def ic0_msg_reply_data_append(self, src: int, size: int) -> None:
        self._check_not_responded("ic0.msg_reply_data_append")
        data = self._read(src, size, "ic0.msg_reply_data_append")
        if len(self.reply_buffer) + size > self._max_reply():
            raise _trap(
                "ic0.msg_reply_data_append: application payload size "
                f"({len(self.reply_buffer) + size}) cannot be larger than {self._max_reply()}."
            )
        self.reply_buffer += data

    def ic0_msg_reply(self) -> None:
        self._check_not_responded("ic0.msg_reply")
        self.response = Reply(bytes(self.reply_buffer))

    def ic0_msg_reject(self, src: int, size: int) -> None:
        self._check_not_responded("ic0.msg_reject")
        data = self._read(src, size, "ic0.msg_reject")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _trap("ic0.msg_reject: invalid UTF-8 string provided") from exc
        self.response = Reject(4, text)

    # ---- cycles -----------------------------------------------------------
    def _available(self) -> int:
        return self.input.cycles_available - self.cycles_accepted

    def ic0_msg_cycles_available(self) -> int:
        amount = self._available()
        if amount >= 1 << 64:
            raise _trap("ic0.msg_cycles_available: cycles amount does not fit in 64 bits")
        return amount

    def ic0_msg_cycles_available128(self, dst: int) -> None:
        self._write_u128(dst, self._available(), "ic0.msg_cycles_available128")

    def ic0_msg_cycles_refunded(self) -> int:
        if self.input.cycles_refunded >= 1 << 64:
            raise _trap("ic0.msg_cycles_refunded: cycles amount does not fit in 64 bits")
        return self.input.cycles_refunded

    def ic0_msg_cycles_refunded128(self, dst: int) -> None:
        self._write_u128(dst, self.input.cycles_refunded, "ic0.msg_cycles_refunded128")

    def _accept(self, max_amount: int) -> int:
        amount = min(max_amount, self._available())
        self.cycles_accepted += amount
        self.balance = min(MAX_CYCLES, self.balance + amount)
        return amount

    def ic0_msg_cycles_accept(self, max_amount: int) -> int:
        return self._accept(max_amount & ((1 << 64) - 1))

    def ic0_msg_cycles_accept128(self, high: int, low: int, dst: int) -> None:
        amount = ((high & ((1 << 64) - 1)) << 64) | (low & ((1 << 64) - 1))
        self._write_u128(dst, self._accept(amount), "ic0.msg_cycles_accept128")

    def ic0_cycles_burn128(self, high: int, low: int, dst: int) -> None:
        amount = ((high & ((1 << 64) - 1)) << 64) | (low & ((1 << 64) - 1))
        burned = min(amount, self._liquid())
        self.balance -= burned
        self.cycles_burned += burned
        self._write_u128(dst, burned, "ic0.cycles_burn128")

    def ic0_canister_cycle_balance(self) -> int:
        if self.balance >= 1 << 64:
            raise _trap("ic0.canister_cycle_balance: cycles amount does not fit in 64 bits")
        return self.balance

    def ic0_canister_cycle_balance128(self, dst: int) -> None:
        self._write_u128(dst, self.balance, "ic0.canister_cycle_balance128")

    def ic0_canister_liquid_cycle_balance128(self, dst: int) -> None:
        self._write_u128(dst, self._liquid(), "ic0.canister_liquid_cycle_balance128")

    # ---- canister -----------------------------------------------------------
    def ic0_canister_self_size(self) -> int:
        return len(self.view.canister_id)

    def ic0_canister_self_copy(self, dst: int, offset: int, size: int) -> None:
        self._copy_blob(self.view.canister_id, dst, offset, size, "ic0.canister_self_copy")

    def ic0_subnet_self_size(self) -> int:
        return len(self.view.subnet_id)

    def ic0_subnet_self_copy(self, dst: int, offset: int, size: int) -> None:
        self._copy_blob(self.view.subnet_id, dst, offset, size, "ic0.subnet_self_copy")

    def ic0_canister_status(self) -> int:
        return self.view.status

    def ic0_canister_version(self) -> int:
        return self.view.version

    def ic0_msg_method_name_size(self) -> int:
        return len(self.input.method_name.encode())

    def ic0_msg_method_name_copy(self, dst: int, offset: int, size: int) -> None:
        self._copy_blob(
            self.input.method_name.encode(), dst, offset, size, "ic0.msg_method_name_copy"
        )

    def ic0_accept_message(self) -> None:
        if self.message_accepted:
            raise _trap("ic0.accept_message: the function was already called.")
        self.message_accepted = True

    # ---- calls ------------------------------------------------------------------
    def ic0_call_new(
        self,
        callee_src: int,
        callee_size: int,
        name_src: int,
        name_size: int,
        reply_fun: int,
        reply_env: int,
        reject_fun: int,
        reject_env: int,
    ) -> None:
        self._discard_pending()
        callee = self._read(callee_src, callee_size, "ic0.call_new")
        raw_name = self._read(name_src, name_size, "ic0.call_new")
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _trap("ic0.call_new: method name is not valid UTF-8") from exc
        if len(callee) > 29:
            raise _trap("ic0.call_new: callee is not a valid principal")
        self._pending = _PendingCall(callee, name, (reply_fun, reply_env), (reject_fun, reject_env))

    def _discard_pending(self) -> None:
        if self._pending is not None:
            self.balance += self._pending.cycles
            self._pending = None

    def _need_pending(self, what: str) -> _PendingCall:
        if self._pending is None:
            raise _trap(f"{what}: call_new was not called before")
        return self._pending

    def ic0_call_on_cleanup(self, fun: int, env: int) -> None:
        p = self._need_pending("ic0.call_on_cleanup")
        if p.cleanup is not None:
            raise _trap("ic0.call_on_cleanup: cleanup closure is already set")
        p.cleanup = (fun, env)

    def ic0_call_data_append(self, src: int, size: int) -> None:
        p = self._need_pending("ic0.call_data_append")
        data = self._read(src, size, "ic0.call_data_append")
        if len(p.arg) + size > self.limits.max_inter_canister_payload_bytes:
            raise _trap(
                "ic0.call_data_append: the payload of the call exceeds "
                f"{self.limits.max_inter_canister_payload_bytes} bytes"
            )
        p.arg += data

    def ic0_call_with_best_effort_response(self, timeout_seconds: int) -> None:
        p = self._need_pending("ic0.call_with_best_effort_response")
        if p.timeout is not None:
            raise _trap("ic0.call_with_best_effort_response: timeout is already set")
        p.timeout = min(timeout_seconds & 0xFFFFFFFF, self.limits.max_call_timeout_seconds)

    def _add_cycles(self, amount: int) -> None:
        p = self._need_pending("ic0.call_cycles_add")
        if amount > self._liquid():
            raise _trap(
                f"Canister {self.view.canister_id.hex()} is out of cycles: please top up the "
                f"canister with at least {amount - self._liquid()} additional cycles"
            )
        self.balance -= amount
        p.cycles += amount

    def ic0_call_cycles_add(self, amount: int) -> None:
        self._add_cycles(amount & ((1 << 64) - 1))

    def ic0_call_cycles_add128(self, high: int, low: int) -> None:
        self._add_cycles(((high & ((1 << 64) - 1)) << 64) | (low & ((1 << 64) - 1)))

    def ic0_call_perform(self) -> int:
        p = self._need_pending("ic0.call_perform")
        n = self.view.subnet_size
        fee = xnet_call_cost(self.fees, len(p.arg) + len(p.method.encode()), n)
        prepaid = response_transmission_prepayment(self.fees, self.limits, n) + execution_cost(
            self.fees, self.limits.max_instructions_per_message, n, wasm64=self.view.wasm64
        )
        if fee + prepaid > self._liquid():
            self._discard_pending()
            return 2
        self.balance -= fee + prepaid
        self.calls.append(
            OutgoingCall(
                callee=p.callee,
                method_name=p.method,
                arg=bytes(p.arg),
                cycles=p.cycles,
                reply_fun=p.reply[0],
                reply_env=p.reply[1],
                reject_fun=p.reject[0],
                reject_env=p.reject[1],
                cleanup=p.cleanup,
                timeout_seconds=p.timeout,
                prepaid=prepaid,
            )
        )
        self._pending = None
        return 0

    # ---- stable memory --------------------------------------------------------
    def ic0_stable_size(self) -> int:
        size = self.stable.size_pages
        if size > 65536:
            raise _trap("ic0.stable_size: stable memory exceeds 4 GiB; use stable64_size")
        return size

    def ic0_stable_grow(self, pages: int) -> int:
        if self.stable.size_pages > 65536:
            raise _trap("ic0.stable_grow: stable memory exceeds 4 GiB; use stable64_grow")
        pages &= 0xFFFFFFFF
        if self.stable.size_pages + pages > 65536:
            return -1
        return self.stable.grow(pages, self.limits.max_stable_memory_bytes)

    def ic0_stable_write(self, offset: int, src: int, size: int) -> None:
        if self.stable.size_pages > 65536:
            raise _trap("ic0.stable_write: stable memory exceeds 4 GiB; use stable64_write")
        self.ic0_stable64_write(offset & 0xFFFFFFFF, src & 0xFFFFFFFF, size & 0xFFFFFFFF)

    def ic0_stable_read(self, dst: int, offset: int, size: int) -> None:
        if self.stable.size_pages > 65536:
            raise _trap("ic0.stable_read: stable memory exceeds 4 GiB; use stable64_read")
        self.ic0_stable64_read(dst & 0xFFFFFFFF, offset & 0xFFFFFFFF, size & 0xFFFFFFFF)

    def ic0_stable64_size(self) -> int:
        return self.stable.size_pages

    def ic0_stable64_grow(self, pages: int) -> int:
        return self.stable.grow(pages & ((1 << 64) - 1), self.limits.max_stable_memory_bytes)

    def ic0_stable64_write(self, offset: int, src: int, size: int) -> None:
        offset &= (1 << 64) - 1
        size &= (1 << 64) - 1
        if offset + size > self.stable.size_bytes:
            raise WasmTrap(TrapKind.TRAP, "stable memory out of bounds")
        data = self._read(src & ((1 << 64) - 1), size, "ic0.stable64_write")
        self.stable.write(offset, data)

    def ic0_stable64_read(self, dst: int, offset: int, size: int) -> None:
        offset &= (1 << 64) - 1
        size &= (1 << 64) - 1
        if offset + size > self.stable.size_bytes:
            raise WasmTrap(TrapKind.TRAP, "stable memory out of bounds")
        self._write(dst & ((1 << 64) - 1), self.stable.read(offset, size), "ic0.stable64_read")

    # ---- certification, time, timers ----------------------------------------
    def ic0_root_key_size(self) -> int:
        return len(self.view.root_key)

    def ic0_root_key_copy(self, dst: int, offset: int, size: int) -> None:
        self._copy_blob(self.view.root_key, dst, offset, size, "ic0.root_key_copy")

    def ic0_certified_data_set(self, src: int, size: int) -> None:
        if size > self.limits.max_certified_data_bytes:
            raise _trap(
                "ic0_certified_data_set failed because the passed data must be no larger than "
                f"{self.limits.max_certified_data_bytes} bytes. Found {size} bytes."
            )
        self.certified_data = self._read(src, size, "ic0.certified_data_set")

    def ic0_data_certificate_present(self) -> int:
        return 0 if self.view.data_certificate is None else 1

    def ic0_data_certificate_size(self) -> int:
        if self.view.data_certificate is None:
            raise _trap("ic0.data_certificate_size: no certificate available")
        return len(self.view.data_certificate)

    def ic0_data_certificate_copy(self, dst: int, offset: int, size: int) -> None:
        if self.view.data_certificate is None:
            raise _trap("ic0.data_certificate_copy: no certificate available")
        self._copy_blob(self.view.data_certificate, dst, offset, size, "ic0.data_certificate_copy")

    def ic0_time(self) -> int:
        return self.view.time

    def ic0_global_timer_set(self, timestamp: int) -> int:
        previous = self.view.global_timer if self.global_timer is None else self.global_timer
        self.global_timer = timestamp & ((1 << 64) - 1)
        return previous

    def ic0_performance_counter(self, kind: int) -> int:
        if kind == PERFORMANCE_COUNTER_INSTRUCTIONS:
            return self.instructions_used()
        if kind == PERFORMANCE_COUNTER_CALL_CONTEXT:
            return self.input.call_context_instructions + self.instructions_used()
        raise _trap(f"ic0.performance_counter: unknown counter type {kind}")

    def ic0_is_controller(self, src: int, size: int) -> int:
        principal = self._read(src, size, "ic0.is_controller")
        if size > 29:
            raise _trap("ic0.is_controller: the argument is not a valid principal")
        return 1 if principal in self.view.controllers else 0

    def ic0_in_replicated_execution(self) -> int:
        return 1 if self.view.replicated else 0

    def ic0_cost_call(self, method_name_size: int, payload_size: int, dst: int) -> None:
        n = self.view.subnet_size
        cost = (
            xnet_call_cost(self.fees, method_name_size + payload_size, n)
            + response_transmission_prepayment(self.fees, self.limits, n)
            + execution_cost(
                self.fees, self.limits.max_instructions_per_message, n, wasm64=self.view.wasm64
            )
        )
        self._write_u128(dst, cost, "ic0.cost_call")

    def ic0_cost_create_canister(self, dst: int) -> None:
        cost = self.fees.canister_creation_fee * self.view.subnet_size // 13
        self._write_u128(dst, cost, "ic0.cost_create_canister")

    # ---- debugging ----------------------------------------------------------------
    def ic0_debug_print(self, src: int, size: int) -> None:
        mem = self._mem()
        end = min(src + size, mem.size())
        data = mem.read(src, max(0, end - src)) if 0 <= src < mem.size() else b""
        self.charge(len(data))
        self.logs.append(data)
        if self.debug_print_hook is not None:
            self.debug_print_hook(data)

    def ic0_trap(self, src: int, size: int) -> None:
        mem = self._mem()
        end = min(src + size, mem.size())
        data = mem.read(src, max(0, end - src)) if 0 <= src < mem.size() else b""
        raise WasmTrap(TrapKind.CALLED_TRAP, data.decode("utf-8", errors="replace"))


_DISPATCH: dict[str, tuple[frozenset[Context], int, Callable[..., int | None]]] = {
    name: (CONTEXTS[name], OVERHEAD.get(name, 0) + 1, getattr(SystemApi, "ic0_" + name))
    for name in CONTEXTS
}
"""Per ``ic0`` function: allowed contexts, fixed instruction cost, implementation."""


def fixed_instruction_costs() -> dict[str, int]:
    """Return the fixed instruction cost of every ``ic0`` function (1 + its overhead).

    Engines have the instrumentation charge it with the calling segment and set
    ``SystemApi.fixed_costs_prepaid``; per-byte costs are still charged by the call.
    Spec: dfinity/ic ``system_api_complexity.rs`` (fixed part).
    """
    return {name: cost for name, (_, cost, _) in _DISPATCH.items()}

"""Canister state: system state (frozen, evolved) plus live code + execution state.

A canister is *code + state*.  ``CanisterState`` is a frozen attrs value holding
the system state (cycles, controllers, status, call contexts, callbacks...) and,
when code is installed, a ``CanisterRuntime``: the live instance of the code
(a Wasm instance or a Python canister) and its stable memory.  The runtime is a
mutable resource owned by exactly one canister state lineage; the executor
changes it only inside a begin/commit/rollback transaction, so a trapped
execution leaves it as it was.  Everything else is evolved with
``attrs.evolve`` and returned as a new ``CanisterState``.

Spec: interface spec §"Abstract behavior" (canister state: code, heap, stable
memory, certified data, call contexts, balance...); digest §5, §6.1, §6.3.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Protocol

import attrs

from icp.execution.engine import InstanceState
from icp.execution.stable_memory import StableMemory
from icp.execution.system_api import Response, SystemApi


class CanisterStatus(enum.IntEnum):
    """Running / stopping / stopped, as ``ic0.canister_status`` reports it.

    Spec: interface spec §"IC method canister_status"; digest §6.3.
    """

    RUNNING = 1
    STOPPING = 2
    STOPPED = 3


@attrs.frozen(slots=True)
class CanisterSettings:
    """Definite canister settings.

    Spec: interface spec §"IC method update_settings" (digest §6.1).
    """

    controllers: tuple[bytes, ...]
    compute_allocation: int = 0
    memory_allocation: int = 0
    freezing_threshold: int = 2_592_000
    reserved_cycles_limit: int = 5_000_000_000_000
    wasm_memory_limit: int = 3 << 30
    log_visibility: str = "controllers"


@attrs.frozen(slots=True)
class IngressOrigin:
    """A call context opened by an ingress message."""

    message_id: bytes
    sender: bytes


@attrs.frozen(slots=True)
class CanisterOrigin:
    """A call context opened by another canister's call."""

    caller: bytes
    callback_id: int


@attrs.frozen(slots=True)
class SystemOrigin:
    """A call context opened by the system (init, heartbeat, global timer)."""

    task: str


Origin = IngressOrigin | CanisterOrigin | SystemOrigin


@attrs.frozen(slots=True)
class CallContext:
    """An open call context: who is waiting for a response and with what cycles.

    Spec: interface spec §"Call contexts" (abstract behavior).
    """

    origin: Origin
    cycles_available: int  # attached cycles not yet accepted
    responded: bool = False
    instructions: int = 0  # across all executions, for performance_counter(1)


@attrs.frozen(slots=True)
class Callback:
    """What to run when the response to an outgoing call arrives.

    Spec: interface spec §"Inter-canister method calls" (digest §5.4).
    """

    call_context_id: int
    callee: bytes
    reply: tuple[int, int]
    reject: tuple[int, int]
    cleanup: tuple[int, int] | None
    cycles_sent: int
    prepaid: int


class CanisterRuntime(Protocol):
    """Live code + execution state of a canister (Wasm or Python).

    Spec: DESIGN.md "System canisters are canisters": one interface for both.
    """

    module_hash: bytes
    stable: StableMemory

    def method_kind(self, name: str) -> str | None:
        """Return ``"update"``, ``"query"``, ``"composite_query"`` or None."""

    def has_system_method(self, export: str) -> bool:
        """Whether ``canister_init`` etc. is exported."""

    def run(self, export: str, args: tuple[int, ...], api: SystemApi, limit: int) -> int:
        """Run an entry point; return instructions used or raise ``WasmTrap``."""

    def call_closure(self, fun: int, env: int, api: SystemApi, limit: int) -> int:
        """Run a callback closure; like ``run``."""

    def begin(self) -> None:
        """Open a transaction over heap, globals and stable memory."""

    def commit(self) -> None:
        """Keep the transaction's changes."""

    def rollback(self) -> None:
        """Undo the transaction's changes."""

    def memory_bytes(self) -> int:
        """Heap plus stable memory bytes (for storage fees and status)."""

    def is_wasm64(self) -> bool:
        """Whether instructions are charged at the wasm64 rate."""

    def custom_sections(self) -> dict[str, bytes]:
        """``icp:public``/``icp:private`` sections of the module."""

    def snapshot(self) -> InstanceState:
        """Full copy of the execution state (heap/globals or serialized Python state)."""

    def restore(self, state: InstanceState) -> None:
        """Restore from ``snapshot`` output."""


@attrs.frozen(slots=True)
class CanisterState:
    """The full state of one canister.

    Spec: interface spec §"Abstract behavior" (canister state); digest §6.
    """

    canister_id: bytes
    settings: CanisterSettings
    cycles: int
    status: CanisterStatus = CanisterStatus.RUNNING
    version: int = 0
    runtime: CanisterRuntime | None = None
    certified_data: bytes = b""
    global_timer: int = 0
    call_contexts: dict[int, CallContext] = attrs.field(factory=dict)
    callbacks: dict[int, Callback] = attrs.field(factory=dict)
    next_id: int = 1
    stop_requests: tuple[Origin, ...] = ()  # stop_canister callers waiting for "stopped"
    cycles_burned_total: int = 0
    logs: tuple[bytes, ...] = ()

    @property
    def module_hash(self) -> bytes | None:
        """SHA-256 of the installed module, or None when empty."""
        return None if self.runtime is None else self.runtime.module_hash

    def callbacks_of(self, call_context_id: int) -> int:
        """Return the number of outstanding callbacks of a call context."""
        return sum(1 for cb in self.callbacks.values() if cb.call_context_id == call_context_id)

    def state_hash(self) -> bytes:
        """Return a SHA-256 over the canister's persistent state (system + heap + stable).

        O(heap); meant for checkpoints and cross-replica comparison, not per message.
        """
        h = hashlib.sha256(b"\x0ecanister-state")
        h.update(self.canister_id)
        h.update(self.cycles.to_bytes(16, "little"))
        h.update(bytes([self.status]))
        h.update(self.version.to_bytes(8, "little"))
        h.update(self.certified_data)
        h.update(self.global_timer.to_bytes(8, "little"))
        for c in self.settings.controllers:
            h.update(len(c).to_bytes(1, "little") + c)
        if self.runtime is not None:
            h.update(self.runtime.module_hash)
            h.update(self.runtime.snapshot().digest())
            h.update(self.runtime.stable.digest())
        return h.digest()


@attrs.frozen(slots=True)
class PendingResponse:
    """A response produced by an execution, tagged with where it goes."""

    origin: Origin
    response: Response
    refund: int

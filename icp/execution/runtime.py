"""Canister runtimes: Wasm modules and Python canisters behind one interface.

``WasmRuntime`` adapts an engine instance plus stable memory to the
``CanisterRuntime`` protocol.  ``PythonRuntime`` runs a ``PythonCanister``: a
Python class whose methods are marked ``@update``/``@query`` and that talks to
the world only through ``PyApi`` — a typed facade over the very same
``SystemApi`` object Wasm canisters use (same context checks, same effects,
same cycles).  Python canister state is an immutable value replaced by the
methods (``api.state = new``), which makes rollback a pointer swap; its
instruction charge is deterministic: a base cost plus one instruction per byte
of argument and reply (Python bytecode is not metered).

Spec: DESIGN.md ("a canister is code + state whatever the code is"); interface
spec §"System API".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import cbor2

from icp.execution.engine import InstanceState, WasmInstance
from icp.execution.errors import TrapKind, WasmTrap
from icp.execution.stable_memory import StableMemory
from icp.execution.system_api import SystemApi


class WasmRuntime:
    """A Wasm canister: engine instance + stable memory."""

    def __init__(
        self,
        module_hash: bytes,
        instance: WasmInstance,
        parsed: Any,
        stable: StableMemory,
        wasm: bytes = b"",
    ):
        self.wasm = wasm  # the module as installed (for checkpoints)
        self.module_hash = module_hash
        self.instance = instance
        self.parsed = parsed
        self.stable = stable
        self._exports: dict[str, int] = parsed.exported_functions

    @property
    def wasm_module(self) -> bytes:
        """Return the installed module bytes (empty if the runtime was built without them)."""
        return self.wasm

    def method_kind(self, name: str) -> str | None:
        """Return the kind of an exported method, or None."""
        for kind in ("update", "query", "composite_query"):
            if f"canister_{kind} {name}" in self._exports:
                return kind
        return None

    def has_system_method(self, export: str) -> bool:
        """Whether a system entry point such as ``canister_init`` is exported."""
        return export in self._exports or (
            export == "__icp_start" and self.parsed.start is not None
        )

    def run(self, export: str, args: tuple[int, ...], api: SystemApi, limit: int) -> int:
        """Run an export."""
        return self.instance.run(export, args, api, limit)

    def call_closure(self, fun: int, env: int, api: SystemApi, limit: int) -> int:
        """Run a table callback."""
        return self.instance.call_table(fun, env, api, limit)

    def begin(self) -> None:
        """Open a transaction over heap, globals and stable memory."""
        self.instance.begin()
        self.stable.begin()

    def commit(self) -> None:
        """Keep changes."""
        self.instance.commit()
        self.stable.commit()

    def rollback(self) -> None:
        """Undo changes."""
        self.instance.rollback()
        self.stable.rollback()

    def memory_bytes(self) -> int:
        """Heap + stable bytes."""
        return self.instance.memory_size() + self.stable.size_bytes

    def is_wasm64(self) -> bool:
        """Whether memory 0 is 64-bit."""
        return bool(self.parsed.is_memory64)

    def custom_sections(self) -> dict[str, bytes]:
        """Module metadata sections."""
        return dict(self.parsed.public_custom_sections())

    def snapshot(self) -> InstanceState:
        """Full copy of heap and globals."""
        return self.instance.snapshot()

    def restore(self, state: InstanceState) -> None:
        """Restore heap and globals."""
        self.instance.restore(state)


# ---------------------------------------------------------------------------
# Python canisters


def update(fn: Callable[..., None]) -> Callable[..., None]:
    """Mark a ``PythonCanister`` method as an update method."""
    fn.__icp_kind__ = "update"  # type: ignore[attr-defined]
    return fn


def query(fn: Callable[..., None]) -> Callable[..., None]:
    """Mark a ``PythonCanister`` method as a query method."""
    fn.__icp_kind__ = "query"  # type: ignore[attr-defined]
    return fn


class PyApi:
    """The System API as Python canisters see it (bytes in, bytes out).

    Every call goes through ``SystemApi.dispatch``-equivalent checks so Python
    canisters obey the same context rules as Wasm canisters.
    """

    def __init__(self, api: SystemApi, runtime: PythonRuntime) -> None:
        self._api = api
        self._runtime = runtime

    @property
    def state(self) -> Any:
        """The canister's current (immutable) state value."""
        return self._runtime.state

    @state.setter
    def state(self, value: Any) -> None:
        self._runtime.state = value

    def _check(self, name: str) -> None:
        from icp.execution.system_api import CONTEXTS

        if self._api.input.context not in CONTEXTS[name]:
            raise WasmTrap(
                TrapKind.CONTRACT_VIOLATION,
                f'"ic0_{name}" cannot be executed in {self._api.input.context.value} mode',
            )

    def arg(self) -> bytes:
        """Return the argument (or reply payload in a reply callback)."""
        self._check("msg_arg_data_size")
        return self._api.input.arg

    def arg_values(self, types: Sequence[Any]) -> list[Any]:
        """Decode the argument as Candid at ``types``; trap (as a CDK would) on bad input."""
        from icp.candid import CandidError, decode

        try:
            return decode(self.arg(), list(types))
        except CandidError as exc:
            raise WasmTrap(
                TrapKind.CALLED_TRAP, f"failed to decode call arguments: {exc}"
            ) from None

    def reply_values(self, types: Sequence[Any], values: Sequence[Any]) -> None:
        """Reply with Candid-encoded ``values`` at ``types``."""
        from icp.candid import encode

        self.reply(encode(list(types), list(values)))

    def caller(self) -> bytes:
        """Return the caller principal bytes."""
        self._check("msg_caller_size")
        return self._api.input.caller

    def self_id(self) -> bytes:
        """Return the canister's own id."""
        return self._api.view.canister_id

    def time(self) -> int:
        """Return the execution time (ns)."""
        return self._api.view.time

    def reply(self, data: bytes) -> None:
        """Reply with ``data``."""
        self._check("msg_reply")
        self._api._check_not_responded("ic0.msg_reply")
        self._api.charge(len(data))
        self._api.reply_buffer += data
        self._api.ic0_msg_reply()

    def reject(self, message: str) -> None:
        """Reject with CANISTER_REJECT."""
        self._check("msg_reject")
        self._api._check_not_responded("ic0.msg_reject")
        from icp.execution.system_api import Reject

        self._api.response = Reject(4, message)

    def trap(self, message: str) -> None:
        """Trap: roll back this execution."""
        raise WasmTrap(TrapKind.CALLED_TRAP, message)

    def reject_code(self) -> int:
        """Reject code in a callback (0 for reply)."""
        self._check("msg_reject_code")
        return self._api.input.reject_code

    def reject_message(self) -> str:
        """Reject message in a reject callback."""
        self._check("msg_reject_msg_size")
        return self._api.input.reject_message

    def cycles_available(self) -> int:
        """Cycles attached to the call and not yet accepted."""
        self._check("msg_cycles_available128")
        return self._api._available()

    def cycles_accept(self, max_amount: int) -> int:
        """Accept up to ``max_amount`` attached cycles."""
        self._check("msg_cycles_accept128")
        return self._api._accept(max_amount)

    def balance(self) -> int:
        """Current cycles balance."""
        return self._api.balance

    def certified_data_set(self, data: bytes) -> None:
        """Set certified data (≤ 32 bytes)."""
        self._check("certified_data_set")
        if len(data) > self._api.limits.max_certified_data_bytes:
            raise WasmTrap(TrapKind.CONTRACT_VIOLATION, "certified data must be at most 32 bytes")
        self._api.certified_data = bytes(data)

    def call(
        self,
        callee: bytes,
        method: str,
        arg: bytes,
        *,
        cycles: int = 0,
        on_reply: Callable[[PyApi], None],
        on_reject: Callable[[PyApi], None],
    ) -> int:
        """Perform an inter-canister call; callbacks run later in Ry/Rt context."""
        self._check("call_new")
        reply_id = self._runtime.register(on_reply)
        reject_id = self._runtime.register(on_reject)
        from icp.execution.system_api import _PendingCall

        self._api._discard_pending()
        self._api._pending = _PendingCall(callee, method, (reply_id, 0), (reject_id, 0))
        self._api._pending.arg += arg
        if cycles:
            self._api._add_cycles(cycles)
        return self._api.ic0_call_perform()

    def stable_write(self, offset: int, data: bytes) -> None:
        """Write to stable memory (trap if out of bounds)."""
        if offset + len(data) > self._api.stable.size_bytes:
            raise WasmTrap(TrapKind.TRAP, "stable memory out of bounds")
        self._api.charge(len(data))
        self._api.stable.write(offset, data)

    def stable_read(self, offset: int, size: int) -> bytes:
        """Read stable memory (trap if out of bounds)."""
        if offset + size > self._api.stable.size_bytes:
            raise WasmTrap(TrapKind.TRAP, "stable memory out of bounds")
        self._api.charge(size)
        return self._api.stable.read(offset, size)

    def stable_grow(self, pages: int) -> int:
        """Grow stable memory by ``pages`` 64 KiB pages."""
        return self._api.stable.grow(pages, self._api.limits.max_stable_memory_bytes)

    def debug_print(self, text: str) -> None:
        """Log a line."""
        self._api.logs.append(text.encode())


class PythonCanister:
    """Base class of canisters written in Python.

    Subclasses define ``init(api)`` (optional), methods marked ``@update`` /
    ``@query`` taking a ``PyApi``, and ``encode_state``/``decode_state`` for
    checkpoints (default: CBOR of the state value).
    """

    BASE_INSTRUCTIONS: ClassVar[int] = 10_000
    name: ClassVar[str] = "python-canister"

    def init(self, api: PyApi) -> None:
        """Run at install (default: nothing)."""

    def post_upgrade(self, api: PyApi) -> None:
        """Run after an upgrade (default: nothing; state is kept)."""

    def encode_state(self, state: Any) -> bytes:
        """Serialize the state for checkpoints."""
        return cbor2.dumps(state, canonical=True)

    def decode_state(self, data: bytes) -> Any:
        """Deserialize a checkpointed state."""
        return cbor2.loads(data)

    def code_hash(self) -> bytes:
        """A stable identifier of the code (class qualified name)."""
        return hashlib.sha256(
            f"python:{type(self).__module__}.{type(self).__qualname__}".encode()
        ).digest()


class PythonRuntime:
    """Runs a ``PythonCanister`` with Wasm-like transactions and charges."""

    def __init__(self, code: PythonCanister, stable: StableMemory | None = None) -> None:
        self.code = code
        self.module_hash = code.code_hash()
        self.stable = stable if stable is not None else StableMemory()
        self.state: Any = None
        self._saved: Any = None
        self._closures: dict[int, Callable[[PyApi], None]] = {}
        self._next_closure = 1
        self._methods: dict[str, str] = {}
        for attr in dir(type(code)):
            fn = getattr(type(code), attr, None)
            kind = getattr(fn, "__icp_kind__", None)
            if kind is not None:
                self._methods[attr] = kind

    def register(self, fn: Callable[[PyApi], None]) -> int:
        """Register a callback closure; return its id (the 'table index')."""
        idx = self._next_closure
        self._next_closure += 1
        self._closures[idx] = fn
        return idx

    def method_kind(self, name: str) -> str | None:
        """Return the method kind or None."""
        return self._methods.get(name)

    def has_system_method(self, export: str) -> bool:
        """Python canisters always have init and post_upgrade."""
        return export in ("canister_init", "canister_post_upgrade")

    def _charge(self, api: SystemApi, limit: int) -> int:
        used = self.code.BASE_INSTRUCTIONS + len(api.input.arg) + len(api.reply_buffer)
        if used > limit:
            raise WasmTrap(
                TrapKind.OUT_OF_INSTRUCTIONS,
                f"Canister exceeded the limit of {limit} instructions "
                "for single message execution.",
            )
        return used

    def run(self, export: str, args: tuple[int, ...], api: SystemApi, limit: int) -> int:
        """Run ``canister_init``/``canister_post_upgrade``/``canister_update m``/...."""
        py = PyApi(api, self)
        if export == "canister_init":
            self.code.init(py)
        elif export == "canister_post_upgrade":
            self.code.post_upgrade(py)
        elif export.startswith("canister_"):
            name = export.split(" ", 1)[1] if " " in export else ""
            fn = getattr(self.code, name, None)
            if fn is None or name not in self._methods:
                raise WasmTrap(TrapKind.CONTRACT_VIOLATION, f"no method {name!r}")
            fn(py)
        return self._charge(api, limit)

    def call_closure(self, fun: int, env: int, api: SystemApi, limit: int) -> int:
        """Run a registered callback."""
        fn = self._closures.get(fun)
        if fn is None:
            raise WasmTrap(TrapKind.TRAP, f"unknown callback {fun}")
        fn(PyApi(api, self))
        return self._charge(api, limit)

    def begin(self) -> None:
        """Save the state pointer and journal stable memory."""
        self._saved = self.state
        self.stable.begin()

    def commit(self) -> None:
        """Keep changes."""
        self.stable.commit()

    def rollback(self) -> None:
        """Restore the saved state pointer and stable memory."""
        self.state = self._saved
        self.stable.rollback()

    def memory_bytes(self) -> int:
        """Serialized state + stable bytes."""
        return len(self.code.encode_state(self.state)) + self.stable.size_bytes

    def is_wasm64(self) -> bool:
        """Python canisters are charged at the wasm32 rate."""
        return False

    def custom_sections(self) -> dict[str, bytes]:
        """No metadata sections."""
        return {}

    def snapshot(self) -> InstanceState:
        """Serialized state as the 'heap'."""
        return InstanceState(self.code.encode_state(self.state), ())

    def restore(self, state: InstanceState) -> None:
        """Restore from serialized state."""
        self.state = self.code.decode_state(state.heap)

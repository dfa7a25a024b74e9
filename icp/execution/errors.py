"""Typed execution errors carrying the IC reject code and error code.

Every failure the execution layer reports to a caller is a ``CanisterError``: a
reject code (1..6), the IC's ``IC<nnnn>`` error code and the IC's message text.
Engine-level failures inside a message (traps) are ``WasmTrap`` and are turned
into ``CanisterError`` by the executor.

Spec: interface spec §"Reject codes"; digest §1.7 (error codes from dfinity/ic
``rs/types/error_types``).
"""

from __future__ import annotations

import enum


class RejectCode(enum.IntEnum):
    """Reject codes of the IC.

    Spec: interface spec §"Reject codes"; digest §1.7.
    """

    SYS_FATAL = 1
    SYS_TRANSIENT = 2
    DESTINATION_INVALID = 3
    CANISTER_REJECT = 4
    CANISTER_ERROR = 5
    SYS_UNKNOWN = 6

    def variant(self) -> str:
        """Return the Rust enum variant name, e.g. ``SysTransient``."""
        return _camel(self.name)


def _camel(name: str) -> str:
    return "".join(word.capitalize() for word in name.split("_"))


class ErrorCode(enum.IntEnum):
    """Replica error codes; the first digit is the reject code.

    Spec: digest §1.7 (dfinity/ic ``rs/types/error_types``).
    """

    SUBNET_OVERSUBSCRIBED = 101
    MAX_NUMBER_OF_CANISTERS_REACHED = 102
    CANISTER_QUEUE_FULL = 201
    INGRESS_MESSAGE_TIMEOUT = 202
    CANISTER_QUEUE_NOT_EMPTY = 203
    INGRESS_HISTORY_FULL = 204
    CANISTER_ID_ALREADY_EXISTS = 205
    STOP_CANISTER_REQUEST_TIMEOUT = 206
    CANISTER_OUT_OF_CYCLES = 207
    CERTIFIED_STATE_UNAVAILABLE = 208
    CANISTER_INSTALL_CODE_RATE_LIMITED = 209
    CANISTER_HEAP_DELTA_RATE_LIMITED = 210
    CANISTER_NOT_FOUND = 301
    CANISTER_SNAPSHOT_NOT_FOUND = 305
    INSUFFICIENT_MEMORY_ALLOCATION = 402
    INSUFFICIENT_CYCLES_FOR_CREATE_CANISTER = 403
    SUBNET_NOT_FOUND = 404
    CANISTER_NOT_HOSTED_BY_SUBNET = 405
    CANISTER_REJECTED_MESSAGE = 406
    UNKNOWN_MANAGEMENT_MESSAGE = 407
    INVALID_MANAGEMENT_PAYLOAD = 408
    CANISTER_SNAPSHOT_IMMUTABLE = 409
    CANISTER_TRAPPED = 502
    CANISTER_CALLED_TRAP = 503
    CANISTER_CONTRACT_VIOLATION = 504
    CANISTER_INVALID_WASM = 505
    CANISTER_DID_NOT_REPLY = 506
    CANISTER_OUT_OF_MEMORY = 507
    CANISTER_STOPPED = 508
    CANISTER_STOPPING = 509
    CANISTER_NOT_STOPPED = 510
    CANISTER_STOPPING_CANCELLED = 511
    CANISTER_INVALID_CONTROLLER = 512
    CANISTER_FUNCTION_NOT_FOUND = 513
    CANISTER_NON_EMPTY = 514
    QUERY_CALL_GRAPH_LOOP_DETECTED = 517
    INSUFFICIENT_CYCLES_IN_CALL = 520
    CANISTER_WASM_ENGINE_ERROR = 521
    CANISTER_INSTRUCTION_LIMIT_EXCEEDED = 522
    CANISTER_MEMORY_ACCESS_LIMIT_EXCEEDED = 524
    QUERY_CALL_GRAPH_TOO_DEEP = 525
    QUERY_CALL_GRAPH_TOTAL_INSTRUCTION_LIMIT_EXCEEDED = 526
    COMPOSITE_QUERY_CALLED_IN_REPLICATED_MODE = 527
    QUERY_TIME_LIMIT_EXCEEDED = 528
    QUERY_CALL_GRAPH_INTERNAL = 529
    INSUFFICIENT_CYCLES_IN_COMPUTE_ALLOCATION = 530
    INSUFFICIENT_CYCLES_IN_MEMORY_ALLOCATION = 531
    INSUFFICIENT_CYCLES_IN_MEMORY_GROW = 532
    RESERVED_CYCLES_LIMIT_EXCEEDED_IN_MEMORY_ALLOCATION = 533
    RESERVED_CYCLES_LIMIT_EXCEEDED_IN_MEMORY_GROW = 534
    INSUFFICIENT_CYCLES_IN_MESSAGE_MEMORY_GROW = 535
    CANISTER_METHOD_NOT_FOUND = 536
    CANISTER_WASM_MODULE_NOT_FOUND = 537
    CANISTER_ALREADY_INSTALLED = 538
    CANISTER_WASM_MEMORY_LIMIT_EXCEEDED = 539
    RESERVED_CYCLES_LIMIT_IS_TOO_LOW = 540
    DEADLINE_EXPIRED = 601
    RESPONSE_DROPPED = 602

    @property
    def reject_code(self) -> RejectCode:
        """Return the reject code encoded in the first digit."""
        return RejectCode(self.value // 100)

    def text(self) -> str:
        """Render as the IC does, e.g. ``IC0503``."""
        return f"IC{self.value:04d}"

    def variant(self) -> str:
        """Return the Rust enum variant name, e.g. ``CanisterCalledTrap``."""
        return _camel(self.name)


class ExecutionError(Exception):
    """Base class of all execution-layer errors."""


class CanisterError(ExecutionError):
    """A reject produced by the system or a canister, with IC codes and text.

    Spec: interface spec §"Reject codes"; digest §1.7.
    """

    def __init__(
        self, reject_code: RejectCode, message: str, error_code: ErrorCode | None = None
    ) -> None:
        super().__init__(f"{error_code.text() if error_code else 'reject'} {message}")
        self.reject_code = reject_code
        self.message = message
        self.error_code = error_code

    @classmethod
    def of(cls, error_code: ErrorCode, message: str) -> CanisterError:
        """Build from an error code, deriving the reject code from its first digit."""
        return cls(error_code.reject_code, message, error_code)


class InvalidWasm(CanisterError):
    """The module fails validation at install (IC0505 CanisterInvalidWasm).

    Spec: interface spec §"Canister module format"; digest §5.1, §7.2.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(
            RejectCode.CANISTER_ERROR,
            f"Wasm module of canister is invalid: {reason}",
            ErrorCode.CANISTER_INVALID_WASM,
        )
        self.reason = reason


class TrapKind(enum.Enum):
    """Why a Wasm execution stopped abnormally."""

    TRAP = "trap"  # a Wasm trap (unreachable, out of bounds, ...)
    CALLED_TRAP = "called_trap"  # ic0.trap
    CONTRACT_VIOLATION = "contract_violation"  # System API misuse
    OUT_OF_INSTRUCTIONS = "out_of_instructions"
    OUT_OF_MEMORY = "out_of_memory"


class WasmTrap(ExecutionError):
    """A trap inside one message execution; all of its state changes are rolled back.

    Spec: interface spec §"Traps" / §"Execution" (trap discards changes).
    """

    def __init__(self, kind: TrapKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def to_canister_error(self, canister_text: str) -> CanisterError:
        """Render as the IC's reject for a trapped message.

        Spec: dfinity/ic ``HypervisorError::to_user_error`` texts (digest §1.7).
        """
        prefix = f"Error from Canister {canister_text}: "
        if self.kind is TrapKind.CALLED_TRAP:
            return CanisterError.of(
                ErrorCode.CANISTER_CALLED_TRAP,
                prefix + f"Canister called `ic0.trap` with message: '{self.message}'",
            )
        if self.kind is TrapKind.CONTRACT_VIOLATION:
            return CanisterError.of(
                ErrorCode.CANISTER_CONTRACT_VIOLATION,
                prefix + f"Canister violated contract: {self.message}",
            )
        if self.kind is TrapKind.OUT_OF_INSTRUCTIONS:
            return CanisterError.of(
                ErrorCode.CANISTER_INSTRUCTION_LIMIT_EXCEEDED, prefix + self.message
            )
        if self.kind is TrapKind.OUT_OF_MEMORY:
            return CanisterError.of(ErrorCode.CANISTER_OUT_OF_MEMORY, prefix + self.message)
        return CanisterError.of(
            ErrorCode.CANISTER_TRAPPED, prefix + f"Canister trapped: {self.message}"
        )

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


class ErrorCode(enum.IntEnum):
    """Replica error codes; the first digit is the reject code.

    Spec: digest §1.7 (dfinity/ic ``rs/types/error_types``).
    """

    SUBNET_OVERSUBSCRIBED = 101
    MAX_NUMBER_OF_CANISTERS_REACHED = 102
    CANISTER_QUEUE_FULL = 201
    CANISTER_OUT_OF_CYCLES = 207
    CANISTER_NOT_FOUND = 301
    INSUFFICIENT_MEMORY_ALLOCATION = 402
    INSUFFICIENT_CYCLES_FOR_CREATE_CANISTER = 403
    CANISTER_NOT_HOSTED_BY_SUBNET = 405
    CANISTER_REJECTED_MESSAGE = 406
    UNKNOWN_MANAGEMENT_MESSAGE = 407
    INVALID_MANAGEMENT_PAYLOAD = 408
    CANISTER_TRAPPED = 502
    CANISTER_CALLED_TRAP = 503
    CANISTER_CONTRACT_VIOLATION = 504
    CANISTER_INVALID_WASM = 505
    CANISTER_DID_NOT_REPLY = 506
    CANISTER_OUT_OF_MEMORY = 507
    CANISTER_STOPPED = 508
    CANISTER_STOPPING = 509
    CANISTER_NOT_STOPPED = 510
    CANISTER_INVALID_CONTROLLER = 512
    CANISTER_FUNCTION_NOT_FOUND = 513
    CANISTER_NON_EMPTY = 514
    CANISTER_WASM_ENGINE_ERROR = 521
    CANISTER_INSTRUCTION_LIMIT_EXCEEDED = 522
    QUERY_CALL_GRAPH_LOOP_DETECTED = 517
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

"""Cycles fee schedule, execution limits and the pure cost formulas of the IC.

Fees and limits are *data* (``FeeSchedule``, ``ExecutionLimits``) passed into the
executor; the formulas are pure functions of them.  Every charge is computed for
the reference 13-node subnet and scaled to the actual subnet size with
``scale_cost`` (multiply first, then floor-divide), applied to the whole amount
of one charge, as the replica's ``CyclesAccountManager`` does.

Spec: digest §7.1 (dfinity/ic ``rs/config/src/subnet_config.rs``,
``rs/cycles_account_manager``) and §7.2 (resource limits).
"""

from __future__ import annotations

import attrs

from icp.types import Cycles

REFERENCE_SUBNET_SIZE = 13
GIB = 1 << 30
MIB = 1 << 20
SECONDS_PER_DAY = 86_400
MAX_CYCLES = (1 << 128) - 1


@attrs.frozen(slots=True)
class FeeSchedule:
    """Cycle fees of the reference (13-node) application subnet.

    Spec: digest §7.1 (``CyclesAccountManagerConfig::application_subnet()``).
    """

    canister_creation_fee: int = 500_000_000_000
    compute_percent_allocated_per_second_fee: int = 10_000_000
    update_message_execution_fee: int = 5_000_000
    ten_update_instructions_execution_fee: int = 10
    ten_update_instructions_execution_fee_wasm64: int = 20
    xnet_call_fee: int = 260_000
    xnet_byte_transmission_fee: int = 1_000
    ingress_message_reception_fee: int = 1_200_000
    ingress_byte_reception_fee: int = 2_000
    gib_storage_per_second_fee: int = 127_000
    reference_subnet_size: int = REFERENCE_SUBNET_SIZE

    @classmethod
    def application_subnet(cls) -> FeeSchedule:
        """Return the current application-subnet schedule."""
        return cls()

    @classmethod
    def system_subnet(cls) -> FeeSchedule:
        """Return the system-subnet schedule: every fee is zero.

        Spec: digest §7.1 ("``system_subnet()`` sets every fee to 0").
        """
        return cls(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


@attrs.frozen(slots=True)
class ExecutionLimits:
    """Per-message instruction limits and memory/payload limits.

    Spec: digest §7.2 (``SchedulerConfig``, ``execution_environment.rs``, ``rs/limits``).
    """

    max_instructions_per_message: int = 40_000_000_000
    max_instructions_per_query: int = 5_000_000_000
    max_instructions_per_install_code: int = 300_000_000_000
    max_instructions_per_inspect_message: int = 200_000_000
    max_wasm32_memory_bytes: int = 4 * GIB
    max_wasm64_memory_bytes: int = 6 * GIB
    default_wasm_memory_limit: int = 3 * GIB
    max_stable_memory_bytes: int = 500 * GIB
    max_reply_bytes_replicated: int = 2 * MIB
    max_reply_bytes_non_replicated: int = 3 * MIB
    max_inter_canister_payload_bytes: int = 2 * MIB
    max_certified_data_bytes: int = 32
    max_call_timeout_seconds: int = 300
    max_controllers: int = 10
    default_freezing_threshold_seconds: int = 2_592_000
    default_reserved_cycles_limit: int = 5_000_000_000_000
    default_provisional_cycles: int = 100_000_000_000_000

    @classmethod
    def application_subnet(cls) -> ExecutionLimits:
        """Return the mainnet application-subnet limits."""
        return cls()

    @classmethod
    def system_subnet(cls) -> ExecutionLimits:
        """Return the mainnet system-subnet limits (50 B per message/query, 1 T install)."""
        return cls(
            max_instructions_per_message=50_000_000_000,
            max_instructions_per_query=50_000_000_000,
            max_instructions_per_install_code=1_000_000_000_000,
        )

    @classmethod
    def testing(cls, per_message: int = 5_000_000_000) -> ExecutionLimits:
        """Return limits with a smaller per-message budget, for fast hostile-code tests."""
        return cls(
            max_instructions_per_message=per_message,
            max_instructions_per_query=per_message,
            max_instructions_per_install_code=per_message * 4,
        )


def scale_cost(fees: FeeSchedule, cycles: int, subnet_size: int) -> Cycles:
    """Scale a 13-node cost to ``subnet_size`` nodes (multiply, then floor-divide).

    Spec: digest §7.1 ``scale_cost(c, n) = c * n / 13``.
    """
    return Cycles(cycles * subnet_size // fees.reference_subnet_size)


def execution_cost(
    fees: FeeSchedule, instructions: int, subnet_size: int, *, wasm64: bool = False
) -> Cycles:
    """Return the charge for executing one message of ``instructions`` instructions.

    Spec: digest §7.1 (``execution_cost``: base fee + fee10 * instructions / 10).
    """
    fee10 = (
        fees.ten_update_instructions_execution_fee_wasm64
        if wasm64
        else fees.ten_update_instructions_execution_fee
    )
    return scale_cost(
        fees, fees.update_message_execution_fee + fee10 * instructions // 10, subnet_size
    )


def instructions_refund(
    fees: FeeSchedule, unused_instructions: int, subnet_size: int, *, wasm64: bool = False
) -> Cycles:
    """Return cycles refunded for instructions a prepaid message did not use.

    Spec: digest §7.1 (``refund_unused_execution_cycles``).
    """
    fee10 = (
        fees.ten_update_instructions_execution_fee_wasm64
        if wasm64
        else fees.ten_update_instructions_execution_fee
    )
    return scale_cost(fees, fee10 * unused_instructions // 10, subnet_size)


def ingress_induction_cost(fees: FeeSchedule, message_bytes: int, subnet_size: int) -> Cycles:
    """Return the charge for inducting one ingress message of ``message_bytes`` bytes.

    Spec: digest §7.1 (``ingress_induction_cost``).
    """
    return scale_cost(
        fees,
        fees.ingress_message_reception_fee + fees.ingress_byte_reception_fee * message_bytes,
        subnet_size,
    )


def xnet_call_cost(fees: FeeSchedule, request_bytes: int, subnet_size: int) -> Cycles:
    """Return the fee withdrawn by ``call_perform`` for sending a request.

    Spec: digest §7.1 (call charging).
    """
    return scale_cost(
        fees, fees.xnet_call_fee + fees.xnet_byte_transmission_fee * request_bytes, subnet_size
    )


def response_transmission_prepayment(
    fees: FeeSchedule, limits: ExecutionLimits, subnet_size: int
) -> Cycles:
    """Return the prepayment for transmitting the response of a call.

    Spec: digest §7.1 (``prepayment_for_response_transmission``).
    """
    return scale_cost(
        fees, fees.xnet_byte_transmission_fee * limits.max_inter_canister_payload_bytes, subnet_size
    )


def response_transmission_refund(
    fees: FeeSchedule, limits: ExecutionLimits, response_bytes: int, subnet_size: int
) -> Cycles:
    """Return the unused part of the response-transmission prepayment.

    Spec: digest §7.1 (transmission refund = prepayment − scale(1_000·bytes)).
    """
    prepaid = response_transmission_prepayment(fees, limits, subnet_size)
    used = scale_cost(fees, fees.xnet_byte_transmission_fee * response_bytes, subnet_size)
    return Cycles(max(0, prepaid - used))


def memory_cost(fees: FeeSchedule, nbytes: int, seconds: int, subnet_size: int) -> Cycles:
    """Return the storage charge for ``nbytes`` held for ``seconds``.

    Spec: digest §7.1 (storage = bytes·fee·secs / 2^30, scaled).
    """
    return scale_cost(fees, nbytes * fees.gib_storage_per_second_fee * seconds // GIB, subnet_size)


def idle_cycles_burned_per_day(
    fees: FeeSchedule,
    memory_bytes: int,
    memory_allocation: int,
    compute_allocation: int,
    subnet_size: int,
) -> Cycles:
    """Return the idle burn rate per day (memory + compute allocation).

    Spec: digest §7.1 (freezing: idle burn rate per day).
    """
    mem = memory_cost(fees, max(memory_bytes, memory_allocation), SECONDS_PER_DAY, subnet_size)
    compute = scale_cost(
        fees,
        fees.compute_percent_allocated_per_second_fee * SECONDS_PER_DAY * compute_allocation,
        subnet_size,
    )
    return Cycles(mem + compute)


def freezing_limit(
    fees: FeeSchedule,
    *,
    freezing_threshold_seconds: int,
    memory_bytes: int,
    memory_allocation: int,
    compute_allocation: int,
    reserved_balance: int,
    subnet_size: int,
) -> Cycles:
    """Return the balance below which the canister is frozen.

    Spec: digest §7.1 (threshold = idle_rate · secs / 86_400 − reserved, saturating).
    """
    rate = idle_cycles_burned_per_day(
        fees, memory_bytes, memory_allocation, compute_allocation, subnet_size
    )
    return Cycles(max(0, rate * freezing_threshold_seconds // SECONDS_PER_DAY - reserved_balance))

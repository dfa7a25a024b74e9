"""Per-subnet configuration of message routing and execution: data, passed in.

Spec: protocol digest §4.5 (scheduler limits per subnet type, from dfinity/ic
``rs/config/src/subnet_config.rs``), §4.2 (ingress limits), §4.3 (stream limits).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Final

import attrs

from icp.execution.executor import ExecutionEnvironment
from icp.messaging.ingress import (
    APPLICATION_SUBNET_LIMITS,
    SYSTEM_SUBNET_LIMITS,
    EnvelopeCache,
    IngressLimits,
)
from icp.messaging.xnet import DEFAULT_STREAM_MESSAGE_LIMIT, SYSTEM_SUBNET_STREAM_MSG_LIMIT
from icp.principal import Principal
from icp.state.replicated_state import NetworkTopology
from icp.types import RegistryVersion

DEFAULT_QUEUE_CAPACITY: Final = 500
"""Requests one canister may have waiting in another's input queue (dfinity/ic)."""

PRIORITY_RESET_ROUNDS: Final = 24 * 3600
"""Accumulated priorities are reset every ~day of rounds (protocol digest §4.5)."""


class SubnetType(enum.Enum):
    """Application subnets charge cycles; system subnets (the NNS) do not.

    Spec: protocol digest §4.6 ("System subnets: all execution fees 0").
    """

    APPLICATION = "application"
    SYSTEM = "system"


@attrs.frozen(slots=True)
class SchedulerConfig:
    """Instruction budgets of one execution round.

    ``max_instructions_per_round`` is the budget of the whole round (we run the
    round on one thread; the IC splits it over ``scheduler_cores`` threads).  A
    message always runs to completion within its per-message limit (no deterministic
    time slicing): a round ends at the first message that starts after the budget
    is used up.
    Spec: protocol digest §4.5 (max_instructions_per_round 4 B app / 7 B system,
    instruction_overhead_per_execution 2 M, per canister 8 M, 4 scheduler cores).
    """

    max_instructions_per_round: int = 4_000_000_000
    max_instructions_per_slice: int = 2_000_000_000  # per canister per inner iteration
    instruction_overhead_per_execution: int = 2_000_000
    instruction_overhead_per_canister: int = 8_000_000
    scheduler_cores: int = 4
    max_inner_iterations: int = 100  # local call chains executed within one round
    priority_reset_rounds: int = PRIORITY_RESET_ROUNDS

    @classmethod
    def application_subnet(cls) -> SchedulerConfig:
        """Return the application-subnet limits."""
        return cls()

    @classmethod
    def system_subnet(cls) -> SchedulerConfig:
        """Return the system-subnet limits (7 B instructions per round)."""
        return cls(max_instructions_per_round=7_000_000_000)


@attrs.frozen(slots=True)
class SubnetExecutionConfig:
    """Everything ``execute_batch`` needs to know about its subnet, besides the state.

    ``topology_at``, when given, returns the registry's view of the network at a
    registry version; the view at the batch's registry version replaces the state's
    topology (keys, routing table) when it differs.
    Spec: protocol digest §4.1 (batch processing by message routing), §4.5, §4.2, §4.3.
    """

    subnet_id: Principal
    env: ExecutionEnvironment
    subnet_type: SubnetType = SubnetType.APPLICATION
    ingress_limits: IngressLimits = APPLICATION_SUBNET_LIMITS
    scheduler: SchedulerConfig = SchedulerConfig()
    max_stream_messages: int = DEFAULT_STREAM_MESSAGE_LIMIT  # back-pressure per stream
    max_queue_requests: int = DEFAULT_QUEUE_CAPACITY  # requests per (sender, receiver) queued
    max_slice_messages: int = 1_000  # messages the payload builder pulls per slice
    max_xnet_bytes_per_block: int = 4 * 1024 * 1024
    topology_at: Callable[[RegistryVersion], NetworkTopology] | None = attrs.field(
        default=None, eq=False, repr=False
    )
    envelopes: EnvelopeCache | None = attrs.field(default=None, eq=False, repr=False)
    """Per-process memo of envelope parsing (speed only; None parses every time)."""

    @property
    def subnet_size(self) -> int:
        """Return the number of nodes (fees scale with it)."""
        return self.env.subnet_size

    @classmethod
    def for_subnet(
        cls,
        subnet_id: Principal,
        env: ExecutionEnvironment,
        subnet_type: SubnetType = SubnetType.APPLICATION,
        topology_at: Callable[[RegistryVersion], NetworkTopology] | None = None,
        envelopes: EnvelopeCache | None = None,
    ) -> SubnetExecutionConfig:
        """Return the preset limits for an application or a system subnet."""
        system = subnet_type is SubnetType.SYSTEM
        return cls(
            subnet_id=subnet_id,
            env=env,
            subnet_type=subnet_type,
            ingress_limits=SYSTEM_SUBNET_LIMITS if system else APPLICATION_SUBNET_LIMITS,
            scheduler=SchedulerConfig.system_subnet()
            if system
            else SchedulerConfig.application_subnet(),
            max_stream_messages=SYSTEM_SUBNET_STREAM_MSG_LIMIT
            if system
            else DEFAULT_STREAM_MESSAGE_LIMIT,
            topology_at=topology_at,
            envelopes=envelopes,
        )

"""Fee formulas against the spec digest's worked example (§7.1.1)."""

from __future__ import annotations

from icp.execution.cycles import (
    ExecutionLimits,
    FeeSchedule,
    execution_cost,
    ingress_induction_cost,
    instructions_refund,
)


def test_worked_example_13_and_4_nodes() -> None:
    f = FeeSchedule.application_subnet()
    assert ingress_induction_cost(f, 1024, 13) + execution_cost(f, 10_000_000, 13) == 18_248_000
    assert ingress_induction_cost(f, 1024, 4) == 999_384
    assert execution_cost(f, 10_000_000, 4) == 4_615_384
    limit = ExecutionLimits().max_instructions_per_message
    prepaid = execution_cost(f, limit, 4)
    assert prepaid == 12_309_230_769
    assert prepaid - instructions_refund(f, limit - 10_000_000, 4) == 4_615_385
    assert execution_cost(f, limit, 13) == 40_005_000_000


def test_system_subnet_is_free() -> None:
    f = FeeSchedule.system_subnet()
    assert execution_cost(f, 10**9, 40) == 0 and ingress_induction_cost(f, 10**6, 40) == 0

"""Run scripted messages on one engine instance (shared by the table and segment tests).

Each step is one message: a context, an entry point (an export name, a table index
called with env 0, or a ``(table index, env)`` callback) and whether the message's
transaction is committed or rolled back.  The log holds the reply value (or
``"trap"``) and the instructions used, so two engines can be compared step by step.
"""

from __future__ import annotations

from icp.execution.cycles import ExecutionLimits, FeeSchedule
from icp.execution.errors import TrapKind, WasmTrap
from icp.execution.stable_memory import StableMemory
from icp.execution.system_api import CanisterView, Context, ExecutionInput, Reply, SystemApi

VIEW = CanisterView(
    canister_id=b"\x00" * 8 + b"\x01\x01", subnet_id=b"\x01", controllers=(b"\x04",), status=1,
    version=0, balance=10**15, freezing_limit=0, time=1_700_000_000_000_000_000, global_timer=0,
    certified_data=b"",
)  # fmt: skip

Entry = str | int | tuple[int, int]
Step = tuple[Context, Entry, str]


def message_api(ctx: Context = Context.U) -> SystemApi:
    """Return the System API of one message from controller ``0x04``."""
    return SystemApi(
        ExecutionInput(ctx, caller=b"\x04"), VIEW, StableMemory(), ExecutionLimits(),
        FeeSchedule(), 10**9,
    )  # fmt: skip


def reply_value(api: SystemApi) -> object:
    """Return the little-endian integer a message replied, or ``"ok"`` if it did not."""
    resp = api.response
    if isinstance(resp, Reply):
        return int.from_bytes(resp.data, "little")
    return "ok"


def run_steps(
    inst: object, steps: list[Step], *, trap_kind: TrapKind | None = None
) -> list[tuple[object, int]]:
    """Run ``steps`` as messages on ``inst``; return (result, instructions) per step.

    ``trap_kind``: every trap must be of this kind.
    """
    log: list[tuple[object, int]] = []
    for ctx, entry, end in steps:
        api = message_api(ctx)
        inst.begin()  # type: ignore[attr-defined]
        try:
            if isinstance(entry, str):
                used = inst.run(entry, (), api, 10**9)  # type: ignore[attr-defined]
            else:
                index, env = (entry, 0) if isinstance(entry, int) else entry
                used = inst.call_table(index, env, api, 10**9)  # type: ignore[attr-defined]
        except WasmTrap as trap:
            assert trap_kind is None or trap.kind == trap_kind, trap
            inst.rollback()  # type: ignore[attr-defined]
            log.append(("trap", api.instructions_used()))
            continue
        if end == "commit":
            inst.commit()  # type: ignore[attr-defined]
        else:
            inst.rollback()  # type: ignore[attr-defined]
        log.append((reply_value(api), used))
    return log

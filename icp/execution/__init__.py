"""icp.execution: Wasm engines, the ic0 System API, message execution, cycles.

The curated surface; see ``docs/execution.md``.

Spec: interface spec §5 (System API), §6 (management canister), §7 (cycles).
"""

from icp.execution.canister import CanisterState, CanisterStatus
from icp.execution.cycles import ExecutionLimits, FeeSchedule
from icp.execution.errors import CanisterError, ErrorCode, InvalidWasm, RejectCode, WasmTrap
from icp.execution.executor import (
    CanisterRequest,
    CanisterResponse,
    ExecutionEnvironment,
    IngressMessage,
    IngressResult,
    execute_message,
    execute_query,
    install_code,
    new_canister,
)
from icp.execution.pywasm_engine import PywasmEngine
from icp.execution.router import Router
from icp.execution.runtime import PyApi, PythonCanister, query, update
from icp.execution.system_api import Reject, Reply
from icp.execution.wasmtime_engine import WasmtimeEngine

__all__ = [
    "CanisterError",
    "CanisterRequest",
    "CanisterResponse",
    "CanisterState",
    "CanisterStatus",
    "ErrorCode",
    "ExecutionEnvironment",
    "ExecutionLimits",
    "FeeSchedule",
    "IngressMessage",
    "IngressResult",
    "InvalidWasm",
    "PyApi",
    "PythonCanister",
    "PywasmEngine",
    "Reject",
    "RejectCode",
    "Reply",
    "Router",
    "WasmTrap",
    "WasmtimeEngine",
    "execute_message",
    "execute_query",
    "install_code",
    "new_canister",
    "query",
    "update",
]

"""The management canister ``aaaaa-aa`` (subset), with its Candid interface.

The management canister is a facade over the subnet's execution state: each
method is a pure function ``(subnet, caller, arg, cycles, ...) -> (subnet,
reply bytes)`` raising ``CanisterError`` with the IC's codes.  Controllers-only
checks follow the spec.  ``raw_rand`` takes its 32 bytes from an injected
random tape (consensus's random beacon later; a seeded source in tests).

Spec: interface spec §"The IC management canister" (digest §6), ``ic.did``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from icp.candid import (
    Blob,
    Bool,
    CandidError,
    Nat,
    Nat8,
    Nat64,
    Null,
    Opt,
    PrincipalType,
    Record,
    Text,
    Variant,
    Vec,
    decode,
    encode,
)
from icp.execution.canister import CanisterSettings, CanisterState, CanisterStatus, Origin
from icp.execution.cycles import MAX_CYCLES, idle_cycles_burned_per_day, scale_cost
from icp.execution.errors import CanisterError, ErrorCode, RejectCode
from icp.execution.executor import (
    ExecutionEnvironment,
    Output,
    UpgradeOptions,
    canister_text,
    install_code,
    new_canister,
    respond_to_origin,
    uninstall_code,
)
from icp.execution.system_api import Reject
from icp.principal import Principal

CanisterSettingsT = Record(
    {
        "controllers": Opt(Vec(PrincipalType)),
        "compute_allocation": Opt(Nat),
        "memory_allocation": Opt(Nat),
        "freezing_threshold": Opt(Nat),
        "reserved_cycles_limit": Opt(Nat),
        "wasm_memory_limit": Opt(Nat),
        "log_visibility": Opt(
            Variant({"controllers": Null, "public": Null, "allowed_viewers": Vec(PrincipalType)})
        ),
    }
)
DefiniteSettingsT = Record(
    {
        "controllers": Vec(PrincipalType),
        "compute_allocation": Nat,
        "memory_allocation": Nat,
        "freezing_threshold": Nat,
        "reserved_cycles_limit": Nat,
        "wasm_memory_limit": Nat,
        "log_visibility": Variant(
            {"controllers": Null, "public": Null, "allowed_viewers": Vec(PrincipalType)}
        ),
    }
)
CanisterIdRecord = Record({"canister_id": PrincipalType})
CreateCanisterArgs = Record(
    {"settings": Opt(CanisterSettingsT), "sender_canister_version": Opt(Nat64)}
)
ProvisionalCreateArgs = Record(
    {
        "amount": Opt(Nat),
        "settings": Opt(CanisterSettingsT),
        "specified_id": Opt(PrincipalType),
        "sender_canister_version": Opt(Nat64),
    }
)
InstallMode = Variant(
    {
        "install": Null,
        "reinstall": Null,
        "upgrade": Opt(
            Record(
                {
                    "skip_pre_upgrade": Opt(Bool),
                    "wasm_memory_persistence": Opt(Variant({"keep": Null, "replace": Null})),
                }
            )
        ),
    }
)
InstallCodeArgs = Record(
    {
        "mode": InstallMode,
        "canister_id": PrincipalType,
        "wasm_module": Blob,
        "arg": Blob,
        "sender_canister_version": Opt(Nat64),
    }
)
UpdateSettingsArgs = Record(
    {
        "canister_id": PrincipalType,
        "settings": CanisterSettingsT,
        "sender_canister_version": Opt(Nat64),
    }
)
TopUpArgs = Record({"canister_id": PrincipalType, "amount": Nat})
CanisterStatusResult = Record(
    {
        "status": Variant({"running": Null, "stopping": Null, "stopped": Null}),
        "settings": DefiniteSettingsT,
        "module_hash": Opt(Blob),
        "memory_size": Nat,
        "cycles": Nat,
        "reserved_cycles": Nat,
        "idle_cycles_burned_per_day": Nat,
        "query_stats": Record(
            {
                "num_calls_total": Nat,
                "num_instructions_total": Nat,
                "request_payload_bytes_total": Nat,
                "response_payload_bytes_total": Nat,
            }
        ),
    }
)
del Nat8, Text


@attrs.frozen(slots=True)
class SubnetExecutionState:
    """All canisters of one subnet plus the canister id allocator.

    Spec: interface spec §"Canister ids" (``from_canister_index``).
    """

    canisters: dict[bytes, CanisterState] = attrs.field(factory=dict)
    next_canister_index: int = 0
    canister_range: tuple[int, int] = (0, (1 << 20) - 1)


def _err(code: ErrorCode, text: str) -> CanisterError:
    return CanisterError.of(code, text)


def _decode(arg: bytes, t: Any) -> Any:
    try:
        return decode(arg, [t])[0]
    except CandidError as exc:
        raise _err(ErrorCode.INVALID_MANAGEMENT_PAYLOAD, f"Error decoding candid: {exc}") from exc


def _target(subnet: SubnetExecutionState, cid: Principal) -> CanisterState:
    st = subnet.canisters.get(cid.bytes)
    if st is None:
        raise _err(ErrorCode.CANISTER_NOT_FOUND, f"Canister {cid.to_text()} not found.")
    return st


def _require_controller(st: CanisterState, caller: bytes, allow_self: bool = False) -> None:
    if caller in st.settings.controllers or (allow_self and caller == st.canister_id):
        return
    raise _err(
        ErrorCode.CANISTER_INVALID_CONTROLLER,
        f"Only the controllers of the canister {canister_text(st.canister_id)} can control it.\n"
        f"Canister's controllers: {' '.join(canister_text(c) for c in st.settings.controllers)}\n"
        f"Sender's ID: {canister_text(caller)}",
    )


def _apply_settings(
    settings: CanisterSettings, raw: dict[str, Any] | None, env: ExecutionEnvironment
) -> CanisterSettings:
    if not raw:
        return settings
    changes: dict[str, Any] = {}
    if raw.get("controllers") is not None:
        ctrls = tuple(p.bytes for p in raw["controllers"])
        if len(ctrls) > env.limits.max_controllers:
            raise _err(
                ErrorCode.INVALID_MANAGEMENT_PAYLOAD,
                f"Invalid settings: expected at most {env.limits.max_controllers} controllers, "
                f"got {len(ctrls)}.",
            )
        changes["controllers"] = ctrls
    for key in (
        "memory_allocation",
        "freezing_threshold",
        "reserved_cycles_limit",
        "wasm_memory_limit",
    ):
        if raw.get(key) is not None:
            changes[key] = int(raw[key])
    if raw.get("compute_allocation") is not None:
        ca = int(raw["compute_allocation"])
        if ca > 100:
            raise _err(ErrorCode.INVALID_MANAGEMENT_PAYLOAD, "compute_allocation must be in 0..100")
        changes["compute_allocation"] = ca
    if raw.get("log_visibility") is not None:
        changes["log_visibility"] = next(iter(raw["log_visibility"]))
    return attrs.evolve(settings, **changes)


def _allocate_id(subnet: SubnetExecutionState, specified: Principal | None) -> tuple[bytes, int]:
    if specified is not None:
        if specified.bytes in subnet.canisters:
            raise _err(  # dfinity/ic CanisterManagerError::CanisterAlreadyExists
                ErrorCode.CANISTER_ALREADY_INSTALLED,
                f"Canister {specified.to_text()} is already installed.",
            )
        return specified.bytes, subnet.next_canister_index
    idx = max(subnet.next_canister_index, subnet.canister_range[0])
    while Principal.from_canister_index(idx).bytes in subnet.canisters:
        idx += 1
    if idx > subnet.canister_range[1]:
        raise _err(ErrorCode.MAX_NUMBER_OF_CANISTERS_REACHED, "Canister id range exhausted")
    return Principal.from_canister_index(idx).bytes, idx + 1


def _with(subnet: SubnetExecutionState, st: CanisterState, **kw: Any) -> SubnetExecutionState:
    return attrs.evolve(subnet, canisters={**subnet.canisters, st.canister_id: st}, **kw)


EMPTY_REPLY = encode([], [])


@attrs.frozen(slots=True)
class ManagementResult:
    """The outcome of one management call: new subnet state, reply bytes, cycles refunded.

    ``deferred`` means the reply is sent later (``stop_canister`` on a stopping canister);
    ``outputs`` are other responses the call caused (cancelled stop requests).
    """

    subnet: SubnetExecutionState
    reply: bytes
    refund: int
    deferred: bool = False
    outputs: tuple[Output, ...] = ()


def execute_management_call(
    subnet: SubnetExecutionState,
    caller: bytes,
    method: str,
    arg: bytes,
    cycles: int,
    time: int,
    env: ExecutionEnvironment,
    *,
    from_canister: bool,
    random_tape: Callable[[], bytes] | None = None,
    origin: Origin | None = None,
) -> ManagementResult:
    """Execute one management canister method; raise ``CanisterError`` on reject.

    Spec: interface spec §"The IC management canister" (digest §6.2).
    """
    if method in ("create_canister", "provisional_create_canister_with_cycles"):
        if method == "create_canister":
            if not from_canister:
                raise _err(
                    ErrorCode.CANISTER_REJECTED_MESSAGE,
                    "create_canister can only be called by other canisters, "
                    "not via ingress messages.",
                )
            a = _decode(arg, CreateCanisterArgs)
            fee = scale_cost(env.fees, env.fees.canister_creation_fee, env.subnet_size)
            if cycles < fee:
                raise CanisterError(
                    RejectCode.CANISTER_REJECT,
                    f"Creating a canister requires a fee of {fee} that is deducted from the "
                    f"canister's initial balance but only {cycles} cycles were received with the "
                    "create_canister request.",
                    ErrorCode.INSUFFICIENT_CYCLES_FOR_CREATE_CANISTER,
                )
            balance, refund, specified = cycles - fee, 0, None
        else:
            a = _decode(arg, ProvisionalCreateArgs)
            amount = a.get("amount")
            balance = env.limits.default_provisional_cycles if amount is None else int(amount)
            refund, specified = cycles, a.get("specified_id")
        cid, next_idx = _allocate_id(subnet, specified)
        st = new_canister(cid, (caller,), min(balance, MAX_CYCLES), env.limits)
        st = attrs.evolve(st, settings=_apply_settings(st.settings, a.get("settings"), env))
        reply = encode([CanisterIdRecord], [{"canister_id": Principal.from_bytes(cid)}])
        return ManagementResult(_with(subnet, st, next_canister_index=next_idx), reply, refund)

    if method == "raw_rand":
        if not from_canister:
            raise _err(
                ErrorCode.CANISTER_REJECTED_MESSAGE, "raw_rand can only be called by canisters"
            )
        if random_tape is None:
            raise _err(ErrorCode.CANISTER_REJECTED_MESSAGE, "no randomness source configured")
        return ManagementResult(subnet, encode([Blob], [random_tape()]), cycles)

    if method == "install_code":
        a = _decode(arg, InstallCodeArgs)
        st = _target(subnet, a["canister_id"])
        _require_controller(st, caller)
        mode_name = next(iter(a["mode"]))
        options = UpgradeOptions()
        if mode_name == "upgrade" and a["mode"]["upgrade"]:
            o = a["mode"]["upgrade"]
            keep = o.get("wasm_memory_persistence")
            options = UpgradeOptions(
                skip_pre_upgrade=bool(o.get("skip_pre_upgrade")),
                keep_wasm_memory=keep is not None and "keep" in keep,
            )
        st = install_code(
            st, mode_name, bytes(a["wasm_module"]), bytes(a["arg"]), caller, time, env, options
        )
        return ManagementResult(_with(subnet, st), EMPTY_REPLY, cycles)

    if method == "uninstall_code":
        a = _decode(
            arg, Record({"canister_id": PrincipalType, "sender_canister_version": Opt(Nat64)})
        )
        st = _target(subnet, a["canister_id"])
        _require_controller(st, caller)
        st, _ = uninstall_code(st)
        return ManagementResult(_with(subnet, st), EMPTY_REPLY, cycles)

    if method == "update_settings":
        a = _decode(arg, UpdateSettingsArgs)
        st = _target(subnet, a["canister_id"])
        _require_controller(st, caller)
        st = attrs.evolve(
            st, settings=_apply_settings(st.settings, a["settings"], env), version=st.version + 1
        )
        return ManagementResult(_with(subnet, st), EMPTY_REPLY, cycles)

    if method == "canister_status":
        a = _decode(arg, CanisterIdRecord)
        st = _target(subnet, a["canister_id"])
        _require_controller(st, caller, allow_self=True)
        s = st.settings
        mem = st.runtime.memory_bytes() if st.runtime is not None else 0
        status = {
            CanisterStatus.RUNNING: "running",
            CanisterStatus.STOPPING: "stopping",
            CanisterStatus.STOPPED: "stopped",
        }[st.status]
        reply = encode(
            [CanisterStatusResult],
            [
                {
                    "status": {status: None},
                    "settings": {
                        "controllers": [Principal.from_bytes(c) for c in s.controllers],
                        "compute_allocation": s.compute_allocation,
                        "memory_allocation": s.memory_allocation,
                        "freezing_threshold": s.freezing_threshold,
                        "reserved_cycles_limit": s.reserved_cycles_limit,
                        "wasm_memory_limit": s.wasm_memory_limit,
                        "log_visibility": {s.log_visibility: None}
                        if s.log_visibility != "allowed_viewers"
                        else {"allowed_viewers": []},
                    },
                    "module_hash": st.module_hash,
                    "memory_size": mem,
                    "cycles": st.cycles,
                    "reserved_cycles": 0,
                    "idle_cycles_burned_per_day": idle_cycles_burned_per_day(
                        env.fees, mem, s.memory_allocation, s.compute_allocation, env.subnet_size
                    ),
                    "query_stats": {
                        "num_calls_total": 0,
                        "num_instructions_total": 0,
                        "request_payload_bytes_total": 0,
                        "response_payload_bytes_total": 0,
                    },
                }
            ],
        )
        return ManagementResult(subnet, reply, cycles)

    if method in ("start_canister", "stop_canister", "delete_canister"):
        a = _decode(arg, CanisterIdRecord)
        st = _target(subnet, a["canister_id"])
        _require_controller(st, caller)
        if method == "start_canister":
            # pending stop_canister calls are rejected (IC0511 CanisterStoppingCancelled)
            cancelled: list[Output] = []
            for o in st.stop_requests:
                cancelled.extend(
                    respond_to_origin(
                        b"",
                        o,
                        Reject(
                            int(RejectCode.CANISTER_ERROR),
                            f"Canister {canister_text(st.canister_id)} was started before it "
                            "stopped: stop_canister request cancelled.",
                            "IC0511",
                        ),
                    )
                )
            st = attrs.evolve(
                st, status=CanisterStatus.RUNNING, version=st.version + 1, stop_requests=()
            )
            return ManagementResult(
                _with(subnet, st), EMPTY_REPLY, cycles, outputs=tuple(cancelled)
            )
        elif method == "stop_canister":
            if st.status is CanisterStatus.STOPPED:
                return ManagementResult(subnet, EMPTY_REPLY, cycles)
            if not st.call_contexts or origin is None:
                st = attrs.evolve(st, status=CanisterStatus.STOPPED, version=st.version + 1)
                return ManagementResult(_with(subnet, st), EMPTY_REPLY, cycles)
            # stopping: the reply is sent when the last call context closes
            st = attrs.evolve(
                st,
                status=CanisterStatus.STOPPING,
                version=st.version + 1,
                stop_requests=(*st.stop_requests, origin),
            )
            return ManagementResult(_with(subnet, st), EMPTY_REPLY, cycles, deferred=True)
        else:
            if st.status is not CanisterStatus.STOPPED:
                raise _err(
                    ErrorCode.CANISTER_NOT_STOPPED,
                    f"Canister {canister_text(st.canister_id)} must be stopped "
                    "before it is deleted.",
                )
            canisters = dict(subnet.canisters)
            del canisters[st.canister_id]
            return ManagementResult(attrs.evolve(subnet, canisters=canisters), EMPTY_REPLY, cycles)
        return ManagementResult(_with(subnet, st), EMPTY_REPLY, cycles)

    if method == "deposit_cycles":
        a = _decode(arg, CanisterIdRecord)
        st = _target(subnet, a["canister_id"])
        st = attrs.evolve(st, cycles=min(MAX_CYCLES, st.cycles + cycles))
        return ManagementResult(_with(subnet, st), EMPTY_REPLY, 0)

    if method == "provisional_top_up_canister":
        a = _decode(arg, TopUpArgs)
        st = _target(subnet, a["canister_id"])
        st = attrs.evolve(st, cycles=min(MAX_CYCLES, st.cycles + int(a["amount"])))
        return ManagementResult(_with(subnet, st), EMPTY_REPLY, cycles)

    raise _err(
        ErrorCode.UNKNOWN_MANAGEMENT_MESSAGE, f"Management canister has no method '{method}'"
    )

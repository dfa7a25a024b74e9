"""Checkpoint a canister to a directory and restore it bit-exactly.

Layout of a canister directory::

    canister.cbor   system state (settings, cycles, call contexts, callbacks, ...)
    module.wasm     the module as installed (Wasm canisters)
    heap.bin        linear memory 0, byte for byte
    globals.cbor    mutable globals as (index, raw bits)
    stable.bin      stable memory as a sparse file (4 KiB chunks at their offsets)
    stable.cbor     stable size in pages and the indices of stored chunks

Checkpoints are incremental: when the directory already holds a checkpoint of
the same canister and module, only the heap pages and stable chunks written
since the last checkpoint (tracked by the runtime's journal) are rewritten.
``state_hash`` of the restored canister equals that of the saved one.

Spec: interface spec §"Canister state" (what persists); the IC's checkpoints
store ``PageMap``s of 4 KiB pages the same way (dfinity/ic ``rs/replicated_state``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cbor2

from icp.execution.canister import (
    Callback,
    CallContext,
    CanisterOrigin,
    CanisterSettings,
    CanisterState,
    CanisterStatus,
    IngressOrigin,
    Origin,
    SystemOrigin,
)
from icp.execution.engine import InstanceState
from icp.execution.errors import ExecutionError
from icp.execution.executor import ExecutionEnvironment
from icp.execution.runtime import PythonCanister, PythonRuntime, WasmRuntime
from icp.execution.stable_memory import CHUNK, StableMemory
from icp.execution.wasm_binary import PAGE_SIZE

FORMAT_VERSION = 1


class CheckpointError(ExecutionError):
    """A checkpoint directory is missing, corrupt or of another format."""


def _origin_to(o: Origin) -> list[Any]:
    if isinstance(o, IngressOrigin):
        return ["ingress", o.message_id, o.sender]
    if isinstance(o, CanisterOrigin):
        return ["canister", o.caller, o.callback_id]
    return ["system", o.task]


def _origin_from(v: list[Any]) -> Origin:
    if v[0] == "ingress":
        return IngressOrigin(v[1], v[2])
    if v[0] == "canister":
        return CanisterOrigin(v[1], v[2])
    return SystemOrigin(v[1])


def encode_system_state(state: CanisterState) -> bytes:
    """Encode everything but the runtime as canonical CBOR."""
    s = state.settings
    rt = state.runtime
    code: list[Any]
    if rt is None:
        code = ["empty"]
    elif isinstance(rt, PythonRuntime):
        code = ["python", rt.module_hash]
    else:
        code = ["wasm", rt.module_hash]
    doc = {
        "v": FORMAT_VERSION,
        "id": state.canister_id,
        "settings": [
            list(s.controllers), s.compute_allocation, s.memory_allocation, s.freezing_threshold,
            s.reserved_cycles_limit, s.wasm_memory_limit, s.log_visibility,
        ],
        "cycles": state.cycles,
        "status": int(state.status),
        "version": state.version,
        "certified_data": state.certified_data,
        "global_timer": state.global_timer,
        "next_id": state.next_id,
        "call_contexts": [
            [k, _origin_to(c.origin), c.cycles_available, c.responded, c.instructions]
            for k, c in sorted(state.call_contexts.items())
        ],
        "callbacks": [
            [k, c.call_context_id, c.callee, list(c.reply), list(c.reject),
             list(c.cleanup) if c.cleanup else None, c.cycles_sent, c.prepaid]
            for k, c in sorted(state.callbacks.items())
        ],
        "stop_requests": [_origin_to(o) for o in state.stop_requests],
        "burned": state.cycles_burned_total,
        "logs": list(state.logs),
        "code": code,
    }  # fmt: skip
    return cbor2.dumps(doc, canonical=True)


def decode_system_state(data: bytes) -> tuple[CanisterState, list[Any]]:
    """Decode ``encode_system_state`` output; return (state without runtime, code tag)."""
    try:
        d = cbor2.loads(data)
        if d["v"] != FORMAT_VERSION:
            raise CheckpointError(f"unsupported checkpoint format {d['v']}")
        st = d["settings"]
        state = CanisterState(
            canister_id=d["id"],
            settings=CanisterSettings(tuple(st[0]), st[1], st[2], st[3], st[4], st[5], st[6]),
            cycles=d["cycles"],
            status=CanisterStatus(d["status"]),
            version=d["version"],
            certified_data=d["certified_data"],
            global_timer=d["global_timer"],
            next_id=d["next_id"],
            call_contexts={
                k: CallContext(_origin_from(o), ca, resp, ins)
                for k, o, ca, resp, ins in d["call_contexts"]
            },
            callbacks={
                k: Callback(cc, callee, (rp[0], rp[1]), (rj[0], rj[1]),
                            (cl[0], cl[1]) if cl else None, sent, pre)
                for k, cc, callee, rp, rj, cl, sent, pre in d["callbacks"]
            },
            stop_requests=tuple(_origin_from(o) for o in d["stop_requests"]),
            cycles_burned_total=d["burned"],
            logs=tuple(d["logs"]),
        )  # fmt: skip
        return state, list(d["code"])
    except (KeyError, ValueError, TypeError, IndexError, cbor2.CBORDecodeError) as exc:
        raise CheckpointError(f"corrupt canister checkpoint: {exc}") from exc


def save_canister(state: CanisterState, directory: Path) -> None:
    """Write (or incrementally update) a canister checkpoint in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    sys_path = directory / "canister.cbor"
    previous_code: list[Any] | None = None
    if sys_path.exists():
        try:
            prev, previous_code = decode_system_state(sys_path.read_bytes())
            if prev.canister_id != state.canister_id:
                previous_code = None
        except CheckpointError:
            previous_code = None
    rt = state.runtime
    incremental = (
        previous_code is not None and rt is not None and previous_code[-1] == rt.module_hash
    )
    if isinstance(rt, WasmRuntime):
        if not incremental:
            (directory / "module.wasm").write_bytes(rt.wasm)
        _save_heap(rt, directory / "heap.bin", incremental)
        snap_globals = rt.instance.snapshot().globals if not incremental else _globals_only(rt)
        (directory / "globals.cbor").write_bytes(cbor2.dumps([list(g) for g in snap_globals]))
    elif isinstance(rt, PythonRuntime):
        (directory / "heap.bin").write_bytes(rt.snapshot().heap)
    if rt is not None:
        _save_stable(rt.stable, directory, incremental)
    tmp = directory / "canister.cbor.tmp"
    tmp.write_bytes(encode_system_state(state))
    tmp.replace(sys_path)


def _globals_only(rt: WasmRuntime) -> tuple[tuple[int, int], ...]:
    inst: Any = rt.instance
    if hasattr(inst, "_globals"):
        from icp.execution.wasmtime_engine import _bits

        if hasattr(inst, "_store"):
            return tuple((i, _bits(g.value(inst._store))) for i, g in inst._globals)
    return rt.instance.snapshot().globals


def _save_heap(rt: WasmRuntime, path: Path, incremental: bool) -> None:
    inst = rt.instance
    size = inst.memory_size()
    if not incremental or not path.exists():
        path.write_bytes(inst.snapshot().heap)
        inst.mark_checkpointed()
        return
    dirty = inst.dirty_pages_since_checkpoint()
    mem: Any = inst
    with path.open("r+b") as f:
        f.truncate(size)
        for page in sorted(dirty):
            off = page * PAGE_SIZE
            if off >= size:
                continue
            f.seek(off)
            f.write(mem.read(off, min(PAGE_SIZE, size - off)))
    inst.mark_checkpointed()


def _save_stable(stable: StableMemory, directory: Path, incremental: bool) -> None:
    path = directory / "stable.bin"
    dirty = stable.dirty_since_checkpoint if incremental and path.exists() else set(stable.chunks)
    mode = "r+b" if incremental and path.exists() else "wb"
    with path.open(mode) as f:
        f.truncate(stable.size_bytes)
        for idx in sorted(dirty):
            chunk = stable.chunks.get(idx)
            f.seek(idx * CHUNK)
            f.write(bytes(chunk) if chunk is not None else bytes(CHUNK))
        f.truncate(stable.size_bytes)
    index = {"size_pages": stable.size_pages, "chunks": sorted(stable.chunks)}
    (directory / "stable.cbor").write_bytes(cbor2.dumps(index, canonical=True))
    stable.dirty_since_checkpoint = set()


def load_canister(
    directory: Path,
    env: ExecutionEnvironment,
    python_code: Mapping[bytes, PythonCanister] | None = None,
) -> CanisterState:
    """Restore a canister saved by ``save_canister``; raise ``CheckpointError`` if broken."""
    try:
        state, code = decode_system_state((directory / "canister.cbor").read_bytes())
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint: {exc}") from exc
    if code[0] == "empty":
        return state
    try:
        index = cbor2.loads((directory / "stable.cbor").read_bytes())
        chunks: dict[int, bytes] = {}
        with (directory / "stable.bin").open("rb") as f:
            for idx in index["chunks"]:
                f.seek(idx * CHUNK)
                chunks[idx] = f.read(CHUNK).ljust(CHUNK, b"\0")
        stable = StableMemory(index["size_pages"], chunks)
        stable.dirty_since_checkpoint = set()
        heap = (directory / "heap.bin").read_bytes()
        if code[0] == "python":
            if python_code is None or code[1] not in python_code:
                raise CheckpointError("python canister code not provided for restore")
            prt = PythonRuntime(python_code[code[1]], stable)
            prt.restore(InstanceState(heap, ()))
            return attrs.evolve(state, runtime=prt)
        wasm = (directory / "module.wasm").read_bytes()
        globals_ = tuple(
            (int(i), int(b)) for i, b in cbor2.loads((directory / "globals.cbor").read_bytes())
        )
    except (OSError, KeyError, TypeError, ValueError, cbor2.CBORDecodeError) as exc:
        raise CheckpointError(f"corrupt canister checkpoint: {exc}") from exc
    compiled = env.engine.compile(wasm)
    if compiled.module_hash != code[1]:
        raise CheckpointError("module.wasm does not match the recorded module hash")
    instance = env.engine.instantiate(compiled, state.settings.wasm_memory_limit)
    instance.restore(InstanceState(heap, globals_))
    instance.mark_checkpointed()
    rt = WasmRuntime(compiled.module_hash, instance, compiled.parsed, stable, wasm)
    return attrs.evolve(state, runtime=rt)

"""Checkpoints: identical state hash after restore, crash safety, corruption detection."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import cast

import attrs
import pytest

from icp.execution.engine import WasmEngine
from icp.execution.executor import CanisterRequest, ExecutionEnvironment, install_code
from icp.execution.runtime import PyApi, PythonCanister, update
from icp.execution.wasmtime_engine import WasmtimeEngine
from icp.state.checkpoint import (
    CheckpointError,
    CorruptCheckpointError,
    compute_manifest,
    list_checkpoints,
    load_checkpoint,
    load_latest,
    serialize_state,
    state_hash,
    write_checkpoint,
)
from icp.state.ingress_history import IngressHistory, IngressStatus, RequestStatus
from icp.state.replicated_state import ReplicatedState, SubnetMetrics
from icp.state.tree import build_state_tree
from icp.types import Height, Time
from tests.state.builders import (
    NNS,
    T0,
    USER,
    app_canister_id,
    empty_state,
    installed_canister,
    plain_canister,
    world,
)


class Notes(PythonCanister):
    """A Python canister whose state is a tuple of notes."""

    def init(self, api: PyApi) -> None:
        api.state = ("first",)

    @update
    def add(self, api: PyApi) -> None:
        api.state = (*api.state, api.arg().decode())
        api.reply(b"")


@pytest.fixture(scope="module")
def engine() -> WasmtimeEngine:
    return WasmtimeEngine()


@pytest.fixture(scope="module")
def state(engine: WasmtimeEngine) -> ReplicatedState:
    w = world()
    env = ExecutionEnvironment(engine=cast(WasmEngine, engine), subnet_size=4)
    py = install_code(
        plain_canister(app_canister_id(3)), "install", Notes(), b"", USER.raw, T0, env
    )
    history = IngressHistory()
    for i in range(5):
        rid = hashlib.sha256(bytes([i])).digest()
        history = history.set_status(rid, IngressStatus(RequestStatus.RECEIVED, Time(T0 + i)))
    stream = (
        empty_state(w)
        .stream_to(NNS)
        .push(CanisterRequest(app_canister_id(1).raw, b"\x00" * 10, "m", b"arg", 5, 1))
    )
    return (
        empty_state(w, height=500)
        .with_canisters(
            [installed_canister(app_canister_id(1), engine), plain_canister(app_canister_id(2)), py]
        )
        .with_ingress_history(history)
        .with_stream(NNS, stream)
        .with_metrics(SubnetMetrics(7, 8, 9))
    )


def canister_hashes(s: ReplicatedState) -> dict[bytes, bytes]:
    return {cid: c.state_hash() for cid, c in s.canisters.items()}


def test_write_then_restore_gives_the_same_state(
    tmp_path: Path, engine: WasmtimeEngine, state: ReplicatedState
) -> None:
    ref = write_checkpoint(tmp_path, state)
    assert ref.state_hash == state_hash(state)
    loaded = load_checkpoint(
        ref.path, engine=engine, python_canisters=[Notes()], expected_state_hash=ref.state_hash
    )
    restored = loaded.state
    assert state_hash(restored) == ref.state_hash
    assert canister_hashes(restored) == canister_hashes(state)
    assert build_state_tree(restored).digest() == build_state_tree(state).digest()
    assert restored.ingress_history == state.ingress_history
    assert restored.streams == state.streams and restored.metrics == state.metrics
    wasm = restored.canister(app_canister_id(1))
    assert wasm is not None and wasm.runtime is not None
    assert wasm.runtime.stable.read(100, 10) == b"certified!"
    assert wasm.runtime.snapshot().heap[70000:70004] == (7).to_bytes(4, "little")
    py = restored.canister(app_canister_id(3))
    assert py is not None and list(py.runtime.state) == ["first"]  # type: ignore[union-attr]


def test_state_hash_changes_with_the_state(state: ReplicatedState) -> None:
    changed = state.with_canister(attrs.evolve(state.canisters[app_canister_id(2).raw], cycles=1))
    assert state_hash(changed) != state_hash(state)
    assert state_hash(state.at_height(Height(501), state.time)) != state_hash(state)


def test_manifest_chunks_are_one_mib() -> None:
    manifest = compute_manifest({"a": b"x" * (2 * 2**20 + 5), "b": b""})
    assert [(c.offset, c.size) for c in manifest.chunks] == [
        (0, 2**20),
        (2**20, 2**20),
        (2 * 2**20, 5),
    ]
    assert [f.size for f in manifest.files] == [2 * 2**20 + 5, 0]
    assert compute_manifest({"a": b"x" * (2 * 2**20 + 5), "b": b"!"}).root_hash() != (
        manifest.root_hash()
    )


def test_a_crash_mid_write_leaves_the_previous_checkpoint(
    tmp_path: Path, engine: WasmtimeEngine, state: ReplicatedState
) -> None:
    first = write_checkpoint(tmp_path, state)
    later = state.at_height(Height(1000), Time(T0 + 10))

    for step in ("files", "manifest"):

        def crash(name: str, at: str = step) -> None:
            if name == at:
                raise KeyboardInterrupt(f"power cut after {name}")

        with pytest.raises(KeyboardInterrupt):
            write_checkpoint(tmp_path, later, on_step=crash)
        assert [h for h, _ in list_checkpoints(tmp_path)] == [500]
        loaded = load_latest(tmp_path, engine=engine, python_canisters=[Notes()])
        assert loaded is not None and loaded.checkpoint.state_hash == first.state_hash
    done = write_checkpoint(tmp_path, later)  # the next write clears the leftovers
    assert not any((tmp_path / "tmp").iterdir())
    assert [h for h, _ in list_checkpoints(tmp_path)] == [500, 1000]
    assert done.state_hash == state_hash(later)


def test_corrupted_chunk_is_detected_and_skipped(
    tmp_path: Path, engine: WasmtimeEngine, state: ReplicatedState
) -> None:
    write_checkpoint(tmp_path, state)
    # unshared files: damage to a hard-linked file would hit both checkpoints
    newer = write_checkpoint(
        tmp_path, state.at_height(Height(1000), Time(T0 + 1)), reuse_unchanged=False
    )
    heap = newer.path / "canisters" / app_canister_id(1).raw.hex() / "heap.bin"
    data = bytearray(heap.read_bytes())
    data[2**20 - 1 if len(data) >= 2**20 else 10] ^= 1
    heap.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match=r"heap\.bin: chunk at offset 0"):
        load_checkpoint(newer.path, engine=engine, python_canisters=[Notes()])
    loaded = load_latest(tmp_path, engine=engine, python_canisters=[Notes()])
    assert loaded is not None and loaded.state.height == 500
    assert loaded.skipped and loaded.skipped[0][0] == 1000


def test_missing_or_extra_files_and_bad_manifest_are_detected(
    tmp_path: Path, state: ReplicatedState
) -> None:
    ref = write_checkpoint(tmp_path, state)
    (ref.path / "stray.bin").write_bytes(b"?")
    with pytest.raises(CorruptCheckpointError, match="unexpected"):
        load_checkpoint(ref.path)
    (ref.path / "stray.bin").unlink()
    (ref.path / "system_metadata.cbor").unlink()
    with pytest.raises(CorruptCheckpointError, match="missing"):
        load_checkpoint(ref.path)
    (ref.path / "manifest.cbor").write_bytes(b"\xff\x00")
    with pytest.raises(CorruptCheckpointError, match="manifest"):
        load_checkpoint(ref.path)


def test_expected_hash_and_unknown_python_code(
    tmp_path: Path, engine: WasmtimeEngine, state: ReplicatedState
) -> None:
    ref = write_checkpoint(tmp_path, state)
    with pytest.raises(CorruptCheckpointError, match="expected"):
        load_checkpoint(ref.path, engine=engine, expected_state_hash=b"\x00" * 32)
    with pytest.raises(CheckpointError, match="Python canister code"):
        load_checkpoint(ref.path, engine=engine)


def test_old_checkpoints_are_pruned_and_rewrites_are_idempotent(
    tmp_path: Path, state: ReplicatedState
) -> None:
    for h in range(1, 6):
        write_checkpoint(tmp_path, state.at_height(Height(500 * h), state.time), keep=2)
    assert [h for h, _ in list_checkpoints(tmp_path)] == [2000, 2500]
    again = write_checkpoint(tmp_path, state.at_height(Height(2500), state.time), keep=2)
    assert again.height == 2500
    with pytest.raises(CheckpointError, match="different checkpoint"):
        write_checkpoint(tmp_path, state.at_height(Height(2500), Time(state.time + 1)))


def test_serialization_is_deterministic(state: ReplicatedState) -> None:
    assert serialize_state(state) == serialize_state(state)
    rebuilt = attrs.evolve(state, canisters=dict(reversed(list(state.canisters.items()))))
    assert state_hash(rebuilt) == state_hash(state)


def test_unchanged_files_are_shared_with_the_previous_checkpoint(
    tmp_path: Path, engine: WasmtimeEngine, state: ReplicatedState
) -> None:
    first = write_checkpoint(tmp_path, state)
    changed = state.with_canister(
        attrs.evolve(state.canisters[app_canister_id(2).raw], cycles=1)
    ).at_height(Height(1000), state.time)
    second = write_checkpoint(tmp_path, changed)
    wasm_dir = Path("canisters") / app_canister_id(1).raw.hex()
    heap_a, heap_b = first.path / wasm_dir / "heap.bin", second.path / wasm_dir / "heap.bin"
    assert heap_a.stat().st_ino == heap_b.stat().st_ino  # shared, not rewritten
    plain = Path("canisters") / app_canister_id(2).raw.hex() / "canister.cbor"
    assert (first.path / plain).stat().st_ino != (second.path / plain).stat().st_ino
    loaded = load_checkpoint(second.path, engine=engine, python_canisters=[Notes()])
    assert state_hash(loaded.state) == second.state_hash == state_hash(changed)
    write_checkpoint(tmp_path, changed.at_height(Height(1500), state.time), keep=1)
    assert [h for h, _ in list_checkpoints(tmp_path)] == [1500]
    assert load_latest(tmp_path, engine=engine, python_canisters=[Notes()]) is not None

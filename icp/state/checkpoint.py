"""Checkpoints: the full replicated state on disk, with a manifest whose hash CUPs carry.

Theory of operation.  ``serialize_state`` turns a ``ReplicatedState`` into files
(pure; canonical CBOR for everything but memory): ``system_metadata.cbor`` (height,
time, ingress history, streams, topology, metrics) and, per canister,
``canisters/<id hex>/{canister.cbor, runtime.cbor, wasm_module.bin, heap.bin,
stable.bin}``.  ``compute_manifest`` splits each file into 1 MiB chunks and hashes
chunks, files and the whole table into the manifest root hash: the ``state_hash``
of the catch-up package, equal on every replica with the same state.

``write_checkpoint`` is crash-safe: files go into a fresh directory under
``<root>/tmp``, each is fsynced, the manifest is written last, then the directory
is renamed to ``<root>/checkpoints/<height>`` (atomic on POSIX) and the parent
fsynced.  A crash at any step leaves either no new checkpoint or a complete one;
leftovers in ``tmp`` are never loaded and are removed by the next write.
``load_checkpoint`` re-hashes every chunk against the manifest and raises
``CorruptCheckpointError`` naming the first bad file and chunk; ``load_latest``
returns the newest checkpoint that verifies (reporting the ones it skipped).
Files unchanged since the newest existing checkpoint are hard-linked into the new
one instead of rewritten (a changed heap is still written whole: the IC writes only
dirty pages).  Old checkpoints beyond ``keep`` are pruned after each write.

Canister code is restored from the stored module bytes (compiled again by the
given engine; the recorded module hash is kept) or, for Python canisters, from the
caller's table of code objects by code hash — checkpoints never name Python
classes to import.

Spec: protocol digest §4.7 (checkpoints at DKG summary heights; manifest of files
and 1 MiB chunks with SHA-256; manifest root hash = CUP ``state_hash``; old
checkpoints removed), §3.2 (CUP ``state_hash``).  The manifest hash layout follows
dfinity/ic ``rs/state_manager/src/manifest.rs`` in structure (chunk → file →
manifest hashes with domain separators) but is our own encoding.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

import attrs
import cbor2

from icp.crypto.hashing import hash_with_domain
from icp.execution.canister import CanisterState
from icp.execution.engine import InstanceState
from icp.execution.runtime import PythonCanister, PythonRuntime, WasmRuntime
from icp.execution.stable_memory import CHUNK as STABLE_CHUNK
from icp.execution.stable_memory import StableMemory
from icp.state.codec import Codec, CodecError, state_codec
from icp.state.pmap import PMap
from icp.state.replicated_state import ReplicatedState
from icp.types import Height

CHUNK_SIZE: Final = 1 << 20
"""Manifest chunk size: 1 MiB (protocol digest §4.7)."""

MANIFEST_VERSION: Final = 1
MANIFEST_FILE: Final = "manifest.cbor"
DEFAULT_KEEP: Final = 3
CHUNK_DOMAIN: Final = b"ic-state-chunk"
FILE_DOMAIN: Final = b"ic-state-file"
MANIFEST_DOMAIN: Final = b"ic-state-manifest"
_WASM_HEADER: Final = b"\x00asm\x01\x00\x00\x00"


class ModuleEngine(Protocol):
    """What restoring needs from a Wasm engine (``icp.execution``'s engines fit)."""

    def compile(self, wasm: bytes, /) -> Any: ...

    def instantiate(self, module: Any, memory_limit: int, /) -> Any: ...


class CheckpointError(Exception):
    """Raised when a checkpoint cannot be written or restored."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint on disk does not match its manifest (bad chunk, missing file...)."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


# ---------------------------------------------------------------------------- manifest


@attrs.frozen(slots=True)
class FileInfo:
    """One file of a checkpoint: relative path, size, hash over its chunk hashes."""

    path: str
    size: int
    hash: bytes


@attrs.frozen(slots=True)
class ChunkInfo:
    """One 1 MiB chunk of a file."""

    file_index: int
    offset: int
    size: int
    hash: bytes


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


@attrs.frozen(slots=True)
class Manifest:
    """The file and chunk table of a checkpoint; its root hash is the state hash.

    Spec: protocol digest §4.7 (manifest: files and 1 MiB chunks with SHA-256).
    """

    version: int
    files: tuple[FileInfo, ...]
    chunks: tuple[ChunkInfo, ...]

    def root_hash(self) -> bytes:
        """Return the manifest hash (the ``state_hash`` of a CUP)."""
        parts = [_u32(self.version), _u32(len(self.files))]
        for f in self.files:
            path = f.path.encode("utf-8")
            parts += [_u32(len(path)), path, _u64(f.size), f.hash]
        parts.append(_u32(len(self.chunks)))
        for c in self.chunks:
            parts += [_u32(c.file_index), _u32(c.size), _u64(c.offset), c.hash]
        return hash_with_domain(MANIFEST_DOMAIN, b"".join(parts))

    def to_cbor(self) -> bytes:
        return bytes(
            cbor2.dumps(
                {
                    "version": self.version,
                    "files": [[f.path, f.size, f.hash] for f in self.files],
                    "chunks": [[c.file_index, c.offset, c.size, c.hash] for c in self.chunks],
                    "root_hash": self.root_hash(),
                },
                canonical=True,
            )
        )

    @classmethod
    def from_cbor(cls, data: bytes, where: Path) -> Manifest:
        """Decode a manifest; raise ``CorruptCheckpointError`` if malformed or inconsistent."""
        try:
            raw = cbor2.loads(data)
            manifest = cls(
                raw["version"],
                tuple(FileInfo(p, s, bytes(h)) for p, s, h in raw["files"]),
                tuple(ChunkInfo(i, o, s, bytes(h)) for i, o, s, h in raw["chunks"]),
            )
            stored = bytes(raw["root_hash"])
        except (cbor2.CBORDecodeError, KeyError, TypeError, ValueError, EOFError) as exc:
            raise CorruptCheckpointError(where, f"malformed manifest: {exc}") from None
        if manifest.root_hash() != stored:
            raise CorruptCheckpointError(where, "manifest root hash does not match its tables")
        return manifest


def _chunks_of(data: bytes) -> list[tuple[int, bytes]]:
    return [(o, data[o : o + CHUNK_SIZE]) for o in range(0, len(data), CHUNK_SIZE)]


def compute_manifest(files: Mapping[str, bytes]) -> Manifest:
    """Return the manifest of ``files`` (relative path → content), sorted by path.

    Spec: protocol digest §4.7.
    """
    infos: list[FileInfo] = []
    chunks: list[ChunkInfo] = []
    for index, path in enumerate(sorted(files)):
        data = files[path]
        hashes = []
        for offset, piece in _chunks_of(data):
            digest = hash_with_domain(CHUNK_DOMAIN, piece)
            hashes.append(digest)
            chunks.append(ChunkInfo(index, offset, len(piece), digest))
        infos.append(
            FileInfo(path, len(data), hash_with_domain(FILE_DOMAIN, _u32(len(hashes)), *hashes))
        )
    return Manifest(MANIFEST_VERSION, tuple(infos), tuple(chunks))


# ---------------------------------------------------------------------------- serialization


def module_bytes(runtime: WasmRuntime) -> bytes:
    """Return the Wasm module of a runtime: its stored bytes, else rebuilt from its sections.

    The rebuilt module is the decompressed original (same sections in the same
    order); its hash may differ from ``module_hash`` when the installed module was
    gzipped, which is why restore keeps the recorded ``module_hash``.
    """
    stored = getattr(runtime, "wasm_module", None)
    if isinstance(stored, bytes) and stored:
        return stored
    out = bytearray(_WASM_HEADER)
    for section_id, content in runtime.parsed.sections:
        out.append(section_id)
        n = len(content)
        while True:
            byte = n & 0x7F
            n >>= 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                break
        out += content
    return bytes(out)


def _encode_stable(stable: StableMemory) -> bytes:
    size, chunks = stable.snapshot()
    out = bytearray(_u64(size))
    zero = bytes(STABLE_CHUNK)
    for index in sorted(chunks):
        if chunks[index] != zero:
            out += _u64(index) + chunks[index]
    return bytes(out)


def _decode_stable(data: bytes) -> StableMemory:
    if len(data) < 8 or (len(data) - 8) % (8 + STABLE_CHUNK):
        raise CheckpointError("malformed stable memory file")
    size = int.from_bytes(data[:8], "big")
    chunks: dict[int, bytes] = {}
    step = 8 + STABLE_CHUNK
    for pos in range(8, len(data), step):
        chunks[int.from_bytes(data[pos : pos + 8], "big")] = data[pos + 8 : pos + step]
    stable = StableMemory(size, chunks)
    stable.dirty_since_checkpoint.clear()
    return stable


def _canister_files(canister: CanisterState, codec: Codec) -> dict[str, bytes]:
    base = f"canisters/{canister.canister_id.hex()}/"
    files = {base + "canister.cbor": codec.encode(attrs.evolve(canister, runtime=None))}
    runtime = canister.runtime
    descriptor: dict[str, object] = {"kind": "none"}
    if runtime is not None:
        if isinstance(runtime, WasmRuntime):
            descriptor = {"kind": "wasm", "module_hash": runtime.module_hash}
            files[base + "wasm_module.bin"] = module_bytes(runtime)
            snap = runtime.snapshot()
            files[base + "globals.cbor"] = bytes(
                cbor2.dumps([list(g) for g in snap.globals], canonical=True)
            )
        elif isinstance(runtime, PythonRuntime):
            descriptor = {"kind": "python", "module_hash": runtime.module_hash}
            snap = runtime.snapshot()
        else:
            raise CheckpointError(
                f"canister {canister.canister_id.hex()}: cannot checkpoint a "
                f"{type(runtime).__name__} runtime"
            )
        files[base + "heap.bin"] = snap.heap
        files[base + "stable.bin"] = _encode_stable(runtime.stable)
    files[base + "runtime.cbor"] = bytes(cbor2.dumps(descriptor, canonical=True))
    return files


def serialize_state(state: ReplicatedState, codec: Codec | None = None) -> dict[str, bytes]:
    """Return the checkpoint files of ``state`` (relative path → content); pure.

    Spec: protocol digest §4.7.
    """
    codec = codec or state_codec()
    files = {"system_metadata.cbor": codec.encode(attrs.evolve(state, canisters=PMap()))}
    for canister in state.canisters.values():
        files.update(_canister_files(canister, codec))
    return files


def state_hash(state: ReplicatedState, codec: Codec | None = None) -> bytes:
    """Return the manifest root hash of ``state`` without writing it (the CUP state hash)."""
    return compute_manifest(serialize_state(state, codec)).root_hash()


# ---------------------------------------------------------------------------- disk


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def checkpoint_dir(root: Path, height: int) -> Path:
    """Return where the checkpoint of ``height`` lives under ``root``."""
    return Path(root) / "checkpoints" / f"{height:016x}"


def list_checkpoints(root: Path) -> list[tuple[Height, Path]]:
    """Return the complete checkpoints under ``root``, oldest first."""
    base = Path(root) / "checkpoints"
    if not base.is_dir():
        return []
    out = []
    for entry in base.iterdir():
        try:
            height = int(entry.name, 16)
        except ValueError:
            continue
        if entry.is_dir() and len(entry.name) == 16:
            out.append((Height(height), entry))
    return sorted(out)


@attrs.frozen
class CheckpointRef:
    """A checkpoint on disk: its height, directory and manifest."""

    height: Height
    path: Path
    manifest: Manifest

    @property
    def state_hash(self) -> bytes:
        return self.manifest.root_hash()


def write_checkpoint(
    root: Path,
    state: ReplicatedState,
    *,
    keep: int = DEFAULT_KEEP,
    codec: Codec | None = None,
    on_step: Callable[[str], None] | None = None,
    reuse_unchanged: bool = True,
) -> CheckpointRef:
    """Write ``state`` as the checkpoint of its height, atomically; prune old ones.

    Files identical (same path, size and hash) to the newest existing checkpoint's are
    hard-linked instead of written, so an unchanged canister's memory costs no disk
    writes (files are never modified in place, so sharing is safe; but damage to a
    shared file on disk shows up in every checkpoint sharing it).

    ``on_step`` is called after each step ("files", "manifest", "renamed") — tests
    use it to simulate a crash.  Writing a height that already has a checkpoint
    returns the existing one after checking it has the same state hash.
    Spec: protocol digest §4.7.
    """
    root = Path(root)
    files = serialize_state(state, codec)
    manifest = compute_manifest(files)
    final = checkpoint_dir(root, state.height)
    if final.exists():
        existing = _read_manifest(final)
        if existing.root_hash() != manifest.root_hash():
            raise CheckpointError(
                f"a different checkpoint of height {state.height} already exists at {final}"
            )
        return CheckpointRef(state.height, final, existing)
    tmp_root = root / "tmp"
    if tmp_root.exists():
        shutil.rmtree(tmp_root)  # leftovers of an interrupted write
    tmp = tmp_root / f"{state.height:016x}"
    tmp.mkdir(parents=True)
    reusable = _previous_files(root) if reuse_unchanged else {}
    hashes = {f.path: f for f in manifest.files}
    for rel, data in files.items():
        source = reusable.get(hashes[rel])
        if source is not None:  # unchanged since the last checkpoint: share the file
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            os.link(source, tmp / rel)
        else:
            _write_file(tmp / rel, data)
    if on_step is not None:
        on_step("files")
    _write_file(tmp / MANIFEST_FILE, manifest.to_cbor())
    for directory in sorted({(tmp / rel).parent for rel in files} | {tmp}, reverse=True):
        _fsync_dir(directory)
    if on_step is not None:
        on_step("manifest")
    final.parent.mkdir(parents=True, exist_ok=True)
    os.rename(tmp, final)
    _fsync_dir(final.parent)
    if on_step is not None:
        on_step("renamed")
    prune_checkpoints(root, keep)
    return CheckpointRef(state.height, final, manifest)


def _previous_files(root: Path) -> dict[FileInfo, Path]:
    """Map each file of the newest checkpoint (by path, size, hash) to its location."""
    existing = list_checkpoints(root)
    if not existing:
        return {}
    path = existing[-1][1]
    try:
        manifest = _read_manifest(path)
    except CorruptCheckpointError:
        return {}
    return {info: path / info.path for info in manifest.files}


def prune_checkpoints(root: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` checkpoints under ``root``."""
    if keep < 1:
        raise CheckpointError("keep at least one checkpoint")
    for _, path in list_checkpoints(root)[:-keep]:
        shutil.rmtree(path)


def _read_manifest(path: Path) -> Manifest:
    try:
        data = (path / MANIFEST_FILE).read_bytes()
    except OSError as exc:
        raise CorruptCheckpointError(path, f"cannot read the manifest: {exc}") from None
    return Manifest.from_cbor(data, path)


def read_verified_files(path: Path) -> tuple[Manifest, dict[str, bytes]]:
    """Read a checkpoint's files, checking every chunk against the manifest.

    Raises ``CorruptCheckpointError`` for a missing, extra, resized or corrupted file.
    Spec: protocol digest §4.7 (chunks verified against the manifest).
    """
    path = Path(path)
    manifest = _read_manifest(path)
    on_disk = {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} - {MANIFEST_FILE}
    listed = {f.path for f in manifest.files}
    if on_disk != listed:
        extra, missing = sorted(on_disk - listed), sorted(listed - on_disk)
        raise CorruptCheckpointError(
            path, f"files differ from the manifest (missing {missing}, unexpected {extra})"
        )
    files: dict[str, bytes] = {}
    for index, info in enumerate(manifest.files):
        data = (path / info.path).read_bytes()
        if len(data) != info.size:
            raise CorruptCheckpointError(
                path, f"{info.path}: size {len(data)} differs from the manifest's {info.size}"
            )
        for chunk in manifest.chunks:
            if chunk.file_index != index:
                continue
            piece = data[chunk.offset : chunk.offset + chunk.size]
            if len(piece) != chunk.size or hash_with_domain(CHUNK_DOMAIN, piece) != chunk.hash:
                raise CorruptCheckpointError(
                    path, f"{info.path}: chunk at offset {chunk.offset} does not match the manifest"
                )
        files[info.path] = data
    if compute_manifest(files).root_hash() != manifest.root_hash():
        raise CorruptCheckpointError(path, "the chunk table does not cover the files exactly")
    return manifest, files


def _restore_canister(
    base: str,
    files: Mapping[str, bytes],
    codec: Codec,
    engine: ModuleEngine | None,
    python_code: Mapping[bytes, PythonCanister],
) -> CanisterState:
    canister = codec.decode(files[base + "canister.cbor"])
    if not isinstance(canister, CanisterState):
        raise CheckpointError(f"{base}canister.cbor does not hold a canister state")
    descriptor = cbor2.loads(files[base + "runtime.cbor"])
    kind = descriptor.get("kind")
    if kind == "none":
        return canister
    stable = _decode_stable(files[base + "stable.bin"])
    heap = files[base + "heap.bin"]
    module_hash = bytes(descriptor["module_hash"])
    runtime: WasmRuntime | PythonRuntime
    if kind == "wasm":
        if engine is None:
            raise CheckpointError("restoring Wasm canisters needs a Wasm engine")
        compiled = engine.compile(files[base + "wasm_module.bin"])
        instance = engine.instantiate(compiled, canister.settings.wasm_memory_limit)
        runtime = WasmRuntime(
            module_hash, instance, compiled.parsed, stable, files[base + "wasm_module.bin"]
        )
        globals_ = tuple(
            (int(i), int(bits)) for i, bits in cbor2.loads(files[base + "globals.cbor"])
        )
        runtime.restore(InstanceState(heap, globals_))
        instance.mark_checkpointed()
    elif kind == "python":
        code = python_code.get(module_hash)
        if code is None:
            raise CheckpointError(
                f"no Python canister code with hash {module_hash.hex()} was provided"
            )
        runtime = PythonRuntime(code, stable)
        runtime.restore(InstanceState(heap, ()))
    else:
        raise CheckpointError(f"unknown runtime kind {kind!r}")
    return attrs.evolve(canister, runtime=runtime)


@attrs.frozen
class LoadedCheckpoint:
    """A restored state, its checkpoint, and newer checkpoints skipped as invalid."""

    state: ReplicatedState
    checkpoint: CheckpointRef
    skipped: tuple[tuple[Height, str], ...] = ()


def load_checkpoint(
    path: Path,
    *,
    engine: ModuleEngine | None = None,
    python_canisters: Iterable[PythonCanister] = (),
    expected_state_hash: bytes | None = None,
    codec: Codec | None = None,
) -> LoadedCheckpoint:
    """Restore the state in checkpoint directory ``path`` after verifying every chunk.

    With ``expected_state_hash`` (from a CUP) the manifest must match it.
    Raises ``CorruptCheckpointError`` for a damaged checkpoint, ``CheckpointError``
    for one that cannot be restored (e.g. unknown Python canister code).
    Spec: protocol digest §4.7, §3.2.
    """
    path = Path(path)
    codec = codec or state_codec()
    manifest, files = read_verified_files(path)
    if expected_state_hash is not None and manifest.root_hash() != expected_state_hash:
        raise CorruptCheckpointError(path, "state hash differs from the expected (CUP) hash")
    python_code = {code.code_hash(): code for code in python_canisters}
    try:
        state = codec.decode(files["system_metadata.cbor"])
        if not isinstance(state, ReplicatedState):
            raise CheckpointError("system_metadata.cbor does not hold a replicated state")
        bases = sorted({p.rsplit("/", 1)[0] + "/" for p in files if p.startswith("canisters/")})
        canisters: list[tuple[bytes, Any]] = []
        for base in bases:
            canister = _restore_canister(base, files, codec, engine, python_code)
            canisters.append((canister.canister_id, canister))
    except (CodecError, KeyError, cbor2.CBORDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot decode the state: {exc}") from None
    state = attrs.evolve(state, canisters=PMap(canisters))
    return LoadedCheckpoint(state, CheckpointRef(state.height, path, manifest))


def load_latest(
    root: Path,
    *,
    engine: ModuleEngine | None = None,
    python_canisters: Iterable[PythonCanister] = (),
    codec: Codec | None = None,
) -> LoadedCheckpoint | None:
    """Restore the newest checkpoint under ``root`` that verifies; None if there is none.

    Newer checkpoints that fail verification are skipped and listed in ``skipped``.
    Spec: protocol digest §4.7.
    """
    skipped: list[tuple[Height, str]] = []
    python_canisters = tuple(python_canisters)
    for height, path in reversed(list_checkpoints(root)):
        try:
            loaded = load_checkpoint(
                path, engine=engine, python_canisters=python_canisters, codec=codec
            )
        except CorruptCheckpointError as exc:
            skipped.append((height, str(exc)))
            continue
        return attrs.evolve(loaded, skipped=tuple(skipped))
    return None


def is_checkpoint_height(height: int, interval: int) -> bool:
    """Return whether ``height`` is a checkpoint height (every ``interval`` heights).

    Spec: protocol digest §4.7 (checkpoints at DKG summary heights, every
    dkg_interval_length + 1 heights).
    """
    return interval > 0 and height % interval == 0

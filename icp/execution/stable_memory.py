"""Stable memory: a sparse, journaled byte store in 64 KiB Wasm pages.

Pages are stored sparsely as 4 KiB chunks (absent = zero).  During a message
the first write to a chunk saves its previous contents in a journal, so a trap
restores exactly the touched chunks (O(bytes written)), and a commit just drops
the journal.  ``dirty_since_checkpoint`` lists chunks changed since the last
checkpoint so checkpoints can be incremental.

Spec: interface spec §"Stable memory" (digest §5.3 ``stable64_*``); the IC's
``PageMap`` uses the same 4 KiB page granularity.
"""

from __future__ import annotations

import hashlib

CHUNK = 4096
WASM_PAGE = 65536


class StableMemory:
    """Sparse stable memory with a per-message rollback journal."""

    __slots__ = ("_journal", "_journal_size", "chunks", "dirty_since_checkpoint", "size_pages")

    def __init__(self, size_pages: int = 0, chunks: dict[int, bytes] | None = None) -> None:
        self.size_pages = size_pages
        self.chunks: dict[int, bytearray] = {k: bytearray(v) for k, v in (chunks or {}).items()}
        self._journal: dict[int, bytes | None] | None = None
        self._journal_size = size_pages
        self.dirty_since_checkpoint: set[int] = set(self.chunks)

    @property
    def size_bytes(self) -> int:
        """Return the size in bytes."""
        return self.size_pages * WASM_PAGE

    def begin(self) -> None:
        """Start journaling a message execution."""
        self._journal = {}
        self._journal_size = self.size_pages

    def commit(self) -> None:
        """Keep the changes of the current execution."""
        if self._journal is not None:
            self.dirty_since_checkpoint.update(self._journal)
        self._journal = None

    def rollback(self) -> None:
        """Undo every change since ``begin``."""
        if self._journal is None:
            return
        for idx, old in self._journal.items():
            if old is None:
                self.chunks.pop(idx, None)
            else:
                self.chunks[idx] = bytearray(old)
        self.size_pages = self._journal_size
        self._journal = None

    def grow(self, pages: int, max_bytes: int) -> int:
        """Grow by ``pages`` Wasm pages; return the old size or -1.

        Spec: ``ic0.stable64_grow`` (digest §5.3).
        """
        old = self.size_pages
        if (old + pages) * WASM_PAGE > max_bytes:
            return -1
        self.size_pages = old + pages
        return old

    def read(self, offset: int, size: int) -> bytes:
        """Read bytes (caller checks bounds)."""
        out = bytearray(size)
        pos = 0
        while pos < size:
            idx, within = divmod(offset + pos, CHUNK)
            n = min(CHUNK - within, size - pos)
            chunk = self.chunks.get(idx)
            if chunk is not None:
                out[pos : pos + n] = chunk[within : within + n]
            pos += n
        return bytes(out)

    def write(self, offset: int, data: bytes) -> None:
        """Write bytes (caller checks bounds), journaling first touches."""
        pos = 0
        size = len(data)
        while pos < size:
            idx, within = divmod(offset + pos, CHUNK)
            n = min(CHUNK - within, size - pos)
            chunk = self.chunks.get(idx)
            if self._journal is not None and idx not in self._journal:
                self._journal[idx] = None if chunk is None else bytes(chunk)
            if self._journal is None:
                self.dirty_since_checkpoint.add(idx)
            if chunk is None:
                chunk = bytearray(CHUNK)
                self.chunks[idx] = chunk
            chunk[within : within + n] = data[pos : pos + n]
            pos += n

    def clear(self) -> None:
        """Drop all contents (reinstall)."""
        if self._journal is not None:
            for idx, chunk in self.chunks.items():
                self._journal.setdefault(idx, bytes(chunk))
        self.dirty_since_checkpoint.update(self.chunks)
        self.chunks = {}
        self.size_pages = 0

    def digest(self) -> bytes:
        """Return a SHA-256 over size and non-zero chunks in index order."""
        h = hashlib.sha256(self.size_pages.to_bytes(8, "little"))
        zero = bytes(CHUNK)
        for idx in sorted(self.chunks):
            chunk = self.chunks[idx]
            if chunk != zero:
                h.update(idx.to_bytes(8, "little"))
                h.update(chunk)
        return h.digest()

    def snapshot(self) -> tuple[int, dict[int, bytes]]:
        """Return (size, chunks) for checkpointing."""
        return self.size_pages, {k: bytes(v) for k, v in self.chunks.items()}

    def copy(self) -> StableMemory:
        """Return an independent copy (used for replicated-state forks)."""
        size, chunks = self.snapshot()
        return StableMemory(size, chunks)

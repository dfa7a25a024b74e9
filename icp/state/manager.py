"""The state manager: recent states, their trees and certifications, and checkpoints.

Theory of operation.  Message routing hands the state manager one state per executed
height (``commit``).  It builds the state's certified tree incrementally (one
``StateTreeBuilder`` per replica), remembers the root hash for certification, and at
checkpoint heights writes the state to disk and records its manifest hash (the
``state_hash`` a CUP carries).  When the subnet's certification for a height arrives
(``add_certification``) it is verified against the subnet key and the remembered root
hash; from then on certificates for that height can be served (``certificate``,
``data_certificate``, ``stream_slice``).  ``purge`` forgets states older than the
latest certified one (keeping the last few), and ``restore`` starts from the newest
valid checkpoint after a restart.

The manager is a plain object driven by its owner (the replica); it never reads a
clock.  Only ``commit`` at checkpoint heights and ``restore`` touch the disk.

Spec: protocol digest §4.1 (step 3: the state manager commits the state of height h,
computes the certified root hash and hands it to certification; checkpoints at
``requires_full_state_hash`` heights), §3.3, §4.7.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import attrs

from icp.crypto.certificate import Delegation
from icp.crypto.hashtree import HashTree
from icp.execution.runtime import PythonCanister
from icp.principal import Principal
from icp.state.certification import (
    Certification,
    CertificationError,
    certificate_for,
    data_certificate_for,
    verify_certification,
)
from icp.state.checkpoint import (
    DEFAULT_KEEP,
    ModuleEngine,
    is_checkpoint_height,
    load_latest,
    write_checkpoint,
)
from icp.state.codec import Codec
from icp.state.replicated_state import ReplicatedState, StateError
from icp.state.stream_certification import certified_stream_slice
from icp.state.tree import StateTreeBuilder, WitnessIndex
from icp.types import Height


@attrs.define
class _Entry:
    state: ReplicatedState
    tree: HashTree
    certification: Certification | None = None
    state_hash: bytes | None = None  # manifest hash, at checkpoint heights
    index: WitnessIndex | None = None  # made when the first certificate is witnessed

    def witness_index(self) -> WitnessIndex:
        if self.index is None:
            levels = (self.state.ingress_history.entries, self.state.canisters)
            self.index = WitnessIndex(self.tree, levels)
        return self.index


class StateManager:
    """Keep recent states with their trees and certifications; write checkpoints.

    Spec: protocol digest §4.1, §4.7.
    """

    def __init__(
        self,
        initial: ReplicatedState,
        *,
        checkpoint_root: Path | None = None,
        checkpoint_interval: int = 500,
        keep_checkpoints: int = DEFAULT_KEEP,
        keep_states: int = 8,
        codec: Codec | None = None,
        initial_state_hash: bytes | None = None,
    ) -> None:
        self.builder = StateTreeBuilder(codec)
        self.checkpoint_root = checkpoint_root
        self.checkpoint_interval = checkpoint_interval
        self.keep_checkpoints = keep_checkpoints
        self.keep_states = keep_states
        self.codec = self.builder.codec
        self._entries: dict[Height, _Entry] = {}
        self._certified: Height | None = None
        entry = _Entry(initial, self.builder.build(initial), state_hash=initial_state_hash)
        self._entries[initial.height] = entry

    # ------------------------------------------------------------------ committing

    @property
    def latest_height(self) -> Height:
        return max(self._entries)

    @property
    def latest_state(self) -> ReplicatedState:
        return self._entries[self.latest_height].state

    def commit(self, state: ReplicatedState) -> bytes:
        """Record the state of a new height; return its certified-tree root hash.

        Writes a checkpoint when the height is a checkpoint height and a checkpoint
        directory is configured.  Raises ``StateError`` unless the height is above
        the latest one and the state belongs to the same subnet.
        Spec: protocol digest §4.1 (step 3).
        """
        if state.height <= self.latest_height:
            raise StateError(
                f"cannot commit height {state.height}: already at {self.latest_height}"
            )
        if state.subnet_id != self.latest_state.subnet_id:
            raise StateError("a state manager holds the states of one subnet")
        entry = _Entry(state, self.builder.build(state))
        if self.checkpoint_root is not None and is_checkpoint_height(
            state.height, self.checkpoint_interval
        ):
            ref = write_checkpoint(
                self.checkpoint_root, state, keep=self.keep_checkpoints, codec=self.codec
            )
            entry.state_hash = ref.state_hash
        self._entries[state.height] = entry
        return entry.tree.digest()

    def root_hash(self, height: Height) -> bytes | None:
        """Return the certified-tree root hash of ``height`` if it is still held."""
        entry = self._entries.get(height)
        return None if entry is None else entry.tree.digest()

    def state_at(self, height: Height) -> ReplicatedState | None:
        """Return the state of ``height`` if it is still held."""
        entry = self._entries.get(height)
        return None if entry is None else entry.state

    def state_hash(self, height: Height) -> bytes | None:
        """Return the checkpoint manifest hash of ``height`` (only at checkpoint heights)."""
        entry = self._entries.get(height)
        return None if entry is None else entry.state_hash

    # ------------------------------------------------------------------ certifying

    def add_certification(
        self,
        certification: Certification,
        *,
        verify: Callable[[Certification], bool] | None = None,
    ) -> None:
        """Accept the subnet's certification of a held height after verifying it.

        ``verify`` checks the group signature (e.g. through a replica's crypto façade,
        whose cache verifies each distinct signature once per process); by default it
        is verified here under the state's subnet key.  Raises ``CertificationError``
        if it does not verify or certifies another root hash than this replica
        computed (a divergence).
        Spec: protocol digest §3.3.
        """
        entry = self._entries.get(certification.height)
        if entry is None:
            raise CertificationError(f"no state of height {certification.height} is held")
        if verify is None:
            verify_certification(certification, entry.state.own_subnet.public_key_der)
        elif not verify(certification):
            raise CertificationError(f"invalid certification at height {certification.height}")
        if certification.content.root_hash != entry.tree.digest():
            raise CertificationError(
                f"the subnet certified another state at height {certification.height} "
                "than this replica computed"
            )
        entry.certification = certification
        if self._certified is None or certification.height > self._certified:
            self._certified = certification.height

    @property
    def certified_height(self) -> Height | None:
        """Return the latest height with a certification, if any."""
        return self._certified

    def _certified_entry(self) -> tuple[_Entry, Certification]:
        entry = None if self._certified is None else self._entries.get(self._certified)
        if entry is None or entry.certification is None:
            raise CertificationError("no held height is certified yet")
        return entry, entry.certification

    def certified_state(self) -> tuple[ReplicatedState, Certification]:
        """Return the latest certified state and its certification."""
        entry, cert = self._certified_entry()
        return entry.state, cert

    def certificate(
        self, paths: Iterable[Sequence[bytes | str]], delegation: Delegation | None = None
    ) -> bytes:
        """Return a certificate of ``paths`` in the latest certified state.

        Spec: interface spec §"Request: Read state".
        """
        entry, cert = self._certified_entry()
        return certificate_for(
            entry.state, cert, list(paths), delegation, tree=entry.tree, index=entry.witness_index()
        )

    def data_certificate(
        self, canister_id: Principal, delegation: Delegation | None = None
    ) -> bytes:
        """Return the ``ic0.data_certificate`` certificate for a query of ``canister_id``."""
        entry, cert = self._certified_entry()
        return data_certificate_for(entry.state, cert, canister_id, delegation, tree=entry.tree)

    def stream_slice(self, destination: Principal, from_index: int, max_messages: int) -> bytes:
        """Return a certified slice of the stream towards ``destination`` (latest certified)."""
        entry, cert = self._certified_entry()
        return certified_stream_slice(
            entry.state, cert, destination, from_index, max_messages, tree=entry.tree
        )

    # ------------------------------------------------------------------ housekeeping

    def purge(self) -> None:
        """Forget states below the latest certified height, keeping ``keep_states``."""
        if self._certified is None:
            return
        heights = sorted(self._entries)
        keep_from = min(self._certified, heights[max(0, len(heights) - self.keep_states)])
        for height in heights:
            if height < keep_from:
                del self._entries[height]

    @classmethod
    def restore(
        cls,
        checkpoint_root: Path,
        *,
        engine: ModuleEngine | None = None,
        python_canisters: Iterable[PythonCanister] = (),
        checkpoint_interval: int = 500,
        keep_checkpoints: int = DEFAULT_KEEP,
        codec: Codec | None = None,
    ) -> StateManager | None:
        """Start from the newest valid checkpoint under ``checkpoint_root`` (None if none).

        Spec: protocol digest §4.7 (restart from the latest checkpoint + CUP).
        """
        loaded = load_latest(
            checkpoint_root, engine=engine, python_canisters=python_canisters, codec=codec
        )
        if loaded is None:
            return None
        return cls(
            loaded.state,
            checkpoint_root=checkpoint_root,
            checkpoint_interval=checkpoint_interval,
            keep_checkpoints=keep_checkpoints,
            codec=codec,
            initial_state_hash=loaded.checkpoint.state_hash,
        )

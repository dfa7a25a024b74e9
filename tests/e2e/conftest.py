"""A running ``icp start`` (one per test module) and the Motoko counter's Wasm."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from icp.build import compile_motoko
from tests.e2e.helpers import REPO, IcpProcess, free_port


@pytest.fixture(scope="session")
def counter_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compile the Motoko counter once per session."""
    path = tmp_path_factory.mktemp("wasm") / "counter.wasm"
    path.write_bytes(compile_motoko(REPO / "tests" / "canisters" / "counter"))
    return path


@pytest.fixture(scope="module")
def icp_server() -> Iterator[IcpProcess]:
    """One ``icp start`` (NNS + one application subnet of 4 nodes) per test module."""
    server = IcpProcess([], free_port())
    try:
        yield server
    finally:
        server.stop()

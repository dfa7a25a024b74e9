"""Fixtures for messaging tests: a Wasm engine and test canisters, built once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from icp.build import compile_motoko
from icp.execution.wasmtime_engine import WasmtimeEngine
from tests.messaging.helpers import wat_counter

CANISTERS = Path(__file__).resolve().parent.parent / "canisters"


@pytest.fixture(scope="session")
def engine() -> WasmtimeEngine:
    """One wasmtime engine (compiled-module cache) for the session."""
    return WasmtimeEngine()


@pytest.fixture(scope="session")
def motoko() -> Callable[[str], bytes]:
    """Compile a Motoko test canister by directory name (cached)."""
    built: dict[str, bytes] = {}

    def get(name: str) -> bytes:
        if name not in built:
            built[name] = compile_motoko(CANISTERS / name)
        return built[name]

    return get


@pytest.fixture(scope="session")
def counter_wat() -> bytes:
    """The hand-written wasm32 counter canister (``inc``, ``get``, ``inc_then_trap``)."""
    return wat_counter()

"""Fixtures for end-to-end IC tests: Motoko canisters compiled once per session."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from icp.build import compile_motoko
from tests.ic.helpers import CANISTERS


@pytest.fixture(scope="session")
def motoko() -> Callable[[str], bytes]:
    """Compile a test canister by directory name (cached)."""
    built: dict[str, bytes] = {}

    def get(name: str) -> bytes:
        if name not in built:
            built[name] = compile_motoko(CANISTERS / name)
        return built[name]

    return get

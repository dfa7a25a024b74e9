"""Property-test settings: CI runs a modest number of schedules; ``-m long`` many more."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "consensus-ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
    print_blob=True,
)
settings.register_profile(
    "consensus-long",
    deadline=None,
    max_examples=10_000,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)

LONG = os.environ.get("ICP_LONG_PROPERTIES") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long: long property sweep (ICP_LONG_PROPERTIES=1)")

"""Property-test settings.

CI runs a few hundred generated schedules. The long sweep (10,000 schedules per subnet
size, hours of CPU) runs with ``ICP_LONG_PROPERTIES=1 pytest tests/properties`` or
``pytest -m long tests/properties``; a failure prints the falsifying seed and schedule.
"""

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
    config.addinivalue_line("markers", "long: the 10,000-schedule sweep (hours of CPU)")
    global LONG
    if "long" in (config.getoption("-m") or ""):
        LONG = True
        os.environ["ICP_LONG_PROPERTIES"] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if LONG:
        return
    skip = pytest.mark.skip(reason="long sweep: set ICP_LONG_PROPERTIES=1 or use -m long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)

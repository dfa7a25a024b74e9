"""Property-test settings.

CI runs a few hundred generated schedules. The long sweep (10,000 schedules per subnet
size, hours of CPU) runs with ``ICP_LONG_PROPERTIES=1 pytest tests/properties`` or
``pytest -m long tests/properties``; a failure prints the falsifying seed and schedule.
"""

from __future__ import annotations

import os

import pytest

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

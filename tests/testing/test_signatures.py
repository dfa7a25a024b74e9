"""icp.testing mirrors the pocket-ic package's public API, checked against the package itself.

Skipped when ``pocket-ic`` is not installed (``pip install pocket-ic``; it needs no
server binary to be imported).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from icp import testing

pocket_ic = pytest.importorskip("pocket_ic")


def _public_functions(cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: f
        for name, f in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") or name == "__init__"
    }


def _assert_accepts_the_same_calls(theirs: Callable[..., Any], ours: Callable[..., Any]) -> None:
    """Every call that works on pocket-ic's signature binds the same way to ours."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY)
    their_params = list(inspect.signature(theirs).parameters.values())
    our_params = list(inspect.signature(ours).parameters.values())
    positional = [p for p in our_params if p.kind in kinds]
    assert [p.name for p in positional[: len(their_params)]] == [p.name for p in their_params]
    for mine, other in zip(positional, their_params, strict=False):
        if other.default is not inspect.Parameter.empty:
            assert mine.default == other.default, (mine, other)
    for extra in our_params[len(their_params) :]:
        assert extra.default is not inspect.Parameter.empty, f"{extra} must be optional"


@pytest.mark.parametrize("cls", ["PocketIC", "SubnetConfig"])
def test_methods_and_signatures_match(cls: str) -> None:
    theirs = _public_functions(getattr(pocket_ic, cls))
    ours = _public_functions(getattr(testing, cls))
    assert set(theirs) - set(ours) <= {"topology"}  # ours is an attribute that is callable
    for name, f in theirs.items():
        if name in ours:
            _assert_accepts_the_same_calls(f, ours[name])


def test_subnet_kinds_match() -> None:
    theirs = {kind.name: kind.value for kind in pocket_ic.SubnetKind}
    assert theirs == {kind.name: kind.value for kind in testing.SubnetKind}


def test_server_lists_instances() -> None:
    assert callable(testing.PocketICServer().list_instances)
    assert callable(pocket_ic.PocketICServer.list_instances)

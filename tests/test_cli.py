"""The command line: ``icp demo`` runs to completion and shows what exists."""

from __future__ import annotations

from typer.testing import CliRunner

from icp.cli import app


def test_demo_exits_zero_and_shows_identifiers() -> None:
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "ryjl3-tyaaa-aaaaa-aaaba-cai" in result.output
    assert "2vxsx-fae" in result.output

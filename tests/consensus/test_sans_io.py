"""Nothing under icp/consensus touches time, randomness, sockets or asyncio."""

from __future__ import annotations

import ast
from pathlib import Path

import icp.consensus

FORBIDDEN = {"time", "random", "socket", "asyncio"}


def test_consensus_modules_import_no_io() -> None:
    root = Path(icp.consensus.__file__).parent
    offenders = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
    assert len(list(root.glob("*.py"))) > 15

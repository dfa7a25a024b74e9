"""Execute the Python examples in docs/ so that the documentation stays true.

Every fenced ```python block of a page runs, in order, in one namespace per page.
A block whose first line is ``# doc: skip`` is shown but not run (say why next to it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.glob("*.md") if BLOCK.search(p.read_text()))


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_doc_examples_run(page: Path) -> None:
    namespace: dict[str, object] = {"__name__": f"docs.{page.stem}"}
    for number, match in enumerate(BLOCK.finditer(page.read_text()), start=1):
        code = match.group(1)
        if code.lstrip().startswith("# doc: skip"):
            continue
        exec(compile(code, f"{page.name}[block {number}]", "exec"), namespace)

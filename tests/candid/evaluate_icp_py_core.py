"""Run the official suite's binary assertions against icp-py-core's Candid (evaluation only).

Usage: ``python tests/candid/evaluate_icp_py_core.py`` — prints passed / total.
Textual-only assertions are left out (icp-py-core has no value parser), and an
``==`` assertion counts as passed when the blob decodes (values are not compared,
as the two libraries represent values differently), so the count is an upper bound.
Each case runs under a 2 s alarm and the process under a 2 GiB address-space limit.
"""

from __future__ import annotations

import resource
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from icp_candid.candid import Types  # type: ignore[import-untyped]
from icp_candid.candid import decode as their_decode

import icp.candid.types as ct
from icp.candid.types import resolve
from tests.candid.test_suite import SUITE, parse_test_file


def convert(t: ct.Type, memo: dict[int, Any]) -> Any:
    """Translate one of our types into an icp-py-core type."""
    r = resolve(t)
    if id(r) in memo:
        return memo[id(r)]
    if isinstance(r, ct.Prim):
        name = "Principal" if r is ct.PrincipalType else r.name.capitalize()
        return getattr(Types, name)
    knot = Types.Rec()
    memo[id(r)] = knot
    if isinstance(r, ct.Opt):
        out = Types.Opt(convert(r.inner, memo))
    elif isinstance(r, ct.Vec):
        out = Types.Vec(convert(r.inner, memo))
    elif isinstance(r, ct.Record):
        out = Types.Record({f.key: convert(f.type, memo) for f in r.fields})
    elif isinstance(r, ct.Variant):
        out = Types.Variant({f.key: convert(f.type, memo) for f in r.fields})
    elif isinstance(r, ct.Func):
        out = Types.Func(
            [convert(a, memo) for a in r.args],
            [convert(a, memo) for a in r.results],
            sorted(r.annotations),
        )
    elif isinstance(r, ct.Service):
        out = Types.Service({n: convert(m, memo) for n, m in r.methods})
    else:
        raise TypeError(r)
    knot.fill(out)
    return knot


class _Timeout(Exception):
    pass


def _alarm(_sig: int, _frame: Any) -> None:
    raise _Timeout


def main() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    signal.signal(signal.SIGALRM, _alarm)
    passed = total = 0
    failures: list[str] = []
    for path in sorted(SUITE.glob("*.test.did")):
        for a in parse_test_file(path):
            if not a.left.blob:
                continue
            total += 1
            memo: dict[int, Any] = {}
            ok = False
            signal.alarm(2)
            try:
                types = [convert(t, memo) for t in a.types]
                their_decode(a.left.data, types)
                ok = a.passes or a.right is not None
            except _Timeout:
                ok = False
            except BaseException:  # any failure to decode counts as "rejected"
                ok = not a.passes and a.right is None
            finally:
                signal.alarm(0)
            passed += ok
            if not ok:
                failures.append(f"{a.file}:{a.line} {a.desc}")
    print(f"icp-py-core candid: {passed} / {total} binary assertions pass")
    for f in failures:
        print("  FAIL", f)


if __name__ == "__main__":
    main()

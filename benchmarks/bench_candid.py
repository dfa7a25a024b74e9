"""Benchmark icp.candid encode/decode against cbor2 on the same data, in the same run.

Run: ``python benchmarks/bench_candid.py``.  Prints, for a 1,000-field record and
a 1 MiB blob, the time per operation of ``icp.candid`` and of ``cbor2`` (C
extension) and their ratio (candid time / cbor2 time; lower is better).
"""

from __future__ import annotations

import os
import sys
import timeit
from collections.abc import Callable
from functools import partial
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cbor2

from icp import candid


def best_time(fn: Callable[[], Any], min_total: float = 0.3) -> float:
    """Return the best seconds per call over a few repetitions."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, int(number * min_total / 0.2))
    return min(timer.repeat(repeat=5, number=number)) / number


def record_case() -> tuple[str, list[candid.Type], list[Any], Any]:
    fields: dict[str | int, candid.Type] = {}
    value: dict[str | int, Any] = {}
    for i in range(1000):
        name = f"field_{i}"
        if i % 4 == 0:
            fields[name], value[name] = candid.Nat, i * 1_000_003
        elif i % 4 == 1:
            fields[name], value[name] = candid.Text, f"value number {i}"
        elif i % 4 == 2:
            fields[name], value[name] = candid.Opt(candid.Int), -i
        else:
            fields[name], value[name] = candid.Bool, bool(i & 8)
    return "1,000-field record", [candid.Record(fields)], [value], value


def blob_case() -> tuple[str, list[candid.Type], list[Any], Any]:
    blob = os.urandom(1 << 20)
    return "1 MiB blob", [candid.Blob], [blob], blob


def main() -> None:
    print(f"{'case':<20} {'op':<7} {'candid':>12} {'cbor2':>12} {'ratio':>8}")
    for name, types, values, plain in (record_case(), blob_case()):
        data = candid.encode(types, values)
        cbor = cbor2.dumps(plain)
        assert candid.decode(data, types) == values
        assert cbor2.loads(cbor) == plain
        enc = best_time(partial(candid.encode, types, values))
        cenc = best_time(partial(cbor2.dumps, plain))
        dec = best_time(partial(candid.decode, data, types))
        cdec = best_time(partial(cbor2.loads, cbor))
        for op, ours, ref in (("encode", enc, cenc), ("decode", dec, cdec)):
            print(
                f"{name:<20} {op:<7} {ours * 1e6:>10.1f}us {ref * 1e6:>10.1f}us {ours / ref:>7.2f}x"
            )
        mb = len(data) / (1 << 20)
        print(
            f"{'':<20} sizes: candid {len(data)} B, cbor2 {len(cbor)} B; "
            f"candid throughput encode {mb / enc:.0f} MiB/s, decode {mb / dec:.0f} MiB/s"
        )


if __name__ == "__main__":
    main()

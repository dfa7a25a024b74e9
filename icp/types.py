"""Nominal types for protocol quantities.

A height is never passed where an amount of cycles is expected: each quantity the
protocol talks about has its own ``NewType`` so that ``mypy --strict`` catches the
mix-up.  All times are integer nanoseconds since the Unix epoch, as on the IC.

Spec: interface spec §"Time"; ICC paper §3 (heights and ranks).
"""

from __future__ import annotations

from typing import NewType

Height = NewType("Height", int)
"""Block height in a subnet's chain (genesis = 0)."""

Rank = NewType("Rank", int)
"""Block-maker rank for a round; 0 is the leader (ICC paper §3.3)."""

Time = NewType("Time", int)
"""Nanoseconds since 1970-01-01 UTC, as in the IC's ``/time`` and ``ingress_expiry``."""

Cycles = NewType("Cycles", int)
"""Cycles, the IC's unit of computation fee; 10**12 cycles = 1 XDR."""

E8s = NewType("E8s", int)
"""ICP amounts in units of 10**-8 ICP."""

RegistryVersion = NewType("RegistryVersion", int)
"""Version of the NNS registry a block's context refers to."""

NANOS_PER_SECOND = 1_000_000_000
CYCLES_PER_XDR = 10**12

NodeIndex = NewType("NodeIndex", int)
"""Index of a node within its subnet, 0..n-1 (the node ids sorted ascending).

The threshold-signature evaluation point of node ``i`` is ``i + 1``.
"""

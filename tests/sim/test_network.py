from __future__ import annotations

import random

import pytest

from icp.sim.network import LinkModel, Network
from icp.types import Time


def test_delay_and_jitter_bound_arrival_times() -> None:
    net = Network(3, random.Random(1), LinkModel(Time(10), Time(5)))
    times = [t for _ in range(200) for t in net.transmit(0, 1, Time(100))]
    assert len(times) == 200 and min(times) >= 110 and max(times) <= 115
    assert len(set(times)) > 1  # jitter reorders messages


def test_drops_duplicates_and_partitions() -> None:
    net = Network(4, random.Random(2))
    net.set_link(0, 1, LinkModel(drop=1.0))
    assert net.transmit(0, 1, Time(0)) == [] and net.transmit(1, 0, Time(0)) != []
    net.set_link(0, 2, LinkModel(duplicate=1.0))
    assert len(net.transmit(0, 2, Time(0))) == 2
    net.partition([[0, 1], [2, 3]])
    assert net.transmit(1, 0, Time(0)) != [] and net.transmit(0, 3, Time(0)) == []
    net.heal()
    assert net.transmit(0, 3, Time(0)) != []


def test_bad_link_models_are_rejected() -> None:
    with pytest.raises(ValueError):
        LinkModel(drop=1.5)
    with pytest.raises(ValueError):
        LinkModel(delay=Time(-1))

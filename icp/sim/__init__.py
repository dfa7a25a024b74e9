"""icp.sim: deterministic simulation of subnets (virtual clock and network, faults).

Spec: DESIGN.md (the simulator drives the same sans-I/O components as the transport).
"""

from icp.sim.byzantine import BYZANTINE_KINDS, Behaviour, make_behaviour
from icp.sim.network import LinkModel, Network
from icp.sim.properties import PropertyMonitor, Violation
from icp.sim.simulator import Simulation, Trace

__all__ = [
    "BYZANTINE_KINDS",
    "Behaviour",
    "LinkModel",
    "Network",
    "PropertyMonitor",
    "Simulation",
    "Trace",
    "Violation",
    "make_behaviour",
]

"""icp.messaging: message routing — ingress, induction, scheduling, XNet streams.

The curated surface (loaded lazily: ``icp.state`` imports the queue types from
here, and ``execute_batch`` imports ``icp.state``).  See ``docs/messaging.md``.

Spec: protocol digest §4 (message routing, execution scheduling, XNet streams).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "execute_batch": "icp.messaging.state_machine",
    "SubnetExecutionConfig": "icp.messaging.config",
    "SubnetType": "icp.messaging.config",
    "SchedulerConfig": "icp.messaging.config",
    "IcPayloadBuilder": "icp.messaging.payload",
    "XNetClient": "icp.messaging.payload",
    "IngressPool": "icp.messaging.ingress",
    "IngressLimits": "icp.messaging.ingress",
    "IngressError": "icp.messaging.ingress",
    "SignedIngress": "icp.messaging.ingress",
    "RoutingTable": "icp.messaging.routing",
    "CanisterIdRange": "icp.messaging.routing",
    "Stream": "icp.messaging.xnet",
    "StreamHeader": "icp.messaging.xnet",
    "MessagingState": "icp.messaging.queues",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'icp.messaging' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

"""The dashboard at ``/_/dashboard``: subnets, nodes, blocks, canisters, ingress rate.

Theory of operation.  ``snapshot`` reads the running IC (heights, finalized blocks,
certified states, canisters) into a plain JSON-able dict; ``/_/dashboard.json``
serves it and the page (one HTML file with a small script, no build step) polls it
once a second.  The finalization rate is measured by the page between two polls of
the same subnet.  This is an edge module: it reads the IC but never changes it.

Spec: none (an operator's view; the real IC has its public dashboard).
"""

from __future__ import annotations

import time as _time
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

if TYPE_CHECKING:
    from icp.http.server import HttpFrontend

RECENT_BLOCKS: Final = 12


def snapshot(ic: Any, ingress_rate: float = 0.0) -> dict[str, Any]:
    """Return the dashboard's view of ``ic`` (an ``InternetComputer``) as plain data."""
    subnets: list[dict[str, Any]] = []
    for subnet in ic.subnets:
        replica = subnet.serving_replica()
        nodes = [
            {
                "index": int(r.node),
                "node_id": r.node_id.to_text(),
                "finalized_height": int(r.finalized_height()),
                "certified_height": int(r.state.certified_height or 0),
            }
            for r in subnet.replicas
        ]
        chain = replica.consensus.finalized_chain()[-RECENT_BLOCKS:]
        blocks = [{"height": int(h), "hash": bh.hex()} for h, bh in reversed(chain)]
        canisters: list[dict[str, Any]] = []
        state_time = 0
        if replica.state.certified_height is not None:
            state, _ = replica.certified()
            state_time = int(state.time)
            for cid, canister in state.canisters.items():
                runtime = canister.runtime
                canisters.append(
                    {
                        "id": _text(cid),
                        "cycles": int(canister.cycles),
                        "memory_bytes": int(runtime.memory_bytes()) if runtime else 0,
                        "status": canister.status.name.lower(),
                        "module_hash": (canister.module_hash or b"").hex(),
                    }
                )
        subnets.append(
            {
                "id": subnet.subnet_id.to_text(),
                "kind": subnet.kind.value,
                "nodes": nodes,
                "finalized_height": max(n["finalized_height"] for n in nodes) if nodes else 0,
                "certified_height": int(subnet.certified_height()) if nodes else 0,
                "state_time_ns": state_time,
                "ranges": [[r.start.to_text(), r.end.to_text()] for r in subnet.ranges],
                "recent_blocks": blocks,
                "canisters": canisters,
            }
        )
    return {
        "time_ns": int(ic.now),
        "root_key": ic.root_key.hex(),
        "ingress_per_second": ingress_rate,
        "subnets": subnets,
    }


def _text(raw: bytes) -> str:
    from icp.principal import Principal

    return Principal(raw).to_text()


def page_html() -> str:
    """Return the dashboard page (``static/dashboard.html``)."""
    return resources.files("icp.http").joinpath("static/dashboard.html").read_text("utf-8")


def add_routes(app: web.Application, frontend: HttpFrontend) -> None:
    """Add ``/_/dashboard`` and ``/_/dashboard.json`` to ``app``."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=page_html(), content_type="text/html")

    async def data(request: web.Request) -> web.Response:
        rate = frontend.metrics.ingress_rate(_time.monotonic())
        return web.json_response(snapshot(frontend.backend, rate))

    app.router.add_get("/_/dashboard", page)
    app.router.add_get("/_/dashboard.json", data)

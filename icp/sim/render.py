"""Render a simulated run as an SVG chart: heights × replicas.

Each row is a replica (labelled with its behaviour), each column a height. A cell is
filled when the replica saw that height finalized, shaded by how long after the first
replica it did (darker = later); an empty cell means it never did (a crashed node, or
a replica that jumped over the height with a catch-up package). Summary heights (CUPs)
get a marker on the axis. SVG needs no plotting library and renders in the docs.

Spec: issue 6 item "Visualization" (we emit SVG instead of a matplotlib PNG:
matplotlib is not a dependency of the project).
"""

from __future__ import annotations

from html import escape

from icp.sim.simulator import Simulation
from icp.types import Height

CELL = 14
LEFT = 250
TOP = 30


def render_svg(sim: Simulation, max_heights: int = 60) -> str:
    """Return an SVG document of the run's finalization timeline."""
    finalized = sim.trace.finalized_at
    nodes = sorted(sim.replicas)
    top = max((max(t, default=0) for t in finalized.values()), default=0)
    heights = list(range(1, min(top, max_heights) + 1))
    width = LEFT + CELL * len(heights) + 20
    height = TOP + CELL * len(nodes) + 40
    first: dict[int, int] = {}
    for times in finalized.values():
        for h, t in times.items():
            first[h] = min(first.get(h, t), t)
    spread = (
        max(
            (t - first[h] for times in finalized.values() for h, t in times.items() if h in first),
            default=1,
        )
        or 1
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="monospace" font-size="11">',
        f'<text x="{LEFT}" y="14">finalized heights per replica '
        f"(virtual time {sim.now / 1e9:.1f} s)</text>",
    ]
    for row, node in enumerate(nodes):
        y = TOP + row * CELL
        behaviour = sim.behaviours[node]
        label = f"node {node} ({behaviour.name})"
        colour = "#000" if behaviour.honest else "#b00"
        out.append(f'<text x="4" y="{y + CELL - 3}" fill="{colour}">{escape(label)}</text>')
        times = finalized.get(node, {})
        for col, h in enumerate(heights):
            x = LEFT + col * CELL
            if h in times:
                lag = (times[h] - first[h]) / spread
                green = int(200 - 140 * lag)
                fill = f"rgb(40,{green},80)"
                out.append(
                    f'<rect x="{x}" y="{y}" width="{CELL - 2}" height="{CELL - 2}" '
                    f'fill="{fill}"><title>height {h} at {times[h] / 1e9:.3f} s</title></rect>'
                )
            else:
                out.append(
                    f'<rect x="{x}" y="{y}" width="{CELL - 2}" height="{CELL - 2}" '
                    f'fill="none" stroke="#ccc"/>'
                )
    axis = TOP + len(nodes) * CELL + 14
    for col, h in enumerate(heights):
        x = LEFT + col * CELL
        if sim.config.is_summary_height(Height(h)):
            out.append(f'<text x="{x}" y="{axis}" fill="#00a">{h}</text>')
        elif h % 5 == 0:
            out.append(f'<text x="{x}" y="{axis}">{h}</text>')
    out.append(
        f'<text x="{LEFT}" y="{axis + 16}">blue: summary heights (CUPs); '
        "darker cells: finalized later than the first replica; red rows: faulty</text>"
    )
    out.append("</svg>")
    return "\n".join(out)

"""Render a simulated run: a matplotlib PNG of every stage, or a dependency-free SVG.

``render_png`` draws heights × replicas with, per cell, the stages the replica reached
for that height (random beacon, block proposal, notarization, finalization), the
equivocations it caught, and each replica's behaviour; a second panel plots finalized
height over virtual time per replica.  It needs the optional ``viz`` extra
(matplotlib).

``render_svg`` (below) draws finalizations only:
Each row is a replica (labelled with its behaviour), each column a height. A cell is
filled when the replica saw that height finalized, shaded by how long after the first
replica it did (darker = later); an empty cell means it never did (a crashed node, or
a replica that jumped over the height with a catch-up package). Summary heights (CUPs)
get a marker on the axis. SVG needs no plotting library and renders in the docs.

Spec: issue 6 item "Visualization"; stage names from the ICC paper §3 (beacon, block
making, notarization, finalization).
"""

from __future__ import annotations

from html import escape
from pathlib import Path

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


STAGES = (
    ("beacon", "o", "#7f7f7f", "random beacon"),
    ("proposal", "^", "#1f77b4", "block proposal"),
    ("notarized", "s", "#ff7f0e", "notarized"),
    ("finalized", "*", "#2ca02c", "finalized"),
)
"""Stage, marker, colour and legend label, left to right within a cell."""


class RenderError(RuntimeError):
    """The optional plotting dependency is missing."""


def render_png(sim: Simulation, path: str | Path, max_heights: int = 40, dpi: int = 110) -> Path:
    """Write a PNG of the run to ``path`` and return the path.

    Top: one row per replica (faulty ones in red, labelled with their behaviour), one
    column per height; in each cell a marker per stage the replica reached, and a red
    cross where it holds an equivocation proof against that height's block maker.
    Bottom: finalized height against virtual time, per replica.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RenderError("render_png needs matplotlib: pip install 'icp-protocol[viz]'") from exc
    nodes = sorted(sim.replicas)
    stages = sim.trace.stages
    finalized = sim.trace.finalized_at
    top = max((h for marks in stages.values() for _, h in marks), default=0)
    top = min(
        max(top, max((max(t, default=0) for t in finalized.values()), default=0)), max_heights
    )
    fig = Figure(figsize=(max(8.0, 3.0 + 0.42 * top), 1.6 + 0.5 * len(nodes) + 2.8))
    FigureCanvasAgg(fig)
    grid, timeline = fig.subplots(2, 1, height_ratios=[len(nodes) + 1.5, 3.2])
    offsets = (-0.33, -0.11, 0.11, 0.33)
    for row, node in enumerate(nodes):
        marks = stages.get(node, {})
        done = finalized.get(node, {})
        for (stage, marker, colour, label), dx in zip(STAGES, offsets, strict=True):
            held = [h for h in range(1, top + 1) if (stage, h) in marks or (
                stage == "finalized" and h in done)]  # fmt: skip
            grid.scatter([h + dx for h in held], [row] * len(held), marker=marker, s=13,
                         color=colour, label=label if row == 0 else None)  # fmt: skip
        caught = [h for h in range(1, top + 1) if ("equivocation", h) in marks]
        grid.scatter(caught, [row + 0.32] * len(caught), marker="x", s=26, color="#d62728",
                     label="equivocation caught" if row == 0 else None)  # fmt: skip
        times = sorted(done.items())
        timeline.step([t / 1e9 for _, t in times], [h for h, _ in times], where="post",
                      label=f"node {node}", linewidth=1.2)  # fmt: skip
    for h in range(1, top + 1):
        if sim.config.is_summary_height(Height(h)):
            grid.axvline(h, color="#9ecae1", linewidth=0.8, zorder=0)
    grid.set_yticks(range(len(nodes)))
    labels = grid.set_yticklabels([f"node {i} ({sim.behaviours[i].name})" for i in nodes])
    for label, node in zip(labels, nodes, strict=True):
        label.set_color("#000000" if sim.behaviours[node].honest else "#b00000")
    grid.set_ylim(-0.6, len(nodes) - 0.2)
    grid.invert_yaxis()
    grid.set_xlim(0.4, top + 0.6)
    grid.set_xlabel("height (blue lines: summary heights / CUPs)")
    fig.suptitle(f"{len(nodes)} replicas, {sim.now / 1e9:.1f} s of virtual time")
    grid.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=5, fontsize=8,
                frameon=False)  # fmt: skip
    timeline.set_xlabel("virtual time (s)")
    timeline.set_ylabel("finalized height")
    timeline.legend(fontsize=7, ncol=min(len(nodes), 7), loc="upper left", frameon=False)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=dpi)
    return out

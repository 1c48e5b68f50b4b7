"""The study's causal graph as a picture: networkx lays it out, matplotlib draws it.

Variables are placed in columns by topological generation (every edge points right),
so the causal order reads left to right. Directed edges are solid arrows; a bidirected
edge (a latent common cause) is a dashed two-headed arc, and an explicit latent variable
a dashed box. The treatment and the outcome are filled in their colours.
"""

from __future__ import annotations

from collections.abc import Collection

import networkx as nx
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from causal_core.graph.causal_graph import CausalGraph
from jobs.report.plots import CONTROL_COLOUR, MUTED, TREATED_COLOUR, new_figure, to_png


def graph_layout(graph: CausalGraph) -> dict[str, tuple[float, float]]:
    """Positions by topological generation of the directed part (latent nodes included),
    left to right; a generation is stacked top to bottom in the order of declaration."""
    dag = nx.DiGraph()
    dag.add_nodes_from(graph.nodes)
    dag.add_edges_from(graph.directed)
    for layer, names in enumerate(nx.topological_generations(dag)):
        for name in names:
            dag.nodes[name]["layer"] = layer
    order = {n: i for i, n in enumerate(graph.nodes)}
    ordered = nx.DiGraph()
    ordered.add_nodes_from(sorted(dag.nodes(data=True), key=lambda item: order[item[0]]))
    positions = nx.multipartite_layout(ordered, subset_key="layer", align="vertical", scale=1.0)
    return {n: (float(x), -float(y)) for n, (x, y) in positions.items()}


def _bend(start: tuple[float, float], end: tuple[float, float], step: float, centre: float) -> float:
    """The ``arc3`` curvature of a directed edge: straight between neighbouring columns; an
    edge that skips a column bends away from the middle of the picture, so it passes
    beside the boxes in between rather than through them. (For ``arc3`` a positive
    curvature bulges below a left-to-right edge.)"""
    if abs(end[0] - start[0]) < 1.5 * step:
        return 0.0
    above = (start[1] + end[1]) / 2 >= centre
    rightward = end[0] > start[0]
    return -0.3 if above == rightward else 0.3


def graph_picture(graph: CausalGraph, treatment: Collection[str], outcome: Collection[str]) -> bytes:
    """The graph as PNG bytes (see the module docstring for what is drawn how)."""
    pos = graph_layout(graph)
    layers = len({x for x, _ in pos.values()})
    tallest = max((sum(1 for p in pos.values() if p[0] == x) for x, _ in pos.values()), default=1)
    fig = new_figure(min(2.4 + 1.9 * layers, 12.0), min(1.6 + 0.9 * tallest, 8.0))
    ax = fig.add_subplot()
    ax.set_axis_off()
    latent = set(graph.latent)
    boxes = {}
    for name, (x, y) in pos.items():
        face = TREATED_COLOUR if name in treatment else CONTROL_COLOUR if name in outcome else "#edf2f7"
        boxes[name] = ax.text(x, y, name, ha="center", va="center", fontsize=9,
                              color="white" if face != "#edf2f7" else "black", zorder=3,
                              bbox=dict(boxstyle="round,pad=0.4", facecolor="white" if name in latent else face,
                                        edgecolor="black" if name not in latent else MUTED,
                                        linestyle="--" if name in latent else "-"))
    xs = sorted({x for x, _ in pos.values()})
    step = (xs[1] - xs[0]) if len(xs) > 1 else 1.0
    centre = sum(y for _, y in pos.values()) / len(pos)
    reach = [y for _, y in pos.values()]
    for a, b in graph.directed:
        rad = _bend(pos[a], pos[b], step, centre)
        reach.append((pos[a][1] + pos[b][1]) / 2 - 0.5 * rad * (pos[b][0] - pos[a][0]))
        ax.annotate("", xy=pos[b], xytext=pos[a], zorder=2,
                    arrowprops=dict(arrowstyle="-|>", color="black", lw=1.1, shrinkA=2, shrinkB=2,
                                    patchA=boxes[a].get_bbox_patch(), patchB=boxes[b].get_bbox_patch(),
                                    connectionstyle=f"arc3,rad={rad}"))
    for a, b in graph.bidirected:
        rad = 0.35 if (pos[a][1] + pos[b][1]) / 2 < centre or pos[a][0] < pos[b][0] else -0.35
        reach.append((pos[a][1] + pos[b][1]) / 2 - 0.5 * rad * (pos[b][0] - pos[a][0]))
        ax.annotate("", xy=pos[b], xytext=pos[a], zorder=1,
                    arrowprops=dict(arrowstyle="<|-|>", color=MUTED, lw=1.1, linestyle="--", shrinkA=2,
                                    shrinkB=2, patchA=boxes[a].get_bbox_patch(), patchB=boxes[b].get_bbox_patch(),
                                    connectionstyle=f"arc3,rad={rad}"))
    x_values = [p[0] for p in pos.values()]
    pad_x = 0.25 * step + 0.15
    ax.set_xlim(min(x_values) - pad_x, max(x_values) + pad_x)
    ax.set_ylim(min(reach) - 0.3, max(reach) + 0.3)
    handles = [Patch(facecolor=TREATED_COLOUR, edgecolor="black", label="treatment"),
               Patch(facecolor=CONTROL_COLOUR, edgecolor="black", label="outcome"),
               Line2D([], [], color="black", label="direct cause")]
    if graph.bidirected or latent:
        handles.append(Line2D([], [], color=MUTED, linestyle="--", label="latent / common cause"))
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.02), ncol=len(handles),
              fontsize=8, frameon=False)
    return to_png(fig)

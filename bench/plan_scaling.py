"""Time to plan (identify) on sparse random DAGs of growing size.

    python bench/plan_scaling.py [--sizes 20 50 100 200] [--repeats 5]

Each graph has about two edges per node (a random order, each node drawing parents among
earlier nodes) and a few bidirected edges; treatment and outcome are an ancestor /
descendant pair. The acceptance target: 200 nodes plan in under a second.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from causal_core.graph.causal_graph import CausalGraph
from causal_core.identification.plan import identify


def random_graph(n: int, seed: int, edges_per_node: float = 2.0, bidirected: int = 3) -> CausalGraph:
    rng = np.random.default_rng(seed)
    names = [f"V{i}" for i in range(n)]
    directed = set()
    target = int(edges_per_node * n)
    while len(directed) < target:
        a, b = sorted(rng.choice(n, size=2, replace=False))
        if b - a <= max(4, n // 10):  # keep it sparse and local, as real graphs are
            directed.add((names[a], names[b]))
    bi = set()
    while len(bi) < bidirected:
        a, b = sorted(rng.choice(n, size=2, replace=False))
        bi.add((names[a], names[b]))
    return CausalGraph(observed=tuple(names), directed=tuple(directed), bidirected=tuple(bi))


def pick_query(g: CausalGraph, seed: int) -> tuple[str, str]:
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        x = g.observed[int(rng.integers(len(g.observed) // 3, len(g.observed) // 2))]
        desc = sorted(g.descendants(x) - {x}, key=g.observed.index)
        if len(desc) > 3:
            return x, desc[len(desc) // 2]
    raise RuntimeError("no treatment with descendants found")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100, 200])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"{'nodes':>6} {'edges':>6} {'median s':>10} {'max s':>8} {'strategies':>10} {'implications':>12}")
    for n in args.sizes:
        times, last = [], None
        for r in range(args.repeats):
            g = random_graph(n, seed=1000 * n + r)
            x, y = pick_query(g, seed=r)
            t0 = time.perf_counter()
            last = identify(g, x, y)
            times.append(time.perf_counter() - t0)
        print(f"{n:>6} {len(g.directed):>6} {statistics.median(times):>10.3f} {max(times):>8.3f} "
              f"{len(last.strategies):>10} {len(last.implications):>12}")


if __name__ == "__main__":
    main()

"""Causal graphs: parsing (edge lists, DOT, GML, networkx), latent confounders, m-separation,
bit-set DAGs for fast search, and the testable implications a graph makes."""

from causal_core.graph.causal_graph import CausalGraph, as_names

__all__ = ["CausalGraph", "as_names"]

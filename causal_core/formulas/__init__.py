"""Probability formulas: the tree an identified estimand is written in (sums, products,
quotients of conditional probabilities), its simplification, printing (text, LaTeX) and
evaluation on a discrete joint distribution."""

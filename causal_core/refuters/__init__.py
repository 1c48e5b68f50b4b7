"""Refutation: the closed-form statistics that challenge an estimate and its graph —
omitted-variable-bias sensitivity (robustness values, benchmark bounds, E-values) and
tests of the conditional independences the causal graph implies."""

"""Spark: the session (from a profile), the moment engine, its expression compiler and
common-subexpression projection, exact limb sums, and the one module through which small
aggregates reach the driver."""

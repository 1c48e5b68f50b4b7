"""A pandas moment engine that counts its passes (tests of how often estimators read the data)."""

from __future__ import annotations

from causal_core.moments import PandasMomentEngine


class CountingEngine(PandasMomentEngine):
    """Counts engine passes: every ``bucket_sums``, ``grouped_sums`` and ``totals``
    call is one."""

    calls = 0

    def bucket_sums(self, exprs):
        self.calls += 1
        return super().bucket_sums(exprs)

    def grouped_sums(self, exprs, key, levels):
        self.calls += 1
        return super().grouped_sums(exprs, key, levels)

    def totals(self, exprs, extremes=()):
        self.calls += 1
        return super().totals(exprs, extremes)
